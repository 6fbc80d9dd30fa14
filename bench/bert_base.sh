#!/bin/sh
# bench/bert_base.sh — full-size BERT-base check and timing (opt-in; neither
# make check nor make bench runs it: it writes 440 MB of random weights).
#   1. bench/bert_base.py (torch, in the oracle venv) writes a random BERT-base
#      HF folder with reference.safetensors to $BERT_BASE_DIR
#      (default ~/.cache/synthcxr/bert-base-random) and times torch's 6-layer
#      forward + backward at batch 8, T = 112;
#   2. bench_bert --check compares the C forward (and a few gradients) with it;
#   3. bench_bert times the C 6-layer forward + backward at the same shape.
# JSON lines on stdout, readable figures on stderr.
# OpenMP threads wait passively unless OMP_WAIT_POLICY says otherwise: on a
# shared, busy machine spinning waits inflate both sides' times.
set -eu
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
dir=${BERT_BASE_DIR:-$HOME/.cache/synthcxr/bert-base-random}
py=$(tests/oracle/setup-venv.sh)
make -s CUDA=0 "$BUILD/bench/bench_bert" >&2
"$py" bench/bert_base.py "$dir"
"$BUILD/bench/bench_bert" --check "$dir"
"$BUILD/bench/bench_bert" --layers 6 --batch 8 --seq 112
