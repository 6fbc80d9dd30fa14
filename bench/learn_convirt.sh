#!/bin/bash
# bench/learn_convirt.sh — the learning proof of issue 8 on this CPU:
# 4,000 cxrphantom pairs (--format mimic, seed 8, 256x256) packed by pairpack,
# then vlptrain --method convirt from random weights on a small model (ResNet
# with Bottleneck blocks [1,1,1,1], stem 16, planes 16; BERT hidden 128, 2
# layers, 2 heads, bert-base-uncased's vocabulary; heads 2048 -> 128), batch
# 32, AdamW lr 3e-4 with 10 % warm-up, 5 % of the pairs held out. The
# validation lines of the JSON log give image->text recall@10 against chance
# (10 / 200 = 0.05). Work goes to $LEARN_DIR (default ~/.cache/synthcxr/learn).
#   EPOCHS=10 bench/learn_convirt.sh      (about 25 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
dir=${LEARN_DIR:-$HOME/.cache/synthcxr/learn}
epochs=${EPOCHS:-10}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$dir/bert-small"
cp tests/fixtures/bert/vocab.txt "$dir/bert-small/"
cat >"$dir/bert-small/config.json" <<'JSON'
{"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
 "hidden_dropout_prob": 0.0, "hidden_size": 128, "initializer_range": 0.02, "intermediate_size": 512,
 "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 2,
 "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522}
JSON
[ -f "$dir/mimic/reports.jsonl" ] || "$BINDIR/cxrphantom" -q -o "$dir/mimic" -f mimic --count 4000 --seed 8 --size 256
[ -f "$dir/shards/pairs-00000.cxs" ] ||
  "$BINDIR/pairpack" -q --text-model "$dir/bert-small" --mimic "$dir/mimic" --split all -o "$dir/shards"
"$BINDIR/vlptrain" --text-model "$dir/bert-small" --text-random \
  --image-arch '{"layers":[1,1,1,1],"stem_width":16,"planes":16}' --batch 32 --epochs "$epochs" \
  --lr 3e-4 --warmup 0.1 --weight-decay 0.05 --val-fraction 0.05 --log-every 10 --save-every 118 --seed 1 \
  -o "$dir/convirt.safetensors" "$dir/shards/pairs-*.cxs" >"$dir/convirt.jsonl"
grep '"val":true' "$dir/convirt.jsonl" >&2
