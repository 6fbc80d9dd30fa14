/* conv2d.c — Conv2d forward as GEMM. out[b] viewed as [out_ch, out_h*out_w] is
 * weight viewed as [out_ch, in_ch*k_h*k_w] times the im2col matrix
 * [in_ch*k_h*k_w, out_h*out_w]. That matrix is built for a few output rows at a
 * time (a tile): whole-image im2col of a 512x512, 512-channel 3x3 conv would
 * take 4.5 GB. */
#include "conv2d.h"

#include "common.h"
#include "gemm.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONV2D_DEFAULT_SCRATCH ((size_t)4 << 20)

static size_t g_scratch_bytes = CONV2D_DEFAULT_SCRATCH;
static int g_mode = CONV2D_AUTO;

void conv2d_set_tuning(size_t scratch_bytes, int mode) {
    g_scratch_bytes = scratch_bytes ? scratch_bytes : CONV2D_DEFAULT_SCRATCH;
    if (mode < CONV2D_AUTO || mode > CONV2D_PARALLEL_TILES) die("conv2d_set_tuning: unknown mode %d", mode);
    g_mode = mode;
}

int conv2d_out_h(const conv2d_dims *d) {
    return (d->in_h + 2 * d->pad_h - d->k_h) / d->stride_h + 1;
}
int conv2d_out_w(const conv2d_dims *d) {
    return (d->in_w + 2 * d->pad_w - d->k_w) / d->stride_w + 1;
}

static void conv2d_check(const conv2d_dims *d) {
    if (d->batch <= 0 || d->in_ch <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->out_ch <= 0 || d->k_h <= 0 ||
        d->k_w <= 0 || d->stride_h <= 0 || d->stride_w <= 0 || d->pad_h < 0 || d->pad_w < 0)
        die("conv2d_forward: bad dims batch=%d in_ch=%d in=%dx%d out_ch=%d kernel=%dx%d stride=%dx%d pad=%dx%d",
            d->batch, d->in_ch, d->in_h, d->in_w, d->out_ch, d->k_h, d->k_w, d->stride_h, d->stride_w, d->pad_h,
            d->pad_w);
    if (d->in_h + 2 * d->pad_h < d->k_h || d->in_w + 2 * d->pad_w < d->k_w)
        die("conv2d_forward: kernel %dx%d is larger than the padded input %dx%d", d->k_h, d->k_w,
            d->in_h + 2 * d->pad_h, d->in_w + 2 * d->pad_w);
    if ((int64_t)d->in_ch * d->k_h * d->k_w > INT32_MAX || (int64_t)conv2d_out_h(d) * conv2d_out_w(d) > INT32_MAX)
        die("conv2d_forward: sizes overflow a GEMM dimension");
}

/* Fills col [in_ch*k_h*k_w, rows*out_w] for output rows oy0 .. oy0+rows-1 of
 * one image x [in_ch, in_h, in_w]. Row r of col is (c, ki, kj); column
 * (oy-oy0)*out_w + ox holds x[c, oy*sh - ph + ki, ox*sw - pw + kj] or 0 outside. */
static void im2col_rows(float *col, const float *x, const conv2d_dims *d, int oy0, int rows, int out_w) {
    const int kk = d->k_h * d->k_w;
    const int64_t ncol = (int64_t)rows * out_w;
    const int sw = d->stride_w, pw = d->pad_w;
    /* ox range whose input column ix = ox*sw - pw + kj is inside [0, in_w). */
    for (int r = 0; r < d->in_ch * kk; r++) {
        const int c = r / kk, ki = (r % kk) / d->k_w, kj = r % d->k_w;
        const float *xc = x + (int64_t)c * d->in_h * d->in_w;
        float *dst = col + r * ncol;
        int ox_lo = 0, ox_hi = out_w; /* [ox_lo, ox_hi) valid */
        if (pw - kj > 0) ox_lo = (pw - kj + sw - 1) / sw;
        /* largest ox with ox*sw - pw + kj <= in_w - 1 */
        int last = d->in_w - 1 + pw - kj;
        ox_hi = last < 0 ? 0 : last / sw + 1;
        if (ox_hi > out_w) ox_hi = out_w;
        if (ox_lo > ox_hi) ox_lo = ox_hi;
        for (int t = 0; t < rows; t++) {
            const int iy = (oy0 + t) * d->stride_h - d->pad_h + ki;
            float *o = dst + (int64_t)t * out_w;
            if (iy < 0 || iy >= d->in_h) {
                memset(o, 0, sizeof(float) * (size_t)out_w);
                continue;
            }
            const float *xr = xc + (int64_t)iy * d->in_w - pw + kj;
            for (int ox = 0; ox < ox_lo; ox++) o[ox] = 0.0f;
            if (sw == 1) {
                if (ox_hi > ox_lo) memcpy(o + ox_lo, xr + ox_lo, sizeof(float) * (size_t)(ox_hi - ox_lo));
            } else {
                for (int ox = ox_lo; ox < ox_hi; ox++) o[ox] = xr[(int64_t)ox * sw];
            }
            for (int ox = ox_hi; ox < out_w; ox++) o[ox] = 0.0f;
        }
    }
}

