#!/usr/bin/env bats
# tests/85-pairpack.bats — pairpack as a user runs it: a cxrphantom mimic
# folder packed and read back with cxrstream (kind, header, shapes, meta,
# splits), shards of N records each a complete stream, the same bytes at any
# thread count, JSON lines with PNG (8/16-bit, RGB) and JPEG images, skipped
# pairs (unreadable image, empty report) warned about and counted, and bad
# input (exit 2, a message naming the line, nothing on stdout). The pixels
# and ids themselves are compared with OpenCV and Hugging Face in the unit
# tests (test_image_prep, test_wordpiece, test_report_clean).
load test_helper
bats_require_minimum_version 1.5.0

BERT() { echo "$FIXTURES/bert"; }

# summary FILE: cxrstream's JSON lines for a stream file (or - for stdin).
summary() { cxrstream "$1"; }

setup_file() {
  export PH="$BATS_FILE_TMPDIR/ph"
  cxrphantom -q -o "$PH" --count 20 --seed 5 --size 96
}

@test "pairpack --mimic: a pairs stream that cxrstream reads back" {
  run -0 --separate-stderr bash -c "pairpack -q --text-model '$(BERT)' --mimic '$PH' >'$TMP/p.cxs'"
  assert_equal "$stderr" ""
  run -0 cxrstream -k pairs "$TMP/p.cxs"
  local head
  head=$(head -1 <<<"$output")
  assert_equal "$(jq -r .producer <<<"$head")" "pairpack 0.1.0"
  assert_equal "$(jq -c '.meta | {image_size, max_tokens, lowercase, split}' <<<"$head")" \
    '{"image_size":256,"max_tokens":112,"lowercase":true,"split":"all"}'
  assert_equal "$(jq -r .meta.vocab <<<"$head")" "$(BERT)/vocab.txt"
  assert_equal "$(tail -n +2 <<<"$output" | wc -l)" 20
  # every record: the three tensors at their shapes, the path and cleaned text in meta
  run -0 bash -c "cxrstream '$TMP/p.cxs' | tail -n +2 | jq -c '[.tensors.image.dtype, .tensors.image.shape,
    .tensors.input_ids.dtype, .tensors.input_ids.shape, .tensors.attention_mask.dtype,
    .tensors.attention_mask.shape]' | sort -u"
  assert_output '["u8",[256,256],"i32",[112],"u8",[112]]'
  # ids and paths in the order of reports.jsonl; text lower-case ASCII words
  assert_equal "$(cxrstream "$TMP/p.cxs" | tail -n +2 | jq -r .id)" "$(jq -r .id "$PH/reports.jsonl")"
  assert_equal "$(cxrstream "$TMP/p.cxs" | tail -n +2 | jq -r .meta.path)" "$(jq -r .path "$PH/reports.jsonl")"
  run -0 bash -c "cxrstream '$TMP/p.cxs' | tail -n +2 | jq -r .meta.text | grep -cvE '^[a-z0-9_]+( [a-z0-9_]+){2,}\$' || true"
  assert_output 0
}

@test "pairpack --mimic --split: the three splits partition the folder, as its split table says" {
  local s total=0 n want
  for s in train validate test; do
    pairpack -q --text-model "$(BERT)" --mimic "$PH" --split "$s" >"$TMP/$s.cxs"
    n=$(cxrstream "$TMP/$s.cxs" | tail -n +2 | wc -l)
    want=$(grep -c ",$s\$" "$PH/mimic-cxr-2.0.0-split.csv" || true)
    assert_equal "$n" "$want"
    assert_equal "$(cxrstream "$TMP/$s.cxs" | tail -n +2 | jq -r .meta.split | sort -u | tr -d '\n')" \
      "$([ "$n" -gt 0 ] && echo "$s")"
    total=$((total + n))
  done
  assert_equal "$total" 20
}

@test "pairpack -o DIR --shard-size: complete shards of N records, the same records as stdout" {
  pairpack -q --text-model "$(BERT)" --mimic "$PH" >"$TMP/all.cxs"
  run -0 --separate-stderr pairpack --text-model "$(BERT)" --mimic "$PH" -o "$TMP/sh" --shard-size 7
  assert_output ""
  stderr_has "20 of 20 pairs written in 3 shards"
  run -0 ls "$TMP/sh"
  assert_output $'pairs-00000.cxs\npairs-00001.cxs\npairs-00002.cxs'
  local counts="" f
  for f in "$TMP"/sh/pairs-*.cxs; do
    cxrstream -c -k pairs "$f"
    counts+="$(cxrstream "$f" | tail -n +2 | wc -l) "
  done
  assert_equal "$counts" "7 7 6 "
  # the shards' records, in order, are the stdout stream's
  assert_equal "$(for f in "$TMP"/sh/pairs-*.cxs; do cxrstream "$f" | tail -n +2 | jq -c 'del(.index)'; done)" \
    "$(cxrstream "$TMP/all.cxs" | tail -n +2 | jq -c 'del(.index)')"
  # no temporary files left behind
  assert_equal "$(find "$TMP/sh" -name '.*' -type f | wc -l)" 0
}

