/* unet_blocks.c — the layers of diffusers' UNet2DConditionModel on the
 * libcommon CPU kernels: ResnetBlock2D, Transformer2DModel (GroupNorm, proj_in,
 * BasicTransformerBlocks of self-attention, cross-attention and a GEGLU
 * feed-forward, proj_out, residual), the down/up-sampling convolutions, the
 * scratch arena and the weight registry. Formulas follow diffusers 0.42
 * (models/resnet.py, transformers/transformer_2d.py, attention.py). */
#include "unet_blocks.h"

#include "activation.h"
#include "attention.h"
#include "common.h"
#include "conv2d.h"
#include "eltwise.h"
#include "gemm.h"
#include "norm.h"
#include "upsample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------- */

void unet_arena_begin(unet_arena *a) {
    if (a->n > 1) {
        /* the last call spilled into several chunks: one chunk of its peak */
        for (int i = 0; i < a->n; i++) free(a->c[i].p);
        a->c[0].p = xmalloc_aligned(a->peak * sizeof(float));
        a->c[0].cap = a->peak;
        a->n = 1;
    }
    a->cur = 0;
    if (a->n) a->c[0].used = 0;
    a->live = 0;
}

float *unet_arena_alloc(unet_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;             /* keeps every block 64-byte aligned */
    while (a->cur < a->n && a->c[a->cur].used + n > a->c[a->cur].cap) {
        a->cur++;
        if (a->cur < a->n) a->c[a->cur].used = 0;
    }
    if (a->cur == a->n) {
        /* at least 1 MiB, and no smaller than the last chunk, so a first call
         * makes a handful of chunks, not one per buffer */
        size_t cap = n > ((size_t)1 << 18) ? n : (size_t)1 << 18;
        if (a->n && a->c[a->n - 1].cap > cap) cap = a->c[a->n - 1].cap;
        a->c = xrealloc(a->c, (size_t)(a->n + 1) * sizeof *a->c);
        a->c[a->n].p = xmalloc_aligned(cap * sizeof(float));
        a->c[a->n].cap = cap;
        a->c[a->n].used = 0;
        a->n++;
    }
    float *p = a->c[a->cur].p + a->c[a->cur].used;
    a->c[a->cur].used += n;
    a->live += n;
    if (a->live > a->peak) a->peak = a->live;
    return p;
}

unet_arena_mark unet_arena_save(const unet_arena *a) {
    unet_arena_mark m = {a->cur, a->cur < a->n ? a->c[a->cur].used : 0, a->live};
    return m;
}

void unet_arena_restore(unet_arena *a, unet_arena_mark m) {
    a->cur = m.cur;
    if (a->cur < a->n) a->c[a->cur].used = m.used;
    a->live = m.live;
}

void unet_arena_free(unet_arena *a) {
    for (int i = 0; i < a->n; i++) free(a->c[i].p);
    free(a->c);
    memset(a, 0, sizeof *a);
}

/* ---- registry --------------------------------------------------------------- */

void unet_reg(unet_registry *r, float **dst, const char *prefix, const char *what, int ndim, int64_t d0,
              int64_t d1, int64_t d2, int64_t d3) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->p = xrealloc(r->p, (size_t)r->cap * sizeof *r->p);
    }
    unet_param *p = &r->p[r->n++];
    p->name = xasprintf("%s.%s", prefix, what);
    p->ndim = ndim;
    p->shape[0] = d0, p->shape[1] = d1, p->shape[2] = d2, p->shape[3] = d3;
    p->dst = dst;
}

void unet_registry_free(unet_registry *r) {
    for (int i = 0; i < r->n; i++) free(r->p[i].name);
    free(r->p);
    memset(r, 0, sizeof *r);
}

/* ---- convolutions ----------------------------------------------------------- */

void unet_conv(float *out, const float *inp, const float *w, const float *b, int B, int cin, int cout, int H,
               int W, int k, int stride) {
    conv2d_dims d = {.batch = B, .in_ch = cin, .in_h = H, .in_w = W, .out_ch = cout, .k_h = k, .k_w = k,
                     .stride_h = stride, .stride_w = stride, .pad_h = (k - 1) / 2, .pad_w = (k - 1) / 2};
    conv2d_forward(out, inp, w, b, &d);
}

