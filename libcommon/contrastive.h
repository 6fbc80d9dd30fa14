/* contrastive.h — the global contrastive objective of ConVIRT (and MGCA's
 * instance alignment): L2 normalisation of the two embeddings
 * (F.normalize(x, dim=1)), the symmetric InfoNCE loss over the similarity
 * matrix, their backward passes, and image<->text retrieval recall@K.
 *
 * Loss (ConVIRT, Zhang et al. 2020): with S = img @ txt^T / temperature [n, n],
 *   loss = lambda * CE(S, diag) + (1 - lambda) * CE(S^T, diag)
 * where CE is torch.nn.CrossEntropyLoss (mean over the n rows). lambda 0.5
 * is half of MGCA's ConVIRT module (which returns the sum of the two terms):
 * the same gradient direction, and the same AdamW trajectory up to eps. */
#ifndef SYNTHCXR_CONTRASTIVE_H
#define SYNTHCXR_CONTRASTIVE_H

/* out = inp / max(||inp_row||, 1e-12), row by row (torch's F.normalize eps).
 * out, inp [n, d] (out == inp allowed); norm [n] saved for the backward. */
void l2norm_forward(float *out, float *norm, const float *inp, int n, int d);
/* dinp += (dout - out * <out, dout>) / norm (rows with norm <= 1e-12: dout / 1e-12).
 * dinp, dout, out [n, d]; norm [n]. dinp must not alias dout. */
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int n, int d);

/* The symmetric InfoNCE loss; returns it. logits [n, n] receives S (kept for
 * the backward and for retrieval); parts[0], parts[1] (if parts != NULL) the
 * image->text and text->image cross-entropies. img, txt [n, d] (normalised). */
double infonce_forward(float *logits, double *parts, const float *img, const float *txt, int n, int d,
                       float temperature, float lambda);
/* Gradients of dloss * loss, ACCUMULATED: dimg, dtxt [n, d] +=. logits [n, n]
 * from the forward; img, txt [n, d] as given to it. */
void infonce_backward(float *dimg, float *dtxt, const float *logits, const float *img, const float *txt, int n,
                      int d, float temperature, float lambda, float dloss);

/* Retrieval over a similarity matrix sim [n, n] (row i: image i against every
 * text; pair i is the match): i2t[k] = fraction of images whose own text ranks
 * within the top ks[k] of its row, t2i[k] likewise down the columns. Exact
 * ties (identical reports have identical embeddings) are broken at random in
 * expectation: a match with h candidates above it and e others equal to it
 * counts clamp((K - h) / (e + 1), 0, 1). So random scores give K/n. */
void retrieval_recall(double *i2t, double *t2i, const float *sim, int n, const int *ks, int nk);

#endif
