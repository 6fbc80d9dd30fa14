/* pairs_data.c — pairs streams in memory, the validation split, per-epoch
 * shuffling and MGCA's crops (pairs_data.h). */
#include "pairs_data.h"

#include "common.h"
#include "json.h"
#include "stream.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t pairs_hash(uint64_t a, uint64_t b, uint64_t c)
{
    /* splitmix64 finaliser over a mix of the three words */
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^
                 (c + 0x8CB92BA72F3D8DD7ull) * 0x94D049BB133111EBull;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- loading ------------------------------------------------------------------ */

static void append_stream(pairs_data *d, FILE *f, const char *name, int *cap)
{
    stream_reader *r = stream_reader_open(f, name);
    const stream_header *h = stream_read_header(r);
    if (!h) { /* an empty input is a valid stream with no records */
        stream_reader_close(r);
        return;
    }
    stream_expect_kind(r, "pairs");
    int size = (int)json_get_int(h->rec.meta, "image_size", 256, name);
    int toks = (int)json_get_int(h->rec.meta, "max_tokens", 112, name);
    if (size < 8 || size > 4096 || toks < 2 || toks > 4096)
        die("%s: header image_size %d / max_tokens %d out of range", name, size, toks);
    if (d->image_size == 0) {
        d->image_size = size;
        d->max_tokens = toks;
        const char *v = json_get_str(h->rec.meta, "vocab", NULL, name);
        d->vocab = v ? xstrdup(v) : NULL;
        d->lowercase = json_has(h->rec.meta, "lowercase") ? json_get_bool(h->rec.meta, "lowercase", 0, name) : -1;
    } else if (size != d->image_size || toks != d->max_tokens) {
        die("%s: image_size %d and max_tokens %d differ from the first stream's %d and %d", name, size, toks,
            d->image_size, d->max_tokens);
    }
    size_t isz = (size_t)size * size;
    record rec;
    record_init(&rec);
    while (stream_read_record(r, &rec)) {
        tensor *im = record_require_tensor(&rec, "image", DTYPE_U8, 2, (int64_t[]){size, size});
        tensor *ids = record_require_tensor(&rec, "input_ids", DTYPE_I32, 1, (int64_t[]){toks});
        tensor *mk = record_require_tensor(&rec, "attention_mask", DTYPE_U8, 1, (int64_t[]){toks});
        if (d->n == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            d->images = xrealloc(d->images, (size_t)*cap * isz);
            d->input_ids = xrealloc(d->input_ids, (size_t)*cap * toks * sizeof(int32_t));
            d->attn_mask = xrealloc(d->attn_mask, (size_t)*cap * toks);
            d->ids = xrealloc(d->ids, (size_t)*cap * sizeof(char *));
        }
        const uint8_t *m = mk->data;
        char where[256];
        if (m[0] != 1) die("%s: attention_mask[0] is not 1 (no [CLS] token)", record_where(&rec, where, sizeof where));
        memcpy(d->images + (size_t)d->n * isz, im->data, isz);
        memcpy(d->input_ids + (size_t)d->n * toks, ids->data, (size_t)toks * sizeof(int32_t));
        memcpy(d->attn_mask + (size_t)d->n * toks, m, (size_t)toks);
        d->ids[d->n] = xstrdup(rec.id ? rec.id : "");
        d->n++;
        if (d->n % 1000 == 0) info("loaded %d pairs", d->n);
    }
    record_clear(&rec);
    stream_reader_close(r);
}

static void append_path(pairs_data *d, const char *path, int *cap)
{
    if (!strcmp(path, "-")) {
        append_stream(d, stdin, "stdin", cap);
        return;
    }
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    append_stream(d, f, path, cap);
    fclose(f);
}

void pairs_data_load(pairs_data *d, char *const *paths, int npaths, int quiet)
{
    memset(d, 0, sizeof *d);
    d->lowercase = -1;
    int cap = 0;
    int save_quiet = common_quiet;
    if (quiet) common_quiet = 1;
    if (npaths == 0) append_path(d, "-", &cap);
    for (int i = 0; i < npaths; i++) {
        if (strpbrk(paths[i], "*?[")) {
            glob_t g;
            int rc = glob(paths[i], 0, NULL, &g);
            if (rc == GLOB_NOMATCH) die("%s: no file matches", paths[i]);
            if (rc != 0) die("%s: cannot expand the pattern", paths[i]);
            for (size_t k = 0; k < g.gl_pathc; k++) append_path(d, g.gl_pathv[k], &cap);
            globfree(&g);
        } else {
            append_path(d, paths[i], &cap);
        }
    }
    common_quiet = save_quiet;
    if (d->n == 0) die("no image-report pairs in the input (%d stream%s read)", npaths ? npaths : 1,
                       npaths == 1 || npaths == 0 ? "" : "s");
}

void pairs_data_free(pairs_data *d)
{
    for (int i = 0; i < d->n; i++) free(d->ids[i]);
    free(d->ids);
    free(d->images);
    free(d->input_ids);
    free(d->attn_mask);
    free(d->vocab);
    memset(d, 0, sizeof *d);
}

/* ---- split and order ----------------------------------------------------------- */

typedef struct { uint64_t h; int i; } keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x->i - y->i;
}

