/* test_conv2d.c — conv2d_forward against torch F.conv2d (tests/oracle/
 * make_kernels1.py): 3x3 stride 1 and 2, 1x1 (the GEMM fast path and the
 * strided im2col path), 7x7 stride 2 pad 3, batch 2, bias and none; one case
 * run in many row tiles, in both threading modes and with one thread; and the
 * dims checks. */
#include "unit.h"
#include "conv2d.h"

static st_file *fx;

static tensor *loadf(const char *prefix, const char *what) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", prefix, what);
    return st_find(fx, key) ? st_load_f32(fx, key, -1, NULL) : NULL;
}

/* Runs fixture case `name` and compares; the output buffer starts as NaN so an
 * element the kernel forgets shows. */
static void run_case(const char *name) {
    tensor *x = loadf(name, "x"), *w = loadf(name, "w"), *b = loadf(name, "b"), *dims = loadf(name, "dims");
    CHECK(x && w && dims);
    const float *v = dims->data;
    conv2d_dims d = {(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5],
                     (int)v[6], (int)v[7], (int)v[8], (int)v[9], (int)v[10]};
    size_t n = (size_t)d.batch * d.out_ch * conv2d_out_h(&d) * conv2d_out_w(&d);
    float *out = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    conv2d_forward(out, x->data, w->data, b ? b->data : NULL, &d);
    char key[128];
    snprintf(key, sizeof key, "%s.out", name);
    expect_close_fixture(fx, key, out, n, 1e-4);
    free(out);
    tensor_free(x), tensor_free(w), tensor_free(dims);
    if (b) tensor_free(b);
}

static void test_conv_3x3(void) {
    run_case("conv_3x3_s1");
    run_case("conv_3x3_s2");
    run_case("conv_3x3_s2p0");
}
static void test_conv_1x1(void) {
    run_case("conv_1x1");
    run_case("conv_1x1_nobias");
    run_case("conv_1x1_s2");
}
static void test_conv_7x7_stem(void) { run_case("conv_7x7_s2"); }

/* conv_tiled: 16 -> 24 channels, 20x18 output; one im2col column (output
 * pixel) is 144 floats. Budgets of 16 pixels (the floor; 23 tiles), 20 and 50
 * pixels (tiles that start and end mid-row), 1 and 3 rows, and 7 rows (3 tiles,
 * the last one partial), in both modes; the parallel mode also rebalances tile
 * sizes over the threads. Then the defaults, and some cases with one thread. */
static void test_conv_tiled(void) {
    const size_t px = 144 * sizeof(float), row = 18 * px;
    const size_t budgets[] = {1, 20 * px, 50 * px, row, 3 * row, 7 * row + 100};
    for (int mode = CONV2D_SERIAL_TILES; mode <= CONV2D_PARALLEL_TILES; mode++)
        for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
            conv2d_set_tuning(budgets[i], mode);
            run_case("conv_tiled");
            run_case("conv_3x3_s1");
            run_case("conv_3x3_s2");
            run_case("conv_7x7_s2");
        }
    conv2d_set_tuning(0, CONV2D_AUTO);
    run_case("conv_tiled");
    int nt = threads_get();
    threads_set(1);
    run_case("conv_tiled");
    run_case("conv_3x3_s2");
    run_case("conv_1x1");
    threads_set(nt);
}

static float dummy[4096];
static void conv_kernel_too_big(void *arg) {
    (void)arg;
    conv2d_dims d = {1, 1, 4, 4, 1, 7, 7, 1, 1, 1, 1};
    conv2d_forward(dummy, dummy, dummy, NULL, &d);
}
static void conv_zero_stride(void *arg) {
    (void)arg;
    conv2d_dims d = {1, 1, 4, 4, 1, 3, 3, 0, 1, 1, 1};
    conv2d_forward(dummy, dummy, dummy, NULL, &d);
}

static void test_conv_bad_dims(void) {
    expect_dies("kernel larger than input", conv_kernel_too_big, NULL, 2, "kernel 7x7 is larger than the padded input 6x6");
    expect_dies("stride 0", conv_zero_stride, NULL, 2, "bad dims");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels1.safetensors"));
    RUN(test_conv_3x3);
    RUN(test_conv_1x1);
    RUN(test_conv_7x7_stem);
    RUN(test_conv_tiled);
    RUN(test_conv_bad_dims);
    st_close(fx);
    return unit_done();
}
