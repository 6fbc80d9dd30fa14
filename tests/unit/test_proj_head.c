/* test_proj_head.c — MGCA's GlobalEmbedding head (libcommon/proj_head) against
 * tests/fixtures/contrastive_ref.safetensors (tests/oracle/make_contrastive.py):
 * eval and training forward, running statistics and num_batches_tracked after
 * one training step, every gradient of sum(dout * out); and the backward
 * against central differences of the training forward. */
#include "unit.h"
#include "proj_head.h"

#include <math.h>

enum { N = 6, IN = 12, HID = 16, OUT = 8 };

static int pre_bn_bias(const char *name) { return !strcmp(name, "head.0.bias") || !strcmp(name, "head.3.bias"); }

static double max_abs(const float *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(p[i]));
    return m;
}

static void load_head(proj_head *h, const st_file *f, const char *prefix) {
    proj_head_create(h, IN, HID, OUT);
    EXPECT(param_load(&h->params, f, prefix, 0) == 6, "params");
    EXPECT(param_load(&h->buffers, f, prefix, 0) == 6, "buffers");
}

static void test_head_vs_torch(void) {
    st_file *f = st_open(fixture_path("contrastive_ref.safetensors"));
    proj_head h;
    load_head(&h, f, "head.init.");
    float x[N * IN], dout[N * OUT], y[N * OUT], dx[N * IN] = {0};
    st_read_f32(f, "head.x", 2, (int64_t[]){N, IN}, x);
    st_read_f32(f, "head.dout", 2, (int64_t[]){N, OUT}, dout);
    proj_head_forward_eval(y, &h, x, N);
    expect_close_fixture(f, "head.eval_out", y, N * OUT, 1e-5);
    proj_head_cache c;
    proj_head_cache_init(&c);
    proj_head_forward_train(y, &c, &h, x, N);
    expect_close_fixture(f, "head.train_out", y, N * OUT, 1e-5);
    proj_head_backward(dx, &h, &c, dout, x);
    expect_close_fixture(f, "head.dx", dx, N * IN, 1e-5);
    char key[200];
    for (int k = 0; k < h.params.n; k++) {
        const param_entry *e = &h.params.e[k];
        snprintf(key, sizeof key, "head.grad.%s", e->name);
        if (pre_bn_bias(e->name)) continue;
        expect_close_fixture(f, key, h.params.grad + e->offset, e->numel, 1e-5);
    }
    /* A bias right before a BatchNorm has gradient exactly 0 (the batch mean
     * removes it); torch's and ours are rounding noise, compared with the
     * gradient of the weight beside it. */
    EXPECT(max_abs(param_grad(&h.params, "head.0.bias"), HID) <= 1e-5 * max_abs(param_grad(&h.params, "head.0.weight"), HID * IN),
           "head.0.bias gradient is zero to rounding");
    EXPECT(max_abs(param_grad(&h.params, "head.3.bias"), OUT) <= 1e-5 * max_abs(param_grad(&h.params, "head.3.weight"), OUT * HID),
           "head.3.bias gradient is zero to rounding");
    for (int k = 0; k < h.buffers.n; k++) {
        const param_entry *e = &h.buffers.e[k];
        snprintf(key, sizeof key, "head.after.%s", e->name);
        expect_close_fixture(f, key, h.buffers.data + e->offset, e->numel, 1e-6);
    }
    EXPECT(*h.nbt1 == 1 && *h.nbt4 == 1, "num_batches_tracked counts the step");
    proj_head_cache_free(&c);
    proj_head_free(&h);
    st_close(f);
}

static double head_loss(const proj_head *h0, const float *x, const float *dout) {
    /* a fresh copy each time: the training forward updates running statistics */
    proj_head h;
    proj_head_create(&h, IN, HID, OUT);
    memcpy(h.params.data, h0->params.data, h.params.total * sizeof(float));
    memcpy(h.buffers.data, h0->buffers.data, h.buffers.total * sizeof(float));
    proj_head_cache c;
    proj_head_cache_init(&c);
    float y[N * OUT];
    proj_head_forward_train(y, &c, &h, x, N);
    double s = 0;
    for (int i = 0; i < N * OUT; i++) s += (double)y[i] * dout[i];
    proj_head_cache_free(&c);
    proj_head_free(&h);
    return s;
}

static void test_head_finite_differences(void) {
    st_file *f = st_open(fixture_path("contrastive_ref.safetensors"));
    proj_head h;
    load_head(&h, f, "head.init.");
    float x[N * IN], dout[N * OUT], y[N * OUT], dx[N * IN] = {0};
    st_read_f32(f, "head.x", 2, (int64_t[]){N, IN}, x);
    st_read_f32(f, "head.dout", 2, (int64_t[]){N, OUT}, dout);
    proj_head base;
    proj_head_create(&base, IN, HID, OUT);
    memcpy(base.params.data, h.params.data, h.params.total * sizeof(float));
    memcpy(base.buffers.data, h.buffers.data, h.buffers.total * sizeof(float));
    proj_head_cache c;
    proj_head_cache_init(&c);
    proj_head_forward_train(y, &c, &h, x, N);
    proj_head_backward(dx, &h, &c, dout, x);
    /* float forward, h = 1e-3: measured within 3e-4 of the gradient scale; the
     * ReLU kinks are rare at this step (bound 2e-3) */
    const float eps = 1e-3f;
    float fd[N * IN];
    for (int i = 0; i < N * IN; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = head_loss(&base, x, dout);
        x[i] = keep - eps;
        double lm = head_loss(&base, x, dout);
        x[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * eps));
    }
    expect_close("d input vs finite differences", dx, fd, N * IN, 2e-3);
    /* every parameter tensor, a few elements each */
    for (int k = 0; k < base.params.n; k++) {
        const param_entry *e = &base.params.e[k];
        if (pre_bn_bias(e->name)) continue; /* zero: differences are pure noise */
        float got[5], want[5];
        int m = 0;
        for (size_t j = 0; j < e->numel && m < 5; j += e->numel / 5 + 1, m++) {
            float *p = base.params.data + e->offset + j, keep = *p;
            *p = keep + eps;
            double lp = head_loss(&base, x, dout);
            *p = keep - eps;
            double lm = head_loss(&base, x, dout);
            *p = keep;
            want[m] = (float)((lp - lm) / (2 * eps));
            got[m] = h.params.grad[e->offset + j];
        }
        char what[240];
        snprintf(what, sizeof what, "d %s vs finite differences", e->name);
        expect_close(what, got, want, (size_t)m, 2e-3);
    }
    proj_head_cache_free(&c);
    proj_head_free(&base);
    proj_head_free(&h);
    st_close(f);
}

static void one_sample(void *arg) {
    (void)arg;
    proj_head h;
    proj_head_create(&h, 2, 3, 2);
    proj_head_cache c;
    proj_head_cache_init(&c);
    float x[2] = {1, 2}, y[2];
    proj_head_forward_train(y, &c, &h, x, 1);
}

static void test_head_one_sample(void) { expect_dies("batch of one", one_sample, NULL, 2, "batch of 2"); }

int main(void) {
    RUN(test_head_vs_torch);
    RUN(test_head_finite_differences);
    RUN(test_head_one_sample);
    return unit_done();
}