/* y [out_ch, out_h*out_w] (one image), columns [oy0*out_w, (oy0+rows)*out_w):
 * = W [out_ch, K] @ col [K, rows*out_w] (+ bias). */
static void conv2d_tile(float *y, const float *x, const float *weight, const float *bias, const conv2d_dims *d,
                        int oy0, int rows, int out_h, int out_w, float *col) {
    const int K = d->in_ch * d->k_h * d->k_w;
    const int64_t plane = (int64_t)out_h * out_w;
    const int n = rows * out_w;
    float *yt = y + (int64_t)oy0 * out_w;
    im2col_rows(col, x, d, oy0, rows, out_w);
    if (bias)
        for (int o = 0; o < d->out_ch; o++)
            for (int j = 0; j < n; j++) yt[o * plane + j] = bias[o];
    gemm_f32(0, 0, d->out_ch, n, K, 1.0f, weight, K, col, n, bias ? 1.0f : 0.0f, yt, (int)plane);
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const conv2d_dims *d) {
    conv2d_check(d);
    const int out_h = conv2d_out_h(d), out_w = conv2d_out_w(d);
    const int64_t plane = (int64_t)out_h * out_w;
    const int64_t in_img = (int64_t)d->in_ch * d->in_h * d->in_w, out_img = (int64_t)d->out_ch * plane;
    const int nt = omp_in_parallel() ? 1 : threads_get();

    if (d->k_h == 1 && d->k_w == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0) {
        /* 1x1: out[b] [out_ch, HW] = weight [out_ch, in_ch] @ inp[b] [in_ch, HW]; no copy needed. */
        for (int b = 0; b < d->batch; b++) {
            float *y = out + b * out_img;
            if (bias) {
#pragma omp parallel for if (out_img > 65536 && nt > 1)
                for (int o = 0; o < d->out_ch; o++)
                    for (int64_t j = 0; j < plane; j++) y[o * plane + j] = bias[o];
            }
            gemm_f32(0, 0, d->out_ch, (int)plane, d->in_ch, 1.0f, weight, d->in_ch, inp + b * in_img, (int)plane,
                     bias ? 1.0f : 0.0f, y, (int)plane);
        }
        return;
    }

    const int64_t K = (int64_t)d->in_ch * d->k_h * d->k_w;
    const size_t row_bytes = sizeof(float) * (size_t)K * (size_t)out_w;
    int rows = (int)(g_scratch_bytes / row_bytes);
    if (rows < 1) rows = 1;
    if (rows > out_h) rows = out_h;
    int mode = g_mode;
    if (mode == CONV2D_AUTO) mode = nt > 1 ? CONV2D_PARALLEL_TILES : CONV2D_SERIAL_TILES;
    int tiles_per_img = (out_h + rows - 1) / rows;
    if (mode == CONV2D_PARALLEL_TILES) {
        /* Balance: a tile count that splits evenly over the threads (when the
         * image has rows enough); too few rows for every thread to get one and
         * the threads go into the GEMM instead. */
        while (((int64_t)tiles_per_img * d->batch) % nt != 0 && tiles_per_img < out_h) tiles_per_img++;
        if ((int64_t)tiles_per_img * d->batch < nt) mode = CONV2D_SERIAL_TILES;
    }
    rows = (out_h + tiles_per_img - 1) / tiles_per_img;
    tiles_per_img = (out_h + rows - 1) / rows;
    const int64_t ntiles = (int64_t)tiles_per_img * d->batch;

    if (mode == CONV2D_SERIAL_TILES) {
        float *col = xmalloc_aligned(row_bytes * (size_t)rows);
        for (int64_t t = 0; t < ntiles; t++) {
            int b = (int)(t / tiles_per_img), oy0 = (int)(t % tiles_per_img) * rows;
            int r = out_h - oy0 < rows ? out_h - oy0 : rows;
            conv2d_tile(out + b * out_img, inp + b * in_img, weight, bias, d, oy0, r, out_h, out_w, col);
        }
        free(col);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        float *col = xmalloc_aligned(row_bytes * (size_t)rows);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; t++) {
            int b = (int)(t / tiles_per_img), oy0 = (int)(t % tiles_per_img) * rows;
            int r = out_h - oy0 < rows ? out_h - oy0 : rows;
            conv2d_tile(out + b * out_img, inp + b * in_img, weight, bias, d, oy0, r, out_h, out_w, col);
        }
        free(col);
    }
}
