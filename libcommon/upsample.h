/* upsample.h — nearest-neighbour 2x upsampling (float32, NCHW), as
 * F.interpolate(scale_factor=2, mode="nearest") in the diffusers Upsample2D. */
#ifndef SYNTHCXR_UPSAMPLE_H
#define SYNTHCXR_UPSAMPLE_H

/* out: [batch, ch, 2h, 2w]; inp: [batch, ch, h, w]. out[.., y, x] = inp[.., y/2, x/2]. */
void upsample_nearest2x_forward(float *out, const float *inp, int batch, int ch, int h, int w);

#endif
