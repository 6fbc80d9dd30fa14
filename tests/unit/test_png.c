/* test_png.c — the PNG reader against Pillow's decoding of files Pillow (or a
 * minimal encoder in tests/oracle/make_images.py) wrote: 8/16-bit grey and RGB,
 * RGBA, grey+alpha, palette (with tRNS), 1-bit, Adam7; their text chunks; the
 * writer by round trip through that reader plus pngcheck's structural check;
 * and every bad file a reader meets (not a PNG, truncated anywhere, CRC and
 * zlib damage) as a clear error. */
#include "unit.h"
#include "json.h"
#include "png_io.h"

#include <sys/stat.h>

static const char *img(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "images/%s", name);
    return fixture_path(rel);
}

/* Pixels as read must equal Pillow's exactly (PNG is lossless). */
static void check_against_pillow(const st_file *ref, const char *name, int want_c, int want_depth) {
    pngio_image *im = pngio_read(img(name));
    tensor *want = st_load(ref, name);
    const tensor *got = im->pixels;
    EXPECT(got->ndim == 3 && got->shape[0] == 7 && got->shape[1] == 13 && got->shape[2] == want_c,
           "%s: shape [%lld, %lld, %lld]", name, (long long)got->shape[0], (long long)got->shape[1],
           (long long)got->shape[2]);
    EXPECT(im->bit_depth == want_depth, "%s: bit depth %d, want %d", name, im->bit_depth, want_depth);
    EXPECT(got->dtype == want->dtype, "%s: dtype %s, Pillow's %s", name, dtype_name(got->dtype),
           dtype_name(want->dtype));
    if (got->dtype == want->dtype && tensor_numel(got) == tensor_numel(want)) {
        size_t n = (size_t)tensor_numel(got), bad = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            long a = got->dtype == DTYPE_U8 ? ((uint8_t *)got->data)[i] : ((int32_t *)got->data)[i];
            long b = got->dtype == DTYPE_U8 ? ((uint8_t *)want->data)[i] : ((int32_t *)want->data)[i];
            if (a != b && bad++ == 0) first = i;
        }
        EXPECT(bad == 0, "%s: %zu of %zu samples differ from Pillow's, the first at %zu", name, bad, n, first);
    } else {
        EXPECT(0, "%s: %lld values, Pillow %lld", name, (long long)tensor_numel(got), (long long)tensor_numel(want));
    }
    tensor_free(want);
    pngio_image_free(im);
}

static void test_reads_pillow(void) {
    st_file *ref = st_open(img("images.safetensors"));
    check_against_pillow(ref, "grey8.png", 1, 8);
    check_against_pillow(ref, "grey16.png", 1, 16);
    check_against_pillow(ref, "rgb8.png", 3, 8);
    check_against_pillow(ref, "rgb16.png", 3, 16);
    check_against_pillow(ref, "rgba8.png", 3, 8);
    check_against_pillow(ref, "la8.png", 1, 8);
    check_against_pillow(ref, "palette.png", 3, 8);
    check_against_pillow(ref, "palette_trns.png", 3, 8);
    check_against_pillow(ref, "bilevel.png", 1, 8);
    check_against_pillow(ref, "grey8_adam7.png", 1, 8);
    check_against_pillow(ref, "rgb8_adam7.png", 3, 8);
    st_close(ref);
}

/* tEXt (ASCII and Latin-1), zTXt and iTXt, as Pillow reads them. */
static void test_reads_text(void) {
    st_file *ref = st_open(img("images.safetensors"));
    const char *files[] = {"grey8.png", "rgb8.png"};
    for (int k = 0; k < 2; k++) {
        json_t *m = json_object_get(ref->metadata, files[k]);
        json_error_t err;
        json_t *want = m ? json_loads(json_string_value(m), 0, &err) : NULL;
        EXPECT(want && json_is_array(want), "%s: no text list in the fixture metadata", files[k]);
        if (!want) continue;
        pngio_image *im = pngio_read(img(files[k]));
        EXPECT(im->n_text == (int)json_array_size(want), "%s: %d text chunks, Pillow %zu", files[k], im->n_text,
               json_array_size(want));
        for (int i = 0; i < im->n_text && i < (int)json_array_size(want); i++) {
            const char *wk = json_string_value(json_array_get(json_array_get(want, i), 0));
            const char *wv = json_string_value(json_array_get(json_array_get(want, i), 1));
            EXPECT(!strcmp(im->text[i].key, wk), "%s: key %d is \"%s\", want \"%s\"", files[k], i, im->text[i].key, wk);
            EXPECT(!strcmp(im->text[i].value, wv), "%s: %s = \"%s\", want \"%s\"", files[k], wk, im->text[i].value, wv);
        }
        EXPECT(pngio_text_get(im, "seed") && !strcmp(pngio_text_get(im, "seed"), "1234"), "seed");
        EXPECT(!strcmp(pngio_text_get(im, "Comment"), "caf\xc3\xa9"), "Latin-1 tEXt as UTF-8");
        EXPECT(pngio_text_get(im, "nope") == NULL, "missing key");
        pngio_image_free(im);
        json_decref(want);
    }
    st_close(ref);
}

