#!/usr/bin/env bats
# tests/40-rep2lat.bats — rep2lat end to end on the tiny SD 1 / SD 2 folders of
# tests/fixtures/models (tests/oracle/make_clip_text.py): the stream's ids,
# shapes and meta; the cond and uncond states equal to transformers'
# CLIPTextModel and the latents bit-equal to diffusers' prepare_latents
# (checked by tests/helpers/tensorcmp against clip_text_ref.safetensors);
# batching, seeds, --field, --negative, --clip-skip, the image size default;
# and every error path: malformed lines (exit 2, the line named, only whole
# records before it on stdout), a missing folder, weight or tokenizer, empty
# input, bad options. Every run but the device tests at the end pins
# --device cpu: the CPU is the reference (on a GPU host --device auto would
# pick the GPU, in fp16). The device tests: without a GPU, --device cuda fails
# with one clear line (exit 2) and auto falls back to the CPU's bytes; with
# one, the GPU's states against transformers' (fp32 1e-4, fp16 and bf16 at
# test_gpu_clip_text.c's bounds) and the latents the CPU's bit for bit.
load test_helper
bats_require_minimum_version 1.5.0

SD1="$FIXTURES/models/tiny-sd1"
SD2="$FIXTURES/models/tiny-sd2"
REPORTS="$ROOT/examples/reports.jsonl"
REF="$FIXTURES/clip_text_ref.safetensors"


# A copy of a model folder's text side (links resolved) that a test may break.
copy_model() {
  mkdir -p "$2"
  cp -rL "$1/model_index.json" "$1/text_encoder" "$1/tokenizer" "$2/"
}

@test "SD 1: one record per report, ids, shapes and meta" {
  run -0 --separate-stderr bash -c "rep2lat -q --device cpu --model '$SD1' --height 512 --width 512 <'$REPORTS' | cxrstream"
  assert_equal "$stderr" ""
  assert_equal "${#lines[@]}" 15
  local hdr=${lines[0]}
  [ "$(jq -r .kind <<<"$hdr")" = conditioning ]
  [ "$(jq -r .producer <<<"$hdr")" = "rep2lat 0.1.0" ]
  [ "$(jq -c .tensors <<<"$hdr")" = '{"uncond":{"dtype":"f32","shape":[77,32]}}' ]
  [ "$(jq -c '.meta | [.model, .family, .text_encoder.hidden_act, .text_encoder.num_hidden_layers, .text_encoder.pad_token_id, .clip_skip, .height, .width, .negative]' <<<"$hdr")" = \
    '["tiny-sd1","sd1","quick_gelu",3,49407,0,512,512,""]' ]
  [ "$(printf '%s\n' "${lines[@]:1}" | jq -r .id | tr '\n' ' ')" = \
    "demo01 demo02 demo03 demo04 demo05 demo06 demo07 demo08 demo09 demo10 demo11 12 demo13 demo14 " ]
  [ "$(printf '%s\n' "${lines[@]:1}" | jq -c .tensors | sort -u)" = \
    '{"cond":{"dtype":"f32","shape":[77,32]},"latents":{"dtype":"f32","shape":[4,64,64]}}' ]
  [ "$(printf '%s\n' "${lines[@]:1}" | jq -r .meta.seed | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 10 11 12 13 " ]
  # impression then findings; ___ removed; white space collapsed; text alone.
  [ "$(jq -r .meta.text <<<"${lines[1]}")" = \
    "No acute cardiopulmonary process. PA and lateral views of the chest. The lungs are clear. The cardiomediastinal silhouette is within normal limits. No pleural effusion or pneumothorax." ]
  [ "$(jq -r .meta.text <<<"${lines[4]}")" = \
    "Right lower lobe pneumonia. Focal consolidation in the right lower lobe. No pneumothorax. Dr. was notified at by phone." ]
  [ "$(jq -r .meta.text <<<"${lines[9]}")" = \
    "Bibasilar atelectasis; infection not excluded. Bibasilar opacities, most likely atelectasis. No overt edema." ]
  [ "$(jq -r .meta.text <<<"${lines[7]}")" = \
    "Hyperinflated lungs with flattened hemidiaphragms, consistent with emphysema. No focal consolidation." ]
  [ "$(jq -c '.meta | [.model, .height, .width, .clip_skip, .source.line]' <<<"${lines[12]}")" = '["tiny-sd1",512,512,0,12]' ]
}

