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

static void conv2d_check(const char *fn, const conv2d_dims *d) {
    if (d->batch <= 0 || d->in_ch <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->out_ch <= 0 || d->k_h <= 0 ||
        d->k_w <= 0 || d->stride_h <= 0 || d->stride_w <= 0 || d->pad_h < 0 || d->pad_w < 0)
        die("%s: bad dims batch=%d in_ch=%d in=%dx%d out_ch=%d kernel=%dx%d stride=%dx%d pad=%dx%d", fn,
            d->batch, d->in_ch, d->in_h, d->in_w, d->out_ch, d->k_h, d->k_w, d->stride_h, d->stride_w, d->pad_h,
            d->pad_w);
    if (d->in_h + 2 * d->pad_h < d->k_h || d->in_w + 2 * d->pad_w < d->k_w)
        die("%s: kernel %dx%d is larger than the padded input %dx%d", fn, d->k_h, d->k_w,
            d->in_h + 2 * d->pad_h, d->in_w + 2 * d->pad_w);
    if ((int64_t)d->in_ch * d->k_h * d->k_w > INT32_MAX || (int64_t)conv2d_out_h(d) * conv2d_out_w(d) > INT32_MAX)
        die("%s: sizes overflow a GEMM dimension", fn);
}

/* Fills col [in_ch*k_h*k_w, ld] (ld >= np) for the output pixels p0 .. p0+np-1 (p = oy*out_w
 * + ox) of one image x [in_ch, in_h, in_w]. Row r of col is (c, ki, kj); column
 * p - p0 holds x[c, oy*sh - ph + ki, ox*sw - pw + kj], or 0 in the padding. */