/* pngcheck (Debian package pngcheck) validates chunks, CRCs and the zlib
 * stream independently of libpng; -t prints the text chunks. Returns its output. */
static int pngcheck_available(void) { return system("command -v pngcheck >/dev/null 2>&1") == 0; }
static char *pngcheck(const char *path, int *status) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "pngcheck -t '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    char *out = xcalloc(1, 65536);
    size_t n = fread(out, 1, 65535, p);
    out[n] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static const pngio_text wtext[] = {
    {"report", "Mild cardiomegaly.\nNo effusion."},
    {"seed", "42"},
    {"model", "roentgen"},
    {"note", "\xce\xb1-version \xe2\x80\x93 UTF-8"}, /* not ASCII: goes to iTXt */
};
#define N_WTEXT 4

static void check_written(const char *path, int c, int depth, const void *pix, int h, int w) {
    pngio_image *im = pngio_read(path);
    EXPECT(im->bit_depth == depth && tensor_same_shape(im->pixels, 3, (int64_t[]){h, w, c}), "%s: shape/depth", path);
    size_t n = (size_t)h * w * c, bad = 0;
    for (size_t i = 0; i < n && im->pixels->dtype == (depth == 8 ? DTYPE_U8 : DTYPE_I32); i++) {
        long a = depth == 8 ? ((uint8_t *)im->pixels->data)[i] : ((int32_t *)im->pixels->data)[i];
        long b = depth == 8 ? ((const uint8_t *)pix)[i] : ((const uint16_t *)pix)[i];
        bad += a != b;
    }
    EXPECT(bad == 0, "%s: %zu of %zu samples changed in the round trip", path, bad, n);
    EXPECT(im->n_text == N_WTEXT, "%s: %d text chunks", path, im->n_text);
    for (int i = 0; i < N_WTEXT && i < im->n_text; i++)
        EXPECT(!strcmp(im->text[i].key, wtext[i].key) && !strcmp(im->text[i].value, wtext[i].value),
               "%s: text %d is %s=%s", path, i, im->text[i].key, im->text[i].value);
    pngio_image_free(im);
    if (pngcheck_available()) {
        int status;
        char *out = pngcheck(path, &status);
        EXPECT(status == 0 && strstr(out, "OK:"), "%s: pngcheck says (%d): %s", path, status, out);
        char want[64];
        snprintf(want, sizeof want, "(%dx%d, %d-bit %s,", w, h, depth * c, c == 1 ? "grayscale" : "RGB");
        EXPECT(strstr(out, want), "%s: pngcheck lacks \"%s\": %s", path, want, out);
        EXPECT(strstr(out, "report:\n    Mild cardiomegaly.\n    No effusion.") && strstr(out, "seed:\n    42") &&
                   strstr(out, "note:\n    (no translated keyword, 21 bytes of UTF-8 text)"),
               "%s: pngcheck does not list the text chunks: %s", path, out);
        free(out);
    }
}

static void test_write_roundtrip(void) {
    const int h = 7, w = 13;
    uint8_t p8[7 * 13 * 3];
    uint16_t p16[7 * 13 * 3];
    for (int i = 0; i < h * w * 3; i++) {
        p8[i] = (uint8_t)(i * 37 + 11);
        p16[i] = (uint16_t)(i * 4099 + 255); /* both bytes vary: catches a byte-order slip */
    }
    p16[0] = 0, p16[1] = 65535, p16[2] = 1;
    char path[512];
    for (int c = 1; c <= 3; c += 2) {
        snprintf(path, sizeof path, "%s/w8_%d.png", unit_tmpdir(), c);
        pngio_write_u8(path, p8, h, w, c, wtext, N_WTEXT);
        check_written(path, c, 8, p8, h, w);
        snprintf(path, sizeof path, "%s/w16_%d.png", unit_tmpdir(), c);
        pngio_write_u16(path, p16, h, w, c, wtext, N_WTEXT);
        check_written(path, c, 16, p16, h, w);
    }
    /* Overwriting an existing file replaces it; no temporary file is left. */
    snprintf(path, sizeof path, "%s/w8_1.png", unit_tmpdir());
    pngio_write_u8(path, p8 + 1, h, w, 1, wtext, N_WTEXT);
    check_written(path, 1, 8, p8 + 1, h, w);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q tmp", unit_tmpdir());
    EXPECT(system(cmd) != 0, "a temporary file was left in %s", unit_tmpdir());
    /* No text at all is fine too. */
    snprintf(path, sizeof path, "%s/plain.png", unit_tmpdir());
    pngio_write_u8(path, p8, 1, 1, 1, NULL, 0);
    pngio_image *im = pngio_read(path);
    EXPECT(im->n_text == 0 && ((uint8_t *)im->pixels->data)[0] == p8[0], "1x1 without text");
    pngio_image_free(im);
    if (!pngcheck_available()) unit_fail("pngcheck is not installed (Debian package pngcheck; make deps)");
}

