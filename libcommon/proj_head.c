/* proj_head.c — MGCA's GlobalEmbedding head (proj_head.h): Linear, BatchNorm1d,
 * ReLU, Linear, BatchNorm1d without affine, forward in both modes and backward,
 * over the shared kernels (gemm, batchnorm, activation). */
#include "proj_head.h"

#include "activation.h"
#include "batchnorm.h"
#include "common.h"
#include "gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

void proj_head_create(proj_head *h, int in, int hidden, int out)
{
    CHECK(in > 0 && hidden > 0 && out > 0);
    memset(h, 0, sizeof *h);
    h->in = in;
    h->hidden = hidden;
    h->out = out;
    param_set_init(&h->params);
    param_set_init(&h->buffers);
    /* MGCA's AdamW decays every parameter (one group) */
    param_add(&h->params, "head.0.weight", 2, (int64_t[]){hidden, in}, 1);
    param_add(&h->params, "head.0.bias", 1, (int64_t[]){hidden}, 1);
    param_add(&h->params, "head.1.weight", 1, (int64_t[]){hidden}, 1);
    param_add(&h->params, "head.1.bias", 1, (int64_t[]){hidden}, 1);
    param_add(&h->params, "head.3.weight", 2, (int64_t[]){out, hidden}, 1);
    param_add(&h->params, "head.3.bias", 1, (int64_t[]){out}, 1);
    param_add(&h->buffers, "head.1.running_mean", 1, (int64_t[]){hidden}, 0);
    param_add(&h->buffers, "head.1.running_var", 1, (int64_t[]){hidden}, 0);
    param_add_count(&h->buffers, "head.1.num_batches_tracked");
    param_add(&h->buffers, "head.4.running_mean", 1, (int64_t[]){out}, 0);
    param_add(&h->buffers, "head.4.running_var", 1, (int64_t[]){out}, 0);
    param_add_count(&h->buffers, "head.4.num_batches_tracked");
    param_set_alloc(&h->params, 1);
    param_set_alloc(&h->buffers, 0);
    h->w0 = param_get(&h->params, "head.0.weight");
    h->b0 = param_get(&h->params, "head.0.bias");
    h->g1 = param_get(&h->params, "head.1.weight");
    h->be1 = param_get(&h->params, "head.1.bias");
    h->w3 = param_get(&h->params, "head.3.weight");
    h->b3 = param_get(&h->params, "head.3.bias");
    h->rm1 = param_get(&h->buffers, "head.1.running_mean");
    h->rv1 = param_get(&h->buffers, "head.1.running_var");
    h->nbt1 = param_get(&h->buffers, "head.1.num_batches_tracked");
    h->rm4 = param_get(&h->buffers, "head.4.running_mean");
    h->rv4 = param_get(&h->buffers, "head.4.running_var");
    h->nbt4 = param_get(&h->buffers, "head.4.num_batches_tracked");
    for (int i = 0; i < hidden; i++) h->g1[i] = h->rv1[i] = 1.0f;
    for (int i = 0; i < out; i++) h->rv4[i] = 1.0f;
}

void proj_head_free(proj_head *h)
{
    param_set_free(&h->params);
    param_set_free(&h->buffers);
    memset(h, 0, sizeof *h);
}

static void uniform_fill(torch_gen *g, float *p, size_t n, float bound)
{
    torch_rand_f32(g, p, (int64_t)n);
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * p[i] - 1.0f) * bound;
}

void proj_head_init_random(proj_head *h, torch_gen *g)
{
    float b0 = 1.0f / sqrtf((float)h->in), b3 = 1.0f / sqrtf((float)h->hidden);
    uniform_fill(g, h->w0, (size_t)h->hidden * h->in, b0);
    uniform_fill(g, h->b0, (size_t)h->hidden, b0);
    uniform_fill(g, h->w3, (size_t)h->out * h->hidden, b3);
    uniform_fill(g, h->b3, (size_t)h->out, b3);
}

void proj_head_cache_init(proj_head_cache *c) { memset(c, 0, sizeof *c); }

void proj_head_cache_free(proj_head_cache *c)
{
    free(c->h0);
    free(c->h1);
    free(c->h2);
    free(c->h3);
    free(c->mean1);
    free(c->rstd1);
    free(c->mean4);
    free(c->rstd4);
    free(c->dh);
    free(c->dh3);
    memset(c, 0, sizeof *c);
}

