/* mkstream — writes a test cxrstream, chosen by name, to stdout. Valid streams
 * come from the library writer; corrupt ones are packed by hand with msgpack-c
 * so that each carries exactly one fault. Used by tests/20-stream.bats and
 * tests/unit/test_stream.c.   Usage: mkstream NAME   (mkstream list: the names) */
#include "common.h"
#include "stream.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* ---- valid streams, through the writer -------------------------------------- */

static tensor *filled(dtype_t dt, int ndim, const int64_t *shape, double scale, double offset) {
    tensor *src = tensor_new_f32(ndim, shape);
    float *p = src->data;
    for (int64_t i = 0; i < tensor_numel(src); i++) p[i] = (float)(i * scale + offset);
    tensor *t = tensor_from_f32(src, dt);
    tensor_free(src);
    return t;
}

/* The reference valid stream: header tensors and nested meta, every dtype,
 * unicode text, a zero-size and a scalar tensor. The values are simple
 * formulas so that readers in other languages can check them. */
static void write_valid(FILE *f, const char *kind) {
    stream_writer *w = stream_writer_open(f, "stdout");
    stream_header h;
    stream_header_init(&h, kind, "mkstream " SYNTHCXR_VERSION);
    json_object_set_new(h.rec.meta, "model", json_string("tiny-sd"));
    json_object_set_new(h.rec.meta, "run", json_pack("{s:i, s:[s,s]}", "seed_base", 42, "tools", "rep2lat", "denoise"));
    record_add_tensor(&h.rec, "uncond", filled(DTYPE_F32, 2, (int64_t[]){2, 3}, 0.5, 0));
    stream_write_header(w, &h);
    stream_header_clear(&h);

    record *r = record_new("p10_s5");
    json_object_set_new(r->meta, "text", json_string("Small left pleural effusion — no pneumothorax. Épanchement ✓"));
    json_object_set_new(r->meta, "seed", json_integer(5));
    json_object_set_new(r->meta, "guidance", json_real(7.5));
    json_object_set_new(r->meta, "flags", json_pack("[b,b,n]", 1, 0));
    json_object_set_new(r->meta, "nested", json_pack("{s:{s:[i,i,f]}}", "a", "b", 1, -2, 3.25));
    record_add_tensor(r, "a_f32", filled(DTYPE_F32, 2, (int64_t[]){2, 3}, 0.25, -0.5));
    record_add_tensor(r, "b_f16", filled(DTYPE_F16, 1, (int64_t[]){4}, 1.5, -1));
    record_add_tensor(r, "c_bf16", filled(DTYPE_BF16, 2, (int64_t[]){2, 2}, 2, 0.5));
    record_add_tensor(r, "d_i32", filled(DTYPE_I32, 1, (int64_t[]){3}, -1000, 7));
    record_add_tensor(r, "e_i64", filled(DTYPE_I64, 1, (int64_t[]){2}, 3, -5));
    record_add_tensor(r, "f_u8", filled(DTYPE_U8, 1, (int64_t[]){5}, 60, 0));
    stream_write_record(w, r);
    record_free(r);

    r = record_new("p11_s6");
    record_add_tensor(r, "latents", filled(DTYPE_F32, 3, (int64_t[]){4, 8, 8}, 0.01, 0));
    stream_write_record(w, r);
    record_free(r);

    r = record_new("ünïcode-id");
    json_object_set_new(r->meta, "text", json_string("左肺 — ∅"));
    record_add_tensor(r, "empty", tensor_new(DTYPE_F32, 2, (int64_t[]){0, 3}));
    record_add_tensor(r, "s", filled(DTYPE_I64, 0, NULL, 0, 7));
    stream_write_record(w, r);
    record_free(r);
    stream_writer_close(w);
}

static void write_header_only(FILE *f) {
    stream_writer *w = stream_writer_open(f, "stdout");
    stream_header h;
    stream_header_init(&h, "latents", "mkstream " SYNTHCXR_VERSION);
    stream_write_header(w, &h);
    stream_header_clear(&h);
    stream_writer_close(w);
}

/* The valid stream cut after `frac` (per mille) of a byte range, or at an offset. */
static void write_truncated(const char *where) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    write_valid(m, "test");
    fclose(m);
    size_t cut;
    if (!strcmp(where, "header")) cut = 20;                 /* inside the header map */
    else if (!strcmp(where, "map")) cut = 0;                /* just after a record's map marker */
    else cut = len - 100;                                   /* inside the last record */
    if (!strcmp(where, "map")) {
        /* find the end of the header: re-read it with an unpacker */
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        CHECK(msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS);
        msgpack_unpacked_destroy(&u);
        cut = off + 1;
    }
    fwrite(buf, 1, cut, stdout);
    free(buf);
}

