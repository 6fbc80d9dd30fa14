/* attention.c — blocked scaled dot-product attention with an online softmax
 * (see attention.h). Work unit: one (batch, head, query block); the units are
 * shared by the OpenMP threads, each with its own scratch. Per key block:
 * S = scale * Q Kᵀ (cblas_sgemm, single-threaded inside the parallel region),
 * mask, update the running max m and sum l, rescale the partial output O by
 * exp(m_old - m_new), then O += P V (cblas_sgemm). At the end out = O / l.
 * The training pair at the end works per (batch, head) on the whole score
 * matrix, kept as probabilities for the backward pass. */
#include "attention.h"

#include "common.h"
#include "softmax.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Query and key block sizes: large enough for the block products to run near
 * sgemm speed, small enough that the scores stay in L2 (64 x 256 x 4 B = 64 kB). */
enum { BQ = 64, BK = 256 };

/* exp(x) for x <= 0, the only arguments the online softmax has (s - max):
 * Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and Cephes' degree-7
 * polynomial for exp(r) (relative error ~1e-7, like expf), written with
 * plain arithmetic so that `omp simd` loops vectorise it, unlike a call to
 * libm's expf. Below -87 it gives 0 (exp(-87) = 1.6e-38, nothing beside the
 * row maximum's term 1); -inf gives 0; NaN stays NaN. */
static inline float exp_nonpos(float x) {
    /* Clamped to [-87, 0] (NaN too), so the int conversion below is always defined. */
    float xc = x >= -87.0f ? (x <= 0.0f ? x : 0.0f) : -87.0f;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |n| < 2^22). */
    float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } two_n = {.i = ((int32_t)n + 127) << 23};
    float y = p * two_n.f;
    return x >= -87.0f ? y : (x < -87.0f ? 0.0f : x); /* the last: NaN */
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of scratch per thread: scores [BQ, BK], outputs [BQ, D], max and sum [BQ]. */
static size_t thread_floats(int head_dim) {
    return round16((size_t)BQ * BK) + round16((size_t)BQ * head_dim) + 2 * round16(BQ);
}

static int team_size(int batch, int heads, int tq) {
    long units = (long)batch * heads * ((tq + BQ - 1) / BQ);
    int n = omp_in_parallel() ? 1 : omp_get_max_threads();
    return units < n ? (int)units : n;
}

size_t attention_scratch_bytes(int batch, int heads, int tq, int tk, int head_dim) {
    (void)tk;
    if (batch <= 0 || heads <= 0 || tq <= 0 || head_dim <= 0) return 0;
    return (size_t)team_size(batch, heads, tq) * thread_floats(head_dim) * sizeof(float);
}