static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void pairs_split(const pairs_data *d, double fraction, uint64_t seed, int **train, int *ntrain, int **val,
                 int *nval)
{
    int n = d->n;
    int nv = (int)llround(fraction * n);
    if (fraction > 0 && n >= 2) {
        if (nv < 1) nv = 1;
        if (nv > n - 1) nv = n - 1;
    }
    if (fraction <= 0) nv = 0;
    keyed *k = xmalloc((size_t)(n ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) k[i] = (keyed){pairs_hash(seed, str_hash(d->ids[i]), 0x5A11D), i};
    qsort(k, (size_t)n, sizeof *k, keyed_cmp);
    *val = xmalloc((size_t)(nv ? nv : 1) * sizeof(int));
    *train = xmalloc((size_t)(n - nv ? n - nv : 1) * sizeof(int));
    for (int i = 0; i < nv; i++) (*val)[i] = k[i].i;
    for (int i = nv; i < n; i++) (*train)[i - nv] = k[i].i;
    qsort(*val, (size_t)nv, sizeof(int), int_cmp);
    qsort(*train, (size_t)(n - nv), sizeof(int), int_cmp);
    *nval = nv;
    *ntrain = n - nv;
    free(k);
}

void pairs_epoch_order(int *perm, int n, uint64_t seed, int64_t epoch)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        uint64_t r = pairs_hash(seed, (uint64_t)epoch, 0x5EED0000ull + (uint64_t)i);
        int j = (int)(r % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- batches ------------------------------------------------------------------- */

void pairs_crop_offset(int *top, int *left, int image_size, int crop, uint64_t seed, int64_t epoch, int64_t pos)
{
    uint64_t span = (uint64_t)(image_size - crop + 1);
    uint64_t r = pairs_hash(seed ^ 0xC209ull, (uint64_t)epoch, (uint64_t)pos);
    *top = (int)((r >> 32) % span);
    *left = (int)((r & 0xffffffffu) % span);
}

void pairs_make_batch(const pairs_data *d, const int *idx, int b, int crop, int train, uint64_t seed,
                      int64_t epoch, int64_t pos, float *images, int32_t *input_ids, uint8_t *attn_mask)
{
    int s = d->image_size, t = d->max_tokens;
    CHECKF(crop >= 1 && crop <= s, "crop %d of a %d image", crop, s);
    size_t plane = (size_t)crop * crop;
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < b; k++) {
        int i = idx[k], top, left;
        if (train) {
            pairs_crop_offset(&top, &left, s, crop, seed, epoch, pos + k);
        } else {
            /* torchvision CenterCrop: int(round((s - crop) / 2.0)) */
            top = left = (int)lround((s - crop) / 2.0);
        }
        const uint8_t *src = d->images + (size_t)i * s * s;
        float *dst = images + (size_t)k * 3 * plane;
        for (int y = 0; y < crop; y++)
            for (int x = 0; x < crop; x++) {
                /* ToTensor (x / 255), then Normalize(0.5, 0.5): (x - 0.5) / 0.5, in float as torch */
                float v = (float)src[(size_t)(top + y) * s + left + x] / 255.0f;
                dst[(size_t)y * crop + x] = (v - 0.5f) / 0.5f;
            }
        memcpy(dst + plane, dst, plane * sizeof(float));
        memcpy(dst + 2 * plane, dst, plane * sizeof(float));
        memcpy(input_ids + (size_t)k * t, d->input_ids + (size_t)i * t, (size_t)t * sizeof(int32_t));
        for (int j = 0; j < t; j++) attn_mask[(size_t)k * t + j] = d->attn_mask[(size_t)i * t + j] ? 1 : 0;
    }
}
