/* contrastive.c — L2 normalisation, symmetric InfoNCE and retrieval recall
 * (contrastive.h). Batches are small (n <= a few hundred), so the n x n work is
 * plain loops; the similarity matrix itself is one gemm. */
#include "contrastive.h"

#include "common.h"
#include "gemm.h"

#include <math.h>
#include <stdlib.h>

#define L2_EPS 1e-12

void l2norm_forward(float *out, float *norm, const float *inp, int n, int d)
{
    #pragma omp parallel for if ((long)n * d > 65536)
    for (int i = 0; i < n; i++) {
        const float *x = inp + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)x[j] * x[j];
        double r = sqrt(ss);
        if (r < L2_EPS) r = L2_EPS;
        norm[i] = (float)r;
        float *y = out + (size_t)i * d;
        for (int j = 0; j < d; j++) y[j] = (float)(x[j] / r);
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int n, int d)
{
    #pragma omp parallel for if ((long)n * d > 65536)
    for (int i = 0; i < n; i++) {
        const float *dy = dout + (size_t)i * d, *y = out + (size_t)i * d;
        float *dx = dinp + (size_t)i * d;
        double r = norm[i];
        if (r <= L2_EPS) { /* the clamp is constant: no gradient through the norm */
            for (int j = 0; j < d; j++) dx[j] += (float)(dy[j] / L2_EPS);
            continue;
        }
        double dot = 0;
        for (int j = 0; j < d; j++) dot += (double)y[j] * dy[j];
        for (int j = 0; j < d; j++) dx[j] += (float)((dy[j] - y[j] * dot) / r);
    }
}

/* Cross-entropy of logits row i against class i, for rows (stride_r, stride_c
 * walk the matrix along a row): log-sum-exp - logit of the match, in double. */
static double ce_row(const float *l, int i, int n, size_t stride_r, size_t stride_c)
{
    const float *row = l + (size_t)i * stride_r;
    double mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = fmax(mx, row[(size_t)j * stride_c]);
    double s = 0;
    for (int j = 0; j < n; j++) s += exp(row[(size_t)j * stride_c] - mx);
    return mx + log(s) - row[(size_t)i * stride_c];
}

double infonce_forward(float *logits, double *parts, const float *img, const float *txt, int n, int d,
                       float temperature, float lambda)
{
    CHECK(n >= 1 && d >= 1 && temperature > 0);
    /* S = img txt^T / t: torch computes the product, then divides */
    gemm_f32(0, 1, n, n, d, 1.0f, img, d, txt, d, 0.0f, logits, n);
    for (size_t k = 0; k < (size_t)n * n; k++) logits[k] /= temperature;
    double a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        a += ce_row(logits, i, n, (size_t)n, 1);
        b += ce_row(logits, i, n, 1, (size_t)n);
    }
    a /= n;
    b /= n;
    if (parts) { parts[0] = a; parts[1] = b; }
    return lambda * a + (1.0 - lambda) * b;
}

void infonce_backward(float *dimg, float *dtxt, const float *logits, const float *img, const float *txt, int n,
                      int d, float temperature, float lambda, float dloss)
{
    /* dL/dS_ij = lambda/n (P_ij - [i==j]) + (1-lambda)/n (Q_ij - [i==j]),
     * P = softmax along rows, Q = softmax along columns; then S = img txt^T / t. */
    float *ds = xmalloc((size_t)n * n * sizeof(float));
    double *rmax = xmalloc((size_t)n * sizeof(double)), *rsum = xmalloc((size_t)n * sizeof(double));
    double *cmax = xmalloc((size_t)n * sizeof(double)), *csum = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) { rmax[i] = cmax[i] = -INFINITY; rsum[i] = csum[i] = 0; }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = logits[(size_t)i * n + j];
            rmax[i] = fmax(rmax[i], v);
            cmax[j] = fmax(cmax[j], v);
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = logits[(size_t)i * n + j];
            rsum[i] += exp(v - rmax[i]);
            csum[j] += exp(v - cmax[j]);
        }
    double wa = (double)dloss * lambda / n, wb = (double)dloss * (1.0 - lambda) / n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = logits[(size_t)i * n + j];
            double p = exp(v - rmax[i]) / rsum[i], q = exp(v - cmax[j]) / csum[j];
            double g = wa * p + wb * q - (i == j ? wa + wb : 0.0);
            ds[(size_t)i * n + j] = (float)(g / temperature);
        }
    /* dimg += dS txt;  dtxt += dS^T img */
    gemm_f32(0, 0, n, d, n, 1.0f, ds, n, txt, d, 1.0f, dimg, d);
    gemm_f32(1, 0, n, d, n, 1.0f, ds, n, img, d, 1.0f, dtxt, d);
    free(ds);
    free(rmax);
    free(rsum);
    free(cmax);
    free(csum);
}

void retrieval_recall(double *i2t, double *t2i, const float *sim, int n, const int *ks, int nk)
{
    /* per query: candidates scoring strictly higher than the match, and other
     * candidates scoring exactly the same (identical reports give identical
     * text embeddings, hence exact ties) */
    int *hi_i = xmalloc((size_t)n * sizeof(int)), *eq_i = xmalloc((size_t)n * sizeof(int));
    int *hi_t = xmalloc((size_t)n * sizeof(int)), *eq_t = xmalloc((size_t)n * sizeof(int));
    #pragma omp parallel for if (n > 256)
    for (int i = 0; i < n; i++) {
        float own = sim[(size_t)i * n + i];
        int a = 0, ae = 0, b = 0, be = 0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            float x = sim[(size_t)i * n + j], y = sim[(size_t)j * n + i];
            a += x > own;   /* texts above image i's own */
            ae += x == own;
            b += y > own;   /* images above text i's own */
            be += y == own;
        }
        hi_i[i] = a;
        eq_i[i] = ae;
        hi_t[i] = b;
        eq_t[i] = be;
    }
    for (int k = 0; k < nk; k++) {
        double ca = 0, cb = 0;
        for (int i = 0; i < n; i++) {
            /* ties broken at random, in expectation: the match lands uniformly
             * among its eq + 1 equal places after the hi better ones */
            double pa = (double)(ks[k] - hi_i[i]) / (eq_i[i] + 1), pb = (double)(ks[k] - hi_t[i]) / (eq_t[i] + 1);
            ca += pa < 0 ? 0 : pa > 1 ? 1 : pa;
            cb += pb < 0 ? 0 : pb > 1 ? 1 : pb;
        }
        i2t[k] = n ? ca / n : 0;
        t2i[k] = n ? cb / n : 0;
    }
    free(hi_i);
    free(eq_i);
    free(hi_t);
    free(eq_t);
}
