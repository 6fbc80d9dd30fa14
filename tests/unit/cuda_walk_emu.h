/* cuda_walk_emu.h — the CUDA runtime and the cuda_ops.h ops that a GPU model
 * walk calls, bound to the CPU, for the tests that include a walk's source
 * with its *_CUDA_EMULATE switch (test_unet_walk.c: unet_cuda.c,
 * test_vae_walk.c: vae_cuda.c, test_clip_text_walk.c: clip_text_cuda.c).
 * Include it after `#undef SYNTHCXR_CUDA` and before the walk's source.
 *
 * What it binds:
 *  - the runtime: cudaMalloc, cudaMemcpy(Async), cudaMemGetInfo,
 *    cudaGetLastError, CUDA_CHECK, and cuda_util.h's cuda_malloc, cuda_free,
 *    cuda_free_count, cublas_handle. The device is host memory: every block
 *    is remembered (emu_blocks), so each op checks that every tensor it reads
 *    or writes lies inside one block (the arena, the weights, the
 *    workspace), and emu_touched(block) says how far into a block the ops
 *    reached. cudaMemGetInfo reports emu_free (a test lowers it to check a
 *    walk's reservation).
 *  - the ops (conv2d, linear, group norm (+ SiLU), layer norm, attention,
 *    the activations, geglu, the element-wise and layout ops, the nearest 2x
 *    upsample): each calls its CPU twin, and checks first what the real op
 *    requires: no output aliasing an input where cuda_ops.h forbids it, the
 *    conv workspace given and holding at least one pixel's column (or, with
 *    emu_conv_ws_whole set, one whole image's im2col), and what every walk
 *    here gives: affine norms (gamma and beta present).
 *
 * Storage type, as cuda_ops.h says the CUDA ops do: each op reads its
 * tensors in the storage type dt (f32, f16 or bf16; any other dies),
 * converts them to float, runs the CPU twin on the float copies and rounds
 * its result once to dt on store. In f32 the conversions are copies, so a
 * walk runs the CPU kernels on the same values in the same order as the CPU
 * model and must equal it bit for bit; in f16 and bf16 it shows, on the CPU,
 * the rounding error of the storage type (the GPU adds only its own
 * summation order). Reading every input before writing the output also
 * gives an in-place call (out == inp, where allowed) the GPU's meaning.
 *
 * Counters and hooks for the tests: emu_convs, emu_conv_runs (convs whose
 * workspace holds less than one image: the real op then runs in runs of
 * pixels), emu_attn_calls; emu_attention_rule, a test's own requirement on
 * its model's attention calls (NULL: none). Everything is static, each
 * function marked unused, since a walk calls only some of them. */
#ifndef SYNTHCXR_CUDA_WALK_EMU_H
#define SYNTHCXR_CUDA_WALK_EMU_H

#ifdef SYNTHCXR_CUDA
#error "cuda_walk_emu.h binds the CUDA names itself: #undef SYNTHCXR_CUDA before including anything"
#endif

#include "activation.h"
#include "attention.h"
#include "common.h"
#include "conv2d.h"
#include "eltwise.h"
#include "gemm.h"
#include "norm.h"
#include "tensor.h"
#include "upsample.h"

#include <stdlib.h>
#include <string.h>

#define EMU_FN static __attribute__((unused))

/* ---- the CUDA runtime, on the host ---------------------------------------------- */

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define CUDA_CHECK(call) CHECK((call) == cudaSuccess)

/* the device: blocks of host memory, remembered so every op can check its
 * pointers; hi: the end of the highest byte an op touched, from the block's start */
static struct { const char *p; size_t n, hi; } emu_blocks[16];
static size_t emu_free = (size_t)64 << 30;   /* what cudaMemGetInfo says */
static unsigned long emu_frees;              /* cuda_free calls on a block */

