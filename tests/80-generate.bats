#!/usr/bin/env bats
# tests/80-generate.bats — the whole generation chain and its pipeline:
#  - end to end: rep2lat | denoise | lat2png on three example reports gives,
#    for the tiny SD1- and SD2-like models and every scheduler, the pixels of
#    diffusers' StableDiffusionPipeline.from_pretrained on the same folder,
#    prompts, seeds, steps and guidance (tests/oracle/make_e2e.py);
#  - pipelines/generate.mk: JOBS does not change the images, one manifest line
#    per record, a re-run makes only the missing PNGs;
#  - generate.mk across hosts: an SSHLOGINFILE of local hosts (':' and
#    '2/:') gives the images of a plain run;
#  - the shard script's GPU choice (a fake nvidia-smi listing 2 GPUs, fake
#    programs that record CUDA_VISIBLE_DEVICES and their options): concurrent
#    shards get different GPUs, and share them evenly when there are more;
#  - rep2lat --shard and --skip-existing, which the pipeline is built on.
load test_helper

REF="$FIXTURES/e2e_ref.safetensors"
REPORTS="$FIXTURES/e2e_reports.jsonl"

# pixels_match PNG TENSOR: within 1/255 on >= 99.9 % of the samples (issue 5's
# bound; pngref fails on any sample off by more than 1).
pixels_match() {
  run -0 pngref cmp "$1" "$REF" "$2" 1
  echo "# $2: $output" >&3
  [[ $output =~ samples\ ([0-9]+)\ differ\ ([0-9]+) ]]
  [ $((BASH_REMATCH[2] * 1000)) -le "${BASH_REMATCH[1]}" ]
}

# e2e MODEL SCHEDULER: the chain as a user runs it, 5 steps, guidance 7.5,
# seeds 42, 43, 44 (rep2lat --seed 42), against the pipeline's images (and its
# final latents, which say where a difference starts).
e2e() {
  local m=$1 s=$2 id
  rep2lat -q --device cpu --seed 42 -m "$FIXTURES/models/$m" "$REPORTS" \
    | denoise -q --device cpu --scheduler "$s" --steps 5 --guidance 7.5 | tee "$TMP/final.cxr" \
    | lat2png -q --device cpu -o "$TMP/png" >"$TMP/manifest.jsonl"
  # the final latents too, within denoise's bound (denoise(1), STATUS)
  run -0 cmplat "$TMP/final.cxr" "$REF" "$m.$s.latents" 1e-3
  echo "# latents: $output" >&3
  run -0 wc -l <"$TMP/manifest.jsonl"
  assert_output 3
  for id in demo06 demo07 demo11; do
    pixels_match "$TMP/png/$id.png" "$m.$s.$id.rgb8"
  done
}

@test "end to end, tiny-sd1, PNDM: the pipeline's images" { e2e tiny-sd1 pndm; }
@test "end to end, tiny-sd1, DDIM: the pipeline's images" { e2e tiny-sd1 ddim; }
@test "end to end, tiny-sd1, Euler: the pipeline's images" { e2e tiny-sd1 euler; }
@test "end to end, tiny-sd1, Euler ancestral: the pipeline's images" { e2e tiny-sd1 euler_a; }
@test "end to end, tiny-sd1, DPM-Solver++ 2M: the pipeline's images" { e2e tiny-sd1 dpmpp_2m; }
@test "end to end, tiny-sd2, PNDM: the pipeline's images" { e2e tiny-sd2 pndm; }
@test "end to end, tiny-sd2, DDIM: the pipeline's images" { e2e tiny-sd2 ddim; }
@test "end to end, tiny-sd2, Euler: the pipeline's images" { e2e tiny-sd2 euler; }
@test "end to end, tiny-sd2, Euler ancestral: the pipeline's images" { e2e tiny-sd2 euler_a; }
@test "end to end, tiny-sd2, DPM-Solver++ 2M: the pipeline's images" { e2e tiny-sd2 dpmpp_2m; }

