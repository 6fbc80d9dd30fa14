#!/bin/bash
# tools/gpu-check.sh — `make gpu-check`: everything a GPU host can tell in one
# command, within 8 minutes. Builds the CUDA build in build/gpu, runs
# `check-gpu` (every CUDA op against its CPU twin, the tiny pipeline on the GPU
# against the CPU, tests/*-gpu.bats; REQUIRE_GPU=1, so a skip is
# a failure), the cuBLAS figures (bench/bench_gpu) and the two sides of the
# generation benchmark: diffusers' fp16 + SDPA UNet (bench/gpu_diffusers.py)
# and synthcxr's fp16 UNet on the same random weights (bench/bench_gpu_unet),
# at the SD 2.1-base and SD 1.5 shapes, and writes
#   $OUT/gpu-check.log    everything printed
#   $OUT/gpu-check.json   the figures: device, per-stage status and seconds,
#                         check-gpu counts, cuBLAS (all of bench_gpu's lines),
#                         diffusers and synthcxr results (plain passes and with
#                         CUDA graphs), synthcxr/diffusers ratios (both ways),
#                         and per conv shape im2col vs implicit GEMM
# (OUT defaults to gpu-check-out/). The host needs nvcc and python3 with
# PyTorch; it may reach nothing outside: tools/gpu-prep.sh, run beforehand on
# a machine with network, fills .debs/ (build dependencies, unpacked into a
# private root here, never over /) and .whl/ (diffusers), which travel with
# the working tree. Exit status: 0 when every stage passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
log="$OUT/gpu-check.log"
: >"$log"
exec > >(tee -a "$log") 2>&1
t_start=$(date +%s)
jobs=$(nproc)
stages="$OUT/.stages"
: >"$stages"
say() { echo "gpu-check: $*"; }

# stage NAME LIMIT_S CMD...: runs CMD under timeout, records status and seconds.
stage() {
  local name=$1 limit=$2 t0 rc
  shift 2
  say "== $name (limit ${limit} s)"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  printf '%s %s %s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$stages"
  say "== $name: exit $rc after $(($(date +%s) - t0)) s"
  return $rc
}

say "started $(date -u +%FT%TZ) on $(hostname), $jobs cores"
stage nvidia-smi 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv

