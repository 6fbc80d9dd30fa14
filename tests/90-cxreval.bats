#!/usr/bin/env bats
# tests/90-cxreval.bats — cxreval on tiny cxrphantom datasets: bad inputs (a
# label table with a missing column, an image that does not exist, checkpoints
# of the wrong architecture or without an image encoder) exit 2 with a message
# on stderr and nothing on stdout; small end-to-end runs with --init random
# (a tiny ResNet) and with a tiny checkpoint print one well-formed JSON line,
# reuse the feature cache and repeat exactly with the same seed.
load test_helper
bats_require_minimum_version 1.5.0

TINY='{"layers":[1,1,1,1],"stem_width":4,"planes":4}'
FAST=(--epochs 8 --patience 3 --bootstrap 100 -q)

# phantom FORMAT N: a cxrphantom dataset in $TMP/FORMAT (small images).
phantom() {
  cxrphantom -q -o "$TMP/$1" -f "$1" -n "$2" --seed 3 --size 64
}

# check_line JSON DATASET METRIC N: the result line's fields and their sense.
check_line() {
  local j=$1
  [ "$(jq -r .dataset <<<"$j")" = "$2" ]
  [ "$(jq -r .metric <<<"$j")" = "$3" ]
  jq -e '.value >= 0 and .value <= 1 and .ci_low <= .value and .value <= .ci_high' <<<"$j" >/dev/null
  jq -e 'has("fraction") and has("init") and has("checkpoint") and has("seed") and has("n_train")
         and has("n_val") and has("n_test")' <<<"$j" >/dev/null
  # the validation split's figures: the probe's best loss and the metric there
  jq -e '(.val_loss | type) == "number" and .val_loss >= 0
         and ((.val_value == null) or (.val_value >= 0 and .val_value <= 1))' <<<"$j" >/dev/null
  [ "$(jq '.n_train + .n_val + .n_test' <<<"$j")" -le "$4" ]
}

@test "cxreval: a CheXpert table with a missing column (exit 2, file:line)" {
  local d=$TMP/cx/CheXpert-v1.0-small
  mkdir -p "$d"
  printf 'Path,Sex,Age,Frontal/Lateral,AP/PA,Cardiomegaly,Edema,Consolidation,Atelectasis\n' >"$d/train.csv"
  run -2 --separate-stderr cxreval --dataset chexpert --data "$TMP/cx" --init random
  assert_output ""
  stderr_has "cxreval: $d/train.csv:1: no column \"Pleural Effusion\""
}

@test "cxreval: an RSNA table with a bad Target names file:line (exit 2)" {
  mkdir -p "$TMP/r"
  printf 'patientId,x,y,width,height,Target\na,,,,,0\nb,,,,,yes\n' >"$TMP/r/stage_2_train_labels.csv"
  run -2 --separate-stderr cxreval --dataset rsna --data "$TMP/r" --init random
  assert_output ""
  stderr_has "stage_2_train_labels.csv:3: Target is \"yes\""
}

@test "cxreval: an image that does not exist (exit 2)" {
  phantom covidx 30
  local img
  img=$(sed -n 4p "$TMP/covidx/train.txt" | cut -d' ' -f2)
  rm "$TMP/covidx/train/$img"
  run -2 --separate-stderr cxreval --dataset covidx --data "$TMP/covidx" --init random
  assert_output ""
  stderr_has "image $TMP/covidx/train/$img does not exist ($TMP/covidx/train.txt:4)"
}

@test "cxreval: checkpoints of the wrong architecture or without an encoder (exit 2)" {
  phantom rsna 30
  run -2 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" \
    --checkpoint "$FIXTURES/cxreval/wrong_arch.safetensors"
  assert_output ""
  stderr_has "image_encoder.conv1.weight has shape [8,3,7,7]"
  stderr_has "wrong architecture"
  run -2 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" \
    --checkpoint "$FIXTURES/cxreval/no_encoder.safetensors"
  assert_output ""
  stderr_has "no image_encoder.* tensors"
  run -2 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" --init imagenet \
    --image-weights "$FIXTURES/cxreval/tiny_ckpt.safetensors"
  assert_output ""
  stderr_has "no tensor conv1.weight: these are not torchvision weights of a resnet50 image encoder"
  run -2 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" --checkpoint "$TMP/none.safetensors"
  assert_output ""
  stderr_has "$TMP/none.safetensors"
}

