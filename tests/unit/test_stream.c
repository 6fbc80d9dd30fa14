/* test_stream.c — the cxrstream reader and writer: a round trip of every dtype,
 * byte-identical pass-through of a stream (meta and unknown keys untouched),
 * a 200 MB stream read in bounded memory, the record helpers, and the error
 * paths (corrupt streams come from tests/helpers/mkstream, built beside us). */
#include "unit.h"
#include "stream.h"

#include <libgen.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
/* ASan keeps freed memory in a 256 MB quarantine by default, which would hide
 * what the bounded-memory test measures; a smaller one still catches reuse. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=8"; }
#endif

static char mkstream_path[4096];


/* Writes `mkstream name` into a temp file; returns its path (static buffer). */
static const char *mkstream_file(const char *name) {
    static char path[512];
    char cmd[5000];
    snprintf(path, sizeof path, "%s/%s.cxr", unit_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s'", mkstream_path, name, path);
    CHECKF(system(cmd) == 0, "%s failed", cmd);
    return path;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        cap = cap ? 2 * cap : 65536;
        buf = xrealloc(buf, cap);
        size_t n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0) break;
    }
    fclose(f);
    return buf;
}

static tensor *ramp(dtype_t dt, int ndim, const int64_t *shape, float scale, float offset) {
    tensor *src = tensor_new_f32(ndim, shape);
    float *p = src->data;
    for (int64_t i = 0; i < tensor_numel(src); i++) p[i] = (float)i * scale + offset;
    tensor *t = tensor_from_f32(src, dt);
    tensor_free(src);
    return t;
}

/* Writer -> file -> reader: ids, meta, every dtype's bytes and shape, header. */
static void test_roundtrip_all_dtypes(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.cxr", unit_tmpdir());
    dtype_t dts[DTYPE_COUNT] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_I64, DTYPE_U8};
    tensor *want[DTYPE_COUNT];
    for (int k = 0; k < DTYPE_COUNT; k++)
        want[k] = ramp(dts[k], 3, (int64_t[]){2, 3, 5}, k < 3 ? -0.375f : 3.0f, k == 5 ? 1 : -7);

    FILE *f = fopen(path, "wb");
    stream_writer *w = stream_writer_open(f, path);
    stream_header h;
    stream_header_init(&h, "latents", "test_stream 1");
    json_object_set_new(h.rec.meta, "model", json_string("tiny"));
    record_add_tensor(&h.rec, "uncond", tensor_clone(want[0]));
    stream_write_header(w, &h);
    json_t *meta = json_pack("{s:s, s:I, s:f, s:b, s:n, s:[i,{s:s}]}", "text", "Cardiomégalie ✓",
                             "seed", (json_int_t)-4611686018427387904LL, "guidance", 7.25, "ok", 1, "none",
                             "list", 3, "k", "v");
    for (int rec_i = 0; rec_i < 3; rec_i++) {
        char id[32];
        snprintf(id, sizeof id, "r%d", rec_i);
        record *r = record_new(id);
        json_object_update(r->meta, meta);
        for (int k = 0; k < DTYPE_COUNT; k++) {
            char name[16];
            snprintf(name, sizeof name, "t_%s", dtype_name(dts[k]));
            record_add_tensor(r, name, tensor_clone(want[k]));
        }
        stream_write_record(w, r);
        record_free(r);
    }
    stream_writer_close(w);
    fclose(f);

    f = fopen(path, "rb");
    stream_reader *rd = stream_reader_open(f, path);
    stream_expect_kind(rd, "latents");
    const stream_header *hh = stream_read_header(rd);
    EXPECT(hh && hh->version == 1 && !strcmp(hh->kind, "latents") && !strcmp(hh->producer, "test_stream 1"),
           "header");
    EXPECT(json_equal(hh->rec.meta, h.rec.meta), "header meta");
    tensor *u = record_require_tensor(&hh->rec, "uncond", DTYPE_F32, 3, (int64_t[]){2, 3, 5});
    EXPECT(!memcmp(u->data, want[0]->data, tensor_nbytes(want[0])), "header tensor bytes");
    stream_header_clear(&h);
    record rec;
    record_init(&rec);
    int n = 0;
    while (stream_read_record(rd, &rec)) {
        char id[32];
        snprintf(id, sizeof id, "r%d", n);
        EXPECT(!strcmp(rec.id, id) && rec.index == n + 1, "record %d: id %s index %ld", n, rec.id, rec.index);
        EXPECT(json_equal(rec.meta, meta), "record %d meta", n);
        EXPECT(rec.ntensors == DTYPE_COUNT, "record %d has %d tensors", n, rec.ntensors);
        for (int k = 0; k < DTYPE_COUNT && k < rec.ntensors; k++) {
            const tensor *t = rec.tensors[k].t;
            EXPECT(t->dtype == dts[k] && tensor_same_shape(t, 3, want[k]->shape), "tensor %d dtype/shape", k);
            EXPECT(!memcmp(t->data, want[k]->data, tensor_nbytes(want[k])), "tensor %s bytes", dtype_name(dts[k]));
            EXPECT(((uintptr_t)t->data & 63) == 0, "tensor data is 64-byte aligned");
        }
        n++;
    }
    EXPECT(n == 3 && stream_reader_count(rd) == 3, "read %d records", n);
    EXPECT(!stream_read_record(rd, &rec), "still at the end");
    record_clear(&rec);
    stream_reader_close(rd);
    fclose(f);
    json_decref(meta);
    for (int k = 0; k < DTYPE_COUNT; k++) tensor_free(want[k]);
}