EMU_FN void emu_track(const void *p, size_t n) {
    for (int i = 0; i < 16; i++)
        if (!emu_blocks[i].p) {
            emu_blocks[i].p = p, emu_blocks[i].n = n, emu_blocks[i].hi = 0;
            return;
        }
    CHECK(!"emu: too many blocks");
}
/* [p, p + bytes) lies in one device block */
EMU_FN void emu_in(const void *p, size_t bytes) {
    for (int i = 0; i < 16; i++)
        if (emu_blocks[i].p && (const char *)p >= emu_blocks[i].p &&
            (const char *)p + bytes <= emu_blocks[i].p + emu_blocks[i].n) {
            size_t end = (size_t)((const char *)p + bytes - emu_blocks[i].p);
            if (end > emu_blocks[i].hi) emu_blocks[i].hi = end;
            return;
        }
    CHECKF(0, "emu: %zu bytes at %p are outside every device block", bytes, p);
}
/* how far into `block` (a pointer cudaMalloc gave) the ops reached */
EMU_FN size_t emu_touched(const void *block) {
    for (int i = 0; i < 16; i++)
        if (emu_blocks[i].p == block) return emu_blocks[i].hi;
    CHECK(!"emu: no such block");
    return 0;
}
EMU_FN cudaError_t cudaMalloc(void **p, size_t n) {
    *p = xmalloc_aligned(n);
    emu_track(*p, n);
    return cudaSuccess;
}
EMU_FN void *cuda_malloc(size_t n) {
    void *p;
    cudaMalloc(&p, n);
    return p;
}
EMU_FN void cuda_free(void *p) {
    for (int i = 0; i < 16; i++)
        if (p && emu_blocks[i].p == p) emu_blocks[i].p = NULL;
    if (p) emu_frees++;
    free(p);
}
EMU_FN unsigned long cuda_free_count(void) { return emu_frees; }
EMU_FN cudaError_t cudaMemcpy(void *d, const void *s, size_t n, int kind) {
    if (kind != cudaMemcpyHostToDevice) emu_in(s, n);
    if (kind != cudaMemcpyDeviceToHost) emu_in(d, n);
    memcpy(d, s, n);
    return cudaSuccess;
}
EMU_FN cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, int kind, int stream) {
    (void)stream;
    return cudaMemcpy(d, s, n, kind);
}
EMU_FN cudaError_t cudaMemGetInfo(size_t *fr, size_t *total) {
    *fr = emu_free, *total = (size_t)80 << 30;
    return cudaSuccess;
}
EMU_FN cudaError_t cudaGetLastError(void) { return cudaSuccess; }
EMU_FN int cublas_handle(void) { return 0; }

/* ---- the ops: storage type in, float on the CPU twin, storage type out ------------ */

static int emu_conv_ws_whole;         /* set: a conv's workspace must hold one whole image */
static int emu_convs, emu_conv_runs;  /* convs run; those whose workspace holds less than one image */
static int emu_attn_calls;            /* attention calls */
/* a test's own requirement on its model's attention, checked at every call (NULL: none) */
static void (*emu_attention_rule)(int tq, int tk, int causal, const float *mask);

/* A float copy of n values of type dt at device address p. */
EMU_FN float *emu_get(const void *p, size_t n, dtype_t dt) {
    CHECKF(dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16, "emu: %s", dtype_name(dt));
    emu_in(p, n * dtype_size(dt));
    float *x = xmalloc((n ? n : 1) * sizeof *x);
    convert_to_f32(x, p, dt, n);
    return x;
}
/* the same for an optional tensor (a bias): NULL stays NULL */
EMU_FN float *emu_opt(const void *p, size_t n, dtype_t dt) { return p ? emu_get(p, n, dt) : NULL; }
/* room for n floats of a result, for emu_put */
EMU_FN float *emu_out(size_t n) { return xmalloc((n ? n : 1) * sizeof(float)); }
/* n floats stored at device address p in type dt (rounded once), then freed. */
EMU_FN void emu_put(void *p, float *x, size_t n, dtype_t dt) {
    CHECKF(dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16, "emu: %s", dtype_name(dt));
    emu_in(p, n * dtype_size(dt));
    convert_from_f32(p, x, dt, n);
    free(x);
}
/* gamma and beta of a norm: the op allows both NULL, but every walk here is affine */
EMU_FN void emu_affine(const char *op, const void *g, const void *b) {
    CHECKF(g && b, "emu: %s without gamma and beta", op);
}

