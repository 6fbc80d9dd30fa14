"""Reference data for libcommon/proj_head and libcommon/contrastive: MGCA's
GlobalEmbedding head (Linear - BatchNorm1d - ReLU - Linear - BatchNorm1d(affine
False)) in training mode (output, updated running statistics, every gradient of
sum(dout * out)) and in eval mode; F.normalize + the symmetric InfoNCE of
ConVIRT (lambda * CE(S) + (1 - lambda) * CE(S^T), S = img txt^T / temperature)
with its gradients through the normalisation, for MGCA's (0.07, 0.5) and the
ConVIRT paper's (0.1, 0.75); retrieval recall@1/5/10 both ways.
Writes tests/fixtures/contrastive_ref.safetensors."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracle_util import save

torch.manual_seed(20261128)
t = {}


class GlobalEmbedding(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
                                  nn.Linear(h, o), nn.BatchNorm1d(o, affine=False))

    def forward(self, x):
        return self.head(x)


# ---- the head ----------------------------------------------------------------------
N, IN, HID, OUT = 6, 12, 16, 8
m = GlobalEmbedding(IN, HID, OUT)
with torch.no_grad():  # non-trivial BN affine and running statistics
    m.head[1].weight.uniform_(0.5, 1.5)
    m.head[1].bias.normal_(0, 0.3)
    m.head[1].running_mean.normal_(0, 0.2)
    m.head[1].running_var.uniform_(0.5, 2)
    m.head[4].running_mean.normal_(0, 0.2)
    m.head[4].running_var.uniform_(0.5, 2)
for k, v in m.state_dict().items():
    t["head.init." + k] = v.clone()
x = torch.randn(N, IN, requires_grad=True)
dout = torch.randn(N, OUT)
m.eval()
t["head.eval_out"] = m(x).detach()
m.train()
y = m(x)
(y * dout).sum().backward()
t["head.x"] = x.detach()
t["head.dout"] = dout
t["head.train_out"] = y.detach()
t["head.dx"] = x.grad
for k, v in m.state_dict().items():
    t["head.after." + k] = v.clone()
for k, p in m.named_parameters():
    t["head.grad." + k] = p.grad


# ---- normalise + InfoNCE -----------------------------------------------------------
def infonce(img, txt, temp, lam):
    s = img @ txt.t() / temp
    lab = torch.arange(img.shape[0])
    return lam * F.cross_entropy(s, lab) + (1 - lam) * F.cross_entropy(s.t(), lab), s


B, D = 9, 8
ri = torch.randn(B, D) * 2
rt = ri * 0.5 + torch.randn(B, D)  # correlated, so the loss is not flat
ri[3] *= 1e-3  # a small row: the normalisation's gradient grows
t["nce.img_raw"], t["nce.txt_raw"] = ri, rt
for tag, temp, lam in [("mgca", 0.07, 0.5), ("paper", 0.1, 0.75)]:
    a = ri.clone().requires_grad_(True)
    b = rt.clone().requires_grad_(True)
    na, nb = F.normalize(a, dim=1), F.normalize(b, dim=1)
    loss, s = infonce(na, nb, temp, lam)
    loss.backward()
    t[f"nce.{tag}.norm_img"] = na.detach()
    t[f"nce.{tag}.logits"] = s.detach()
    t[f"nce.{tag}.loss"] = loss.detach().double().reshape(1)
    t[f"nce.{tag}.dimg_raw"] = a.grad
    t[f"nce.{tag}.dtxt_raw"] = b.grad
    t[f"nce.{tag}.cfg"] = torch.tensor([temp, lam], dtype=torch.float64)

# ---- recall ------------------------------------------------------------------------
M = 40
sim = torch.randn(M, M) + 3 * torch.eye(M) * torch.rand(M)  # some matches strong, some not
t["recall.sim"] = sim
ks = [1, 5, 10]
diag = sim.diag()
rank_i2t = (sim > diag[:, None]).sum(1)  # texts scoring above image i's own
rank_t2i = (sim > diag[None, :]).sum(0)
t["recall.i2t"] = torch.tensor([(rank_i2t < k).double().mean().item() for k in ks], dtype=torch.float64)
t["recall.t2i"] = torch.tensor([(rank_t2i < k).double().mean().item() for k in ks], dtype=torch.float64)
# cross-check the ranks against a sort (no ties in continuous random data)
order = sim.argsort(1, descending=True)
assert all((order[i] == i).nonzero().item() == rank_i2t[i].item() for i in range(M))

save("contrastive_ref.safetensors", t)
