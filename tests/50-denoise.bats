#!/usr/bin/env bats
# tests/50-denoise.bats — denoise(1) as a user meets it: the tiny SD1 UNet and
# its published PNDM scheduler config, conditioning streams from
# tests/helpers/mkcond (the layout rep2lat writes), the final latents compared
# with diffusers' StableDiffusionPipeline on the same stream
# (tests/oracle/make_denoise.py, via tests/helpers/cmplat), --batch keeping
# order, provenance in meta, and every bad input of issue #4 item 6 (a stream
# from another tool, latents that do not fit the UNet, text states of the
# wrong width, a missing weight): exit 2 with one message naming the record.
# Every run pins --device cpu: these compare with the CPU reference at its
# tolerance (on a GPU host, auto would pick the GPU in fp16; 55-denoise-device.bats
# tests the GPU).
load test_helper


# A model folder: the tiny SD1 UNet and scheduler with a model_index.json.
setup() {
  M="$TMP/model"
  mkdir -p "$M"
  ln -sf "$FIXTURES/models/tiny-sd1/unet" "$M/unet"
  ln -sf "$FIXTURES/models/tiny-sd1/scheduler" "$M/scheduler"
  cat >"$M/model_index.json" <<'EOF'
{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
 "scheduler": ["diffusers", "PNDMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"]}
EOF
}

# bad TEXT... (after `run`): exit 2 and one stderr line containing every TEXT.
bad() {
  [ "$status" -eq 2 ] || { echo "status $status; stderr: $stderr" >&2; return 1; }
  [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ] || { echo "stderr: $stderr" >&2; return 1; }
  [[ $stderr == "denoise: "* ]] || { echo "stderr: $stderr" >&2; return 1; }
  local t
  for t in "$@"; do stderr_has "$t"; done
}

@test "default scheduler (the model's PNDM), batch 2: equal to the diffusers pipeline" {
  mkcond -n 3 >"$TMP/c.cxr"
  denoise --device cpu -m "$M" --steps 10 --batch 2 "$TMP/c.cxr" >"$TMP/o.cxr" 2>"$TMP/err"
  grep -q "PNDMScheduler, 11 UNet calls per record (10 steps), guidance 7.5, batch 2" "$TMP/err"
  grep -q "records 1-2: 11/11 step" "$TMP/err"
  run -0 cmplat "$TMP/o.cxr" "$FIXTURES/denoise_ref.safetensors" mkcond.pndm 1e-3
  echo "$output"
}

@test "model_index.json's scheduler class wins over scheduler_config.json's, as diffusers loads a folder" {
  # The same PNDM config file under a model_index that names DDIM: the default run
  # is the DDIM run, byte for byte, and the class says so on stderr.
  sed -i 's/PNDMScheduler/DDIMScheduler/' "$M/model_index.json"
  mkcond -n 2 >"$TMP/c.cxr"
  denoise --device cpu -m "$M" --threads 1 --steps 4 "$TMP/c.cxr" >"$TMP/default.cxr" 2>"$TMP/err"
  grep -q "DDIMScheduler, 4 UNet calls per record" "$TMP/err"
  denoise --device cpu -q -m "$M" --threads 1 --steps 4 --scheduler ddim "$TMP/c.cxr" >"$TMP/ddim.cxr"
  cmp "$TMP/default.cxr" "$TMP/ddim.cxr"
  denoise --device cpu -q -m "$M" --threads 1 --steps 4 --scheduler pndm "$TMP/c.cxr" >"$TMP/pndm.cxr"
  ! cmp -s "$TMP/default.cxr" "$TMP/pndm.cxr"
  sed -i 's/DDIMScheduler/KarrasVeScheduler/' "$M/model_index.json"
  run -2 --separate-stderr denoise --device cpu -q -m "$M" --steps 4 "$TMP/c.cxr"
  bad "model_index.json: scheduler class KarrasVeScheduler is not built"
}

@test "Euler ancestral: the record's generator continues after the initial noise, as in diffusers" {
  mkcond -n 3 | denoise --device cpu -q -m "$M" --steps 10 --batch 3 --scheduler euler_a >"$TMP/o.cxr"
  run -0 cmplat "$TMP/o.cxr" "$FIXTURES/denoise_ref.safetensors" mkcond.euler_a 1e-3
  echo "$output"
}

@test "--batch 1 and --batch 2 give the same records in the same order, with provenance in meta" {
  mkcond -n 3 >"$TMP/c.cxr"
  denoise --device cpu -q -m "$M" --steps 4 --scheduler dpmpp_2m --batch 1 "$TMP/c.cxr" >"$TMP/b1.cxr"
  denoise --device cpu -q -m "$M" --steps 4 --scheduler dpmpp_2m --batch 2 "$TMP/c.cxr" >"$TMP/b2.cxr"
  run -0 cmplat "$TMP/b1.cxr" "$TMP/b2.cxr" 1e-3
  run -0 cxrstream "$TMP/b2.cxr"
  assert_equal "${#lines[@]}" 4
  [[ ${lines[0]} == *'"kind":"latents","producer":"denoise 0.1.0"'* ]]
  assert_line --index 1 '{"index":1,"id":"r1","meta":{"seed":7,"model":"tiny","text":"No acute cardiopulmonary process.","scheduler":"dpmpp_2m","steps":4,"guidance":7.5},"tensors":{"latents":{"dtype":"f32","shape":[4,8,8]}}}'
  [[ ${lines[2]} == '{"index":2,"id":"r2","meta":{"seed":8,'* ]]
  [[ ${lines[3]} == '{"index":3,"id":"r3","meta":{"seed":9,'* ]]
}