@test "pairpack -o DIR refuses a folder with shards, --force replaces them" {
  pairpack -q --text-model "$(BERT)" --mimic "$PH" -o "$TMP/sh" --shard-size 5
  run -2 --separate-stderr pairpack -q --text-model "$(BERT)" --mimic "$PH" -o "$TMP/sh"
  assert_output ""
  stderr_has "already holds shards"
  run -0 pairpack -q --text-model "$(BERT)" --mimic "$PH" -o "$TMP/sh" --force
  run -0 ls "$TMP/sh"
  assert_output "pairs-00000.cxs"
}

@test "pairpack: the same bytes whatever the thread count, and run to run" {
  pairpack -q --threads 1 --text-model "$(BERT)" --mimic "$PH" >"$TMP/a.cxs"
  pairpack -q --threads 2 --text-model "$(BERT)" --mimic "$PH" >"$TMP/b.cxs"
  pairpack -q --threads 2 --text-model "$(BERT)" --mimic "$PH" >"$TMP/c.cxs"
  cmp "$TMP/a.cxs" "$TMP/b.cxs"
  cmp "$TMP/b.cxs" "$TMP/c.cxs"
}

@test "pairpack: JSON lines with PNG (8/16-bit, RGB) and JPEG images, relative to the file's folder" {
  local d=$TMP/list
  mkdir -p "$d/img"
  cp "$FIXTURES"/image_prep/{grey8_wide.png,grey16.png,rgb8.png,grey.jpg,colour.jpg} "$d/img/"
  local f
  for f in grey8_wide.png grey16.png rgb8.png grey.jpg colour.jpg; do
    printf '{"id": "%s", "path": "img/%s", "text": "Small left pleural effusion. No pneumothorax.", "seed": 3}\n' \
      "${f%%.*}" "$f"
  done >"$d/pairs.jsonl"
  run -0 --separate-stderr bash -c \
    "pairpack -q --vocab '$(BERT)/vocab.txt' --image-size 64 --max-tokens 16 '$d/pairs.jsonl' >'$TMP/l.cxs'"
  assert_equal "$stderr" ""
  run -0 bash -c "cxrstream '$TMP/l.cxs' | tail -n +2 | jq -c '[.id, .meta, .tensors.image.shape, .tensors.input_ids.shape]'"
  assert_line --index 0 '["grey8_wide",{"path":"img/grey8_wide.png","text":"small left pleural effusion no pneumothorax","seed":3},[64,64],[16]]'
  assert_equal "${#lines[@]}" 5
  assert_line --index 4 --partial '["colour",'
  # the same file from standard input, paths resolved with --root
  pairpack -q --vocab "$(BERT)/vocab.txt" --image-size 64 --max-tokens 16 --root "$d" <"$d/pairs.jsonl" >"$TMP/l2.cxs"
  cmp "$TMP/l2.cxs" "$TMP/l.cxs"
}

@test "pairpack: --cased and tokenizer_config.json set the header's lowercase" {
  mkdir -p "$TMP/cased"
  cp "$(BERT)/vocab.txt" "$TMP/cased/"
  echo '{"do_lower_case": false}' >"$TMP/cased/tokenizer_config.json"
  run -0 bash -c "pairpack -q --text-model '$TMP/cased' </dev/null | cxrstream | jq .meta.lowercase"
  assert_output false
  run -0 bash -c "pairpack -q --text-model '$TMP/cased' --lowercase </dev/null | cxrstream | jq .meta.lowercase"
  assert_output true
  run -0 bash -c "pairpack -q --vocab '$(BERT)/vocab.txt' --cased </dev/null | cxrstream | jq .meta.lowercase"
  assert_output false
}

