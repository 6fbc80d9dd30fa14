/* batchnorm.h — torch.nn.BatchNorm1d/2d on the CPU, forward in training mode
 * (batch statistics, biased variance for normalising, unbiased for the running
 * estimate, running = (1 - momentum) * running + momentum * batch), forward in
 * eval mode (running statistics), and the training-mode backward.
 * Layout [n, ch, s]: BatchNorm2d is s = h*w, BatchNorm1d on [n, ch] is s = 1.
 * weight/bias NULL = affine=False (the last BN of MGCA's projection head).
 * Statistics accumulate in double. */
#ifndef SYNTHCXR_BATCHNORM_H
#define SYNTHCXR_BATCHNORM_H

/* out, inp [n, ch, s]; weight, bias [ch] or NULL; running_mean, running_var [ch]
 * updated in place unless NULL; save_mean, save_rstd [ch] written for the backward
 * (rstd = 1/sqrt(biased var + eps)). out == inp allowed. */
void batchnorm_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                             float *running_var, const float *inp, const float *weight, const float *bias,
                             int n, int ch, int s, float momentum, float eps);
/* Eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias. */
void batchnorm_forward_eval(float *out, const float *inp, const float *running_mean, const float *running_var,
                            const float *weight, const float *bias, int n, int ch, int s, float eps);
/* Training-mode backward. dinp is ACCUMULATED (+=) like the parameter gradients;
 * dweight, dbias (+=) may be NULL. inp is the forward input; save_* from the forward.
 *   dinp, dout, inp [n, ch, s]; dweight, dbias, weight, save_mean, save_rstd [ch] */
void batchnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *save_mean, const float *save_rstd, int n, int ch,
                        int s);

#endif
