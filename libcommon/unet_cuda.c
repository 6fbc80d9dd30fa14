/* unet_cuda.c — the UNet forward on the GPU (see unet_cuda.h): the blocks of
 * unet_blocks.c and the forward of unet.c, line for line, on the cuda_ops.h
 * kernels, so the two read side by side. One walk serves two purposes: with
 * plan set it runs nothing and only counts the arena (bump allocation with
 * marks, as the CPU arena) and the largest im2col workspace; without, it runs
 * the pass in an arena sized by that count. Pointers handed out while
 * planning are made-up addresses that nothing dereferences. The only host
 * work of a pass is at its ends: the sinusoidal timestep features,
 * center_input_sample, and the float <-> storage type conversions of what is
 * uploaded and downloaded. */
#include "unet_cuda.h"

#include "common.h"
#include "conv2d.h"
#include "unet_model.h"

/* UNET_CUDA_EMULATE: tests/unit/test_unet_walk.c includes this file with the
 * cuda_ops.h names (and the few CUDA runtime calls) bound to the CPU twins,
 * so the walk runs, in f32, on the CPU. */
#if defined(SYNTHCXR_CUDA) && !defined(UNET_CUDA_EMULATE)
#include "cuda_ops.h"
#endif
#if defined(SYNTHCXR_CUDA) || defined(UNET_CUDA_EMULATE)
#define CUDA_WALK_RUNS 1
#endif
#include "cuda_walk.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the walk's context (cuda_walk.h) --------------------------------------- */

typedef struct gctx {
    gwalk w;
    const unet_model *m;
} gctx;

/* ---- convolutions (unet_conv, unet_downsample_forward, unet_upsample_forward) -- */

static void g_conv(gctx *c, void *out, const void *inp, const float *w, const float *b, int B, int cin, int cout,
                   int H, int W, int k, int stride) {
    conv2d_dims d = {.batch = B, .in_ch = cin, .in_h = H, .in_w = W, .out_ch = cout, .k_h = k, .k_w = k,
                     .stride_h = stride, .stride_w = stride, .pad_h = (k - 1) / 2, .pad_w = (k - 1) / 2};
    /* conv2d_cuda_workspace_bytes: one image's im2col, none for a 1x1 stride-1 conv */
    size_t ws = k == 1 && stride == 1 ? 0
                                      : (size_t)cin * k * k * conv2d_out_h(&d) * conv2d_out_w(&d) * c->w.esz;
    if (ws > c->w.ws_need) c->w.ws_need = ws;
    OP(c, CHECK(ws == conv2d_cuda_workspace_bytes(&d, c->w.dt) && ws <= c->w.ws_cap));
    OP(c, conv2d_forward_cuda(out, inp, gwalk_weight(&c->w, w), gwalk_weight(&c->w, b), &d, ws ? (void *)c->w.ws : NULL, c->w.ws_cap, c->w.dt));
}

static void g_upsample(gctx *c, void *out, const void *inp, const float *w, const float *b, int B, int ch, int H,
                       int W) {
    size_t mk = gwalk_save(&c->w);
    void *up = gwalk_alloc(&c->w, (size_t)B * ch * 4 * H * W);   /* [B, ch, 2H, 2W] */
    OP(c, upsample_nearest2x_forward_cuda(up, inp, B, ch, H, W, c->w.dt));
    g_conv(c, out, up, w, b, B, ch, ch, 2 * H, 2 * W, 3, 1);
    gwalk_restore(&c->w, mk);
}

/* ---- ResnetBlock2D (resnet_block_forward) -------------------------------------- */

