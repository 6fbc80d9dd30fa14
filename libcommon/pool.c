/* pool.c — max, average and global average pooling; one OpenMP task per
 * (image, channel) plane. */
#include "pool.h"

#include "common.h"

#include <math.h>
#include <stdint.h>

int pool2d_out_h(const pool2d_dims *d) { return (d->in_h + 2 * d->pad_h - d->k_h) / d->stride_h + 1; }
int pool2d_out_w(const pool2d_dims *d) { return (d->in_w + 2 * d->pad_w - d->k_w) / d->stride_w + 1; }

static void pool2d_check(const char *fn, const pool2d_dims *d) {
    if (d->batch <= 0 || d->ch <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->k_h <= 0 || d->k_w <= 0 ||
        d->stride_h <= 0 || d->stride_w <= 0 || d->pad_h < 0 || d->pad_w < 0)
        die("%s: bad dims batch=%d ch=%d in=%dx%d kernel=%dx%d stride=%dx%d pad=%dx%d", fn, d->batch, d->ch,
            d->in_h, d->in_w, d->k_h, d->k_w, d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    /* torch's rule: a window must start inside the input, so pad <= k/2. */
    if (d->pad_h > d->k_h / 2 || d->pad_w > d->k_w / 2)
        die("%s: padding %dx%d exceeds half the kernel %dx%d", fn, d->pad_h, d->pad_w, d->k_h, d->k_w);
    if (d->in_h + 2 * d->pad_h < d->k_h || d->in_w + 2 * d->pad_w < d->k_w)
        die("%s: kernel %dx%d is larger than the padded input %dx%d", fn, d->k_h, d->k_w,
            d->in_h + 2 * d->pad_h, d->in_w + 2 * d->pad_w);
}

/* avg != 0: mean with zero padding counted; else max with -inf padding. */
static void pool2d_run(float *out, const float *inp, const pool2d_dims *d, int avg) {
    const int oh = pool2d_out_h(d), ow = pool2d_out_w(d);
    const int64_t planes = (int64_t)d->batch * d->ch;
    const float inv = 1.0f / (float)(d->k_h * d->k_w);
#pragma omp parallel for schedule(static) if (planes * oh * ow > 16384)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * d->in_h * d->in_w;
        float *y = out + p * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * d->stride_h - d->pad_h, y1 = y0 + d->k_h;
            if (y0 < 0) y0 = 0;
            if (y1 > d->in_h) y1 = d->in_h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * d->stride_w - d->pad_w, x1 = x0 + d->k_w;
                if (x0 < 0) x0 = 0;
                if (x1 > d->in_w) x1 = d->in_w;
                float acc = avg ? 0.0f : -INFINITY;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float v = x[(int64_t)iy * d->in_w + ix];
                        if (avg) acc += v;
                        else if (v > acc || isnan(v)) acc = v; /* torch propagates NaN */
                    }
                y[(int64_t)oy * ow + ox] = avg ? acc * inv : acc;
            }
        }
    }
}

void maxpool2d_forward(float *out, const float *inp, const pool2d_dims *d) {
    pool2d_check("maxpool2d_forward", d);
    pool2d_run(out, inp, d, 0);
}

void avgpool2d_forward(float *out, const float *inp, const pool2d_dims *d) {
    pool2d_check("avgpool2d_forward", d);
    pool2d_run(out, inp, d, 1);
}

void global_avgpool_forward(float *out, const float *inp, int batch, int ch, int h, int w) {
    if (batch <= 0 || ch <= 0 || h <= 0 || w <= 0)
        die("global_avgpool_forward: bad dims batch=%d ch=%d h=%d w=%d", batch, ch, h, w);
    const int64_t planes = (int64_t)batch * ch, hw = (int64_t)h * w;
#pragma omp parallel for schedule(static) if (planes * hw > 65536)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * hw;
        double s = 0; /* double: a 7x7 or 64x64 sum loses nothing */
        for (int64_t i = 0; i < hw; i++) s += x[i];
        out[p] = (float)(s / (double)hw);
    }
}

void maxpool2d_backward(float *dinp, const float *dout, const float *inp, const pool2d_dims *d) {
    pool2d_check("maxpool2d_backward", d);
    const int oh = pool2d_out_h(d), ow = pool2d_out_w(d);
    const int64_t planes = (int64_t)d->batch * d->ch;
    /* a plane's gradients land in that plane only: planes are independent */
#pragma omp parallel for schedule(static) if (planes * oh * ow > 16384)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * d->in_h * d->in_w;
        const float *dy = dout + p * oh * ow;
        float *dx = dinp + p * d->in_h * d->in_w;
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * d->stride_h - d->pad_h, y1 = y0 + d->k_h;
            if (y0 < 0) y0 = 0;
            if (y1 > d->in_h) y1 = d->in_h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * d->stride_w - d->pad_w, x1 = x0 + d->k_w;
                if (x0 < 0) x0 = 0;
                if (x1 > d->in_w) x1 = d->in_w;
                float best = -INFINITY;
                int64_t arg = (int64_t)y0 * d->in_w + x0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        int64_t i = (int64_t)iy * d->in_w + ix;
                        if (x[i] > best || isnan(x[i])) { /* torch's test: a later NaN wins */
                            best = x[i];
                            arg = i;
                        }
                    }
                dx[arg] += dy[(int64_t)oy * ow + ox];
            }
        }
    }
}

void global_avgpool_backward(float *dinp, const float *dout, int batch, int ch, int h, int w) {
    if (batch <= 0 || ch <= 0 || h <= 0 || w <= 0)
        die("global_avgpool_backward: bad dims batch=%d ch=%d h=%d w=%d", batch, ch, h, w);
    const int64_t planes = (int64_t)batch * ch, hw = (int64_t)h * w;
#pragma omp parallel for schedule(static) if (planes * hw > 65536)
    for (int64_t p = 0; p < planes; p++) {
        const float g = (float)((double)dout[p] / (double)hw);
        float *dx = dinp + p * hw;
#pragma omp simd
        for (int64_t i = 0; i < hw; i++) dx[i] += g;
    }
}
