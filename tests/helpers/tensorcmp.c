/* tensorcmp — compares tensors of a cxrstream (stdin) with the reference
 * tensors of a safetensors fixture that PyTorch wrote. Used by
 * tests/40-rep2lat.bats to check rep2lat's output against transformers and
 * diffusers.
 *   tensorcmp [--tol T] [--head N] FIXTURE TENSOR KEY
 * TENSOR is the stream tensor's name; "header:NAME" takes it from the header
 * (then KEY is a plain fixture name). For records KEY may hold {id} and
 * {seed} (meta.seed), e.g. "sd1.report.{id}" or "latents.s{seed}.512.head".
 * --head N compares the first N values only (the fixture holds N). With
 * --tol 0 (the default) values must be equal bit for bit; otherwise
 * max |got - want| <= T. Prints one line per tensor compared ("id: max abs
 * error E over N values") and exits 1 on any mismatch or missing reference,
 * or when nothing was compared. */
#include "common.h"
#include "safetensors.h"
#include "stream.h"

#include <math.h>
#include <string.h>

static char *expand(const char *key, const record *rec) {
    char *out = xstrdup("");
    for (const char *p = key; *p;) {
        char *piece;
        if (!strncmp(p, "{id}", 4)) {
            piece = xstrdup(rec->id ? rec->id : "");
            p += 4;
        } else if (!strncmp(p, "{seed}", 6)) {
            json_t *s = rec->meta ? json_object_get(rec->meta, "seed") : NULL;
            if (!json_is_integer(s)) die("%s: no integer meta.seed", rec->id ? rec->id : "header");
            piece = xasprintf("%lld", (long long)json_integer_value(s));
            p += 6;
        } else {
            piece = xasprintf("%c", *p++);
        }
        char *t = xasprintf("%s%s", out, piece);
        free(out), free(piece);
        out = t;
    }
    return out;
}

/* 0 when equal within tol (bitwise for tol 0). */
static int compare(const char *what, const tensor *got, const st_file *f, const char *key, long head, double tol) {
    if (got->dtype != DTYPE_F32) die("%s: tensor is %s, not f32", what, dtype_name(got->dtype));
    const st_entry *e = st_find(f, key);
    if (!e) {
        printf("%s: no reference \"%s\" in %s\n", what, key, f->path);
        return 1;
    }
    tensor *want = st_load_f32(f, key, -1, NULL);
    int64_t n = head > 0 ? head : tensor_numel(got);
    if (tensor_numel(want) != n || tensor_numel(got) < n) {
        printf("%s: %lld values, reference \"%s\" has %lld\n", what, (long long)tensor_numel(got), key,
               (long long)tensor_numel(want));
        tensor_free(want);
        return 1;
    }
    const float *g = got->data, *w = want->data;
    double err = 0;
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - w[i]);
        if (!(d <= err)) err = d;
        if (memcmp(&g[i], &w[i], sizeof(float))) differ++;
    }
    int bad = tol == 0 ? differ != 0 : !(err <= tol);
    printf("%s: max abs error %.3g over %lld values (%lld not bit-equal)%s\n", what, err, (long long)n,
           (long long)differ, bad ? " FAIL" : "");
    tensor_free(want);
    return bad;
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    double tol = 0;
    long head = 0;
    int a = 1;
    for (; a < argc && !strncmp(argv[a], "--", 2); a += 2) {
        if (a + 1 >= argc) die_usage("%s needs a value", argv[a]);
        if (!strcmp(argv[a], "--tol")) tol = parse_double("--tol", argv[a + 1], 0, 1);
        else if (!strcmp(argv[a], "--head")) head = parse_long("--head", argv[a + 1], 1, 1L << 40);
        else die_usage("unknown option %s", argv[a]);
    }
    if (argc - a != 3) die_usage("usage: tensorcmp [--tol T] [--head N] FIXTURE TENSOR KEY");
    st_file *f = st_open(argv[a]);
    const char *name = argv[a + 1], *key = argv[a + 2];
    int header = !strncmp(name, "header:", 7);
    if (header) name += 7;
    stream_reader *r = stream_reader_open(stdin, "stdin");
    int bad = 0, compared = 0;
    if (header) {
        const stream_header *h = stream_read_header(r);
        if (!h) die("stdin: empty stream");
        tensor *t = record_find_tensor(&h->rec, name);
        if (!t) die("stdin: the header has no tensor \"%s\"", name);
        bad |= compare("header", t, f, key, head, tol), compared++;
    } else {
        record rec;
        record_init(&rec);
        while (stream_read_record(r, &rec)) {
            tensor *t = record_find_tensor(&rec, name);
            if (!t) die("stdin: record %s has no tensor \"%s\"", rec.id, name);
            char *k = expand(key, &rec);
            bad |= compare(rec.id, t, f, k, head, tol), compared++;
            free(k);
        }
        record_clear(&rec);
    }
    stream_reader_close(r);
    st_close(f);
    if (!compared) {
        printf("nothing compared\n");
        return 1;
    }
    return bad;
}
