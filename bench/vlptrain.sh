#!/bin/bash
# bench/vlptrain.sh — the pre-training lines of `make bench`: training
# samples/s of one ConVIRT optimiser step (forward, backward, clip, AdamW) at
# batch 8, 224x224 crops, 112 tokens, through synthcxr (bench_vlptrain) and
# through PyTorch on the CPU (bench/vlp_torch.py in the oracle venv, float32,
# torch threads = all cores), in the same run, for two models with random
# weights: "tiny" (the narrow ResNet [1,1,1,1] stem 8 planes 4 and the tiny
# BERT fixture) and "resnet50-bert6" (torchvision ResNet-50 and the first 6
# layers of a Bio_ClinicalBERT-sized BERT: hidden 768, 12 heads, vocabulary
# 28996). Both have MGCA's heads (2048 -> 128). Prints a table on stderr and
# writes one JSON object per line to bench-out/vlptrain.json.
# OpenMP threads wait passively between parallel loops (OMP_WAIT_POLICY=passive
# unless set, for both sides): with spinning waits a step of ResNet-50 took 3x
# as long on a busy 2-core machine (half the time in libgomp's spin loop).
#   BENCH_VLP=0 make bench            skip this (ResNet-50 takes minutes on 2 cores)
#   BENCH_VLP_STEPS=N                 timed steps per model (default 3, after 1 warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
bin="$BUILD/bench/bench_vlptrain"
[ -x "$bin" ] || { echo "bench: $bin is missing; run make bench" >&2; exit 2; }
py=$(tests/oracle/setup-venv.sh) || { echo "bench: no Python venv for the PyTorch side" >&2; exit 2; }
steps=${BENCH_VLP_STEPS:-3}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p bench-out/bert-6l
cat >bench-out/bert-6l/config.json <<'JSON'
{"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": 768, "initializer_range": 0.02,
 "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
 "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2,
 "vocab_size": 28996, "attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0}
JSON
out=bench-out/vlptrain.json
tmp=$(mktemp bench-out/.vlptrain.XXXXXX)
trap 'rm -f "$tmp"' EXIT
run() { # label image-arch text-config text-layers
  "$bin" --label "$1" --image-arch "$2" --text-config "$3" --text-layers "$4" --steps "$steps" >>"$tmp"
  "$py" bench/vlp_torch.py --label "$1" --image-arch "$2" --text-config "$3" --text-layers "$4" \
    --steps "$steps" >>"$tmp"
}
run tiny '{"layers":[1,1,1,1],"stem_width":8,"planes":4}' tests/fixtures/models/tiny-bert 0
run resnet50-bert6 resnet50 bench-out/bert-6l 6
while IFS= read -r line; do
  printf 'bench: %-15s %-9s %8s samples/s (median step %s s, batch 8, 224x224, 112 tokens)\n' \
    "$(sed -n 's/.*"model":"\([^"]*\)".*/\1/p' <<<"$line")" \
    "$(sed -n 's/.*"impl":"\([^"]*\)".*/\1/p' <<<"$line")" \
    "$(sed -n 's/.*"samples_per_s":\([0-9.]*\).*/\1/p' <<<"$line")" \
    "$(sed -n 's/.*"step_s_median":\([0-9.]*\).*/\1/p' <<<"$line")" >&2
done <"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "bench: wrote $out" >&2