static void g_resnet(gctx *c, void *out, const void *inp, const void *temb_act, const resnet_block *rb, int B,
                     int H, int W) {
    int hw = H * W, ci = rb->cin, co = rb->cout;
    dtype_t dt = c->w.dt;
    size_t mk = gwalk_save(&c->w);
    void *t1 = gwalk_alloc(&c->w, (size_t)B * (ci > co ? ci : co) * hw);   /* normed input, then normed h */
    void *h = gwalk_alloc(&c->w, (size_t)B * co * hw);                     /* [B, co, H, W] */
    void *tp = gwalk_alloc(&c->w, (size_t)B * co);                         /* [B, co] */
    OP(c, groupnorm_silu_forward_cuda(t1, inp, gwalk_weight(&c->w, rb->norm1_w), gwalk_weight(&c->w, rb->norm1_b), B, ci, hw, rb->groups,
                                      rb->eps, dt));
    g_conv(c, h, t1, rb->conv1_w, rb->conv1_b, B, ci, co, H, W, 3, 1);
    OP(c, linear_forward_cuda(tp, temb_act, gwalk_weight(&c->w, rb->temb_w), gwalk_weight(&c->w, rb->temb_b), B, rb->temb_dim, co, dt));
    OP(c, eltwise_add_batch_channels_cuda(h, tp, B, co, hw, dt));
    OP(c, groupnorm_silu_forward_cuda(t1, h, gwalk_weight(&c->w, rb->norm2_w), gwalk_weight(&c->w, rb->norm2_b), B, co, hw, rb->groups,
                                      rb->eps, dt));
    g_conv(c, out, t1, rb->conv2_w, rb->conv2_b, B, co, co, H, W, 3, 1);
    size_t n = (size_t)B * co * hw;
    if (ci != co) {                                     /* the CPU's rb->short_w != NULL */
        g_conv(c, h, inp, rb->short_w, rb->short_b, B, ci, co, H, W, 1, 1);
        OP(c, eltwise_add_cuda(out, out, h, n, dt));
    } else {
        OP(c, eltwise_add_cuda(out, out, inp, n, dt));
    }
    if (rb->out_scale != 1.0f) OP(c, eltwise_scale_cuda(out, out, 1.0f / rb->out_scale, n, dt));
    gwalk_restore(&c->w, mk);
}

/* ---- Transformer2DModel (basic_block_forward, transformer2d_forward) ----------- */

static void g_basic_block(gctx *c, void *x, const void *enc, const transformer2d *tr, const basic_block *bb,
                          int B, int N, int T) {
    int d = tr->inner, rows = B * N, rows_ctx = B * T;
    float scale = 1.0f / sqrtf((float)tr->head_dim);
    dtype_t dt = c->w.dt;
    size_t n = (size_t)rows * d;
    size_t mk = gwalk_save(&c->w);
    void *nx = gwalk_alloc(&c->w, n);                                           /* [B, N, d] */
    void *q = gwalk_alloc(&c->w, n);                                            /* [B, N, heads, hd] */
    void *k = gwalk_alloc(&c->w, (size_t)(N > T ? rows : rows_ctx) * d);        /* [B, N or T, heads, hd] */
    void *v = gwalk_alloc(&c->w, (size_t)(N > T ? rows : rows_ctx) * d);
    void *ff = gwalk_alloc(&c->w, (size_t)rows * 2 * tr->ff);                   /* [B, N, 2 ff] */

    /* self-attention */
    OP(c, layernorm_forward_cuda(nx, x, gwalk_weight(&c->w, bb->norm1_w), gwalk_weight(&c->w, bb->norm1_b), rows, d, 1e-5f, dt));
    OP(c, linear_forward_cuda(q, nx, gwalk_weight(&c->w, bb->q1), NULL, rows, d, d, dt));
    OP(c, linear_forward_cuda(k, nx, gwalk_weight(&c->w, bb->k1), NULL, rows, d, d, dt));
    OP(c, linear_forward_cuda(v, nx, gwalk_weight(&c->w, bb->v1), NULL, rows, d, d, dt));
    OP(c, attention_forward_cuda(q, q, k, v, B, tr->heads, N, N, tr->head_dim, scale, 0, NULL, dt));
    OP(c, linear_forward_cuda(nx, q, gwalk_weight(&c->w, bb->o1_w), gwalk_weight(&c->w, bb->o1_b), rows, d, d, dt));
    OP(c, eltwise_add_cuda(x, x, nx, n, dt));

    /* cross-attention on the text states */
    OP(c, layernorm_forward_cuda(nx, x, gwalk_weight(&c->w, bb->norm2_w), gwalk_weight(&c->w, bb->norm2_b), rows, d, 1e-5f, dt));
    OP(c, linear_forward_cuda(q, nx, gwalk_weight(&c->w, bb->q2), NULL, rows, d, d, dt));
    OP(c, linear_forward_cuda(k, enc, gwalk_weight(&c->w, bb->k2), NULL, rows_ctx, tr->ctx_dim, d, dt));
    OP(c, linear_forward_cuda(v, enc, gwalk_weight(&c->w, bb->v2), NULL, rows_ctx, tr->ctx_dim, d, dt));
    OP(c, attention_forward_cuda(q, q, k, v, B, tr->heads, N, T, tr->head_dim, scale, 0, NULL, dt));
    OP(c, linear_forward_cuda(nx, q, gwalk_weight(&c->w, bb->o2_w), gwalk_weight(&c->w, bb->o2_b), rows, d, d, dt));
    OP(c, eltwise_add_cuda(x, x, nx, n, dt));

    /* GEGLU feed-forward */
    OP(c, layernorm_forward_cuda(nx, x, gwalk_weight(&c->w, bb->norm3_w), gwalk_weight(&c->w, bb->norm3_b), rows, d, 1e-5f, dt));
    OP(c, linear_forward_cuda(ff, nx, gwalk_weight(&c->w, bb->ff1_w), gwalk_weight(&c->w, bb->ff1_b), rows, d, 2 * tr->ff, dt));
    void *g = gwalk_alloc(&c->w, (size_t)rows * tr->ff);                        /* [B, N, ff] */
    OP(c, geglu_forward_cuda(g, ff, rows, tr->ff, dt));
    OP(c, linear_forward_cuda(nx, g, gwalk_weight(&c->w, bb->ff2_w), gwalk_weight(&c->w, bb->ff2_b), rows, tr->ff, d, dt));
    OP(c, eltwise_add_cuda(x, x, nx, n, dt));
    gwalk_restore(&c->w, mk);
}

