/* eltwise.c — element-wise and layout helpers (see eltwise.h). Plain loops the
 * compiler vectorises; OpenMP threads once there is enough work to pay for them. */
#include "eltwise.h"

#include "common.h"

#include <string.h>

#define PAR_MIN 32768

#define NEED(cond, ...) do { if (!(cond)) die(__VA_ARGS__); } while (0)

void eltwise_add(float *out, const float *a, const float *b, size_t n) {
    NEED(!n || (out && a && b), "eltwise_add: NULL pointer");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void eltwise_mul(float *out, const float *a, const float *b, size_t n) {
    NEED(!n || (out && a && b), "eltwise_mul: NULL pointer");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void eltwise_scale(float *out, const float *a, float s, size_t n) {
    NEED(!n || (out && a), "eltwise_scale: NULL pointer");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * s;
}

void eltwise_axpby(float *out, float alpha, const float *a, float beta, const float *b, size_t n) {
    NEED(!n || (out && a && b), "eltwise_axpby: NULL pointer");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = alpha * a[i] + beta * b[i];
}

void eltwise_add_bias_rows(float *x, const float *bias, int rows, int ch) {
    NEED(x && bias, "eltwise_add_bias_rows: NULL pointer");
    NEED(rows > 0 && ch > 0, "eltwise_add_bias_rows: bad dimensions rows %d, channels %d", rows, ch);
#pragma omp parallel for schedule(static) if ((long)rows * ch > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        float *y = x + (long)r * ch;
#pragma omp simd
        for (int c = 0; c < ch; c++) y[c] += bias[c];
    }
}

/* x[b, c, :] += add(b, c) for every plane; shared by the two channel broadcasts. */
static void add_planes(float *x, const float *v, int per_batch, int batch, int ch, int hw) {
    long planes = (long)batch * ch;
#pragma omp parallel for schedule(static) if (planes * hw > PAR_MIN)
    for (long p = 0; p < planes; p++) {
        float add = per_batch ? v[p] : v[p % ch];
        float *y = x + p * hw;
#pragma omp simd
        for (int i = 0; i < hw; i++) y[i] += add;
    }
}

void eltwise_add_bias_channels(float *x, const float *bias, int batch, int ch, int hw) {
    NEED(x && bias, "eltwise_add_bias_channels: NULL pointer");
    NEED(batch > 0 && ch > 0 && hw > 0, "eltwise_add_bias_channels: bad dimensions batch %d, channels %d, hw %d",
         batch, ch, hw);
    add_planes(x, bias, 0, batch, ch, hw);
}

void eltwise_add_batch_channels(float *x, const float *v, int batch, int ch, int hw) {
    NEED(x && v, "eltwise_add_batch_channels: NULL pointer");
    NEED(batch > 0 && ch > 0 && hw > 0, "eltwise_add_batch_channels: bad dimensions batch %d, channels %d, hw %d",
         batch, ch, hw);
    add_planes(x, v, 1, batch, ch, hw);
}

void eltwise_concat_channels(float *out, const float *a, int ca, const float *b, int cb, int batch, int hw) {
    NEED(out && a && b, "eltwise_concat_channels: NULL pointer");
    NEED(batch > 0 && ca >= 0 && cb >= 0 && hw > 0,
         "eltwise_concat_channels: bad dimensions batch %d, channels %d + %d, hw %d", batch, ca, cb, hw);
    size_t na = (size_t)ca * hw, nb = (size_t)cb * hw;
#pragma omp parallel for schedule(static) if ((long)batch * (na + nb) > PAR_MIN)
    for (int bi = 0; bi < batch; bi++) {
        memcpy(out + bi * (na + nb), a + bi * na, na * sizeof(float));
        memcpy(out + bi * (na + nb) + na, b + bi * nb, nb * sizeof(float));
    }
}

void eltwise_transpose(float *out, const float *inp, int batch, int m, int n) {
    NEED(out && inp, "eltwise_transpose: NULL pointer");
    NEED(out != inp, "eltwise_transpose: out must not alias inp");
    NEED(batch > 0 && m > 0 && n > 0, "eltwise_transpose: bad dimensions batch %d, %d x %d", batch, m, n);
    /* 32 x 32 tiles keep both the reads and the writes within a few cache lines. */
    const int T = 32;
    int tm = (m + T - 1) / T, tn = (n + T - 1) / T;
    long tiles = (long)batch * tm * tn;
#pragma omp parallel for schedule(static) if ((long)batch * m * n > PAR_MIN)
    for (long t = 0; t < tiles; t++) {
        int b = (int)(t / ((long)tm * tn));
        int i0 = (int)(t / tn % tm) * T, j0 = (int)(t % tn) * T;
        int i1 = i0 + T < m ? i0 + T : m, j1 = j0 + T < n ? j0 + T : n;
        const float *src = inp + (size_t)b * m * n;
        float *dst = out + (size_t)b * m * n;
        for (int j = j0; j < j1; j++)
            for (int i = i0; i < i1; i++) dst[(size_t)j * m + i] = src[(size_t)i * n + j];
    }
}
