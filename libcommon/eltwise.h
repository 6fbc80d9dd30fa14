/* eltwise.h — element-wise and layout helpers that the UNet, the VAE, CLIP and
 * BERT need between their layers: sums (residuals, embeddings), products,
 * scaling, bias broadcasts over rows or channels, the UNet's per-sample time
 * embedding broadcast, channel concatenation (skip connections), the
 * [B, C, HW] <-> [B, HW, C] transpose around the UNet's transformer blocks and
 * 2x nearest upsampling (UNet and VAE up blocks). Float32, row-major.
 * Where a comment says "in place ok", out may equal an input. */
#ifndef SYNTHCXR_ELTWISE_H
#define SYNTHCXR_ELTWISE_H

#include <stddef.h>

/* out = a + b;  out, a, b [n]; in place ok */
void eltwise_add(float *out, const float *a, const float *b, size_t n);
/* out = a * b;  out, a, b [n]; in place ok */
void eltwise_mul(float *out, const float *a, const float *b, size_t n);
/* out = a * s;  out, a [n]; in place ok */
void eltwise_scale(float *out, const float *a, float s, size_t n);
/* out = alpha * a + beta * b;  out, a, b [n]; in place ok */
void eltwise_axpby(float *out, float alpha, const float *a, float beta, const float *b, size_t n);

/* x[r, c] += bias[c] (a Linear's bias);  x [rows, ch];  bias [ch] */
void eltwise_add_bias_rows(float *x, const float *bias, int rows, int ch);
/* x[b, c, i] += bias[c] (a conv's bias);  x [batch, ch, hw];  bias [ch] */
void eltwise_add_bias_channels(float *x, const float *bias, int batch, int ch, int hw);
/* x[b, c, i] += v[b, c] (the UNet's time embedding added to a ResNet block);
 *   x [batch, ch, hw];  v [batch, ch] */
void eltwise_add_batch_channels(float *x, const float *v, int batch, int ch, int hw);

/* torch.cat([a, b], dim=1);  out [batch, ca+cb, hw];  a [batch, ca, hw];  b [batch, cb, hw] */
void eltwise_concat_channels(float *out, const float *a, int ca, const float *b, int cb, int batch, int hw);

/* out[b, j, i] = inp[b, i, j] (x.transpose(1, 2)), e.g. [B, C, HW] -> [B, HW, C] and back.
 *   out [batch, n, m];  inp [batch, m, n];  not in place */
void eltwise_transpose(float *out, const float *inp, int batch, int m, int n);


#endif
