"""Full-size ResNet-50 reference for bench/resnet50_check.sh (not a fixture
script: it writes outside the repo).
  resnet50_ref.py write DIR   torchvision resnet50 with random weights (seeded;
      the BN running statistics set from one training-mode pass over random
      images, so eval-mode activations have a realistic scale) to
      DIR/model.safetensors (the whole state dict, fc included), and
      DIR/check.safetensors: one random 1x3x224x224 input "x" and torch's
      eval-mode features "feat" [1, 2048] and layer3 output "layer3" (float32
      torch), and the same computed in float64 ("feat64", "layer3_64").
  resnet50_ref.py time BATCH SIZE REPS   torch's training-mode forward +
      backward of resnet50 (no fc) on random input, median seconds per step
      and CPU seconds per step (all threads), printed as one JSON line."""
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file
from torchvision.models import resnet50


def model_nofc():
    m = resnet50()
    m.fc = torch.nn.Identity()
    return m


def write(out):
    torch.manual_seed(20261128)
    m = model_nofc()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = 1.0  # running stats := this batch's
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 3, 224, 224))
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = 0.1
            mod.num_batches_tracked.zero_()
    m.eval()
    x = torch.randn(1, 3, 224, 224)
    got = {}
    m.layer3.register_forward_hook(lambda mod, i, o: got.__setitem__("layer3", o))
    with torch.no_grad():
        feat = m(x)
        l3 = got["layer3"]
        m64 = model_nofc()
        m64.load_state_dict(m.state_dict())
        m64 = m64.double().eval()
        m64.layer3.register_forward_hook(lambda mod, i, o: got.__setitem__("layer3", o))
        feat64 = m64(x.double()).float()  # the float64 answer, rounded once
        l3_64 = got["layer3"].float()
    for name, a, b in (("features", feat, feat64), ("layer3", l3, l3_64)):
        err = (a - b).abs().max().item() / b.abs().max().item()
        print(f"torch float32 vs float64 {name}: {err:.2e} of scale", file=sys.stderr)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    sd["fc.weight"] = torch.randn(1000, 2048) * 0.01  # torchvision files carry a classifier: the loader skips it
    sd["fc.bias"] = torch.zeros(1000)
    os.makedirs(out, exist_ok=True)
    save_file(sd, os.path.join(out, "model.safetensors"))
    write_train(out, m.state_dict())
    save_file({"x": x, "feat": feat, "layer3": l3.contiguous(), "feat64": feat64, "layer3_64": l3_64.contiguous()},
              os.path.join(out, "check.safetensors"))
    print(f"wrote {out}/model.safetensors and check.safetensors (torch {torch.__version__})", file=sys.stderr)


def write_train(out, state):
    """One training-mode step at batch 2 from the written weights: features,
    every parameter gradient for a random dfeat and the running statistics
    after it, in float32 ("feat", "grad.<name>", "after.<name>") and float64
    ("feat64", "grad64.<name>", rounded to float32) -> DIR/train.safetensors."""
    x = torch.randn(2, 3, 224, 224)
    dfeat = torch.randn(2, 2048)
    t = {"x": x, "dfeat": dfeat}
    for dt, tag in ((torch.float32, ""), (torch.float64, "64")):
        m = model_nofc()
        m.load_state_dict(state)
        m = m.to(dt).train()
        f = m(x.to(dt))
        f.backward(dfeat.to(dt))
        t["feat" + tag] = f.detach().float()
        for k, p in m.named_parameters():
            t[f"grad{tag}.{k}"] = p.grad.float()
        if not tag:
            for k, b in m.named_buffers():
                t["after." + k] = b.clone()
    worst = max((t["grad." + k] - t["grad64." + k]).abs().max().item() / t["grad64." + k].abs().max().item()
                for k, _ in model_nofc().named_parameters())
    print(f"torch float32 vs float64, training step: worst parameter gradient {worst:.2e} of its scale",
          file=sys.stderr)
    save_file(t, os.path.join(out, "train.safetensors"))


def timing(batch, size, reps):
    torch.manual_seed(0)
    m = model_nofc()
    m.train()
    x = torch.randn(batch, 3, size, size)
    dfeat = torch.randn(batch, 2048)
    times = []
    for r in range(reps + 1):  # the first is warm-up
        if r == 1:
            cpu0 = time.process_time()
        m.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        m(x).backward(dfeat)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / reps
    times = sorted(times[1:])
    med = times[len(times) // 2]
    print(json.dumps({"bench": "resnet50_train_step", "impl": "torch", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "batch": batch, "size": size, "reps": reps,
                      "seconds_median": round(med, 3), "seconds_best": round(times[0], 3),
                      "images_per_s": round(batch / med, 3), "cpu_s_per_step": round(cpu, 3),
                      "loadavg_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "time":
        timing(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
