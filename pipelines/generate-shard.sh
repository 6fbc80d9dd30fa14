#!/bin/bash
# pipelines/generate-shard.sh — one job slot of pipelines/generate.mk:
#   generate-shard.sh SLOT JOBS BINDIR MODEL REPORTS OUT STEPS GUIDANCE SCHEDULER SEED GPUS THREADS
# runs rep2lat | denoise | lat2png on records i with i mod JOBS = SLOT-1 whose
# PNG is not yet in OUT, and writes their manifest lines to
# OUT/.parts/manifest-SLOT.jsonl. With GPUS > 0, slot s sees one GPU,
# CUDA_VISIBLE_DEVICES = (s-1) mod GPUS; with 0 (a CPU machine) nothing is set.
# Each program gets --threads THREADS.
set -euo pipefail
slot=$1 jobs=$2 bindir=$3 model=$4 reports=$5 out=$6 steps=$7 guidance=$8 scheduler=$9 seed=${10} gpus=${11} threads=${12}
if [ "$gpus" -gt 0 ]; then export CUDA_VISIBLE_DEVICES=$(( (slot - 1) % gpus )); fi
# The three programs of a pipe (and the slots beside it) share the cores; an
# OpenMP thread that spins after its loop steals a core from its neighbour
# (the text encoder ran 4-9x slower that way under load). Waiting passively
# costs a microsecond a loop here, so it is the default; a user may override.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
sched=()
[ -n "$scheduler" ] && sched=(--scheduler "$scheduler")
part="$out/.parts/manifest-$slot.jsonl"
"$bindir/rep2lat" --threads "$threads" -m "$model" --seed "$seed" --shard "$slot/$jobs" --skip-existing "$out" "$reports" \
  | "$bindir/denoise" -q --threads "$threads" "${sched[@]}" --steps "$steps" --guidance "$guidance" \
  | "$bindir/lat2png" -q --threads "$threads" -o "$out" >>"$part"
