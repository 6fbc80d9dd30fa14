/* test_gpu_ops.c — every CUDA op of cuda_ops.h except attention
 * (test_gpu_attention.c) against its CPU twin, in each storage type (f32, f16,
 * bf16), on random inputs of awkward sizes (odd channels, tails past the
 * block size, batch > 1). Inputs are rounded to the storage type first on both
 * sides; the GPU result is downloaded, checked for NaN/inf, then its
 * normalised error max|gpu - cpu| / max|cpu| is printed ("# op dtype: err ...")
 * and held to gt_tol(): f32 1e-5 (1e-4 for GEMM and conv: summation order),
 * f16 2e-3, bf16 1.6e-2; pure data movement (concat, transpose, upsample) must
 * be exact. Without a GPU (or in a CUDA=0 build) every test says "# SKIP no GPU". */
#include "unit.h"
#include "device.h"

#include "activation.h"
#include "conv2d.h"
#include "eltwise.h"
#include "gemm.h"
#include "norm.h"
#include "softmax.h"
#include "upsample.h"

#ifdef SYNTHCXR_CUDA
#include "gpu_test.h"

/* ---- GEMM -------------------------------------------------------------------- */

static void test_gemm(void) {
    if (!have_gpu()) return;
    struct { int m, n, k, pad; float alpha, beta; } cases[] = {
        {1, 1, 1, 0, 1.0f, 0.0f},   {7, 13, 5, 0, 1.0f, 0.0f},        {13, 7, 5, 3, 1.5f, 0.5f},
        {64, 48, 33, 0, 1.0f, 1.0f}, {129, 65, 257, 5, -0.75f, 0.25f}, {256, 320, 77, 0, 1.0f, 0.0f},
    };
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        double worst_tol = gt_tol(dt, 1e-4);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (int t = 0; t < 4; t++) {
                int ta = t & 1, tb = t >> 1;
                int m = cases[ci].m, n = cases[ci].n, k = cases[ci].k, pad = cases[ci].pad;
                int arows = ta ? k : m, acols = ta ? m : k, brows = tb ? n : k, bcols = tb ? k : n;
                int lda = acols + pad, ldb = bcols + pad, ldc = n + pad;
                size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)m * ldc;
                float *a = host_rand(na, 1, 0, dt), *b = host_rand(nb, 1, 0, dt), *c = host_rand(nc, 1, 0, dt);
                void *da = dev_from(a, na, dt), *db = dev_from(b, nb, dt), *dc = dev_from(c, nc, dt);
                gemm_f32(ta, tb, m, n, k, cases[ci].alpha, a, lda, b, ldb, cases[ci].beta, c, ldc);
                gemm_cuda(ta, tb, m, n, k, cases[ci].alpha, da, lda, db, ldb, cases[ci].beta, dc, ldc, dt);
                float *got = host_from(dc, nc, dt);
                char what[128];
                snprintf(what, sizeof what, "gemm %dx%dx%d trans %d%d pad %d", m, n, k, ta, tb, pad);
                /* The padding past n in each row of C must be left alone: the whole buffer is compared. */
                gt_compare(what, dt, got, c, nc, worst_tol);
                cuda_free(da), cuda_free(db), cuda_free(dc);
                free(a), free(b), free(c), free(got);
            }
    }
}

static void test_gemm_batched(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        /* 3 products of [17 x 29] @ [29 x 11]^T-stored B, A shared (stride 0) in the second pass. */
        for (int shared_a = 0; shared_a < 2; shared_a++) {
            int m = 17, n = 11, k = 29, batch = 3;
            int64_t sa = shared_a ? 0 : (int64_t)m * k + 3, sb = (int64_t)n * k + 1, sc = (int64_t)m * n + 2;
            size_t na = (size_t)(sa * (batch - 1) + m * k), nb = (size_t)(sb * batch), nc = (size_t)(sc * batch);
            float *a = host_rand(na, 1, 0, dt), *b = host_rand(nb, 1, 0, dt), *c = host_rand(nc, 1, 0, dt);
            void *da = dev_from(a, na, dt), *db = dev_from(b, nb, dt), *dc = dev_from(c, nc, dt);
            gemm_batched_f32(0, 1, m, n, k, 0.5f, a, k, sa, b, k, sb, 0.25f, c, n, sc, batch);
            gemm_batched_cuda(0, 1, m, n, k, 0.5f, da, k, sa, db, k, sb, 0.25f, dc, n, sc, batch, dt);
            float *got = host_from(dc, nc, dt);
            gt_compare(shared_a ? "gemm_batched shared A" : "gemm_batched", dt, got, c, nc, gt_tol(dt, 1e-4));
            cuda_free(da), cuda_free(db), cuda_free(dc);
            free(a), free(b), free(c), free(got);
        }
    }
}