/* Read a stream and write it back: the bytes are the same (meta untouched,
 * unknown keys passed on). Also reads through fread (a memory FILE has no fd). */
static void passthrough(const char *name) {
    size_t in_len, out_len = 0;
    char *in = slurp(mkstream_file(name), &in_len);
    FILE *src = fmemopen(in, in_len, "rb");
    char *out = NULL;
    FILE *dst = open_memstream(&out, &out_len);
    stream_reader *r = stream_reader_open(src, name);
    stream_writer *w = stream_writer_open(dst, "memory");
    const stream_header *h = stream_read_header(r);
    if (h) stream_write_header(w, h);
    record rec;
    record_init(&rec);
    while (stream_read_record(r, &rec)) stream_write_record(w, &rec);
    record_clear(&rec);
    stream_writer_close(w);
    stream_reader_close(r);
    fclose(dst);
    fclose(src);
    EXPECT(out_len == in_len && !memcmp(in, out, in_len), "%s: %zu bytes in, %zu out, or they differ", name,
           in_len, out_len);
    free(in);
    free(out);
}

static void test_passthrough_is_byte_identical(void) {
    passthrough("valid");
    passthrough("extra-key");
    passthrough("header-only");
    passthrough("empty");
}

/* A tool's output header carries the input's meta and unknown keys, not its tensors. */
static void test_header_derive(void) {
    const char *path = mkstream_file("valid");
    FILE *f = fopen(path, "rb");
    stream_reader *r = stream_reader_open(f, path);
    const stream_header *in = stream_read_header(r);
    stream_header out;
    stream_header_derive(&out, in, "latents", "denoise 9");
    EXPECT(!strcmp(out.kind, "latents") && !strcmp(out.producer, "denoise 9") && out.version == 1, "kind, producer");
    EXPECT(json_equal(out.rec.meta, in->rec.meta) && out.rec.meta != in->rec.meta, "meta copied");
    json_object_set_new(out.rec.meta, "steps", json_integer(50));
    EXPECT(!json_object_get(in->rec.meta, "steps"), "the copy is deep enough: the input is untouched");
    EXPECT(out.rec.ntensors == 0, "header tensors are not carried");
    stream_header_clear(&out);
    stream_reader_close(r);
    fclose(f);
    stream_header_derive(&out, NULL, "latents", "denoise 9");
    EXPECT(json_is_object(out.rec.meta) && json_object_size(out.rec.meta) == 0, "from empty input");
    stream_header_clear(&out);
}

/* Reads fd through the library; reports the growth of peak RSS in KiB on
 * `report`. 50 records of 4 MiB each (200 MiB) must not be held at once. */
enum { BIG_RECORDS = 50, BIG_ROWS = 1024, BIG_COLS = 1024 };

static void big_writer(int fd) {
    FILE *f = fdopen(fd, "wb");
    stream_writer *w = stream_writer_open(f, "pipe");
    stream_header h;
    stream_header_init(&h, "latents", "test_stream");
    stream_write_header(w, &h);
    stream_header_clear(&h);
    record *r = record_new("x");
    tensor *t = tensor_new_f32(2, (int64_t[]){BIG_ROWS, BIG_COLS});
    record_add_tensor(r, "big", t);
    for (int i = 0; i < BIG_RECORDS; i++) {
        char id[32];
        snprintf(id, sizeof id, "big%d", i);
        record_set_id(r, id);
        float *p = t->data;
        p[0] = (float)i;
        p[BIG_ROWS * BIG_COLS - 1] = (float)-i;
        stream_write_record(w, r);
    }
    record_free(r);
    stream_writer_close(w);
    fclose(f);
}

