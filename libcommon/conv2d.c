/* conv2d.c — Conv2d forward as GEMM. out[b] viewed as [out_ch, out_h*out_w] is
 * weight viewed as [out_ch, in_ch*k_h*k_w] times the im2col matrix
 * [in_ch*k_h*k_w, out_h*out_w]. That matrix is built for a run of consecutive
 * output pixels at a time (a tile, usually a few whole rows): whole-image
 * im2col of a 512x512, 512-channel 3x3 conv would take 4.5 GB. Tiles go one per
 * thread with single-threaded GEMMs: on 2 Zen 4 cores that beat tiles in turn
 * with OpenBLAS threading (about 160 vs 130-150 GFLOP/s at 64x64x320 and
 * 512x512x128), and 1-4 MB of scratch per tile did best. */
#include "conv2d.h"

#include "common.h"
#include "gemm.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONV2D_DEFAULT_SCRATCH ((size_t)2 << 20)
/* The default tile never has fewer output pixels than this, whatever the
 * budget: every tile's GEMM packs the whole weight matrix again, and at the
 * SD UNet's deep levels (1280-2560 channels, K = 11520-23040) 2 MiB is only
 * 22-45 pixels, so the packing took 16 % of a 512² UNet pass and the 3x3
 * convs there ran at 80-110 GFLOP/s; with 512 pixels (up to 45 MiB of
 * scratch per thread) they run at 150-190 on 2 Zen 4 cores. */
#define CONV2D_DEFAULT_MIN_PIX 512

static size_t g_scratch_bytes = CONV2D_DEFAULT_SCRATCH;
static int64_t g_min_pix = CONV2D_DEFAULT_MIN_PIX;
static int g_mode = CONV2D_AUTO;