static void test_linear(void) {
    if (!have_gpu()) return;
    struct { int n, in_f, out_f, bias; } cases[] = {{1, 1, 1, 1}, {77, 768, 33, 1}, {130, 40, 320, 0}, {5, 321, 7, 1}};
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int n = cases[ci].n, in_f = cases[ci].in_f, out_f = cases[ci].out_f;
            float *x = host_rand((size_t)n * in_f, 1, 0, dt), *w = host_rand((size_t)out_f * in_f, 0.2f, 0, dt);
            float *bias = cases[ci].bias ? host_rand((size_t)out_f, 1, 0, dt) : NULL;
            float *want = xmalloc((size_t)n * out_f * sizeof *want);
            linear_forward(want, x, w, bias, n, in_f, out_f);
            void *dx = dev_from(x, (size_t)n * in_f, dt), *dw = dev_from(w, (size_t)out_f * in_f, dt);
            void *db = bias ? dev_from(bias, (size_t)out_f, dt) : NULL;
            void *dy = cuda_malloc((size_t)n * out_f * dtype_size(dt));
            linear_forward_cuda(dy, dx, dw, db, n, in_f, out_f, dt);
            float *got = host_from(dy, (size_t)n * out_f, dt);
            char what[96];
            snprintf(what, sizeof what, "linear n %d in %d out %d%s", n, in_f, out_f, bias ? " bias" : "");
            gt_compare(what, dt, got, want, (size_t)n * out_f, gt_tol(dt, 1e-4));
            cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dy);
            free(x), free(w), free(bias), free(want), free(got);
        }
    }
}

/* ---- conv2d ------------------------------------------------------------------ */

/* One conv2d_forward_cuda call through implementation impl (conv2d_cuda_set_impl) against conv2d_forward;
 * ws_cols > 0: a workspace of that many im2col columns, else the call's own. */
static void conv2d_case(dtype_t dt, const conv2d_dims *d, int with_bias, int ws_cols, int impl) {
    int oh = conv2d_out_h(d), ow = conv2d_out_w(d);
    size_t nin = (size_t)d->batch * d->in_ch * d->in_h * d->in_w;
    size_t nw = (size_t)d->out_ch * d->in_ch * d->k_h * d->k_w;
    size_t nout = (size_t)d->batch * d->out_ch * oh * ow;
    float *x = host_rand(nin, 1, 0, dt), *w = host_rand(nw, 0.3f, 0, dt);
    float *bias = with_bias ? host_rand((size_t)d->out_ch, 1, 0, dt) : NULL;
    float *want = xmalloc(nout * sizeof *want);
    conv2d_forward(want, x, w, bias, d);
    void *dx = dev_from(x, nin, dt), *dw = dev_from(w, nw, dt);
    void *db = bias ? dev_from(bias, (size_t)d->out_ch, dt) : NULL;
    void *dy = cuda_malloc(nout * dtype_size(dt));
    size_t ws_bytes = (size_t)ws_cols * d->in_ch * d->k_h * d->k_w * dtype_size(dt);
    void *ws = ws_bytes ? cuda_malloc(ws_bytes) : NULL;
    int old = conv2d_cuda_set_impl(impl);
    conv2d_forward_cuda(dy, dx, dw, db, d, ws, ws_bytes, dt);
    conv2d_cuda_set_impl(old);
    float *got = host_from(dy, nout, dt);
    char what[128];
    snprintf(what, sizeof what, "conv2d %s b%d %d->%d %dx%d k%d s%d p%d%s ws %d", impl == 2 ? "igemm" : "im2col",
             d->batch, d->in_ch, d->out_ch, d->in_h, d->in_w, d->k_h, d->stride_h, d->pad_h, bias ? " bias" : "",
             ws_cols);
    gt_compare(what, dt, got, want, nout, gt_tol(dt, 1e-4));
    cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dy), cuda_free(ws);
    free(x), free(w), free(bias), free(want), free(got);
}

