#!/bin/sh
# bench/resnet50_check.sh — the full-size image encoder against torchvision:
#  1. tests/oracle/resnet50_ref.py (in the oracle venv) writes a torchvision
#     resnet50 with random weights, one random 224x224 input and torch's
#     eval-mode features, and one training step at batch 2 (features, every
#     parameter gradient, running statistics; float32 and float64) to
#     $RESNET50_DIR (default ~/.cache/synthcxr/resnet50-random, about 300 MB;
#     outside the repo, reused by later runs);
#  2. bench_resnet check: our eval-mode forward of that input, max error of the
#     features against torch's (a JSON line; exit 1 above 1e-4 of their scale),
#     and the training step against torch's (a JSON line);
#  3. bench_resnet time and resnet50_ref.py time: the training-mode forward +
#     backward at batch $RESNET_BATCH (8), $RESNET_SIZE^2 (224), median of
#     $RESNET_REPS (3) steps after a warm-up, ours and torch's in the same run
#     (RESNET_TORCH=0 skips torch's).
# JSON lines go to stdout and to bench-out/resnet50.json.
set -eu
# passive OpenMP waits: on a shared, loaded machine spinning threads steal the
# time slices of the ones doing the work (a 2-thread forward went 0.4 -> 6 s)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
dir=${RESNET50_DIR:-$HOME/.cache/synthcxr/resnet50-random}
batch=${RESNET_BATCH:-8}
size=${RESNET_SIZE:-224}
reps=${RESNET_REPS:-3}
py=$(tests/oracle/setup-venv.sh)
make -s CUDA=0 "$BUILD/bench/bench_resnet" >&2
bin="$BUILD/bench/bench_resnet"
mkdir -p bench-out
out=bench-out/resnet50.json
: > "$out"
if [ ! -f "$dir/check.safetensors" ] || [ ! -f "$dir/train.safetensors" ]; then
  "$py" tests/oracle/resnet50_ref.py write "$dir"
fi
status=0
"$bin" check "$dir" | tee -a "$out" || status=1
"$bin" time "$batch" "$size" "$reps" | tee -a "$out"
if [ "${RESNET_TORCH:-1}" != 0 ]; then
  "$py" tests/oracle/resnet50_ref.py time "$batch" "$size" "$reps" | tee -a "$out"
fi
exit $status
