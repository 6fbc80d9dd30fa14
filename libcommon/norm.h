/* norm.h — normalisation layers on the CPU, matching torch.nn.functional:
 * group norm over [B, C, H*W] (the ResNet blocks of the UNet and the VAE, with
 * a fused SiLU for diffusers' GroupNorm -> SiLU pairs) and layer norm over the
 * last dimension (CLIP, BERT, the UNet's transformer blocks).
 * Statistics are accumulated in double with two passes (mean, then the sum of
 * squared deviations), so inputs with a large mean lose no accuracy.
 * out == inp (in place) is allowed for every forward function here; the
 * layer norm backward takes the mean and rstd that layernorm_forward_save kept. */
#ifndef SYNTHCXR_NORM_H
#define SYNTHCXR_NORM_H

/* torch GroupNorm(groups, ch, eps): each (batch, group) slab of ch/groups
 * channels x hw positions is normalised by its own mean and biased variance,
 * then scaled per channel. gamma/beta may both be NULL (affine=False).
 * Dies if groups does not divide ch.
 *   out, inp [batch, ch, hw];  gamma, beta [ch] or NULL */
void groupnorm_forward(float *out, const float *inp, const float *gamma, const float *beta,
                       int batch, int ch, int hw, int groups, float eps);
/* The same followed by SiLU (x * sigmoid(x)) in the same pass. */
void groupnorm_silu_forward(float *out, const float *inp, const float *gamma, const float *beta,
                            int batch, int ch, int hw, int groups, float eps);

/* torch LayerNorm(ch, eps) over the last dimension; gamma/beta may be NULL.
 *   out, inp [rows, ch];  gamma, beta [ch] or NULL */
void layernorm_forward(float *out, const float *inp, const float *gamma, const float *beta,
                       int rows, int ch, float eps);
/* The same, keeping each row's statistics for the backward pass: mean [rows]
 * and rstd [rows] = 1/sqrt(biased variance + eps), both as float. */
void layernorm_forward_save(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                            const float *beta, int rows, int ch, float eps);
/* Its backward pass; every gradient ACCUMULATES (+=). Any of dinp, dgamma,
 * dbeta may be NULL (not wanted); gamma NULL: LayerNorm without affine.
 * dinp must not alias dout or inp. Row sums in double.
 *   dinp, dout, inp [rows, ch];  dgamma, dbeta, gamma [ch];  mean, rstd [rows] */
void layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                        const float *gamma, const float *mean, const float *rstd, int rows, int ch);

#endif
