"""Reference data for libcommon/resnet.c: a tiny torchvision ResNet
(resnet_tiny.TinyResNet: Bottleneck, layers [2,1,1,1] so both the downsample
and the identity shortcut occur, stem 8, planes 4 -> widths 4/8/16/32, 128
features), batch 2 of 3x48x40 images. One training-mode step: features, every
parameter gradient for a random dfeat, running statistics and
num_batches_tracked after it; then eval-mode features and layer3's output.
Computed in float64 from the float32 weights and input (rounded once to float32);
float32 torch is checked against it. Writes tests/fixtures/resnet.safetensors:
init.<name> (the state dict before the step, plus an fc.weight that the loader
must ignore), x, dfeat, train_feat, train_layer3, grad.<name>, grad_x, after.<buffer>,
eval_feat, eval_layer3; and grad2.<name>, the parameter gradients of a second
step whose loss also has sum(dlayer3 * layer3 output)."""
import copy
import json

import torch

from oracle_util import save
from resnet_tiny import TinyResNet, randomise_bn

torch.manual_seed(20261128)
CFG = {"layers": [2, 1, 1, 1], "stem_width": 8, "planes": 4, "width_per_group": 64}
model = TinyResNet(CFG["layers"], CFG["stem_width"], CFG["planes"], CFG["width_per_group"])
randomise_bn(model)
x = torch.randn(2, 3, 48, 40)
dfeat = torch.randn(2, 128)
dlayer3 = torch.randn(2, 64, 3, 3) * 0.1

t = {"init." + k: v.clone() for k, v in model.state_dict().items()}
t["init.fc.weight"] = torch.randn(3, 128)  # a classifier head the encoder must skip
t["x"], t["dfeat"], t["dlayer3"] = x, dfeat, dlayer3


def run(m, dt):
    m = copy.deepcopy(m).to(dt)
    feats = {}
    m.layer3.register_forward_hook(lambda mod, i, o: feats.__setitem__("layer3", o.detach().clone()))
    m.train()
    xi = x.to(dt).clone().requires_grad_(True)
    f = m(xi)
    f.backward(dfeat.to(dt))
    r = {"train_feat": f.detach(), "train_layer3": feats["layer3"], "grad_x": xi.grad}
    for k, p in m.named_parameters():
        r["grad." + k] = p.grad
    for k, b in m.named_buffers():
        r["after." + k] = b.clone()
    m.eval()
    with torch.no_grad():
        r["eval_feat"] = m(x.to(dt))
    r["eval_layer3"] = feats["layer3"]
    # a gradient into layer3's output too (GLoRIA's local features)
    m = copy.deepcopy(model).to(dt)
    live = {}
    m.layer3.register_forward_hook(lambda mod, i, o: live.__setitem__("layer3", o))
    m.train()
    f = m(x.to(dt))
    ((f * dfeat.to(dt)).sum() + (live["layer3"] * dlayer3.to(dt)).sum()).backward()
    for k, p in m.named_parameters():
        r["grad2." + k] = p.grad
    return r


r64, r32 = run(model, torch.float64), run(model, torch.float32)
worst = 0.0
for k, v in r64.items():
    if v.dtype == torch.int64:
        t[k] = v
        continue
    err = (r32[k].double() - v).abs().max().item()
    scale = max(v.abs().max().item(), 1e-30)
    worst = max(worst, err / scale)
    assert err <= 1e-4 * scale, f"{k}: float32 torch differs from float64 by {err / scale:.2e} of scale"
    t[k] = v.float()
print(f"  float32 torch vs float64: worst {worst:.2e} of scale")
save("resnet.safetensors", t, {"image_arch": json.dumps(CFG, separators=(",", ":"))})
