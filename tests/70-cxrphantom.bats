#!/usr/bin/env bats
# tests/70-cxrphantom.bats — cxrphantom as a user runs it: the same seed gives
# the same files byte for byte (whatever --jobs), every format reads back
# (phantomcheck re-parses the tables and compares images, labels, boxes and
# run-length masks with the regenerated cases), reports agree with the labels,
# and bad command lines or folders fail with the documented status.
load test_helper
bats_require_minimum_version 1.5.0


# tree_sum DIR: one checksum line per file, paths relative to DIR.
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

@test "cxrphantom --help and --version" {
  run -0 --separate-stderr cxrphantom --help
  assert_line --index 0 --regexp '^Usage: cxrphantom '
  assert_line --partial '--format F'
  assert_equal "$stderr" ""
  run -0 --separate-stderr cxrphantom --version
  assert_output --regexp '^cxrphantom \(synthcxr\) '
}

@test "cxrphantom: the same seed gives byte-identical trees, with 1 or 2 jobs" {
  run -0 cxrphantom -q -o "$TMP/a" --count 24 --seed 11 --size 96 --jobs 1
  run -0 cxrphantom -q -o "$TMP/b" --count 24 --seed 11 --size 96 --jobs 2
  run -0 cxrphantom -q -o "$TMP/c" --count 24 --seed 12 --size 96 --jobs 2
  [ "$(tree_sum "$TMP/a")" = "$(tree_sum "$TMP/b")" ] || fail "--jobs 1 and --jobs 2 differ"
  [ "$(tree_sum "$TMP/a")" != "$(tree_sum "$TMP/c")" ] || fail "seeds 11 and 12 gave the same tree"
  [ "$(find "$TMP/a" -name '*.png' | wc -l)" = 24 ]
}

@test "cxrphantom: the same case whatever the format (images agree across layouts)" {
  cxrphantom -q -o "$TMP/m" -f mimic --count 6 --seed 4 --size 64
  cxrphantom -q -o "$TMP/r" -f rsna --count 6 --seed 4 --size 64
  [ "$(find "$TMP/m" -name '*.png' -exec cat {} + | wc -c)" -gt 0 ]
  a=$(find "$TMP/m" -name '*.png' -print0 | sort -z | xargs -0 cat | wc -c)
  b=$(find "$TMP/r" -name '*.png' -print0 | sort -z | xargs -0 cat | wc -c)
  [ "$a" = "$b" ] || fail "mimic and rsna images differ in size ($a vs $b bytes)"
}

check_format() {
  local f=$1 prev="pneumothorax=0.4,foreign=0.5,consolidation=0.3,devices=0.5"
  run -0 --separate-stderr cxrphantom -q -o "$TMP/$f" -f "$f" --count 40 --seed 3 --size 96 --prevalence "$prev"
  assert_output ""
  run -0 phantomcheck "$f" "$TMP/$f" 3 40 96 "$prev"
  assert_output --regexp "^phantomcheck: $f: 40 images, [0-9]+ rows"
}

@test "mimic layout reads back (images, reports.jsonl, split CSV)" {
  check_format mimic
  [ -f "$TMP/mimic/mimic-cxr-2.0.0-split.csv" ]
  [ -f "$TMP/mimic/mimic-cxr-2.0.0-chexpert.csv" ]
  run -0 bash -c "ls '$TMP'/mimic/files/p10/p10000000/*.txt"
  run -0 jq -e 'has("id") and has("path") and has("findings") and has("impression")' "$TMP/mimic/reports.jsonl"
}
@test "chexpert layout reads back (train.csv / valid.csv, 1/0/-1/blank)" {
  check_format chexpert
  run -0 grep -c -- ',-1.0' "$TMP/chexpert/CheXpert-v1.0-small/train.csv"
  run -1 grep -- ',-1.0' "$TMP/chexpert/CheXpert-v1.0-small/valid.csv"
  run -0 grep -c ',,' "$TMP/chexpert/CheXpert-v1.0-small/train.csv"
}
@test "rsna layout reads back (boxes and Target)" {
  check_format rsna
  assert_output --regexp ' [1-9][0-9]* boxes'
  run -0 head -1 "$TMP/rsna/stage_2_detailed_class_info.csv"
  assert_output "patientId,class"
}
@test "siim layout reads back (run-length masks decode to the pneumothorax)" {
  check_format siim
  assert_output --regexp ' [1-9][0-9]* masks agree'
  run -0 grep -c ', -1$' "$TMP/siim/train-rle.csv"
}
@test "covidx layout reads back (3 classes)" { check_format covidx; }
@test "object-cxr layout reads back (annotation strings)" {
  check_format object-cxr
  assert_output --regexp ' [1-9][0-9]* boxes'
}

