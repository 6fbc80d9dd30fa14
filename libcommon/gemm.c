/* gemm.c — thin, checked wrappers over cblas_sgemm: one product, a batch of
 * products (threaded over the batch or inside each product, whichever keeps
 * both cores busy), and torch.nn.Linear. */
#include "gemm.h"

#include "common.h"

#include <cblas.h>
#include <omp.h>

/* Per-matrix work (m*n*k multiply-adds) below which a product is too small for
 * OpenBLAS to split over threads at all (about 128^3): a batch of these runs
 * entirely one matrix per thread. */
#define GEMM_SMALL_WORK ((int64_t)1 << 21)

static void gemm_check(const char *fn, int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, const float *c, int ldc) {
    if (m < 0 || n < 0 || k < 0)
        die("%s: negative size m=%d n=%d k=%d", fn, m, n, k);
    int a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
    if (lda < (a_cols > 1 ? a_cols : 1))
        die("%s: lda=%d is less than the %d columns of A (trans_a=%d)", fn, lda, a_cols, trans_a);
    if (ldb < (b_cols > 1 ? b_cols : 1))
        die("%s: ldb=%d is less than the %d columns of B (trans_b=%d)", fn, ldb, b_cols, trans_b);
    if (ldc < (n > 1 ? n : 1))
        die("%s: ldc=%d is less than the %d columns of C", fn, ldc, n);
    if ((m && n && !c) || (m && n && k && (!a || !b)))
        die("%s: NULL matrix pointer", fn);
}

/* beta == 0 must overwrite C even where it holds NaN (cblas does too, but the
 * k == 0 case is left to us to be explicit). */
static void gemm_raw(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0 || alpha == 0.0f) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(int64_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    gemm_check("gemm_f32", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    gemm_raw(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_batched_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                      int64_t stride_a, const float *b, int ldb, int64_t stride_b, float beta, float *c,
                      int ldc, int64_t stride_c, int batch) {
    gemm_check("gemm_batched_f32", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    if (batch < 0) die("gemm_batched_f32: negative batch %d", batch);
    if (batch > 1 && stride_c < (int64_t)(m - 1) * ldc + n)
        die("gemm_batched_f32: stride_c=%lld makes the C matrices (%d x %d, ldc %d) overlap",
            (long long)stride_c, m, n, ldc);
    int nt = omp_in_parallel() ? 1 : threads_get();
    /* Measured on 2 Zen 4 cores, one single-threaded product per thread beats
     * OpenBLAS's own threading even for 512^3 (less synchronisation), so the
     * first batch - batch % nt matrices go one per thread. Small leftovers join
     * them (dynamic schedule); large ones run after, each on all threads. */
    int full = batch;
    if ((int64_t)m * n * k >= GEMM_SMALL_WORK) full = batch - batch % nt;
    if (nt > 1 && full > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int i = 0; i < full; i++)
            gemm_raw(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                     c + i * stride_c, ldc);
    } else {
        full = 0;
    }
    for (int i = full; i < batch; i++)
        gemm_raw(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                 c + i * stride_c, ldc);
}

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int in_f,
                    int out_f) {
    if (n < 0 || in_f < 0 || out_f < 0)
        die("linear_forward: negative size n=%d in_features=%d out_features=%d", n, in_f, out_f);
    if (bias) {
        #pragma omp parallel for if ((int64_t)n * out_f > 65536)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out_f; j++) out[(int64_t)i * out_f + j] = bias[j];
    }
    /* out[n, out_f] = inp[n, in_f] @ weight[out_f, in_f]^T (+ the bias already there) */
    gemm_f32(0, 1, n, out_f, in_f, 1.0f, inp, in_f > 0 ? in_f : 1, weight, in_f > 0 ? in_f : 1,
             bias ? 1.0f : 0.0f, out, out_f > 0 ? out_f : 1);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int n, int in_f, int out_f) {
    if (n < 0 || in_f <= 0 || out_f <= 0)
        die("linear_backward: bad size n=%d in_features=%d out_features=%d", n, in_f, out_f);
    if (n == 0) return;
    /* dinp[n, in_f] += dout[n, out_f] @ weight[out_f, in_f] */
    if (dinp) gemm_f32(0, 0, n, in_f, out_f, 1.0f, dout, out_f, weight, in_f, 1.0f, dinp, in_f);
    /* dweight[out_f, in_f] += dout^T @ inp */
    if (dweight) gemm_f32(1, 0, out_f, in_f, n, 1.0f, dout, out_f, inp, in_f, 1.0f, dweight, in_f);
    if (dbias) {
        #pragma omp parallel for if ((int64_t)n * out_f > 65536)
        for (int j = 0; j < out_f; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dout[(int64_t)i * out_f + j];
            dbias[j] += (float)s;
        }
    }
}
