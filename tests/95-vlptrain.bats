#!/usr/bin/env bats
# tests/95-vlptrain.bats — vlptrain --method convirt as a user runs it, on
# synthetic pairs streams (mkpairs) with the tiny BERT fixture and a tiny
# ResNet: JSON lines on stdout, checkpoint names, bit-exact resume (a run
# stopped and resumed logs the same losses and writes the same files as one
# that ran straight), shards from globs and stdin, and bad input.
load test_helper
bats_require_minimum_version 1.5.0

ARCH='{"layers":[1,1,1,1],"stem_width":8,"planes":4}'
tiny() {
  echo --text-model "$FIXTURES/models/tiny-bert" \
       --proj-hidden 32 --embed-dim 16 --crop 64 --val-fraction 0.2 --log-every 1 -q
}

setup() {
  mkpairs 24 72 24 1 >"$TMP/p0.cxs"
  mkpairs 16 72 24 2 >"$TMP/p1.cxs"
}

@test "vlptrain --help, --version and usage errors" {
  run -0 --separate-stderr vlptrain --help
  assert_line --index 0 --regexp '^Usage: vlptrain '
  assert_line --partial '--stop-after N'
  run -0 vlptrain --version
  run -1 --separate-stderr vlptrain -o x.st "$TMP/p0.cxs"
  stderr_has "--text-model"
  assert_output ""
  run -1 --separate-stderr vlptrain --text-model d -o x --lr 1e-3 --min-lr 1e-2
  stderr_has "--min-lr"
}

@test "vlptrain: JSON lines per step and validation, checkpoint with torch names" {
  run -0 --separate-stderr vlptrain $(tiny) --image-arch "$ARCH" \
    --batch 8 --steps 6 --seed 3 -o "$TMP/ck.st" "$TMP/p0.cxs" "$TMP/p1.cxs"
  [ "$(grep -c '"step":' <<<"$output")" = 8 ]   # 6 steps, 2 validations (epoch end, end)
  assert_line --index 0 --regexp '^\{"step":1,"epoch":0,"loss":[0-9.e+-]+,"lr":1e-08,"grad_norm":[0-9.e+-]+,"samples_per_s":[0-9.e+-]+\}$'
  assert_line --index 7 --regexp '^\{"val":true,"step":6,.*"n_val":8,"val_loss":[0-9.]+,"i2t_r1":.*"t2i_r10":[0-9.]+,"chance_r10":1\}$'
  [ -s "$TMP/ck.st" ] && [ -s "$TMP/ck.st.state.safetensors" ]
  hdr=$(head -c 200000 "$TMP/ck.st" | strings | head -50)   # the safetensors JSON header
  [[ $hdr == *'image_encoder.layer4.0.downsample.1.running_var'* ]]
  [[ $hdr == *'text_encoder.encoder.layer.1.output.LayerNorm.weight'* ]]
  [[ $hdr == *'image_projection.head.3.weight'* && $hdr == *'text_projection.head.4.running_mean'* ]]
  [[ $hdr == *'"method":"convirt"'* ]]
  [[ $hdr != *'image_encoder.fc.'* ]]
}

@test "vlptrain --resume continues bit-exactly (stopped mid-epoch, with accumulation and clipping)" {
  args="$(tiny) --batch 4 --accum 2 --clip 1 --epochs 2 --seed 5"
  run -0 vlptrain $args --image-arch "$ARCH" -o "$TMP/a.st" "$TMP/p0.cxs" "$TMP/p1.cxs"
  straight=$(sed 's/,"samples_per_s".*//' <<<"$output")
  run -0 vlptrain $args --image-arch "$ARCH" -o "$TMP/b.st" --stop-after 3 "$TMP/p0.cxs" "$TMP/p1.cxs"
  first=$(sed 's/,"samples_per_s".*//' <<<"$output")
  [ "$(wc -l <<<"$first")" = 3 ]
  run -0 vlptrain $args --image-arch "$ARCH" -o "$TMP/b.st" --resume "$TMP/b.st" "$TMP/p0.cxs" "$TMP/p1.cxs"
  rest=$(sed 's/,"samples_per_s".*//' <<<"$output")
  assert_equal "$first"$'\n'"$rest" "$straight"
  cmp "$TMP/a.st" "$TMP/b.st"
  cmp "$TMP/a.st.state.safetensors" "$TMP/b.st.state.safetensors"
}

