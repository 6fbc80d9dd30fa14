/* test_params.c — the named parameter block: layout, save and load through
 * safetensors (f32 and the int64 counter), missing and misshapen tensors, and
 * linear_backward against finite differences of linear_forward. */
#include "unit.h"
#include "gemm.h"
#include "params.h"

static void fill_set(param_set *ps) {
    param_set_init(ps);
    param_add(ps, "fc.weight", 2, (int64_t[]){3, 5}, 1);
    param_add(ps, "fc.bias", 1, (int64_t[]){3}, 0);
    param_add(ps, "bn.num_batches_tracked", 0, NULL, 0);
    ps->e[ps->n - 1].is_i64 = 1;
    param_add_count(ps, "bn2.num_batches_tracked");
}

static void test_layout_and_roundtrip(void) {
    param_set ps;
    fill_set(&ps);
    param_set_alloc(&ps, 1);
    EXPECT(ps.n == 4, "n = %d", ps.n);
    EXPECT(param_find(&ps, "fc.bias")->offset % 16 == 0, "offsets are 16-float aligned");
    EXPECT(ps.total >= 15 + 3 + 2, "total %zu", ps.total);
    float *w = param_get(&ps, "fc.weight"), *b = param_get(&ps, "fc.bias");
    for (int i = 0; i < 15; i++) w[i] = 0.1f * (float)i - 0.7f;
    for (int i = 0; i < 3; i++) b[i] = (float)i + 0.5f;
    *param_get(&ps, "bn.num_batches_tracked") = 7;
    *param_get(&ps, "bn2.num_batches_tracked") = 123456;
    param_grad(&ps, "fc.bias")[1] = 3;
    char path[512];
    snprintf(path, sizeof path, "%s/p.safetensors", unit_tmpdir());
    char **names = NULL;
    const tensor **ts = NULL;
    int n = param_list_append(&ps, ps.data, "model.", 0, &names, &ts);
    n = param_list_append(&ps, ps.grad, "grad.", n, &names, &ts);
    EXPECT(n == 8, "n = %d", n);
    st_write(path, n, (const char *const *)names, (const tensor *const *)ts, NULL);
    param_list_free(n, names, ts);

    st_file *f = st_open(path);
    const st_entry *e = st_get(f, "model.bn2.num_batches_tracked");
    EXPECT(e->dtype == DTYPE_I64 && e->ndim == 0, "counter saved as a 0-d int64");
    param_set back;
    fill_set(&back);
    param_set_alloc(&back, 0);
    EXPECT(param_load(&back, f, "model.", 0) == 4, "all four loaded");
    EXPECT(!memcmp(back.data, ps.data, ps.total * sizeof(float)), "values equal after the round trip");
    EXPECT(*param_get(&back, "bn2.num_batches_tracked") == 123456, "counter");
    memset(back.data, 0, back.total * sizeof(float));
    EXPECT(param_load(&back, f, "grad.", 0) == 4, "grads loaded");
    EXPECT(param_get(&back, "fc.bias")[1] == 3, "grad value");
    st_close(f);
    param_set_free(&back);
    param_set_free(&ps);
}

static void load_missing(void *arg) {
    param_set ps;
    fill_set(&ps);
    param_add(&ps, "extra.weight", 1, (int64_t[]){2}, 1);
    param_set_alloc(&ps, 0);
    st_file *f = st_open((const char *)arg);
    param_load(&ps, f, "model.", 0);
}

static void load_misshapen(void *arg) {
    param_set ps;
    param_set_init(&ps);
    param_add(&ps, "fc.weight", 2, (int64_t[]){5, 3}, 1);
    param_set_alloc(&ps, 0);
    st_file *f = st_open((const char *)arg);
    param_load(&ps, f, "model.", 0);
}

static void test_load_errors(void) {
    param_set ps;
    fill_set(&ps);
    param_set_alloc(&ps, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/q.safetensors", unit_tmpdir());
    char **names = NULL;
    const tensor **ts = NULL;
    int n = param_list_append(&ps, ps.data, "model.", 0, &names, &ts);
    st_write(path, n, (const char *const *)names, (const tensor *const *)ts, NULL);
    param_list_free(n, names, ts);
    param_set_free(&ps);
    expect_dies("missing tensor", load_missing, path, 2, "missing tensor \"model.extra.weight\"");
    expect_dies("wrong shape", load_misshapen, path, 2, "model.fc.weight");
    /* allow_missing leaves the absent one alone */
    param_set q;
    fill_set(&q);
    param_add(&q, "extra.weight", 1, (int64_t[]){2}, 1);
    param_set_alloc(&q, 0);
    param_get(&q, "extra.weight")[0] = 9;
    st_file *f = st_open(path);
    EXPECT(param_load(&q, f, "model.", 1) == 4, "4 of 5 loaded");
    EXPECT(param_get(&q, "extra.weight")[0] == 9, "absent tensor untouched");
    st_close(f);
    param_set_free(&q);
}

/* linear_backward against central differences of sum(dout * linear(x)) in double. */
static void test_linear_backward_fd(void) {
    enum { N = 4, IN = 6, OUT = 5 };
    float x[N * IN], w[OUT * IN], b[OUT], dout[N * OUT];
    unsigned s = 12345;
    for (int i = 0; i < N * IN; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 1023) / 512.0f - 1;
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 1023) / 512.0f - 1;
    for (int i = 0; i < OUT; i++) b[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 1023) / 512.0f - 1;
    for (int i = 0; i < N * OUT; i++) dout[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 1023) / 512.0f - 1;
    float dx[N * IN], dw[OUT * IN], db[OUT];
    for (int i = 0; i < N * IN; i++) dx[i] = 1; /* accumulates onto 1 */
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    linear_backward(dx, dw, db, dout, x, w, N, IN, OUT);
    /* the analytic gradients in double */
    float wx[N * IN], ww[OUT * IN], wb[OUT];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < IN; k++) {
            double t = 1;
            for (int j = 0; j < OUT; j++) t += (double)dout[i * OUT + j] * w[j * IN + k];
            wx[i * IN + k] = (float)t;
        }
    for (int j = 0; j < OUT; j++) {
        double tb = 0;
        for (int i = 0; i < N; i++) tb += dout[i * OUT + j];
        wb[j] = (float)tb;
        for (int k = 0; k < IN; k++) {
            double t = 0;
            for (int i = 0; i < N; i++) t += (double)dout[i * OUT + j] * x[i * IN + k];
            ww[j * IN + k] = (float)t;
        }
    }
    expect_close("dinp", dx, wx, N * IN, 1e-5);
    expect_close("dweight", dw, ww, OUT * IN, 1e-5);
    expect_close("dbias", db, wb, OUT, 1e-5);
    /* and one finite difference through linear_forward itself */
    float out[N * OUT], h = 1e-2f;
    double lp = 0, lm = 0;
    w[7] += h;
    linear_forward(out, x, w, b, N, IN, OUT);
    for (int i = 0; i < N * OUT; i++) lp += (double)out[i] * dout[i];
    w[7] -= 2 * h;
    linear_forward(out, x, w, b, N, IN, OUT);
    for (int i = 0; i < N * OUT; i++) lm += (double)out[i] * dout[i];
    float fd = (float)((lp - lm) / (2 * h));
    EXPECT(fabsf(fd - dw[7]) <= 1e-3f * (fabsf(dw[7]) + 1), "finite difference %g vs %g", fd, dw[7]);
}

int main(void) {
    RUN(test_layout_and_roundtrip);
    RUN(test_load_errors);
    RUN(test_linear_backward_fd);
    return unit_done();
}
