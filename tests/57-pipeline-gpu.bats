#!/usr/bin/env bats
# tests/57-pipeline-gpu.bats — the whole chain on the GPU against the CPU
# (issue 6, item 5): rep2lat | denoise | lat2png with --device cuda on the tiny
# fixture models and three reports, 5 steps, guidance 7.5, seeds 42-44, and
# the same with --device cpu; the PNGs compared sample by sample (pngref diff):
#  - fp32 (--precision fp32 in all three): within 1/255 on every sample, the
#    issue's bound (the CPU is the reference; the UNet alone agrees to 1e-4 of
#    its scale, test_gpu_unet.c);
#  - fp16: within 24/255 on every sample and 2/255 on average: a first
#    estimate, not yet measured (fp16 rounds to 4.9e-4 relative at each of
#    some hundred stores per UNet pass; the UNet alone is held to 2e-2 of its
#    scale, and 10 passes and the VAE follow); the measured figures are printed
#    so the bound can be tightened once a GPU has run it;
#  - denoise with CUDA graphs (SYNTHCXR_CUDA_GRAPHS=1) gives the latents of
#    plain passes byte for byte.
# Without a GPU every test skips "no GPU: ..." (the reason the programs give);
# tests/run.sh --gpu (make check-gpu) runs this file, and REQUIRE_GPU=1 makes
# a skip a failure there.
load test_helper

REPORTS="$FIXTURES/e2e_reports.jsonl"
IDS="demo06 demo07 demo11"

# gpu_or_skip: skip unless each program takes --device cuda here (a CPU-only
# build or a machine without a GPU says why on stderr, exit 2).
gpu_or_skip() {
  local p err
  for p in rep2lat denoise lat2png; do
    err=$("$p" --device cuda -m "$FIXTURES/models/tiny-sd1" /dev/null 2>&1 >/dev/null) || true
    if [[ $err == *"--device cuda: "* ]]; then
      err=${err#*--device cuda: }
      [[ $err == "no GPU"* ]] || err="no GPU: $err"
      skip "$err"
    fi
  done
}

# chain MODEL SCHEDULER OUT DEVICE [PRECISION]: the three programs, PNGs in OUT.
chain() {
  local m=$1 s=$2 out=$3 dev=$4 prec=()
  [ -n "${5:-}" ] && prec=(--precision "$5")
  rep2lat -q --device "$dev" "${prec[@]}" --seed 42 -m "$FIXTURES/models/$m" "$REPORTS" \
    | denoise -q --device "$dev" "${prec[@]}" --scheduler "$s" --steps 5 --guidance 7.5 \
    | lat2png -q --device "$dev" "${prec[@]}" -o "$out" >"$out.jsonl"
}

# compare MAXDIFF MEANDIFF: every PNG of $TMP/gpu against $TMP/cpu.
compare() {
  local id max=$1 mean=$2
  for id in $IDS; do
    run -0 pngref diff "$TMP/cpu/$id.png" "$TMP/gpu/$id.png" "$max"
    echo "# $id: $output" >&3
    [[ $output =~ meandiff\ ([0-9.]+) ]]
    awk -v m="${BASH_REMATCH[1]}" -v b="$mean" 'BEGIN { exit !(m <= b) }'
  done
}

# pipeline MODEL SCHEDULER PRECISION MAXDIFF MEANDIFF
pipeline() {
  gpu_or_skip
  chain "$1" "$2" "$TMP/cpu" cpu
  chain "$1" "$2" "$TMP/gpu" cuda "$3"
  compare "$4" "$5"
}

@test "GPU vs CPU, tiny-sd1, Euler, fp32: the PNGs within 1/255" { pipeline tiny-sd1 euler fp32 1 1; }
@test "GPU vs CPU, tiny-sd2, DDIM, fp32: the PNGs within 1/255" { pipeline tiny-sd2 ddim fp32 1 1; }
@test "GPU vs CPU, tiny-sd2, DPM-Solver++ 2M, fp32: the PNGs within 1/255" { pipeline tiny-sd2 dpmpp_2m fp32 1 1; }
@test "GPU vs CPU, tiny-sd1, Euler, fp16: the PNGs within 24/255, 2/255 on average" { pipeline tiny-sd1 euler fp16 24 2; }
@test "GPU vs CPU, tiny-sd2, PNDM, fp16: the PNGs within 24/255, 2/255 on average" { pipeline tiny-sd2 pndm fp16 24 2; }

@test "GPU: denoise with CUDA graphs gives the latents of plain passes, byte for byte (fp32 and fp16, batch 2)" {
  gpu_or_skip
  rep2lat -q --seed 42 -m "$FIXTURES/models/tiny-sd1" "$REPORTS" >"$TMP/c.cxr"
  local p
  for p in fp32 fp16; do
    SYNTHCXR_CUDA_GRAPHS=0 denoise -q --device cuda --precision $p --batch 2 --steps 4 "$TMP/c.cxr" >"$TMP/plain.cxr"
    SYNTHCXR_CUDA_GRAPHS=1 denoise --device cuda --precision $p --batch 2 --steps 4 "$TMP/c.cxr" \
      >"$TMP/graphs.cxr" 2>"$TMP/err"
    grep -q "CUDA graph of [0-9]* nodes captured" "$TMP/err"
    cmp "$TMP/plain.cxr" "$TMP/graphs.cxr"
  done
  run -2 --separate-stderr env SYNTHCXR_CUDA_GRAPHS=yes denoise -q --device cuda --steps 1 "$TMP/c.cxr"
  stderr_has "SYNTHCXR_CUDA_GRAPHS=yes: 1 (CUDA graphs on) or 0"
}
