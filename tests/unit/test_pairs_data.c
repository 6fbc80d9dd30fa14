/* test_pairs_data.c — vlptrain's data reader: pairs streams from files and
 * globs, header checks, the validation split (deterministic, order-free),
 * per-epoch shuffles, and MGCA's crops and normalisation on images whose
 * pixels encode their coordinates. */
#include "unit.h"
#include "pairs_data.h"
#include "stream.h"

#include <sys/stat.h>

enum { S = 12, T = 6 };

/* pixel (y, x) of pair p: distinct, so a crop reveals its offset */
static uint8_t pix(int p, int y, int x) { return (uint8_t)((p * 37 + y * 13 + x) % 256); }

static void write_shard(const char *path, int first, int count, int size, const char *kind) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    stream_writer *w = stream_writer_open(f, path);
    stream_header h;
    stream_header_init(&h, kind, "test");
    json_object_set_new(h.rec.meta, "image_size", json_integer(size));
    json_object_set_new(h.rec.meta, "max_tokens", json_integer(T));
    json_object_set_new(h.rec.meta, "vocab", json_string("v.txt"));
    json_object_set_new(h.rec.meta, "lowercase", json_true());
    stream_write_header(w, &h);
    for (int p = first; p < first + count; p++) {
        char id[32];
        snprintf(id, sizeof id, "pair%03d", p);
        record *r = record_new(id);
        tensor *im = tensor_new(DTYPE_U8, 2, (int64_t[]){size, size});
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) ((uint8_t *)im->data)[y * size + x] = pix(p, y, x);
        tensor *ids = tensor_new(DTYPE_I32, 1, (int64_t[]){T});
        tensor *mk = tensor_new(DTYPE_U8, 1, (int64_t[]){T});
        for (int j = 0; j < T; j++) {
            ((int32_t *)ids->data)[j] = j < 3 ? 100 + p + j : 0;
            ((uint8_t *)mk->data)[j] = j < 3;
        }
        record_add_tensor(r, "image", im);
        record_add_tensor(r, "input_ids", ids);
        record_add_tensor(r, "attention_mask", mk);
        stream_write_record(w, r);
        record_free(r);
    }
    stream_header_clear(&h);
    stream_writer_close(w);
    fclose(f);
}

static char dir[512];

