/* activation.h — element-wise activations as torch.nn.functional computes them:
 * GELU (exact, with erf), GELU with the tanh approximation, CLIP's quick GELU
 * x * sigmoid(1.702 x), SiLU, and diffusers' GEGLU (a projection output split
 * in two halves, hidden * gelu(gate)). Threaded over elements with OpenMP.
 * out == inp (in place) is allowed, except for geglu_forward. gelu_backward
 * (BERT's training path) accumulates into its gradient. */
#ifndef SYNTHCXR_ACTIVATION_H
#define SYNTHCXR_ACTIVATION_H

#include <stddef.h>

/* out, inp [n] */
void gelu_forward(float *out, const float *inp, size_t n);        /* F.gelu(x) */
void gelu_tanh_forward(float *out, const float *inp, size_t n);   /* F.gelu(x, approximate="tanh") */
void quick_gelu_forward(float *out, const float *inp, size_t n);  /* x * sigmoid(1.702 x) */
void silu_forward(float *out, const float *inp, size_t n);        /* F.silu(x) */

/* Backward of gelu_forward (exact, erf): dinp += dout * (Phi(x) + x phi(x)).
 * ACCUMULATES, as every backward here; dinp must not alias dout or inp.
 *   dinp, dout, inp [n] (inp: the forward input) */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* hidden, gate = inp.chunk(2, dim=-1); out = hidden * F.gelu(gate).
 *   out [rows, ch];  inp [rows, 2*ch] (not in place) */
void geglu_forward(float *out, const float *inp, int rows, int ch);

/* F.relu(x) = max(x, 0) (NaN stays NaN, as torch).  out, inp [n] */
void relu_forward(float *out, const float *inp, size_t n);
/* Its backward from the forward OUTPUT (torch saves that for an in-place ReLU;
 * out > 0 exactly where inp > 0): dinp += dout where out > 0.
 *   dinp, dout, out [n]; dinp == dout is NOT allowed (it accumulates). */
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);

#endif
