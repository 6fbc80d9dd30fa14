/* test_safetensors.c — the safetensors reader on files written by the Python
 * safetensors package (tests/oracle), the atomic writer, and every header check. */
#include "unit.h"
#include "safetensors.h"

#include <sys/stat.h>


static void test_roundtrip_all_dtypes(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", unit_tmpdir());
    dtype_t dts[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_I64, DTYPE_U8};
    const char *names[6] = {"a.f32", "b.f16", "c.bf16", "d.i32", "e.i64", "f.u8"};
    tensor *ts[6];
    for (int k = 0; k < 6; k++) {
        tensor *src = tensor_new_f32(2, (int64_t[]){3, 5});
        float *p = src->data;
        for (int i = 0; i < 15; i++) p[i] = (float)(i * 3 - 7) * (k < 3 ? 0.25f : 1.0f) + (k == 5 ? 20 : 0);
        ts[k] = tensor_from_f32(src, dts[k]);
        tensor_free(src);
    }
    json_t *meta = json_pack("{s:s}", "format", "pt");
    st_write(path, 6, names, (const tensor *const *)ts, meta);
    json_decref(meta);
    st_file *f = st_open(path);
    EXPECT(f->n == 6, "n = %d", f->n);
    EXPECT(f->metadata && !strcmp(json_string_value(json_object_get(f->metadata, "format")), "pt"), "metadata");
    for (int k = 0; k < 6; k++) {
        tensor *back = st_load(f, names[k]);
        EXPECT(back->dtype == dts[k] && tensor_same_shape(back, 2, (int64_t[]){3, 5}), "%s", names[k]);
        EXPECT(!memcmp(back->data, ts[k]->data, tensor_nbytes(ts[k])), "%s bytes differ", names[k]);
        tensor_free(back);
        tensor_free(ts[k]);
    }
    st_close(f);
    /* No temporary file is left beside it. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q tmp", unit_tmpdir());
    EXPECT(system(cmd) != 0, "a temporary file was left in %s", unit_tmpdir());
}

/* The reference file from tests/oracle/make_fixtures.py: written by the Python
 * safetensors package with the values torch gave. */
static void test_reads_python_written(void) {
    st_file *f = st_open(fixture_path("safetensors_ref.safetensors"));
    const char *names[] = {"f32", "f16", "bf16", "i32", "i64", "u8", "f64", "i8", "i16", "bool"};
    tensor *want = st_load_f32(f, "expected_f32", -1, NULL);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char key[64];
        snprintf(key, sizeof key, "expected_%s", names[k]);
        tensor *exp = st_load_f32(f, key, -1, NULL);
        tensor *got = st_load_f32(f, names[k], 2, (int64_t[]){4, 6});
        expect_close(names[k], got->data, exp->data, (size_t)tensor_numel(exp), 0);
        tensor_free(exp);
        tensor_free(got);
    }
    tensor_free(want);
    EXPECT(st_find(f, "nope") == NULL, "st_find of a missing name");
    st_close(f);
}

static const char *bad_path;
static void open_bad(void *arg) { (void)arg; st_open(bad_path); }

static void write_raw(const char *path, const char *hdr, size_t data_len) {
    FILE *fp = fopen(path, "wb");
    CHECK(fp);
    uint64_t n = strlen(hdr);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    fwrite(le, 1, 8, fp);
    fwrite(hdr, 1, n, fp);
    for (size_t i = 0; i < data_len; i++) fputc(0, fp);
    fclose(fp);
}

static void test_bad_headers(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", unit_tmpdir());
    bad_path = path;
    struct { const char *hdr; size_t data; const char *needle; } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the 4 data bytes"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12"},
        {"{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape entry 0"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "needs dtype, shape and data_offsets"},
        {"{\"w\": [1, 2", 8, "not valid JSON"},
        {"[1]", 0, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(path, cases[i].hdr, cases[i].data);
        expect_dies(cases[i].hdr, open_bad, NULL, 2, cases[i].needle);
    }
    /* Header length past the end of the file. */
    FILE *fp = fopen(path, "wb");
    fwrite("\xff\x00\x00\x00\x00\x00\x00\x00{}", 1, 10, fp);
    fclose(fp);
    expect_dies("long header", open_bad, NULL, 2, "runs past the end");
    fp = fopen(path, "wb");
    fwrite("\x01\x00", 1, 2, fp);
    fclose(fp);
    expect_dies("short file", open_bad, NULL, 2, "too short");
    bad_path = "/nonexistent/x.safetensors";
    expect_dies("missing file", open_bad, NULL, 2, "cannot open /nonexistent/x.safetensors");
}

static st_file *shape_file;
static void load_wrong_shape(void *arg) { (void)arg; st_load_f32(shape_file, "w", 2, (int64_t[]){3, 2}); }
static void load_missing(void *arg) { (void)arg; st_load_f32(shape_file, "unet.conv_in.weight", -1, NULL); }

static void test_missing_and_misshaped(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/shape.safetensors", unit_tmpdir());
    tensor *w = tensor_new_f32(2, (int64_t[]){2, 3});
    const char *names[] = {"w"};
    st_write(path, 1, names, (const tensor *const *)&w, NULL);
    tensor_free(w);
    shape_file = st_open(path);
    expect_dies("wrong shape", load_wrong_shape, NULL, 2, "tensor \"w\" has shape [2, 3], expected [3, 2]");
    expect_dies("missing", load_missing, NULL, 2, "missing tensor \"unet.conv_in.weight\"");
    st_close(shape_file);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    RUN(test_roundtrip_all_dtypes);
    RUN(test_reads_python_written);
    RUN(test_bad_headers);
    RUN(test_missing_and_misshaped);
    return unit_done();
}