void unet_downsample_forward(float *out, const float *inp, const float *w, const float *b, int B, int ch,
                             int H, int W) {
    unet_conv(out, inp, w, b, B, ch, ch, H, W, 3, 2);
}

void unet_upsample_forward(float *out, const float *inp, const float *w, const float *b, int B, int ch, int H,
                           int W, unet_arena *a) {
    unet_arena_mark m = unet_arena_save(a);
    float *up = unet_arena_alloc(a, (size_t)B * ch * 4 * H * W);   /* [B, ch, 2H, 2W] */
    upsample_nearest2x_forward(up, inp, B, ch, H, W);
    unet_conv(out, up, w, b, B, ch, ch, 2 * H, 2 * W, 3, 1);
    unet_arena_restore(a, m);
}

/* ---- ResnetBlock2D ------------------------------------------------------------ */

void resnet_block_register(unet_registry *r, resnet_block *rb, const char *prefix) {
    int ci = rb->cin, co = rb->cout;
    unet_reg(r, &rb->norm1_w, prefix, "norm1.weight", 1, ci, 0, 0, 0);
    unet_reg(r, &rb->norm1_b, prefix, "norm1.bias", 1, ci, 0, 0, 0);
    unet_reg(r, &rb->conv1_w, prefix, "conv1.weight", 4, co, ci, 3, 3);
    unet_reg(r, &rb->conv1_b, prefix, "conv1.bias", 1, co, 0, 0, 0);
    unet_reg(r, &rb->temb_w, prefix, "time_emb_proj.weight", 2, co, rb->temb_dim, 0, 0);
    unet_reg(r, &rb->temb_b, prefix, "time_emb_proj.bias", 1, co, 0, 0, 0);
    unet_reg(r, &rb->norm2_w, prefix, "norm2.weight", 1, co, 0, 0, 0);
    unet_reg(r, &rb->norm2_b, prefix, "norm2.bias", 1, co, 0, 0, 0);
    unet_reg(r, &rb->conv2_w, prefix, "conv2.weight", 4, co, co, 3, 3);
    unet_reg(r, &rb->conv2_b, prefix, "conv2.bias", 1, co, 0, 0, 0);
    if (ci != co) {
        unet_reg(r, &rb->short_w, prefix, "conv_shortcut.weight", 4, co, ci, 1, 1);
        unet_reg(r, &rb->short_b, prefix, "conv_shortcut.bias", 1, co, 0, 0, 0);
    }
}

void resnet_block_forward(float *out, const float *inp, const float *temb_act, const resnet_block *rb, int B,
                          int H, int W, unet_arena *a) {
    int hw = H * W, ci = rb->cin, co = rb->cout;
    unet_arena_mark m = unet_arena_save(a);
    float *t1 = unet_arena_alloc(a, (size_t)B * (ci > co ? ci : co) * hw);   /* normed input, then normed h */
    float *h = unet_arena_alloc(a, (size_t)B * co * hw);                     /* [B, co, H, W] */
    float *tp = unet_arena_alloc(a, (size_t)B * co);                         /* [B, co] */
    groupnorm_silu_forward(t1, inp, rb->norm1_w, rb->norm1_b, B, ci, hw, rb->groups, rb->eps);
    unet_conv(h, t1, rb->conv1_w, rb->conv1_b, B, ci, co, H, W, 3, 1);
    linear_forward(tp, temb_act, rb->temb_w, rb->temb_b, B, rb->temb_dim, co);
    eltwise_add_batch_channels(h, tp, B, co, hw);
    groupnorm_silu_forward(t1, h, rb->norm2_w, rb->norm2_b, B, co, hw, rb->groups, rb->eps);
    unet_conv(out, t1, rb->conv2_w, rb->conv2_b, B, co, co, H, W, 3, 1);
    size_t n = (size_t)B * co * hw;
    if (rb->short_w) {
        unet_conv(h, inp, rb->short_w, rb->short_b, B, ci, co, H, W, 1, 1);
        eltwise_add(out, out, h, n);
    } else {
        eltwise_add(out, out, inp, n);
    }
    if (rb->out_scale != 1.0f) eltwise_scale(out, out, 1.0f / rb->out_scale, n);
    unet_arena_restore(a, m);
}

/* ---- Transformer2DModel --------------------------------------------------------- */