@test "reports agree with the CheXpert labels of the same world" {
  cxrphantom -q -o "$TMP/m" -f mimic --count 150 --seed 8 --size 32
  # label columns of mimic-cxr-2.0.0-chexpert.csv, by study, for three findings
  jq -r '[.study_id, (.findings + " " + .impression | ascii_downcase)] | @tsv' "$TMP/m/reports.jsonl" >"$TMP/rep.tsv"
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
           { print $2 "\t" $col["Pleural Effusion"] "\t" $col["Pneumothorax"] "\t" $col["Edema"] }' \
    "$TMP/m/mimic-cxr-2.0.0-chexpert.csv" >"$TMP/lab.tsv"
  run -0 awk -F'\t' '
    NR == FNR { rep[$1] = $2; next }
    { split("effusion pneumothorax edema", w, " ")
      for (k = 1; k <= 3; k++) {
        v = $(k + 1); r = rep[$1]; n = split(r, s, ".")
        pos = 0; neg = 0
        for (j = 1; j <= n; j++) if (index(s[j], w[k])) { if (s[j] ~ /(^| )no |without|normal/) neg++; else pos++ }
        if ((v == "1.0" || v == "-1.0") && !pos) { print "study " $1 ": " w[k] " labelled " v " but not reported"; bad++ }
        if (v == "0.0" && (!neg || pos)) { print "study " $1 ": " w[k] " labelled 0 but the report does not negate it"; bad++ }
        if (v == "" && pos) { print "study " $1 ": " w[k] " blank but reported"; bad++ }
        checked++
      } }
    END { print checked " checks"; exit bad > 0 }' "$TMP/rep.tsv" "$TMP/lab.tsv"
  assert_output --partial "450 checks"
}

@test "cxrphantom: bad command lines exit 1 with nothing written" {
  run -1 --separate-stderr cxrphantom -o "$TMP/x" --format dicom
  stderr_has "cxrphantom: --format"
  stderr_has "object-cxr"
  run -1 --separate-stderr cxrphantom -o "$TMP/x" --count 0
  stderr_has "cxrphantom: --count"
  run -1 --separate-stderr cxrphantom -o "$TMP/x" --size 2048
  stderr_has "cxrphantom: --size"
  run -1 --separate-stderr cxrphantom -o "$TMP/x" --prevalence effusion=2
  stderr_has "cxrphantom: --prevalence"
  run -1 --separate-stderr cxrphantom -o "$TMP/x" --prevalence warts=0.1
  stderr_has "unknown finding 'warts'"
  run -1 --separate-stderr cxrphantom
  stderr_has "cxrphantom: --outdir DIR is required"
  run -1 --separate-stderr cxrphantom -o "$TMP/x" extra
  stderr_has "'extra' is extra"
  [ ! -e "$TMP/x" ]
}

@test "cxrphantom: an unwritable --outdir exits 2 naming it" {
  : >"$TMP/file"
  run -2 --separate-stderr cxrphantom -q -o "$TMP/file/sub" --count 2
  assert_output ""
  stderr_has "cxrphantom: cannot create $TMP/file/sub"
  run -2 --separate-stderr cxrphantom -q -o "$TMP/file" --count 2
  stderr_has "is not a folder"
}

@test "cxrphantom --sheet writes a contact sheet" {
  run -0 cxrphantom -q -o "$TMP/s" --count 5 --size 64 --sheet "$TMP/sheet.png"
  run -0 file "$TMP/sheet.png"
  assert_output --partial "256 x 128, 8-bit/color RGB"
}

@test "cxrphantom: common options are checked like every program's" {
  for a in "--threads 0" "--threads x" "--device tpu" "--jobs 0" "--seed -1" "--no-such-option"; do
    # shellcheck disable=SC2086
    run -1 --separate-stderr cxrphantom -o "$TMP/x" $a
    assert_output ""
    stderr_has "cxrphantom: "
  done
  if ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
    run -2 --separate-stderr cxrphantom -o "$TMP/x" --device cuda
    assert_regex "$stderr" "^cxrphantom: --device cuda: [a-z]"
  fi
  run -0 --separate-stderr cxrphantom -o "$TMP/y" --count 2 --size 32 --threads 1
  assert_regex "$stderr" "cxrphantom: 2 mimic images of 32x32"
}