/* One unit: queries i0 .. i0+nq-1 of (batch b, head h). */
static void attend_block(float *out, const float *q, const float *k, const float *v, int b, int h, int i0,
                         int nq, int heads, int tq, int tk, int d, float scale, int causal, const float *key_mask,
                         float *S, float *O, float *m, float *l) {
    const int ld = heads * d; /* stride between tokens in q, k, v, out */
    const float *qp = q + ((size_t)b * tq + i0) * ld + (size_t)h * d;
    const float *mask = key_mask ? key_mask + (size_t)b * tk : NULL;
    for (int r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    memset(O, 0, sizeof(float) * (size_t)nq * d);
    /* Causal: keys past the block's last query are never seen. */
    int kend = causal ? (i0 + nq < tk ? i0 + nq : tk) : tk;
    for (int j0 = 0; j0 < kend; j0 += BK) {
        int nk = kend - j0 < BK ? kend - j0 : BK;
        const float *kp = k + ((size_t)b * tk + j0) * ld + (size_t)h * d;
        const float *vp = v + ((size_t)b * tk + j0) * ld + (size_t)h * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, d, scale, qp, ld, kp, ld, 0.0f, S, BK);
        for (int r = 0; r < nq; r++) {
            float *s = S + (size_t)r * BK;
            /* Keys j0 .. j0+nv-1 are visible to this query; the rest of the block gets p = 0. */
            int nv = nk;
            if (causal && i0 + r - j0 + 1 < nv) nv = i0 + r - j0 + 1;
            if (mask) {
                const float *mk = mask + j0;
#pragma omp simd
                for (int j = 0; j < nv; j++) s[j] += mk[j];
            }
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < nv; j++) mx = s[j] > mx ? s[j] : mx;
            float mnew = m[r] > mx ? m[r] : mx;
            if (mnew == -INFINITY) { /* nothing visible yet */
                memset(s, 0, sizeof(float) * (size_t)nk);
                continue;
            }
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < nv; j++) {
                float p = exp_nonpos(s[j] - mnew);
                s[j] = p;
                sum += p;
            }
            for (int j = nv; j < nk; j++) s[j] = 0.0f;
            float alpha = exp_nonpos(m[r] - mnew); /* 0 on the first visible block */
            if (alpha != 1.0f) {
                float *o = O + (size_t)r * d;
#pragma omp simd
                for (int c = 0; c < d; c++) o[c] *= alpha;
            }
            l[r] = l[r] * alpha + sum;
            m[r] = mnew;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, d, nk, 1.0f, S, BK, vp, ld, 1.0f, O, d);
    }
    float *op = out + ((size_t)b * tq + i0) * ld + (size_t)h * d;
    for (int r = 0; r < nq; r++) {
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        const float *o = O + (size_t)r * d;
        float *y = op + (size_t)r * ld;
#pragma omp simd
        for (int c = 0; c < d; c++) y[c] = o[c] * inv;
    }
}

void attention_forward(float *out, const float *q, const float *k, const float *v, int batch, int heads, int tq,
                       int tk, int head_dim, float scale, int causal, const float *key_mask) {
    if (!out || !q || !k || !v) die("attention_forward: NULL q, k, v or out");
    if (batch <= 0 || heads <= 0 || tq <= 0 || tk <= 0 || head_dim <= 0)
        die("attention_forward: bad dimensions batch %d, heads %d, tq %d, tk %d, head_dim %d", batch, heads, tq,
            tk, head_dim);
    if (out == k || out == v) die("attention_forward: out must not alias k or v");
    if (!isfinite(scale)) die("attention_forward: scale %g is not finite", (double)scale);
    if ((long)heads * head_dim > 1L << 30) die("attention_forward: heads x head_dim = %ld is too large",
                                              (long)heads * head_dim);
    int nqb = (tq + BQ - 1) / BQ;
    long units = (long)batch * heads * nqb;
    int team = team_size(batch, heads, tq);
    size_t per = thread_floats(head_dim);
    float *scratch = xmalloc_aligned((size_t)team * per * sizeof(float));
#pragma omp parallel num_threads(team)
    {
        float *S = scratch + (size_t)omp_get_thread_num() * per;
        float *O = S + round16((size_t)BQ * BK);
        float *m = O + round16((size_t)BQ * head_dim);
        float *l = m + round16(BQ);
        /* Causal units differ in cost (later query blocks see more keys), hence dynamic. */
#pragma omp for schedule(dynamic, 1)
        for (long u = 0; u < units; u++) {
            int qb = (int)(u % nqb);
            int h = (int)(u / nqb % heads);
            int b = (int)(u / nqb / heads);
            int i0 = qb * BQ;
            int nq = tq - i0 < BQ ? tq - i0 : BQ;
            attend_block(out, q, k, v, b, h, i0, nq, heads, tq, tk, head_dim, scale, causal, key_mask, S, O, m,
                         l);
        }
    }
    free(scratch);
}

/* ---- Training attention: the probabilities are kept for the backward pass. */

