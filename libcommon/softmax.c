/* softmax.c — row softmax (see softmax.h): max, exp and sum, scale; rows
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