static void test_conv2d(void) {
    if (!have_gpu()) return;
    struct { conv2d_dims d; int bias; int ws_cols; } cases[] = {
        /* batch, in_ch, in_h, in_w, out_ch, k_h, k_w, stride_h, stride_w, pad_h, pad_w */
        {{2, 5, 9, 7, 6, 3, 3, 1, 1, 1, 1}, 1, 0},   /* 3x3 pad 1 (ResNet block), own workspace */
        {{2, 3, 11, 8, 4, 3, 3, 2, 2, 1, 1}, 1, 0},  /* 3x3 stride 2 (Downsample2D) */
        {{2, 4, 8, 8, 3, 3, 3, 2, 2, 0, 0}, 0, 0},   /* stride 2 unpadded (VAE: after its own pad) */
        {{3, 7, 5, 5, 4, 1, 1, 1, 1, 0, 0}, 1, 0},   /* 1x1 (conv_shortcut, proj_in) */
        {{1, 9, 6, 3, 11, 1, 1, 1, 1, 0, 0}, 0, 0},  /* 1x1 without bias */
        {{2, 6, 13, 9, 5, 3, 3, 1, 1, 1, 1}, 1, 7},  /* runs of 7 pixels: many tiles, a tail */
        {{1, 4, 7, 7, 2, 3, 3, 2, 2, 1, 1}, 0, 1},   /* one pixel per run */
        {{3, 4, 5, 6, 5, 3, 3, 1, 1, 1, 1}, 1, 60},  /* two whole images per run (30 pixels each), then one */
        /* for the implicit GEMM: K past and not a multiple of its 32-wide step, out_ch past its 128-row tile,
         * pixels past a 128-pixel tile, 16-byte weight loads (K % 8 == 0) and element-wise ones */
        {{2, 4, 12, 11, 40, 3, 3, 1, 1, 1, 1}, 1, 0},     /* conv_in: 4 input channels, K 36 */
        {{2, 24, 10, 9, 136, 3, 3, 1, 1, 1, 1}, 1, 0},    /* K 216, 2 row tiles, 180 pixels */
        {{2, 20, 13, 13, 36, 3, 3, 2, 2, 1, 1}, 0, 0},    /* downsampler, K 180 (not % 8), odd 7x7 output */
        {{2, 136, 9, 10, 130, 1, 1, 1, 1, 0, 0}, 1, 0},   /* 1x1, K 136, out_ch 130 */
        {{1, 64, 34, 34, 64, 3, 3, 1, 1, 1, 1}, 1, 0},    /* 1156 pixels, 19 tiles of 64 (the small-grid choice) */
        {{2, 8, 144, 144, 130, 3, 3, 1, 1, 1, 1}, 1, 0},  /* 648 blocks of 128 x 128: the large-grid choice */
    };
    /* impl 2, the implicit GEMM, for f16/bf16 (f32 falls back to impl 1) is held to the same tolerance:
     * both accumulate in float and round once, so they differ from the CPU only by summation order. */
    for (int di = 0; di < 3; di++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (int impl = 1; impl <= 2; impl++)
                conv2d_case(gt_dtypes[di], &cases[ci].d, cases[ci].bias, cases[ci].ws_cols, impl);
}

/* ---- norms and softmax ----------------------------------------------------------- */

static void groupnorm_case(int silu, dtype_t dt, int batch, int ch, int hw, int groups, int affine, float offset,
                           int in_place) {
    size_t n = (size_t)batch * ch * hw;
    float *x = host_rand(n, 2, offset, dt);
    float *gamma = affine ? host_rand((size_t)ch, 1, 1, dt) : NULL, *beta = affine ? host_rand((size_t)ch, 1, 0, dt) : NULL;
    float *want = xmalloc(n * sizeof *want);
    (silu ? groupnorm_silu_forward : groupnorm_forward)(want, x, gamma, beta, batch, ch, hw, groups, 1e-5f);
    void *dx = dev_from(x, n, dt), *dg = affine ? dev_from(gamma, (size_t)ch, dt) : NULL;
    void *dbeta = affine ? dev_from(beta, (size_t)ch, dt) : NULL;
    void *dy = in_place ? dx : cuda_malloc(n * dtype_size(dt));
    (silu ? groupnorm_silu_forward_cuda : groupnorm_forward_cuda)(dy, dx, dg, dbeta, batch, ch, hw, groups, 1e-5f, dt);
    float *got = host_from(dy, n, dt);
    char what[128];
    snprintf(what, sizeof what, "%s b%d c%d hw%d g%d%s%s%s", silu ? "groupnorm_silu" : "groupnorm", batch, ch, hw,
             groups, affine ? "" : " no-affine", offset ? " offset" : "", in_place ? " in-place" : "");
    gt_compare(what, dt, got, want, n, gt_tol(dt, 1e-5));
    if (!in_place) cuda_free(dy);
    cuda_free(dx), cuda_free(dg), cuda_free(dbeta);
    free(x), free(gamma), free(beta), free(want), free(got);
}

static void test_groupnorm(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++)
        for (int silu = 0; silu < 2; silu++) {
            dtype_t dt = gt_dtypes[di];
            groupnorm_case(silu, dt, 2, 12, 37, 4, 1, 0, 0);    /* 3 channels per group, odd hw */
            groupnorm_case(silu, dt, 1, 64, 1031, 32, 1, 0, 0); /* slab 2062 > the block */
            groupnorm_case(silu, dt, 3, 6, 5, 3, 0, 0, 0);      /* no affine */
            groupnorm_case(silu, dt, 2, 8, 50, 2, 1, 30, 0);    /* a large mean */
            groupnorm_case(silu, dt, 2, 9, 17, 3, 1, 0, 1);     /* in place */
            groupnorm_case(silu, dt, 1, 32, 20000, 8, 1, 0, 0); /* 10 chunks per slab, the last partial */
            groupnorm_case(silu, dt, 1, 16, 9000, 4, 1, 3, 1);  /* in place over 5 chunks (shift kept aside) */
        }
}

