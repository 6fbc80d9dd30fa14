/* test_image_prep.c — image_prep against OpenCV and MGCA's resize_img
 * (tests/oracle/make_image_prep.py): grey decoding of 8/16-bit grey PNG, RGB
 * PNG, grey and colour JPEG equal to cv2's; the resize-and-pad equal to
 * cv2.resize(INTER_AREA) + MGCA's padding on shrinking (odd factors, exact 2x
 * and 3x), enlarging, a square and a 3-pixel sliver, and at the real 256;
 * cv2.resize alone on 36 random arrays of random shapes; and
 * unreadable files reported, not fatal, by image_prep_load. */
#include "unit.h"
#include "image_prep.h"
#include "json.h"

#include <string.h>

/* got and want u8 of n values: how many differ and by how much at most. */
static void compare_u8(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    size_t bad = 0, first = 0;
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d && bad++ == 0) first = i;
        if (d > worst) worst = d;
    }
    /* OpenCV's u8 resize is reproduced step by step (image_prep.c): equal. */
    EXPECT(bad == 0, "%s: %zu of %zu pixels differ from OpenCV's (max %d levels), the first at %zu", what, bad, n,
           worst, first);
}

static void test_against_opencv(void) {
    st_file *ref = st_open(fixture_path("image_prep.safetensors"));
    CHECK(ref->metadata);
    json_error_t jerr;
    json_t *sizes = json_loads(json_string_value(json_object_get(ref->metadata, "sizes")), 0, &jerr);
    CHECK(sizes && json_object_size(sizes) >= 10);
    const char *name;
    json_t *v;
    json_object_foreach(sizes, name, v) {
        char rel[256], key[256];
        snprintf(rel, sizeof rel, "image_prep/%s", name);
        int size = (int)json_integer_value(v);

        tensor *grey = image_load_grey(fixture_path(rel));
        snprintf(key, sizeof key, "%s.grey", name);
        tensor *want_grey = st_load(ref, key);
        EXPECT(grey->ndim == 2 && grey->shape[0] == want_grey->shape[0] && grey->shape[1] == want_grey->shape[1],
               "%s: grey %lld x %lld, cv2's %lld x %lld", name, (long long)grey->shape[0], (long long)grey->shape[1],
               (long long)want_grey->shape[0], (long long)want_grey->shape[1]);
        if (tensor_numel(grey) == tensor_numel(want_grey)) {
            snprintf(key, sizeof key, "%s (grey)", name);
            compare_u8(key, grey->data, want_grey->data, (size_t)tensor_numel(grey));
        }

        char err[512] = "";
        tensor *out = image_prep_load(fixture_path(rel), size, err, sizeof err);
        EXPECT(out != NULL, "%s: %s", name, err);
        tensor *want = st_load(ref, name);
        EXPECT(want->shape[0] == size && want->shape[1] == size, "%s: fixture is not %d x %d", name, size, size);
        if (out) {
            EXPECT(out->dtype == DTYPE_U8 && out->ndim == 2 && out->shape[0] == size && out->shape[1] == size,
                   "%s: not u8 [%d, %d]", name, size, size);
            compare_u8(name, out->data, want->data, (size_t)size * size);
        }
        tensor_free(out);
        tensor_free(want);
        tensor_free(grey);
        tensor_free(want_grey);
    }
    json_decref(sizes);
    st_close(ref);
}

/* cv2.resize(INTER_AREA) alone on random arrays of random shapes. */
static void test_resize_shapes(void) {
    st_file *ref = st_open(fixture_path("image_prep.safetensors"));
    int n = atoi(json_string_value(json_object_get(ref->metadata, "resize_cases")));
    EXPECT(n >= 30, "%d resize cases", n);
    int up = 0, down = 0;
    for (int k = 0; k < n; k++) {
        char key[64];
        snprintf(key, sizeof key, "resize.%d.in", k);
        tensor *in = st_load(ref, key);
        snprintf(key, sizeof key, "resize.%d.out", k);
        tensor *want = st_load(ref, key);
        int h = (int)in->shape[0], w = (int)in->shape[1], oh = (int)want->shape[0], ow = (int)want->shape[1];
        uint8_t *out = xmalloc((size_t)oh * ow);
        image_resize_area_u8(out, oh, ow, in->data, h, w);
        char what[96];
        snprintf(what, sizeof what, "resize %dx%d -> %dx%d", h, w, oh, ow);
        compare_u8(what, out, want->data, (size_t)oh * ow);
        up += oh > h || ow > w;
        down += oh < h && ow < w;
        free(out);
        tensor_free(in);
        tensor_free(want);
    }
    EXPECT(up >= 5 && down >= 5, "cases: %d enlarging, %d shrinking", up, down);
    st_close(ref);
}

/* The padding: a constant image makes the split visible (floor before, ceil
 * after), and the content keeps its value. */
