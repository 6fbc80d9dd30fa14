/* test_backward_kernels.c — the backward kernels of the ResNet image encoder:
 * conv2d_backward (3x3, the 7x7 stride-2 stem, 1x1 stride 2 and 1, 3x3 stride
 * 2; default tiles and tiny tiles that cross image boundaries), maxpool2d_backward,
 * global_avgpool_backward and relu_backward against torch autograd
 * (tests/oracle/make_backward_kernels.py, float64 references), each also
 * against central finite differences of sum(dout * forward(x)); every
 * gradient accumulates (+=) and the unwanted ones may be NULL. */
#include "unit.h"
#include "activation.h"
#include "conv2d.h"
#include "pool.h"

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

static float *filled(size_t n, float v) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}
static void sub(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] -= v;
}

/* sum(dout * conv(x, w, b)) in double. */
static double conv_loss(const float *x, const float *w, const float *b, const float *dout, float *tmp,
                        const conv2d_dims *d, size_t nout) {
    conv2d_forward(tmp, x, w, b, d);
    double l = 0;
    for (size_t i = 0; i < nout; i++) l += (double)dout[i] * tmp[i];
    return l;
}

/* Central differences of a forward that is linear in each argument: h = 0.25
 * has no truncation error, and the loss's float rounding (~1e-6 of it) over 2h
 * stays far under the stated 1e-4 of the gradient's scale (measured <= 3e-6). */
static void conv_fd(const char *name, float *x, float *w, float *b, const float *dout, const float *dx,
                    const float *dw, const float *db, const conv2d_dims *d) {
    size_t nx = (size_t)d->batch * d->in_ch * d->in_h * d->in_w;
    size_t nw = (size_t)d->out_ch * d->in_ch * d->k_h * d->k_w;
    size_t nout = (size_t)d->batch * d->out_ch * conv2d_out_h(d) * conv2d_out_w(d);
    float *tmp = xmalloc(nout * sizeof(float));
    const float h = 0.25f;
    float *p[3] = {x, w, b};
    const float *g[3] = {dx, dw, db};
    size_t n[3] = {nx, nw, b ? (size_t)d->out_ch : 0};
    const char *what[3] = {"dx", "dweight", "dbias"};
    for (int k = 0; k < 3; k++) {
        if (!n[k]) continue;
        float *fd = xmalloc(n[k] * sizeof(float));
        for (size_t i = 0; i < n[k]; i++) {
            float v0 = p[k][i];
            p[k][i] = v0 + h;
            double lp = conv_loss(x, w, b, dout, tmp, d, nout);
            p[k][i] = v0 - h;
            double lm = conv_loss(x, w, b, dout, tmp, d, nout);
            p[k][i] = v0;
            fd[i] = (float)((lp - lm) / (2.0 * h));
        }
        char msg[128];
        snprintf(msg, sizeof msg, "%s: finite differences %s", name, what[k]);
        expect_close(msg, g[k], fd, n[k], 1e-4);
        free(fd);
    }
    free(tmp);
}

