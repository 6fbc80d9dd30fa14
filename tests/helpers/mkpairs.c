/* mkpairs — writes a synthetic "pairs" stream (what pairpack makes) to stdout,
 * for vlptrain's tests without images or a tokenizer: pair i has a class
 * c = hash(seed, i) % 8; its image is noise with a bright square at a place
 * fixed by c, its tokens [CLS]=2, a class word 10+c, filler words 30.., [SEP]=3,
 * then padding 0 (ids fit the tiny BERT fixture's vocabulary of 100), so that
 * image and text share something to learn.
 *   Usage: mkpairs N [SIZE [TOKENS [SEED]]]   (defaults 256, 112, 0) */
#include "common.h"
#include "pairs_data.h"
#include "stream.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: mkpairs N [SIZE [TOKENS [SEED]]]\n");
        return 1;
    }
    int n = atoi(argv[1]), size = argc > 2 ? atoi(argv[2]) : 256, toks = argc > 3 ? atoi(argv[3]) : 112;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    CHECK(n >= 0 && size >= 16 && toks >= 8);
    stream_writer *w = stream_writer_open(stdout, "stdout");
    stream_header h;
    stream_header_init(&h, "pairs", "mkpairs " SYNTHCXR_VERSION);
    json_object_set_new(h.rec.meta, "image_size", json_integer(size));
    json_object_set_new(h.rec.meta, "max_tokens", json_integer(toks));
    json_object_set_new(h.rec.meta, "vocab", json_string("synthetic"));
    json_object_set_new(h.rec.meta, "lowercase", json_true());
    stream_write_header(w, &h);
    stream_header_clear(&h);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "syn%05d", i);
        int c = (int)(pairs_hash(seed, (uint64_t)i, 1) % 8);
        record *r = record_new(id);
        json_object_set_new(r->meta, "text", json_sprintf("class %d", c));
        tensor *im = tensor_new(DTYPE_U8, 2, (int64_t[]){size, size});
        uint8_t *p = im->data;
        int sq = size / 4, y0 = (c / 4) * size / 2 + size / 8, x0 = (c % 4) * size / 4;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                int v = (int)(pairs_hash(seed, (uint64_t)i, 1000 + (uint64_t)y * size + x) % 64);
                if (y >= y0 && y < y0 + sq && x >= x0 && x < x0 + sq) v += 160;
                p[y * size + x] = (uint8_t)v;
            }
        tensor *ids = tensor_new(DTYPE_I32, 1, (int64_t[]){toks});
        tensor *mk = tensor_new(DTYPE_U8, 1, (int64_t[]){toks});
        int32_t *q = ids->data;
        uint8_t *m = mk->data;
        memset(q, 0, (size_t)toks * sizeof(int32_t));
        memset(m, 0, (size_t)toks);
        int len = 4 + (int)(pairs_hash(seed, (uint64_t)i, 2) % (uint64_t)(toks - 6));
        q[0] = 2;
        q[1] = 10 + c;
        for (int j = 2; j < len - 1; j++) q[j] = 30 + (int)(pairs_hash(seed, (uint64_t)i, 3 + (uint64_t)j) % 60);
        q[len - 1] = 3;
        memset(m, 1, (size_t)len);
        record_add_tensor(r, "image", im);
        record_add_tensor(r, "input_ids", ids);
        record_add_tensor(r, "attention_mask", mk);
        stream_write_record(w, r);
        record_free(r);
    }
    stream_writer_close(w);
    return 0;
}