void transformer2d_register(unet_registry *r, transformer2d *tr, const char *prefix) {
    int c = tr->ch, d = tr->inner;
    unet_reg(r, &tr->norm_w, prefix, "norm.weight", 1, c, 0, 0, 0);
    unet_reg(r, &tr->norm_b, prefix, "norm.bias", 1, c, 0, 0, 0);
    if (tr->linear_proj) {
        unet_reg(r, &tr->pin_w, prefix, "proj_in.weight", 2, d, c, 0, 0);
        unet_reg(r, &tr->pout_w, prefix, "proj_out.weight", 2, c, d, 0, 0);
    } else {
        unet_reg(r, &tr->pin_w, prefix, "proj_in.weight", 4, d, c, 1, 1);
        unet_reg(r, &tr->pout_w, prefix, "proj_out.weight", 4, c, d, 1, 1);
    }
    unet_reg(r, &tr->pin_b, prefix, "proj_in.bias", 1, d, 0, 0, 0);
    unet_reg(r, &tr->pout_b, prefix, "proj_out.bias", 1, c, 0, 0, 0);
    for (int l = 0; l < tr->n_layers; l++) {
        basic_block *bb = &tr->blocks[l];
        char *p = xasprintf("%s.transformer_blocks.%d", prefix, l);
        unet_reg(r, &bb->norm1_w, p, "norm1.weight", 1, d, 0, 0, 0);
        unet_reg(r, &bb->norm1_b, p, "norm1.bias", 1, d, 0, 0, 0);
        unet_reg(r, &bb->q1, p, "attn1.to_q.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->k1, p, "attn1.to_k.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->v1, p, "attn1.to_v.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->o1_w, p, "attn1.to_out.0.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->o1_b, p, "attn1.to_out.0.bias", 1, d, 0, 0, 0);
        unet_reg(r, &bb->norm2_w, p, "norm2.weight", 1, d, 0, 0, 0);
        unet_reg(r, &bb->norm2_b, p, "norm2.bias", 1, d, 0, 0, 0);
        unet_reg(r, &bb->q2, p, "attn2.to_q.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->k2, p, "attn2.to_k.weight", 2, d, tr->ctx_dim, 0, 0);
        unet_reg(r, &bb->v2, p, "attn2.to_v.weight", 2, d, tr->ctx_dim, 0, 0);
        unet_reg(r, &bb->o2_w, p, "attn2.to_out.0.weight", 2, d, d, 0, 0);
        unet_reg(r, &bb->o2_b, p, "attn2.to_out.0.bias", 1, d, 0, 0, 0);
        unet_reg(r, &bb->norm3_w, p, "norm3.weight", 1, d, 0, 0, 0);
        unet_reg(r, &bb->norm3_b, p, "norm3.bias", 1, d, 0, 0, 0);
        unet_reg(r, &bb->ff1_w, p, "ff.net.0.proj.weight", 2, 2 * tr->ff, d, 0, 0);
        unet_reg(r, &bb->ff1_b, p, "ff.net.0.proj.bias", 1, 2 * tr->ff, 0, 0, 0);
        unet_reg(r, &bb->ff2_w, p, "ff.net.2.weight", 2, d, tr->ff, 0, 0);
        unet_reg(r, &bb->ff2_b, p, "ff.net.2.bias", 1, d, 0, 0, 0);
        free(p);
    }
}

/* One BasicTransformerBlock (norm_type "layer_norm", eps 1e-5):
 *   x += attn1(norm1(x)); x += attn2(norm2(x), enc); x += ff(norm3(x)).
 * x [B, N, dim]; enc [B, T, ctx]. Attention projections have no bias
 * (attention_bias false), the output projections do. */
static void basic_block_forward(float *x, const float *enc, const transformer2d *tr, const basic_block *bb,
                                int B, int N, int T, unet_arena *a) {
    int d = tr->inner, rows = B * N, rows_ctx = B * T;
    float scale = 1.0f / sqrtf((float)tr->head_dim);
    size_t n = (size_t)rows * d;
    unet_arena_mark m = unet_arena_save(a);
    float *nx = unet_arena_alloc(a, n);                              /* [B, N, d] */
    float *q = unet_arena_alloc(a, n);                               /* [B, N, heads, hd] */
    float *k = unet_arena_alloc(a, (size_t)(N > T ? rows : rows_ctx) * d);   /* [B, N or T, heads, hd] */
    float *v = unet_arena_alloc(a, (size_t)(N > T ? rows : rows_ctx) * d);
    float *ff = unet_arena_alloc(a, (size_t)rows * 2 * tr->ff);      /* [B, N, 2 ff] */

    /* self-attention */
    layernorm_forward(nx, x, bb->norm1_w, bb->norm1_b, rows, d, 1e-5f);
    linear_forward(q, nx, bb->q1, NULL, rows, d, d);
    linear_forward(k, nx, bb->k1, NULL, rows, d, d);
    linear_forward(v, nx, bb->v1, NULL, rows, d, d);
    attention_forward(q, q, k, v, B, tr->heads, N, N, tr->head_dim, scale, 0, NULL);
    linear_forward(nx, q, bb->o1_w, bb->o1_b, rows, d, d);
    eltwise_add(x, x, nx, n);

    /* cross-attention on the text states */
    layernorm_forward(nx, x, bb->norm2_w, bb->norm2_b, rows, d, 1e-5f);
    linear_forward(q, nx, bb->q2, NULL, rows, d, d);
    linear_forward(k, enc, bb->k2, NULL, rows_ctx, tr->ctx_dim, d);
    linear_forward(v, enc, bb->v2, NULL, rows_ctx, tr->ctx_dim, d);
    attention_forward(q, q, k, v, B, tr->heads, N, T, tr->head_dim, scale, 0, NULL);
    linear_forward(nx, q, bb->o2_w, bb->o2_b, rows, d, d);
    eltwise_add(x, x, nx, n);

    /* GEGLU feed-forward */
    layernorm_forward(nx, x, bb->norm3_w, bb->norm3_b, rows, d, 1e-5f);
    linear_forward(ff, nx, bb->ff1_w, bb->ff1_b, rows, d, 2 * tr->ff);
    float *g = unet_arena_alloc(a, (size_t)rows * tr->ff);           /* [B, N, ff] */
    geglu_forward(g, ff, rows, tr->ff);
    linear_forward(nx, g, bb->ff2_w, bb->ff2_b, rows, tr->ff, d);
    eltwise_add(x, x, nx, n);
    unet_arena_restore(a, m);
}

void transformer2d_forward(float *x, const float *enc, const transformer2d *tr, int B, int H, int W, int T,
                           unet_arena *a) {
    int c = tr->ch, d = tr->inner, hw = H * W;
    unet_arena_mark m = unet_arena_save(a);
    float *t1 = unet_arena_alloc(a, (size_t)B * (c > d ? c : d) * hw);
    float *hs = unet_arena_alloc(a, (size_t)B * (c > d ? c : d) * hw);   /* [B, HW, inner] */
    groupnorm_forward(t1, x, tr->norm_w, tr->norm_b, B, c, hw, tr->groups, 1e-6f);
    if (tr->linear_proj) {
        /* [B, c, HW] -> [B, HW, c], then Linear */
        float *tt = unet_arena_alloc(a, (size_t)B * c * hw);
        eltwise_transpose(tt, t1, B, c, hw);
        linear_forward(hs, tt, tr->pin_w, tr->pin_b, B * hw, c, d);
    } else {
        /* 1x1 conv in [B, inner, HW], then to [B, HW, inner] */
        unet_conv(hs, t1, tr->pin_w, tr->pin_b, B, c, d, H, W, 1, 1);
        eltwise_transpose(t1, hs, B, d, hw);
        float *s = hs;
        hs = t1, t1 = s;
    }
    for (int l = 0; l < tr->n_layers; l++) basic_block_forward(hs, enc, tr, &tr->blocks[l], B, hw, T, a);
    if (tr->linear_proj) {
        linear_forward(t1, hs, tr->pout_w, tr->pout_b, B * hw, d, c);      /* [B, HW, c] */
        eltwise_transpose(hs, t1, B, hw, c);                                /* [B, c, HW] */
        eltwise_add(x, x, hs, (size_t)B * c * hw);
    } else {
        eltwise_transpose(t1, hs, B, hw, d);                                /* [B, inner, HW] */
        unet_conv(hs, t1, tr->pout_w, tr->pout_b, B, d, c, H, W, 1, 1);
        eltwise_add(x, x, hs, (size_t)B * c * hw);
    }
    unet_arena_restore(a, m);
}
