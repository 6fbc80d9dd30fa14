/* test_bert_kernels.c — the backward kernels of BERT training: layer norm
 * (forward with saved statistics and backward), exact GELU backward, softmax
 * backward (with -inf entries), training attention forward/backward (key
 * padding as HF BERT adds it; tq != tk) and the embedding scatter-add (repeated
 * ids, padding_idx). Each is checked three ways:
 *   - against torch.autograd gradients of sum(dout * f(x)) evaluated in float64
 *     (tests/oracle/make_bert_kernels.py), to 1e-5 of each tensor's scale;
 *   - accumulation: the gradient buffers start at 0.25, and must end at
 *     0.25 + the gradient (every backward adds);
 *   - float32 central differences of the same loss (h = 1e-2, loss summed in
 *     double) for every input element, to FD_TOL of the gradient's scale: the
 *     rounding noise of a float forward divided by 2h and the O(h^2) truncation
 *     are each at most a few 1e-5 here (worst seen 6e-5). */
#include "activation.h"
#include "attention.h"
#include "embedding.h"
#include "norm.h"
#include "softmax.h"
#include "unit.h"

#include <float.h>
#include <math.h>

#define TOL 1e-5
#define FD_H 1e-2f
#define FD_TOL 2e-4
#define ACC0 0.25f

static st_file *fx;

static tensor *get(const char *name, const char *part) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, part);
    return st_load_f32(fx, key, -1, NULL);
}

static const char *key_of(const char *name, const char *part) {
    static char key[128];
    snprintf(key, sizeof key, "%s.%s", name, part);
    return key;
}

static float *filled(size_t n, float v) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* got - ACC0 against the fixture gradient name.part (the buffer started at ACC0). */
static void check_grad(const char *name, const char *part, const float *got, size_t n) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, part);
    float *g = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) g[i] = got[i] - ACC0;
    tensor *want = st_load_f32(fx, key, -1, NULL);
    double e = 0;
    for (size_t i = 0; i < n && i < (size_t)tensor_numel(want); i++)
        e = fmax(e, fabs((double)g[i] - ((float *)want->data)[i]));
    printf("# %s: max err %.2e of scale %.3g\n", key, e / fmax(max_abs(want->data, n), 1e-30),
           max_abs(want->data, n));
    expect_close_fixture(fx, key, g, n, TOL);
    tensor_free(want);
    free(g);
}

/* Central differences of loss() with respect to every element of x, against
 * the analytic gradient grad (which started at ACC0). */
static void fd_check(const char *what, float *x, size_t n, const float *grad, double (*loss)(void *), void *ctx) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(grad[i] - ACC0));
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = loss(ctx);
        x[i] = x0 - FD_H;
        double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * (double)FD_H);
        err = fmax(err, fabs(fd - (grad[i] - ACC0)));
    }
    printf("# %s: finite differences max err %.2e of scale %.3g\n", what, err / fmax(scale, 1e-30), scale);
    EXPECT(err <= FD_TOL * fmax(scale, 1e-30), "%s: finite-difference error %.3g exceeds %.0e x scale %.3g", what,
           err, FD_TOL, scale);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- layer norm ----------------------------------------------------------- */
typedef struct { tensor *x, *g, *b, *dout; float *out, *mean, *rstd; int rows, ch; } ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward_save(c->out, c->mean, c->rstd, c->x->data, c->g->data, c->b->data, c->rows, c->ch, 1e-12f);
    return dot(c->out, c->dout->data, (size_t)c->rows * c->ch);
}

static void ln_case(const char *name) {
    ln_ctx c = {get(name, "x"), get(name, "gamma"), get(name, "beta"), get(name, "dout"), NULL, NULL, NULL, 0, 0};
    c.rows = (int)c.x->shape[0], c.ch = (int)c.x->shape[1];
    size_t n = (size_t)c.rows * c.ch;
    c.out = xmalloc(n * sizeof(float)), c.mean = xmalloc(c.rows * sizeof(float)), c.rstd = xmalloc(c.rows * sizeof(float));
    ln_loss(&c);
    expect_close_fixture(fx, key_of(name, "out"), c.out, n, TOL);
    /* the plain forward gives the same bits */
    float *o2 = xmalloc(n * sizeof(float));
    layernorm_forward(o2, c.x->data, c.g->data, c.b->data, c.rows, c.ch, 1e-12f);
    EXPECT(!memcmp(o2, c.out, n * sizeof(float)), "%s: layernorm_forward and _save differ", name);
    float *dx = filled(n, ACC0), *dg = filled(c.ch, ACC0), *db = filled(c.ch, ACC0);
    layernorm_backward(dx, dg, db, c.dout->data, c.x->data, c.g->data, c.mean, c.rstd, c.rows, c.ch);
    check_grad(name, "dx", dx, n);
    check_grad(name, "dgamma", dg, c.ch);
    check_grad(name, "dbeta", db, c.ch);
    fd_check("layernorm dx", c.x->data, n, dx, ln_loss, &c);
    fd_check("layernorm dgamma", c.g->data, c.ch, dg, ln_loss, &c);
    fd_check("layernorm dbeta", c.b->data, c.ch, db, ln_loss, &c);
    /* NULL gradients are skipped; dinp alone equals the full call's */
    float *dx2 = filled(n, ACC0);
    layernorm_backward(dx2, NULL, NULL, c.dout->data, c.x->data, c.g->data, c.mean, c.rstd, c.rows, c.ch);
    EXPECT(!memcmp(dx2, dx, n * sizeof(float)), "%s: dinp alone differs", name);
    free(dx), free(dg), free(db), free(dx2), free(o2), free(c.out), free(c.mean), free(c.rstd);
    tensor_free(c.x), tensor_free(c.g), tensor_free(c.b), tensor_free(c.dout);
}

