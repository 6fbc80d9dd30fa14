/* norm.c — group norm and layer norm (see norm.h). Each (batch, group) slab or
 * row is one unit of work for the OpenMP threads; statistics in double, two
 * passes, then one normalise-scale-shift (and SiLU) pass in float. */
#include "norm.h"

#include "common.h"

#include <math.h>
#include <omp.h>

/* Mean and 1/sqrt(biased variance + eps) of x[0..n), two-pass in double. */
static void moments(const float *x, long n, float eps, double *mean_out, double *rstd_out) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (long i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (long i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        ss += d * d;
    }
    *mean_out = mean;
    *rstd_out = 1.0 / sqrt(ss / (double)n + (double)eps);
}

static void groupnorm_impl(float *out, const float *inp, const float *gamma, const float *beta, int batch,
                           int ch, int hw, int groups, float eps, int silu, const char *fn) {
    if (!out || !inp) die("%s: NULL input or output", fn);
    if (batch <= 0 || ch <= 0 || hw <= 0 || groups <= 0)
        die("%s: bad dimensions batch %d, channels %d, hw %d, groups %d", fn, batch, ch, hw, groups);
    if (ch % groups) die("%s: %d groups do not divide %d channels", fn, groups, ch);
    if (!gamma != !beta) die("%s: gamma and beta must both be given or both be NULL", fn);
    int cpg = ch / groups;
    long slab = (long)cpg * hw;
    long units = (long)batch * groups;
#pragma omp parallel for schedule(static)
    for (long u = 0; u < units; u++) {
        int g = (int)(u % groups);
        const float *x = inp + u * slab;
        float *y = out + u * slab;
        double mean, rstd;
        moments(x, slab, eps, &mean, &rstd);
        /* The mean as float hi + lo: x - hi is exact for x near the mean (Sterbenz),
         * so a large mean offset does not cancel away the deviations. */
        float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
        for (int c = 0; c < cpg; c++) {
            int cc = g * cpg + c;
            float a = (float)(rstd * (gamma ? (double)gamma[cc] : 1.0));
            float b = beta ? beta[cc] : 0.0f;
            const float *xc = x + (long)c * hw;
            float *yc = y + (long)c * hw;
            if (silu) {
#pragma omp simd
                for (int i = 0; i < hw; i++) {
                    float t = ((xc[i] - mhi) - mlo) * a + b;
                    yc[i] = t / (1.0f + expf(-t));
                }
            } else {
#pragma omp simd
                for (int i = 0; i < hw; i++) yc[i] = ((xc[i] - mhi) - mlo) * a + b;
            }
        }
    }
}

void groupnorm_forward(float *out, const float *inp, const float *gamma, const float *beta, int batch, int ch,
                       int hw, int groups, float eps) {
    groupnorm_impl(out, inp, gamma, beta, batch, ch, hw, groups, eps, 0, "groupnorm_forward");
}

void groupnorm_silu_forward(float *out, const float *inp, const float *gamma, const float *beta, int batch,
                            int ch, int hw, int groups, float eps) {
    groupnorm_impl(out, inp, gamma, beta, batch, ch, hw, groups, eps, 1, "groupnorm_silu_forward");
}

/* The layer norm of every row; with mean_out/rstd_out (both or neither) the
 * row statistics are kept for layernorm_backward. */
