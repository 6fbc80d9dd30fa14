/* pool.h — 2-D pooling on the CPU (float32, NCHW), as torch: MaxPool2d (padding
 * counts as -inf), AvgPool2d with its defaults (count_include_pad=True), floor
 * mode only, and the global average pool of a ResNet head. */
#ifndef SYNTHCXR_POOL_H
#define SYNTHCXR_POOL_H

typedef struct pool2d_dims {
    int batch, ch, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w;
} pool2d_dims;

/* floor((in + 2*pad - k) / stride) + 1, as torch with ceil_mode=False. */
int pool2d_out_h(const pool2d_dims *d);
int pool2d_out_w(const pool2d_dims *d);

/* out: [batch, ch, out_h, out_w]; inp: [batch, ch, in_h, in_w].
 * Dies, as torch does, when pad > k/2 or the output would be empty. */
void maxpool2d_forward(float *out, const float *inp, const pool2d_dims *d);
/* Divides by k_h*k_w everywhere (padding counts as zeros). */
void avgpool2d_forward(float *out, const float *inp, const pool2d_dims *d);

/* out: [batch, ch] = mean over h*w of inp: [batch, ch, h, w]. */
void global_avgpool_forward(float *out, const float *inp, int batch, int ch, int h, int w);

/* Backward passes; dinp ACCUMULATES (+=).
 * MaxPool2d: each output's gradient goes to the input element its forward
 * picked (as torch: the first maximum in window order, or the last NaN), found
 * again from inp rather than saved.
 *   dinp, inp [batch, ch, in_h, in_w];  dout [batch, ch, out_h, out_w] */
void maxpool2d_backward(float *dinp, const float *dout, const float *inp, const pool2d_dims *d);
/* dinp [batch, ch, h, w] += dout [batch, ch] / (h*w) */
void global_avgpool_backward(float *dinp, const float *dout, int batch, int ch, int h, int w);

#endif
