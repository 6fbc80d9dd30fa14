"""Reference data for libcommon/optim: torch.optim.AdamW (foreach=False) over a
few tensors in two parameter groups (one with weight decay 0), four steps with
changing learning rates; torch.nn.utils.clip_grad_norm_ above and below the
limit; and the learning rates of MGCA's schedule, the CosineAnnealingWarmupRestarts
of katsura-jp/pytorch-cosine-annealing-with-warmup as MGCA configures it
(first_cycle_steps = total, cycle_mult 1, max_lr, min_lr 1e-8, warmup_steps =
int(0.4 * total), stepped once per optimiser step by Lightning). The scheduler
below is written from that class's formulas and lifecycle: its constructor runs
torch's initial step and then sets every group's lr to min_lr, so the first
optimiser step always runs at min_lr; each later step t (0-based) runs at
  t < W:  min + (max - min) * t / W
  t >= W: min + (max - min) * (1 + cos(pi * (t - W) / (T - W))) / 2
with t taken modulo T (restarts with cycle_mult 1 and gamma 1 repeat the cycle).
Writes tests/fixtures/optim_ref.safetensors."""
import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from oracle_util import save

torch.manual_seed(20261128)
t = {}


# ---- AdamW ---------------------------------------------------------------------
def adamw_case(tag, lrs, betas, eps, wd):
    shapes = {"a.weight": (5, 7), "a.bias": (5,), "b.weight": (3, 2, 4), "c": (11,)}
    decay = {"a.weight": 1, "a.bias": 0, "b.weight": 1, "c": 0}
    ps = {k: torch.nn.Parameter(torch.randn(*s)) for k, s in shapes.items()}
    for k, p in ps.items():
        t[f"{tag}.init.{k}"] = p.detach().clone()
    groups = [{"params": [ps[k] for k in ps if decay[k]], "weight_decay": wd},
              {"params": [ps[k] for k in ps if not decay[k]], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lrs[0], betas=betas, eps=eps, foreach=False)
    for s, lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = lr
        for k, p in ps.items():
            # gradients of mixed scale, some tiny, so eps matters
            g = torch.randn_like(p) * (10.0 ** torch.randint(-4, 2, p.shape).float())
            p.grad = g
            t[f"{tag}.grad{s}.{k}"] = g.clone()
        opt.step()
        for k, p in ps.items():
            t[f"{tag}.after{s}.{k}"] = p.detach().clone()
    t[f"{tag}.lrs"] = torch.tensor(lrs, dtype=torch.float64)
    t[f"{tag}.hyper"] = torch.tensor([betas[0], betas[1], eps, wd], dtype=torch.float64)


adamw_case("mgca", [2e-5, 1.3e-5, 7e-6, 1e-8], (0.9, 0.999), 1e-8, 0.05)
adamw_case("odd", [3e-2, 1e-2, 5e-3, 2e-2], (0.8, 0.99), 1e-6, 0.3)


# ---- clip_grad_norm_ -------------------------------------------------------------
def clip_case(tag, max_norm, scale):
    ps = [torch.nn.Parameter(torch.zeros(*s)) for s in [(4, 6), (9,), (2, 3, 5)]]
    for i, p in enumerate(ps):
        p.grad = torch.randn_like(p) * scale
        t[f"{tag}.grad{i}"] = p.grad.clone()
    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm, foreach=False)
    t[f"{tag}.norm"] = norm.double().reshape(1)
    t[f"{tag}.max_norm"] = torch.tensor([max_norm], dtype=torch.float64)
    for i, p in enumerate(ps):
        t[f"{tag}.clipped{i}"] = p.grad.clone()


clip_case("clip_hi", 1.0, 3.0)   # norm about 24: clipped
clip_case("clip_lo", 100.0, 1.0)  # norm about 8: untouched


# ---- MGCA's schedule -------------------------------------------------------------
class WarmupCosine(LRScheduler):
    """CosineAnnealingWarmupRestarts with cycle_mult 1 and gamma 1 (MGCA's use)."""

    def __init__(self, optimizer, first_cycle_steps, max_lr, min_lr, warmup_steps):
        assert warmup_steps < first_cycle_steps
        self.cycle_steps, self.max_lr, self.min_lr, self.warm = first_cycle_steps, max_lr, min_lr, warmup_steps
        self.step_in_cycle = -1
        super().__init__(optimizer, -1)
        for g in self.optimizer.param_groups:  # the class's init_lr()
            g["lr"] = min_lr
        self.base_lrs = [min_lr for _ in self.optimizer.param_groups]

    def get_lr(self):
        s, w = self.step_in_cycle, self.warm
        if s == -1:
            return list(self.base_lrs)
        if s < w:
            return [(self.max_lr - b) * s / w + b for b in self.base_lrs]
        return [b + (self.max_lr - b) * (1 + math.cos(math.pi * (s - w) / (self.cycle_steps - w))) / 2
                for b in self.base_lrs]

    def step(self, epoch=None):
        self.step_in_cycle += 1
        if self.step_in_cycle >= self.cycle_steps:
            self.step_in_cycle -= self.cycle_steps
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def sched_case(tag, total, run, max_lr, min_lr, frac=0.4):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=max_lr)
    warm = int(total * frac)
    sch = WarmupCosine(opt, total, max_lr, min_lr, warm)
    lrs = []
    for _ in range(run):
        lrs.append(opt.param_groups[0]["lr"])  # the lr this optimiser step uses
        sch.step()
    t[f"{tag}.lrs"] = torch.tensor(lrs, dtype=torch.float64)
    t[f"{tag}.cfg"] = torch.tensor([total, warm, max_lr, min_lr], dtype=torch.float64)


sched_case("sched_a", 10, 10, 2e-5, 1e-8)
sched_case("sched_b", 37, 80, 1e-3, 1e-6)      # runs past the cycle: it restarts
sched_case("sched_c", 5, 5, 0.1, 0.01, frac=0.0)  # no warm-up: the first step is still at min_lr

save("optim_ref.safetensors", t)