static void layernorm_impl(float *out, float *mean_out, float *rstd_out, const float *inp, const float *gamma,
                           const float *beta, int rows, int ch, float eps, const char *fn) {
    if (!out || !inp) die("%s: NULL input or output", fn);
    if (rows <= 0 || ch <= 0) die("%s: bad dimensions rows %d, channels %d", fn, rows, ch);
    if (!gamma != !beta) die("%s: gamma and beta must both be given or both be NULL", fn);
    if (!mean_out != !rstd_out) die("%s: mean and rstd must both be given or both be NULL", fn);
#pragma omp parallel for schedule(static) if ((long)rows * ch > 16384)
    for (int r = 0; r < rows; r++) {
        const float *x = inp + (long)r * ch;
        float *y = out + (long)r * ch;
        double mean, rstd;
        moments(x, ch, eps, &mean, &rstd);
        float mhi = (float)mean, mlo = (float)(mean - (double)mhi), s = (float)rstd;
        if (mean_out) mean_out[r] = mhi, rstd_out[r] = s;
        if (gamma) {
#pragma omp simd
            for (int i = 0; i < ch; i++) y[i] = ((x[i] - mhi) - mlo) * s * gamma[i] + beta[i];
        } else {
#pragma omp simd
            for (int i = 0; i < ch; i++) y[i] = ((x[i] - mhi) - mlo) * s;
        }
    }
}

void layernorm_forward(float *out, const float *inp, const float *gamma, const float *beta, int rows, int ch,
                       float eps) {
    layernorm_impl(out, NULL, NULL, inp, gamma, beta, rows, ch, eps, "layernorm_forward");
}

void layernorm_forward_save(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                            const float *beta, int rows, int ch, float eps) {
    if (!mean || !rstd) die("layernorm_forward_save: NULL mean or rstd");
    layernorm_impl(out, mean, rstd, inp, gamma, beta, rows, ch, eps, "layernorm_forward_save");
}

/* Channels per unit of the gamma/beta reduction: each thread sums a column
 * strip over all rows, so no two threads write the same gradient. */
enum { LN_COLS = 64 };

void layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                        const float *gamma, const float *mean, const float *rstd, int rows, int ch) {
    if (!dout || !inp || !mean || !rstd) die("layernorm_backward: NULL dout, inp, mean or rstd");
    if (rows <= 0 || ch <= 0) die("layernorm_backward: bad dimensions rows %d, channels %d", rows, ch);
    if (dinp == dout || dinp == inp) die("layernorm_backward: dinp must not alias dout or inp");
    int par = (long)rows * ch > 16384;
    if (dinp) {
        /* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * gamma */
#pragma omp parallel for schedule(static) if (par)
        for (int r = 0; r < rows; r++) {
            const float *x = inp + (long)r * ch, *dy = dout + (long)r * ch;
            float *dx = dinp + (long)r * ch;
            float m = mean[r], s = rstd[r];
            double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
            for (int i = 0; i < ch; i++) {
                float g = gamma ? dy[i] * gamma[i] : dy[i];
                sg += g;
                sgx += (double)g * ((x[i] - m) * s);
            }
            float mg = (float)(sg / ch), mgx = (float)(sgx / ch);
#pragma omp simd
            for (int i = 0; i < ch; i++) {
                float g = gamma ? dy[i] * gamma[i] : dy[i];
                dx[i] += s * (g - mg - ((x[i] - m) * s) * mgx);
            }
        }
    }
    if (dgamma || dbeta) {
        int strips = (ch + LN_COLS - 1) / LN_COLS;
#pragma omp parallel for schedule(static) if (par)
        for (int st = 0; st < strips; st++) {
            int c0 = st * LN_COLS, nc = ch - c0 < LN_COLS ? ch - c0 : LN_COLS;
            double ag[LN_COLS] = {0}, ab[LN_COLS] = {0};
            for (int r = 0; r < rows; r++) {
                const float *x = inp + (long)r * ch + c0, *dy = dout + (long)r * ch + c0;
                float m = mean[r], s = rstd[r];
#pragma omp simd
                for (int i = 0; i < nc; i++) {
                    ag[i] += (double)dy[i] * ((x[i] - m) * s);
                    ab[i] += dy[i];
                }
            }
            for (int i = 0; i < nc; i++) {
                if (dgamma) dgamma[c0 + i] += (float)ag[i];
                if (dbeta) dbeta[c0 + i] += (float)ab[i];
            }
        }
    }
}
