"""The end-to-end oracle of ConVIRT training (issue 8's main proof): in PyTorch,
a tiny torchvision-structured ResNet (resnet_tiny.TinyResNet: torchvision's
ResNet class with Bottleneck, [1,1,1,1], stem 8, planes 4), the
tiny BERT of tests/fixtures/models/tiny-bert (HF BertModel, no pooler, dropout
0), MGCA's GlobalEmbedding heads (hidden 64, out 16), F.normalize and the
symmetric InfoNCE (temperature 0.07, lambda 0.5), all in training mode (BN batch
statistics), on one fixed batch of 4 grey 64x64 images (replicated to 3
channels) and 16-token reports. Then 3 optimiser steps as vlptrain takes them:
zero_grad, forward, backward, clip_grad_norm_, AdamW (MGCA's: one group,
weight decay 0.05 on everything) at the lrs of MGCA's warm-up cosine schedule
(5 steps in all, warm-up int(0.4 * 5) = 2, lr 2e-5, min 1e-8).
Writes tests/fixtures/convirt_ref.safetensors:
  init.<prefix><name>   the image encoder's and both heads' parameters and
                        buffers (the BERT is the fixture folder's)
  images, input_ids, attention_mask
  loss0..2, parts0 (image->text, text->image terms of step 0), norm0..2 (grad
                        norm before clipping), lrs, cfg
  grad.<prefix><name>   every parameter's gradient at step 0
  after.<prefix><name>  every parameter and buffer after 3 steps
  after64.<...>, losses64  the same 3 steps run in float64 (rounded to float32
                        for storage): the reference the float32 runs, torch's
                        and ours, are both measured against"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertModel

from oracle_util import FIXTURES, save
from resnet_tiny import TinyResNet, randomise_bn

torch.manual_seed(20261128)

ARCH = {"layers": [1, 1, 1, 1], "stem_width": 8, "planes": 4, "width_per_group": 64}
HIDDEN, EMBED, TEMP, LAM = 64, 16, 0.07, 0.5
B, SIDE, T = 4, 64, 16
LR, MIN_LR, WD, TOTAL, CLIP = 2e-5, 1e-8, 0.05, 5, 2.0


class GlobalEmbedding(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
                                  nn.Linear(h, o), nn.BatchNorm1d(o, affine=False))

    def forward(self, x):
        return self.head(x)


img = TinyResNet(**ARCH)  # h/image's: torchvision's ResNet class at narrow widths, fc = Identity
randomise_bn(img)  # BN affine and running statistics away from their init
bert_dir = os.path.join(FIXTURES, "models", "tiny-bert")
txt = BertModel.from_pretrained(bert_dir, add_pooling_layer=False, attn_implementation="eager")
assert txt.config.hidden_dropout_prob == 0 and txt.config.attention_probs_dropout_prob == 0
feat_dim = ARCH["planes"] * 8 * 4
ihead = GlobalEmbedding(feat_dim, HIDDEN, EMBED)
thead = GlobalEmbedding(txt.config.hidden_size, HIDDEN, EMBED)
modules = {"image_encoder.": img, "text_encoder.": txt, "image_projection.": ihead, "text_projection.": thead}
for m in modules.values():
    m.train()

t = {}
for p, m in modules.items():
    if p == "text_encoder.":
        continue
    for k, v in m.state_dict().items():
        t["init." + p + k] = v.clone()

# the batch: grey images normalised as MGCA (x/255 - 0.5) / 0.5, three equal channels
grey = torch.randint(0, 256, (B, 1, SIDE, SIDE), dtype=torch.uint8)
images = ((grey.float() / 255.0 - 0.5) / 0.5).expand(B, 3, SIDE, SIDE).contiguous()
lengths = [16, 9, 5, 12]
ids = torch.zeros(B, T, dtype=torch.int32)
mask = torch.zeros(B, T, dtype=torch.uint8)
for i, n in enumerate(lengths):
    ids[i, 0] = 2  # [CLS]-like
    ids[i, 1:n - 1] = torch.randint(5, txt.config.vocab_size, (n - 2,))
    ids[i, n - 1] = 3  # [SEP]-like
    mask[i, :n] = 1
t["images"], t["input_ids"], t["attention_mask"] = images, ids, mask


def loss_fn():
    fi = img(images)
    ft = txt(input_ids=ids.long(), attention_mask=mask.long()).last_hidden_state[:, 0]
    ei = F.normalize(ihead(fi), dim=1)
    et = F.normalize(thead(ft), dim=1)
    s = ei @ et.t() / TEMP
    lab = torch.arange(B)
    a, b = F.cross_entropy(s, lab), F.cross_entropy(s.t(), lab)
    return LAM * a + (1 - LAM) * b, a, b


def sched(step, total, warm):
    """MGCA's CosineAnnealingWarmupRestarts, as tests/oracle/make_optim.py checks it."""
    if step == 0:
        return MIN_LR
    s = step % total
    if s < warm:
        return (LR - MIN_LR) * s / warm + MIN_LR
    return MIN_LR + (LR - MIN_LR) * (1 + math.cos(math.pi * (s - warm) / (total - warm))) / 2


init_state = {p: {k: v.clone() for k, v in m.state_dict().items()} for p, m in modules.items()}


def run(dtype, record):
    """3 optimiser steps from the initial state in dtype; returns the losses."""
    global images
    for p, m in modules.items():
        m.to(dtype)
        m.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in init_state[p].items()})
    images = images0.to(dtype)
    params = [q for m in modules.values() for q in m.parameters()]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD, foreach=False)
    warm = int(TOTAL * 0.4)
    losses = []
    for step in range(3):
        opt.zero_grad(set_to_none=False)
        loss, a, b = loss_fn()
        loss.backward()
        if record and step == 0:
            t["parts0"] = torch.tensor([a.item(), b.item()], dtype=torch.float64)
            for p, m in modules.items():
                for k, q in m.named_parameters():
                    t["grad." + p + k] = q.grad.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP, foreach=False)
        lr = sched(step, TOTAL, warm)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(loss.item())
        if record:
            t[f"loss{step}"] = loss.detach().double().reshape(1)
            t[f"norm{step}"] = norm.detach().double().reshape(1)
            lrs.append(lr)
        print(f"{dtype}: step {step}: loss {loss.item():.9f}, grad norm {norm.item():.4f}, lr {lr:.3g}")
    return losses


images0 = images
lrs = []
l64 = run(torch.float64, False)
after64 = {p: {k: v.float().clone() for k, v in m.state_dict().items()} for p, m in modules.items()}
for p, m in modules.items():
    for k, v in m.state_dict().items():
        t["after64." + p + k] = v.float().clone()
t["losses64"] = torch.tensor(l64, dtype=torch.float64)
l32 = run(torch.float32, True)
for p, m in modules.items():
    for k, v in m.state_dict().items():
        t["after." + p + k] = v.clone()
# float32 torch itself drifts from the float64 run: Adam divides every gradient
# element by its own size, so rounding in near-zero elements (and the
# structurally zero ones: key biases, biases before a BatchNorm) becomes steps
# of up to lr. The C test holds its own drift to the same yardstick.
print("float32 vs float64 losses:", [abs(a - b) / abs(b) for a, b in zip(l32, l64)])
t["lrs"] = torch.tensor(lrs, dtype=torch.float64)
t["cfg"] = torch.tensor([HIDDEN, EMBED, TEMP, LAM, LR, MIN_LR, WD, TOTAL, CLIP], dtype=torch.float64)

save("convirt_ref.safetensors", t, {"image_arch": json.dumps(ARCH, separators=(",", ":"))})
