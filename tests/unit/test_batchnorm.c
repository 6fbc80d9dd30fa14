/* test_batchnorm.c — BatchNorm1d/2d (libcommon/batchnorm.c) against torch
 * (tests/oracle/make_batchnorm.py: float64 references): training-mode output,
 * running statistics after the step, eval-mode output with them, and the
 * autograd gradients of input, weight and bias; the backward also against
 * central finite differences of sum(dout * forward(x)); accumulation (+=),
 * in-place forward, and the dims checks. */
#include "unit.h"
#include "batchnorm.h"

#include <stdint.h>

static st_file *fx;

static float *load(const char *name, const char *what, size_t n) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, what);
    tensor *t = st_load_f32(fx, key, -1, NULL);
    CHECKF((size_t)tensor_numel(t) == n, "%s: %lld values, expected %zu", key, (long long)tensor_numel(t), n);
    float *p = xmalloc(n * sizeof(float));
    memcpy(p, t->data, n * sizeof(float));
    tensor_free(t);
    return p;
}

static void check(const char *name, const char *what, const float *got, size_t n, double tol) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, what);
    expect_close_fixture(fx, key, got, n, tol);
}

/* One fixture case: [n, ch, s], affine or not. */
static void run_case(const char *name, int n, int ch, int s, int affine, float momentum, float eps) {
    size_t N = (size_t)n * ch * s;
    float *x = load(name, "x", N), *dout = load(name, "dout", N);
    float *rm = load(name, "running_mean0", ch), *rv = load(name, "running_var0", ch);
    float *w = affine ? load(name, "weight", ch) : NULL, *b = affine ? load(name, "bias", ch) : NULL;
    float *out = xmalloc(N * sizeof(float)), *dx = xmalloc(N * sizeof(float));
    float *mean = xmalloc(ch * sizeof(float)), *rstd = xmalloc(ch * sizeof(float));
    float *dw = xmalloc(ch * sizeof(float)), *db = xmalloc(ch * sizeof(float));

    batchnorm_forward_train(out, mean, rstd, rm, rv, x, w, b, n, ch, s, momentum, eps);
    check(name, "out", out, N, 1e-5);
    check(name, "running_mean", rm, ch, 1e-6);
    check(name, "running_var", rv, ch, 1e-6);

    /* gradients accumulate: start from 0.25 and take it off again */
    for (size_t i = 0; i < N; i++) dx[i] = 0.25f;
    for (int c = 0; c < ch; c++) dw[c] = db[c] = 0.25f;
    batchnorm_backward(dx, affine ? dw : NULL, affine ? db : NULL, dout, x, w, mean, rstd, n, ch, s);
    for (size_t i = 0; i < N; i++) dx[i] -= 0.25f;
    check(name, "dx", dx, N, 1e-5);
    if (affine) {
        for (int c = 0; c < ch; c++) dw[c] -= 0.25f, db[c] -= 0.25f;
        check(name, "dweight", dw, ch, 1e-5);
        check(name, "dbias", db, ch, 1e-5);
    }

    batchnorm_forward_eval(out, x, rm, rv, w, b, n, ch, s, eps);
    check(name, "eval_out", out, N, 1e-5);

    /* in place: out == inp */
    float *rm2 = load(name, "running_mean0", ch), *rv2 = load(name, "running_var0", ch);
    memcpy(out, x, N * sizeof(float));
    batchnorm_forward_train(out, NULL, NULL, rm2, rv2, out, w, b, n, ch, s, momentum, eps);
    check(name, "out", out, N, 1e-5);
    free(rm2), free(rv2);
    free(x), free(dout), free(rm), free(rv), free(w), free(b), free(out), free(dx), free(mean), free(rstd);
    free(dw), free(db);
}

static void test_bn2d(void) {
    run_case("bn2d", 4, 6, 35, 1, 0.1f, 1e-5f);
    run_case("bn2d_noaffine", 3, 5, 16, 0, 0.1f, 1e-5f);
    run_case("bn2d_offset", 2, 4, 36, 1, 0.3f, 1e-3f); /* mean 300: float would lose digits */
}

static void test_bn1d(void) {
    run_case("bn1d", 8, 16, 1, 1, 0.1f, 1e-5f);
    run_case("bn1d_noaffine", 6, 12, 1, 0, 0.1f, 1e-5f);
    run_case("bn1d_3d", 4, 5, 9, 1, 0.1f, 1e-5f);
}

