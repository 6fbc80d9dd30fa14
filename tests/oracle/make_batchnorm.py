"""Reference data for libcommon/batchnorm.c: torch.nn.BatchNorm2d and BatchNorm1d,
with and without affine parameters, one training-mode step (output, running
statistics after it, autograd gradients of input/weight/bias for a random dout)
and eval-mode output with the updated running statistics. Every reference is
computed in float64 from the float32 inputs and rounded once to float32; the
float32 torch result is checked against it (1e-5 of scale) so they cannot drift.
Writes tests/fixtures/batchnorm.safetensors."""
import torch

from oracle_util import save

torch.manual_seed(20261128)
t = {}


def case(name, shape, affine, offset=0.0, spread=1.0, momentum=0.1, eps=1e-5):
    ch = shape[1]
    x = torch.randn(*shape) * spread + offset
    dout = torch.randn(*shape)
    rm0 = torch.randn(ch) * 0.1
    rv0 = torch.rand(ch) + 0.5
    w = torch.randn(ch) * 0.5 + 1.0
    b = torch.randn(ch) * 0.2
    cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    res = {}
    for dt in (torch.float64, torch.float32):
        bn = cls(ch, eps=eps, momentum=momentum, affine=affine).to(dt)
        with torch.no_grad():
            bn.running_mean.copy_(rm0)
            bn.running_var.copy_(rv0)
            if affine:
                bn.weight.copy_(w)
                bn.bias.copy_(b)
        xi = x.to(dt).requires_grad_(True)
        bn.train()
        y = bn(xi)
        y.backward(dout.to(dt))
        bn.eval()
        with torch.no_grad():
            ye = bn(x.to(dt))
        r = {"out": y.detach(), "dx": xi.grad, "running_mean": bn.running_mean.clone(),
             "running_var": bn.running_var.clone(), "eval_out": ye,
             "num_batches_tracked": bn.num_batches_tracked.clone()}
        if affine:
            r["dweight"], r["dbias"] = bn.weight.grad, bn.bias.grad
        res[dt] = r
    for k, v64 in res[torch.float64].items():
        if k == "num_batches_tracked":
            assert v64.item() == 1
            continue
        v32 = res[torch.float32][k]
        err = (v32.double() - v64).abs().max().item()
        scale = max(v64.abs().max().item(), 1e-30)
        print(f"  {name}.{k}: float32 torch vs float64: {err / scale:.2e} of scale {scale:.3g}")
        assert err <= 1e-5 * scale, f"{name}.{k}"
        t[f"{name}.{k}"] = v64.float()
    t[name + ".x"], t[name + ".dout"] = x, dout
    t[name + ".running_mean0"], t[name + ".running_var0"] = rm0, rv0
    if affine:
        t[name + ".weight"], t[name + ".bias"] = w, b


case("bn2d", (4, 6, 5, 7), True)
case("bn2d_noaffine", (3, 5, 4, 4), False, offset=2.0, spread=0.5)
case("bn1d", (8, 16), True)
case("bn1d_noaffine", (6, 12), False)
case("bn1d_3d", (4, 5, 9), True)            # BatchNorm1d on [n, ch, L]
case("bn2d_offset", (2, 4, 6, 6), True, offset=300.0, spread=3.0, momentum=0.3, eps=1e-3)
save("batchnorm.safetensors", t)