static void test_layernorm(void) {
    if (!have_gpu()) return;
    struct { int rows, ch, affine, in_place; float offset; } cases[] = {
        {1, 1, 1, 0, 0}, {37, 77, 1, 0, 0}, {5, 1280, 1, 0, 0}, {9, 768, 0, 0, 0}, {7, 33, 1, 0, 20}, {11, 320, 1, 1, 0},
    };
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int rows = cases[ci].rows, ch = cases[ci].ch;
            size_t n = (size_t)rows * ch;
            float *x = host_rand(n, 2, cases[ci].offset, dt);
            float *gamma = cases[ci].affine ? host_rand((size_t)ch, 1, 1, dt) : NULL;
            float *beta = cases[ci].affine ? host_rand((size_t)ch, 1, 0, dt) : NULL;
            float *want = xmalloc(n * sizeof *want);
            layernorm_forward(want, x, gamma, beta, rows, ch, 1e-5f);
            void *dx = dev_from(x, n, dt), *dg = gamma ? dev_from(gamma, (size_t)ch, dt) : NULL;
            void *dbeta = beta ? dev_from(beta, (size_t)ch, dt) : NULL;
            void *dy = cases[ci].in_place ? dx : cuda_malloc(n * dtype_size(dt));
            layernorm_forward_cuda(dy, dx, dg, dbeta, rows, ch, 1e-5f, dt);
            float *got = host_from(dy, n, dt);
            char what[96];
            snprintf(what, sizeof what, "layernorm %dx%d%s%s%s", rows, ch, gamma ? "" : " no-affine",
                     cases[ci].offset ? " offset" : "", cases[ci].in_place ? " in-place" : "");
            /* ln(1x1) is 0 (x - mean): compared absolutely */
            gt_compare(what, dt, got, want, n, gt_tol(dt, 1e-5));
            if (!cases[ci].in_place) cuda_free(dy);
            cuda_free(dx), cuda_free(dg), cuda_free(dbeta);
            free(x), free(gamma), free(beta), free(want), free(got);
        }
    }
}