@test "the comparison tells schedulers and seeds apart" {
  rep2lat -q --device cpu --seed 42 -m "$FIXTURES/models/tiny-sd1" "$REPORTS" \
    | denoise -q --device cpu --scheduler euler --steps 5 | lat2png -q --device cpu -o "$TMP/png" >/dev/null
  run -1 pngref cmp "$TMP/png/demo06.png" "$REF" tiny-sd1.euler_a.demo06.rgb8 1
  run -1 pngref cmp "$TMP/png/demo06.png" "$REF" tiny-sd1.euler.demo07.rgb8 1
  rm -r "$TMP/png"
  rep2lat -q --device cpu --seed 43 -m "$FIXTURES/models/tiny-sd1" "$REPORTS" \
    | denoise -q --device cpu --scheduler euler --steps 5 | lat2png -q --device cpu -o "$TMP/png" >/dev/null
  run -1 pngref cmp "$TMP/png/demo06.png" "$REF" tiny-sd1.euler.demo06.rgb8 1
}

# gen OUT JOBS [make variables]: pipelines/generate.mk on the example reports.
gen() {
  local out=$1 jobs=$2; shift 2
  make --no-print-directory -C "$ROOT" -f pipelines/generate.mk BINDIR="$BINDIR" \
    MODEL="$FIXTURES/models/tiny-sd1" REPORTS="$ROOT/examples/reports.jsonl" OUT="$out" JOBS="$jobs" \
    STEPS=3 SCHEDULER=euler_a SEED=5 GPUS=0 DEVICE=cpu "$@"
}

@test "generate.mk: two jobs give the PNG bytes of one job; one manifest line per record" {
  run -0 --separate-stderr gen "$TMP/one" 1
  run -0 --separate-stderr gen "$TMP/two" 2
  [[ $stderr == *"14 PNG files in $TMP/two/, manifest $TMP/two/manifest.jsonl"* ]]
  run ls "$TMP/one"
  assert_equal "${#lines[@]}" 15   # 14 PNGs and manifest.jsonl
  local f
  for f in "$TMP"/one/*.png; do cmp "$f" "$TMP/two/${f##*/}"; done
  # each record of the reports once, in their order, with its PNG
  run -0 jq -r .id "$TMP/two/manifest.jsonl"
  assert_output "$(printf 'demo%02d\n' 1 2 3 4 5 6 7 8 9 10 11; echo 12; printf 'demo%02d\n' 13 14)"
  run -0 jq -r '"\(.seed) \(.scheduler) \(.steps)"' "$TMP/two/manifest.jsonl"
  assert_line --index 0 "5 euler_a 3"
  assert_line --index 13 "18 euler_a 3"
  for f in $(jq -r .path "$TMP/two/manifest.jsonl"); do [ -f "$f" ]; done
  diff <(sed "s#$TMP/one#D#" "$TMP/one/manifest.jsonl") <(sed "s#$TMP/two#D#" "$TMP/two/manifest.jsonl")
  run ls -A "$TMP/two/.parts"
  assert_output ""
}

