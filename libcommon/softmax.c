/* softmax.c — row softmax and its backward (see softmax.h): max, exp and sum, scale; rows
 * split between the OpenMP threads. */
#include "softmax.h"

#include "common.h"

#include <math.h>

void softmax_forward(float *out, const float *inp, int rows, int cols) {
    if (!out || !inp) die("softmax_forward: NULL input or output");
    if (rows <= 0 || cols <= 0) die("softmax_forward: bad dimensions rows %d, cols %d", rows, cols);
#pragma omp parallel for schedule(static) if ((long)rows * cols > 16384)
    for (int r = 0; r < rows; r++) {
        const float *x = inp + (long)r * cols;
        float *y = out + (long)r * cols;
        float mx = -INFINITY;
        for (int i = 0; i < cols; i++) mx = fmaxf(mx, x[i]);
        if (mx == -INFINITY) {
            for (int i = 0; i < cols; i++) y[i] = 0.0f;
            continue;
        }
        double sum = 0;
        for (int i = 0; i < cols; i++) {
            float e = expf(x[i] - mx);
            y[i] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int i = 0; i < cols; i++) y[i] *= inv;
    }
}

void softmax_backward(float *dinp, const float *dout, const float *out, int rows, int cols) {
    if (!dinp || !dout || !out) die("softmax_backward: NULL dinp, dout or out");
    if (rows <= 0 || cols <= 0) die("softmax_backward: bad dimensions rows %d, cols %d", rows, cols);
    if (dinp == dout || dinp == out) die("softmax_backward: dinp must not alias dout or out");
#pragma omp parallel for schedule(static) if ((long)rows * cols > 16384)
    for (int r = 0; r < rows; r++) {
        const float *dy = dout + (long)r * cols, *y = out + (long)r * cols;
        float *dx = dinp + (long)r * cols;
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < cols; i++) dot += (double)dy[i] * y[i];
        float d = (float)dot;
#pragma omp simd
        for (int i = 0; i < cols; i++) dx[i] += y[i] * (dy[i] - d);
    }
}
