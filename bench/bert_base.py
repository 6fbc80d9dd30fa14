"""Full-size BERT-base check (bench/bert_base.sh runs it; not part of make
check): builds HF BertModel with the bert-base-uncased shape (hidden 768, 12
layers, 12 heads, intermediate 3072, vocab 30522, 512 positions) and HF's
random init, saves it as an HF folder OUTSIDE the repo (default
~/.cache/synthcxr/bert-base-random: config.json + model.safetensors, 440 MB),
and writes reference.safetensors beside it:
  ids i32 [8, 112], mask u8 [8, 112]   eight sequences of 112 .. 20 tokens;
  last_hidden [8, 112, 768]            float64 torch, rounded to float32;
  last_hidden_f32                      float32 torch (for comparison);
  dout [8, 112, 768] and grad.<name>   d sum(dout * last_hidden) / d parameter
                                       (float64) for a few parameter tensors.
Then times torch's float32 forward + backward of the first 6 layers at batch 8,
T = 112 (vlptrain --text-layers 6) on this CPU, for comparison with
bench_bert. Dropout 0, eager attention.
  python bench/bert_base.py [OUTDIR]
  python bench/bert_base.py --time-only     the torch timing alone"""
import os
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

time_only = sys.argv[1:] == ["--time-only"]
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/synthcxr/bert-base-random")
torch.manual_seed(0)

B, T = 8, 112
lengths = [112, 97, 80, 64, 50, 41, 30, 20]
ids = torch.zeros(B, T, dtype=torch.int32)
mask = torch.zeros(B, T, dtype=torch.uint8)
for b, n in enumerate(lengths):
    ids[b, 0], ids[b, n - 1] = 101, 102  # [CLS] ... [SEP]
    ids[b, 1:n - 1] = torch.randint(1000, 30522, (n - 2,), dtype=torch.int32)
    mask[b, :n] = 1
dout = torch.randn(B, T, 768)
picked = ["embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight",
          "encoder.layer.0.attention.self.query.weight", "encoder.layer.5.intermediate.dense.weight",
          "encoder.layer.11.output.dense.weight", "encoder.layer.11.output.LayerNorm.bias"]

ref = {"ids": ids, "mask": mask, "dout": dout}


def write_reference():
    os.makedirs(out_dir, exist_ok=True)
    cfg = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # bert-base defaults
    cfg._attn_implementation = "eager"
    model = BertModel(cfg).eval()
    model.save_pretrained(out_dir)
    print(f"wrote {out_dir}: {sorted(os.listdir(out_dir))}", file=sys.stderr)
    with torch.no_grad():
        ref["last_hidden_f32"] = model(input_ids=ids.long(), attention_mask=mask.long()).last_hidden_state
    m64 = model.double()
    h = m64(input_ids=ids.long(), attention_mask=mask.long()).last_hidden_state
    (h * dout.double()).sum().backward()
    params = dict(m64.named_parameters())
    ref["last_hidden"] = h.detach().float()
    for n in picked:
        ref["grad." + n] = params[n].grad.float()
    err = (ref["last_hidden_f32"].double() - h.detach()).abs().max().item()
    print(f"torch float32 vs float64 last_hidden_state: max err {err:.3e} of scale {h.abs().max().item():.3g}",
          file=sys.stderr)
    save_file({k: v.detach().contiguous() for k, v in ref.items()}, os.path.join(out_dir, "reference.safetensors"))
    del m64, params, h


if not time_only:
    write_reference()

# torch timing, 6 layers, float32, this machine's threads
cfg6 = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_hidden_layers=6)
cfg6._attn_implementation = "eager"
m6 = BertModel(cfg6, add_pooling_layer=False).train()
times = []
for rep in range(4):
    m6.zero_grad()
    t0 = time.perf_counter()
    hh = m6(input_ids=ids.long(), attention_mask=mask.long()).last_hidden_state
    t1 = time.perf_counter()
    (hh * dout).sum().backward()
    t2 = time.perf_counter()
    if rep:
        times.append((t1 - t0, t2 - t1))
times.sort(key=lambda x: x[0] + x[1])
f, b = times[len(times) // 2]
print(f'{{"bench":"bert_torch","layers":6,"batch":{B},"seq":{T},"threads":{torch.get_num_threads()},'
      f'"forward_s":{f:.4f},"backward_s":{b:.4f},"train_samples_per_s":{B / (f + b):.2f}}}')
