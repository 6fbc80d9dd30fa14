/* test_gemm.c — gemm_f32 (all four transposes, odd sizes, leading dimensions
 * wider than the matrices, alpha/beta), gemm_batched_f32 (the one-per-thread and
 * the threaded-cblas paths) and linear_forward against torch
 * (tests/oracle/make_kernels1.py), plus the argument checks. */
#include "unit.h"
#include "gemm.h"

static st_file *fx;

static tensor *load(const char *name) { return st_load_f32(fx, name, -1, NULL); }
static tensor *loadf(const char *prefix, const char *what) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", prefix, what);
    return load(key);
}

static void test_gemm_transposes(void) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            char name[32];
            snprintf(name, sizeof name, "gemm_t%d%d", ta, tb);
            tensor *a = loadf(name, "a"), *b = loadf(name, "b"), *c = loadf(name, "c_in"),
                   *want = loadf(name, "c_out"), *dims = loadf(name, "dims");
            const float *dm = dims->data;
            int m = (int)dm[0], n = (int)dm[1], k = (int)dm[2], lda = (int)dm[3], ldb = (int)dm[4], ldc = (int)dm[5];
            EXPECT(m == 37 && n == 53 && k == 29, "%s dims %d %d %d", name, m, n, k);
            gemm_f32(ta, tb, m, n, k, 0.7f, a->data, lda, b->data, ldb, -0.3f, c->data, ldc);
            /* The whole C buffer: the ldc padding columns must be untouched. */
            expect_close(name, c->data, want->data, (size_t)tensor_numel(want), 1e-4);
            tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(want), tensor_free(dims);
        }
}

/* beta = 0 overwrites C: NaN already there must not leak through. */
static void test_gemm_beta_zero(void) {
    tensor *a = load("gemm_t00.a"), *b = load("gemm_t00.b"), *want = load("gemm_t00.ab");
    int m = 37, n = 53, k = 29;
    float *c = xmalloc(sizeof(float) * (size_t)m * n);
    for (int i = 0; i < m * n; i++) c[i] = NAN;
    gemm_f32(0, 0, m, n, k, 0.7f, a->data, k + 3, b->data, n + 2, 0.0f, c, n);
    expect_close("beta0", c, want->data, (size_t)m * n, 1e-4);
    /* k = 0: C = beta * C, no product */
    for (int i = 0; i < m * n; i++) c[i] = 2.0f;
    gemm_f32(0, 0, m, n, 0, 1.0f, a->data, 1, b->data, n, 0.5f, c, n);
    int ok = 1;
    for (int i = 0; i < m * n; i++) ok &= c[i] == 1.0f;
    EXPECT(ok, "k = 0 must give beta * C");
    free(c);
    tensor_free(a), tensor_free(b), tensor_free(want);
}

static void run_batched(const char *name) {
    tensor *a = loadf(name, "a"), *b = loadf(name, "b"), *c = loadf(name, "c_in"), *want = loadf(name, "c_out"),
           *dims = loadf(name, "dims"), *ab = loadf(name, "alpha_beta");
    const float *d = dims->data, *s = ab->data;
    int batch = (int)d[0], m = (int)d[1], n = (int)d[2], k = (int)d[3], ta = (int)d[4], tb = (int)d[5];
    int lda = ta ? m : k, ldb = tb ? k : n;
    gemm_batched_f32(ta, tb, m, n, k, s[0], a->data, lda, (int64_t)d[6], b->data, ldb, (int64_t)d[7], s[1],
                     c->data, n, (int64_t)d[8], batch);
    expect_close(name, c->data, want->data, (size_t)tensor_numel(want), 1e-4);
    tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(want), tensor_free(dims), tensor_free(ab);
}

static void test_gemm_batched(void) {
    run_batched("bgemm_small");
    run_batched("bgemm_large");
    /* The same with one thread (every path then runs serially). */
    int nt = threads_get();
    threads_set(1);
    run_batched("bgemm_small");
    run_batched("bgemm_large");
    threads_set(nt);
}

static void test_linear(void) {
    tensor *x = load("linear.x"), *w = load("linear.w"), *b = load("linear.b");
    float out[7 * 13];
    for (int i = 0; i < 7 * 13; i++) out[i] = NAN;
    linear_forward(out, x->data, w->data, b->data, 7, 29, 13);
    expect_close_fixture(fx, "linear.out_bias", out, 7 * 13, 1e-4);
    for (int i = 0; i < 7 * 13; i++) out[i] = NAN;
    linear_forward(out, x->data, w->data, NULL, 7, 29, 13);
    expect_close_fixture(fx, "linear.out_nobias", out, 7 * 13, 1e-4);
    tensor_free(x), tensor_free(w), tensor_free(b);
}

static float dummy[64];
static void bad_lda(void *arg) { (void)arg; gemm_f32(0, 0, 4, 4, 5, 1, dummy, 4, dummy, 4, 0, dummy, 4); }
static void bad_ldc(void *arg) { (void)arg; gemm_f32(0, 1, 4, 6, 2, 1, dummy, 2, dummy, 2, 0, dummy, 5); }
static void bad_size(void *arg) { (void)arg; gemm_f32(0, 0, -1, 4, 4, 1, dummy, 4, dummy, 4, 0, dummy, 4); }
static void bad_overlap(void *arg) {
    (void)arg;
    gemm_batched_f32(0, 0, 2, 2, 2, 1, dummy, 2, 4, dummy, 2, 4, 0, dummy, 2, 3, 2);
}

static void test_bad_args(void) {
    expect_dies("lda < k", bad_lda, NULL, 2, "lda=4 is less than the 5 columns of A");
    expect_dies("ldc < n", bad_ldc, NULL, 2, "ldc=5 is less than the 6 columns of C");
    expect_dies("negative m", bad_size, NULL, 2, "negative size");
    expect_dies("overlapping C", bad_overlap, NULL, 2, "overlap");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels1.safetensors"));
    RUN(test_gemm_transposes);
    RUN(test_gemm_beta_zero);
    RUN(test_gemm_batched);
    RUN(test_linear);
    RUN(test_bad_args);
    st_close(fx);
    return unit_done();
}
