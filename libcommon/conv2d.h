/* conv2d.h — torch.nn.Conv2d forward and backward on the CPU (float32, NCHW,
 * zero padding, no dilation, no groups): a plain GEMM for 1x1 stride-1
 * convolutions, and im2col + GEMM over tiles of output pixels (a few rows)
 * otherwise, so the scratch stays bounded however large the image. */
#ifndef SYNTHCXR_CONV2D_H
#define SYNTHCXR_CONV2D_H

#include <stddef.h>

typedef struct conv2d_dims {
    int batch, in_ch, in_h, in_w, out_ch, k_h, k_w, stride_h, stride_w, pad_h, pad_w;
} conv2d_dims;

/* floor((in + 2*pad - k) / stride) + 1, as torch. */
int conv2d_out_h(const conv2d_dims *d);
int conv2d_out_w(const conv2d_dims *d);

/* out: [batch, out_ch, out_h, out_w]; inp: [batch, in_ch, in_h, in_w];
 * weight: [out_ch, in_ch, k_h, k_w]; bias: [out_ch] or NULL.
 * Dies on inconsistent dims (non-positive sizes, kernel larger than the padded input). */
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const conv2d_dims *d);

/* Its backward: im2col of tiles of (image, pixel) columns (across image
 * boundaries) and GEMMs with all threads, then col2im for dinp; scratch
 * bounded (16 MiB by default). Every gradient ACCUMULATES (+=); any of dinp,
 * dweight, dbias may be NULL (not wanted; inp is needed only for dweight,
 * weight only for dinp).
 *   dinp, inp [batch, in_ch, in_h, in_w];  dweight, weight [out_ch, in_ch, k_h, k_w];
 *   dbias [out_ch];  dout [batch, out_ch, out_h, out_w] */
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const conv2d_dims *d);

/* Tuning knobs, for tests and benchmarks (defaults need no call).
 * scratch_bytes: the im2col budget per tile (0 = default, 2 MiB; one tile per
 * thread), whole output rows when one fits, never under 16 output pixels
 * (the default: never under 512, whatever that takes); a budget set here is
 * also the backward's (tile + gathered dout).
 * mode: 0 auto (2 when several threads), 1 tiles one after another with
 * multithreaded GEMM, 2 tiles spread over threads with single-threaded GEMM. */
enum { CONV2D_AUTO = 0, CONV2D_SERIAL_TILES = 1, CONV2D_PARALLEL_TILES = 2 };
void conv2d_set_tuning(size_t scratch_bytes, int mode);

#endif
