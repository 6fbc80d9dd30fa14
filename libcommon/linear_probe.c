/* linear_probe.c — one Linear on frozen features, AdamW, early stopping
 * (MGCA's linear-evaluation protocol; choices in the header). */
#include "linear_probe.h"

#include "common.h"
#include "gemm.h"
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

probe_config probe_defaults(int multi_label, uint64_t seed) {
    return (probe_config){.lr = 5e-4f, .weight_decay = 1e-6f, .batch = 48, .max_epochs = 50, .patience = 10,
                          .multi_label = multi_label, .seed = seed};
}

void probe_init(linear_probe *p, int in_f, int out_f, uint64_t seed) {
    CHECK(in_f >= 1 && out_f >= 1);
    memset(p, 0, sizeof *p);
    p->in_f = in_f;
    p->out_f = out_f;
    param_set_init(&p->ps);
    int64_t ws[2] = {out_f, in_f}, bs[1] = {out_f};
    param_add(&p->ps, "weight", 2, ws, 1);
    param_add(&p->ps, "bias", 1, bs, 1);   /* torch's AdamW decays the bias too */
    param_set_alloc(&p->ps, 1);
    p->weight = param_get(&p->ps, "weight");
    p->bias = param_get(&p->ps, "bias");
    p->m = xcalloc(p->ps.total, sizeof *p->m);
    p->v = xcalloc(p->ps.total, sizeof *p->v);
    uint64_t st = seed ^ 0x11ea4b0beull;
    double bound = 1.0 / sqrt((double)in_f);
    for (size_t i = 0; i < p->ps.total; i++) {
        double u = (double)(splitmix64_next(&st) >> 11) * 0x1p-53;   /* [0, 1) */
        p->ps.data[i] = (float)((2 * u - 1) * bound);
    }
}

void probe_free(linear_probe *p) {
    param_set_free(&p->ps);
    free(p->m);
    free(p->v);
    memset(p, 0, sizeof *p);
}

double probe_loss(const float *logits, const float *target, int n, int out, int multi_label, float *dlogits) {
    double sum = 0;
    if (multi_label) {
        /* torch's binary_cross_entropy_with_logits: max(x,0) - x t + log1p(exp(-|x|)) */
        double scale = 1.0 / ((double)n * out);
        for (long i = 0; i < (long)n * out; i++) {
            double x = logits[i], t = target[i];
            sum += fmax(x, 0) - x * t + log1p(exp(-fabs(x)));
            if (dlogits) dlogits[i] += (float)((1 / (1 + exp(-x)) - t) * scale);
        }
        return sum * scale;
    }
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * out, *t = target + (size_t)i * out;
        double mx = x[0];
        for (int j = 1; j < out; j++) mx = fmax(mx, x[j]);
        double z = 0;
        for (int j = 0; j < out; j++) z += exp(x[j] - mx);
        double lse = mx + log(z);
        for (int j = 0; j < out; j++) {
            sum += t[j] * (lse - x[j]);
            if (dlogits) dlogits[(size_t)i * out + j] += (float)((exp(x[j] - lse) - t[j]) / n);
        }
    }
    return sum / n;
}

double probe_step(linear_probe *p, const probe_config *c, const float *x, const float *target, int b) {
    float *logits = xmalloc((size_t)b * p->out_f * sizeof *logits);
    float *dlogits = xcalloc((size_t)b * p->out_f, sizeof *dlogits);
    linear_forward(logits, x, p->weight, p->bias, b, p->in_f, p->out_f);
    double loss = probe_loss(logits, target, b, p->out_f, c->multi_label, dlogits);
    param_zero_grad(&p->ps);
    linear_backward(NULL, param_grad(&p->ps, "weight"), param_grad(&p->ps, "bias"), dlogits, x, p->weight, b,
                    p->in_f, p->out_f);
    adamw_config ac = adamw_defaults(c->lr);
    ac.weight_decay = c->weight_decay;
    adamw_step(&p->ps, p->m, p->v, ++p->t, &ac);
    free(logits);
    free(dlogits);
    return loss;
}