static void g_transformer(gctx *c, void *x, const void *enc, const transformer2d *tr, int B, int H, int W,
                          int T) {
    int ch = tr->ch, d = tr->inner, hw = H * W;
    dtype_t dt = c->w.dt;
    size_t mk = gwalk_save(&c->w);
    void *t1 = gwalk_alloc(&c->w, (size_t)B * (ch > d ? ch : d) * hw);
    void *hs = gwalk_alloc(&c->w, (size_t)B * (ch > d ? ch : d) * hw);   /* [B, HW, inner] */
    OP(c, groupnorm_forward_cuda(t1, x, gwalk_weight(&c->w, tr->norm_w), gwalk_weight(&c->w, tr->norm_b), B, ch, hw, tr->groups, 1e-6f, dt));
    if (tr->linear_proj) {
        /* [B, ch, HW] -> [B, HW, ch], then Linear */
        void *tt = gwalk_alloc(&c->w, (size_t)B * ch * hw);
        OP(c, eltwise_transpose_cuda(tt, t1, B, ch, hw, dt));
        OP(c, linear_forward_cuda(hs, tt, gwalk_weight(&c->w, tr->pin_w), gwalk_weight(&c->w, tr->pin_b), B * hw, ch, d, dt));
    } else {
        /* 1x1 conv in [B, inner, HW], then to [B, HW, inner] */
        g_conv(c, hs, t1, tr->pin_w, tr->pin_b, B, ch, d, H, W, 1, 1);
        OP(c, eltwise_transpose_cuda(t1, hs, B, d, hw, dt));
        void *s = hs;
        hs = t1, t1 = s;
    }
    for (int l = 0; l < tr->n_layers; l++) g_basic_block(c, hs, enc, tr, &tr->blocks[l], B, hw, T);
    if (tr->linear_proj) {
        OP(c, linear_forward_cuda(t1, hs, gwalk_weight(&c->w, tr->pout_w), gwalk_weight(&c->w, tr->pout_b), B * hw, d, ch, dt)); /* [B, HW, ch] */
        OP(c, eltwise_transpose_cuda(hs, t1, B, hw, ch, dt));                                       /* [B, ch, HW] */
        OP(c, eltwise_add_cuda(x, x, hs, (size_t)B * ch * hw, dt));
    } else {
        OP(c, eltwise_transpose_cuda(t1, hs, B, hw, d, dt));                                        /* [B, inner, HW] */
        g_conv(c, hs, t1, tr->pout_w, tr->pout_b, B, d, ch, H, W, 1, 1);
        OP(c, eltwise_add_cuda(x, x, hs, (size_t)B * ch * hw, dt));
    }
    gwalk_restore(&c->w, mk);
}

/* ---- the pass (unet_forward) ------------------------------------------------------ */

typedef struct skip { void *p; int ch; } skip;

/* out [B, out, H, W] = the UNet of x0 [B, in, H, W] (centred already), tproj
 * [B, c0] (the sinusoidal features), enc [B, T, ctx]; all in the arena. */