@test "SD 1: cond and uncond equal transformers' CLIPTextModel (max abs error <= 1e-4)" {
  rep2lat -q --device cpu -m "$SD1" --height 512 --width 512 "$REPORTS" >"$TMP/s"
  run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report.{id}' <"$TMP/s"
  assert_equal "${#lines[@]}" 14
  echo "$output"
  run -0 tensorcmp --tol 1e-4 "$REF" header:uncond sd1.uncond <"$TMP/s"
  # ...and the comparison can fail: SD 2's states are not SD 1's.
  run -1 tensorcmp --tol 1e-4 "$REF" header:uncond sd2.uncond <"$TMP/s"
}

@test "SD 2 (gelu, pad \"!\", .fp16 weights without text_model.): cond and uncond equal transformers'" {
  run -0 --separate-stderr bash -c "rep2lat -q --device cpu -m '$SD2' --height 768 --width 768 --batch 5 <'$REPORTS' >'$TMP/s'"
  run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd2.report.{id}' <"$TMP/s"
  assert_equal "${#lines[@]}" 14
  run -0 tensorcmp --tol 1e-4 "$REF" header:uncond sd2.uncond <"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | head -1 | jq -c '.meta | [.family, .text_encoder.hidden_act, .text_encoder.pad_token_id, .text_encoder.hidden_size]'"
  assert_output '["sd2","gelu",0,16]'
  run -0 bash -c "cxrstream <'$TMP/s' | sed -n 2p | jq -c .tensors"
  assert_output '{"cond":{"dtype":"f32","shape":[77,16]},"latents":{"dtype":"f32","shape":[4,96,96]}}'
}

@test "latents equal diffusers' prepare_latents bit for bit (seeds 0, 1, 42; 512 and 768)" {
  head -2 "$REPORTS" >"$TMP/two.jsonl"
  head -1 "$REPORTS" | rep2lat -q --device cpu -m "$SD1" --height 512 --width 512 --seed 42 >"$TMP/s42one"
  run -0 tensorcmp "$REF" latents latents.s42.512 <"$TMP/s42one"
  for side in 512 768; do
    # seeds 0 and 1 (records 1 and 2 from --seed 0), then 42
    rep2lat -q --device cpu -m "$SD1" --height $side --width $side --seed 0 "$TMP/two.jsonl" >"$TMP/s"
    run -0 tensorcmp --head 256 "$REF" latents "latents.s{seed}.$side.head" <"$TMP/s"
    assert_equal "${#lines[@]}" 2
    head -1 "$REPORTS" | rep2lat -q --device cpu -m "$SD1" --height $side --width $side --seed 42 >"$TMP/s"
    run -0 tensorcmp --head 256 "$REF" latents "latents.s{seed}.$side.head" <"$TMP/s"
  done
  # A record's own "seed" wins over --seed; record i still gets --seed + i.
  printf '%s\n' '{"id": "a", "text": "x", "seed": 1}' '{"id": "b", "text": "y"}' \
    | rep2lat -q --device cpu -m "$SD1" --height 768 --width 768 --seed 0 >"$TMP/s"
  run -0 tensorcmp --head 256 "$REF" latents "latents.s{seed}.768.head" <"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | jq -r '.meta.seed // empty' | tr '\n' ' '"
  assert_output "1 1 "
  # The noise is a function of the seed alone, and differs between seeds.
  run -1 tensorcmp --head 256 "$REF" latents "latents.s1.512.head" <"$TMP/s42one"
}

