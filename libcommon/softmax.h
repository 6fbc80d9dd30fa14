/* softmax.h — softmax over the last dimension (torch.softmax(x, -1)), stable:
 * the row maximum is subtracted before exponentiating. -inf entries (masked
 * positions) get probability 0. A row that is entirely -inf gives all zeros,
 * where torch gives NaN: a fully masked row has nothing to attend to.
 * out == inp (in place) is allowed. */
#ifndef SYNTHCXR_SOFTMAX_H
#define SYNTHCXR_SOFTMAX_H

/*   out, inp [rows, cols] */
void softmax_forward(float *out, const float *inp, int rows, int cols);

#endif