void conv2d_set_tuning(size_t scratch_bytes, int mode) {
    g_scratch_bytes = scratch_bytes ? scratch_bytes : CONV2D_DEFAULT_SCRATCH;
    g_min_pix = scratch_bytes ? 16 : CONV2D_DEFAULT_MIN_PIX;
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

/* Fills col [in_ch*k_h*k_w, np] for the output pixels p0 .. p0+np-1 (p = oy*out_w
 * + ox) of one image x [in_ch, in_h, in_w]. Row r of col is (c, ki, kj); column
 * p - p0 holds x[c, oy*sh - ph + ki, ox*sw - pw + kj], or 0 in the padding. */
static void im2col_range(float *col, const float *x, const conv2d_dims *d, int64_t p0, int np, int out_w) {
    const int kk = d->k_h * d->k_w;
    const int sw = d->stride_w, pw = d->pad_w;
    const int64_t p1 = p0 + np;
    const int oy_first = (int)(p0 / out_w), oy_last = (int)((p1 - 1) / out_w);
    for (int r = 0; r < d->in_ch * kk; r++) {
        const int c = r / kk, ki = (r % kk) / d->k_w, kj = r % d->k_w;
        const float *xc = x + (int64_t)c * d->in_h * d->in_w;
        float *dst = col + (int64_t)r * np - p0; /* indexed by p */
        /* [ox_lo, ox_hi): the ox whose input column ox*sw - pw + kj is inside [0, in_w) */
        int ox_lo = pw - kj > 0 ? (pw - kj + sw - 1) / sw : 0;
        int last = d->in_w - 1 + pw - kj;
        int ox_hi = last < 0 ? 0 : last / sw + 1;
        if (ox_hi > out_w) ox_hi = out_w;
        if (ox_lo > ox_hi) ox_lo = ox_hi;
        for (int oy = oy_first; oy <= oy_last; oy++) {
            const int64_t row0 = (int64_t)oy * out_w;
            const int a = oy == oy_first ? (int)(p0 - row0) : 0;
            const int b = oy == oy_last ? (int)(p1 - row0) : out_w;
            float *o = dst + row0;
            const int iy = oy * d->stride_h - d->pad_h + ki;
            if (iy < 0 || iy >= d->in_h) {
                memset(o + a, 0, sizeof(float) * (size_t)(b - a));
                continue;
            }
            const float *xr = xc + (int64_t)iy * d->in_w - pw + kj;
            const int lo = ox_lo > a ? ox_lo : a, hi = ox_hi < b ? ox_hi : b;
            if (lo >= hi) {
                memset(o + a, 0, sizeof(float) * (size_t)(b - a));
                continue;
            }
            for (int ox = a; ox < lo; ox++) o[ox] = 0.0f;
            if (sw == 1) memcpy(o + lo, xr + lo, sizeof(float) * (size_t)(hi - lo));
            else
                for (int ox = lo; ox < hi; ox++) o[ox] = xr[(int64_t)ox * sw];
            for (int ox = hi; ox < b; ox++) o[ox] = 0.0f;
        }
    }
}

/* y [out_ch, out_h*out_w] (one image), columns p0 .. p0+np-1:
 * = W [out_ch, K] @ col [K, np] (+ bias). */
static void conv2d_tile(float *y, const float *x, const float *weight, const float *bias, const conv2d_dims *d,
                        int64_t p0, int np, int64_t plane, int out_w, float *col) {
    const int K = d->in_ch * d->k_h * d->k_w;
    float *yt = y + p0;
    im2col_range(col, x, d, p0, np, out_w);
    if (bias)
        for (int o = 0; o < d->out_ch; o++)
            for (int j = 0; j < np; j++) yt[o * plane + j] = bias[o];
    gemm_f32(0, 0, d->out_ch, np, K, 1.0f, weight, K, col, np, bias ? 1.0f : 0.0f, yt, (int)plane);
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

    /* Tile size: whole output rows while a row fits the budget, else part of
     * a row (never under g_min_pix pixels, so a GEMM is not degenerate). */
    const size_t col_bytes = sizeof(float) * (size_t)d->in_ch * d->k_h * d->k_w; /* one im2col column */
    int64_t npix = (int64_t)(g_scratch_bytes / col_bytes);
    if (npix >= out_w) npix = npix / out_w * out_w;
    if (npix < g_min_pix) npix = g_min_pix;
    if (npix > plane) npix = plane;
    int64_t tiles_per_img = (plane + npix - 1) / npix;
    int mode = g_mode;
    if (mode == CONV2D_AUTO) mode = nt > 1 ? CONV2D_PARALLEL_TILES : CONV2D_SERIAL_TILES;
    if (mode == CONV2D_PARALLEL_TILES) {
        /* A tile count that splits evenly over the threads, if the image has
         * pixels enough; if not every thread can get a tile, the threads go
         * into the GEMM instead. */
        int64_t total = tiles_per_img * d->batch;
        if (total % nt) {
            int64_t want = (total + nt - 1) / nt * nt;
            tiles_per_img = (want + d->batch - 1) / d->batch;
        }
        if (tiles_per_img > plane) tiles_per_img = plane;
        npix = (plane + tiles_per_img - 1) / tiles_per_img; /* may now end mid-row */
        tiles_per_img = (plane + npix - 1) / npix;
        if (tiles_per_img * d->batch < nt) mode = CONV2D_SERIAL_TILES;
    }
    const int64_t ntiles = tiles_per_img * d->batch;
    const size_t scratch = col_bytes * (size_t)npix;

    if (mode == CONV2D_SERIAL_TILES) {
        float *col = xmalloc_aligned(scratch);
        for (int64_t t = 0; t < ntiles; t++) {
            int b = (int)(t / tiles_per_img);
            int64_t p0 = (t % tiles_per_img) * npix;
            int np = (int)(plane - p0 < npix ? plane - p0 : npix);
            conv2d_tile(out + b * out_img, inp + b * in_img, weight, bias, d, p0, np, plane, out_w, col);
        }
        free(col);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        float *col = xmalloc_aligned(scratch);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; t++) {
            int b = (int)(t / tiles_per_img);
            int64_t p0 = (t % tiles_per_img) * npix;
            int np = (int)(plane - p0 < npix ? plane - p0 : npix);
            conv2d_tile(out + b * out_img, inp + b * in_img, weight, bias, d, p0, np, plane, out_w, col);
        }
        free(col);
    }
}
