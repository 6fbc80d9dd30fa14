/* upsample.c — nearest 2x: each input row is widened once, then copied to the
 * two output rows it covers. */
#include "upsample.h"

#include "common.h"

#include <stdint.h>
#include <string.h>

void upsample_nearest2x_forward(float *out, const float *inp, int batch, int ch, int h, int w) {
    if (batch <= 0 || ch <= 0 || h <= 0 || w <= 0)
        die("upsample_nearest2x_forward: bad dims batch=%d ch=%d h=%d w=%d", batch, ch, h, w);
    const int64_t rows = (int64_t)batch * ch * h;
    const int64_t ow = 2 * (int64_t)w;
#pragma omp parallel for schedule(static) if (rows * w > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * w;
        float *y = out + 2 * r * ow; /* input row r -> output rows 2r, 2r+1 */
        for (int i = 0; i < w; i++) y[2 * i] = y[2 * i + 1] = x[i];
        memcpy(y + ow, y, sizeof(float) * (size_t)ow);
    }
}