EMU_FN size_t conv2d_cuda_workspace_bytes(const conv2d_dims *d, dtype_t dt) {
    if (d->k_h == 1 && d->k_w == 1 && d->stride_h == 1 && d->stride_w == 1 && !d->pad_h && !d->pad_w) return 0;
    return (size_t)d->in_ch * d->k_h * d->k_w * conv2d_out_h(d) * conv2d_out_w(d) * dtype_size(dt);
}
EMU_FN void conv2d_forward_cuda(void *out, const void *inp, const void *w, const void *b, const conv2d_dims *d,
                                void *ws, size_t ws_bytes, dtype_t dt) {
    size_t need = conv2d_cuda_workspace_bytes(d, dt), col = (size_t)d->in_ch * d->k_h * d->k_w * dtype_size(dt);
    if (need) {
        if (emu_conv_ws_whole)
            CHECKF(ws && ws_bytes >= need, "emu: conv workspace %zu bytes, one image needs %zu", ws_bytes, need);
        /* the real op runs in runs of ws_bytes / col pixels, using at most min(ws_bytes, need) */
        CHECKF(ws && ws_bytes >= col, "emu: conv workspace %zu bytes, one column needs %zu", ws_bytes, col);
        emu_in(ws, need < ws_bytes ? need : ws_bytes);
        emu_conv_runs += ws_bytes < need;
    }
    emu_convs++;
    CHECKF(out != inp, "emu: conv2d_forward_cuda's out aliases its input");
    size_t n_out = (size_t)d->batch * d->out_ch * conv2d_out_h(d) * conv2d_out_w(d);
    float *x = emu_get(inp, (size_t)d->batch * d->in_ch * d->in_h * d->in_w, dt);
    float *ww = emu_get(w, (size_t)d->out_ch * d->in_ch * d->k_h * d->k_w, dt);
    float *bb = emu_opt(b, (size_t)d->out_ch, dt), *y = emu_out(n_out);
    conv2d_forward(y, x, ww, bb, d);
    emu_put(out, y, n_out, dt);
    free(x), free(ww), free(bb);
}
EMU_FN void linear_forward_cuda(void *out, const void *inp, const void *w, const void *b, int n, int in_f,
                                int out_f, dtype_t dt) {
    CHECKF(out != inp, "emu: linear_forward_cuda's out aliases its input");
    float *x = emu_get(inp, (size_t)n * in_f, dt), *ww = emu_get(w, (size_t)out_f * in_f, dt);
    float *bb = emu_opt(b, (size_t)out_f, dt), *y = emu_out((size_t)n * out_f);
    linear_forward(y, x, ww, bb, n, in_f, out_f);
    emu_put(out, y, (size_t)n * out_f, dt);
    free(x), free(ww), free(bb);
}
#define EMU_GROUPNORM(name)                                                                                      \
    EMU_FN void name##_cuda(void *out, const void *inp, const void *g, const void *b, int batch, int ch, int hw, \
                            int groups, float eps, dtype_t dt) {                                                 \
        emu_affine(#name "_cuda", g, b);                                                                         \
        size_t n = (size_t)batch * ch * hw;                                                                      \
        float *x = emu_get(inp, n, dt), *gg = emu_get(g, (size_t)ch, dt), *bb = emu_get(b, (size_t)ch, dt);      \
        float *y = emu_out(n);                                                                                   \
        name(y, x, gg, bb, batch, ch, hw, groups, eps);                                                          \
        emu_put(out, y, n, dt);                                                                                  \
        free(x), free(gg), free(bb);                                                                             \
    }
EMU_GROUPNORM(groupnorm_forward)
EMU_GROUPNORM(groupnorm_silu_forward)
#undef EMU_GROUPNORM
EMU_FN void layernorm_forward_cuda(void *out, const void *inp, const void *g, const void *b, int rows, int ch,
                                   float eps, dtype_t dt) {
    emu_affine("layernorm_forward_cuda", g, b);
    size_t n = (size_t)rows * ch;
    float *x = emu_get(inp, n, dt), *gg = emu_get(g, (size_t)ch, dt), *bb = emu_get(b, (size_t)ch, dt);
    float *y = emu_out(n);
    layernorm_forward(y, x, gg, bb, rows, ch, eps);
    emu_put(out, y, n, dt);
    free(x), free(gg), free(bb);
}
/* out == q is allowed (the queries are read first); the key mask is float whatever dt */
EMU_FN void attention_forward_cuda(void *out, const void *q, const void *k, const void *v, int batch, int heads,
                                   int tq, int tk, int hd, float scale, int causal, const float *mask, dtype_t dt) {
    CHECKF(out != k && out != v, "emu: attention_forward_cuda's out aliases k or v");
    if (emu_attention_rule) emu_attention_rule(tq, tk, causal, mask);
    if (mask) emu_in(mask, (size_t)batch * tk * sizeof *mask);
    size_t nq = (size_t)batch * tq * heads * hd, nk = (size_t)batch * tk * heads * hd;
    float *qq = emu_get(q, nq, dt), *kk = emu_get(k, nk, dt), *vv = emu_get(v, nk, dt), *y = emu_out(nq);
    attention_forward(y, qq, kk, vv, batch, heads, tq, tk, hd, scale, causal, mask);
    emu_put(out, y, nq, dt);
    free(qq), free(kk), free(vv);
    emu_attn_calls++;
}
#define EMU_ACT(name)                                                            \
    EMU_FN void name##_cuda(void *out, const void *inp, size_t n, dtype_t dt) { \
        float *x = emu_get(inp, n, dt), *y = emu_out(n);                         \
        name(y, x, n);                                                           \
        emu_put(out, y, n, dt);                                                  \
        free(x);                                                                 \
    }