@test "generate.mk: a re-run makes only the PNG that is missing, and the manifest keeps every record once" {
  run -0 --separate-stderr gen "$TMP/g" 2
  cp "$TMP/g/demo05.png" "$TMP/demo05.before"
  touch -d '2000-01-01' "$TMP"/g/*.png
  rm "$TMP/g/demo05.png"
  run -0 --separate-stderr gen "$TMP/g" 2
  echo "$stderr"
  # 13 of 14 skipped across the two slots (7 + 6)
  [[ $stderr == *"rep2lat: 6 report(s) skipped: their PNG is in $TMP/g"* ]]
  [[ $stderr == *"rep2lat: 7 report(s) skipped: their PNG is in $TMP/g"* ]]
  run find "$TMP/g" -name '*.png' -newer "$TMP/demo05.before"
  assert_output "$TMP/g/demo05.png"
  cmp "$TMP/demo05.before" "$TMP/g/demo05.png"
  run -0 jq -r .id "$TMP/g/manifest.jsonl"
  assert_equal "${#lines[@]}" 14
  run -0 sort -u < <(jq -r .id "$TMP/g/manifest.jsonl")
  assert_equal "${#lines[@]}" 14
  # nothing missing: a third run makes nothing and keeps the manifest
  cp "$TMP/g/manifest.jsonl" "$TMP/m.before"
  touch -d '2000-01-01' "$TMP"/g/*.png
  run -0 --separate-stderr gen "$TMP/g" 2
  run find "$TMP/g" -name '*.png' -newermt '2000-01-02'
  assert_output ""
  cmp "$TMP/m.before" "$TMP/g/manifest.jsonl"
}

@test "generate.mk: SSHLOGINFILE of local hosts (':', '2/:') gives the PNG bytes and manifest of a plain run" {
  run -0 --separate-stderr gen "$TMP/plain" 1
  printf ':\n' >"$TMP/hosts1"
  printf '2/:\n' >"$TMP/hosts2"
  run -0 --separate-stderr gen "$TMP/h1" 3 SSHLOGINFILE="$TMP/hosts1" HOSTJOBS=1
  [[ $stderr == *"14 PNG files in $TMP/h1/"* ]]
  run -0 --separate-stderr gen "$TMP/h2" 3 SSHLOGINFILE="$TMP/hosts2"
  [[ $stderr == *"14 PNG files in $TMP/h2/"* ]]
  local f d
  for d in h1 h2; do
    for f in "$TMP"/plain/*.png; do cmp "$f" "$TMP/$d/${f##*/}"; done
    diff <(sed "s#$TMP/plain#D#" "$TMP/plain/manifest.jsonl") <(sed "s#$TMP/$d#D#" "$TMP/$d/manifest.jsonl")
  done
  # relative paths mean the same in the job's directory (--workdir); the
  # PNGs' text names the model as given, so only the pixels are the same
  run -0 --separate-stderr make --no-print-directory -C "$ROOT" -f pipelines/generate.mk BINDIR="$BINDIR" \
    MODEL="tests/fixtures/models/tiny-sd1" REPORTS="examples/reports.jsonl" OUT="$TMP/h3" JOBS=2 \
    STEPS=3 SCHEDULER=euler_a SEED=5 GPUS=0 DEVICE=cpu SSHLOGINFILE="${TMP#"$ROOT"/}/hosts2"
  [[ $stderr == *"14 PNG files in $TMP/h3/"* ]]
  run --separate-stderr gen "$TMP/h4" 2 SSHLOGINFILE="$TMP/nohosts"
  [ "$status" -ne 0 ]
  stderr_has "SSHLOGINFILE=$TMP/nohosts: no such file"
}

# fake_gpu_host: a PATH with an nvidia-smi that lists 2 GPUs and a BINDIR of
# programs that append "prog CUDA_VISIBLE_DEVICES options" to $TMP/calls and
# hold their GPU 2 s (so shards started together overlap); rep2lat and denoise list
# --precision and --batch in --help, lat2png neither (a program without them).
fake_gpu_host() {
  mkdir -p "$TMP/fake/bin" "$TMP/fake/path" "$TMP/locks"
  cat >"$TMP/fake/path/nvidia-smi" <<'SH'
#!/bin/sh
[ "$1" = -L ] || exit 9
echo "GPU 0: NVIDIA H200 (UUID: GPU-0000)"
echo "GPU 1: NVIDIA H200 (UUID: GPU-1111)"
SH
  chmod +x "$TMP/fake/path/nvidia-smi"
  local p
  for p in rep2lat denoise lat2png; do
    cat >"$TMP/fake/bin/$p" <<SH
#!/bin/bash
if [ "\$1" = --help ]; then
  [ $p = lat2png ] || echo "  --precision P  --batch B"
  exit 0
fi
echo "$p \${CUDA_VISIBLE_DEVICES-unset} \$*" >>"$TMP/calls"
cat >/dev/null
sleep 2
SH
    chmod +x "$TMP/fake/bin/$p"
  done
}

# shard SLOT JOBS GPUS [DEVICE [PRECISION [BATCH]]]: one shard on the fake host
shard() {
  PATH="$TMP/fake/path:$PATH" "$ROOT/pipelines/generate-shard.sh" "$1" "$2" "$TMP/fake/bin" M R "$TMP/out" 3 7.5 "" 5 \
    "$3" 1 "${4:-auto}" "${5:-}" "${6:-auto}" "$TMP/locks"
}