static void im2col_range(float *col, int64_t ld, const float *x, const conv2d_dims *d, int64_t p0, int np,
                         int out_w) {
    const int kk = d->k_h * d->k_w;
    const int sw = d->stride_w, pw = d->pad_w;
    const int64_t p1 = p0 + np;
    const int oy_first = (int)(p0 / out_w), oy_last = (int)((p1 - 1) / out_w);
    for (int r = 0; r < d->in_ch * kk; r++) {
        const int c = r / kk, ki = (r % kk) / d->k_w, kj = r % d->k_w;
        const float *xc = x + (int64_t)c * d->in_h * d->in_w;
        float *dst = col + (int64_t)r * ld - p0; /* indexed by p */
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
    im2col_range(col, np, x, d, p0, np, out_w);
    if (bias)
        for (int o = 0; o < d->out_ch; o++)
            for (int j = 0; j < np; j++) yt[o * plane + j] = bias[o];
    gemm_f32(0, 0, d->out_ch, np, K, 1.0f, weight, K, col, np, bias ? 1.0f : 0.0f, yt, (int)plane);
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const conv2d_dims *d) {
    conv2d_check("conv2d_forward", d);
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

/* ---- backward ----------------------------------------------------------- */

/* The transpose of im2col_range: x [in_ch, in_h, in_w] += each entry of the
 * columns p0 .. p0+np-1 of dcol [in_ch*k_h*k_w, ld], back at the input element
 * it was copied from (entries in the padding are dropped). */
static void col2im_range(float *x, const float *dcol, int64_t ld, const conv2d_dims *d, int64_t p0, int np,
                         int out_w) {
    const int kk = d->k_h * d->k_w;
    const int sw = d->stride_w, pw = d->pad_w;
    const int64_t p1 = p0 + np;
    const int oy_first = (int)(p0 / out_w), oy_last = (int)((p1 - 1) / out_w);
    for (int r = 0; r < d->in_ch * kk; r++) {
        const int c = r / kk, ki = (r % kk) / d->k_w, kj = r % d->k_w;
        float *xc = x + (int64_t)c * d->in_h * d->in_w;
        const float *src = dcol + (int64_t)r * ld - p0; /* indexed by p */
        int ox_lo = pw - kj > 0 ? (pw - kj + sw - 1) / sw : 0;
        int last = d->in_w - 1 + pw - kj;
        int ox_hi = last < 0 ? 0 : last / sw + 1;
        if (ox_hi > out_w) ox_hi = out_w;
        for (int oy = oy_first; oy <= oy_last; oy++) {
            const int iy = oy * d->stride_h - d->pad_h + ki;
            if (iy < 0 || iy >= d->in_h) continue;
            const int64_t row0 = (int64_t)oy * out_w;
            const int a = oy == oy_first ? (int)(p0 - row0) : 0;
            const int b = oy == oy_last ? (int)(p1 - row0) : out_w;
            const int lo = ox_lo > a ? ox_lo : a, hi = ox_hi < b ? ox_hi : b;
            float *xr = xc + (int64_t)iy * d->in_w - pw + kj;
            const float *o = src + row0;
            if (sw == 1) {
#pragma omp simd
                for (int ox = lo; ox < hi; ox++) xr[ox] += o[ox];
            } else {
                for (int ox = lo; ox < hi; ox++) xr[(int64_t)ox * sw] += o[ox];
            }
        }
    }
}

/* The (image, pixel) columns q0 .. q0+nq-1 of a backward tile: image b holds
 * its pixels pa .. pb-1, at tile column b*plane + pa - q0. */
static void tile_segment(int b, int b_first, int b_last, int64_t q0, int nq, int64_t plane, int64_t *pa,
                         int64_t *pb) {
    *pa = b == b_first ? q0 - (int64_t)b * plane : 0;
    *pb = b == b_last ? q0 + nq - (int64_t)b * plane : plane;
}

/* dx == NULL: col [K, nq] = im2col of the tile's columns of x (the input);
 * else dx (the input gradient) += col2im of col. One thread team per tile,
 * split over input channels: the rows of one channel read (write) that
 * channel only. */
static void tile_im2col(float *col, const float *x, float *dx, const conv2d_dims *d, int64_t q0, int nq,
                        int64_t plane, int out_w) {
    conv2d_dims d1 = *d;
    d1.in_ch = 1;
    const int64_t kk = d->k_h * d->k_w, hw = (int64_t)d->in_h * d->in_w, in_img = d->in_ch * hw;
    const int b_first = (int)(q0 / plane), b_last = (int)((q0 + nq - 1) / plane);
#pragma omp parallel for schedule(static) if (d->in_ch * kk * nq > 32768)
    for (int c = 0; c < d->in_ch; c++)
        for (int b = b_first; b <= b_last; b++) {
            int64_t pa, pb;
            tile_segment(b, b_first, b_last, q0, nq, plane, &pa, &pb);
            float *cc = col + c * kk * nq + ((int64_t)b * plane + pa - q0);
            const int64_t off = b * in_img + c * hw;
            if (dx) col2im_range(dx + off, cc, nq, &d1, pa, (int)(pb - pa), out_w);
            else im2col_range(cc, nq, x + off, &d1, pa, (int)(pb - pa), out_w);
        }
}

/* Scratch budget of the backward (im2col tile + gathered dout tile); tiles
 * run across image boundaries, so the small planes of a ResNet's last stage
 * (7x7) still give GEMMs with hundreds of pixels. */
#define CONV2D_BACKWARD_SCRATCH ((size_t)16 << 20)

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const conv2d_dims *d) {
    conv2d_check("conv2d_backward", d);
    if (!dout) die("conv2d_backward: dout is NULL");
    if (dweight && !inp) die("conv2d_backward: dweight wanted but inp is NULL");
    if (dinp && !weight) die("conv2d_backward: dinp wanted but weight is NULL");
    const int out_h = conv2d_out_h(d), out_w = conv2d_out_w(d);
    const int O = d->out_ch, K = d->in_ch * d->k_h * d->k_w;
    const int64_t plane = (int64_t)out_h * out_w, total = plane * d->batch;
    const int64_t out_img = (int64_t)O * plane;

    if (dbias) {
#pragma omp parallel for schedule(static) if (total * O > 65536)
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int b = 0; b < d->batch; b++) {
                const float *g = dout + b * out_img + (int64_t)o * plane;
#pragma omp simd reduction(+ : s)
                for (int64_t j = 0; j < plane; j++) s += g[j];
            }
            dbias[o] += (float)s;
        }
    }
    if (!dinp && !dweight) return;

    /* A tile is nq consecutive (image, pixel) columns q = b*plane + p. */
    size_t budget = g_scratch_bytes == CONV2D_DEFAULT_SCRATCH ? CONV2D_BACKWARD_SCRATCH : g_scratch_bytes;
    int64_t n = (int64_t)(budget / (sizeof(float) * ((size_t)K + (size_t)O)));
    if (n < g_min_pix) n = g_min_pix;
    if (n > total) n = total;
    if (n > INT32_MAX / 2) n = INT32_MAX / 2;
    float *col = xmalloc_aligned(sizeof(float) * (size_t)K * (size_t)n);
    float *dy = xmalloc_aligned(sizeof(float) * (size_t)O * (size_t)n);
    for (int64_t q0 = 0; q0 < total; q0 += n) {
        const int nq = (int)(total - q0 < n ? total - q0 : n);
        const int b_first = (int)(q0 / plane), b_last = (int)((q0 + nq - 1) / plane);
        /* dy [O, nq] = the tile's columns of dout */
#pragma omp parallel for schedule(static) if ((int64_t)O * nq > 65536)
        for (int o = 0; o < O; o++)
            for (int b = b_first; b <= b_last; b++) {
                int64_t pa, pb;
                tile_segment(b, b_first, b_last, q0, nq, plane, &pa, &pb);
                memcpy(dy + (int64_t)o * nq + ((int64_t)b * plane + pa - q0),
                       dout + b * out_img + (int64_t)o * plane + pa, sizeof(float) * (size_t)(pb - pa));
            }
        if (dweight) {
            tile_im2col(col, inp, NULL, d, q0, nq, plane, out_w);
            /* dweight [O, K] += dy [O, nq] @ col^T [nq, K] */
            gemm_f32(0, 1, O, K, nq, 1.0f, dy, nq, col, nq, 1.0f, dweight, K);
        }
        if (dinp) {
            /* dcol [K, nq] = weight^T [K, O] @ dy [O, nq], then back onto the images */
            gemm_f32(1, 0, K, nq, O, 1.0f, weight, K, dy, nq, 0.0f, col, nq);
            tile_im2col(col, NULL, dinp, d, q0, nq, plane, out_w);
        }
    }
    free(col);
    free(dy);
}