static void test_padding(void) {
    uint8_t in[10 * 3], out[8 * 8];
    memset(in, 200, sizeof in);
    image_resize_pad(out, 8, in, 10, 3); /* tall: height 8, width int(3 * 0.8) = 2, pad 6: 3 left, 3 right */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) EXPECT(out[y * 8 + x] == ((x == 3 || x == 4) ? 200 : 0), "tall (%d, %d) = %d", y, x, out[y * 8 + x]);
    image_resize_pad(out, 8, in, 3, 10); /* wide, odd padding: rows 0-2 zero, 3-4 data, 5-7 zero */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) EXPECT(out[y * 8 + x] == ((y == 3 || y == 4) ? 200 : 0), "wide (%d, %d) = %d", y, x, out[y * 8 + x]);
    uint8_t in2[4 * 7];
    memset(in2, 90, sizeof in2);
    image_resize_pad(out, 8, in2, 4, 7); /* 8 x int(4 * 8/7) = 4: pad 4, 2 above, 2 below */
    for (int y = 0; y < 8; y++) EXPECT(out[y * 8] == ((y >= 2 && y < 6) ? 90 : 0), "4x7 row %d = %d", y, out[y * 8]);
    uint8_t one = 77, o1[4 * 4];
    image_resize_pad(o1, 4, &one, 1, 1); /* 1 x 1 enlarged to fill */
    for (int i = 0; i < 16; i++) EXPECT(o1[i] == 77, "1x1 -> 4x4 [%d] = %d", i, o1[i]);
    uint8_t line[100], o2[32 * 32];
    memset(line, 50, sizeof line);
    image_resize_pad(o2, 32, line, 1, 100); /* int(1 * 0.32) = 0: kept as one row */
    int nz = 0;
    for (int i = 0; i < 32 * 32; i++) nz += o2[i] != 0;
    EXPECT(nz == 32, "a 1 x 100 sliver leaves one row of 32 (%d non-zero)", nz);
}

static void test_unreadable(void) {
    const char *dir = unit_tmpdir();
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/missing.png", dir);
    EXPECT(image_prep_load(path, 32, err, sizeof err) == NULL, "a missing file gives NULL");
    EXPECT(strstr(err, "cannot open") && strstr(err, "missing.png"), "missing: %s", err);

    snprintf(path, sizeof path, "%s/text.png", dir);
    unit_spit(path, "not an image\n", 13);
    EXPECT(image_prep_load(path, 32, err, sizeof err) == NULL, "a text file gives NULL");
    EXPECT(strstr(err, "not a PNG or JPEG file"), "text: %s", err);

    snprintf(path, sizeof path, "%s/empty.png", dir);
    unit_spit(path, "", 0);
    EXPECT(image_prep_load(path, 32, err, sizeof err) == NULL, "an empty file gives NULL");
    EXPECT(strstr(err, "empty file"), "empty: %s", err);

    /* A PNG and a JPEG cut in half: the readers' errors come back, nothing leaks (SAN). */
    size_t n;
    unsigned char *b = unit_slurp(fixture_path("image_prep/grey8_wide.png"), &n);
    snprintf(path, sizeof path, "%s/cut.png", dir);
    unit_spit(path, b, n / 2);
    free(b);
    EXPECT(image_prep_load(path, 32, err, sizeof err) == NULL, "a cut PNG gives NULL");
    EXPECT(strstr(err, "cut.png") && strstr(err, "PNG"), "cut PNG: %s", err);
    b = unit_slurp(fixture_path("image_prep/colour.jpg"), &n);
    snprintf(path, sizeof path, "%s/cut.jpg", dir);
    unit_spit(path, b, n / 2);
    free(b);
    EXPECT(image_prep_load(path, 32, err, sizeof err) == NULL, "a cut JPEG gives NULL");
    EXPECT(strstr(err, "cut.jpg") && strstr(err, "JPEG"), "cut JPEG: %s", err);

    /* After a trapped failure die() exits again as usual. */
    EXPECT(die_trap == NULL, "the trap is cleared");
    tensor *ok = image_prep_load(fixture_path("image_prep/grey8_small.png"), 16, err, sizeof err);
    EXPECT(ok && ok->shape[0] == 16, "a good file still loads after failures");
    tensor_free(ok);
}

static void load_missing(void *arg) {
    (void)arg;
    image_load_grey("/nonexistent/x.png");
}

static void test_load_grey_dies(void) {
    expect_dies("image_load_grey on a missing file", load_missing, NULL, 2, "cannot open /nonexistent/x.png");
}

int main(void) {
    RUN(test_against_opencv);
    RUN(test_resize_shapes);
    RUN(test_padding);
    RUN(test_unreadable);
    RUN(test_load_grey_dies);
    return unit_done();
}