# Build dependencies: the host's own when they compile, else .debs/ unpacked.
blas_inc=/usr/include/x86_64-linux-gnu/openblas-openmp
blas_lib=/usr/lib/x86_64-linux-gnu/openblas-openmp
probe='#include <cblas.h>
#include <msgpack.h>
#include <jansson.h>
#include <png.h>
#include <stdio.h>
#include <jpeglib.h>
int main(void) { return 0; }'
if [ "${GPU_CHECK_FORCE_DEBS:-0}" = 1 ] || ! printf '%s\n' "$probe" | cc -x c - -I"$blas_inc" -o /tmp/gpu-check-probe 2>/dev/null; then
  if [ -d .debs ]; then
    root=/tmp/synthcxr-deps
    rm -rf "$root" && mkdir -p "$root"
    for f in .debs/*.deb; do dpkg-deb -x "$f" "$root" 2>/dev/null || dpkg -x "$f" "$root"; done
    blas_inc=$root$blas_inc
    blas_lib=$root$blas_lib
    export CPATH="$root/usr/include:$root/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$blas_lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$blas_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "build dependencies from .debs/ unpacked into $root"
  else
    say "build dependencies are missing and there is no .debs/ (run tools/gpu-prep.sh where there is network)"
  fi
fi

mk=(make --no-print-directory CUDA=1 BUILD=build/gpu BINDIR=build/gpu/bin BLAS_INC="$blas_inc" BLAS_LIB="$blas_lib")
stage build 300 "${mk[@]}" -j"$jobs" tests build/gpu/bench/bench_gpu build/gpu/bench/bench_gpu_unet
built=$?

counts=""
if [ $built = 0 ]; then
  stage check-gpu 180 env BUILD=build/gpu BINDIR=build/gpu/bin REQUIRE_GPU=1 tests/run.sh --gpu |
    tee "$OUT/.check-gpu"
  counts=$(grep -Eo '[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?' "$OUT/.check-gpu" | tail -1)
  stage cublas 90 build/gpu/bench/bench_gpu --reps 20 | tee "$OUT/.cublas.jsonl"
fi

# The diffusers side: the host's python3 holds PyTorch; diffusers may travel as a wheel.
if ! python3 -c 'import diffusers' 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# diffusers times its fp16 UNets and saves them; synthcxr then times the same weights.
unets=/tmp/synthcxr-gpu-unets
left=$((470 - ($(date +%s) - t_start)))
if [ $left -gt 60 ]; then
  stage diffusers $((left * 6 / 10)) env PYTHONUNBUFFERED=1 python3 bench/gpu_diffusers.py --save-dir "$unets" |
    tee "$OUT/.diffusers.jsonl"
else
  say "no time left for the diffusers benchmark ($left s)"
fi
for kind in sd21 sd15; do
  left=$((470 - ($(date +%s) - t_start)))
  if [ $built = 0 ] && [ -f "$unets/$kind/config.json" ] && [ $left -gt 30 ]; then
    stage "synthcxr-$kind" "$left" build/gpu/bench/bench_gpu_unet "$unets/$kind" "$kind" | tee -a "$OUT/.synthcxr.jsonl"
  fi
done

python3 - "$OUT" "$counts" <<'PY'
import json, os, sys, time
out, counts = sys.argv[1], sys.argv[2]
def lines(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    r = []
    for l in open(p):
        l = l.strip()
        if l.startswith("{"):
            try:
                r.append(json.loads(l))
            except ValueError:
                pass
    return r
stages = {}
for l in open(os.path.join(out, ".stages")):
    n, rc, s = l.split()
    stages[n] = {"exit": int(rc), "seconds": int(s)}
c = {}
if counts:
    for part in counts.split(", "):
        v, k = part.split()
        c[k] = int(v)
res = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": stages, "check_gpu": c,
       "cublas": lines(".cublas.jsonl"), "diffusers": lines(".diffusers.jsonl"),
       "synthcxr": lines(".synthcxr.jsonl")}
# the goal figures of issue 6: synthcxr over diffusers on the same UNet, same run
ratios = []
for d in res["diffusers"]:
    for y in res["synthcxr"]:  # not c: that is check-gpu's counts, read below
        if d.get("model") and d.get("model") == y.get("model"):
            r = {"model": d["model"],
                 "b1_it_per_s_ratio": y["b1_it_per_s"] / d["b1_it_per_s"],
                 "b16_images_per_s_ratio": y["b16_images_per_s_50steps"] / d["b16_images_per_s_50steps"]}
            if "b1_it_per_s_graphs" in y:   # the same with CUDA graphs (SYNTHCXR_CUDA_GRAPHS=1)
                r["b1_it_per_s_ratio_graphs"] = y["b1_it_per_s_graphs"] / d["b1_it_per_s"]
                r["b16_images_per_s_ratio_graphs"] = y["b16_images_per_s_50steps_graphs"] / d["b16_images_per_s_50steps"]
            ratios.append(r)
res["ratios"] = ratios
# conv2d: im2col + cuBLAS against the implicit GEMM per shape (bench_gpu), to pick conv2d_cuda_set_impl's default
conv = {}
for r in res["cublas"]:
    k = r.get("kernel", "")
    if k.startswith("conv2d_") and "impl" in r:
        key = (r.get("model"), r.get("shape"), k.split("_")[-1])
        conv.setdefault(key, {})[r["impl"]] = r
res["conv"] = [{"model": m, "shape": sh, "dtype": dt, "im2col_ms": v[1]["ms_median"], "igemm_ms": v[2]["ms_median"],
                "igemm_speedup": v[1]["ms_median"] / v[2]["ms_median"],
                "igemm_rel_diff": v[2].get("rel_diff_vs_im2col")}
               for (m, sh, dt), v in conv.items() if 1 in v and 2 in v]
ok = all(s["exit"] == 0 for s in stages.values()) and c.get("failed", 1) == 0 and c.get("passed", 0) > 0
res["passed"] = ok
with open(os.path.join(out, "gpu-check.json"), "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps(res, indent=1))
sys.exit(0 if ok else 1)
PY
rc=$?
rm -f "$OUT"/.stages "$OUT"/.check-gpu "$OUT"/.cublas.jsonl "$OUT"/.diffusers.jsonl "$OUT"/.synthcxr.jsonl
say "done in $(($(date +%s) - t_start)) s: $([ $rc = 0 ] && echo PASSED || echo FAILED); $OUT/gpu-check.json"
exit $rc