static void test_layernorm_backward(void) { ln_case("ln1"); }
static void test_layernorm_backward_wide_offset(void) { ln_case("ln2"); }

/* ---- GELU ----------------------------------------------------------------- */
typedef struct { tensor *x, *dout; float *out; size_t n; } ew_ctx;

static double gelu_loss(void *p) {
    ew_ctx *c = p;
    gelu_forward(c->out, c->x->data, c->n);
    return dot(c->out, c->dout->data, c->n);
}

static void test_gelu_backward(void) {
    ew_ctx c = {get("gelu", "x"), get("gelu", "dout"), NULL, 0};
    c.n = (size_t)tensor_numel(c.x);
    c.out = xmalloc(c.n * sizeof(float));
    gelu_loss(&c);
    expect_close_fixture(fx, "gelu.out", c.out, c.n, TOL);
    float *dx = filled(c.n, ACC0);
    gelu_backward(dx, c.dout->data, c.x->data, c.n);
    check_grad("gelu", "dx", dx, c.n);
    fd_check("gelu dx", c.x->data, c.n, dx, gelu_loss, &c);
    free(dx), free(c.out);
    tensor_free(c.x), tensor_free(c.dout);
}

/* ---- softmax -------------------------------------------------------------- */
typedef struct { tensor *x, *dout; float *out; int rows, cols; } sm_ctx;

static double sm_loss(void *p) {
    sm_ctx *c = p;
    softmax_forward(c->out, c->x->data, c->rows, c->cols);
    return dot(c->out, c->dout->data, (size_t)c->rows * c->cols);
}

static void test_softmax_backward(void) {
    sm_ctx c = {get("softmax", "x"), get("softmax", "dout"), NULL, 0, 0};
    c.rows = (int)c.x->shape[0], c.cols = (int)c.x->shape[1];
    size_t n = (size_t)c.rows * c.cols;
    c.out = xmalloc(n * sizeof(float));
    sm_loss(&c);
    expect_close_fixture(fx, "softmax.out", c.out, n, TOL);
    float *dx = filled(n, ACC0);
    softmax_backward(dx, c.dout->data, c.out, c.rows, c.cols);
    check_grad("softmax", "dx", dx, n);
    /* -inf entries: perturbing them by h changes nothing; their gradient is 0 */
    fd_check("softmax dx", c.x->data, n, dx, sm_loss, &c);
    free(dx), free(c.out);
    tensor_free(c.x), tensor_free(c.dout);
}

/* ---- training attention --------------------------------------------------- */
typedef struct { tensor *q, *k, *v, *dout, *mask; float *out, *probs; int B, tq, tk, H, D; } at_ctx;

static double at_loss(void *p) {
    at_ctx *c = p;
    attention_train_forward(c->out, c->probs, c->q->data, c->k->data, c->v->data, c->B, c->H, c->tq, c->tk, c->D,
                            1.0f / sqrtf((float)c->D), c->mask ? c->mask->data : NULL);
    return dot(c->out, c->dout->data, (size_t)c->B * c->tq * c->H * c->D);
}

