"""Reference data for the backward kernels BERT training needs (libcommon/norm
layernorm_backward, activation gelu_backward, softmax softmax_backward,
attention attention_train_forward/backward, embedding embedding_backward):
seeded float32 inputs and a random output gradient `dout`; forward outputs and
torch.autograd gradients of sum(dout * forward(inputs)), evaluated in float64
from the float32 inputs and rounded once to float32 (the float32 torch result
is checked against them here). Writes tests/fixtures/bert_kernels.safetensors."""
import torch
import torch.nn.functional as F

from oracle_util import save

torch.manual_seed(20261129)
t = {}
F32_MIN = torch.finfo(torch.float32).min


def grads(name, fn, inputs, dout_shape=None, tol32=1e-5):
    """t[name.out] = fn(inputs), t[name.d<k>] = d sum(dout * out) / d input k, in float64."""
    res = {}
    for dt in (torch.float64, torch.float32):
        xs = {k: v.to(dt).requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
        out = fn(**xs)
        if name + ".dout" not in t:
            t[name + ".dout"] = torch.randn(out.shape)
        (out * t[name + ".dout"].to(dt)).sum().backward()
        res[dt] = {"out": out.detach()}
        res[dt].update({"d" + k: v.grad for k, v in xs.items() if v.grad is not None})
    for k, r64 in res[torch.float64].items():
        r32 = res[torch.float32][k].double()
        scale = max(r64.abs().max().item(), 1e-30)
        err = (r32 - r64).abs().max().item() / scale
        print(f"  {name}.{k}: float32 torch vs float64 {err:.2e} of scale {scale:.3g}")
        assert err <= tol32, f"{name}.{k}"
        t[f"{name}.{k}"] = r64.float()
    for k, v in inputs.items():
        t[f"{name}.{k}"] = v


# ---- layer norm over the last dimension (BERT: 768 channels, eps 1e-12) ------
def ln(x, gamma, beta):
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, 1e-12)


grads("ln1", ln, {"x": torch.randn(6, 40) * 2 + 0.5, "gamma": torch.randn(40) * 0.5 + 1, "beta": torch.randn(40)})
# wider than one 64-column strip of the gamma/beta reduction, with an offset mean
grads("ln2", ln, {"x": torch.randn(5, 100) * 0.3 + 10, "gamma": torch.randn(100) * 0.5 + 1,
                  "beta": torch.randn(100)})

# ---- exact GELU ---------------------------------------------------------------
grads("gelu", lambda x: F.gelu(x), {"x": torch.linspace(-7, 7, 301) + torch.randn(301) * 0.01})

# ---- softmax over the last dimension, some entries -inf (masked) ---------------
sx = torch.randn(5, 17) * 3
sx[1, 3:9] = float("-inf")
grads("softmax", lambda x: torch.softmax(x, -1), {"x": sx})


# ---- attention as HF BERT's eager path: scores + (1 - mask) * finfo.min -------
def attn(q, k, v, mask_add):
    # q [B, Tq, H, D] -> [B, H, Tq, D]
    qh, kh, vh = (a.transpose(1, 2) for a in (q, k, v))
    s = qh @ kh.transpose(-1, -2) * q.shape[-1] ** -0.5
    if mask_add is not None:
        s = s + mask_add[:, None, None, :].to(s.dtype)
    return (torch.softmax(s, -1) @ vh).transpose(1, 2)


mask = torch.ones(2, 7)
mask[1, 4:] = 0  # the second sequence: 4 tokens, 3 padding
t["attn1.mask_u8"] = mask.to(torch.uint8)
mask_add = (1.0 - mask) * F32_MIN
grads("attn1", lambda q, k, v: attn(q, k, v, mask_add),
      {"q": torch.randn(2, 7, 3, 5), "k": torch.randn(2, 7, 3, 5), "v": torch.randn(2, 7, 3, 5)})
t["attn1.key_mask"] = mask_add
# cross attention, tq != tk, no mask
grads("attn2", lambda q, k, v: attn(q, k, v, None),
      {"q": torch.randn(2, 4, 2, 8) * 2, "k": torch.randn(2, 6, 2, 8), "v": torch.randn(2, 6, 2, 8)})

# ---- embedding with padding_idx 0: repeated ids add up, id 0 gets no gradient ---
emb = torch.nn.Embedding(10, 6, padding_idx=0)
ids = torch.tensor([3, 0, 7, 3, 3, 9, 0, 1, 7], dtype=torch.int32)
table = torch.randn(10, 6)
t["emb.ids"], t["emb.table"] = ids, table
t["emb.dout"] = torch.randn(9, 6)
w = table.double().requires_grad_()
out = F.embedding(ids.long(), w, padding_idx=0)
(out * t["emb.dout"].double()).sum().backward()
t["emb.out"], t["emb.dtable"] = out.detach().float(), w.grad.float()

save("bert_kernels.safetensors", t)
