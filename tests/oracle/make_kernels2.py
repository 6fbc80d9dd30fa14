"""Reference data for the second group of CPU kernels (libcommon/norm, softmax,
attention, activation, eltwise): seeded float32 inputs, and the outputs of
torch.nn.functional. Norms and attention are evaluated in float64 from the
float32 inputs and rounded once to float32, so the reference is the exact
answer to within one rounding; the float32 torch result is checked against it
here (to 1e-5 of the output scale, so the two cannot drift apart; the one
exception is the norms of inputs with a mean of 1e3 or more, where float32 torch
itself is off by up to ~2e-4 of the scale and the C kernel, accumulating in double, is held to the
float64 answer).
Writes tests/fixtures/kernels2.safetensors."""
import math

import torch
import torch.nn.functional as F

from oracle_util import save

torch.manual_seed(20261128)
t = {}


def check32(name, f32, f64, tol):
    """The float32 torch result agrees with the float64 one to tol x output scale."""
    err = (f32.double() - f64).abs().max().item()
    scale = max(f64.abs().max().item(), 1.0e-30)
    print(f"  {name}: float32 torch vs float64: {err / scale:.2e} of scale {scale:.3g}")
    assert err <= tol * scale, f"{name}: float32 torch differs from float64 by {err:g} (scale {scale:g})"


def ref(name, fn, *args, tol32=1e-5):
    """t[name] = fn(args in float64) as float32, after checking fn on float32 agrees."""
    r64 = fn(*[a.double() if torch.is_tensor(a) else a for a in args])
    r32 = fn(*args)
    check32(name, r32, r64, tol32)
    t[name] = r64.float()


# ---- group norm: [B, C, HW], 32 groups as in SD -------------------------------
def gn_case(name, b, c, hw, eps, affine, offset=0.0, spread=1.0, silu=False):
    x = torch.randn(b, c, hw) * spread + offset
    t[name + ".x"] = x
    g = bt = None
    if affine:
        g = torch.randn(c) * 0.5 + 1.0
        bt = torch.randn(c) * 0.2
        t[name + ".gamma"], t[name + ".beta"] = g, bt

    def fn(x, g, bt):
        y = F.group_norm(x, 32, g, bt, eps)
        return F.silu(y) if silu else y

    ref(name + ".out", fn, x, g, bt, tol32=1e-3 if offset >= 1e3 else 1e-5)


gn_case("gn1", 2, 64, 100, 1e-5, True)
gn_case("gn2", 2, 64, 100, 1e-6, False, spread=1e-3)     # variance ~ eps: eps matters
gn_case("gn3", 1, 320, 64, 1e-6, True, offset=5000.0, spread=2.0)  # large mean offset
gn_case("gn4", 2, 96, 49, 1e-5, True, silu=True)                    # GroupNorm + SiLU fused
t["gn.eps"] = torch.tensor([1e-5, 1e-6, 1e-6, 1e-5])

# ---- layer norm over the last dim ---------------------------------------------
# ln3: variance ~ eps, so eps matters.
for name, rows, ch, off, spread, affine in [("ln1", 24, 768, 0.0, 2.0, True), ("ln2", 40, 320, 1.0e4, 2.0, True),
                                            ("ln3", 13, 100, 0.0, 0.005, False), ("ln4", 16, 512, 1.0e3, 2.0, True)]:
    x = torch.randn(rows, ch) * spread + off
    t[name + ".x"] = x
    g = bt = None
    if affine:
        g = torch.randn(ch) * 0.5 + 1.0
        bt = torch.randn(ch) * 0.2
        t[name + ".gamma"], t[name + ".beta"] = g, bt
    ref(name + ".out", lambda x, g, bt: F.layer_norm(x, (x.shape[-1],), g, bt, 1e-5), x, g, bt,
        tol32=1e-3 if off >= 1e3 else 1e-5)

# ---- softmax: moderate, large values, -inf masked entries -------------------
x = torch.randn(33, 77) * 3.0
x[5] *= 300.0                          # values in the hundreds: stability
x[7] += 1.0e4                          # large common offset
x[9, 20:] = float("-inf")              # masked tail
x[11, ::3] = float("-inf")
t["softmax.x"] = x
ref("softmax.out", lambda x: F.softmax(x, dim=-1), x)