static void test_bounded_memory(void) {
    int rep[2];
    CHECK(pipe(rep) == 0);
    fflush(stdout);
    pid_t reader = fork();
    if (reader == 0) {
        close(rep[0]);
        int data[2];
        CHECK(pipe(data) == 0);
        pid_t writer = fork();
        if (writer == 0) {
            close(data[0]);
            big_writer(data[1]);
            _exit(0);
        }
        close(data[1]);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long before = ru.ru_maxrss;
        FILE *f = fdopen(data[0], "rb");
        stream_reader *r = stream_reader_open(f, "pipe");
        stream_expect_kind(r, "latents");
        record rec;
        record_init(&rec);
        long n = 0, bad = 0;
        while (stream_read_record(r, &rec)) {
            const float *p = record_require_tensor(&rec, "big", DTYPE_F32, 2, (int64_t[]){BIG_ROWS, BIG_COLS})->data;
            if (p[0] != (float)n || p[BIG_ROWS * BIG_COLS - 1] != (float)-n) bad++;
            n++;
        }
        record_clear(&rec);
        stream_reader_close(r);
        fclose(f);
        int ws;
        waitpid(writer, &ws, 0);
        getrusage(RUSAGE_SELF, &ru);
        long msg[3] = {n, bad, ru.ru_maxrss - before};
        if (write(rep[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
        _exit(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : 4);
    }
    close(rep[1]);
    long msg[3] = {0, 0, 0};
    ssize_t got = read(rep[0], msg, sizeof msg);
    close(rep[0]);
    int ws;
    waitpid(reader, &ws, 0);
    EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && got == (ssize_t)sizeof msg, "reader child failed (status %d)", ws);
    EXPECT(msg[0] == BIG_RECORDS && msg[1] == 0, "read %ld records, %ld with wrong values", msg[0], msg[1]);
    /* A record is 4 MiB; the reader holds the msgpack buffer (which doubles as
     * it grows) and the tensor copy: ~16 MiB. All 50 records would be 200 MiB. */
    long limit_kib = 40 * 1024;
    printf("# peak RSS growth reading %d x 4 MiB records: %ld KiB (limit %ld KiB)\n", BIG_RECORDS, msg[2],
           limit_kib);
    EXPECT(msg[2] < limit_kib, "peak RSS grew by %ld KiB reading a %d MiB stream", msg[2], BIG_RECORDS * 4);
}

/* ---- record helpers ------------------------------------------------------------ */

static void test_record_helpers(void) {
    record *r = record_new("p1");
    record_add_tensor(r, "a", tensor_new_f32(1, (int64_t[]){3}));
    record_add_tensor(r, "b", tensor_new(DTYPE_U8, 2, (int64_t[]){2, 2}));
    record_add_tensor(r, "a", tensor_new_f32(1, (int64_t[]){5})); /* replaces */
    EXPECT(r->ntensors == 2 && record_find_tensor(r, "a")->shape[0] == 5, "replace keeps one \"a\"");
    EXPECT(record_require_tensor(r, "b", DTYPE_U8, 2, (int64_t[]){-1, 2}) == record_find_tensor(r, "b"), "wildcard");
    EXPECT(record_require_tensor(r, "b", DTYPE_INVALID, -1, NULL) != NULL, "any dtype and shape");
    tensor *a = record_take_tensor(r, "a");
    EXPECT(a && a->shape[0] == 5 && r->ntensors == 1 && !record_find_tensor(r, "a"), "take");
    tensor_free(a);
    EXPECT(!record_take_tensor(r, "zz"), "take of a missing tensor");
    char buf[256];
    EXPECT(!strcmp(record_where(r, buf, sizeof buf), "record \"p1\""), "where: %s", buf);
    record_free(r);
}

static record *req_rec;
static void req_missing(void *arg) { (void)arg; record_require_tensor(req_rec, "cond", DTYPE_F32, -1, NULL); }
static void req_dtype(void *arg) { (void)arg; record_require_tensor(req_rec, "latents", DTYPE_F16, -1, NULL); }
static void req_shape(void *arg) {
    (void)arg;
    record_require_tensor(req_rec, "latents", DTYPE_F32, 3, (int64_t[]){4, -1, 64});
}

/* Errors about a record read from a stream name the stream, number and id. */
static void test_require_tensor_errors(void) {
    FILE *f = fopen(mkstream_file("valid"), "rb");
    stream_reader *r = stream_reader_open(f, "stdin");
    record rec;
    record_init(&rec);
    CHECK(stream_read_record(r, &rec) && stream_read_record(r, &rec)); /* the second: "p11_s6" */
    req_rec = &rec;
    expect_dies("missing", req_missing, NULL, 2, "stdin: record 2 (id \"p11_s6\"): missing tensor \"cond\" (it has: latents)");
    expect_dies("dtype", req_dtype, NULL, 2, "stdin: record 2 (id \"p11_s6\"): tensor \"latents\" is f32, expected f16");
    expect_dies("shape", req_shape, NULL, 2,
                "stdin: record 2 (id \"p11_s6\"): tensor \"latents\" has shape [4, 8, 8], expected [4, *, 64]");
    record_clear(&rec);
    stream_reader_close(r);
    fclose(f);
}

/* ---- reader errors ----------------------------------------------------------------- */

static const char *bad_path;
static const char *bad_kind;
static void read_all(void *arg) {
    (void)arg;
    FILE *f = fopen(bad_path, "rb");
    stream_reader *r = stream_reader_open(f, "stdin");
    if (bad_kind) stream_expect_kind(r, bad_kind);
    record rec;
    record_init(&rec);
    while (stream_read_record(r, &rec)) {}
    record_clear(&rec);
    stream_reader_close(r);
    fclose(f);
}

static void test_reader_errors(void) {
    struct { const char *name, *needle; } cases[] = {
        {"truncated-header", "stdin: header: truncated"},
        {"truncated-data", "stdin: record 3: truncated: the input ends"},
        {"not-msgpack", "stdin: record 1: not valid msgpack"},
        {"json", "stdin: not a cxrstream"},
        {"no-header", "stdin: header missing: the first map is a record (id \"p10_s5\")"},
        {"bad-magic", "stdin: header: magic is \"cxrstreem\""},
        {"version-2", "stdin: header: unsupported version 2"},
        {"unknown-dtype", "stdin: record 3 (id \"p3\"): tensor \"latents\": unknown dtype \"f8\""},
        {"size-mismatch",
         "stdin: record 3 (id \"p10_s5\"): tensor \"latents\": 16384 bytes of data, but shape [4, 64, 64] f32 needs 65536"},
        {"negative-shape", "shape entry 1 is -1 (negative)"},
        {"id-not-string", "stdin: record 3: \"id\" is a positive integer, not a string"},
        {"missing-id", "stdin: record 3: missing \"id\""},
        {"meta-not-map", "stdin: record 3 (id \"p3\"): \"meta\" is a string, not a map"},
        {"bin-in-meta", "meta.source.blob is msgpack bin"},
        {"second-header", "stdin: record 3: a second header"},
    };
    bad_kind = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bad_path = mkstream_file(cases[i].name);
        expect_dies(cases[i].name, read_all, NULL, 2, cases[i].needle);
    }
    bad_path = mkstream_file("latents");
    bad_kind = "conditioning";
    expect_dies("kind", read_all, NULL, 2,
                "stdin: expected a conditioning stream (from rep2lat), got latents (from mkstream " SYNTHCXR_VERSION ")");
    bad_path = mkstream_file("empty"); /* empty input has no kind to be wrong */
    expect_dies("empty input with a kind", read_all, NULL, 0, NULL);
    bad_kind = NULL;
}

/* ---- writer errors ------------------------------------------------------------------- */

static void write_to_full(void *arg) {
    (void)arg;
    FILE *f = fopen("/dev/full", "wb");
    CHECK(f);
    stream_writer *w = stream_writer_open(f, "stdout");
    stream_header h;
    stream_header_init(&h, "latents", NULL);
    stream_write_header(w, &h);
}
static void write_no_header(void *arg) {
    (void)arg;
    stream_writer *w = stream_writer_open(stdout, "stdout");
    record *r = record_new("a");
    stream_write_record(w, r);
}
static void write_no_id(void *arg) {
    (void)arg;
    FILE *f = fopen("/dev/null", "wb");
    stream_writer *w = stream_writer_open(f, "stdout");
    stream_header h;
    stream_header_init(&h, "latents", NULL);
    stream_write_header(w, &h);
    record *r = record_new(NULL);
    stream_write_record(w, r);
}

static void test_writer_errors(void) {
    expect_dies("disk full", write_to_full, NULL, 2, "stdout: write error: No space left on device");
    expect_dies("record before header", write_no_header, NULL, 2, "a record written before the header");
    expect_dies("record without id", write_no_id, NULL, 2, "stdout: record 1 has no id");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    /* build/<rel|san>/tests/unit/test_stream -> build/<rel|san>/tests/helpers/mkstream */
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(mkstream_path, sizeof mkstream_path, "%s/../helpers/mkstream", dirname(self));
    if (access(mkstream_path, X_OK) != 0) {
        printf("# %s is missing: build it with make tests\n", mkstream_path);
        printf("not ok 1 - mkstream helper\n1..1\n");
        return 1;
    }
    RUN(test_roundtrip_all_dtypes);
    RUN(test_passthrough_is_byte_identical);
    RUN(test_header_derive);
    RUN(test_bounded_memory);
    RUN(test_record_helpers);
    RUN(test_require_tensor_errors);
    RUN(test_reader_errors);
    RUN(test_writer_errors);
    return unit_done();
}