/* sum(dout * BN_train(x; w, b)) in double over the float forward. */
static double loss(const float *x, const float *w, const float *b, const float *dout, float *tmp, int n, int ch,
                   int s) {
    batchnorm_forward_train(tmp, NULL, NULL, NULL, NULL, x, w, b, n, ch, s, 0.1f, 1e-5f);
    double l = 0;
    for (size_t i = 0; i < (size_t)n * ch * s; i++) l += (double)dout[i] * tmp[i];
    return l;
}

/* Central differences with h = 1e-2 on a float forward: the rounding of the
 * loss (~1e-6) over 2h and the h^2 truncation stay well under 1e-3 of the
 * gradient's scale (measured: <= 4e-5). */
static void fd_case(int n, int ch, int s, int affine) {
    size_t N = (size_t)n * ch * s;
    float *x = xmalloc(N * sizeof(float)), *dout = xmalloc(N * sizeof(float)), *tmp = xmalloc(N * sizeof(float));
    float w[16], b[16], mean[16], rstd[16], dw[16] = {0}, db[16] = {0};
    uint32_t st = 12345;
#define RND() ((st = st * 1664525u + 1013904223u), (float)((st >> 8) & 0xffff) / 65536.0f - 0.5f)
    for (size_t i = 0; i < N; i++) x[i] = 3.0f * RND() + 0.5f, dout[i] = RND();
    for (int c = 0; c < ch; c++) w[c] = 1.0f + RND(), b[c] = RND();
#undef RND
    const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
    float *dx = xcalloc(N, sizeof(float));
    batchnorm_forward_train(tmp, mean, rstd, NULL, NULL, x, wp, bp, n, ch, s, 0.1f, 1e-5f);
    batchnorm_backward(dx, affine ? dw : NULL, affine ? db : NULL, dout, x, wp, mean, rstd, n, ch, s);
    const float h = 1e-2f;
    float *fd = xmalloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(x, wp, bp, dout, tmp, n, ch, s);
        x[i] = x0 - h;
        double lm = loss(x, wp, bp, dout, tmp, n, ch, s);
        x[i] = x0;
        fd[i] = (float)((lp - lm) / (2.0 * h));
    }
    expect_close("finite differences: dx", dx, fd, N, 1e-3);
    if (affine) {
        float fw[16], fb[16];
        for (int c = 0; c < ch; c++) {
            float *p[2] = {w, b}, *f[2] = {fw, fb};
            for (int k = 0; k < 2; k++) {
                float v0 = p[k][c];
                p[k][c] = v0 + h;
                double lp = loss(x, w, b, dout, tmp, n, ch, s);
                p[k][c] = v0 - h;
                double lm = loss(x, w, b, dout, tmp, n, ch, s);
                p[k][c] = v0;
                f[k][c] = (float)((lp - lm) / (2.0 * h));
            }
        }
        expect_close("finite differences: dweight", dw, fw, ch, 1e-3);
        expect_close("finite differences: dbias", db, fb, ch, 1e-3);
    }
    free(x), free(dout), free(tmp), free(dx), free(fd);
}

static void test_finite_differences(void) {
    fd_case(3, 4, 10, 1);  /* BatchNorm2d-like */
    fd_case(5, 6, 1, 1);   /* BatchNorm1d on [n, ch] */
    fd_case(4, 3, 6, 0);   /* affine=False */
}

static float dummy[64];
static void one_value(void *arg) {
    (void)arg;
    batchnorm_forward_train(dummy, NULL, NULL, dummy + 8, dummy + 16, dummy, NULL, NULL, 1, 4, 1, 0.1f, 1e-5f);
}
static void zero_ch(void *arg) {
    (void)arg;
    batchnorm_forward_eval(dummy, dummy, dummy, dummy, NULL, NULL, 2, 0, 3, 1e-5f);
}

static void test_bad_dims(void) {
    expect_dies("one value per channel", one_value, NULL, 2, "expected more than 1 value per channel");
    expect_dies("zero channels", zero_ch, NULL, 2, "bad dimensions");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("batchnorm.safetensors"));
    RUN(test_bn2d);
    RUN(test_bn1d);
    RUN(test_finite_differences);
    RUN(test_bad_dims);
    st_close(fx);
    return unit_done();
}
