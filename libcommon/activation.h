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

#endif