static void test_softmax(void) {
    if (!have_gpu()) return;
    struct { int rows, cols; } cases[] = {{1, 1}, {13, 1000}, {64, 77}, {3, 4099}};
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int rows = cases[ci].rows, cols = cases[ci].cols;
            size_t n = (size_t)rows * cols;
            float *x = host_rand(n, 8, 0, dt);
            if (rows > 2) {
                for (int c = 0; c < cols; c++) x[cols + c] = -INFINITY; /* row 1 fully masked: zeros */
                for (int c = 0; c < cols; c += 3) x[2 * cols + c] = -INFINITY;
            }
            float *want = xmalloc(n * sizeof *want);
            softmax_forward(want, x, rows, cols);
            void *dx = dev_from(x, n, dt);
            softmax_forward_cuda(dx, dx, rows, cols, dt); /* in place */
            float *got = host_from(dx, n, dt);
            char what[64];
            snprintf(what, sizeof what, "softmax %dx%d in-place", rows, cols);
            gt_compare(what, dt, got, want, n, gt_tol(dt, 1e-5));
            cuda_free(dx);
            free(x), free(want), free(got);
        }
    }
}

/* ---- activations --------------------------------------------------------------- */

static void test_activations(void) {
    if (!have_gpu()) return;
    typedef void (*cpu_fn)(float *, const float *, size_t);
    typedef void (*gpu_fn)(void *, const void *, size_t, dtype_t);
    struct { const char *name; cpu_fn cpu; gpu_fn gpu; } acts[] = {
        {"gelu", gelu_forward, gelu_forward_cuda},
        {"gelu_tanh", gelu_tanh_forward, gelu_tanh_forward_cuda},
        {"quick_gelu", quick_gelu_forward, quick_gelu_forward_cuda},
        {"silu", silu_forward, silu_forward_cuda},
    };
    size_t n = 100003; /* not a multiple of the block size */
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
            float *x = host_rand(n, 12, 0, dt);
            x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -88.0f; /* overflow and the flat tails */
            round_to(x, 4, dt);
            float *want = xmalloc(n * sizeof *want);
            acts[ai].cpu(want, x, n);
            void *dx = dev_from(x, n, dt), *dy = cuda_malloc(n * dtype_size(dt));
            acts[ai].gpu(dy, dx, n, dt);
            float *got = host_from(dy, n, dt);
            gt_compare(acts[ai].name, dt, got, want, n, gt_tol(dt, 1e-5));
            acts[ai].gpu(dx, dx, n, dt); /* in place */
            free(got);
            got = host_from(dx, n, dt);
            char what[64];
            snprintf(what, sizeof what, "%s in-place", acts[ai].name);
            gt_compare(what, dt, got, want, n, gt_tol(dt, 1e-5));
            /* Pointers one element past 16-byte alignment: the element-wise path. */
            free(got);
            void *dx1 = dev_from(x, n, dt), *dy1 = cuda_malloc(n * dtype_size(dt));
            acts[ai].gpu((char *)dy1 + dtype_size(dt), (char *)dx1 + dtype_size(dt), n - 1, dt);
            got = host_from(dy1, n, dt);
            snprintf(what, sizeof what, "%s unaligned", acts[ai].name);
            gt_compare(what, dt, got + 1, want + 1, n - 1, gt_tol(dt, 1e-5));
            cuda_free(dx1), cuda_free(dy1);
            cuda_free(dx), cuda_free(dy);
            free(x), free(want), free(got);
        }
    }
}

