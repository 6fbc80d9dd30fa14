/* optim.c — AdamW, gradient clipping and the warm-up cosine schedule (optim.h). */
#include "optim.h"

#include "common.h"

#include <math.h>

adamw_config adamw_defaults(float lr)
{
    adamw_config c = {lr, 0.9f, 0.999f, 1e-8f, 0.01f};
    return c;
}

void adamw_step(param_set *ps, float *m, float *v, int64_t t, const adamw_config *c)
{
    CHECK(ps->grad != NULL && t >= 1);
    /* torch computes these in double (python floats) and hands them over as scalars */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    float step_size = (float)(c->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    /* and so are 1 - beta and 1 - lr * wd (python floats, rounded to float once:
     * computing them in float instead moves results by an ulp) */
    float b2 = c->beta2, eps = c->eps;
    float w1 = (float)(1.0 - (double)c->beta1), w2 = (float)(1.0 - (double)c->beta2);
    float wdecay = (float)(1.0 - (double)c->lr * (double)c->weight_decay);
    for (int k = 0; k < ps->n; k++) {
        const param_entry *e = &ps->e[k];
        float decay = e->decay ? wdecay : 1.0f;
        float *p = ps->data + e->offset, *g = ps->grad + e->offset;
        float *mk = m + e->offset, *vk = v + e->offset;
        size_t n = e->numel;
        #pragma omp parallel for if (n > 65536) schedule(static)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            p[i] *= decay;
            /* torch: m.lerp_(g, 1-b1); v.mul_(b2).addcmul_(g, g, value=1-b2) */
            mk[i] += (gi - mk[i]) * w1;
            vk[i] = vk[i] * b2 + w2 * gi * gi;
            float denom = sqrtf(vk[i]) / bc2_sqrt + eps;
            /* torch addcdiv_(m, denom, value=-step_size): p + (value * m) / denom */
            p[i] += (-step_size * mk[i]) / denom;
        }
    }
}

double clip_grad_norm_multi(param_set *const *ps, int n, double max_norm)
{
    double ss = 0;
    for (int j = 0; j < n; j++) {
        const float *g = ps[j]->grad;
        size_t tot = ps[j]->total;
        #pragma omp parallel for reduction(+ : ss) if (tot > 65536)
        for (size_t i = 0; i < tot; i++) ss += (double)g[i] * g[i];
    }
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (int j = 0; j < n; j++) {
            float *g = ps[j]->grad;
            size_t tot = ps[j]->total;
            #pragma omp parallel for if (tot > 65536)
            for (size_t i = 0; i < tot; i++) g[i] *= s;
        }
    }
    return norm;
}

double clip_grad_norm(param_set *ps, double max_norm) { return clip_grad_norm_multi(&ps, 1, max_norm); }

double lr_cosine_warmup(int64_t step, int64_t total, int64_t warmup, double lr, double min_lr)
{
    /* the scheduler's constructor leaves every group at min_lr, whatever the warm-up */
    if (step <= 0) return min_lr;
    if (total <= 0 || warmup >= total) return lr;
    int64_t s = step % total; /* restarts (cycle_mult 1, gamma 1) repeat the cycle */
    if (s < warmup) return (lr - min_lr) * (double)s / (double)warmup + min_lr;
    return min_lr + (lr - min_lr) * (1.0 + cos(M_PI * (double)(s - warmup) / (double)(total - warmup))) / 2.0;
}
