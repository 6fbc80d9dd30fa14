#!/usr/bin/env bats
# tests/10-programs.bats — the six programs as a user meets them before their
# cores exist: --help and --version, every bad option and value refused with
# exit 1 and nothing on stdout, the honest "not built yet" exit 2, and the
# device choice (--device cuda without a GPU, --device auto's note).
load test_helper
bats_require_minimum_version 1.5.0

# The least command line each program accepts: its required options.
declare -gA MINIMAL=(
  [rep2lat]="--model $TMP/model"
  [denoise]=""
  [lat2png]=""
  [pairpack]="--text-model $TMP/bert"
  [vlptrain]="--text-model $TMP/bert -o $TMP/ck.safetensors"
  [cxreval]="--dataset chexpert --data $TMP/chexpert --init random"
)
# The issue that brings each program's core (named in its message).
declare -gA ISSUE=([rep2lat]=3 [denoise]=4 [lat2png]=5 [pairpack]=8 [vlptrain]=8 [cxreval]=9)

version() { sed -n 's/^VERSION *:= *//p' "$ROOT/Makefile"; }
have_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }

# stderr_has TEXT: the last run's stderr contains TEXT.

check_help() {
  local p=$1
  run -0 --separate-stderr "$p" --help
  assert_equal "$stderr" ""
  assert_line --index 0 --regexp "^Usage: $p "
  assert_line --regexp '^  -h, --help '
  assert_line --regexp '^  -V, --version '
  assert_line --regexp '^      --device D '
  assert_line 'Example:'
  assert_line --partial "$p"
  local help=$output
  run -0 --separate-stderr "$p" -h
  assert_equal "$output" "$help"
}

check_version() {
  run -0 --separate-stderr "$1" --version
  assert_output "$1 (synthcxr) $(version)"
  assert_equal "$stderr" ""
  run -0 --separate-stderr "$1" -V
  assert_output "$1 (synthcxr) $(version)"
}

check_unknown_option() {
  run -1 --separate-stderr "$1" --no-such-option
  assert_output ""
  stderr_has "$1: "
  stderr_has "no-such-option"
  stderr_has "Try '$1 --help'"
  run -1 --separate-stderr "$1" -Z
  assert_output ""
  stderr_has "$1: "
}