static void g_unet(gctx *c, void *out, const void *x0, const void *tproj, const void *enc, int B, int H, int W,
                   int T) {
    const unet_model *m = c->m;
    const unet_info *in = &m->info;
    int L = m->levels;
    dtype_t dt = c->w.dt;

    /* time embedding: linear_2(silu(linear_1(sinusoids))); every ResNet takes its SiLU */
    void *th = gwalk_alloc(&c->w, (size_t)B * m->tdim);
    void *temb = gwalk_alloc(&c->w, (size_t)B * m->tdim);
    OP(c, linear_forward_cuda(th, tproj, gwalk_weight(&c->w, m->t1_w), gwalk_weight(&c->w, m->t1_b), B, m->c0, m->tdim, dt));
    OP(c, silu_forward_cuda(th, th, (size_t)B * m->tdim, dt));
    OP(c, linear_forward_cuda(temb, th, gwalk_weight(&c->w, m->t2_w), gwalk_weight(&c->w, m->t2_b), B, m->tdim, m->tdim, dt));
    OP(c, silu_forward_cuda(temb, temb, (size_t)B * m->tdim, dt));

    /* the ping-pong buffers, sized as the CPU's */
    size_t max_act = unet_pingpong_elems(m, B, H, W);
    void *X = gwalk_alloc(&c->w, max_act), *Y = gwalk_alloc(&c->w, max_act), *sw;
#define SWAP() (sw = X, X = Y, Y = sw)
    skip skips[UNET_MAX_LEVELS * 64];
    int n_skips = 0;
#define PUSH(nch, nhw)                                                                                 \
    do {                                                                                             \
        CHECK(n_skips < (int)(sizeof skips / sizeof *skips));                                        \
        skips[n_skips].p = gwalk_alloc(&c->w, (size_t)B * (nch) * (nhw));                                      \
        OP(c, CUDA_CHECK(cudaMemcpyAsync(skips[n_skips].p, X, (size_t)B * (nch) * (nhw) * c->w.esz,        \
                                         cudaMemcpyDeviceToDevice, 0)));                              \
        skips[n_skips++].ch = (nch);                                                                  \
    } while (0)

    int h = H, w = W, ch = m->c0;
    g_conv(c, X, x0, m->cin_w, m->cin_b, B, in->in_channels, ch, H, W, m->conv_in_k, 1);
    PUSH(ch, h * w);

    for (int i = 0; i < L; i++) {
        const unet_level *lv = &m->down[i];
        for (int j = 0; j < lv->n; j++) {
            CHECK(lv->res[j].cin == ch);
            g_resnet(c, Y, X, temb, &lv->res[j], B, h, w);
            SWAP();
            ch = lv->cout;
            if (lv->cross) g_transformer(c, X, enc, &lv->attn[j], B, h, w, T);
            PUSH(ch, h * w);
        }
        if (lv->resample) {
            g_conv(c, Y, X, lv->rs_w, lv->rs_b, B, ch, ch, h, w, 3, 2);   /* unet_downsample_forward */
            SWAP();
            h /= 2, w /= 2;
            PUSH(ch, h * w);
        }
    }

    g_resnet(c, Y, X, temb, &m->mid_res[0], B, h, w);
    SWAP();
    g_transformer(c, X, enc, &m->mid_attn, B, h, w, T);
    g_resnet(c, Y, X, temb, &m->mid_res[1], B, h, w);
    SWAP();

    for (int i = 0; i < L; i++) {
        const unet_level *lv = &m->up[i];
        for (int j = 0; j < lv->n; j++) {
            const skip *s = &skips[--n_skips];
            CHECK(n_skips >= 0 && lv->res[j].cin == ch + s->ch);
            OP(c, eltwise_concat_channels_cuda(Y, X, ch, s->p, s->ch, B, h * w, dt));
            g_resnet(c, X, Y, temb, &lv->res[j], B, h, w);
            ch = lv->cout;
            if (lv->cross) g_transformer(c, X, enc, &lv->attn[j], B, h, w, T);
        }
        if (lv->resample) {
            g_upsample(c, Y, X, lv->rs_w, lv->rs_b, B, ch, h, w);
            SWAP();
            h *= 2, w *= 2;
        }
    }
    CHECK(n_skips == 0 && h == H && w == W && ch == m->c0);

    OP(c, groupnorm_silu_forward_cuda(Y, X, gwalk_weight(&c->w, m->nout_w), gwalk_weight(&c->w, m->nout_b), B, ch, h * w, m->groups, m->eps,
                                      dt));
    g_conv(c, out, Y, m->cout_w, m->cout_b, B, ch, in->out_channels, H, W, m->conv_out_k, 1);
#undef SWAP
#undef PUSH
}

