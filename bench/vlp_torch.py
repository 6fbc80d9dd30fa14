"""The PyTorch side of bench/vlptrain.sh: the same ConVIRT training step as
bench_vlptrain (torchvision ResNet, or tests/oracle/resnet_tiny's narrow one;
HF BertModel from a config.json with its first N layers, no pooler, dropout 0
as vlptrain runs; MGCA's heads 2048 -> 128; F.normalize, symmetric InfoNCE;
clip_grad_norm_; AdamW), on the CPU in float32 with torch threads = all cores,
on a random batch. Prints one JSON object on stdout.
  python vlp_torch.py --text-config DIR --image-arch resnet50|JSON --text-layers N
                      --batch B --crop N --seq T --steps N --warmup N --label NAME"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from transformers import BertConfig, BertModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
from resnet_tiny import TinyResNet  # noqa: E402


def head(i):
    return nn.Sequential(nn.Linear(i, 2048), nn.BatchNorm1d(2048), nn.ReLU(inplace=True),
                         nn.Linear(2048, 128), nn.BatchNorm1d(128, affine=False))


ap = argparse.ArgumentParser()
ap.add_argument("--text-config", required=True)
ap.add_argument("--image-arch", default="resnet50")
ap.add_argument("--text-layers", type=int, default=6)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--crop", type=int, default=224)
ap.add_argument("--seq", type=int, default=112)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--label", default="model")
a = ap.parse_args()
torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)

if a.image_arch == "resnet50":
    img = torchvision.models.resnet50()
    img.fc = nn.Identity()
    feat = 2048
else:
    c = {"layers": [3, 4, 6, 3], "stem_width": 64, "planes": 64, "width_per_group": 64, **json.loads(a.image_arch)}
    img = TinyResNet(c["layers"], c["stem_width"], c["planes"], c["width_per_group"])
    feat = c["planes"] * 32
with open(os.path.join(a.text_config, "config.json")) as f:
    cfg = json.load(f)
if a.text_layers:
    cfg["num_hidden_layers"] = a.text_layers
cfg["hidden_dropout_prob"] = cfg["attention_probs_dropout_prob"] = 0.0
txt = BertModel(BertConfig(**cfg), add_pooling_layer=False)
ih, th = head(feat), head(cfg["hidden_size"])
mods = [img, txt, ih, th]
for m in mods:
    m.train()
params = [p for m in mods for p in m.parameters()]
opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.05)
images = torch.randn(a.batch, 3, a.crop, a.crop)
ids = torch.randint(1, cfg["vocab_size"], (a.batch, a.seq))
mask = torch.ones(a.batch, a.seq, dtype=torch.long)
lab = torch.arange(a.batch)
times = []
for s in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    ei = F.normalize(ih(img(images)), dim=1)
    et = F.normalize(th(txt(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]), dim=1)
    sim = ei @ et.t() / 0.07
    loss = 0.5 * F.cross_entropy(sim, lab) + 0.5 * F.cross_entropy(sim.t(), lab)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    dt = time.perf_counter() - t0
    print(f"vlp_torch: {a.label}: step {s + 1}: {dt:.3f} s{' (warm-up)' if s < a.warmup else ''}", file=sys.stderr)
    if s >= a.warmup:
        times.append(dt)
times.sort()
n = len(times)
med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
print(json.dumps({"bench": "vlptrain_train", "impl": "pytorch", "torch": torch.__version__, "model": a.label,
                  "image_arch": "resnet50" if a.image_arch == "resnet50" else "json",
                  "text_layers": cfg["num_hidden_layers"], "params": sum(p.numel() for p in params),
                  "batch": a.batch, "crop": a.crop, "seq": a.seq, "threads": torch.get_num_threads(),
                  "steps": a.steps, "step_s_median": round(med, 4), "step_s_best": round(times[0], 4),
                  "samples_per_s": round(a.batch / med, 3), "loss": round(loss.item(), 5)}, separators=(",", ":")))