# check_bad_values PROG OPT VALUE [OPT VALUE]...: each value alone (after the
# program's required options) exits 1, names its option, writes no data.
check_bad_values() {
  local p=$1; shift
  # shellcheck disable=SC2086
  while [ $# -ge 2 ]; do
    run -1 --separate-stderr "$p" ${MINIMAL[$p]} "$1" "$2"
    assert_output ""
    stderr_has "$p: $1"
    shift 2
  done
}

check_stub() {
  local p=$1
  # shellcheck disable=SC2086
  run -2 --separate-stderr "$p" -q ${MINIMAL[$p]} </dev/null
  assert_output ""
  assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 1
  assert_regex "$stderr" "^$p: .*not built yet \\(.*issue #${ISSUE[$p]}\\); nothing was read or written\$"
}

# Without a GPU, --device cuda says why it cannot be used; with one, the
# programs run there (their own bats files test that), so this skips.
check_device_cuda() {
  local p=$1
  if have_gpu; then skip "a GPU answers here"; fi
  # shellcheck disable=SC2086
  run -2 --separate-stderr "$p" --device cuda ${MINIMAL[$p]} </dev/null
  assert_output ""
  # Why CUDA cannot be used ("built without CUDA", "no GPU: ..."), not the stub.
  assert_regex "$stderr" "^$p: --device cuda: [a-z]"
  refute_regex "$stderr" "not built yet"
}

check_device_auto() {
  local p=$1
  # shellcheck disable=SC2086
  run -2 --separate-stderr "$p" --device auto ${MINIMAL[$p]} </dev/null
  assert_output ""
  if have_gpu; then # a CUDA build picks the GPU, a CPU-only build says why not
    assert_regex "$stderr" "^$p: device: (cuda|cpu) \(auto"
  else
    assert_regex "$stderr" "^$p: device: cpu \(auto"
  fi
  # shellcheck disable=SC2086
  run -2 --separate-stderr "$p" ${MINIMAL[$p]} --device cpu --threads 1 </dev/null
  refute_regex "$stderr" "device:"
  stderr_has "$p: "
  # shellcheck disable=SC2086
  run -2 --separate-stderr "$p" -q ${MINIMAL[$p]} </dev/null
  refute_regex "$stderr" "device:"
}

check_common_values() {
  check_bad_values "$1" --device tpu --device "" --threads 0 --threads x --threads 5000
  run -1 --separate-stderr "$1" --threads
  assert_output ""
  stderr_has "$1: "
}

# --- rep2lat ------------------------------------------------------------------
@test "rep2lat --help" { check_help rep2lat; }
@test "rep2lat --version" { check_version rep2lat; }
@test "rep2lat unknown option" { check_unknown_option rep2lat; }
@test "rep2lat common option values" { check_common_values rep2lat; }
@test "rep2lat bad option values" {
  check_bad_values rep2lat --seed -1 --seed 1.5 --height 33 --height 0 --width 100000 \
    --width abc --clip-skip -1 --clip-skip 99 --batch 0 --precision fp64 --precision "" --field ""
}
@test "rep2lat needs --model and takes one input" {
  run -1 --separate-stderr rep2lat
  assert_output ""
  stderr_has "rep2lat: --model DIR is required"
  run -1 --separate-stderr rep2lat --model "$TMP/m" a.jsonl b.jsonl
  stderr_has "'b.jsonl' is extra"
}
@test "rep2lat: a missing model folder is exit 2, nothing on stdout" {
  run -2 --separate-stderr rep2lat -q --model "$TMP/model" </dev/null
  assert_output ""
  stderr_has "rep2lat: $TMP/model/: no such model folder"
}
@test "rep2lat --device cuda without a GPU" { check_device_cuda rep2lat; }
@test "rep2lat --device auto notes its choice" { check_device_auto rep2lat; }

# --- denoise ------------------------------------------------------------------
@test "denoise --help" { check_help denoise; }
@test "denoise --version" { check_version denoise; }
@test "denoise unknown option" { check_unknown_option denoise; }
@test "denoise common option values" { check_common_values denoise; }
@test "denoise bad option values" {
  check_bad_values denoise --scheduler lms --scheduler PNDM --steps 0 --steps 1001 --steps x \
    --guidance x --guidance -1 --guidance nan --guidance 101 --batch 0 --precision int8
}
@test "denoise accepts every scheduler and precision" {
  # an empty input is a valid stream with no records: a header-only answer
  for s in pndm ddim euler euler_a dpmpp_2m; do
    run -0 --separate-stderr denoise -q --scheduler "$s" --guidance 1 </dev/null
  done
  run -0 --separate-stderr denoise -q --precision fp32 </dev/null
  for p in fp16 bf16; do
    run -2 --separate-stderr denoise -q --precision "$p" </dev/null
    stderr_has "--precision $p is not built on the CPU"
  done
}
@test "denoise takes one input" {
  run -1 --separate-stderr denoise a.cxr b.cxr
  assert_output ""
  stderr_has "'b.cxr' is extra"
}
@test "denoise: empty input, a header-only latents stream (exit 0; the core is in tests/50-denoise.bats)" {
  run -0 --separate-stderr bash -c 'denoise -q </dev/null | cxrstream'
  assert_output --partial '"kind":"latents"'
  assert_equal "$stderr" ""
}
@test "denoise --device cuda without a GPU" { check_device_cuda denoise; }
@test "denoise --device auto notes its choice" {
  run -0 --separate-stderr denoise --device auto </dev/null
  if have_gpu; then
    assert_regex "$stderr" "^denoise: device: (cuda|cpu) \(auto"
  else
    assert_regex "$stderr" "^denoise: device: cpu \(auto"
  fi
  run -0 --separate-stderr denoise --device cpu --threads 1 </dev/null
  refute_regex "$stderr" "device:"
  run -0 --separate-stderr denoise -q </dev/null
  assert_equal "$stderr" ""
}

# --- lat2png ------------------------------------------------------------------
@test "lat2png --help" { check_help lat2png; }
@test "lat2png --version" { check_version lat2png; }
@test "lat2png unknown option" { check_unknown_option lat2png; }
@test "lat2png common option values" { check_common_values lat2png; }
@test "lat2png bad option values" {
  check_bad_values lat2png --depth 12 --depth 4 --depth x --tile 100 --tile -64 --tile 9000 \
    --batch 0 --precision half --outdir ""
}
@test "lat2png takes one input" {
  run -1 --separate-stderr lat2png a.cxr b.cxr
  assert_output ""
  stderr_has "'b.cxr' is extra"
}
@test "lat2png --device cuda without a GPU" { check_device_cuda lat2png; }
# lat2png's core is built (issue #5): empty input, the --device auto note and
# its errors are tested in 60-lat2png.bats.

# --- pairpack -----------------------------------------------------------------
@test "pairpack --help" { check_help pairpack; }
@test "pairpack --version" { check_version pairpack; }
@test "pairpack unknown option" { check_unknown_option pairpack; }
@test "pairpack common option values" { check_common_values pairpack; }
@test "pairpack bad option values" {
  check_bad_values pairpack --format csv --split dev --image-size 16 --image-size 5000 --max-tokens 4 \
    --max-tokens 513 --out "" --mimic ""
}
@test "pairpack option combinations" {
  run -1 --separate-stderr pairpack
  assert_output ""
  stderr_has "pairpack: --text-model DIR or --vocab FILE is required"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --vocab "$TMP/v.txt"
  stderr_has "give one of them"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --format mimic
  stderr_has "--format mimic needs the dataset folder"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --mimic "$TMP/m" extra.jsonl
  stderr_has "the operand 'extra.jsonl' is extra"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --split train
  stderr_has "--split needs --mimic"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --shard-size 10
  stderr_has "--shard-size needs --out"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --force
  stderr_has "--force needs --out"
  run -1 --separate-stderr pairpack --text-model "$TMP/b" --shard-size 0 -o "$TMP/s"
  stderr_has "pairpack: --shard-size"
  assert_output ""
}
# pairpack's core is built (issue #8): its input, output and errors are
# tested in 85-pairpack.bats.
@test "pairpack --device cuda without a GPU" { check_device_cuda pairpack; }
@test "pairpack --device auto notes its choice" { check_device_auto pairpack; }

# --- vlptrain -----------------------------------------------------------------
@test "vlptrain --help" { check_help vlptrain; }
@test "vlptrain --version" { check_version vlptrain; }
@test "vlptrain unknown option" { check_unknown_option vlptrain; }
@test "vlptrain common option values" { check_common_values vlptrain; }
@test "vlptrain bad option values" {
  check_bad_values vlptrain --method clip --text-layers 0 --embed-dim 0 --temperature 0 \
    --lambda 2 --epochs 0 --batch 1 --accumulate 0 --lr -1 --lr x --min-lr 2 --weight-decay x \
    --warmup 1.5 --clip-grad -1 --val-fraction 0.9 --seed x --save-every -1 --log-every 0 \
    --output ""
}
@test "vlptrain option combinations" {
  run -1 --separate-stderr vlptrain -o "$TMP/c"
  assert_output ""
  stderr_has "vlptrain: --text-model DIR is required"
  run -1 --separate-stderr vlptrain --text-model "$TMP/b"
  stderr_has "vlptrain: --output CKPT is required"
  run -1 --separate-stderr vlptrain ${MINIMAL[vlptrain]} --lr 1e-5 --min-lr 1e-4
  stderr_has "vlptrain: --min-lr"
}
@test "vlptrain without a text model folder fails with exit 2 (its core is built: tests/95-vlptrain.bats)" {
  # shellcheck disable=SC2086
  run -2 --separate-stderr vlptrain -q ${MINIMAL[vlptrain]} </dev/null
  assert_output ""
  assert_regex "$stderr" "^vlptrain: cannot open .*/bert/config.json"
}
@test "vlptrain --method gloria and mgca say they come later" {
  for m in gloria mgca; do
    # shellcheck disable=SC2086
    run -2 --separate-stderr vlptrain -q ${MINIMAL[vlptrain]} --method "$m" shard.cxr
    assert_output ""
    assert_regex "$stderr" "^vlptrain: --method $m is not built yet"
  done
}
@test "vlptrain --device cuda without a GPU" { check_device_cuda vlptrain; }
@test "vlptrain --device auto notes its choice" { check_device_auto vlptrain; }

# --- cxreval ------------------------------------------------------------------
@test "cxreval --help" { check_help cxreval; }
@test "cxreval --version" { check_version cxreval; }
@test "cxreval unknown option" { check_unknown_option cxreval; }
@test "cxreval common option values" { check_common_values cxreval; }
@test "cxreval bad option values" {
  check_bad_values cxreval --task regression --dataset mimic --init imagenet21k --fraction 0 \
    --fraction 2 --seed -5 --lr x --weight-decay 2 --batch 0 --epochs 0 --patience 0 \
    --bootstrap -1
}
@test "cxreval option combinations" {
  local d="--data $TMP/d"
  run -1 --separate-stderr cxreval $d --init random
  assert_output ""
  stderr_has "cxreval: --dataset is required"
  run -1 --separate-stderr cxreval --dataset rsna --init random
  stderr_has "cxreval: --data DIR is required"
  run -1 --separate-stderr cxreval $d --dataset siim --init random
  stderr_has "--dataset siim has no classification labels"
  run -1 --separate-stderr cxreval $d --task detection --dataset covidx --init random
  stderr_has "--dataset covidx has no detection labels"
  run -1 --separate-stderr cxreval $d --dataset rsna
  stderr_has "--checkpoint CKPT is required"
  run -1 --separate-stderr cxreval $d --dataset rsna --init random --checkpoint c
  stderr_has "--checkpoint goes with --init checkpoint"
  run -1 --separate-stderr cxreval $d --dataset rsna --init imagenet
  stderr_has "--init imagenet needs --image-weights"
  run -1 --separate-stderr cxreval $d --dataset rsna --checkpoint c --image-weights w
  stderr_has "--image-weights goes with --init imagenet"
  run -1 --separate-stderr cxreval $d --dataset rsna --checkpoint c extra
  stderr_has "'extra' is extra"
}
@test "cxreval segmentation and detection say they are not built (exit 2)" {
  for t in segmentation detection; do
    run -2 --separate-stderr cxreval -q --task $t --dataset rsna --data "$TMP/d" --init random </dev/null
    assert_output ""
    assert_regex "$stderr" "^cxreval: --task $t is not built yet \\(.*issue #9\\); nothing was read or written\$"
  done
}
@test "cxreval every task and dataset pair the study uses is accepted" {
  local d="--data $TMP/d --checkpoint c"
  for td in classify:chexpert classification:rsna classification:covidx segmentation:siim \
            segmentation:rsna detection:rsna detection:object-cxr; do
    run -2 --separate-stderr cxreval -q $d --task "${td%%:*}" --dataset "${td#*:}" --fraction 0.01
    assert_output ""
    # classification reads the (missing) data; the others are not built yet
    case $td in class*) stderr_has "$TMP/d" ;; *) stderr_has "not built yet" ;; esac
  done
  run -2 --separate-stderr cxreval -q --data "$TMP/d" --dataset covidx --init imagenet \
    --image-weights w
  stderr_has "cannot open $TMP/d/train.txt"
}
@test "cxreval --device cuda without a GPU" { check_device_cuda cxreval; }
@test "cxreval --device auto notes its choice" { check_device_auto cxreval; }