/* The pass's inputs and output, first in the arena. */
typedef struct g_io { void *x0, *tproj, *enc, *out; } g_io;

static g_io g_io_alloc(gctx *c, int B, int H, int W, int T) {
    const unet_model *m = c->m;
    g_io io;
    io.x0 = gwalk_alloc(&c->w, (size_t)B * m->info.in_channels * H * W);
    io.tproj = gwalk_alloc(&c->w, (size_t)B * m->c0);
    io.enc = gwalk_alloc(&c->w, (size_t)B * T * m->info.cross_attention_dim);
    io.out = gwalk_alloc(&c->w, (size_t)B * m->info.out_channels * H * W);
    return io;
}

static void check_size(const unet_model *m, int B, int H, int W, int T) {
    int ds = m->info.downscale;
    if (B <= 0 || H <= 0 || W <= 0 || T <= 0) die("unet_cuda: bad input size B=%d H=%d W=%d T=%d", B, H, W, T);
    if (H % ds || W % ds)
        die("unet: latent size %dx%d is not a multiple of %d (the UNet halves it %d times)", H, W, ds,
            m->levels - 1);
    if ((int64_t)B * H * W > INT32_MAX / 2 || (int64_t)B * m->groups > 65535)
        die("unet_cuda: a pass of %d samples at %dx%d is too large for the GPU kernels' index types", B, H, W);
}

/* The largest UNet batch check_size allows at H x W. */
static int batch_limit(const unet_model *m, int H, int W) {
    int64_t lim = (INT32_MAX / 2) / ((int64_t)H * W);
    if (65535 / m->groups < lim) lim = 65535 / m->groups;
    return (int)lim;
}

static void check_dtype(dtype_t dt) {
    if (dt != DTYPE_F32 && dt != DTYPE_F16 && dt != DTYPE_BF16)
        die("unet_cuda: storage type %s is not f32, f16 or bf16", dtype_name(dt));
}

/* The planning pass: bytes of the bump region (peak) and of the workspace. */
static void g_plan(const unet_model *m, dtype_t dt, int B, int H, int W, int T, size_t *peak, size_t *ws) {
    check_dtype(dt);
    check_size(m, B, H, W, T);
    gctx c = {.w = gwalk_planner("unet_cuda", dt), .m = m};
    g_io io = g_io_alloc(&c, B, H, W, T);
    g_unet(&c, io.out, io.x0, io.tproj, io.enc, B, H, W, T);
    *peak = c.w.peak;
    *ws = gwalk_align(c.w.ws_need);
}

size_t unet_cuda_arena_bytes(const unet_model *m, dtype_t dt, int B, int H, int W, int T) {
    size_t peak, ws;
    g_plan(m, dt, B, H, W, T, &peak, &ws);
    return ws + peak;
}

size_t unet_cuda_weight_bytes(const unet_model *m, dtype_t dt) {
    check_dtype(dt);
    return m->params_floats * dtype_size(dt);
}