static void test_geglu(void) {
    if (!have_gpu()) return;
    struct { int rows, ch; } cases[] = {{1, 1}, {7, 33}, {130, 1280}};
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int rows = cases[ci].rows, ch = cases[ci].ch;
            size_t nin = (size_t)rows * 2 * ch, n = (size_t)rows * ch;
            float *x = host_rand(nin, 4, 0, dt), *want = xmalloc(n * sizeof *want);
            geglu_forward(want, x, rows, ch);
            void *dx = dev_from(x, nin, dt), *dy = cuda_malloc(n * dtype_size(dt));
            geglu_forward_cuda(dy, dx, rows, ch, dt);
            float *got = host_from(dy, n, dt);
            char what[64];
            snprintf(what, sizeof what, "geglu %dx%d", rows, ch);
            gt_compare(what, dt, got, want, n, gt_tol(dt, 1e-5));
            cuda_free(dx), cuda_free(dy);
            free(x), free(want), free(got);
        }
    }
}

/* ---- element-wise and layout ------------------------------------------------------ */

static void test_eltwise_binary(void) {
    if (!have_gpu()) return;
    size_t n = 10001;
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        float *a = host_rand(n, 3, 0, dt), *b = host_rand(n, 3, 0, dt), *want = xmalloc(n * sizeof *want);
        void *da = dev_from(a, n, dt), *db = dev_from(b, n, dt), *dy = cuda_malloc(n * dtype_size(dt));
        float *got;
        eltwise_add(want, a, b, n);
        eltwise_add_cuda(dy, da, db, n, dt);
        got = host_from(dy, n, dt), gt_compare("add", dt, got, want, n, gt_tol(dt, 1e-5)), free(got);
        eltwise_mul(want, a, b, n);
        eltwise_mul_cuda(dy, da, db, n, dt);
        got = host_from(dy, n, dt), gt_compare("mul", dt, got, want, n, gt_tol(dt, 1e-5)), free(got);
        eltwise_scale(want, a, 0.18215f, n);
        eltwise_scale_cuda(dy, da, 0.18215f, n, dt);
        got = host_from(dy, n, dt), gt_compare("scale", dt, got, want, n, gt_tol(dt, 1e-5)), free(got);
        eltwise_axpby(want, 1.25f, a, -0.5f, b, n);
        eltwise_axpby_cuda(dy, 1.25f, da, -0.5f, db, n, dt);
        got = host_from(dy, n, dt), gt_compare("axpby", dt, got, want, n, gt_tol(dt, 1e-5)), free(got);
        /* one element past 16-byte alignment: the element-wise path */
        size_t e = dtype_size(dt);
        eltwise_axpby(want, 1.25f, a, -0.5f, b, n);
        eltwise_axpby_cuda((char *)dy + e, 1.25f, (char *)da + e, -0.5f, (char *)db + e, n - 1, dt);
        got = host_from(dy, n, dt), gt_compare("axpby unaligned", dt, got + 1, want + 1, n - 1, gt_tol(dt, 1e-5)), free(got);
        eltwise_scale(want, a, 3.0f, n);
        eltwise_scale_cuda((char *)dy + e, (char *)da + e, 3.0f, n - 1, dt);
        got = host_from(dy, n, dt), gt_compare("scale unaligned", dt, got + 1, want + 1, n - 1, gt_tol(dt, 1e-5)), free(got);
        eltwise_add_cuda(da, da, db, n, dt); /* in place: da = a + b */
        eltwise_add(want, a, b, n);
        got = host_from(da, n, dt), gt_compare("add in-place", dt, got, want, n, gt_tol(dt, 1e-5)), free(got);
        cuda_free(da), cuda_free(db), cuda_free(dy);
        free(a), free(b), free(want);
    }
}