static void train_check(const char *fn, int batch, int heads, int tq, int tk, int head_dim, float scale) {
    if (batch <= 0 || heads <= 0 || tq <= 0 || tk <= 0 || head_dim <= 0)
        die("%s: bad dimensions batch %d, heads %d, tq %d, tk %d, head_dim %d", fn, batch, heads, tq, tk,
            head_dim);
    if (!isfinite(scale)) die("%s: scale %g is not finite", fn, (double)scale);
    if ((long)heads * head_dim > 1L << 30) die("%s: heads x head_dim = %ld is too large", fn,
                                              (long)heads * head_dim);
}

void attention_train_forward(float *out, float *probs, const float *q, const float *k, const float *v, int batch,
                             int heads, int tq, int tk, int head_dim, float scale, const float *key_mask) {
    if (!out || !probs || !q || !k || !v) die("attention_train_forward: NULL out, probs, q, k or v");
    train_check("attention_train_forward", batch, heads, tq, tk, head_dim, scale);
    if (out == q || out == k || out == v) die("attention_train_forward: out must not alias q, k or v");
    const int d = head_dim, ld = heads * head_dim;
    long units = (long)batch * heads;
#pragma omp parallel for schedule(static)
    for (long u = 0; u < units; u++) {
        int b = (int)(u / heads), h = (int)(u % heads);
        float *P = probs + (size_t)u * tq * tk;
        const float *qp = q + (size_t)b * tq * ld + (size_t)h * d;
        const float *kp = k + (size_t)b * tk * ld + (size_t)h * d;
        const float *vp = v + (size_t)b * tk * ld + (size_t)h * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, d, scale, qp, ld, kp, ld, 0.0f, P, tk);
        if (key_mask) {
            const float *mk = key_mask + (size_t)b * tk;
            for (int i = 0; i < tq; i++) {
                float *s = P + (size_t)i * tk;
#pragma omp simd
                for (int j = 0; j < tk; j++) s[j] += mk[j];
            }
        }
        softmax_forward(P, P, tq, tk); /* one thread here: inside a parallel region */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, d, tk, 1.0f, P, tk, vp, ld, 0.0f,
                    out + (size_t)b * tq * ld + (size_t)h * d, ld);
    }
}

void attention_train_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, const float *probs, int batch, int heads, int tq, int tk,
                              int head_dim, float scale) {
    if (!dq || !dk || !dv || !dout || !q || !k || !v || !probs)
        die("attention_train_backward: NULL gradient, dout, q, k, v or probs");
    train_check("attention_train_backward", batch, heads, tq, tk, head_dim, scale);
    const int d = head_dim, ld = heads * head_dim;
    long units = (long)batch * heads;
    int team = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (units < team) team = (int)units;
    size_t per = round16((size_t)tq * tk);
    float *scratch = xmalloc_aligned((size_t)team * 2 * per * sizeof(float));
#pragma omp parallel num_threads(team)
    {
        float *dP = scratch + (size_t)omp_get_thread_num() * 2 * per, *dS = dP + per;
#pragma omp for schedule(static)
        for (long u = 0; u < units; u++) {
            int b = (int)(u / heads), h = (int)(u % heads);
            const float *P = probs + (size_t)u * tq * tk;
            size_t qo = (size_t)b * tq * ld + (size_t)h * d, ko = (size_t)b * tk * ld + (size_t)h * d;
            /* out = P V:  dP = dout V^T,  dV += P^T dout */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, d, 1.0f, dout + qo, ld, v + ko, ld, 0.0f,
                        dP, tk);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, tk, d, tq, 1.0f, P, tk, dout + qo, ld, 1.0f,
                        dv + ko, ld);
            /* P = softmax(S + mask), S = scale Q K^T (the mask is a constant) */
            memset(dS, 0, sizeof(float) * (size_t)tq * tk);
            softmax_backward(dS, dP, P, tq, tk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, d, tk, scale, dS, tk, k + ko, ld, 1.0f,
                        dq + qo, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, tk, d, tq, scale, dS, tk, q + qo, ld, 1.0f,
                        dk + ko, ld);
        }
    }
    free(scratch);
}