# ---- attention ---------------------------------------------------------------
def attn_case(name, b, h, tq, tk, d, causal=False, lengths=None, qmul=1.0):
    q = torch.randn(b, tq, h, d) * qmul
    k = torch.randn(b, tk, h, d)
    v = torch.randn(b, tk, h, d)
    # The inputs are stored as float16 to keep the fixture small; the reference
    # is computed from exactly these rounded values (the C test widens them to
    # f32, so the kernel sees ordinary f32 inputs). The output stays float32.
    q, k, v = q.half().float(), k.half().float(), v.half().float()
    t[name + ".q"], t[name + ".k"], t[name + ".v"] = q.half(), k.half(), v.half()
    mask = None
    if lengths is not None:
        # BERT-style additive padding mask: 0 for real tokens, finfo.min for padding.
        mask = torch.zeros(b, tk)
        for i, n in enumerate(lengths):
            mask[i, n:] = torch.finfo(torch.float32).min
        t[name + ".mask"] = mask
    scale = 1.0 / math.sqrt(d)

    def fn(q, k, v, mask):
        am = None if mask is None else mask[:, None, None, :].to(q.dtype)
        is_causal = causal
        if causal and am is not None:
            # torch takes one or the other: fold the causal mask (key j <= query i) into attn_mask.
            keep = torch.ones(tq, tk, dtype=torch.bool).tril()
            am = am + torch.zeros(tq, tk, dtype=q.dtype).masked_fill(~keep, float("-inf"))
            is_causal = False
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=am, is_causal=is_causal, scale=scale)
        return o.transpose(1, 2)

    ref(name + ".out", fn, q, k, v, mask)
    t[name + ".dims"] = torch.tensor([b, h, tq, tk, d, int(causal), int(lengths is not None)], dtype=torch.int32)


# Few heads: the head count only repeats the same per-head work (H > 1 still
# tests the head stride); the kernel's blocks are 64 queries x 256 keys.
attn_case("attn_self", 2, 3, 37, 37, 16)
attn_case("attn_cross", 2, 2, 64, 77, 40)               # SD cross-attention on CLIP text
attn_case("attn_causal", 1, 2, 77, 77, 64, causal=True)  # CLIP text encoder
attn_case("attn_pad", 3, 4, 50, 50, 32, lengths=[50, 31, 7])  # BERT padding
attn_case("attn_causal_cross", 1, 2, 300, 520, 24, causal=True, lengths=[230], qmul=3.0)  # blocks, tq != tk, both masks
# Long sequence, peaked softmax: 16 query blocks x 4 key blocks, so the online
# softmax rescales often. (The T = 4096 memory check in test_attention.c runs on
# inputs it makes itself; it needs no reference output.)
attn_case("attn_1024", 1, 1, 1024, 1024, 64, qmul=4.0)

# ---- activations on [-10, 10] plus extremes -------------------------------------
xa = torch.cat([torch.linspace(-10, 10, 2001), torch.tensor([-10.0, 10.0, 0.0, -0.0, 1e-6, -1e-6, 3.0, -3.0])])
t["act.x"] = xa
t["act.gelu"] = F.gelu(xa.double()).float()
t["act.gelu_tanh"] = F.gelu(xa.double(), approximate="tanh").float()
t["act.quick_gelu"] = (xa.double() * torch.sigmoid(1.702 * xa.double())).float()
t["act.silu"] = F.silu(xa.double()).float()
gx = torch.randn(19, 2 * 40) * 4.0
t["geglu.x"] = gx
hidden, gate = gx.double().chunk(2, dim=-1)
t["geglu.out"] = (hidden * F.gelu(gate)).float()

# ---- element-wise ops: float32 torch (the same single roundings the C code does) --
a = torch.randn(2, 6, 35) * 3.0
b = torch.randn(2, 6, 35)
t["ew.a"], t["ew.b"] = a, b
t["ew.add"] = a + b
t["ew.mul"] = a * b
t["ew.scale"] = a * 0.18215
t["ew.axpby"] = 0.7 * a + (-1.3) * b
rb = torch.randn(35)
t["ew.bias_rows"], t["ew.add_bias_rows"] = rb, a.reshape(12, 35) + rb
cb = torch.randn(6)
t["ew.bias_ch"], t["ew.add_bias_channels"] = cb, a + cb[None, :, None]
bc = torch.randn(2, 6)
t["ew.batch_ch"], t["ew.add_batch_channels"] = bc, a + bc[:, :, None]
c2 = torch.randn(2, 4, 35)
t["ew.c"], t["ew.concat"] = c2, torch.cat([a, c2], dim=1)
t["ew.transpose"] = a.transpose(1, 2)
u = torch.randn(2, 3, 5, 7)
t["ew.up_x"], t["ew.up"] = u, F.interpolate(u, scale_factor=2, mode="nearest")

save("kernels2.safetensors", t, {"seed": "20261128"})