@test "generate-shard.sh: concurrent shards take different GPUs of their host (flock), and share them evenly beyond" {
  fake_gpu_host
  mkdir -p "$TMP/out/.parts"
  # two shards at once whose slots would both map to GPU 0 by slot number (1 and 3 of 4, 2 GPUs)
  shard 1 4 auto & shard 3 4 auto & wait
  run -0 sort -u < <(awk '$1 == "denoise" {print $2}' "$TMP/calls")
  assert_output "$(printf '0\n1')"
  # the same through generate.mk (GPUS=auto counts the fake nvidia-smi's 2 GPUs)
  rm "$TMP/calls"
  run -0 --separate-stderr env PATH="$TMP/fake/path:$PATH" make --no-print-directory -C "$ROOT" -f pipelines/generate.mk \
    BINDIR="$TMP/fake/bin" MODEL="$TMP" REPORTS="$ROOT/examples/reports.jsonl" OUT="$TMP/out2" JOBS=2 \
    GPU_LOCKDIR="$TMP/locks"
  run -0 sort < <(awk '$1 == "rep2lat" {print $2}' "$TMP/calls")
  assert_output "$(printf '0\n1')"
  # four shards on two GPUs: each GPU twice, never three times
  rm "$TMP/calls"
  shard 1 4 auto 2>"$TMP/e1" & shard 2 4 auto 2>"$TMP/e2" & shard 3 4 auto 2>"$TMP/e3" & shard 4 4 auto 2>"$TMP/e4" &
  wait
  run -0 sort < <(awk '$1 == "lat2png" {print $2}' "$TMP/calls")
  assert_output "$(printf '0\n0\n1\n1')"
  run -0 cat "$TMP"/e?
  [ "$(grep -c "every GPU of this host has a shard already; sharing GPU" <<<"$output")" -eq 2 ]
  # GPUS=0, or --device cpu: nothing set, batch 1
  rm "$TMP/calls"
  shard 1 2 0
  shard 2 2 auto cpu
  run -0 awk '{print $2}' "$TMP/calls"
  assert_output "$(printf 'unset\n%.0s' 1 2 3 4 5 6)"
  grep -q -- "denoise unset -q --threads 1 --device cpu --precision" "$TMP/calls" && return 1
  grep -q -- "^denoise unset -q --threads 1 --device auto --batch 1 " "$TMP/calls"
}

@test "generate-shard.sh: the device options each program gets (--device, --precision and --batch where --help lists them)" {
  fake_gpu_host
  mkdir -p "$TMP/out/.parts"
  shard 2 2 auto cuda fp32
  run -0 sort < <(cut -d' ' -f1-2 "$TMP/calls")   # the pipe's three run at once: any order
  assert_output "$(printf 'denoise 1\nlat2png 1\nrep2lat 1')"
  grep -q -- "^rep2lat 1 --threads 1 --device cuda --precision fp32 --batch 8 -m M --seed 5 --shard 2/2 --skip-existing $TMP/out R$" "$TMP/calls"
  grep -q -- "^denoise 1 -q --threads 1 --device cuda --precision fp32 --batch 8 --steps 3 --guidance 7.5$" "$TMP/calls"
  grep -q -- "^lat2png 1 -q --threads 1 --device cuda -o $TMP/out$" "$TMP/calls"
  rm "$TMP/calls"
  shard 1 1 2 auto "" 4
  grep -q -- "^denoise 0 -q --threads 1 --device auto --batch 4 --steps 3" "$TMP/calls"
  run -1 --separate-stderr shard 1 1 two
  stderr_has "GPUS='two' is not a number or auto"
}

@test "generate.mk: without MODEL it says so and exits non-zero" {
  run --separate-stderr make --no-print-directory -C "$ROOT" -f pipelines/generate.mk OUT="$TMP/x"
  [ "$status" -ne 0 ]
  [[ $stderr == *"set MODEL=DIR"* ]]
}

