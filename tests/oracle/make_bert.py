"""Reference data for libcommon/bert (HF transformers' BertModel, forward and
backward): a tiny BERT (hidden 32, 2 layers, 2 heads, intermediate 64, vocab
100, max positions 128), saved as an HF folder tests/fixtures/models/tiny-bert/
(config.json + model.safetensors, pooler included as save_pretrained writes
it), and tests/fixtures/bert.safetensors with
  ids i32 [3, 16], mask u8 [3, 16]  three sequences of 16, 11 and 5 tokens
                                    ([PAD] = 0 after them, as pairpack pads);
  dout [3, 16, 32]                  a random gradient on last_hidden_state;
  last_hidden [3, 16, 32]           BertModel(ids, attention_mask).last_hidden_state;
  grad.<name>                       d sum(dout * last_hidden) / d parameter, for
                                    every parameter under its HF name (no pooler:
                                    it does not reach last_hidden_state; the key
                                    biases' gradients are exactly 0, stored as 0);
  trunc1.last_hidden [3, 16, 32]    the same model keeping only layer 0
                                    (vlptrain --text-layers 1);
  ids112, mask112, last_hidden112   two sequences at pairpack's T = 112
                                    (112 and 40 tokens), forward only.
The weights are drawn wider than HF's init (std 0.02 would leave attention
uniform and LayerNorm at 1/0), so every path carries signal. Dropout
probabilities are 0 (the C model has no dropout). References are computed in
float64 from the float32 weights and inputs, rounded once to float32; the
float32 torch results are checked against them here."""
import os

import torch
from transformers import BertConfig, BertModel

from oracle_util import FIXTURES, save

torch.manual_seed(20261130)
cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=128, type_vocab_size=2,
                 hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                 layer_norm_eps=1e-12, pad_token_id=0)
cfg._attn_implementation = "eager"  # HF's additive finfo.min mask, as the C code
model = BertModel(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if "LayerNorm.weight" in name:
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn_like(p))
        elif "embeddings" in name:
            p.copy_(0.5 * torch.randn_like(p))
        else:
            p.copy_(0.25 * torch.randn_like(p))
    model.embeddings.word_embeddings.weight[0].zero_()  # [PAD], as HF's init leaves it

folder = os.path.join(FIXTURES, "models", "tiny-bert")
model.save_pretrained(folder)
print("wrote", folder, sorted(os.listdir(folder)))


def batch(lengths, T):
    ids = torch.zeros(len(lengths), T, dtype=torch.int32)
    mask = torch.zeros(len(lengths), T, dtype=torch.uint8)
    for b, n in enumerate(lengths):
        ids[b, 0] = 2  # [CLS]-like
        ids[b, 1:n] = torch.randint(3, 100, (n - 1,), dtype=torch.int32)
        mask[b, :n] = 1
    return ids, mask


def run(m, ids, mask, dout=None):
    """last_hidden_state (and parameter gradients for dout) in float64 and float32."""
    out = {}
    for dt in (torch.float64, torch.float32):
        mm = m.to(dt)
        mm.zero_grad()
        h = mm(input_ids=ids.long(), attention_mask=mask.long()).last_hidden_state
        r = {"last_hidden": h.detach()}
        if dout is not None:
            (h * dout.to(dt)).sum().backward()
            r.update({"grad." + n: p.grad.detach() for n, p in mm.named_parameters() if p.grad is not None})
        out[dt] = r
    m.float()
    res = {}
    for k, r64 in out[torch.float64].items():
        r32 = out[torch.float32][k].double()
        if k.endswith("attention.self.key.bias"):
            # Exactly 0: a key bias adds q . b to a whole score row, which the
            # softmax ignores. float64 gives ~1e-16; stored as 0, and float32's
            # rounding noise is measured against the key weight's gradient.
            assert r64.abs().max().item() < 1e-12, k
            r64 = torch.zeros_like(r64)
            scale = out[torch.float64][k.replace(".bias", ".weight")].abs().max().item()
        else:
            scale = max(r64.abs().max().item(), 1e-30)
        err = (r32 - r64).abs().max().item() / scale
        assert err <= 1e-5, f"{k}: float32 torch differs from float64 by {err:.2e} of scale"
        res[k] = r64.float()
    print(f"  {len(res)} tensors; float32 torch within 1e-5 of float64 on each")
    return res


t = {}
ids, mask = batch([16, 11, 5], 16)
dout = torch.randn(3, 16, 32)
t.update(ids=ids, mask=mask, dout=dout)
t.update(run(model, ids, mask, dout))
assert "grad.pooler.dense.weight" not in t
assert t["grad.embeddings.word_embeddings.weight"][0].abs().max() == 0  # padding_idx

# --text-layers 1: the first layer only
cfg1 = BertConfig(**{**cfg.to_dict(), "num_hidden_layers": 1})
cfg1._attn_implementation = "eager"
m1 = BertModel(cfg1).eval()
missing, unexpected = m1.load_state_dict(model.state_dict(), strict=False)
assert not missing and all(k.startswith("encoder.layer.1.") for k in unexpected), (missing, unexpected)
t["trunc1.last_hidden"] = run(m1, ids, mask)["last_hidden"]

ids112, mask112 = batch([112, 40], 112)
t.update(ids112=ids112, mask112=mask112, last_hidden112=run(model, ids112, mask112)["last_hidden"])
save("bert.safetensors", t)
