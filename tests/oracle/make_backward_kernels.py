"""Reference data for the backward kernels of the ResNet image encoder:
Conv2d (3x3 s1 p1, the 7x7 s2 p3 stem, 1x1 s2 downsample, 1x1 s1, 3x3 s2 p1),
MaxPool2d(3, 2, 1), AdaptiveAvgPool2d(1) and ReLU: seeded float32 inputs, a
random dout, and torch autograd's gradients of input, weight and bias computed
in float64 (rounded once to float32; float32 torch checked against them to 1e-5
of scale). Writes tests/fixtures/backward_kernels.safetensors."""
import torch
import torch.nn.functional as F

from oracle_util import save

torch.manual_seed(20261128)
t = {}


def grads(name, fn, inputs, dout):
    res = {}
    for dt in (torch.float64, torch.float32):
        xs = [x.to(dt).requires_grad_(True) if x is not None else None for x in inputs]
        y = fn(*xs)
        y.backward(dout.to(dt))
        res[dt] = [y.detach()] + [x.grad if x is not None else None for x in xs]
    for k, (a64, a32) in enumerate(zip(res[torch.float64], res[torch.float32])):
        if a64 is None:
            continue
        err = (a32.double() - a64).abs().max().item()
        scale = max(a64.abs().max().item(), 1e-30)
        assert err <= 1e-5 * scale, f"{name}[{k}]: float32 torch differs by {err / scale:.2e}"
    return [a.float() if a is not None else None for a in res[torch.float64]]


def conv(name, b, cin, h, w, cout, k, stride, pad, bias):
    x = torch.randn(b, cin, h, w)
    wt = torch.randn(cout, cin, k, k) / (cin * k * k) ** 0.5
    bs = torch.randn(cout) * 0.1 if bias else None
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    dout = torch.randn(b, cout, ho, wo)
    y, dx, dw, db = grads(name, lambda x, wt, bs: F.conv2d(x, wt, bs, stride, pad), [x, wt, bs], dout)
    t.update({name + ".x": x, name + ".weight": wt, name + ".dout": dout, name + ".out": y,
              name + ".dx": dx, name + ".dweight": dw})
    if bias:
        t[name + ".bias"], t[name + ".dbias"] = bs, db


conv("conv3x3", 2, 3, 7, 6, 4, 3, 1, 1, True)
conv("conv7x7s2", 2, 3, 15, 13, 5, 7, 2, 3, False)     # the ResNet stem
conv("conv1x1s2", 2, 6, 9, 9, 4, 1, 2, 0, False)       # downsample
conv("conv1x1", 3, 5, 4, 4, 7, 1, 1, 0, True)
conv("conv3x3s2", 2, 4, 10, 9, 3, 3, 2, 1, False)      # stride on conv2 (v1.5)

# MaxPool2d(3, 2, 1) after a ReLU: ties between zeros go to the first in the window
x = F.relu(torch.randn(2, 3, 11, 10))
dout = torch.randn(2, 3, 6, 5)
y, dx = grads("maxpool", lambda x: F.max_pool2d(x, 3, 2, 1), [x], dout)
t.update({"maxpool.x": x, "maxpool.dout": dout, "maxpool.out": y, "maxpool.dx": dx})

x = torch.randn(2, 5, 7, 7)
dout = torch.randn(2, 5)
y, dx = grads("gap", lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1), [x], dout)
t.update({"gap.x": x, "gap.dout": dout, "gap.out": y, "gap.dx": dx})

x = torch.randn(3, 50)
x[0, :5] = 0.0
dout = torch.randn(3, 50)
y, dx = grads("relu", F.relu, [x], dout)
t.update({"relu.x": x, "relu.dout": dout, "relu.out": y, "relu.dx": dx})
save("backward_kernels.safetensors", t)
