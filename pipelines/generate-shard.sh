#!/bin/bash
# pipelines/generate-shard.sh — one shard of pipelines/generate.mk:
#   generate-shard.sh SLOT JOBS BINDIR MODEL REPORTS OUT STEPS GUIDANCE SCHEDULER SEED GPUS THREADS \
#                     [DEVICE [PRECISION [BATCH [LOCKDIR]]]]
# runs rep2lat | denoise | lat2png on records i with i mod JOBS = SLOT-1 whose
# PNG is not yet in OUT, and writes their manifest lines to
# OUT/.parts/manifest-SLOT.jsonl. It may run on another host (generate.mk's
# SSHLOGINFILE): everything it needs comes from its arguments and the shared
# filesystem, and the GPUs it counts and locks are those of the host it runs on.
#
# GPUs: GPUS is a count, or "auto" for the GPUs `nvidia-smi -L` lists on this
# host (none without nvidia-smi). With at least one and DEVICE not cpu, the
# shard takes one GPU of its host and sets CUDA_VISIBLE_DEVICES to it: the
# first free one, by an exclusive flock(1) on LOCKDIR/synthcxr-gpu<g>.<k>.lock
# held until the shard ends, trying every GPU g once (starting at (SLOT-1) mod
# GPUS) at level k = 0, then every GPU again at level 1, ... So concurrent
# shards on one host get different GPUs while there are GPUs enough, and share
# them evenly beyond that; a shard never waits for a GPU. With no GPU, nothing
# is set (a CPU host, or GPUS=0).
#
# Each program gets --threads THREADS ("auto": this host's cores, divided by
# its GPUs when it has some) and --device DEVICE (auto, cuda or cpu; default
# auto). --precision PRECISION (when not empty) and --batch BATCH go to each
# program whose --help lists the option (denoise has both; rep2lat and lat2png
# once they run on the GPU). BATCH "auto" is 8 on a GPU and 1 without one
# (batch 1 keeps the CPU's images byte for byte independent of JOBS).
set -euo pipefail
slot=$1 jobs=$2 bindir=$3 model=$4 reports=$5 out=$6 steps=$7 guidance=$8 scheduler=$9 seed=${10} gpus=${11} threads=${12}
device=${13:-auto} precision=${14:-} batch=${15:-auto} lockdir=${16:-/tmp}
say() { echo "generate-shard $slot/$jobs on $(hostname): $*" >&2; }

if [ "$gpus" = auto ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
case $gpus in '' | *[!0-9]*) say "GPUS='$gpus' is not a number or auto"; exit 1 ;; esac

# take_gpu: CUDA_VISIBLE_DEVICES = the first free GPU (see above); the lock's
# file descriptor stays open in this shell and in the pipe's programs.
take_gpu() {
  local k g i f fd
  mkdir -p "$lockdir"
  for ((k = 0; k < jobs; k++)); do
    for ((i = 0; i < gpus; i++)); do
      g=$(((slot - 1 + i) % gpus))
      f="$lockdir/synthcxr-gpu$g.$k.lock"
      (umask 0; : >>"$f") 2>/dev/null || true   # other users' shards may lock it too
      exec {fd}<"$f" || { say "cannot open the GPU lock $f"; exit 2; }
      if flock -n "$fd"; then
        export CUDA_VISIBLE_DEVICES=$g
        [ "$k" -eq 0 ] || say "every GPU of this host has a shard already; sharing GPU $g"
        return 0
      fi
      exec {fd}<&-
    done
  done
  say "no GPU lock free in $lockdir"   # more shards on this host than JOBS: cannot happen
  exit 2
}

on_gpu=0
if [ "$gpus" -gt 0 ] && [ "$device" != cpu ]; then
  take_gpu
  on_gpu=1
fi
if [ "$threads" = auto ]; then
  threads=$(nproc)
  [ "$gpus" -gt 1 ] && threads=$((threads / gpus))
  [ "$threads" -ge 1 ] || threads=1
fi
if [ "$batch" = auto ]; then
  batch=$([ $on_gpu = 1 ] && echo 8 || echo 1)
fi

# The three programs of a pipe (and the slots beside it) share the cores; an
# OpenMP thread that spins after its loop steals a core from its neighbour
# (the text encoder ran 4-9x slower that way under load). Waiting passively
# costs a microsecond a loop here, so it is the default; a user may override.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# opts PROG: the device options PROG takes (its --help says which).
opts() {
  local help
  help=$("$bindir/$1" --help 2>/dev/null || true)
  o=(--threads "$threads" --device "$device")
  [ -n "$precision" ] && [[ $help == *--precision* ]] && o+=(--precision "$precision")
  [[ $help == *--batch* ]] && o+=(--batch "$batch")
  return 0
}
opts rep2lat; o_rep=("${o[@]}")
opts denoise; o_den=("${o[@]}")
opts lat2png; o_lat=("${o[@]}")
sched=()
[ -n "$scheduler" ] && sched=(--scheduler "$scheduler")
part="$out/.parts/manifest-$slot.jsonl"
"$bindir/rep2lat" "${o_rep[@]}" -m "$model" --seed "$seed" --shard "$slot/$jobs" --skip-existing "$out" "$reports" \
  | "$bindir/denoise" -q "${o_den[@]}" "${sched[@]}" --steps "$steps" --guidance "$guidance" \
  | "$bindir/lat2png" -q "${o_lat[@]}" -o "$out" >>"$part"
