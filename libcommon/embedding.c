/* embedding.c — embedding lookup and scatter-add backward (see embedding.h).
 * The backward splits the columns between the OpenMP threads, so two tokens
 * with the same id never race on one row and the sums are taken in input order
 * (the result does not depend on the thread count). */
#include "embedding.h"

#include "common.h"

#include <string.h>

static void check_ids(const char *fn, const int32_t *ids, int n, int vocab) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            die("%s: token id %d at position %d is outside the vocabulary of %d", fn, (int)ids[i], i, vocab);
}

void embedding_forward(float *out, const int32_t *ids, const float *table, int n, int vocab, int dim) {
    if (!out || !ids || !table) die("embedding_forward: NULL out, ids or table");
    if (n <= 0 || vocab <= 0 || dim <= 0)
        die("embedding_forward: bad dimensions n %d, vocab %d, dim %d", n, vocab, dim);
    check_ids("embedding_forward", ids, n, vocab);
#pragma omp parallel for schedule(static) if ((long)n * dim > 65536)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, table + (size_t)ids[i] * dim, sizeof(float) * (size_t)dim);
}

enum { EMB_COLS = 64 };

void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int n, int vocab, int dim,
                        int padding_idx) {
    if (!dtable || !dout || !ids) die("embedding_backward: NULL dtable, dout or ids");
    if (n <= 0 || vocab <= 0 || dim <= 0)
        die("embedding_backward: bad dimensions n %d, vocab %d, dim %d", n, vocab, dim);
    check_ids("embedding_backward", ids, n, vocab);
    int strips = (dim + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for schedule(static) if ((long)n * dim > 65536)
    for (int st = 0; st < strips; st++) {
        int c0 = st * EMB_COLS, nc = dim - c0 < EMB_COLS ? dim - c0 : EMB_COLS;
        for (int i = 0; i < n; i++) {
            if (ids[i] == padding_idx) continue;
            float *d = dtable + (size_t)ids[i] * dim + c0;
            const float *g = dout + (size_t)i * dim + c0;
#pragma omp simd
            for (int c = 0; c < nc; c++) d[c] += g[c];
        }
    }
}
