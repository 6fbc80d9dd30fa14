/* activation.c — element-wise activations (see activation.h). The formulas are
 * torch's, evaluated in float with libm's erff/tanhf/expf. */
#include "activation.h"

#include "common.h"

#include <math.h>

/* Below this many elements a thread team costs more than it saves. */
#define PAR_MIN 32768

static inline float gelu1(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }

void gelu_forward(float *out, const float *inp, size_t n) {
    if (n && (!out || !inp)) die("gelu_forward: NULL input or output");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = gelu1(inp[i]);
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (n && (!dinp || !dout || !inp)) die("gelu_backward: NULL dinp, dout or inp");
    if (n && (dinp == dout || dinp == inp)) die("gelu_backward: dinp must not alias dout or inp");
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        /* d/dx x * Phi(x) = Phi(x) + x * phi(x) */
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void gelu_tanh_forward(float *out, const float *inp, size_t n) {
    if (n && (!out || !inp)) die("gelu_tanh_forward: NULL input or output");
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
}

void quick_gelu_forward(float *out, const float *inp, size_t n) {
    if (n && (!out || !inp)) die("quick_gelu_forward: NULL input or output");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-1.702f * x));
    }
}

void silu_forward(float *out, const float *inp, size_t n) {
    if (n && (!out || !inp)) die("silu_forward: NULL input or output");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-x));
    }
}

void geglu_forward(float *out, const float *inp, int rows, int ch) {
    if (!out || !inp) die("geglu_forward: NULL input or output");
    if (rows <= 0 || ch <= 0) die("geglu_forward: bad dimensions rows %d, channels %d", rows, ch);
    if (out == inp) die("geglu_forward: out must not alias inp");
#pragma omp parallel for schedule(static) if ((long)rows * ch > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *h = inp + (long)r * 2 * ch, *g = h + ch;
        float *y = out + (long)r * ch;
#pragma omp simd
        for (int c = 0; c < ch; c++) y[c] = h[c] * gelu1(g[c]);
    }
}

void relu_forward(float *out, const float *inp, size_t n) {
    if (n && (!out || !inp)) die("relu_forward: NULL input or output");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x < 0.0f ? 0.0f : x; /* NaN < 0 is false: NaN passes, as torch */
    }
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    if (n && (!dinp || !dout || !out)) die("relu_backward: NULL argument");
    if (n && dinp == dout) die("relu_backward: dinp must not be dout (the gradient accumulates)");
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}