static void at_case(const char *name, int masked) {
    at_ctx c = {get(name, "q"), get(name, "k"), get(name, "v"), get(name, "dout"), masked ? get(name, "key_mask") : NULL,
                NULL, NULL, 0, 0, 0, 0, 0};
    c.B = (int)c.q->shape[0], c.tq = (int)c.q->shape[1], c.H = (int)c.q->shape[2], c.D = (int)c.q->shape[3];
    c.tk = (int)c.k->shape[1];
    size_t nq = (size_t)c.B * c.tq * c.H * c.D, nk = (size_t)c.B * c.tk * c.H * c.D;
    c.out = xmalloc(nq * sizeof(float)), c.probs = xmalloc((size_t)c.B * c.H * c.tq * c.tk * sizeof(float));
    at_loss(&c);
    expect_close_fixture(fx, key_of(name, "out"), c.out, nq, TOL);
    /* the training forward equals the flash-style inference kernel */
    float *o2 = xmalloc(nq * sizeof(float));
    attention_forward(o2, c.q->data, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, 1.0f / sqrtf((float)c.D), 0,
                      c.mask ? c.mask->data : NULL);
    expect_close("train vs inference attention", c.out, o2, nq, TOL);
    if (masked) { /* padded keys get probability exactly 0 */
        tensor *m = get(name, "mask_u8");
        double leak = 0;
        for (int b = 0; b < c.B; b++)
            for (int h = 0; h < c.H; h++)
                for (int i = 0; i < c.tq; i++)
                    for (int j = 0; j < c.tk; j++)
                        if (((float *)m->data)[b * c.tk + j] == 0)
                            leak = fmax(leak, c.probs[(((size_t)b * c.H + h) * c.tq + i) * c.tk + j]);
        EXPECT(leak == 0, "%s: a padded key has probability %g", name, leak);
        tensor_free(m);
    }
    float *dq = filled(nq, ACC0), *dk = filled(nk, ACC0), *dv = filled(nk, ACC0);
    attention_train_backward(dq, dk, dv, c.dout->data, c.q->data, c.k->data, c.v->data, c.probs, c.B, c.H, c.tq,
                             c.tk, c.D, 1.0f / sqrtf((float)c.D));
    check_grad(name, "dq", dq, nq);
    check_grad(name, "dk", dk, nk);
    check_grad(name, "dv", dv, nk);
    fd_check("attention dq", c.q->data, nq, dq, at_loss, &c);
    fd_check("attention dk", c.k->data, nk, dk, at_loss, &c);
    fd_check("attention dv", c.v->data, nk, dv, at_loss, &c);
    free(dq), free(dk), free(dv), free(o2), free(c.out), free(c.probs);
    tensor_free(c.q), tensor_free(c.k), tensor_free(c.v), tensor_free(c.dout);
    if (c.mask) tensor_free(c.mask);
}

static void test_attention_train_masked(void) { at_case("attn1", 1); }
static void test_attention_train_cross(void) { at_case("attn2", 0); }

/* ---- embedding ------------------------------------------------------------ */
typedef struct { tensor *table, *dout; int32_t *ids; float *out; int n, vocab, dim; } em_ctx;

static double em_loss(void *p) {
    em_ctx *c = p;
    embedding_forward(c->out, c->ids, c->table->data, c->n, c->vocab, c->dim);
    double s = 0;
    for (int i = 0; i < c->n; i++)
        if (c->ids[i] != 0) s += dot(c->out + (size_t)i * c->dim, (float *)c->dout->data + (size_t)i * c->dim, c->dim);
    return s; /* padding_idx 0: torch's loss does depend on row 0, its gradient does not */
}

static void test_embedding(void) {
    tensor *ids = st_load(fx, "emb.ids");
    em_ctx c = {get("emb", "table"), get("emb", "dout"), ids->data, NULL, (int)ids->shape[0], 0, 0};
    c.vocab = (int)c.table->shape[0], c.dim = (int)c.table->shape[1];
    size_t n = (size_t)c.n * c.dim, nt = (size_t)c.vocab * c.dim;
    c.out = xmalloc(n * sizeof(float));
    em_loss(&c);
    expect_close_fixture(fx, "emb.out", c.out, n, 0);
    float *dt = filled(nt, ACC0);
    embedding_backward(dt, c.dout->data, c.ids, c.n, c.vocab, c.dim, 0);
    check_grad("emb", "dtable", dt, nt);
    fd_check("embedding dtable", c.table->data, nt, dt, em_loss, &c);
    free(dt), free(c.out);
    tensor_free(c.table), tensor_free(c.dout), tensor_free(ids);
}

static void bad_id(void *arg) {
    (void)arg;
    float table[6] = {0}, out[2];
    int32_t ids[1] = {3};
    embedding_forward(out, ids, table, 1, 3, 2);
}

static void bad_alias(void *arg) {
    (void)arg;
    float x[4] = {0}, y[4] = {0};
    gelu_backward(x, x, y, 4);
}

static void test_errors(void) {
    expect_dies("id outside the vocabulary", bad_id, NULL, 2, "token id 3 at position 0 is outside the vocabulary of 3");
    expect_dies("gelu_backward aliasing", bad_alias, NULL, 2, "must not alias");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("bert_kernels.safetensors"));
    RUN(test_errors); /* first: forks before any OpenMP team exists */
    RUN(test_layernorm_backward);
    RUN(test_layernorm_backward_wide_offset);
    RUN(test_gelu_backward);
    RUN(test_softmax_backward);
    RUN(test_attention_train_masked);
    RUN(test_attention_train_cross);
    RUN(test_embedding);
    st_close(fx);
    return unit_done();
}
