/* softmax.h — softmax over the last dimension (torch.softmax(x, -1)), stable:
 * the row maximum is subtracted before exponentiating. -inf entries (masked
 * positions) get probability 0. A row that is entirely -inf gives all zeros,
 * where torch gives NaN: a fully masked row has nothing to attend to.
 * out == inp (in place) is allowed. */
#ifndef SYNTHCXR_SOFTMAX_H
#define SYNTHCXR_SOFTMAX_H

/*   out, inp [rows, cols] */
void softmax_forward(float *out, const float *inp, int rows, int cols);

/* Its backward from the forward output y: dinp += y * (dout - sum(dout * y))
 * per row (the dot product in double). ACCUMULATES; dinp must not alias dout
 * or out. Masked entries (y = 0) get no gradient.
 *   dinp, dout, out [rows, cols] */
void softmax_backward(float *dinp, const float *dout, const float *out, int rows, int cols);

#endif
