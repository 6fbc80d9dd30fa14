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
 * out == q (in place) is allowed; out must not alias k or v. */
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

#endif