int unet_cuda_max_batch(const unet_model *m, dtype_t dt, int per_record, int H, int W, int T, size_t avail) {
    CHECK(per_record >= 1);
    /* the arena grows with the batch: bisect for the last r that fits */
    int lo = 0, hi = UNET_CUDA_MAX_BATCH;
    if (hi > batch_limit(m, H, W) / per_record) hi = batch_limit(m, H, W) / per_record;
    if (hi < 1) return 0;
    if (unet_cuda_arena_bytes(m, dt, hi * per_record, H, W, T) <= avail) return hi;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (unet_cuda_arena_bytes(m, dt, mid * per_record, H, W, T) <= avail) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* ---- on the device ------------------------------------------------------------------ */

#ifdef CUDA_WALK_RUNS

struct unet_cuda {
    const unet_model *m;
    dtype_t dt;
    void *weights;            /* m->params converted, same layout */
    void *arena;
    size_t arena_cap;
    gwalk_stage stage;        /* host staging for conversions */
    /* CUDA graphs (unet_cuda.h): the captured pass, valid while its size, the
     * arena and cuda_free_count() are those it was captured with */
    int graphs, have_graph, gB, gH, gW, gT;
    void *g_arena;
    size_t g_cap;
    unsigned long g_frees;
    long captures, replays;
#ifdef UNET_CUDA_EMULATE
    gctx g_ctx;               /* emulated: the walk's context and buffers, walked again at a replay, so */
    g_io g_bufs;              /* a replay uses the pointers of the capture, as a real graph would */
#else
    cudaGraphExec_t exec;
#endif
};

/* ---- CUDA graphs ---------------------------------------------------------------------- */

static void graph_drop(unet_cuda *g) {
#ifndef UNET_CUDA_EMULATE
    if (g->have_graph) CUDA_CHECK(cudaGraphExecDestroy(g->exec));   /* freed when done, if in flight */
#endif
    g->have_graph = 0;
}

static int graph_valid(const unet_cuda *g, int B, int H, int W, int T) {
    return g->have_graph && g->gB == B && g->gH == H && g->gW == W && g->gT == T && g->g_arena == g->arena &&
           g->g_cap == g->arena_cap && g->g_frees == cuda_free_count();
}

/* Captures the pass that c (fresh: as it was before any walk) and io describe:
 * the launches are recorded, not run. After a warm-up pass of the same size,
 * so that no buffer grows now (cuda_malloc and cuda_free die if one does). */
static void graph_capture(unet_cuda *g, const gctx *c, g_io io, int B, int H, int W, int T) {
    unsigned long frees = cuda_free_count();
    gctx cc = *c;
#ifdef UNET_CUDA_EMULATE
    g->g_ctx = cc, g->g_bufs = io;
#else
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal));
    g_unet(&cc, io.out, io.x0, io.tproj, io.enc, B, H, W, T);
    CUDA_CHECK(cudaStreamEndCapture(cudaStreamPerThread, &graph));
    size_t nodes = 0;
    CUDA_CHECK(cudaGraphGetNodes(graph, NULL, &nodes));
    CUDA_CHECK(cudaGraphInstantiate(&g->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    info("unet_cuda: CUDA graph of %zu nodes captured for passes of %d samples at %dx%d, %d tokens", nodes, B, H,
         W, T);
#endif
    CHECKF(cuda_free_count() == frees, "unet_cuda: a device buffer was freed during the graph capture");
    g->have_graph = 1;
    g->gB = B, g->gH = H, g->gW = W, g->gT = T;
    g->g_arena = g->arena, g->g_cap = g->arena_cap, g->g_frees = frees;
    g->captures++;
}

static void graph_launch(unet_cuda *g) {
#ifdef UNET_CUDA_EMULATE
    gctx cc = g->g_ctx;
    g_io io = g->g_bufs;
    g_unet(&cc, io.out, io.x0, io.tproj, io.enc, g->gB, g->gH, g->gW, g->gT);
#else
    CUDA_CHECK(cudaGraphLaunch(g->exec, cudaStreamPerThread));
#endif
    g->replays++;
}

void unet_cuda_set_graphs(unet_cuda *g, int on) {
    if (!on) graph_drop(g);
    g->graphs = on != 0;
}
int unet_cuda_graphs(const unet_cuda *g) { return g->graphs; }
void unet_cuda_graph_counts(const unet_cuda *g, long *captures, long *replays) {
    *captures = g->captures, *replays = g->replays;
}

unet_cuda *unet_cuda_new(const unet_model *m, dtype_t dt) {
    check_dtype(dt);
    if (!m->params) die("unet_cuda: a model built from its config alone has no weights to upload");
    unet_cuda *g = xcalloc(1, sizeof *g);
    g->m = m, g->dt = dt;
    const char *env = getenv("SYNTHCXR_CUDA_GRAPHS");
    if (env && *env && strcmp(env, "0") && strcmp(env, "1"))
        die("SYNTHCXR_CUDA_GRAPHS=%s: 1 (CUDA graphs on) or 0 (off, the default)", env);
    g->graphs = env && !strcmp(env, "1");
    g->weights = gwalk_upload_weights(m->params, m->params_floats, dt);
    return g;
}

void unet_cuda_free(unet_cuda *g) {
    if (!g) return;
    graph_drop(g);
    cuda_free(g->arena);
    cuda_free(g->weights);
    free(g->stage.p);
    free(g);
}

dtype_t unet_cuda_dtype(const unet_cuda *g) { return g->dt; }

int unet_cuda_reserve(unet_cuda *g, int B, int H, int W, int T, unet_cuda_oom *oom) {
    return gwalk_arena_reserve(&g->arena, &g->arena_cap, unet_cuda_arena_bytes(g->m, g->dt, B, H, W, T),
                               UNET_CUDA_RESERVE, oom);
}

void unet_cuda_forward(unet_cuda *g, float *out, const float *sample, const float *timesteps, const float *enc,
                       int B, int H, int W, int T) {
    const unet_model *m = g->m;
    size_t peak, ws;
    g_plan(m, g->dt, B, H, W, T, &peak, &ws);
    unet_cuda_oom oom;
    if (!unet_cuda_reserve(g, B, H, W, T, &oom))
        die("out of GPU memory: a UNet pass of %d samples at %dx%d in %s needs an arena of %.2f GiB, and %.2f "
            "GiB of the GPU's %.2f GiB are free",
            B, H, W, dtype_name(g->dt), oom.need / 1073741824.0, oom.free / 1073741824.0,
            oom.total / 1073741824.0);
    gctx c = {.w = gwalk_runner("unet_cuda", g->dt, g->arena, g->arena_cap, ws, g->weights, m->params,
                                m->params + m->params_floats),
              .m = m};
    g_io io = g_io_alloc(&c, B, H, W, T);

    /* inputs: center_input_sample and the sinusoids on the host, as unet_forward computes them */
    size_t nin = (size_t)B * m->info.in_channels * H * W, nout = (size_t)B * m->info.out_channels * H * W;
    float *tmp = xmalloc((nin > (size_t)B * m->c0 ? nin : (size_t)B * m->c0) * sizeof *tmp);
    const float *x0 = sample;
    if (m->center_input) {
        for (size_t i = 0; i < nin; i++) tmp[i] = sample[i] * 2.0f - 1.0f;
        x0 = tmp;
    }
    gwalk_upload(&g->stage, io.x0, x0, nin, g->dt);
    unet_timestep_embedding(tmp, timesteps, B, m->c0, m->flip_sin_to_cos, m->freq_shift);
    gwalk_upload(&g->stage, io.tproj, tmp, (size_t)B * m->c0, g->dt);
    gwalk_upload(&g->stage, io.enc, enc, (size_t)B * T * m->info.cross_attention_dim, g->dt);
    free(tmp);

    if (g->graphs && graph_valid(g, B, H, W, T)) {
        graph_launch(g);   /* the inputs are where the captured pass reads them */
    } else {
        gctx fresh = c;
        graph_drop(g);
        g_unet(&c, io.out, io.x0, io.tproj, io.enc, B, H, W, T);
        CHECKF(c.w.peak == peak, "unet_cuda: the pass used %zu bytes, the plan %zu", c.w.peak, peak);
        if (g->graphs) graph_capture(g, &fresh, io, B, H, W, T);   /* this pass was its warm-up */
    }

    gwalk_download(&g->stage, out, io.out, nout, g->dt);   /* waits for the pass */
}

#else /* a build without CUDA: planning only */

struct unet_cuda { int unused; };

static void no_cuda(void) __attribute__((noreturn));
static void no_cuda(void) { die("the CUDA UNet needs a build with CUDA (this one is CPU only)"); }
unet_cuda *unet_cuda_new(const unet_model *m, dtype_t dt) { (void)m, (void)dt; no_cuda(); }
void unet_cuda_free(unet_cuda *g) { (void)g; }
dtype_t unet_cuda_dtype(const unet_cuda *g) { (void)g; no_cuda(); }
int unet_cuda_reserve(unet_cuda *g, int B, int H, int W, int T, unet_cuda_oom *oom) {
    (void)g, (void)B, (void)H, (void)W, (void)T, (void)oom;
    no_cuda();
}
void unet_cuda_forward(unet_cuda *g, float *out, const float *sample, const float *timesteps, const float *enc,
                       int B, int H, int W, int T) {
    (void)g, (void)out, (void)sample, (void)timesteps, (void)enc, (void)B, (void)H, (void)W, (void)T;
    no_cuda();
}
void unet_cuda_set_graphs(unet_cuda *g, int on) { (void)g, (void)on; no_cuda(); }
int unet_cuda_graphs(const unet_cuda *g) { (void)g; no_cuda(); }
void unet_cuda_graph_counts(const unet_cuda *g, long *captures, long *replays) {
    (void)g, (void)captures, (void)replays;
    no_cuda();
}

#endif
