#!/bin/sh
# tests/oracle/run.sh — rebuilds every fixture under tests/fixtures/ with the
# reference libraries: each make_*.py here writes its own file(s). Commit the
# result; `make check` compares the C code against them.
#   tests/oracle/run.sh              all scripts
#   tests/oracle/run.sh make_rng.py  one script
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=$("$here/setup-venv.sh")
cd "$here/../.."
if [ $# -gt 0 ]; then scripts="$*"; else scripts=$(cd "$here" && ls make_*.py); fi
for s in $scripts; do
  echo "oracle: $s" >&2
  "$py" "$here/$(basename "$s")"
done