@test "--precision fp16 / bf16: latents drawn in that dtype as diffusers does, weights rounded" {
  for pair in f16:fp16 bf16:bf16; do
    local pr=${pair%:*}
    head -1 "$REPORTS" | rep2lat -q --device cpu -m "$SD1" --height 512 --width 512 --seed 42 --precision "${pair#*:}" >"$TMP/s"
    run -0 tensorcmp --head 256 "$REF" latents "latents.$pr.s42.512.head" <"$TMP/s"
    run -1 tensorcmp --head 256 "$REF" latents "latents.s42.512.head" <"$TMP/s"
    # The tiny model's weights are float16 already: fp16 leaves the states as
    # they are; bf16 rounds the weights further, and the states move.
    if [ $pr = f16 ]; then
      run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report.{id}' <"$TMP/s"
    else
      run -1 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report.{id}' <"$TMP/s"
      run -0 tensorcmp --tol 0.1 "$REF" cond 'sd1.report.{id}' <"$TMP/s"
    fi
  done
  run -0 bash -c "cxrstream <'$TMP/s' | head -1 | jq -r .meta.precision"
  assert_output bf16
}

@test "--batch changes nothing but the speed (the streams are byte for byte the same)" {
  rep2lat -q --device cpu -m "$SD1" --height 64 --width 64 --batch 1 "$REPORTS" >"$TMP/b1"
  rep2lat -q --device cpu -m "$SD1" --height 64 --width 64 --batch 4 "$REPORTS" >"$TMP/b4"
  rep2lat -q --device cpu -m "$SD1" --height 64 --width 64 --batch 1024 "$REPORTS" >"$TMP/b1024"
  for b in b1 b4 b1024; do
    run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report.{id}' <"$TMP/$b"
  done
  cmp "$TMP/b1" "$TMP/b4"
  cmp "$TMP/b1" "$TMP/b1024"
}

@test "--clip-skip 1 and --negative match diffusers (no clip skip for the negative prompt)" {
  rep2lat -q --device cpu -m "$SD1" --height 64 --width 64 --clip-skip 1 --negative "lateral view, text, blurry" \
    "$REPORTS" >"$TMP/s"
  run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report_skip1.{id}' <"$TMP/s"
  run -0 tensorcmp --tol 1e-4 "$REF" header:uncond sd1.negative <"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | head -1 | jq -c '.meta | [.clip_skip, .negative]'"
  assert_output '[1,"lateral view, text, blurry"]'
  run -2 --separate-stderr rep2lat --device cpu -m "$SD1" --height 64 --width 64 --clip-skip 4 </dev/null
  assert_output ""
  stderr_has "--clip-skip 4: the text encoder of $SD1/ has 3 layers"
}

@test "--field takes another key; a record without it is skipped with a warning" {
  printf '%s\n' '{"id": "a", "note": "Small left ___ effusion."}' '{"id": "b", "text": "x"}' \
    | rep2lat --device cpu -m "$SD1" --height 64 --width 64 --field note -q >"$TMP/s" 2>"$TMP/err"
  run -0 bash -c "cxrstream <'$TMP/s' | jq -c '[.id, .meta.text] | select(.[0])'"
  assert_output '["a","Small left effusion."]'
  run -0 cat "$TMP/err"
  assert_output 'rep2lat: warning: stdin: line 2: report "b" is empty in field note; skipped'
}

@test "image size: unet sample_size x VAE scale by default, else an error asking for --height/--width" {
  copy_model "$SD1" "$TMP/m"
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/m" </dev/null
  assert_output ""
  stderr_has "rep2lat: $TMP/m/: no unet/config.json to take the image size from; give --height and --width"
  mkdir -p "$TMP/m/unet" "$TMP/m/vae"
  # A VAE with 3 blocks scales by 4: 24 x 4 = 96 pixels, latent 96 / 4 = 24.
  echo '{"sample_size": 24, "in_channels": 4, "cross_attention_dim": 32}' >"$TMP/m/unet/config.json"
  echo '{"block_out_channels": [8, 16, 16]}' >"$TMP/m/vae/config.json"
  head -1 "$REPORTS" | rep2lat -q --device cpu -m "$TMP/m" >"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | sed -n 2p | jq -c '[.tensors.latents.shape, .meta.height, .meta.width]'"
  assert_output '[[4,24,24],96,96]'
  head -1 "$REPORTS" | rep2lat -q --device cpu -m "$TMP/m" --width 64 >"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | sed -n 2p | jq -c '[.tensors.latents.shape, .meta.height, .meta.width]'"
  assert_output '[[4,24,16],96,64]'
  # Without vae/config.json the scale is 8, as diffusers has it.
  rm "$TMP/m/vae/config.json"
  head -1 "$REPORTS" | rep2lat -q --device cpu -m "$TMP/m" >"$TMP/s"
  run -0 bash -c "cxrstream <'$TMP/s' | sed -n 2p | jq -c '[.tensors.latents.shape, .meta.height]'"
  assert_output '[[4,24,24],192]'
  # A unet made for another text encoder is refused.
  echo '{"sample_size": 24, "cross_attention_dim": 768}' >"$TMP/m/unet/config.json"
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/m" </dev/null
  stderr_has "cross_attention_dim is 768 but the text encoder's hidden_size is 32"
}