static void cache_reserve(proj_head_cache *c, const proj_head *h, int n)
{
    if (c->cap >= n && c->mean1) return;
    proj_head_cache_free(c);
    size_t nh = (size_t)n * h->hidden, no = (size_t)n * h->out;
    c->h0 = xmalloc(nh * sizeof(float));
    c->h1 = xmalloc(nh * sizeof(float));
    c->h2 = xmalloc(nh * sizeof(float));
    c->dh = xmalloc(nh * sizeof(float));
    c->h3 = xmalloc(no * sizeof(float));
    c->dh3 = xmalloc(no * sizeof(float));
    c->mean1 = xmalloc((size_t)h->hidden * sizeof(float));
    c->rstd1 = xmalloc((size_t)h->hidden * sizeof(float));
    c->mean4 = xmalloc((size_t)h->out * sizeof(float));
    c->rstd4 = xmalloc((size_t)h->out * sizeof(float));
    c->cap = n;
}

void proj_head_forward_train(float *out, proj_head_cache *c, const proj_head *h, const float *inp, int n)
{
    if (n < 2) die("projection head: BatchNorm in training mode needs a batch of 2 or more, got %d", n);
    cache_reserve(c, h, n);
    c->n = n;
    linear_forward(c->h0, inp, h->w0, h->b0, n, h->in, h->hidden);
    batchnorm_forward_train(c->h1, c->mean1, c->rstd1, h->rm1, h->rv1, c->h0, h->g1, h->be1, n, h->hidden, 1,
                            BN_MOMENTUM, BN_EPS);
    relu_forward(c->h2, c->h1, (size_t)n * h->hidden);
    linear_forward(c->h3, c->h2, h->w3, h->b3, n, h->hidden, h->out);
    batchnorm_forward_train(out, c->mean4, c->rstd4, h->rm4, h->rv4, c->h3, NULL, NULL, n, h->out, 1,
                            BN_MOMENTUM, BN_EPS);
    *h->nbt1 += 1;
    *h->nbt4 += 1;
}

void proj_head_forward_eval(float *out, const proj_head *h, const float *inp, int n)
{
    float *t = xmalloc((size_t)n * h->hidden * sizeof(float));
    float *t3 = xmalloc((size_t)n * h->out * sizeof(float));
    linear_forward(t, inp, h->w0, h->b0, n, h->in, h->hidden);
    batchnorm_forward_eval(t, t, h->rm1, h->rv1, h->g1, h->be1, n, h->hidden, 1, BN_EPS);
    relu_forward(t, t, (size_t)n * h->hidden);
    linear_forward(t3, t, h->w3, h->b3, n, h->hidden, h->out);
    batchnorm_forward_eval(out, t3, h->rm4, h->rv4, NULL, NULL, n, h->out, 1, BN_EPS);
    free(t);
    free(t3);
}

void proj_head_backward(float *dinp, proj_head *h, proj_head_cache *c, const float *dout, const float *inp)
{
    int n = c->n;
    CHECK(n >= 2 && h->params.grad != NULL);
    size_t nh = (size_t)n * h->hidden;
    float *gw0 = param_grad(&h->params, "head.0.weight"), *gb0 = param_grad(&h->params, "head.0.bias");
    float *gg1 = param_grad(&h->params, "head.1.weight"), *gbe1 = param_grad(&h->params, "head.1.bias");
    float *gw3 = param_grad(&h->params, "head.3.weight"), *gb3 = param_grad(&h->params, "head.3.bias");
    memset(c->dh3, 0, (size_t)n * h->out * sizeof(float));
    batchnorm_backward(c->dh3, NULL, NULL, dout, c->h3, NULL, c->mean4, c->rstd4, n, h->out, 1);
    memset(c->dh, 0, nh * sizeof(float));
    linear_backward(c->dh, gw3, gb3, c->dh3, c->h2, h->w3, n, h->hidden, h->out);
    /* h2 (the ReLU output) is no longer needed: its room takes the ReLU's input gradient */
    memset(c->h2, 0, nh * sizeof(float));
    relu_backward(c->h2, c->dh, c->h1, nh); /* h1 > 0 exactly where the output is */
    memset(c->dh, 0, nh * sizeof(float));
    batchnorm_backward(c->dh, gg1, gbe1, c->h2, c->h0, h->g1, c->mean1, c->rstd1, n, h->hidden, 1);
    linear_backward(dinp, gw0, gb0, c->dh, inp, h->w0, n, h->in, h->hidden);
}