@test "pairpack: unreadable images and empty reports are skipped, named and counted" {
  local d=$TMP/skip
  mkdir -p "$d"
  cp "$FIXTURES/image_prep/grey8_wide.png" "$d/a.png"
  printf 'not an image' >"$d/bad.png"
  head -c 300 "$FIXTURES/image_prep/grey8_256.png" >"$d/cut.png"
  cat >"$d/pairs.jsonl" <<'EOF'
{"id": "r1", "path": "a.png", "text": "Small left pleural effusion."}
{"id": "r2", "path": "missing.png", "text": "Heart size is normal. Lungs are clear."}

{"id": "r4", "path": "a.png", "text": "Normal."}
{"id": "r5", "path": "bad.png", "text": "Mild cardiomegaly without edema."}
{"id": "r6", "path": "cut.png", "text": "Mild cardiomegaly without edema."}
{"id": "r7", "path": "a.png", "impression": "No acute process.", "findings": "Lungs clear."}
{"id": "r8", "path": "a.png", "text": ""}
EOF
  run -0 --separate-stderr bash -c "pairpack -q --text-model '$(BERT)' '$d/pairs.jsonl' >'$TMP/s.cxs'"
  assert_equal "$(cxrstream "$TMP/s.cxs" | tail -n +2 | jq -r .id | tr '\n' ' ')" "r1 r7 "
  stderr_has "pairpack: warning: $d/pairs.jsonl line 2 (r2): skipped: unreadable image: cannot open $d/missing.png"
  stderr_has "line 4 (r4): skipped: the report is empty after cleaning (0 words"
  stderr_has "line 5 (r5): skipped: unreadable image: $d/bad.png: not a PNG or JPEG file"
  stderr_has "line 6 (r6): skipped: unreadable image: $d/cut.png: truncated PNG file"
  stderr_has "line 8 (r8): skipped: the report is empty"
  stderr_has "pairpack: warning: 2 of 7 pairs written; skipped 3 with an unreadable image, 2 with an empty report"
  # the impression and findings of r7 joined as MGCA joins them
  assert_equal "$(cxrstream "$TMP/s.cxs" | jq -r 'select(.id == "r7") | .meta.text')" "no acute process lungs clear"
}

@test "pairpack: no pairs left gives a header-only stream, and no shard" {
  run -0 bash -c "pairpack -q --vocab '$(BERT)/vocab.txt' </dev/null | cxrstream -k pairs | wc -l"
  assert_output 1
  run -0 --separate-stderr pairpack --vocab "$(BERT)/vocab.txt" -o "$TMP/none" </dev/null
  stderr_has "0 of 0 pairs written in 0 shards"
  assert_equal "$(ls "$TMP/none" | wc -l)" 0
}

@test "pairpack: a malformed line or record is exit 2 naming the line, with nothing on stdout" {
  local d=$TMP/bad
  mkdir -p "$d"
  cp "$FIXTURES/image_prep/grey8_wide.png" "$d/a.png"
  printf '{"id": "r1", "path": "a.png", "text": "Small left effusion."}\n{"id": "r2", "path": \n' >"$d/m.jsonl"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/m.jsonl"
  assert_output ""
  stderr_has "pairpack: $d/m.jsonl:2: malformed JSON"
  printf '{"id": "r1", "text": "Small left effusion."}\n' >"$d/nopath.jsonl"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/nopath.jsonl"
  assert_output ""
  stderr_has "line 1: no \"path\""
  printf '{"id": "r1", "path": "a.png"}\n' >"$d/notext.jsonl"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/notext.jsonl"
  stderr_has "line 1 (r1): no \"text\""
  printf '{"id": 7, "path": "a.png", "text": "x y z"}\n' >"$d/numid.jsonl"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/numid.jsonl"
  stderr_has "line 1: \"id\" is not a string"
  printf '[1, 2]\n' >"$d/array.jsonl"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/array.jsonl"
  stderr_has "line 1: not a JSON object"
  run -2 --separate-stderr pairpack -q --vocab "$(BERT)/vocab.txt" "$d/absent.jsonl"
  stderr_has "cannot open $d/absent.jsonl"
}

@test "pairpack: a missing vocab or a broken --mimic folder is exit 2" {
  run -2 --separate-stderr pairpack -q --text-model "$TMP/nobert" --mimic "$PH"
  assert_output ""
  stderr_has "cannot open $TMP/nobert/vocab.txt"
  run -2 --separate-stderr pairpack -q --text-model "$(BERT)" --mimic "$TMP/nothere"
  stderr_has "--mimic $TMP/nothere: not a folder"
  cp -r "$PH" "$TMP/m2"
  rm "$TMP/m2/mimic-cxr-2.0.0-split.csv"
  run -2 --separate-stderr pairpack -q --text-model "$(BERT)" --mimic "$TMP/m2"
  stderr_has "mimic-cxr-2.0.0-split.csv"
  cp "$PH/mimic-cxr-2.0.0-split.csv" "$TMP/m2/"
  sed -i '3d' "$TMP/m2/mimic-cxr-2.0.0-split.csv"
  run -2 --separate-stderr pairpack -q --text-model "$(BERT)" --mimic "$TMP/m2"
  assert_output ""
  stderr_has "line 2 ("
  stderr_has "not in mimic-cxr-2.0.0-split.csv"
}