@test "records of different sizes in one stream: batches split, order kept" {
  mkcond -n 3 -x | denoise --device cpu -q -m "$M" --steps 2 --batch 3 --scheduler ddim >"$TMP/o.cxr"
  run -0 cxrstream "$TMP/o.cxr"
  [[ ${lines[1]} == *'"id":"r1"'*'"shape":[4,8,8]'* ]]
  [[ ${lines[2]} == *'"id":"r2"'*'"shape":[4,16,8]'* ]]
  [[ ${lines[3]} == *'"id":"r3"'*'"shape":[4,8,8]'* ]]
}

@test "the model folder named in the stream's header is the default" {
  mkcond -n 1 -m "$M" | denoise --device cpu -q --steps 2 >"$TMP/o.cxr"
  run -0 cxrstream --check "$TMP/o.cxr"
}

@test "guidance 1 runs without the unconditional states" {
  mkcond -n 1 -u | denoise --device cpu -q -m "$M" --steps 2 --guidance 1 >"$TMP/o.cxr"
  run -0 cxrstream "$TMP/o.cxr"
  [[ ${lines[1]} == *'"guidance":1.0'* ]]
}

@test "empty input: a header-only latents stream, exit 0" {
  run -0 --separate-stderr bash -c ': | denoise --device cpu -q -m /nonexistent | cxrstream'
  [[ $output == *'"kind":"latents"'* ]]
}

@test "a stream from another tool: exit 2" {
  mkcond -n 1 -k latents >"$TMP/s"
  run -2 --separate-stderr denoise --device cpu -q -m "$M" "$TMP/s"
  bad "expected a conditioning stream (from rep2lat), got latents"
}

@test "latents with the wrong channel count: exit 2 naming the record" {
  run -2 --separate-stderr bash -c "mkcond -n 2 -C 3 | denoise --device cpu -q -m '$M'"
  bad 'record 1 (id "r1")' "latents are [3, 8, 8]" "takes 4 channels"
}

@test "latents whose sides the UNet cannot halve: exit 2 naming the record" {
  run -2 --separate-stderr bash -c "mkcond -n 2 -H 7 | denoise --device cpu -q -m '$M'"
  bad 'record 1 (id "r1")' "multiples of 2"
}

@test "text states whose width is not cross_attention_dim: exit 2" {
  run -2 --separate-stderr bash -c "mkcond -n 1 -D 48 | denoise --device cpu -q -m '$M' --guidance 1"
  bad 'record 1 (id "r1")' "cond is [77, 48]" "width 32 (cross_attention_dim)"
  run -2 --separate-stderr bash -c "mkcond -n 1 -D 48 | denoise --device cpu -q -m '$M'"
  bad "header" "uncond is [77, 48]" "cross_attention_dim"
}

@test "guidance without the unconditional states: exit 2" {
  run -2 --separate-stderr bash -c "mkcond -n 1 -u | denoise --device cpu -q -m '$M'"
  bad 'no "uncond" tensor'
}

@test "a missing UNet weight: exit 2 naming the file and the tensor" {
  M2="$TMP/m2"
  mkdir -p "$M2/unet"
  cp "$M/model_index.json" "$M2/"
  ln -s "$FIXTURES/models/tiny-sd1/scheduler" "$M2/scheduler"
  ln -s "$FIXTURES/models/tiny-sd1/unet/diffusion_pytorch_model.safetensors" "$M2/unet/"
  sed 's/"layers_per_block": 1/"layers_per_block": 2/' "$FIXTURES/models/tiny-sd1/unet/config.json" >"$M2/unet/config.json"
  run -2 --separate-stderr bash -c "mkcond -n 1 | denoise --device cpu -q -m '$M2'"
  bad "diffusion_pytorch_model.safetensors" 'missing tensor "down_blocks.0.resnets.1.norm1.weight"'
}

@test "no model folder given or named: exit 2" {
  run -2 --separate-stderr bash -c "mkcond -n 1 | denoise --device cpu -q"
  bad 'names the model "tiny", which is not a folder here' "--model DIR"
}

@test "a scheduler option that is not built: exit 2 naming the file and key" {
  M3="$TMP/m3"
  mkdir -p "$M3/scheduler"
  sed 's/PNDMScheduler/EulerDiscreteScheduler/' "$M/model_index.json" >"$M3/model_index.json"
  ln -s "$FIXTURES/models/tiny-sd1/unet" "$M3/unet"
  printf '{"_class_name": "EulerDiscreteScheduler", "use_exponential_sigmas": true}\n' >"$M3/scheduler/scheduler_config.json"
  run -2 --separate-stderr bash -c "mkcond -n 1 | denoise --device cpu -q -m '$M3'"
  bad "scheduler_config.json" "use_exponential_sigmas true is not supported"
}
