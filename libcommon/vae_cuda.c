/* vae_cuda.c — the VAE decoder on the GPU (see vae_cuda.h): vae.c's
 * resnet_forward, attn_forward and vae_decode, line for line, on the
 * cuda_ops.h kernels, so the two read side by side (the same three ping-pong
 * buffers x, a, b, the same ops on them in the same order). One walk serves
 * two purposes, as in unet_cuda.c: with plan set it runs nothing and only
 * counts the arena (bump allocation with marks) and the largest im2col
 * workspace; without, it runs the pass in an arena sized by that count.
 * Pointers handed out while planning are made-up addresses that nothing
 * dereferences. The only host work of a pass is at its ends: the float <->
 * storage type conversions of the latents uploaded and the image downloaded.
 * Tiled decoding is vae.c's (vae_decode_tiled_with), one GPU pass per tile. */
#include "vae_cuda.h"

#include "common.h"
#include "conv2d.h"
#include "vae_model.h"

/* VAE_CUDA_EMULATE: tests/unit/test_vae_walk.c includes this file with the
 * cuda_ops.h names (and the few CUDA runtime calls) bound to the CPU twins,
 * so the walk runs, in f32, on the CPU. */
#if defined(SYNTHCXR_CUDA) && !defined(VAE_CUDA_EMULATE)
#include "cuda_ops.h"
#endif
#if defined(SYNTHCXR_CUDA) || defined(VAE_CUDA_EMULATE)
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
    const vae_decoder *v;
} gctx;

static size_t ws_max = VAE_CUDA_WS_MAX;

size_t vae_cuda_set_workspace_max(size_t bytes) {
    size_t old = ws_max;
    ws_max = bytes;
    return old;
}

/* ---- the layers (vae.c's conv, resnet_forward, attn_forward) ------------------- */

/* A stride-1 conv padded to keep the size (k 1 or 3), as vae.c's conv. */
static void g_conv(gctx *c, void *out, const void *inp, const float *w, const float *b, int B, int cin, int cout,
                   int h, int wd, int k) {
    conv2d_dims d = {.batch = B, .in_ch = cin, .in_h = h, .in_w = wd, .out_ch = cout, .k_h = k, .k_w = k,
                     .stride_h = 1, .stride_w = 1, .pad_h = k / 2, .pad_w = k / 2};
    /* conv2d_cuda_workspace_bytes (one image's im2col; none for 1x1), capped,
     * but never under one output pixel's column */
    size_t full = k == 1 ? 0 : (size_t)cin * k * k * h * wd * c->w.esz, ws = full;
    if (full) {
        size_t col = (size_t)cin * k * k * c->w.esz;
        if (ws > ws_max) ws = ws_max;
        if (ws < col) ws = col;
    }
    if (ws > c->w.ws_need) c->w.ws_need = ws;
    OP(c, CHECK(full == conv2d_cuda_workspace_bytes(&d, c->w.dt) && ws <= c->w.ws_cap));
    OP(c, conv2d_forward_cuda(out, inp, gwalk_weight(&c->w, w), gwalk_weight(&c->w, b), &d, ws ? (void *)c->w.ws : NULL, c->w.ws_cap, c->w.dt));
}

/* x [B, cin, h, w] -> x [B, cout, h, w] in place; a, b scratch of the same
 * capacity (resnet_forward). */
static void g_resnet(gctx *c, void *x, void *a, void *b, const vae_resnet *r, int B, int h, int w) {
    int hw = h * w, g = c->v->cfg.groups;
    dtype_t dt = c->w.dt;
    size_t nout = (size_t)B * r->cout * hw;
    OP(c, groupnorm_silu_forward_cuda(a, x, gwalk_weight(&c->w, r->norm1_w), gwalk_weight(&c->w, r->norm1_b), B, r->cin, hw, g, VAE_EPS, dt));
    g_conv(c, b, a, r->conv1_w, r->conv1_b, B, r->cin, r->cout, h, w, 3);
    OP(c, groupnorm_silu_forward_cuda(b, b, gwalk_weight(&c->w, r->norm2_w), gwalk_weight(&c->w, r->norm2_b), B, r->cout, hw, g, VAE_EPS, dt));
    g_conv(c, a, b, r->conv2_w, r->conv2_b, B, r->cout, r->cout, h, w, 3);
    if (r->cin != r->cout) {                            /* the CPU's r->short_w != NULL */
        g_conv(c, b, x, r->short_w, r->short_b, B, r->cin, r->cout, h, w, 1);
        OP(c, eltwise_add_cuda(x, b, a, nout, dt));
    } else {
        OP(c, eltwise_add_cuda(x, x, a, nout, dt));
    }
}