@test "empty input: the header alone, exit 0; blank lines are no reports" {
  run -0 --separate-stderr bash -c "rep2lat -q --device cpu -m '$SD1' --height 64 --width 64 </dev/null | cxrstream"
  assert_equal "${#lines[@]}" 1
  [ "$(jq -r .kind <<<"${lines[0]}")" = conditioning ]
  run -0 --separate-stderr bash -c "printf '\n  \n' | rep2lat -q --device cpu -m '$SD1' --height 64 --width 64 | cxrstream"
  assert_equal "${#lines[@]}" 1
  assert_equal "$stderr" ""
}

@test "an empty report is skipped with a warning naming its line" {
  printf '%s\n' '{"id": "a", "text": "Clear lungs."}' '{"id": "e", "findings": "  ___ ", "impression": ""}' \
    '{"id": "c", "text": "No effusion."}' >"$TMP/in.jsonl"
  run -0 --separate-stderr bash -c "rep2lat -q --device cpu -m '$SD1' --height 64 --width 64 '$TMP/in.jsonl' | cxrstream"
  assert_equal "$stderr" "rep2lat: warning: $TMP/in.jsonl: line 2: report \"e\" is empty; skipped"
  [ "$(printf '%s\n' "${lines[@]:1}" | jq -r .id | tr '\n' ' ')" = "a c " ]
  [ "$(printf '%s\n' "${lines[@]:1}" | jq -r .meta.seed | tr '\n' ' ')" = "0 1 " ]
}

# bad_line LINE TEXT: a five-line input whose line 3 is LINE exits 2 naming
# line 3 and TEXT; stdout is a valid stream of exactly the two records before
# it, whatever the batch size.
bad_line() {
  printf '%s\n' '{"id": "r1", "text": "Clear lungs."}' '{"id": "r2", "text": "No effusion."}' "$1" \
    '{"id": "r4", "text": "Cardiomegaly."}' '{"id": "r5", "text": "Edema."}' >"$TMP/in.jsonl"
  local b
  for b in 1 2 4; do
    run -2 --separate-stderr bash -c "rep2lat -q --device cpu -m '$SD1' --height 64 --width 64 --batch $b '$TMP/in.jsonl' >'$TMP/out'"
    stderr_has "rep2lat: $TMP/in.jsonl: line 3: $2"
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    run -0 bash -c "cxrstream --check <'$TMP/out' && cxrstream <'$TMP/out' | jq -r '.id // \"header\"' | tr '\n' ' '"
    assert_output "header r1 r2 "
  done
}

@test "malformed JSON: exit 2, the line named, the records before it whole on stdout" {
  bad_line '{"id": "r3", "text": "broken' "malformed JSON at column"
}

@test "a line that is not an object, or a text that is not a string, is an error" {
  bad_line '["r3", "text"]' "a report must be a JSON object"
  bad_line '{"id": "r3", "text": 5}' '"text" is not a string'
  bad_line '{"id": "r3", "findings": ["a"]}' '"findings" is not a string'
  bad_line '{"id": "", "text": "x"}' '"id" must be a non-empty string or an integer'
  bad_line '{"id": "r3", "text": "x", "seed": -1}' '"seed" must be an integer'
}

