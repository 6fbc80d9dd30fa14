"""Reference for libcommon/linear_probe.c: MGCA's linear evaluation head, an
nn.Linear trained with torch.optim.AdamW on BCE-with-logits (multi-label) or
cross-entropy (multi-class), a few epochs of batches in a given order (the
last batch smaller). Saves inputs, the initial weights, the order, the loss of
every step, the weights after training and the validation loss, for
lr 5e-4 / wd 1e-6 (MGCA) and a large lr 2e-2 / wd 1e-2 that moves the weights
far enough to show any difference.
Writes tests/fixtures/linear_probe_ref.safetensors."""
import torch
import torch.nn.functional as F

import oracle_util

torch.manual_seed(0)
T = {}
N, NV, FEAT, B, EPOCHS = 37, 11, 16, 8, 3
for task, out in (("bce", 5), ("ce", 3)):
    x = torch.randn(N, FEAT)
    xv = torch.randn(NV, FEAT)
    if task == "bce":
        y = (torch.rand(N, out) < 0.4).float()
        yv = (torch.rand(NV, out) < 0.4).float()
    else:
        y = torch.randint(0, out, (N,))
        yv = torch.randint(0, out, (NV,))
    lin0 = torch.nn.Linear(FEAT, out)
    orders = torch.stack([torch.randperm(N) for _ in range(EPOCHS)])
    T[f"{task}_x"], T[f"{task}_xv"] = x, xv
    T[f"{task}_y"] = y if task == "bce" else F.one_hot(y, out).float()
    T[f"{task}_yv"] = yv if task == "bce" else F.one_hot(yv, out).float()
    T[f"{task}_w0"], T[f"{task}_b0"] = lin0.weight.detach().clone(), lin0.bias.detach().clone()
    T[f"{task}_order"] = orders.int()
    for cfg, lr, wd in (("mgca", 5e-4, 1e-6), ("big", 2e-2, 1e-2)):
        lin = torch.nn.Linear(FEAT, out)
        with torch.no_grad():
            lin.weight.copy_(lin0.weight)
            lin.bias.copy_(lin0.bias)
        opt = torch.optim.AdamW(lin.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                                foreach=False)
        losses = []
        for e in range(EPOCHS):
            for s in range(0, N, B):
                idx = orders[e, s:s + B]
                logits = lin(x[idx])
                loss = (F.binary_cross_entropy_with_logits(logits, y[idx]) if task == "bce"
                        else F.cross_entropy(logits, y[idx]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        with torch.no_grad():
            lv = lin(xv)
            vloss = (F.binary_cross_entropy_with_logits(lv, yv) if task == "bce" else F.cross_entropy(lv, yv))
        T[f"{task}_{cfg}_losses"] = torch.tensor(losses, dtype=torch.float32)
        T[f"{task}_{cfg}_w"] = lin.weight.detach().clone()
        T[f"{task}_{cfg}_b"] = lin.bias.detach().clone()
        T[f"{task}_{cfg}_vloss"] = torch.tensor([vloss.item()], dtype=torch.float32)
        T[f"{task}_{cfg}_vlogits"] = lv
oracle_util.save("linear_probe_ref.safetensors", T)