static void test_eltwise_broadcast(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        int rows = 17, ch = 33, batch = 2, hw = 37;
        /* bias rows: x [rows, ch] += bias [ch]; then the same on a view one element past 16-byte alignment */
        size_t n = (size_t)rows * ch;
        float *x = host_rand(n, 2, 0, dt), *bias = host_rand((size_t)ch, 2, 0, dt);
        void *dx = dev_from(x, n, dt), *dbias = dev_from(bias, (size_t)ch, dt);
        eltwise_add_bias_rows(x, bias, rows, ch);
        eltwise_add_bias_rows_cuda(dx, dbias, rows, ch, dt);
        float *got = host_from(dx, n, dt);
        gt_compare("add_bias_rows 17x33", dt, got, x, n, gt_tol(dt, 1e-5));
        cuda_free(dx), free(x), free(got);
        x = host_rand(n + 1, 2, 0, dt);
        dx = dev_from(x, n + 1, dt);
        eltwise_add_bias_rows(x + 1, bias, rows, ch);
        eltwise_add_bias_rows_cuda((char *)dx + dtype_size(dt), dbias, rows, ch, dt);
        got = host_from(dx, n + 1, dt);
        gt_compare("add_bias_rows 17x33 unaligned", dt, got + 1, x + 1, n, gt_tol(dt, 1e-5));
        cuda_free(dx), cuda_free(dbias), free(x), free(bias), free(got);
        /* bias channels: x [batch, ch, hw] += bias [ch];  batch channels: += v [batch, ch] */
        for (int per_batch = 0; per_batch < 2; per_batch++) {
            n = (size_t)batch * ch * hw;
            size_t nv = per_batch ? (size_t)batch * ch : (size_t)ch;
            x = host_rand(n, 2, 0, dt);
            float *v = host_rand(nv, 2, 0, dt);
            dx = dev_from(x, n, dt);
            void *dv = dev_from(v, nv, dt);
            if (per_batch) {
                eltwise_add_batch_channels(x, v, batch, ch, hw);
                eltwise_add_batch_channels_cuda(dx, dv, batch, ch, hw, dt);
            } else {
                eltwise_add_bias_channels(x, v, batch, ch, hw);
                eltwise_add_bias_channels_cuda(dx, dv, batch, ch, hw, dt);
            }
            got = host_from(dx, n, dt);
            gt_compare(per_batch ? "add_batch_channels 2x33x37" : "add_bias_channels 2x33x37", dt, got, x, n,
                       gt_tol(dt, 1e-5));
            cuda_free(dx), cuda_free(dv), free(x), free(v), free(got);
        }
    }
}

static void test_layout(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++) {
        dtype_t dt = gt_dtypes[di];
        /* concat: [2, 3, 37] + [2, 5, 37] -> [2, 8, 37], and an empty first part */
        for (int ca = 0; ca <= 3; ca += 3) {
            int cb = 5, batch = 2, hw = 37;
            size_t na = (size_t)batch * ca * hw, nb = (size_t)batch * cb * hw, n = na + nb;
            float *a = host_rand(na, 1, 0, dt), *b = host_rand(nb, 1, 0, dt), *want = xmalloc(n * sizeof *want);
            eltwise_concat_channels(want, a, ca, b, cb, batch, hw);
            void *da = dev_from(a, na, dt), *db = dev_from(b, nb, dt), *dy = cuda_malloc(n * dtype_size(dt));
            eltwise_concat_channels_cuda(dy, da, ca, db, cb, batch, hw, dt);
            float *got = host_from(dy, n, dt);
            gt_compare(ca ? "concat_channels 3+5" : "concat_channels 0+5", dt, got, want, n, 0);
            cuda_free(da), cuda_free(db), cuda_free(dy), free(a), free(b), free(want), free(got);
        }
        /* transpose: [3, 45, 70] -> [3, 70, 45] (tiles with tails both ways), and 1 x 1 */
        int shapes[][3] = {{3, 45, 70}, {1, 1, 1}, {2, 320, 64}, {1, 1, 100}};
        for (int si = 0; si < 4; si++) {
            int batch = shapes[si][0], m = shapes[si][1], n2 = shapes[si][2];
            size_t n = (size_t)batch * m * n2;
            float *x = host_rand(n, 1, 0, dt), *want = xmalloc(n * sizeof *want);
            eltwise_transpose(want, x, batch, m, n2);
            void *dx = dev_from(x, n, dt), *dy = cuda_malloc(n * dtype_size(dt));
            eltwise_transpose_cuda(dy, dx, batch, m, n2, dt);
            float *got = host_from(dy, n, dt);
            char what[64];
            snprintf(what, sizeof what, "transpose %dx%dx%d", batch, m, n2);
            gt_compare(what, dt, got, want, n, 0);
            cuda_free(dx), cuda_free(dy), free(x), free(want), free(got);
        }
        /* upsample: [2, 3, 5, 7] -> [2, 3, 10, 14] */
        {
            int batch = 2, ch = 3, h = 5, w = 7;
            size_t nin = (size_t)batch * ch * h * w, n = 4 * nin;
            float *x = host_rand(nin, 1, 0, dt), *want = xmalloc(n * sizeof *want);
            upsample_nearest2x_forward(want, x, batch, ch, h, w);
            void *dx = dev_from(x, nin, dt), *dy = cuda_malloc(n * dtype_size(dt));
            upsample_nearest2x_forward_cuda(dy, dx, batch, ch, h, w, dt);
            float *got = host_from(dy, n, dt);
            gt_compare("upsample_nearest2x 2x3x5x7", dt, got, want, n, 0);
            cuda_free(dx), cuda_free(dy), free(x), free(want), free(got);
        }
    }
}

