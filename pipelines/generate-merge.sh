#!/bin/bash
# pipelines/generate-merge.sh OUT — folds the slots' manifest lines
# (OUT/.parts/manifest-*.jsonl) into OUT/manifest.jsonl: one line per id (the
# newest, so a regenerated image replaces its old line), in the order of the
# reports file (source.line, which rep2lat records), then removes the parts.
# The new manifest is written under a temporary name and renamed.
set -euo pipefail
out=$1
shopt -s nullglob
parts=("$out"/.parts/manifest-*.jsonl)
[ ${#parts[@]} -eq 0 ] && exit 0
old=()
[ -f "$out/manifest.jsonl" ] && old=("$out/manifest.jsonl")
tmp=$(mktemp "$out/.manifest.XXXXXX")
jq -c -n 'reduce inputs as $r ({}; .[$r.id] = $r) | [.[]] | sort_by(.source.line) | .[]' \
  "${old[@]}" "${parts[@]}" >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out/manifest.jsonl"
rm -f "${parts[@]}"