EMU_ACT(gelu_forward)
EMU_ACT(gelu_tanh_forward)
EMU_ACT(quick_gelu_forward)
EMU_ACT(silu_forward)
#undef EMU_ACT
EMU_FN void geglu_forward_cuda(void *out, const void *inp, int rows, int ch, dtype_t dt) {
    CHECKF(out != inp, "emu: geglu_forward_cuda's out aliases its input");
    float *x = emu_get(inp, (size_t)rows * 2 * ch, dt), *y = emu_out((size_t)rows * ch);
    geglu_forward(y, x, rows, ch);
    emu_put(out, y, (size_t)rows * ch, dt);
    free(x);
}
EMU_FN void eltwise_add_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    float *x = emu_get(a, n, dt), *y = emu_get(b, n, dt), *z = emu_out(n);
    eltwise_add(z, x, y, n);
    emu_put(out, z, n, dt);
    free(x), free(y);
}
EMU_FN void eltwise_scale_cuda(void *out, const void *a, float s, size_t n, dtype_t dt) {
    float *x = emu_get(a, n, dt), *y = emu_out(n);
    eltwise_scale(y, x, s, n);
    emu_put(out, y, n, dt);
    free(x);
}
/* x [batch, ch, hw] += v [batch, ch], in place */
EMU_FN void eltwise_add_batch_channels_cuda(void *x, const void *v, int batch, int ch, int hw, dtype_t dt) {
    size_t n = (size_t)batch * ch * hw;
    float *xx = emu_get(x, n, dt), *vv = emu_get(v, (size_t)batch * ch, dt);
    eltwise_add_batch_channels(xx, vv, batch, ch, hw);
    emu_put(x, xx, n, dt);
    free(vv);
}
EMU_FN void eltwise_concat_channels_cuda(void *out, const void *a, int ca, const void *b, int cb, int batch, int hw,
                                         dtype_t dt) {
    CHECKF(out != a && out != b, "emu: eltwise_concat_channels_cuda's out aliases an input");
    size_t n = (size_t)batch * (ca + cb) * hw;
    float *x = emu_get(a, (size_t)batch * ca * hw, dt), *y = emu_get(b, (size_t)batch * cb * hw, dt);
    float *z = emu_out(n);
    eltwise_concat_channels(z, x, ca, y, cb, batch, hw);
    emu_put(out, z, n, dt);
    free(x), free(y);
}
EMU_FN void eltwise_transpose_cuda(void *out, const void *inp, int batch, int m, int n, dtype_t dt) {
    CHECKF(out != inp, "emu: eltwise_transpose_cuda's out aliases its input");
    size_t cnt = (size_t)batch * m * n;
    float *x = emu_get(inp, cnt, dt), *y = emu_out(cnt);
    eltwise_transpose(y, x, batch, m, n);
    emu_put(out, y, cnt, dt);
    free(x);
}
EMU_FN void upsample_nearest2x_forward_cuda(void *out, const void *inp, int batch, int ch, int h, int w,
                                            dtype_t dt) {
    CHECKF(out != inp, "emu: upsample_nearest2x_forward_cuda's out aliases its input");
    size_t n = (size_t)batch * ch * h * w;
    float *x = emu_get(inp, n, dt), *y = emu_out(4 * n);
    upsample_nearest2x_forward(y, x, batch, ch, h, w);
    emu_put(out, y, 4 * n, dt);
    free(x);
}

#undef EMU_FN
#endif