@test "cxreval: RSNA end to end, --init random, cache reused, same seed same line" {
  phantom rsna 100
  run -0 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" --init random --image-arch "$TINY" \
    --fraction 0.1 --cache-dir "$TMP/cache" "${FAST[@]}"
  assert_equal "$(printf '%s\n' "$output" | wc -l)" 1
  check_line "$output" rsna auroc 100
  [ "$(jq -r .init <<<"$output")" = random ]
  [ "$(jq .fraction <<<"$output")" = 0.1 ]
  [ "$(jq .n_test <<<"$output")" = 15 ]
  local first=$output
  ls "$TMP"/cache/rsna-*.safetensors
  # safetensors metadata values must be strings (Python's safetensors refuses others)
  grep -a -q '"images":"100"' "$TMP"/cache/rsna-*.safetensors
  run -0 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" --init random --image-arch "$TINY" \
    --fraction 0.1 --cache-dir "$TMP/cache" --epochs 8 --patience 3 --bootstrap 100
  assert_equal "$output" "$first"
  stderr_has "from the cache"
  stderr_has "AUROC"
  # the dataset rewritten in place (same seed: same file names; other size: other pixels)
  rm -rf "$TMP/rsna"
  cxrphantom -q -o "$TMP/rsna" -f rsna -n 100 --seed 3 --size 80
  run -0 --separate-stderr cxreval --dataset rsna --data "$TMP/rsna" --init random --image-arch "$TINY" \
    --fraction 0.1 --cache-dir "$TMP/cache" --epochs 8 --patience 3 --bootstrap 100
  refute_regex "$stderr" "from the cache"
  [ "$(ls "$TMP"/cache/rsna-*.safetensors | wc -l)" = 2 ]
}

@test "cxreval: COVIDx end to end (accuracy) with a tiny checkpoint" {
  phantom covidx 90
  run -0 --separate-stderr cxreval --dataset covidx --data "$TMP/covidx" \
    --checkpoint "$FIXTURES/cxreval/tiny_ckpt.safetensors" --no-cache "${FAST[@]}"
  check_line "$output" covidx accuracy 90
  [ "$(jq -r .checkpoint <<<"$output")" = "$FIXTURES/cxreval/tiny_ckpt.safetensors" ]
  [ "$(jq .n_test <<<"$output")" = 9 ]
}

@test "cxreval: CheXpert end to end (5-label macro AUROC), --init random" {
  phantom chexpert 300
  run -0 --separate-stderr cxreval --dataset chexpert --data "$TMP/chexpert" --init random \
    --image-arch "$TINY" --no-cache --seed 1 "${FAST[@]}"
  check_line "$output" chexpert auroc 300
}

@test "study.mk: a grid of two sources x one dataset x two fractions -> CSV, table, PNG" {
  command -v gnuplot >/dev/null || skip "gnuplot not installed (tools/install-deps.sh adds gnuplot-nox)"
  phantom rsna 100
  run -0 make -s -C "$ROOT" -f pipelines/study.mk BINDIR="$BINDIR" OUT="$TMP/study" JOBS=2 \
    CKPTS="$FIXTURES/cxreval/tiny_ckpt.safetensors" RANDOM_ARCH="$TINY" DATASETS=rsna \
    FRACTIONS="0.1 1" DATA_rsna="$TMP/rsna" CXREVAL_ARGS="--epochs 5 --patience 3 --bootstrap 50"
  assert_line --partial "| Method | RSNA (AUROC) 10% | RSNA (AUROC) 100% |"
  assert_line --regexp '^\| tiny_ckpt \| [0-9.]+ \([0-9.]+-[0-9.]+\) \| [0-9.]+ \([0-9.]+-[0-9.]+\) \|$'
  assert_line --regexp '^\| random \| '
  [ "$(wc -l <"$TMP/study/results.jsonl")" = 4 ]
  [ "$(wc -l <"$TMP/study/results.csv")" = 5 ]
  head -c 8 "$TMP/study/study.png" | od -An -tx1 | grep -q '89 50 4e 47'
}