static void conv_case(const char *name, conv2d_dims d, int bias) {
    size_t nx = (size_t)d.batch * d.in_ch * d.in_h * d.in_w;
    size_t nw = (size_t)d.out_ch * d.in_ch * d.k_h * d.k_w;
    size_t nout = (size_t)d.batch * d.out_ch * conv2d_out_h(&d) * conv2d_out_w(&d);
    float *x = load(name, "x", nx), *w = load(name, "weight", nw), *dout = load(name, "dout", nout);
    float *b = bias ? load(name, "bias", d.out_ch) : NULL;
    float *out = xmalloc(nout * sizeof(float));
    conv2d_forward(out, x, w, b, &d);
    check(name, "out", out, nout, 1e-5);
    /* default tiles, then tiles of 16 pixels (several per image, crossing images) */
    for (int tiny = 0; tiny < 2; tiny++) {
        conv2d_set_tuning(tiny ? 64 : 0, CONV2D_AUTO);
        float *dx = filled(nx, 0.5f), *dw = filled(nw, 0.5f), *db = filled(d.out_ch, 0.5f);
        conv2d_backward(dx, dw, bias ? db : NULL, dout, x, w, &d);
        sub(dx, nx, 0.5f), sub(dw, nw, 0.5f), sub(db, d.out_ch, 0.5f);
        check(name, "dx", dx, nx, 1e-5);
        check(name, "dweight", dw, nw, 1e-5);
        if (bias) check(name, "dbias", db, d.out_ch, 1e-5);
        /* each gradient alone, the others NULL (and inp / weight NULL where unneeded) */
        float *dx2 = filled(nx, 0.0f), *dw2 = filled(nw, 0.0f), *db2 = filled(d.out_ch, 0.0f);
        conv2d_backward(dx2, NULL, NULL, dout, NULL, w, &d);
        conv2d_backward(NULL, dw2, NULL, dout, x, NULL, &d);
        conv2d_backward(NULL, NULL, db2, dout, NULL, NULL, &d);
        EXPECT(!memcmp(dx, dx2, nx * sizeof(float)) || expect_close("dx alone", dx2, dx, nx, 1e-6), "dx alone");
        EXPECT(!memcmp(dw, dw2, nw * sizeof(float)) || expect_close("dw alone", dw2, dw, nw, 1e-6), "dw alone");
        if (bias) EXPECT(expect_close("db alone", db2, db, d.out_ch, 1e-6), "db alone");
        if (!tiny) conv_fd(name, x, w, b, dout, dx, dw, bias ? db : NULL, &d);
        free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2);
    }
    conv2d_set_tuning(0, CONV2D_AUTO);
    free(x), free(w), free(b), free(dout), free(out);
}

static void test_conv2d_backward(void) {
    conv_case("conv3x3", (conv2d_dims){2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1}, 1);
    conv_case("conv7x7s2", (conv2d_dims){2, 3, 15, 13, 5, 7, 7, 2, 2, 3, 3}, 0);
    conv_case("conv1x1s2", (conv2d_dims){2, 6, 9, 9, 4, 1, 1, 2, 2, 0, 0}, 0);
    conv_case("conv1x1", (conv2d_dims){3, 5, 4, 4, 7, 1, 1, 1, 1, 0, 0}, 1);
    conv_case("conv3x3s2", (conv2d_dims){2, 4, 10, 9, 3, 3, 3, 2, 2, 1, 1}, 0);
}