void probe_predict(const linear_probe *p, const float *x, long n, float *logits) {
    const long chunk = 4096;
    for (long i = 0; i < n; i += chunk) {
        long b = n - i < chunk ? n - i : chunk;
        linear_forward(logits + i * p->out_f, x + i * p->in_f, p->weight, p->bias, (int)b, p->in_f, p->out_f);
    }
}

double probe_eval_loss(const linear_probe *p, const float *x, const float *target, long n, int multi_label) {
    CHECK(n >= 1);
    const long chunk = 4096;
    float *logits = xmalloc((size_t)(n < chunk ? n : chunk) * p->out_f * sizeof *logits);
    double sum = 0;
    for (long i = 0; i < n; i += chunk) {
        long b = n - i < chunk ? n - i : chunk;
        linear_forward(logits, x + i * p->in_f, p->weight, p->bias, (int)b, p->in_f, p->out_f);
        sum += probe_loss(logits, target + i * p->out_f, (int)b, p->out_f, multi_label, NULL) * (double)b;
    }
    free(logits);
    return sum / (double)n;
}

probe_result probe_train(linear_probe *p, const probe_config *c, const float *xtr, const float *ttr, long ntr,
                         const float *xval, const float *tval, long nval) {
    CHECK(ntr >= 1 && nval >= 1 && c->batch >= 1);
    probe_result r = {0};
    r.best_val_loss = INFINITY;
    long *order = xmalloc((size_t)ntr * sizeof *order);
    for (long i = 0; i < ntr; i++) order[i] = i;
    int B = c->batch;
    float *xb = xmalloc((size_t)B * p->in_f * sizeof *xb), *tb = xmalloc((size_t)B * p->out_f * sizeof *tb);
    float *best = xmalloc(p->ps.total * sizeof *best);
    memcpy(best, p->ps.data, p->ps.total * sizeof *best);
    uint64_t st = c->seed ^ 0x5eedf1e1d5ull;
    int since = 0;
    for (int ep = 1; ep <= c->max_epochs; ep++) {
        for (long i = ntr - 1; i > 0; i--) {
            long j = (long)splitmix64_below(&st, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double tsum = 0;
        for (long s = 0; s < ntr; s += B) {
            int b = (int)(ntr - s < B ? ntr - s : B);
            for (int k = 0; k < b; k++) {
                memcpy(xb + (size_t)k * p->in_f, xtr + order[s + k] * p->in_f, (size_t)p->in_f * sizeof *xb);
                memcpy(tb + (size_t)k * p->out_f, ttr + order[s + k] * p->out_f, (size_t)p->out_f * sizeof *tb);
            }
            tsum += probe_step(p, c, xb, tb, b) * b;
        }
        r.last_train_loss = tsum / (double)ntr;
        double vl = probe_eval_loss(p, xval, tval, nval, c->multi_label);
        if (!isfinite(vl)) die("linear probe: validation loss is %g at epoch %d", vl, ep);
        r.epochs_run = ep;
        if (vl < r.best_val_loss) {
            r.best_val_loss = vl;
            r.best_epoch = ep;
            memcpy(best, p->ps.data, p->ps.total * sizeof *best);
            since = 0;
        } else {
            since++;
        }
        int stop = since >= c->patience || ep == c->max_epochs;
        if (ep == 1 || ep % 10 == 0 || stop)
            info("probe epoch %d: train loss %.5f, validation loss %.5f (best %.5f at epoch %d)%s", ep,
                 r.last_train_loss, vl, r.best_val_loss, r.best_epoch, since >= c->patience ? ", stopping" : "");
        if (since >= c->patience) break;
    }
    memcpy(p->ps.data, best, p->ps.total * sizeof *best);
    free(best);
    free(xb);
    free(tb);
    free(order);
    return r;
}
