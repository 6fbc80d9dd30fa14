/* proj_head.h — MGCA's GlobalEmbedding projection head, the one ConVIRT,
 * GLoRIA-style global losses and MGCA put on top of each encoder:
 *   head.0 Linear(in, hidden) - head.1 BatchNorm1d(hidden) - head.2 ReLU -
 *   head.3 Linear(hidden, out) - head.4 BatchNorm1d(out, affine=False)
 * (MGCA: hidden 2048, out 128). Tensors carry the torch state-dict names
 * (head.0.weight, head.1.running_mean, head.4.num_batches_tracked, ...) in two
 * param_sets: params (with gradients) and buffers (BatchNorm running statistics).
 * BatchNorm: eps 1e-5, momentum 0.1, as torch's defaults. */
#ifndef SYNTHCXR_PROJ_HEAD_H
#define SYNTHCXR_PROJ_HEAD_H

#include "params.h"
#include "rng.h"

typedef struct proj_head {
    int in, hidden, out;
    param_set params, buffers;
    /* into params: w0 [hidden, in], b0 [hidden], g1, be1 [hidden], w3 [out, hidden], b3 [out] */
    float *w0, *b0, *g1, *be1, *w3, *b3;
    /* into buffers: rm1, rv1 [hidden], rm4, rv4 [out], nbt1, nbt4 (counters) */
    float *rm1, *rv1, *rm4, *rv4, *nbt1, *nbt4;
} proj_head;

/* Activations of one training forward, kept for the backward (batch n). */
typedef struct proj_head_cache {
    int n, cap;
    float *h0;            /* [n, hidden] Linear 0 output (BN 1 input) */
    float *h1;            /* [n, hidden] BN 1 output (ReLU input) */
    float *h2;            /* [n, hidden] ReLU output (Linear 3 input) */
    float *h3;            /* [n, out]    Linear 3 output (BN 4 input) */
    float *mean1, *rstd1; /* [hidden] */
    float *mean4, *rstd4; /* [out] */
    float *dh;            /* [n, hidden] scratch for the backward */
    float *dh3;           /* [n, out] */
} proj_head_cache;

/* Registers and allocates (params with gradients); running_var = 1, BN weight 1,
 * everything else 0. Call proj_head_init_random or load weights after. */
void proj_head_create(proj_head *h, int in, int hidden, int out);
void proj_head_free(proj_head *h);
/* torch's default initialisation in distribution: Linear weight and bias
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), drawn
 * from g with torch.rand's stream (not torch's exact draws). */
void proj_head_init_random(proj_head *h, torch_gen *g);

void proj_head_cache_init(proj_head_cache *c);
void proj_head_cache_free(proj_head_cache *c);

/* Training mode: batch statistics, running statistics and num_batches_tracked
 * updated; fills the cache. out [n, out]; inp [n, in]; n >= 2 (torch refuses
 * BatchNorm training on one sample). */
void proj_head_forward_train(float *out, proj_head_cache *c, const proj_head *h, const float *inp, int n);
/* Eval mode (running statistics); touches no state. out [n, out]; inp [n, in]. */
void proj_head_forward_eval(float *out, const proj_head *h, const float *inp, int n);
/* Backward of the last training forward (once: it reuses the cache's room):
 * parameter gradients (+=) into
 * h->params.grad, dinp [n, in] += (dinp may be NULL). dout [n, out]; inp [n, in]
 * as given to the forward. */
void proj_head_backward(float *dinp, proj_head *h, proj_head_cache *c, const float *dout, const float *inp);

#endif