/* f32 [c,h,w] in [0,1]: clamped, scaled, rounded half to even, reordered to [h,w,c]. */
static void test_write_f32(void) {
    const int c = 3, h = 2, w = 3;
    float x[3 * 2 * 3];
    for (int i = 0; i < c * h * w; i++) x[i] = (float)i / 17.0f;
    x[0] = -0.5f, x[1] = 1.5f, x[2] = NAN, x[3] = 0.5f / 255.0f, x[4] = 1.5f / 255.0f, x[5] = 1.0f;
    char path[512];
    for (int depth = 8; depth <= 16; depth += 8) {
        snprintf(path, sizeof path, "%s/f32_%d.png", unit_tmpdir(), depth);
        pngio_write_f32(path, x, c, h, w, depth, wtext, 1);
        pngio_image *im = pngio_read(path);
        EXPECT(tensor_same_shape(im->pixels, 3, (int64_t[]){h, w, c}) && im->bit_depth == depth, "f32 shape");
        double maxv = depth == 8 ? 255 : 65535;
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h * w; i++) {
                double v = x[ch * h * w + i];
                v = isnan(v) ? 0 : v < 0 ? 0 : v > 1 ? 1 : v;
                double want = nearbyint((double)(float)(v * maxv));
                long got = depth == 8 ? ((uint8_t *)im->pixels->data)[i * c + ch]
                                      : ((int32_t *)im->pixels->data)[i * c + ch];
                EXPECT(got == (long)want, "depth %d channel %d pixel %d: %ld, want %.0f", depth, ch, i, got, want);
            }
        if (depth == 8) {
            const uint8_t *p = im->pixels->data;
            /* The ties: 0.5 -> 0 and 1.5 -> 2, as numpy's round does. */
            EXPECT(p[0] == 0 && p[3] == 255 && p[6] == 0 && p[9] == 0 && p[12] == 2 && p[15] == 255,
                   "clamp/NaN/ties: %d %d %d %d %d %d", p[0], p[3], p[6], p[9], p[12], p[15]);
        }
        /* And back to f32 [c, h, w]. */
        tensor *f = pngio_to_f32_chw(im->pixels, im->bit_depth);
        EXPECT(tensor_same_shape(f, 3, (int64_t[]){c, h, w}), "to_f32 shape");
        const float *fv = f->data;
        EXPECT(fv[1] == 1.0f && fv[0] == 0.0f && fabsf(fv[7] - x[7]) <= 0.5f / (float)maxv + 1e-7f, "to_f32 values");
        tensor_free(f);
        pngio_image_free(im);
    }
}

/* ---- bad input ---------------------------------------------------------- */

static const char *bad_path;
static void read_bad(void *arg) {
    (void)arg;
    pngio_image *im = pngio_read(bad_path);
    pngio_image_free(im);
}

static uint32_t crc32_png(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

/* Offset of the first chunk of this type (its length field), or 0. */
static size_t find_chunk(const unsigned char *b, size_t n, const char *type) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 | (uint32_t)b[off + 2] << 8 | b[off + 3];
        if (!memcmp(b + off + 4, type, 4)) return off;
        off += 12 + len;
    }
    return 0;
}

static void fix_crc(unsigned char *b, size_t off) {
    uint32_t len = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 | (uint32_t)b[off + 2] << 8 | b[off + 3];
    uint32_t c = crc32_png(b + off + 4, 4 + len);
    unsigned char *q = b + off + 8 + len;
    q[0] = (unsigned char)(c >> 24), q[1] = (unsigned char)(c >> 16), q[2] = (unsigned char)(c >> 8),
    q[3] = (unsigned char)c;
}