/* ---- corrupt streams, packed by hand ------------------------------------------ */

static msgpack_packer pk;

static int out_write(void *data, const char *buf, size_t len) {
    return len && fwrite(buf, 1, len, data) != len ? -1 : 0;
}

static void s(const char *str) {
    msgpack_pack_str(&pk, strlen(str));
    msgpack_pack_str_body(&pk, str, strlen(str));
}

static void header(const char *magic, int version, const char *kind) {
    msgpack_pack_map(&pk, 6);
    s("magic"), s(magic);
    s("version"), msgpack_pack_int(&pk, version);
    s("kind"), s(kind);
    s("producer"), s("mkstream");
    s("meta"), msgpack_pack_map(&pk, 0);
    s("tensors"), msgpack_pack_map(&pk, 0);
}

/* One tensor entry: name -> {dtype, shape, data of nbytes zero bytes}. */
static void tensor_entry(const char *name, const char *dtype, int ndim, const int64_t *shape, size_t nbytes) {
    s(name);
    msgpack_pack_map(&pk, 3);
    s("dtype"), s(dtype);
    s("shape"), msgpack_pack_array(&pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_int64(&pk, shape[i]);
    s("data"), msgpack_pack_bin(&pk, nbytes);
    char *zero = xcalloc(1, nbytes + 1);
    msgpack_pack_bin_body(&pk, zero, nbytes);
    free(zero);
}

/* A plain good record with one small f32 tensor. */
static void good_record(const char *id) {
    msgpack_pack_map(&pk, 3);
    s("id"), s(id);
    s("meta"), msgpack_pack_map(&pk, 1), s("text"), s("normal chest");
    s("tensors"), msgpack_pack_map(&pk, 1);
    tensor_entry("x", "f32", 1, (int64_t[]){2}, 8);
}

/* A record whose only tensor is described by (dtype, shape, nbytes). */
static void record_with(const char *id, const char *dtype, int ndim, const int64_t *shape, size_t nbytes) {
    msgpack_pack_map(&pk, 3);
    s("id"), s(id);
    s("meta"), msgpack_pack_map(&pk, 0);
    s("tensors"), msgpack_pack_map(&pk, 1);
    tensor_entry("latents", dtype, ndim, shape, nbytes);
}

static void good_start(void) {
    header(STREAM_MAGIC, 1, "latents");
    good_record("p1");
    good_record("p2");
}

static const char *names[] = {
    "valid", "empty", "header-only", "conditioning", "latents", "extra-key",
    "truncated-header", "truncated-map", "truncated-data", "not-msgpack", "text", "json",
    "no-header", "no-magic", "bad-magic", "version-2", "no-kind", "record-not-map", "second-header",
    "unknown-dtype", "size-mismatch", "negative-shape", "shape-not-int", "too-many-dims", "data-not-bin",
    "tensor-extra-key", "missing-id", "id-not-string", "empty-id", "duplicate-key", "meta-not-map",
    "bin-in-meta", "nan-in-meta", "deep-meta", "huge-map", NULL,
};

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc != 2) die_usage("usage: mkstream NAME (mkstream list prints the names)");
    const char *n = argv[1];
    msgpack_packer_init(&pk, stdout, out_write);
    if (!strcmp(n, "list")) {
        for (int i = 0; names[i]; i++) puts(names[i]);
    } else if (!strcmp(n, "valid")) {
        write_valid(stdout, "test");
    } else if (!strcmp(n, "conditioning") || !strcmp(n, "latents")) {
        write_valid(stdout, n);
    } else if (!strcmp(n, "empty")) {
        /* zero bytes */
    } else if (!strcmp(n, "header-only")) {
        write_header_only(stdout);
    } else if (!strcmp(n, "extra-key")) {
        /* A key version 1 does not define: kept, passed on, counted in the summary. */
        header(STREAM_MAGIC, 1, "latents");
        msgpack_pack_map(&pk, 4);
        s("id"), s("p1");
        s("meta"), msgpack_pack_map(&pk, 0);
        s("tensors"), msgpack_pack_map(&pk, 0);
        s("future"), msgpack_pack_array(&pk, 2), msgpack_pack_int(&pk, 1), msgpack_pack_bin(&pk, 2),
            msgpack_pack_bin_body(&pk, "ab", 2);
    } else if (!strncmp(n, "truncated-", 10)) {
        write_truncated(n + 10);
    } else if (!strcmp(n, "not-msgpack")) {
        header(STREAM_MAGIC, 1, "latents");
        fwrite("\xc1\x00\x01", 1, 3, stdout);                 /* 0xc1 is never used by msgpack */
    } else if (!strcmp(n, "text")) {
        fputs("hello, this is plain text\n", stdout);
    } else if (!strcmp(n, "json")) {
        fputs("{\"id\": \"p1\", \"text\": \"No acute findings.\"}\n", stdout);
    } else if (!strcmp(n, "no-header")) {
        good_record("p10_s5");
        good_record("p11_s6");
    } else if (!strcmp(n, "no-magic")) {
        msgpack_pack_map(&pk, 1), s("kind"), s("latents");
    } else if (!strcmp(n, "bad-magic")) {
        header("cxrstreem", 1, "latents");
    } else if (!strcmp(n, "version-2")) {
        header(STREAM_MAGIC, 2, "latents");
        good_record("p1");
    } else if (!strcmp(n, "no-kind")) {
        msgpack_pack_map(&pk, 2), s("magic"), s(STREAM_MAGIC), s("version"), msgpack_pack_int(&pk, 1);
    } else if (!strcmp(n, "record-not-map")) {
        good_start();
        msgpack_pack_array(&pk, 1), s("p3");
    } else if (!strcmp(n, "second-header")) {
        good_start();
        header(STREAM_MAGIC, 1, "latents");
        good_record("p3");
    } else if (!strcmp(n, "unknown-dtype")) {
        good_start();
        record_with("p3", "f8", 1, (int64_t[]){4}, 32);
    } else if (!strcmp(n, "size-mismatch")) {
        good_start();
        record_with("p10_s5", "f32", 3, (int64_t[]){4, 64, 64}, 16384);
    } else if (!strcmp(n, "negative-shape")) {
        good_start();
        record_with("p3", "f32", 2, (int64_t[]){4, -1}, 16);
    } else if (!strcmp(n, "shape-not-int")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("tensors"), msgpack_pack_map(&pk, 1);
        s("latents"), msgpack_pack_map(&pk, 3), s("dtype"), s("f32");
        s("shape"), msgpack_pack_array(&pk, 1), msgpack_pack_double(&pk, 2.5);
        s("data"), msgpack_pack_bin(&pk, 0);
    } else if (!strcmp(n, "too-many-dims")) {
        good_start();
        record_with("p3", "u8", 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 1);
    } else if (!strcmp(n, "data-not-bin")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("tensors"), msgpack_pack_map(&pk, 1);
        s("latents"), msgpack_pack_map(&pk, 3), s("dtype"), s("u8");
        s("shape"), msgpack_pack_array(&pk, 1), msgpack_pack_int(&pk, 4);
        s("data"), s("abcd");
    } else if (!strcmp(n, "tensor-extra-key")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("tensors"), msgpack_pack_map(&pk, 1);
        s("latents"), msgpack_pack_map(&pk, 4), s("dtype"), s("u8");
        s("shape"), msgpack_pack_array(&pk, 1), msgpack_pack_int(&pk, 1);
        s("data"), msgpack_pack_bin(&pk, 1), msgpack_pack_bin_body(&pk, "x", 1);
        s("order"), s("F");
    } else if (!strcmp(n, "missing-id")) {
        good_start();
        msgpack_pack_map(&pk, 1), s("meta"), msgpack_pack_map(&pk, 0);
    } else if (!strcmp(n, "id-not-string")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), msgpack_pack_int(&pk, 42), s("meta"), msgpack_pack_map(&pk, 0);
    } else if (!strcmp(n, "empty-id")) {
        good_start();
        msgpack_pack_map(&pk, 1), s("id"), s("");
    } else if (!strcmp(n, "duplicate-key")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("id"), s("p4");
    } else if (!strcmp(n, "meta-not-map")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("meta"), s("normal chest");
    } else if (!strcmp(n, "bin-in-meta")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("meta"), msgpack_pack_map(&pk, 1);
        s("source"), msgpack_pack_map(&pk, 2), s("file"), s("a.png"), s("blob"), msgpack_pack_bin(&pk, 3),
            msgpack_pack_bin_body(&pk, "\x89PN", 3);
    } else if (!strcmp(n, "nan-in-meta")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("meta"), msgpack_pack_map(&pk, 1);
        s("guidance"), msgpack_pack_double(&pk, NAN);
    } else if (!strcmp(n, "deep-meta")) {
        good_start();
        msgpack_pack_map(&pk, 2), s("id"), s("p3"), s("meta"), msgpack_pack_map(&pk, 1), s("d");
        for (int i = 0; i < 40; i++) msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
    } else if (!strcmp(n, "huge-map")) {
        /* declares 2^32-1 entries: must fail at once, not allocate 128 GB or wait */
        good_start();
        fwrite("\xdf\xff\xff\xff\xff", 1, 5, stdout);
    } else {
        die_usage("unknown stream name '%s' (mkstream list prints the names)", n);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) die("stdout: write error");
    return 0;
}
