/* test_activation.c — GELU (erf and tanh forms), quick GELU, SiLU and GEGLU on
 * [-10, 10] plus extremes, against torch evaluated in float64
 * (tests/oracle/make_kernels2.py). Each output is a few float operations from
 * correctly rounded-ish libm calls, so 1e-6 of the output scale (10) is a
 * fair bound, a hundred times tighter than the fp32 default; near zero the
 * absolute error is far below it anyway. */
#include "activation.h"
#include "unit.h"

#include <math.h>

static st_file *fx;

static double rel_err(const float *got, const float *want, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - want[i])), s = fmax(s, fabs(want[i]));
    return e / (s > 0 ? s : 1);
}

typedef void (*act_fn)(float *, const float *, size_t);

static void act_case(const char *name, act_fn fn) {
    tensor *x = st_load_f32(fx, "act.x", -1, NULL);
    char key[64];
    snprintf(key, sizeof key, "act.%s", name);
    tensor *want = st_load_f32(fx, key, 1, x->shape);
    size_t n = (size_t)tensor_numel(x);
    float *out = xmalloc(n * sizeof(float));
    fn(out, x->data, n);
    printf("# %s: %zu values on [-10, 10]: max err %.2e of scale\n", name, n, rel_err(out, want->data, n));
    expect_close(name, out, want->data, n, 1e-6);
    /* In place, and over a length that engages the threads (> 32768 elements). */
    size_t big = 40 * n;
    float *bx = xmalloc(big * sizeof(float)), *by = xmalloc(big * sizeof(float));
    for (size_t i = 0; i < big; i++) bx[i] = ((float *)x->data)[i % n];
    fn(by, bx, big);
    fn(bx, bx, big);
    EXPECT(!memcmp(bx, by, big * sizeof(float)), "%s: in place differs", name);
    for (size_t i = 0; i < big; i++)
        if (by[i] != out[i % n]) { EXPECT(0, "%s: threaded element %zu differs", name, i); break; }
    free(bx), free(by), free(out);
    tensor_free(x), tensor_free(want);
}

static void test_gelu(void) { act_case("gelu", gelu_forward); }
static void test_gelu_tanh(void) { act_case("gelu_tanh", gelu_tanh_forward); }
static void test_quick_gelu(void) { act_case("quick_gelu", quick_gelu_forward); }
static void test_silu(void) { act_case("silu", silu_forward); }

static void test_geglu(void) {
    tensor *x = st_load_f32(fx, "geglu.x", -1, NULL), *want = st_load_f32(fx, "geglu.out", -1, NULL);
    int rows = (int)x->shape[0], ch = (int)x->shape[1] / 2;
    EXPECT(want->shape[0] == rows && want->shape[1] == ch, "geglu fixture shapes");
    size_t n = (size_t)rows * ch;
    float *out = xmalloc(n * sizeof(float));
    geglu_forward(out, x->data, rows, ch);
    printf("# geglu: [%d, 2 x %d]: max err %.2e of scale\n", rows, ch, rel_err(out, want->data, n));
    expect_close("geglu", out, want->data, n, 1e-6);
    free(out);
    tensor_free(x), tensor_free(want);
}

static void geglu_alias(void *arg) {
    (void)arg;
    float x[8] = {0};
    geglu_forward(x, x, 2, 2);
}
static void test_bad_arguments(void) {
    expect_dies("geglu in place", geglu_alias, NULL, 2, "geglu_forward: out must not alias inp");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels2.safetensors"));
    RUN(test_gelu);
    RUN(test_gelu_tanh);
    RUN(test_quick_gelu);
    RUN(test_silu);
    RUN(test_geglu);
    RUN(test_bad_arguments);
    st_close(fx);
    return unit_done();
}
