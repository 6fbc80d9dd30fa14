/* cmplat — compares the "latents" of a latents stream (denoise's output)
 * with a reference, for tests/50-denoise.bats:
 *   cmplat STREAM FIXTURE.safetensors NAME TOL   NAME: [N, C, H, W], record i vs row i
 *   cmplat STREAM OTHER_STREAM TOL               record by record
 * Passes (exit 0) when every record's max |a - b| <= TOL and the counts and
 * shapes agree; prints "max abs error E over N records" either way (exit 1
 * on a mismatch). */
#include "common.h"
#include "safetensors.h"
#include "stream.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static stream_reader *open_stream(const char *path, FILE **f) {
    *f = fopen(path, "rb");
    if (!*f) die("%s: cannot open", path);
    return stream_reader_open(*f, path);
}

static double max_err(const tensor *a, const float *b) {
    double e = 0;
    const float *pa = a->data;
    for (int64_t i = 0; i < tensor_numel(a); i++) {
        double d = fabs((double)pa[i] - b[i]);
        if (!(d <= e)) e = d; /* NaN wins */
    }
    return e;
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc != 4 && argc != 5) die_usage("cmplat STREAM FIXTURE NAME TOL | cmplat STREAM STREAM TOL");
    double tol = atof(argv[argc - 1]), worst = 0;
    FILE *fa, *fb = NULL;
    stream_reader *a = open_stream(argv[1], &fa), *b = NULL;
    st_file *st = NULL;
    tensor *ref = NULL;
    if (argc == 5) {
        st = st_open(argv[2]);
        ref = st_load_f32(st, argv[3], -1, NULL);
        if (ref->ndim != 4) die("%s: %s is not [N, C, H, W]", argv[2], argv[3]);
    } else {
        b = open_stream(argv[2], &fb);
    }
    record ra, rb;
    record_init(&ra);
    record_init(&rb);
    long n = 0;
    int bad = 0;
    while (stream_read_record(a, &ra)) {
        tensor *la = record_require_tensor(&ra, "latents", DTYPE_F32, 3, NULL);
        const float *want;
        if (ref) {
            if (n >= ref->shape[0] || tensor_numel(la) != ref->shape[1] * ref->shape[2] * ref->shape[3])
                die("record %ld does not fit %s", n + 1, argv[3]);
            want = (const float *)ref->data + n * tensor_numel(la);
        } else {
            if (!stream_read_record(b, &rb)) die("%s has fewer records", argv[2]);
            tensor *lb = record_require_tensor(&rb, "latents", DTYPE_F32, 3, la->shape);
            want = lb->data;
        }
        double e = max_err(la, want);
        if (!(e <= tol)) bad = 1;
        if (!(e <= worst)) worst = e;
        n++;
    }
    if (ref && n != ref->shape[0]) bad = 1, fprintf(stderr, "cmplat: %ld records, reference has %lld\n", n,
                                                  (long long)ref->shape[0]);
    if (b && stream_read_record(b, &rb)) bad = 1, fprintf(stderr, "cmplat: %s has more records\n", argv[2]);
    printf("max abs error %.3g over %ld records (tolerance %g)\n", worst, n, tol);
    record_clear(&ra);
    record_clear(&rb);
    tensor_free(ref);
    if (st) st_close(st);
    stream_reader_close(a);
    fclose(fa);
    if (b) stream_reader_close(b), fclose(fb);
    return bad;
}
