/* batchnorm.c — BatchNorm1d/2d over [n, ch, s] (see batchnorm.h). One channel
 * is one unit of work for the OpenMP threads: its statistics (two passes in
 * double: mean, then squared deviations) and its normalise-scale-shift pass.
 * The backward is the usual closed form with xhat = (x - mean) * rstd:
 *   dx = w * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
 *   dweight = sum(dy * xhat), dbias = sum(dy). */
#include "batchnorm.h"

#include "common.h"

#include <math.h>
#include <stdint.h>

static void bn_check(const char *fn, const void *out, const void *inp, int n, int ch, int s) {
    if (!out || !inp) die("%s: NULL input or output", fn);
    if (n <= 0 || ch <= 0 || s <= 0) die("%s: bad dimensions n %d, channels %d, s %d", fn, n, ch, s);
}

/* Work per channel is n*s; below this total a parallel region costs more than it saves. */
#define BN_PAR_MIN 32768

void batchnorm_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                             float *running_var, const float *inp, const float *weight, const float *bias,
                             int n, int ch, int s, float momentum, float eps) {
    bn_check("batchnorm_forward_train", out, inp, n, ch, s);
    if (!running_mean != !running_var)
        die("batchnorm_forward_train: running_mean and running_var must both be given or both be NULL");
    const int64_t cnt = (int64_t)n * s;
    /* torch refuses this too: the unbiased variance of one value is undefined */
    if (cnt < 2) die("batchnorm_forward_train: expected more than 1 value per channel when training, got %d", n);
    const int64_t cs = (int64_t)ch * s;
#pragma omp parallel for schedule(static) if ((int64_t)n * cs > BN_PAR_MIN)
    for (int c = 0; c < ch; c++) {
        double sum = 0;
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
#pragma omp simd reduction(+ : sum)
            for (int i = 0; i < s; i++) sum += x[i];
        }
        const double mean = sum / (double)cnt;
        double ss = 0;
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
#pragma omp simd reduction(+ : ss)
            for (int i = 0; i < s; i++) {
                double d = (double)x[i] - mean;
                ss += d * d;
            }
        }
        const double var = ss / (double)cnt;
        const double rstd = 1.0 / sqrt(var + (double)eps);
        if (save_mean) save_mean[c] = (float)mean;
        if (save_rstd) save_rstd[c] = (float)rstd;
        if (running_mean) {
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * (ss / (double)(cnt - 1)));
        }
        /* (x - mean) * a + b with the mean as float hi + lo: x - hi is exact for x
         * near the mean, so a large mean does not cancel the deviations away */
        const float a = (float)(rstd * (weight ? weight[c] : 1.0)), bb = bias ? bias[c] : 0.0f;
        const float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
            float *y = out + b * cs + (int64_t)c * s;
#pragma omp simd
            for (int i = 0; i < s; i++) y[i] = ((x[i] - mhi) - mlo) * a + bb;
        }
    }
}

void batchnorm_forward_eval(float *out, const float *inp, const float *running_mean, const float *running_var,
                            const float *weight, const float *bias, int n, int ch, int s, float eps) {
    bn_check("batchnorm_forward_eval", out, inp, n, ch, s);
    if (!running_mean || !running_var) die("batchnorm_forward_eval: running statistics are NULL");
    const int64_t cs = (int64_t)ch * s;
#pragma omp parallel for schedule(static) if ((int64_t)n * cs > BN_PAR_MIN)
    for (int c = 0; c < ch; c++) {
        const double rstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        const float a = (float)(rstd * (weight ? weight[c] : 1.0)), bb = bias ? bias[c] : 0.0f;
        const float m = running_mean[c];
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
            float *y = out + b * cs + (int64_t)c * s;
#pragma omp simd
            for (int i = 0; i < s; i++) y[i] = (x[i] - m) * a + bb;
        }
    }
}

void batchnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *save_mean, const float *save_rstd, int n, int ch,
                        int s) {
    bn_check("batchnorm_backward", dout, inp, n, ch, s);
    if (!save_mean || !save_rstd) die("batchnorm_backward: saved statistics are NULL");
    const int64_t cs = (int64_t)ch * s, cnt = (int64_t)n * s;
#pragma omp parallel for schedule(static) if ((int64_t)n * cs > BN_PAR_MIN)
    for (int c = 0; c < ch; c++) {
        const float mean = save_mean[c], rstd = save_rstd[c];
        double sdy = 0, sdyx = 0; /* sum(dy), sum(dy * xhat) */
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
            const float *dy = dout + b * cs + (int64_t)c * s;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int i = 0; i < s; i++) {
                sdy += dy[i];
                sdyx += (double)dy[i] * (double)((x[i] - mean) * rstd);
            }
        }
        if (dweight) dweight[c] += (float)sdyx;
        if (dbias) dbias[c] += (float)sdy;
        if (!dinp) continue;
        /* dx = k * (dy - m1 - xhat * m2) = k*dy - (k*rstd*m2) * (x - mean) - k*m1 */
        const double k = (weight ? weight[c] : 1.0) * rstd;
        const double m1 = sdy / (double)cnt, m2 = sdyx / (double)cnt;
        const float ka = (float)k, kb = (float)(k * rstd * m2), kc = (float)(k * m1);
        for (int b = 0; b < n; b++) {
            const float *x = inp + b * cs + (int64_t)c * s;
            const float *dy = dout + b * cs + (int64_t)c * s;
            float *dx = dinp + b * cs + (int64_t)c * s;
#pragma omp simd
            for (int i = 0; i < s; i++) dx[i] += ka * dy[i] - kb * (x[i] - mean) - kc;
        }
    }
}
