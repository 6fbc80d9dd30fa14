#!/bin/sh
# bench/run.sh — `make bench`: runs the kernel benchmarks in $BUILD/bench and
# sets each figure against this machine's float32 peak,
#   cores x 2 FMA units x 8 floats x 2 flops x clock,
# (clock: cpuinfo_max_freq if the kernel exposes it, else "cpu MHz" of
# /proc/cpuinfo, which on a VM is the nominal clock; boost can lift a ratio
# above 1). Prints a table on stderr and writes one JSON object per line,
# each with peak_gflops and ratio (of the median), to bench-out/kernels.json.
#   BENCH_ARGS="--reps 11" make bench      more repetitions
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
bin="$BUILD/bench/bench_kernels"
[ -x "$bin" ] || { echo "bench: $bin is missing; run make bench" >&2; exit 2; }

cores=$(nproc)
if [ -r /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq ]; then
  mhz=$(awk '{ printf "%.1f", $1 / 1000 }' /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq)
  clock_src=cpuinfo_max_freq
else
  mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
  clock_src="/proc/cpuinfo cpu MHz"
fi
[ -n "$mhz" ] || { echo "bench: cannot find the CPU clock" >&2; exit 2; }
peak=$(awk -v c="$cores" -v m="$mhz" 'BEGIN { printf "%.1f", c * 2 * 8 * 2 * m / 1000 }')
model=$(awk -F: '/^model name/ { sub(/^ /, "", $2); print $2; exit }' /proc/cpuinfo)

mkdir -p bench-out
out=bench-out/kernels.json
tmp=$(mktemp bench-out/.kernels.XXXXXX)
trap 'rm -f "$tmp"' EXIT
echo "bench: $model, $cores cores at $mhz MHz ($clock_src): peak $peak GFLOP/s (cores x 2 FMA x 8 floats x 2 x clock)" >&2
# The text encoder bench (bench_clip_text: rep2lat's reports/s) takes no BENCH_ARGS.
# shellcheck disable=SC2086
{ "$bin" ${BENCH_ARGS:-}; [ ! -x "$BUILD/bench/bench_clip_text" ] || "$BUILD/bench/bench_clip_text"; } |
while IFS= read -r line; do
  # Append peak, clock and ratio to each object; print a readable row.
  g=$(printf '%s\n' "$line" | sed -n 's/.*"gflops_median":\([0-9.]*\).*/\1/p')
  gb=$(printf '%s\n' "$line" | sed -n 's/.*"gflops_best":\([0-9.]*\).*/\1/p')
  k=$(printf '%s\n' "$line" | sed -n 's/.*"kernel":"\([^"]*\)".*/\1/p')
  s=$(printf '%s\n' "$line" | sed -n 's/.*"shape":"\([^"]*\)".*/\1/p')
  ratio=$(awk -v g="$g" -v p="$peak" 'BEGIN { printf "%.3f", g / p }')
  printf '%s,"cores":%s,"clock_mhz":%s,"peak_gflops":%s,"ratio":%s}\n' "${line%\}}" "$cores" "$mhz" "$peak" "$ratio" >>"$tmp"
  printf 'bench: %-16s %-34s %8.1f GFLOP/s median (best %.1f) = %5.1f %% of peak %s\n' \
    "$k" "$s" "$g" "$gb" "$(awk -v r="$ratio" 'BEGIN { print r * 100 }')" "$peak" >&2
done
mv "$tmp" "$out"
trap - EXIT
echo "bench: wrote $out" >&2