/* x [B, ch, hw] += to_out(attention(q, k, v of groupnorm(x))), one head of ch
 * channels (ch > 160: attention_forward_cuda's cuBLAS path); a [B, ch, hw]
 * scratch; t, q, k, v from the arena for the call (the CPU's s). */
static void g_attn(gctx *c, void *x, void *a, const vae_attn *p, int B, int ch, int hw) {
    size_t n = (size_t)B * ch * hw;
    int rows = B * hw, g = c->v->cfg.groups;
    dtype_t dt = c->w.dt;
    size_t mk = gwalk_save(&c->w);
    void *t = gwalk_alloc(&c->w, n), *q = gwalk_alloc(&c->w, n), *k = gwalk_alloc(&c->w, n), *v = gwalk_alloc(&c->w, n);
    OP(c, groupnorm_forward_cuda(a, x, gwalk_weight(&c->w, p->norm_w), gwalk_weight(&c->w, p->norm_b), B, ch, hw, g, VAE_EPS, dt));
    OP(c, eltwise_transpose_cuda(t, a, B, ch, hw, dt));                  /* [B, hw, ch] tokens */
    OP(c, linear_forward_cuda(q, t, gwalk_weight(&c->w, p->q_w), gwalk_weight(&c->w, p->q_b), rows, ch, ch, dt));
    OP(c, linear_forward_cuda(k, t, gwalk_weight(&c->w, p->k_w), gwalk_weight(&c->w, p->k_b), rows, ch, ch, dt));
    OP(c, linear_forward_cuda(v, t, gwalk_weight(&c->w, p->v_w), gwalk_weight(&c->w, p->v_b), rows, ch, ch, dt));
    OP(c, attention_forward_cuda(q, q, k, v, B, 1, hw, hw, ch, 1.0f / sqrtf((float)ch), 0, NULL, dt));
    OP(c, linear_forward_cuda(t, q, gwalk_weight(&c->w, p->o_w), gwalk_weight(&c->w, p->o_b), rows, ch, ch, dt));
    OP(c, eltwise_transpose_cuda(a, t, B, hw, ch, dt));                  /* back to [B, ch, hw] */
    OP(c, eltwise_add_cuda(x, x, a, n, dt));
    gwalk_restore(&c->w, mk);
}

/* ---- the pass (vae_decode) ---------------------------------------------------------- */

/* out [B, out_channels, h*s, w*s] = the decoder of z [B, latent_channels, h, w]; both in the arena. */
static void g_decode(gctx *c, void *out, const void *z, int B, int h, int w) {
    const vae_decoder *v = c->v;
    const vae_config *cf = &v->cfg;
    int nb = cf->n_blocks, lc = cf->latent_channels, g = cf->groups, nres = cf->layers_per_block + 1;
    dtype_t dt = c->w.dt;
    size_t cap = vae_max_activation(cf, h, w) * (size_t)B;
    void *x = gwalk_alloc(&c->w, cap), *a = gwalk_alloc(&c->w, cap), *b = gwalk_alloc(&c->w, cap);

    int ch = cf->block_out[nb - 1];
    if (cf->post_quant_conv) {                          /* the CPU's v->pq_w != NULL */
        g_conv(c, a, z, v->pq_w, v->pq_b, B, lc, lc, h, w, 1);
        g_conv(c, x, a, v->in_w, v->in_b, B, lc, ch, h, w, 3);
    } else {
        g_conv(c, x, z, v->in_w, v->in_b, B, lc, ch, h, w, 3);
    }

    g_resnet(c, x, a, b, &v->mid_res[0], B, h, w);
    if (cf->mid_attention) g_attn(c, x, a, &v->mid_attn, B, ch, h * w);
    g_resnet(c, x, a, b, &v->mid_res[1], B, h, w);

    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < nres; j++) g_resnet(c, x, a, b, &v->up_res[i * nres + j], B, h, w);
        ch = cf->block_out[nb - 1 - i];
        if (i < nb - 1) {
            OP(c, upsample_nearest2x_forward_cuda(a, x, B, ch, h, w, dt));
            h *= 2, w *= 2;
            g_conv(c, x, a, v->up_w[i], v->up_b[i], B, ch, ch, h, w, 3);
        }
    }
    OP(c, groupnorm_silu_forward_cuda(a, x, gwalk_weight(&c->w, v->out_norm_w), gwalk_weight(&c->w, v->out_norm_b), B, ch, h * w, g, VAE_EPS,
                                      dt));
    g_conv(c, out, a, v->out_w, v->out_b, B, ch, cf->out_channels, h, w, 3);
}