static void test_maxpool_backward(void) {
    pool2d_dims d = {2, 3, 11, 10, 3, 3, 2, 2, 1, 1};
    size_t nx = 2 * 3 * 11 * 10, nout = 2 * 3 * 6 * 5;
    float *x = load("maxpool", "x", nx), *dout = load("maxpool", "dout", nout);
    float *out = xmalloc(nout * sizeof(float)), *dx = filled(nx, 0.5f);
    maxpool2d_forward(out, x, &d);
    check("maxpool", "out", out, nout, 1e-6);
    maxpool2d_backward(dx, dout, x, &d);
    sub(dx, nx, 0.5f);
    check("maxpool", "dx", dx, nx, 1e-6); /* ties between ReLU zeros resolved as torch */

    /* finite differences on distinct values (a grid of steps 0.01, shuffled),
     * h = 1e-3 below half a step, so no perturbation changes a window's winner */
    uint32_t st = 7;
    for (size_t i = 0; i < nx; i++) x[i] = 0.01f * (float)i - 3.0f;
    for (size_t i = nx - 1; i > 0; i--) {
        st = st * 1664525u + 1013904223u;
        size_t j = (st >> 8) % (i + 1);
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
    memset(dx, 0, nx * sizeof(float));
    maxpool2d_backward(dx, dout, x, &d);
    float *fd = xmalloc(nx * sizeof(float));
    const float h = 1e-3f;
    for (size_t i = 0; i < nx; i++) {
        double l[2];
        float v0 = x[i];
        for (int s = 0; s < 2; s++) {
            x[i] = v0 + (s ? -h : h);
            maxpool2d_forward(out, x, &d);
            l[s] = 0;
            for (size_t j = 0; j < nout; j++) l[s] += (double)dout[j] * out[j];
        }
        x[i] = v0;
        fd[i] = (float)((l[0] - l[1]) / (2.0 * (double)h)); /* bound: the 1e-7 rounding of x +- h over 2h */
    }
    expect_close("maxpool finite differences", dx, fd, nx, 1e-3);
    free(x), free(dout), free(out), free(dx), free(fd);
}

static void test_global_avgpool_backward(void) {
    size_t nx = 2 * 5 * 49;
    float *x = load("gap", "x", nx), *dout = load("gap", "dout", 10), *dx = filled(nx, 0.5f), out[10];
    global_avgpool_forward(out, x, 2, 5, 7, 7);
    check("gap", "out", out, 10, 1e-6);
    global_avgpool_backward(dx, dout, 2, 5, 7, 7);
    sub(dx, nx, 0.5f);
    check("gap", "dx", dx, nx, 1e-6);
    /* linear: central differences with h = 0.25 are exact up to rounding */
    float *fd = xmalloc(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++) {
        double l[2];
        float v0 = x[i];
        for (int s = 0; s < 2; s++) {
            x[i] = v0 + (s ? -0.25f : 0.25f);
            global_avgpool_forward(out, x, 2, 5, 7, 7);
            l[s] = 0;
            for (int j = 0; j < 10; j++) l[s] += (double)dout[j] * out[j];
        }
        x[i] = v0;
        fd[i] = (float)((l[0] - l[1]) / 0.5);
    }
    memset(dx, 0, nx * sizeof(float));
    global_avgpool_backward(dx, dout, 2, 5, 7, 7);
    expect_close("global avgpool finite differences", dx, fd, nx, 1e-4);
    free(x), free(dout), free(dx), free(fd);
}

static void test_relu(void) {
    size_t n = 150;
    float *x = load("relu", "x", n), *dout = load("relu", "dout", n);
    float *out = xmalloc(n * sizeof(float)), *dx = filled(n, 0.5f);
    relu_forward(out, x, n);
    check("relu", "out", out, n, 0);
    relu_backward(dx, dout, out, n);
    sub(dx, n, 0.5f);
    check("relu", "dx", dx, n, 1e-7); /* dx is dout or 0: only the 0.5 round trip rounds */
    /* finite differences away from the kink (|x| > h) */
    const float h = 1e-3f;
    float *fd = xmalloc(n * sizeof(float)), *g = xcalloc(n, sizeof(float));
    relu_backward(g, dout, out, n);
    int checked = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(x[i]) <= 2 * h) {
            fd[i] = g[i];
            continue;
        }
        float a = x[i] + h, b = x[i] - h, ya, yb;
        relu_forward(&ya, &a, 1);
        relu_forward(&yb, &b, 1);
        fd[i] = (float)((double)dout[i] * ((double)ya - yb) / (2.0 * h));
        checked++;
    }
    EXPECT(checked > 140, "only %d elements away from the kink", checked);
    expect_close("relu finite differences", g, fd, n, 1e-3);
    free(x), free(dout), free(out), free(dx), free(fd), free(g);
}

static float dummy[256];
static void conv_no_inp(void *arg) {
    (void)arg;
    conv2d_backward(NULL, dummy, NULL, dummy, NULL, dummy, &(conv2d_dims){1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1});
}
static void relu_alias(void *arg) {
    (void)arg;
    relu_backward(dummy, dummy, dummy, 4);
}

static void test_bad_args(void) {
    expect_dies("dweight without inp", conv_no_inp, NULL, 2, "conv2d_backward: dweight wanted but inp is NULL");
    expect_dies("relu dinp == dout", relu_alias, NULL, 2, "relu_backward: dinp must not be dout");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("backward_kernels.safetensors"));
    RUN(test_conv2d_backward);
    RUN(test_maxpool_backward);
    RUN(test_global_avgpool_backward);
    RUN(test_relu);
    RUN(test_bad_args);
    st_close(fx);
    return unit_done();
}
