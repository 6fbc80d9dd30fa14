/* optim.h — what every trainer here shares: torch.optim.AdamW over a whole
 * parameter block (one loop, llm.c style), torch.nn.utils.clip_grad_norm_, and
 * the learning-rate schedule of MGCA's recipe (linear warm-up, then cosine down
 * to a floor). vlptrain and cxreval's linear probe both use these. */
#ifndef SYNTHCXR_OPTIM_H
#define SYNTHCXR_OPTIM_H

#include "params.h"

#include <stdint.h>

typedef struct adamw_config {
    float lr, beta1, beta2, eps, weight_decay;
} adamw_config;

/* torch.optim.AdamW's defaults with the given lr: beta1 0.9, beta2 0.999,
 * eps 1e-8, weight_decay 0.01 (callers set MGCA's 0.05 themselves). */
adamw_config adamw_defaults(float lr);

/* One AdamW step, as torch.optim.AdamW (foreach=False): for every float of the
 * block, p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * step t counts from 1. Entries with decay == 0 get no weight decay (torch
 * decays every parameter of a group: MGCA does, so its models set decay = 1
 * everywhere). m, v: [ps->total], zero before the first step. */
void adamw_step(param_set *ps, float *m, float *v, int64_t t, const adamw_config *c);

/* Total L2 norm of ps->grad over all entries (double accumulation); if it
 * exceeds max_norm > 0 the gradients are scaled by max_norm / (norm + 1e-6), as
 * torch.nn.utils.clip_grad_norm_. Returns the norm before clipping. */
double clip_grad_norm(param_set *ps, double max_norm);
/* The same over several blocks at once (one model in several parts). */
double clip_grad_norm_multi(param_set *const *ps, int n, double max_norm);

/* The lr of optimiser step `step` (0-based) under MGCA's schedule, the
 * CosineAnnealingWarmupRestarts class (katsura-jp) with first_cycle_steps =
 * total, cycle_mult 1, gamma 1, max_lr = lr, warmup_steps = warmup (MGCA:
 * (int64_t)(0.4 * total)), stepped after every optimiser step:
 *   step 0:        min_lr (the class starts every group there)
 *   s < warmup:    min_lr + (lr - min_lr) * s / warmup
 *   otherwise:     min_lr + (lr - min_lr) * (1 + cos(pi (s - warmup) / (total - warmup))) / 2
 * with s = step mod total (past the end the cycle restarts). The last step of
 * the cycle stays a little above min_lr, as in the class. warmup >= total
 * (which the class refuses) gives lr. */
double lr_cosine_warmup(int64_t step, int64_t total, int64_t warmup, double lr, double min_lr);

#endif
