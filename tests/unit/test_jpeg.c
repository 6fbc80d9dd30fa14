/* test_jpeg.c — the JPEG reader against Pillow's decoding (both libjpeg-turbo:
 * Pillow 13.0.0 bundles 3.2.0, Debian 12 has 2.1.5) of files Pillow wrote:
 * grey, RGB 4:2:0 and 4:4:4, baseline and progressive; and bad files (not a
 * JPEG, truncated anywhere, CMYK) as clear errors. */
#include "unit.h"
#include "jpeg_io.h"

static const char *img(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "images/%s", name);
    return fixture_path(rel);
}

/* Same decoder family, same defaults (accurate integer IDCT, fancy
 * upsampling): the pixels must agree exactly. Measured: 0 samples differ in
 * all five files. A later libjpeg-turbo could change rounding in its SIMD
 * colour conversion or upsampling by 1, so MAX_DIFF is the stated bound if
 * that ever has to change — not a tolerance to widen quietly. */
#define MAX_DIFF 0

static void check_against_pillow(const st_file *ref, const char *name, int want_c) {
    tensor *got = jpegio_read(img(name));
    tensor *want = st_load(ref, name);
    EXPECT(got->dtype == DTYPE_U8 && tensor_same_shape(got, 3, (int64_t[]){7, 13, want_c}), "%s: u8 [7, 13, %d]",
           name, want_c);
    if (tensor_numel(got) == tensor_numel(want) && want->dtype == DTYPE_U8) {
        size_t n = (size_t)tensor_numel(got), ndiff = 0;
        int maxd = 0;
        const uint8_t *a = got->data, *b = want->data;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)a[i] - (int)b[i]);
            ndiff += d != 0;
            if (d > maxd) maxd = d;
        }
        printf("# %s: %zu of %zu samples differ from Pillow's, max |diff| %d\n", name, ndiff, n, maxd);
        EXPECT(maxd <= MAX_DIFF, "%s: max |diff| %d > %d", name, maxd, MAX_DIFF);
    } else {
        EXPECT(0, "%s: %lld values, Pillow %lld", name, (long long)tensor_numel(got), (long long)tensor_numel(want));
    }
    tensor_free(want);
    tensor_free(got);
}

static void test_reads_pillow(void) {
    st_file *ref = st_open(img("images.safetensors"));
    check_against_pillow(ref, "grey.jpg", 1);
    check_against_pillow(ref, "grey_progressive.jpg", 1);
    check_against_pillow(ref, "rgb420.jpg", 3);
    check_against_pillow(ref, "rgb444.jpg", 3);
    check_against_pillow(ref, "rgb_progressive.jpg", 3);
    st_close(ref);
}

static const char *bad_path;
static void read_bad(void *arg) {
    (void)arg;
    tensor_free(jpegio_read(bad_path));
}

static void test_bad_files(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/bad.jpg", unit_tmpdir());
    bad_path = path;
    unit_spit(path, "", 0);
    expect_dies("empty file", read_bad, NULL, 2, "bad.jpg: not a JPEG file");
    unit_spit(path, "GIF89a", 6);
    expect_dies("text", read_bad, NULL, 2, "bad.jpg: not a JPEG file");
    size_t n;
    unsigned char *png = unit_slurp(img("grey8.png"), &n);
    unit_spit(path, png, n);
    expect_dies("a PNG", read_bad, NULL, 2, "bad.jpg: not a JPEG file");
    free(png);
    bad_path = "/nonexistent/x.jpg";
    expect_dies("missing file", read_bad, NULL, 2, "cannot open /nonexistent/x.jpg");
    bad_path = path;

    bad_path = img("cmyk.jpg");
    expect_dies("CMYK", read_bad, NULL, 2, "cmyk.jpg: corrupt JPEG file: colour space");
    bad_path = path;

    /* Cut anywhere, even just the final EOI marker: "truncated", never a
     * crash or an image padded with grey. */
    const char *files[] = {"rgb420.jpg", "rgb_progressive.jpg", "grey.jpg"};
    for (int k = 0; k < 3; k++) {
        unsigned char *good = unit_slurp(img(files[k]), &n);
        int ok = 1;
        for (size_t len = 1; len < n && ok; len += (len < 40 || len > n - 8 ? 1 : 5)) {
            unit_spit(path, good, len);
            char what[96];
            snprintf(what, sizeof what, "%s cut at %zu of %zu bytes", files[k], len, n);
            ok = expect_dies(what, read_bad, NULL, 2, "bad.jpg: truncated JPEG file");
        }
        /* A zero height in the frame header. */
        for (size_t i = 0; i + 8 < n; i++)
            if (good[i] == 0xff && (good[i + 1] == 0xc0 || good[i + 1] == 0xc2)) {
                good[i + 5] = good[i + 6] = 0;
                break;
            }
        unit_spit(path, good, n);
        expect_dies("zero height", read_bad, NULL, 2, "bad.jpg: corrupt JPEG file: ");
        free(good);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    RUN(test_reads_pillow);
    RUN(test_bad_files);
    return unit_done();
}
