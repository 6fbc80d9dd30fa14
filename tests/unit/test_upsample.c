/* test_upsample.c — upsample_nearest2x_forward against torch
 * F.interpolate(scale_factor=2, mode="nearest") (tests/oracle/make_kernels1.py). */
#include "unit.h"
#include "upsample.h"

static st_file *fx;

static void test_upsample_nearest2x(void) {
    tensor *x = st_load_f32(fx, "upsample.x", 4, (int64_t[]){2, 3, 5, 4});
    size_t n = 2 * 3 * 10 * 8;
    float *out = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    upsample_nearest2x_forward(out, x->data, 2, 3, 5, 4);
    /* Exact: nearest copies values. */
    expect_close_fixture(fx, "upsample.out", out, n, 0);
    free(out);
    tensor_free(x);
}

static void bad(void *arg) { (void)arg; upsample_nearest2x_forward(NULL, NULL, 1, 1, 0, 3); }
static void test_upsample_bad_dims(void) { expect_dies("h = 0", bad, NULL, 2, "bad dims"); }

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels1.safetensors"));
    RUN(test_upsample_nearest2x);
    RUN(test_upsample_bad_dims);
    st_close(fx);
    return unit_done();
}