/* A dtype the ops do not take dies with the op's name (forked: no GPU call in the child). */
static void bad_dtype(void *arg) {
    (void)arg;
    eltwise_add_cuda((void *)16, (void *)16, (void *)16, 4, DTYPE_I32);
}

static void test_bad_dtype(void) {
    expect_dies("i32 storage", bad_dtype, NULL, 2, "eltwise_add_cuda: unsupported storage type i32");
}

static void bad_conv_impl(void *arg) {
    (void)arg;
    conv2d_cuda_set_impl(3);
}

/* SYNTHCXR_CONV_IMPL is read at the first f16/bf16 call in auto mode, before any CUDA call. */
static void bad_conv_env(void *arg) {
    (void)arg;
    conv2d_dims d = {1, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1};
    setenv("SYNTHCXR_CONV_IMPL", "igemm", 1);
    conv2d_forward_cuda((void *)16, (void *)16, (void *)16, NULL, &d, NULL, 0, DTYPE_F16);
}

static void test_conv_impl_bad(void) {
    expect_dies("conv2d_cuda_set_impl(3)", bad_conv_impl, NULL, 2,
                "conv2d_cuda_set_impl: unknown implementation 3");
    expect_dies("SYNTHCXR_CONV_IMPL=igemm", bad_conv_env, NULL, 2, "SYNTHCXR_CONV_IMPL=igemm: expected 0");
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_gemm no_cuda
#define test_gemm_batched no_cuda
#define test_linear no_cuda
#define test_conv2d no_cuda
#define test_groupnorm no_cuda
#define test_layernorm no_cuda
#define test_softmax no_cuda
#define test_activations no_cuda
#define test_geglu no_cuda
#define test_eltwise_binary no_cuda
#define test_eltwise_broadcast no_cuda
#define test_layout no_cuda
#define test_bad_dtype no_cuda
#define test_conv_impl_bad no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    /* The tests that fork (expect_dies) first, before any CUDA call, so a
     * child's exit() has no CUDA state inherited from its parent to tear down. */
    RUN(test_bad_dtype);
    RUN(test_conv_impl_bad);
    if (cuda_device_count() == 0) fprintf(stdout, "# %s\n", cuda_unavailable_reason());
    RUN(test_gemm);
    RUN(test_gemm_batched);
    RUN(test_linear);
    RUN(test_conv2d);
    RUN(test_groupnorm);
    RUN(test_layernorm);
    RUN(test_softmax);
    RUN(test_activations);
    RUN(test_geglu);
    RUN(test_eltwise_binary);
    RUN(test_eltwise_broadcast);
    RUN(test_layout);
    return unit_done();
}
