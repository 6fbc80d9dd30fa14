/* test_eltwise.c — the element-wise and layout helpers against torch float32
 * (tests/oracle/make_kernels2.py). Each output element is one or two IEEE
 * operations on the same float32 inputs in the same order as torch (the build
 * uses -std=c11, so no FMA contraction), so the results must be bit-identical:
 * tolerance 0. */
#include "eltwise.h"
#include "upsample.h"
#include "unit.h"

static st_file *fx;
static tensor *A, *B;
static size_t N;

static tensor *ld(const char *name) { return st_load_f32(fx, name, -1, NULL); }

static void same(const char *name, const float *got) {
    tensor *want = ld(name);
    expect_close(name, got, want->data, (size_t)tensor_numel(want), 0);
    tensor_free(want);
}

static void test_add_mul_scale_axpby(void) {
    float *out = xmalloc(N * sizeof(float));
    eltwise_add(out, A->data, B->data, N), same("ew.add", out);
    eltwise_mul(out, A->data, B->data, N), same("ew.mul", out);
    eltwise_scale(out, A->data, 0.18215f, N), same("ew.scale", out);
    eltwise_axpby(out, 0.7f, A->data, -1.3f, B->data, N), same("ew.axpby", out);
    /* In place: out == a. */
    memcpy(out, A->data, N * sizeof(float));
    eltwise_add(out, out, B->data, N), same("ew.add", out);
    free(out);
}

/* The threaded path (> 32768 elements) gives the same values as the serial one. */
static void test_threaded(void) {
    size_t n = 100003;
    float *a = xmalloc(n * 4), *b = xmalloc(n * 4), *o = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) a[i] = (float)i * 0.001f, b[i] = 1.0f / (float)(i + 1);
    eltwise_axpby(o, 0.5f, a, 2.0f, b, n);
    for (size_t i = 0; i < n; i++)
        if (o[i] != 0.5f * a[i] + 2.0f * b[i]) { EXPECT(0, "element %zu", i); break; }
    free(a), free(b), free(o);
}

static void test_bias(void) {
    float *x = xmalloc(N * sizeof(float));
    tensor *rb = ld("ew.bias_rows"), *cb = ld("ew.bias_ch"), *bc = ld("ew.batch_ch");
    memcpy(x, A->data, N * sizeof(float));
    eltwise_add_bias_rows(x, rb->data, 12, 35), same("ew.add_bias_rows", x);
    memcpy(x, A->data, N * sizeof(float));
    eltwise_add_bias_channels(x, cb->data, 2, 6, 35), same("ew.add_bias_channels", x);
    memcpy(x, A->data, N * sizeof(float));
    eltwise_add_batch_channels(x, bc->data, 2, 6, 35), same("ew.add_batch_channels", x);
    tensor_free(rb), tensor_free(cb), tensor_free(bc);
    free(x);
}

static void test_concat_transpose_upsample(void) {
    tensor *c = ld("ew.c"), *u = ld("ew.up_x");
    float *out = xmalloc(2 * 10 * 35 * sizeof(float));
    eltwise_concat_channels(out, A->data, 6, c->data, 4, 2, 35), same("ew.concat", out);
    eltwise_transpose(out, A->data, 2, 6, 35), same("ew.transpose", out);
    /* And back. */
    float *back = xmalloc(N * sizeof(float));
    eltwise_transpose(back, out, 2, 35, 6);
    expect_close("transpose back", back, A->data, N, 0);
    float *up = xmalloc((size_t)tensor_numel(u) * 4 * sizeof(float));
    upsample_nearest2x_forward(up, u->data, 2, 3, 5, 7), same("ew.up", up);
    free(up), free(back), free(out);
    tensor_free(c), tensor_free(u);
}

static void bad_concat(void *arg) {
    (void)arg;
    float x[4] = {0};
    eltwise_concat_channels(x, x, 1, x, 1, 0, 2);
}
static void bad_transpose(void *arg) {
    (void)arg;
    float x[4] = {0};
    eltwise_transpose(x, x, 1, 2, 2);
}
static void test_bad_arguments(void) {
    expect_dies("concat batch 0", bad_concat, NULL, 2, "eltwise_concat_channels: bad dimensions");
    expect_dies("transpose in place", bad_transpose, NULL, 2, "eltwise_transpose: out must not alias inp");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels2.safetensors"));
    A = st_load_f32(fx, "ew.a", 3, (int64_t[]){2, 6, 35});
    B = st_load_f32(fx, "ew.b", 3, (int64_t[]){2, 6, 35});
    N = (size_t)tensor_numel(A);
    RUN(test_add_mul_scale_axpby);
    RUN(test_threaded);
    RUN(test_bias);
    RUN(test_concat_transpose_upsample);
    RUN(test_bad_arguments);
    tensor_free(A), tensor_free(B);
    st_close(fx);
    return unit_done();
}