/* The pass's input and output, first in the arena. */
typedef struct g_io { void *z, *out; } g_io;

static g_io g_io_alloc(gctx *c, int B, int h, int w) {
    const vae_config *cf = &c->v->cfg;
    size_t s = (size_t)1 << (cf->n_blocks - 1);
    g_io io;
    io.z = gwalk_alloc(&c->w, (size_t)B * cf->latent_channels * h * w);
    io.out = gwalk_alloc(&c->w, (size_t)B * cf->out_channels * h * s * w * s);
    return io;
}

/* The largest batch the kernels' index types allow at h x w latents. */
static int batch_limit(const vae_decoder *v, int h, int w) {
    int64_t lim = 65535 / v->cfg.groups;                              /* group norm: batch x groups slabs */
    if (INT32_MAX / ((int64_t)h * w) < lim) lim = INT32_MAX / ((int64_t)h * w);   /* the attention's rows */
    return (int)lim;
}

static void check_size(const vae_decoder *v, int B, int h, int w) {
    const vae_config *cf = &v->cfg;
    if (B < 1 || h < 1 || w < 1) die("vae_cuda: bad latent size [%d, %d, %d, %d]", B, cf->latent_channels, h, w);
    int64_t side = (int64_t)(h > w ? h : w) << (cf->n_blocks - 1);
    if (side > 65536) die("vae_decode: latents of %d x %d make an image too large to decode", h, w);
    int64_t px = ((int64_t)h << (cf->n_blocks - 1)) * ((int64_t)w << (cf->n_blocks - 1));
    /* a conv's output pixels are an int; the attention's transpose takes hw / 32 <= 65535 tiles */
    if (px > INT32_MAX || (cf->mid_attention && (int64_t)h * w > 65535 * 32))
        die("vae_cuda: latents of %d x %d are too large for the GPU kernels' index types", h, w);
    if (B > batch_limit(v, h, w))
        die("vae_cuda: a pass of %d latents of %dx%d is too large for the GPU kernels' index types (at most %d)", B,
            h, w, batch_limit(v, h, w));
}

static void check_dtype(dtype_t dt) {
    if (dt != DTYPE_F32 && dt != DTYPE_F16 && dt != DTYPE_BF16)
        die("vae_cuda: storage type %s is not f32, f16 or bf16", dtype_name(dt));
}

/* The planning pass: bytes of the bump region (peak) and of the workspace. */
static void g_plan(const vae_decoder *v, dtype_t dt, int B, int h, int w, size_t *peak, size_t *ws) {
    check_dtype(dt);
    check_size(v, B, h, w);
    gctx c = {.w = gwalk_planner("vae_cuda", dt), .v = v};
    g_io io = g_io_alloc(&c, B, h, w);
    g_decode(&c, io.out, io.z, B, h, w);
    *peak = c.w.peak;
    *ws = gwalk_align(c.w.ws_need);
}

size_t vae_cuda_arena_bytes(const vae_decoder *v, dtype_t dt, int batch, int h, int w) {
    size_t peak, ws;
    g_plan(v, dt, batch, h, w, &peak, &ws);
    return ws + peak;
}

size_t vae_cuda_weight_bytes(const vae_decoder *v, dtype_t dt) {
    check_dtype(dt);
    return v->n_params * dtype_size(dt);
}

int vae_cuda_max_batch(const vae_decoder *v, dtype_t dt, int h, int w, size_t avail) {
    /* the arena grows with the batch: bisect for the last one that fits */
    int lo = 0, hi = VAE_CUDA_MAX_BATCH;
    if (hi > batch_limit(v, h, w)) hi = batch_limit(v, h, w);
    if (hi < 1) return 0;
    if (vae_cuda_arena_bytes(v, dt, hi, h, w) <= avail) return hi;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (vae_cuda_arena_bytes(v, dt, mid, h, w) <= avail) lo = mid;
        else hi = mid;
    }
    return lo;
}

void vae_cuda_tiled_pass(const vae_decoder *v, int batch, int h, int w, int tile_px, int *pass_batch, int *pass_h,
                         int *pass_w) {
    int s = vae_upscale(v);
    /* vae_decode_tiled_with's choice: whole below the tile size, else tiles of tile_px / s latents */
    if (tile_px <= 0 || (h * s <= tile_px && w * s <= tile_px)) {
        *pass_batch = batch, *pass_h = h, *pass_w = w;
        return;
    }
    int t = tile_px / s;
    *pass_batch = 1, *pass_h = h < t ? h : t, *pass_w = w < t ? w : t;
}

