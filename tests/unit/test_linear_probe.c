/* test_linear_probe.c — the linear probe against torch (make_linear_probe.py):
 * AdamW on BCE-with-logits and on cross-entropy, three epochs of batches in
 * torch's order (the last batch smaller), the loss of every step, the final
 * weights, validation logits and loss, at MGCA's lr 5e-4 and at a large lr;
 * then the early-stopping rule (stop after `patience` epochs without a
 * strictly lower validation loss; the best epoch's weights restored). */
#include "linear_probe.h"
#include "metrics.h"
#include "unit.h"

static st_file *F;

static float *get(const char *task, const char *cfg, const char *what, int64_t *shape) {
    char name[96];
    if (cfg) snprintf(name, sizeof name, "%s_%s_%s", task, cfg, what);
    else snprintf(name, sizeof name, "%s_%s", task, what);
    const st_entry *e = st_get(F, name);
    tensor *t = st_load_f32(F, name, -1, NULL);
    if (shape) for (int i = 0; i < e->ndim; i++) shape[i] = e->shape[i];
    float *d = xmalloc((size_t)tensor_numel(t) * sizeof *d);
    memcpy(d, t->data, (size_t)tensor_numel(t) * sizeof *d);
    tensor_free(t);
    return d;
}

static void run_case(const char *task, const char *cfg, float lr, float wd) {
    int64_t xs[2], ys[2], os[2], vs[2];
    float *x = get(task, NULL, "x", xs), *y = get(task, NULL, "y", ys), *xv = get(task, NULL, "xv", vs);
    float *yv = get(task, NULL, "yv", NULL), *w0 = get(task, NULL, "w0", NULL), *b0 = get(task, NULL, "b0", NULL);
    float *ord = get(task, NULL, "order", os);   /* int32 converted to float: exact below 2^24 */
    float *losses = get(task, cfg, "losses", NULL), *w = get(task, cfg, "w", NULL), *b = get(task, cfg, "b", NULL);
    float *vloss = get(task, cfg, "vloss", NULL), *vlogits = get(task, cfg, "vlogits", NULL);
    int n = (int)xs[0], feat = (int)xs[1], out = (int)ys[1], epochs = (int)os[0], nv = (int)vs[0], B = 8;
    int multi = !strcmp(task, "bce");
    linear_probe p;
    probe_init(&p, feat, out, 1);
    memcpy(p.weight, w0, (size_t)out * feat * sizeof *w0);
    memcpy(p.bias, b0, (size_t)out * sizeof *b0);
    probe_config c = probe_defaults(multi, 0);
    c.lr = lr;
    c.weight_decay = wd;
    float *xb = xmalloc((size_t)B * feat * 4), *tb = xmalloc((size_t)B * out * 4);
    float *got_losses = xmalloc((size_t)epochs * n * 4);
    int steps = 0;
    for (int e = 0; e < epochs; e++)
        for (int s = 0; s < n; s += B) {
            int bs = n - s < B ? n - s : B;
            for (int k = 0; k < bs; k++) {
                int r = (int)ord[e * n + s + k];
                memcpy(xb + k * feat, x + r * feat, (size_t)feat * 4);
                memcpy(tb + k * out, y + r * out, (size_t)out * 4);
            }
            got_losses[steps++] = (float)probe_step(&p, &c, xb, tb, bs);
        }
    char what[96];
    snprintf(what, sizeof what, "%s %s losses (%d steps)", task, cfg, steps);
    expect_close(what, got_losses, losses, (size_t)steps, 1e-5);
    snprintf(what, sizeof what, "%s %s weight", task, cfg);
    expect_close(what, p.weight, w, (size_t)out * feat, 1e-5);
    snprintf(what, sizeof what, "%s %s bias", task, cfg);
    expect_close(what, p.bias, b, (size_t)out, 1e-5);
    /* the weights moved: the comparison above is not of the starting point */
    double moved = 0;
    for (int i = 0; i < out * feat; i++) moved = fmax(moved, fabs(w[i] - w0[i]));
    EXPECT(moved > 1e-3, "%s %s: weights moved only %g", task, cfg, moved);
    float *lg = xmalloc((size_t)nv * out * 4);
    probe_predict(&p, xv, nv, lg);
    snprintf(what, sizeof what, "%s %s validation logits", task, cfg);
    expect_close(what, lg, vlogits, (size_t)nv * out, 1e-5);
    float vl = (float)probe_eval_loss(&p, xv, yv, nv, multi);
    snprintf(what, sizeof what, "%s %s validation loss", task, cfg);
    expect_close(what, &vl, vloss, 1, 1e-5);
    probe_free(&p);
    free(lg); free(xb); free(tb); free(got_losses);
    free(x); free(y); free(xv); free(yv); free(w0); free(b0); free(ord); free(losses); free(w); free(b);
    free(vloss); free(vlogits);
}