static void test_load_split_shuffle(void) {
    snprintf(dir, sizeof dir, "%s/shards", unit_tmpdir());
    mkdir(dir, 0755);
    char a[600], b[600], pat[600];
    snprintf(a, sizeof a, "%s/pairs-00000.cxs", dir);
    snprintf(b, sizeof b, "%s/pairs-00001.cxs", dir);
    write_shard(a, 0, 7, S, "pairs");
    write_shard(b, 7, 5, S, "pairs");
    snprintf(pat, sizeof pat, "%s/pairs-*.cxs", dir);
    pairs_data d;
    char *paths[] = {pat};
    pairs_data_load(&d, paths, 1, 1);
    EXPECT(d.n == 12 && d.image_size == S && d.max_tokens == T, "n %d size %d tokens %d", d.n, d.image_size,
           d.max_tokens);
    EXPECT(!strcmp(d.ids[8], "pair008") && d.input_ids[8 * T + 1] == 109 && d.attn_mask[8 * T + 3] == 0,
           "record 8 in order");
    EXPECT(d.vocab && !strcmp(d.vocab, "v.txt") && d.lowercase == 1, "header meta kept");

    int *tr, *va, ntr, nva;
    pairs_split(&d, 0.25, 7, &tr, &ntr, &va, &nva);
    EXPECT(nva == 3 && ntr == 9, "split %d / %d", ntr, nva);
    int seen[12] = {0};
    for (int i = 0; i < ntr; i++) seen[tr[i]]++;
    for (int i = 0; i < nva; i++) seen[va[i]]++;
    for (int i = 0; i < 12; i++) EXPECT(seen[i] == 1, "pair %d in exactly one side", i);
    /* the same ids in another order and sharding give the same validation ids */
    pairs_data d2;
    char *rev[] = {b, a};
    pairs_data_load(&d2, rev, 2, 1);
    int *tr2, *va2, ntr2, nva2;
    pairs_split(&d2, 0.25, 7, &tr2, &ntr2, &va2, &nva2);
    EXPECT(nva2 == 3, "same size");
    for (int i = 0; i < nva2; i++) {
        int found = 0;
        for (int j = 0; j < nva; j++) found |= !strcmp(d2.ids[va2[i]], d.ids[va[j]]);
        EXPECT(found, "validation id %s also held out in the first order", d2.ids[va2[i]]);
    }
    int *tr3, *va3, ntr3, nva3, differs = 0;
    pairs_split(&d, 0.25, 8, &tr3, &ntr3, &va3, &nva3);
    for (int i = 0; i < nva3; i++) differs |= va3[i] != va[i];
    EXPECT(differs, "another seed, another split");

    int p1[9], p2[9], p3[9];
    pairs_epoch_order(p1, 9, 7, 0);
    pairs_epoch_order(p2, 9, 7, 0);
    pairs_epoch_order(p3, 9, 7, 1);
    EXPECT(!memcmp(p1, p2, sizeof p1), "same seed and epoch, same order");
    EXPECT(memcmp(p1, p3, sizeof p1), "next epoch, new order");
    int cnt[9] = {0};
    for (int i = 0; i < 9; i++) cnt[p3[i]]++;
    for (int i = 0; i < 9; i++) EXPECT(cnt[i] == 1, "a permutation");
    free(tr); free(va); free(tr2); free(va2); free(tr3); free(va3);
    pairs_data_free(&d2);

    /* crops: centre crop of 8 from 12 starts at 2; random crops cover 0..4 */
    enum { C = 8 };
    int idx[3] = {5, 0, 11};
    float *img = xmalloc(3 * 3 * C * C * sizeof(float));
    uint8_t mask[3 * T];
    int32_t ids[3 * T];
    pairs_make_batch(&d, idx, 3, C, 0, 7, 0, 0, img, ids, mask);
    int ok = 1;
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < C; y++)
                for (int x = 0; x < C; x++) {
                    float want = ((float)pix(idx[k], y + 2, x + 2) / 255.0f - 0.5f) / 0.5f;
                    ok &= img[((k * 3 + c) * C + y) * C + x] == want;
                }
    EXPECT(ok, "centre crop at (2, 2), normalised, three equal channels");
    EXPECT(ids[T] == 100 && mask[T] == 1 && mask[T + 4] == 0 && ids[2 * T + 2] == 113, "tokens and mask");
    int hit[5][5] = {{0}}, in_range = 1;
    for (int pos = 0; pos < 400; pos++) {
        int top, left;
        pairs_crop_offset(&top, &left, S, C, 7, 3, pos);
        in_range &= top >= 0 && top <= 4 && left >= 0 && left <= 4;
        if (in_range) hit[top][left]++;
    }
    int all = in_range;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) all &= hit[y][x] > 0;
    EXPECT(all, "random crop offsets cover 0..4 both ways");
    pairs_make_batch(&d, idx, 3, C, 1, 7, 3, 10, img, ids, mask);
    int top, left;
    pairs_crop_offset(&top, &left, S, C, 7, 3, 11);
    ok = 1;
    for (int y = 0; y < C; y++)
        for (int x = 0; x < C; x++)
            ok &= img[((1 * 3 + 1) * C + y) * C + x] == ((float)pix(0, y + top, x + left) / 255.0f - 0.5f) / 0.5f;
    EXPECT(ok, "training crop of item 1 is the one drawn for position pos + 1");
    free(img);
    pairs_data_free(&d);
}

static void load_wrong_kind(void *arg) {
    (void)arg;
    char p[600];
    snprintf(p, sizeof p, "%s/lat.cxs", dir);
    write_shard(p, 0, 1, S, "latents");
    pairs_data d;
    char *paths[] = {p};
    pairs_data_load(&d, paths, 1, 1);
}

static void load_mixed_sizes(void *arg) {
    (void)arg;
    char p[600], q[600];
    snprintf(p, sizeof p, "%s/m1.cxs", dir);
    snprintf(q, sizeof q, "%s/m2.cxs", dir);
    write_shard(p, 0, 1, S, "pairs");
    write_shard(q, 1, 1, 16, "pairs");
    pairs_data d;
    char *paths[] = {p, q};
    pairs_data_load(&d, paths, 2, 1);
}

static void load_no_match(void *arg) {
    (void)arg;
    char p[600];
    snprintf(p, sizeof p, "%s/nothing-*.cxs", dir);
    pairs_data d;
    char *paths[] = {p};
    pairs_data_load(&d, paths, 1, 1);
}

static void test_bad_input(void) {
    expect_dies("wrong kind", load_wrong_kind, NULL, 2, "pairs");
    expect_dies("mixed sizes", load_mixed_sizes, NULL, 2, "differ");
    expect_dies("glob without match", load_no_match, NULL, 2, "no file matches");
}

int main(void) {
    RUN(test_load_split_shuffle);
    RUN(test_bad_input);
    return unit_done();
}
