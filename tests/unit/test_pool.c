/* test_pool.c — maxpool2d_forward (3x3 stride 2 pad 1, the ResNet stem pool),
 * avgpool2d_forward (2x2 stride 2; 3x3 stride 1 pad 1 with the padding counted)
 * and global_avgpool_forward against torch (tests/oracle/make_kernels1.py),
 * plus the dims checks. */
#include "unit.h"
#include "pool.h"

static st_file *fx;

static void run_pool(const char *name, int max, pool2d_dims d) {
    char key[128];
    snprintf(key, sizeof key, "%s.x", name);
    tensor *x = st_load_f32(fx, key, 4, (int64_t[]){d.batch, d.ch, d.in_h, d.in_w});
    size_t n = (size_t)d.batch * d.ch * pool2d_out_h(&d) * pool2d_out_w(&d);
    float *out = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    if (max) maxpool2d_forward(out, x->data, &d);
    else avgpool2d_forward(out, x->data, &d);
    snprintf(key, sizeof key, "%s.out", name);
    expect_close_fixture(fx, key, out, n, 1e-4);
    free(out);
    tensor_free(x);
}

static void test_maxpool(void) {
    pool2d_dims d = {2, 3, 13, 12, 3, 3, 2, 2, 1, 1};
    EXPECT(pool2d_out_h(&d) == 7 && pool2d_out_w(&d) == 6, "out %dx%d", pool2d_out_h(&d), pool2d_out_w(&d));
    run_pool("maxpool_3x3_s2_p1", 1, d);
}

static void test_avgpool(void) {
    run_pool("avgpool_2x2_s2", 0, (pool2d_dims){2, 3, 12, 10, 2, 2, 2, 2, 0, 0});
    run_pool("avgpool_3x3_s1_p1", 0, (pool2d_dims){1, 4, 9, 7, 3, 3, 1, 1, 1, 1});
}

static void test_global_avgpool(void) {
    tensor *x = st_load_f32(fx, "global_avgpool.x", 4, (int64_t[]){2, 5, 7, 7});
    float out[10];
    global_avgpool_forward(out, x->data, 2, 5, 7, 7);
    expect_close_fixture(fx, "global_avgpool.out", out, 10, 1e-4);
    tensor_free(x);
}

static float dummy[256];
static void pad_too_big(void *arg) {
    (void)arg;
    maxpool2d_forward(dummy, dummy, &(pool2d_dims){1, 1, 5, 5, 3, 3, 1, 1, 2, 2});
}
static void zero_channels(void *arg) {
    (void)arg;
    avgpool2d_forward(dummy, dummy, &(pool2d_dims){1, 0, 5, 5, 2, 2, 2, 2, 0, 0});
}

static void test_pool_bad_dims(void) {
    expect_dies("pad > k/2", pad_too_big, NULL, 2, "padding 2x2 exceeds half the kernel 3x3");
    expect_dies("zero channels", zero_channels, NULL, 2, "bad dims");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels1.safetensors"));
    RUN(test_maxpool);
    RUN(test_avgpool);
    RUN(test_global_avgpool);
    RUN(test_pool_bad_dims);
    st_close(fx);
    return unit_done();
}
