/* attention.h — scaled dot-product attention on the CPU, flash-attention style:
 * queries and keys are taken in blocks, the softmax is computed online (a
 * running maximum and sum per query row, earlier partial outputs rescaled as
 * the maximum grows), so the Tq x Tk score matrix is never held; each thread
 * needs one query block x key block of scores and one block of outputs.
 * Scores, softmax and accumulation are float32. Equal to
 *   F.scaled_dot_product_attention(q', k', v', attn_mask, is_causal, scale)
 * with q' = q.transpose(1, 2) etc., and the output transposed back.
 * Layouts are the natural outputs of the Linear projections (no transposes):
 *   q, out [batch, tq, heads, head_dim];  k, v [batch, tk, heads, head_dim].
 * out == q (in place) is allowed; out must not alias k or v.
 * For training, attention_train_forward/backward keep the full probability
 * matrix instead (see below). */
#ifndef SYNTHCXR_ATTENTION_H
#define SYNTHCXR_ATTENTION_H

#include <stddef.h>

/* scale: usually 1/sqrt(head_dim).
 * causal: query i sees only keys j <= i (CLIP's text encoder; torch's
 *   is_causal, aligned at the top left when tq != tk).
 * key_mask: NULL or an additive mask per key, [batch, tk] (BERT padding: 0 for
 *   a real token, a large negative number or -inf for padding), added to the
 *   scaled scores of every head and query.
 * A query row whose keys are all -inf gets zeros (torch gives NaN). */
void attention_forward(float *out, const float *q, const float *k, const float *v, int batch, int heads,
                       int tq, int tk, int head_dim, float scale, int causal, const float *key_mask);

/* Bytes of scratch attention_forward allocates for these dimensions with the
 * current OpenMP thread count: per thread one query block x key block of
 * scores, one block of outputs and the running max/sum: about 80 kB per
 * thread for head_dim 64, whatever tq and tk are. */
size_t attention_scratch_bytes(int batch, int heads, int tq, int tk, int head_dim);

/* Training attention (BERT in vlptrain): the same product, computed plainly
 * per (batch, head) with the softmax probabilities kept for the backward pass,
 * exactly as HF's eager attention: P = softmax(scale q k^T + key_mask), out = P v.
 * key_mask: NULL or additive per key, [batch, tk]; HF BERT adds the dtype
 * minimum (-FLT_MAX) at padding, which gives those keys probability 0 (and a
 * row whose keys are all masked a uniform distribution, as HF). No causal mode.
 * Memory: probs holds batch x heads x tq x tk floats (1.2 MB per 12-head
 * sequence at T = 112). out must not alias q, k or v.
 *   out, q [batch, tq, heads, head_dim];  k, v [batch, tk, heads, head_dim];
 *   probs [batch, heads, tq, tk] (written) */
void attention_train_forward(float *out, float *probs, const float *q, const float *k, const float *v, int batch,
                             int heads, int tq, int tk, int head_dim, float scale, const float *key_mask);
/* Its backward from the kept probabilities; dq, dk, dv ACCUMULATE (+=).
 * Scratch: two tq x tk matrices per thread.
 *   dq, dout, q [batch, tq, heads, head_dim];  dk, dv, k, v [batch, tk, heads, head_dim];
 *   probs [batch, heads, tq, tk] */
void attention_train_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, const float *probs, int batch, int heads, int tq, int tk,
                              int head_dim, float scale);

#endif