@test "rep2lat --shard K/N: the records of the whole run, with their ids and seeds" {
  local m="$FIXTURES/models/tiny-sd1"
  rep2lat -q --device cpu --seed 3 -m "$m" "$ROOT/examples/reports.jsonl" >"$TMP/all.cxr"
  rep2lat -q --device cpu --seed 3 -m "$m" --shard 2/3 "$ROOT/examples/reports.jsonl" >"$TMP/s2.cxr"
  run -0 cxrstream "$TMP/s2.cxr"
  assert_equal "${#lines[@]}" 6     # header + records 1, 4, 7, 10, 13 (0-based)
  [[ ${lines[1]} == *'"id":"demo02"'*'"seed":4,'* ]]
  [[ ${lines[3]} == *'"id":"demo08"'*'"seed":10,'* ]]
  [[ ${lines[5]} == *'"id":"demo14"'*'"seed":16,'* ]]
  run -1 --separate-stderr rep2lat -m "$m" --shard 4/3 "$ROOT/examples/reports.jsonl"
  assert_output ""
  run -1 --separate-stderr rep2lat -m "$m" --shard 3 "$ROOT/examples/reports.jsonl"
  [[ $stderr == "rep2lat: --shard: '3' is not K/N"* ]]
}

@test "rep2lat --skip-existing DIR: looks for lat2png's file name of each id, made for that id" {
  local m="$FIXTURES/models/tiny-sd1"
  printf '%s\n' '{"id": "a b/c", "text": "x"}' '{"id": "a b", "text": "y"}' >"$TMP/r.jsonl"
  cat "$ROOT/examples/reports.jsonl" "$TMP/r.jsonl" >"$TMP/all.jsonl"
  # real images for demo03, "a b/c" and 12 (the report without an id, line 12)
  { sed -n 3p "$ROOT/examples/reports.jsonl"; sed -n 1p "$TMP/r.jsonl"; } >"$TMP/some.jsonl"
  rep2lat -q --device cpu -m "$m" "$TMP/some.jsonl" | denoise -q --device cpu --steps 1 | lat2png -q --device cpu -o "$TMP/d" >/dev/null
  rep2lat -q --device cpu -m "$m" "$ROOT/examples/reports.jsonl" | denoise -q --device cpu --steps 1 | lat2png -q --device cpu -o "$TMP/e" >/dev/null
  mv "$TMP/e/12.png" "$TMP/d/12.png"
  touch "$TMP/d/demo04"
  run -0 ls "$TMP/d"
  assert_output "$(printf '%s\n' 12.png a_b_c.png demo03.png demo04)"
  run -0 --separate-stderr rep2lat --skip-existing "$TMP/d" -m "$m" "$TMP/all.jsonl"
  [[ $stderr == *"rep2lat: 3 report(s) skipped: their PNG is in $TMP/d"* ]]
  rep2lat -q --device cpu --skip-existing "$TMP/d" -m "$m" "$TMP/all.jsonl" >"$TMP/s.cxr"
  run -0 cxrstream "$TMP/s.cxr"
  assert_equal "${#lines[@]}" 14    # header + 16 - 3 records
  refute_output --partial '"id":"demo03"'
  refute_output --partial '"id":"12"'
  refute_output --partial '"id":"a b/c"'
  assert_output --partial '"id":"demo04"'
  assert_output --partial '"id":"a b"'
  [[ ${lines[13]} == *'"id":"a b"'*'"seed":15,'* ]]
  # a_b.png made for another id ("a_b") is not the image of "a b": an error
  echo '{"id": "a_b", "text": "z"}' | rep2lat -q --device cpu -m "$m" | denoise -q --device cpu --steps 1 | lat2png -q --device cpu -o "$TMP/d" >/dev/null
  run -2 --separate-stderr rep2lat -q --device cpu --skip-existing "$TMP/d" -m "$m" "$TMP/r.jsonl"
  [[ $stderr == "rep2lat: $TMP/r.jsonl: line 2: the PNG of id \"a b\", $TMP/d/a_b.png, was made for id \"a_b\"" ]]
  # a file that is not a PNG
  echo x >"$TMP/d/a_b.png"
  run -2 --separate-stderr rep2lat -q --device cpu --skip-existing "$TMP/d" -m "$m" "$TMP/r.jsonl"
  [[ $stderr == *"$TMP/d/a_b.png"* ]]
}