static void test_bad_files(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/bad.png", unit_tmpdir());
    bad_path = path;
    size_t n;
    unsigned char *good = unit_slurp(img("rgb8.png"), &n);
    unsigned char *b = xmalloc(n);

    unit_spit(path, "", 0);
    expect_dies("empty file", read_bad, NULL, 2, "bad.png: not a PNG file");
    unit_spit(path, "hello, world\n", 13);
    expect_dies("text file", read_bad, NULL, 2, "bad.png: not a PNG file");
    size_t jn;
    unsigned char *jpg = unit_slurp(img("grey.jpg"), &jn);
    unit_spit(path, jpg, jn);
    expect_dies("a JPEG", read_bad, NULL, 2, "bad.png: not a PNG file");
    free(jpg);
    bad_path = "/nonexistent/x.png";
    expect_dies("missing file", read_bad, NULL, 2, "cannot open /nonexistent/x.png");
    bad_path = path;

    /* Cut anywhere: always "truncated", never a crash or a partial image. */
    int cut_ok = 1;
    for (size_t len = 1; len < n && cut_ok; len += (len < 64 ? 1 : 7)) {
        unit_spit(path, good, len);
        char what[64];
        snprintf(what, sizeof what, "cut at %zu of %zu bytes", len, n);
        cut_ok = expect_dies(what, read_bad, NULL, 2, "bad.png: truncated PNG file");
    }

    /* A damaged CRC of IDAT: libpng's CRC check. */
    size_t idat = find_chunk(good, n, "IDAT");
    CHECK(idat);
    uint32_t idat_len = (uint32_t)good[idat] << 24 | (uint32_t)good[idat + 1] << 16 | (uint32_t)good[idat + 2] << 8 |
                        good[idat + 3];
    memcpy(b, good, n);
    b[idat + 8 + idat_len] ^= 0x55;
    unit_spit(path, b, n);
    expect_dies("IDAT CRC", read_bad, NULL, 2, "bad.png: corrupt PNG file: IDAT: CRC error");
    /* Damaged data (zlib notices before the CRC is read), then with a valid CRC. */
    memcpy(b, good, n);
    b[idat + 8 + 5] ^= 0x55;
    unit_spit(path, b, n);
    expect_dies("IDAT data", read_bad, NULL, 2, "bad.png: corrupt PNG file: ");
    fix_crc(b, idat);
    unit_spit(path, b, n);
    expect_dies("IDAT data", read_bad, NULL, 2, "bad.png: corrupt PNG file: ");
    /* A zero width in IHDR (valid CRC). */
    memcpy(b, good, n);
    memset(b + 16, 0, 4);
    fix_crc(b, 8);
    unit_spit(path, b, n);
    expect_dies("zero width", read_bad, NULL, 2, "bad.png: corrupt PNG file: ");
    /* A bad colour type / depth combination. */
    memcpy(b, good, n);
    b[24] = 3, b[25] = 2; /* RGB at 3 bits */
    fix_crc(b, 8);
    unit_spit(path, b, n);
    expect_dies("bad depth", read_bad, NULL, 2, "bad.png: corrupt PNG file: ");
    /* Garbage after a valid signature. */
    memcpy(b, good, 8);
    for (size_t i = 8; i < n; i++) b[i] = (unsigned char)(i * 131);
    unit_spit(path, b, n);
    expect_dies("garbage", read_bad, NULL, 2, "bad.png: ");
    free(b);
    free(good);
}

static char bad_write_path[512];
static const pngio_text *bad_text;
static int bad_c = 1;
static void write_bad(void *arg) {
    (void)arg;
    uint8_t p[12] = {0};
    pngio_write_u8(bad_write_path, p, 2, 2, bad_c, bad_text, bad_text ? 1 : 0);
}

static void test_bad_writes(void) {
    snprintf(bad_write_path, sizeof bad_write_path, "%s/nodir/x.png", unit_tmpdir());
    expect_dies("missing folder", write_bad, NULL, 2, "nodir/x.png");
    snprintf(bad_write_path, sizeof bad_write_path, "%s/x.png", unit_tmpdir());
    static const pngio_text k1[] = {{"", "v"}}, k2[] = {{" lead", "v"}}, k3[] = {{"tab\there", "v"}},
                            k4[] = {{"two  spaces", "v"}},
                            k5[] = {{"a1234567890123456789012345678901234567890123456789012345678901234567890123456789",
                                     "80 chars"}};
    const pngio_text *keys[] = {k1, k2, k3, k4, k5};
    for (int i = 0; i < 5; i++) {
        bad_text = keys[i];
        expect_dies(keys[i]->key, write_bad, NULL, 2, "x.png: text key");
    }
    bad_text = NULL;
    bad_c = 2;
    expect_dies("2 channels", write_bad, NULL, 2, "x.png: 2 channels");
    bad_c = 1;
    struct stat sb;
    EXPECT(stat(bad_write_path, &sb) != 0, "a failed write left %s", bad_write_path);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    RUN(test_reads_pillow);
    RUN(test_reads_text);
    RUN(test_write_roundtrip);
    RUN(test_write_f32);
    RUN(test_bad_files);
    RUN(test_bad_writes);
    return unit_done();
}