/* ---- on the device ------------------------------------------------------------------ */

#ifdef CUDA_WALK_RUNS

struct vae_cuda {
    const vae_decoder *v;
    dtype_t dt;
    void *weights;            /* v->params converted, same layout */
    void *arena;
    size_t arena_cap;
    gwalk_stage stage;        /* host staging for conversions */
};

vae_cuda *vae_cuda_new(const vae_decoder *v, dtype_t dt) {
    check_dtype(dt);
    if (!v->params) die("vae_cuda: a VAE built from its config alone has no weights to upload");
    vae_cuda *g = xcalloc(1, sizeof *g);
    g->v = v, g->dt = dt;
    g->weights = gwalk_upload_weights(v->params, v->n_params, dt);
    return g;
}

void vae_cuda_free(vae_cuda *g) {
    if (!g) return;
    cuda_free(g->arena);
    cuda_free(g->weights);
    free(g->stage.p);
    free(g);
}

dtype_t vae_cuda_dtype(const vae_cuda *g) { return g->dt; }

int vae_cuda_reserve(vae_cuda *g, int batch, int h, int w, vae_cuda_oom *oom) {
    return gwalk_arena_reserve(&g->arena, &g->arena_cap, vae_cuda_arena_bytes(g->v, g->dt, batch, h, w),
                               VAE_CUDA_RESERVE, oom);
}

void vae_cuda_decode(vae_cuda *g, float *out, const float *latents, int batch, int h, int w) {
    const vae_decoder *v = g->v;
    const vae_config *cf = &v->cfg;
    size_t peak, ws;
    g_plan(v, g->dt, batch, h, w, &peak, &ws);
    vae_cuda_oom oom;
    if (!vae_cuda_reserve(g, batch, h, w, &oom))
        die("out of GPU memory: a VAE pass of %d latents of %dx%d in %s needs an arena of %.2f GiB, and %.2f GiB of "
            "the GPU's %.2f GiB are free",
            batch, h, w, dtype_name(g->dt), oom.need / 1073741824.0, oom.free / 1073741824.0,
            oom.total / 1073741824.0);
    gctx c = {.w = gwalk_runner("vae_cuda", g->dt, g->arena, g->arena_cap, ws, g->weights, v->params,
                                v->params + v->n_params),
              .v = v};
    g_io io = g_io_alloc(&c, batch, h, w);

    size_t s = (size_t)vae_upscale(v);
    size_t nin = (size_t)batch * cf->latent_channels * h * w, nout = (size_t)batch * cf->out_channels * h * s * w * s;
    gwalk_upload(&g->stage, io.z, latents, nin, g->dt);

    g_decode(&c, io.out, io.z, batch, h, w);
    CHECKF(c.w.peak == peak, "vae_cuda: the pass used %zu bytes, the plan %zu", c.w.peak, peak);

    gwalk_download(&g->stage, out, io.out, nout, g->dt);   /* waits for the pass */
}

static void gpu_decode(void *g, float *out, const float *latents, int batch, int h, int w) {
    vae_cuda_decode(g, out, latents, batch, h, w);
}

void vae_cuda_decode_tiled(vae_cuda *g, float *out, const float *latents, int batch, int h, int w, int tile_px) {
    vae_decode_tiled_with(g->v, gpu_decode, g, out, latents, batch, h, w, tile_px);
}

#else /* a build without CUDA: planning only */

struct vae_cuda { int unused; };

static void no_cuda(void) __attribute__((noreturn));
static void no_cuda(void) { die("the CUDA VAE decoder needs a build with CUDA (this one is CPU only)"); }
vae_cuda *vae_cuda_new(const vae_decoder *v, dtype_t dt) { (void)v, (void)dt; no_cuda(); }
void vae_cuda_free(vae_cuda *g) { (void)g; }
dtype_t vae_cuda_dtype(const vae_cuda *g) { (void)g; no_cuda(); }
int vae_cuda_reserve(vae_cuda *g, int batch, int h, int w, vae_cuda_oom *oom) {
    (void)g, (void)batch, (void)h, (void)w, (void)oom;
    no_cuda();
}
void vae_cuda_decode(vae_cuda *g, float *out, const float *latents, int batch, int h, int w) {
    (void)g, (void)out, (void)latents, (void)batch, (void)h, (void)w;
    no_cuda();
}
void vae_cuda_decode_tiled(vae_cuda *g, float *out, const float *latents, int batch, int h, int w, int tile_px) {
    (void)g, (void)out, (void)latents, (void)batch, (void)h, (void)w, (void)tile_px;
    no_cuda();
}

#endif
