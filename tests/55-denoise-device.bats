#!/usr/bin/env bats
# tests/55-denoise-device.bats — denoise(1)'s --device, --precision and
# --batch as met on a machine without a GPU (the GPU side is checked by
# tests/unit/test_gpu_unet.c under make check-gpu): --device cuda fails with
# one clear line (exit 2), --device auto falls back to the CPU with a note and
# the CPU's bytes, --precision is validated (only fp32 on the CPU), and
# --batch B gives batch 1's latents on the CPU, guidance doubling included.
load test_helper

setup() {
  M="$TMP/model"
  mkdir -p "$M"
  ln -sf "$FIXTURES/models/tiny-sd1/unet" "$M/unet"
  ln -sf "$FIXTURES/models/tiny-sd1/scheduler" "$M/scheduler"
  cat >"$M/model_index.json" <<'JSON'
{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
 "scheduler": ["diffusers", "PNDMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"]}
JSON
  mkcond -n 3 >"$TMP/c.cxr"
}

# These tests describe a machine where no GPU answers.
no_gpu_here() {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then skip "a GPU answers here"; fi
}

@test "--device cuda without a GPU: exit 2 and one line saying why" {
  no_gpu_here
  run -2 --separate-stderr denoise -m "$M" --steps 2 --device cuda "$TMP/c.cxr"
  [ -z "$output" ]
  [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
  [[ $stderr == "denoise: --device cuda: "* ]]
  [[ $stderr == *"no GPU"* || $stderr == *"built without CUDA"* ]]
}

@test "--device auto without a GPU: the CPU, with a note, and the CPU's bytes" {
  no_gpu_here
  denoise -m "$M" --steps 2 --device auto "$TMP/c.cxr" >"$TMP/auto.cxr" 2>"$TMP/err"
  grep -q "^denoise: device: cpu (auto; " "$TMP/err"
  grep -q "batch 1, cpu fp32$" "$TMP/err"
  denoise -q -m "$M" --steps 2 --device cpu "$TMP/c.cxr" >"$TMP/cpu.cxr"
  cmp "$TMP/auto.cxr" "$TMP/cpu.cxr"
}

@test "--precision: fp32, fp16 or bf16; the CPU computes fp32 only" {
  no_gpu_here
  run -1 --separate-stderr denoise -m "$M" --precision fp64 "$TMP/c.cxr"
  stderr_has "--precision: 'fp64' is not one of fp32, fp16, bf16"
  run -2 --separate-stderr denoise -m "$M" --device cpu --precision fp16 "$TMP/c.cxr"
  stderr_has "--precision fp16 is not built on the CPU (fp32 is the reference there)"
  run -2 --separate-stderr denoise -m "$M" --precision bf16 "$TMP/c.cxr"
  stderr_has "--precision bf16 is not built on the CPU"
  stderr_has "no GPU answered --device auto"
  denoise -q -m "$M" --steps 2 --device cpu --precision fp32 "$TMP/c.cxr" >"$TMP/p.cxr"
  denoise -q -m "$M" --steps 2 --device cpu "$TMP/c.cxr" >"$TMP/d.cxr"
  cmp "$TMP/p.cxr" "$TMP/d.cxr"
}

@test "--batch 3 and 4 (more than the records) give batch 1's latents on the CPU, with and without guidance" {
  for g in 7.5 1; do
    denoise -q -m "$M" --device cpu --steps 3 --guidance $g --batch 1 "$TMP/c.cxr" >"$TMP/b1.cxr"
    for b in 3 4; do
      denoise -q -m "$M" --device cpu --steps 3 --guidance $g --batch $b "$TMP/c.cxr" >"$TMP/b.cxr"
      # OpenBLAS blocks GEMMs by their shape: equal to float rounding, not bit for bit
      run -0 cmplat "$TMP/b.cxr" "$TMP/b1.cxr" 1e-4
      echo "guidance $g batch $b: $output"
    done
  done
}