@test "a missing model folder, text encoder weight or tokenizer: exit 2, nothing on stdout" {
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/nope" --height 64 --width 64 </dev/null
  assert_output ""
  stderr_has "rep2lat: $TMP/nope/: no such model folder"

  copy_model "$SD1" "$TMP/m"
  rm "$TMP/m/text_encoder/model.safetensors"
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/m" --height 64 --width 64 </dev/null
  assert_output ""
  stderr_has "no text_encoder weights"

  rm -rf "$TMP/m" && copy_model "$SD1" "$TMP/m"
  # Rename one tensor in the safetensors header (same length: offsets stay valid).
  perl -0pi -e 's/text_model\.encoder\.layers\.2\.mlp\.fc2\.bias/text_model.encoder.layers.2.mlp.fc2.xias/' \
    "$TMP/m/text_encoder/model.safetensors"
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/m" --height 64 --width 64 </dev/null
  assert_output ""
  stderr_has "rep2lat: $TMP/m/text_encoder/model.safetensors: missing tensor \"text_model.encoder.layers.2.mlp.fc2.bias\""

  rm -rf "$TMP/m" && copy_model "$SD1" "$TMP/m"
  rm "$TMP/m/tokenizer/merges.txt"
  run -2 --separate-stderr rep2lat --device cpu -m "$TMP/m" --height 64 --width 64 </dev/null
  assert_output ""
  stderr_has "merges.txt"

  run -2 --separate-stderr rep2lat --device cpu -m "$SD1" --height 64 --width 64 "$TMP/no-such.jsonl"
  assert_output ""
  stderr_has "rep2lat: $TMP/no-such.jsonl: No such file or directory"
}

@test "bad command lines: exit 1, nothing on stdout" {
  run -1 --separate-stderr rep2lat --device cpu -m "$SD1" --no-such-option </dev/null
  assert_output ""
  stderr_has "no-such-option"
  run -1 --separate-stderr rep2lat --height 64 </dev/null
  assert_output ""
  stderr_has "--model DIR is required"
  run -1 --separate-stderr rep2lat --device cpu -m "$SD1" --height 60 </dev/null
  assert_output ""
  stderr_has "--height: 60 is not a multiple of 8"
}

@test "progress on stderr without -q; nothing with it" {
  run -0 --separate-stderr bash -c "rep2lat -m '$SD1' --height 64 --width 64 --device cpu '$REPORTS' >/dev/null"
  stderr_has "rep2lat: text encoder: 14 report in "
  run -0 --separate-stderr bash -c "rep2lat -q --device cpu -m '$SD1' --height 64 --width 64 '$REPORTS' >/dev/null"
  assert_equal "$stderr" ""
}

# ---- --device, --precision, --batch ------------------------------------------

