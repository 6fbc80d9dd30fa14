#!/bin/bash
# bench/generation.sh — the generation lines of `make bench`: one 512² image,
# 4 PNDM steps, guidance 7.5, seed 0, through synthcxr (rep2lat | denoise |
# lat2png, --threads = all cores) and through diffusers' StableDiffusionPipeline
# on the CPU in fp32 (torch threads = all cores), in the same run, on random
# weights at the real SD 2.1-base shapes. bench/gen_bench.py (run in the oracle
# venv, tests/oracle/setup-venv.sh, outside the repo) writes that diffusers
# folder once to $BENCH_MODEL (default ~/.cache/synthcxr/bench/sd21base-random,
# about 5 GB) and later runs reuse it.
#
# Our three stages run one after another with files in between, each under
# /usr/bin/time (wall seconds including the weight load, peak RSS); the
# compute seconds of each stage come from the programs' own progress lines on
# stderr (after the load; denoise prints one per UNet call, whence each call's
# time). diffusers' come from timers wrapped around its text encoder, UNet and
# vae.decode calls; its peak RSS is GNU time's of the one process. The
# figure per CFG step is the median over the calls (the first call of each
# side is slower: fresh memory, and diffusers maps its weights lazily).
# gen_bench.py report prints the table on stderr and writes one JSON object
# per line to bench-out/generation.json.
#   BENCH_GEN=0 make bench          skip this (it takes minutes)
#   BENCH_STEPS=N BENCH_SIZE=PX     other step counts / image sizes
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
steps=${BENCH_STEPS:-4}
size=${BENCH_SIZE:-512}
guidance=7.5
seed=0
prompt="Chest radiograph: no acute cardiopulmonary process."
model=${BENCH_MODEL:-$HOME/.cache/synthcxr/bench/sd21base-random}
cores=$(nproc)

for p in rep2lat denoise lat2png; do
  [ -x "$BINDIR/$p" ] || { echo "bench: $BINDIR/$p is missing; run make bench" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time (GNU time) is missing; install the 'time' package" >&2; exit 2; }
py=$(tests/oracle/setup-venv.sh) || { echo "bench: no Python venv for the diffusers side" >&2; exit 2; }
if [ ! -f "$model/model_index.json" ]; then
  echo "bench: writing random SD 2.1-base weights to $model (once; a few minutes)" >&2
  mkdir -p "$(dirname "$model")"
  "$py" bench/gen_bench.py model "$model" sd21
fi

mkdir -p bench-out
work=$(mktemp -d bench-out/.gen.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf '{"id": "bench", "text": "%s"}\n' "$prompt" >"$work/reports.jsonl"

# stage NAME CMD...: runs CMD under GNU time; leaves $work/NAME.err (stderr)
# and $work/NAME.time ("wall_s peak_rss_kib user_s sys_s").
stage() {
  local name=$1; shift
  /usr/bin/time -f '%e %M %U %S' -o "$work/$name.time" "$@" 2>"$work/$name.err" ||
    { echo "bench: $name failed:" >&2; cat "$work/$name.err" >&2; exit 2; }
}
load=$(cut -d' ' -f1 /proc/loadavg)
echo "bench: generation $size² x $steps steps (guidance $guidance), $cores threads, load $load before" >&2
stage rep2lat "$BINDIR/rep2lat" -m "$model" --seed "$seed" --height "$size" --width "$size" \
  --threads "$cores" "$work/reports.jsonl" >"$work/c.cxr"
stage denoise "$BINDIR/denoise" --steps "$steps" --guidance "$guidance" --threads "$cores" \
  "$work/c.cxr" >"$work/d.cxr"
stage lat2png "$BINDIR/lat2png" -o "$work" --threads "$cores" "$work/d.cxr" >"$work/png.jsonl"
load_ours=$(cut -d' ' -f1 /proc/loadavg)
echo "bench: synthcxr done (load $load_ours); now diffusers" >&2
/usr/bin/time -f '%e %M %U %S' -o "$work/diffusers.time" \
  "$py" bench/gen_bench.py diffusers "$model" "$prompt" "$steps" "$guidance" "$seed" "$size" \
  "$work/diffusers.png" >"$work/diffusers.json" 2>"$work/diffusers.err" ||
  { echo "bench: diffusers failed:" >&2; cat "$work/diffusers.err" >&2; exit 2; }
load_after=$(cut -d' ' -f1 /proc/loadavg)
png=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' "$work/png.jsonl" | head -n 1)
"$py" bench/gen_bench.py compare "$png" "$work/diffusers.png" >"$work/compare.json"

cat >"$work/common.json" <<EOF
{"size": $size, "steps": $steps, "guidance": $guidance, "threads": $cores, "model": "sd21base-random",
 "load_before": $load, "load_between": $load_ours, "load_after": $load_after}
EOF
"$py" bench/gen_bench.py report "$work" bench-out/generation.json
echo "bench: wrote bench-out/generation.json" >&2
