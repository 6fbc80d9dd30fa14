/* embedding.h — torch.nn.Embedding on the CPU: a row lookup and, for training,
 * its backward, a scatter-add of the output gradient into the table's rows
 * (BERT's word, position and token-type embeddings). */
#ifndef SYNTHCXR_EMBEDDING_H
#define SYNTHCXR_EMBEDDING_H

#include <stdint.h>

/* out[i] = table[ids[i]]. Dies naming the position if an id is outside
 * [0, vocab).
 *   out [n, dim];  ids [n];  table [vocab, dim] */
void embedding_forward(float *out, const int32_t *ids, const float *table, int n, int vocab, int dim);

/* dtable[ids[i]] += dout[i] for every i, except rows whose id is padding_idx
 * (nn.Embedding(padding_idx=...) gives that row no gradient; -1: none).
 * ACCUMULATES. Dies if an id is outside [0, vocab).
 *   dtable [vocab, dim];  dout [n, dim];  ids [n] */
void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int n, int vocab, int dim,
                        int padding_idx);

#endif