# These tests describe a machine where no GPU answers (as tests/55-denoise-device.bats).
no_gpu_here() {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then skip "a GPU answers here"; fi
}
# These need the GPU text encoder: skipped only when --device cuda itself is
# refused (no GPU, or a build without CUDA); any other failure is the test's.
need_gpu() {
  local err
  err=$(rep2lat -q --device cuda -m "$SD1" --height 64 --width 64 </dev/null 2>&1 >/dev/null) && return 0
  local why=${err#rep2lat: --device cuda: }
  [[ $why == "no GPU"* ]] || why="no GPU ($why)"
  if [[ $err == "rep2lat: --device cuda: "* ]]; then skip "$why"; fi
}

@test "--device cuda without a GPU: exit 2, one line saying why, nothing on stdout" {
  no_gpu_here
  run -2 --separate-stderr rep2lat -m "$SD1" --height 64 --width 64 --device cuda "$REPORTS"
  [ -z "$output" ]
  [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
  [[ $stderr == "rep2lat: --device cuda: "* ]]
  [[ $stderr == *"no GPU"* || $stderr == *"built without CUDA"* ]]
}

@test "--device auto without a GPU: the CPU in fp32, with a note, and the CPU's bytes" {
  no_gpu_here
  rep2lat -m "$SD1" --height 64 --width 64 --device auto "$REPORTS" >"$TMP/auto" 2>"$TMP/err"
  grep -q "^rep2lat: device: cpu (auto; " "$TMP/err"
  grep -qx "rep2lat: text encoder: cpu fp32, batch 1" "$TMP/err"
  rep2lat -q -m "$SD1" --height 64 --width 64 --device cpu "$REPORTS" >"$TMP/cpu"
  cmp "$TMP/auto" "$TMP/cpu"
  run -0 bash -c "cxrstream <'$TMP/auto' | head -1 | jq -r .meta.precision"
  assert_output fp32
  run -1 --separate-stderr rep2lat -m "$SD1" --precision fp64 </dev/null
  assert_output ""
  stderr_has "--precision: 'fp64' is not one of fp32, fp16, bf16"
}

@test "GPU fp32: cond and uncond within 1e-4 of transformers, latents the CPU's bit for bit, any --batch" {
  need_gpu
  rep2lat -m "$SD1" --height 512 --width 512 --device cuda --precision fp32 "$REPORTS" >"$TMP/g" 2>"$TMP/err"
  grep -qx "rep2lat: text encoder: cuda fp32, batch 1" "$TMP/err"
  run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd1.report.{id}' <"$TMP/g"
  echo "$output"
  assert_equal "${#lines[@]}" 14
  run -0 tensorcmp --tol 1e-4 "$REF" header:uncond sd1.uncond <"$TMP/g"
  rep2lat -q -m "$SD1" --height 512 --width 512 --device cpu "$REPORTS" >"$TMP/c"
  run -0 cmplat "$TMP/g" "$TMP/c" 0
  for b in 4 1024; do
    rep2lat -q -m "$SD2" --height 64 --width 64 --device cuda --precision fp32 --batch $b --clip-skip 1 \
      "$REPORTS" >"$TMP/g"
    run -0 tensorcmp --tol 1e-4 "$REF" cond 'sd2.report_skip1.{id}' <"$TMP/g"
    run -0 tensorcmp --tol 1e-4 "$REF" header:uncond sd2.uncond <"$TMP/g"
  done
}

@test "GPU fp16 (the default there) and bf16: states within their bounds, latents those of the CPU at that precision" {
  need_gpu
  rep2lat -m "$SD1" --height 512 --width 512 --device cuda --batch 3 "$REPORTS" >"$TMP/g" 2>"$TMP/err"
  grep -qx "rep2lat: text encoder: cuda fp16, batch 3" "$TMP/err"
  run -0 bash -c "cxrstream <'$TMP/g' | head -1 | jq -r .meta.precision"
  assert_output fp16
  # test_gpu_clip_text.c's bounds, 7e-3 (fp16) and 7e-2 (bf16) of the states'
  # scale (4 for tiny-sd1), as absolute errors
  run -0 tensorcmp --tol 0.03 "$REF" cond 'sd1.report.{id}' <"$TMP/g"
  echo "$output"
  run -0 tensorcmp --tol 0.03 "$REF" header:uncond sd1.uncond <"$TMP/g"
  # the latents are drawn on the host, in the precision's type, whatever the device
  rep2lat -q -m "$SD1" --height 512 --width 512 --device cpu --precision fp16 "$REPORTS" >"$TMP/c"
  run -0 cmplat "$TMP/g" "$TMP/c" 0
  head -1 "$REPORTS" | rep2lat -q -m "$SD1" --height 512 --width 512 --seed 42 --device cuda >"$TMP/g"
  run -0 tensorcmp --head 256 "$REF" latents "latents.f16.s42.512.head" <"$TMP/g"
  # bf16: the weights' rounding (within 0.1 on the CPU, above) and the storage's (0.28)
  rep2lat -q -m "$SD1" --height 512 --width 512 --device cuda --precision bf16 "$REPORTS" >"$TMP/g"
  run -0 tensorcmp --tol 0.4 "$REF" cond 'sd1.report.{id}' <"$TMP/g"
  echo "$output"
  rep2lat -q -m "$SD1" --height 512 --width 512 --device cpu --precision bf16 "$REPORTS" >"$TMP/c"
  run -0 cmplat "$TMP/g" "$TMP/c" 0
}