static void test_torch_bce(void) {
    run_case("bce", "mgca", 5e-4f, 1e-6f);
    run_case("bce", "big", 2e-2f, 1e-2f);
}

static void test_torch_ce(void) {
    run_case("ce", "mgca", 5e-4f, 1e-6f);
    run_case("ce", "big", 2e-2f, 1e-2f);
}

/* Early stopping: training labels unrelated to validation ones, so the
 * validation loss rises after a few epochs; the run must stop exactly
 * `patience` epochs after its best and hand back the best weights. */
static void test_early_stopping(void) {
    enum { N = 60, NV = 30, FEAT = 8, OUT = 2 };
    static float x[N * FEAT], t[N * OUT], xv[NV * FEAT], tv[NV * OUT];
    uint64_t st = 42;
    for (int i = 0; i < N * FEAT; i++) x[i] = (float)((double)(splitmix64_next(&st) >> 11) * 0x1p-53 * 2 - 1);
    for (int i = 0; i < NV * FEAT; i++) xv[i] = (float)((double)(splitmix64_next(&st) >> 11) * 0x1p-53 * 2 - 1);
    for (int i = 0; i < N * OUT; i++) t[i] = (float)(splitmix64_next(&st) & 1);
    for (int i = 0; i < NV * OUT; i++) tv[i] = (float)(splitmix64_next(&st) & 1);
    linear_probe p;
    probe_init(&p, FEAT, OUT, 7);
    probe_config c = probe_defaults(1, 3);
    c.lr = 0.05f;
    c.batch = 16;
    c.max_epochs = 200;
    c.patience = 4;
    common_quiet = 1;
    probe_result r = probe_train(&p, &c, x, t, N, xv, tv, NV);
    EXPECT(r.epochs_run < 200 && r.epochs_run == r.best_epoch + 4, "ran %d epochs, best %d, patience 4",
           r.epochs_run, r.best_epoch);
    double vl = probe_eval_loss(&p, xv, tv, NV, 1);
    EXPECT(fabs(vl - r.best_val_loss) <= 1e-12, "restored weights give %.9g, best was %.9g", vl, r.best_val_loss);
    probe_free(&p);
    /* the same seed gives the same run */
    linear_probe q;
    probe_init(&q, FEAT, OUT, 7);
    probe_result r2 = probe_train(&q, &c, x, t, N, xv, tv, NV);
    EXPECT(r2.epochs_run == r.epochs_run && r2.best_val_loss == r.best_val_loss, "not reproducible");
    probe_free(&q);
    /* a learnable task with max_epochs 5 and patience 10 runs all 5 */
    for (int i = 0; i < NV * OUT; i++) tv[i] = xv[(i / OUT) * FEAT + i % OUT] > 0;
    for (int i = 0; i < N * OUT; i++) t[i] = x[(i / OUT) * FEAT + i % OUT] > 0;
    probe_init(&q, FEAT, OUT, 8);
    c.max_epochs = 5;
    c.patience = 10;
    c.lr = 5e-3f;
    r2 = probe_train(&q, &c, x, t, N, xv, tv, NV);
    EXPECT(r2.epochs_run == 5 && r2.best_epoch == 5, "learnable: %d epochs, best %d", r2.epochs_run, r2.best_epoch);
    probe_free(&q);
}

int main(void) {
    F = st_open(fixture_path("linear_probe_ref.safetensors"));
    RUN(test_torch_bce);
    RUN(test_torch_ce);
    RUN(test_early_stopping);
    st_close(F);
    return unit_done();
}