@test "vlptrain: shards from a glob and from stdin give the same run" {
  run -0 vlptrain $(tiny) --image-arch "$ARCH" --batch 4 --steps 2 -o "$TMP/g.st" "$TMP/p*.cxs"
  glob=$(sed 's/,"samples_per_s".*//' <<<"$output")
  run -0 vlptrain $(tiny) --image-arch "$ARCH" --batch 4 --steps 2 -o "$TMP/s.st" - "$TMP/p1.cxs" <"$TMP/p0.cxs"
  assert_equal "$(sed 's/,"samples_per_s".*//' <<<"$output")" "$glob"
}

@test "vlptrain: bad input fails with status 2 and nothing on stdout" {
  mkstream valid >"$TMP/other.cxs"
  run -2 --separate-stderr vlptrain $(tiny) --image-arch "$ARCH" -o "$TMP/x.st" "$TMP/other.cxs"
  stderr_has "pairs"
  assert_output ""
  run -2 --separate-stderr vlptrain $(tiny) --image-arch "$ARCH" -o "$TMP/x.st" "$TMP/none-*.cxs"
  stderr_has "no file matches"
  run -2 --separate-stderr vlptrain $(tiny) --image-arch "$ARCH" --batch 64 -o "$TMP/x.st" "$TMP/p0.cxs"
  stderr_has "fewer than --batch"
  [ ! -e "$TMP/x.st" ]
}

@test "vlptrain: killed (SIGKILL) at a random step, resumed from its last checkpoint, goes on bit-exactly" {
  args="$(tiny) --batch 4 --steps 14 --seed 9 --save-every 1"
  run -0 vlptrain $args --image-arch "$ARCH" -o "$TMP/a.st" "$TMP/p0.cxs" "$TMP/p1.cxs"
  straight=$(sed 's/,"samples_per_s".*//' <<<"$output")
  # kill it once a checkpoint of step 3 or later exists (the exact step varies)
  vlptrain $args --image-arch "$ARCH" -o "$TMP/b.st" "$TMP/p0.cxs" "$TMP/p1.cxs" >"$TMP/b1.log" 2>/dev/null &
  pid=$!
  for _ in $(seq 600); do
    [ -s "$TMP/b1.log" ] && [ "$(grep -c '"step"' "$TMP/b1.log")" -ge 3 ] && break
    sleep 0.05
  done
  kill -9 "$pid"; wait "$pid" || true
  [ -e "$TMP/b.st" ] || skip "the run finished before it could be killed"
  run -0 vlptrain $args --image-arch "$ARCH" -o "$TMP/b.st" --resume "$TMP/b.st" "$TMP/p0.cxs" "$TMP/p1.cxs"
  # the training lines (a validation line may open the resumed run at an epoch's end)
  rest=$(grep -v '"val":true' <<<"$output" | sed 's/,"samples_per_s".*//')
  straight=$(grep -v '"val":true' <<<"$straight")
  first=$(head -1 <<<"$rest" | sed -E 's/^\{"step":([0-9]+),.*/\1/')
  [ "$first" -ge 3 ] && [ "$first" -le 14 ]
  # the resumed lines are exactly the straight run's from that step on
  assert_equal "$rest" "$(awk -v s="$first" 'match($0, /"step":[0-9]+/) { n = substr($0, RSTART + 7, RLENGTH - 7) + 0; if (n >= s) print }' <<<"$straight")"
  cmp "$TMP/a.st" "$TMP/b.st"
}
