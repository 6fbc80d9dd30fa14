/* test_bert.c — libcommon/bert against HF transformers' BertModel
 * (tests/oracle/make_bert.py): a tiny BERT (hidden 32, 2 layers, 2 heads,
 * intermediate 64, vocab 100) loaded from its HF folder
 * tests/fixtures/models/tiny-bert/, a batch of three sequences (16, 11 and 5
 * real tokens of T = 16).
 * What is measured, against references computed in float64 by torch:
 *   - forward: max |C - ref| over last_hidden_state, <= 1e-5 of max |ref|
 *     (also T = 112, the first-layer-only truncation, and a smaller batch in a
 *     larger cache);
 *   - backward: for EVERY parameter tensor, max |C grad - ref grad| <= 1e-4 of
 *     max |ref grad| of that tensor (the key biases, whose gradient is exactly
 *     0, against the scale of their key weight's gradient), the loss being
 *     sum(dout * last_hidden_state) for the fixture's random dout;
 *   - gradients accumulate: a second backward doubles them;
 *   - finite differences: float32 central differences (h = 1e-2, the loss
 *     summed in double) at the 3 largest-gradient elements and 3 random ones
 *     of every parameter tensor, to FD_TOL of that tensor's gradient scale;
 *   - loading: "bert."-prefixed keys with LayerNorm.gamma/beta give the same
 *     parameters; bad configs and a pytorch_model.bin-only folder die with
 *     messages naming the problem; HF's random init. */
#include "bert.h"
#include "json.h"
#include "unit.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <sys/stat.h>

#define FWD_TOL 1e-5
#define GRAD_TOL 1e-4
#define FD_H 1e-2f
#define FD_TOL 1e-3

static st_file *fx;
static char tiny[4096]; /* the HF folder, under the fixtures */

static double rel_max_err(const float *got, const float *want, size_t n, double *scale_out) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - want[i])), s = fmax(s, fabs(want[i]));
    if (scale_out) *scale_out = s;
    return e / (s > 0 ? s : 1);
}

typedef struct { tensor *ids, *mask; int B, T; } batch_in;

static batch_in load_batch(const char *ids_name, const char *mask_name) {
    batch_in b = {st_load(fx, ids_name), st_load(fx, mask_name), 0, 0};
    CHECK(b.ids->dtype == DTYPE_I32 && b.mask->dtype == DTYPE_U8);
    b.B = (int)b.ids->shape[0], b.T = (int)b.ids->shape[1];
    return b;
}

static void free_batch(batch_in *b) { tensor_free(b->ids), tensor_free(b->mask); }

static void fwd_case(const char *what, int keep, const char *ids, const char *mask, const char *want_name,
                     int cache_b, int cache_t) {
    bert_model *m = bert_load(tiny, keep);
    batch_in in = load_batch(ids, mask);
    bert_cache *c = bert_cache_new(m, cache_b ? cache_b : in.B, cache_t ? cache_t : in.T);
    const float *out = bert_forward(m, c, in.ids->data, in.mask->data, in.B, in.T);
    tensor *want = st_load_f32(fx, want_name, -1, NULL);
    size_t n = (size_t)in.B * in.T * m->cfg.hidden;
    EXPECT((size_t)tensor_numel(want) == n, "%s: size", what);
    double s, e = rel_max_err(out, want->data, n, &s);
    printf("# %s: last_hidden_state [%d, %d, %d], %d layers: max err %.2e of scale %.3g\n", what, in.B, in.T,
           m->cfg.hidden, m->cfg.layers, e, s);
    expect_close(what, out, want->data, n, FWD_TOL);
    tensor_free(want);
    free_batch(&in);
    bert_cache_free(c);
    bert_free(m);
}

static void test_forward(void) { fwd_case("forward T=16", 0, "ids", "mask", "last_hidden", 0, 0); }
static void test_forward_t112(void) { fwd_case("forward T=112", 0, "ids112", "mask112", "last_hidden112", 0, 0); }
static void test_forward_truncated(void) { fwd_case("first layer only", 1, "ids", "mask", "trunc1.last_hidden", 0, 0); }
static void test_forward_larger_cache(void) {
    fwd_case("batch 3 x 16 in a 5 x 40 cache", 0, "ids", "mask", "last_hidden", 5, 40);
}

/* Compares every parameter gradient with the fixture; with factor 2, against
 * twice the reference (after two backward passes). Returns the worst ratio. */
static double check_grads(const bert_model *m, double factor, int verbose) {
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->params.n; i++) {
        const param_entry *e = &m->params.e[i];
        char key[PARAM_NAME_MAX + 8];
        snprintf(key, sizeof key, "grad.%s", e->name);
        tensor *want = st_load_f32(fx, key, e->ndim, e->shape);
        float *w = want->data;
        for (size_t j = 0; j < e->numel; j++) w[j] *= (float)factor;
        const float *got = m->params.grad + e->offset;
        double s, err = rel_max_err(got, w, e->numel, &s);
        const char *kb = strstr(e->name, "attention.self.key.bias");
        if (kb) { /* exact gradient 0: measured against the key weight's gradient scale */
            char wname[PARAM_NAME_MAX + 8];
            snprintf(wname, sizeof wname, "grad.%.*sattention.self.key.weight", (int)(kb - e->name), e->name);
            tensor *kw = st_load_f32(fx, wname, -1, NULL);
            double ks = 0;
            for (int64_t j = 0; j < tensor_numel(kw); j++) ks = fmax(ks, fabs(((float *)kw->data)[j]) * factor);
            tensor_free(kw);
            err = err * (s > 0 ? s : 1) / ks;
            s = ks;
        }
        if (verbose) printf("#   %-52s max err %.2e of scale %.3g\n", e->name, err, s);
        EXPECT(err <= GRAD_TOL, "%s: gradient max abs error %.3g of scale %.3g exceeds %.0e", e->name, err, s,
               GRAD_TOL);
        for (size_t j = 0; j < e->numel; j++)
            if (!isfinite(got[j])) {
                unit_fail("%s: gradient element %zu is not finite", e->name, j);
                break;
            }
        if (err > worst) worst = err, worst_name = e->name;
        tensor_free(want);
    }
    printf("# worst gradient: %s, %.2e of its scale (%d tensors)\n", worst_name, worst, m->params.n);
    return worst;
}

static void test_backward(void) {
    bert_model *m = bert_load(tiny, 0);
    batch_in in = load_batch("ids", "mask");
    bert_cache *c = bert_cache_new(m, in.B, in.T);
    tensor *dout = st_load_f32(fx, "dout", -1, NULL);
    param_zero_grad(&m->params);
    bert_forward(m, c, in.ids->data, in.mask->data, in.B, in.T);
    bert_backward(m, c, dout->data);
    check_grads(m, 1.0, 1);
    /* accumulation: a second pass adds the same gradients */
    bert_forward(m, c, in.ids->data, in.mask->data, in.B, in.T);
    bert_backward(m, c, dout->data);
    printf("# after a second backward, against twice the reference:\n");
    check_grads(m, 2.0, 0);
    tensor_free(dout);
    free_batch(&in);
    bert_cache_free(c);
    bert_free(m);
}

/* The same in a cache larger than the batch (the layout follows the batch). */
static void test_backward_larger_cache(void) {
    bert_model *m = bert_load(tiny, 0);
    batch_in in = load_batch("ids", "mask");
    bert_cache *c = bert_cache_new(m, 4, 24);
    tensor *dout = st_load_f32(fx, "dout", -1, NULL);
    param_zero_grad(&m->params);
    bert_forward(m, c, in.ids->data, in.mask->data, in.B, in.T);
    bert_backward(m, c, dout->data);
    check_grads(m, 1.0, 0);
    tensor_free(dout);
    free_batch(&in);
    bert_cache_free(c);
    bert_free(m);
}

static double loss_of(const bert_model *m, bert_cache *c, const batch_in *in, const float *dout) {
    const float *h = bert_forward(m, c, in->ids->data, in->mask->data, in->B, in->T);
    double s = 0;
    for (size_t i = 0, n = (size_t)in->B * in->T * m->cfg.hidden; i < n; i++) s += (double)h[i] * dout[i];
    return s;
}

static void test_finite_differences(void) {
    bert_model *m = bert_load(tiny, 0);
    batch_in in = load_batch("ids", "mask");
    bert_cache *c = bert_cache_new(m, in.B, in.T);
    tensor *dout = st_load_f32(fx, "dout", -1, NULL);
    param_zero_grad(&m->params);
    bert_forward(m, c, in.ids->data, in.mask->data, in.B, in.T);
    bert_backward(m, c, dout->data);
    unsigned seed = 12345;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->params.n; i++) {
        const param_entry *e = &m->params.e[i];
        float *p = m->params.data + e->offset, *g = m->params.grad + e->offset;
        double scale = 0;
        for (size_t j = 0; j < e->numel; j++) scale = fmax(scale, fabs(g[j]));
        /* the three largest gradients and three random elements */
        size_t pick[6];
        for (int k = 0; k < 3; k++) {
            size_t best = 0;
            double bv = -1;
            for (size_t j = 0; j < e->numel; j++) {
                int used = 0;
                for (int q = 0; q < k; q++) used |= pick[q] == j;
                if (!used && fabs(g[j]) > bv) bv = fabs(g[j]), best = j;
            }
            pick[k] = best;
        }
        for (int k = 3; k < 6; k++) seed = seed * 1664525u + 1013904223u, pick[k] = (seed >> 8) % e->numel;
        double err = 0;
        for (int k = 0; k < 6; k++) {
            size_t j = pick[k];
            float p0 = p[j];
            p[j] = p0 + FD_H;
            double lp = loss_of(m, c, &in, dout->data);
            p[j] = p0 - FD_H;
            double lm = loss_of(m, c, &in, dout->data);
            p[j] = p0;
            err = fmax(err, fabs((lp - lm) / (2.0 * FD_H) - g[j]));
        }
        /* key biases (exact gradient 0): against their key weight's gradient
         * scale, the entry registered just before them */
        double ref = scale;
        if (strstr(e->name, "attention.self.key.bias")) {
            const param_entry *kw = e - 1;
            ref = 0;
            for (size_t j = 0; j < kw->numel; j++) ref = fmax(ref, fabs(m->params.grad[kw->offset + j]));
        }
        if (err / ref > worst) worst = err / ref, worst_name = e->name;
        EXPECT(err <= FD_TOL * ref, "%s: finite-difference error %.3g exceeds %.0e x scale %.3g", e->name, err, FD_TOL,
               ref);
    }
    printf("# finite differences, 6 elements of each of %d tensors: worst %s, %.2e of its gradient scale\n",
           m->params.n, worst_name, worst);
    tensor_free(dout);
    free_batch(&in);
    bert_cache_free(c);
    bert_free(m);
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* A BertForPreTraining-style copy of tiny-bert: "bert." in front of every key,
 * LayerNorm.gamma/.beta for .weight/.bias, and an extra head tensor. */
static void test_name_variants(void) {
    const char *dir = unit_tmpdir();
    char *sub = xasprintf("%s/pretraining", dir);
    CHECK(mkdir(sub, 0755) == 0 || errno == EEXIST);
    char *src = xasprintf("%s/model.safetensors", tiny);
    st_file *f = st_open(src);
    int n = f->n + 1;
    char **names = xcalloc((size_t)n, sizeof *names);
    const tensor **ts = xcalloc((size_t)n, sizeof *ts);
    for (int i = 0; i < f->n; i++) {
        const char *k = f->entries[i].name;
        char buf[256];
        snprintf(buf, sizeof buf, "bert.%s", k);
        if (ends_with(buf, "LayerNorm.weight")) strcpy(buf + strlen(buf) - 6, "gamma");
        else if (ends_with(buf, "LayerNorm.bias")) strcpy(buf + strlen(buf) - 4, "beta");
        names[i] = xstrdup(buf);
        ts[i] = st_load(f, k);
    }
    int64_t hs[1] = {100};
    names[f->n] = xstrdup("cls.predictions.bias");
    ts[f->n] = tensor_new(DTYPE_F32, 1, hs);
    memset(ts[f->n]->data, 0, 100 * sizeof(float));
    char *dst = xasprintf("%s/model.safetensors", sub);
    st_write(dst, n, (const char *const *)names, ts, NULL);
    size_t len;
    char *cfgsrc = xasprintf("%s/config.json", tiny), *cfgdst = xasprintf("%s/config.json", sub);
    unsigned char *cfg = unit_slurp(cfgsrc, &len);
    unit_spit(cfgdst, cfg, len);
    bert_model *a = bert_load(tiny, 0), *b = bert_load(sub, 0);
    EXPECT(a->params.total == b->params.total, "parameter counts differ");
    EXPECT(!memcmp(a->params.data, b->params.data, a->params.total * sizeof(float)),
           "bert.-prefixed gamma/beta copy loads different parameters");
    EXPECT(a->params.n == 5 + 2 * 16, "%d parameter tensors, expected 37 (no pooler)", a->params.n);
    bert_free(a), bert_free(b);
    st_close(f);
    param_list_free(n, names, ts);
    free(cfg), free(cfgsrc), free(cfgdst), free(src), free(dst), free(sub);
}

static void test_truncated_config(void) {
    bert_model *m = bert_load(tiny, 1);
    EXPECT(m->cfg.layers == 1 && m->cfg.layers_file == 2, "layers %d of %d", m->cfg.layers, m->cfg.layers_file);
    EXPECT(m->params.n == 5 + 16, "%d parameter tensors", m->params.n);
    EXPECT(!param_find(&m->params, "encoder.layer.1.output.dense.weight"), "layer 1 registered");
    char *txt = bert_config_text(m);
    json_error_t jerr;
    json_t *j = json_loads(txt, 0, &jerr);
    EXPECT(j && json_get_int(j, "num_hidden_layers", -1, "config") == 1, "config text: %s", txt);
    EXPECT(j && !strcmp(json_get_str(j, "hidden_act", "", "config"), "gelu"), "config text lost hidden_act");
    json_decref(j);
    free(txt);
    bert_free(m);
}

static json_t *tiny_config(void) {
    char *p = xasprintf("%s/config.json", tiny);
    json_t *j = json_load_path(p);
    free(p);
    return j;
}

static void test_random_init(void) {
    json_t *cfg = tiny_config();
    json_object_set_new(cfg, "vocab_size", json_integer(3000)); /* enough draws for a std estimate */
    bert_model *a = bert_new(cfg, 0, "tiny"), *b = bert_new(cfg, 0, "tiny"), *c = bert_new(cfg, 0, "tiny");
    bert_init_random(a, 7), bert_init_random(b, 7), bert_init_random(c, 8);
    EXPECT(!memcmp(a->params.data, b->params.data, a->params.total * sizeof(float)), "same seed, different weights");
    EXPECT(memcmp(a->params.data, c->params.data, a->params.total * sizeof(float)), "seeds 7 and 8 agree");
    int H = a->cfg.hidden, bad = 0;
    for (int i = 0; i < H; i++) {
        bad |= a->w.ln_w[i] != 1.0f || a->w.ln_b[i] != 0.0f || a->w.layer[1].ln2_w[i] != 1.0f;
        bad |= a->w.layer[0].q_b[i] != 0.0f || a->w.layer[1].o_b[i] != 0.0f || a->w.word[i] != 0.0f; /* pad row */
    }
    EXPECT(!bad, "LayerNorm not 1/0, a bias not 0, or the [PAD] row not 0");
    double s = 0, s2 = 0;
    size_t n = (size_t)(a->cfg.vocab - 1) * H;
    for (size_t i = 0; i < n; i++) s += a->w.word[H + i], s2 += (double)a->w.word[H + i] * a->w.word[H + i];
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    printf("# word embeddings: mean %.2e, std %.5f (initializer_range 0.02)\n", mean, sd);
    EXPECT(fabs(sd - 0.02) < 0.0005 && fabs(mean) < 0.0005, "std %g mean %g", sd, mean);
    bert_free(a), bert_free(b), bert_free(c);
    json_decref(cfg);
}

/* ---- errors (run first: they fork) ---- */
static void new_with(void *arg) {
    json_t *cfg = tiny_config();
    const char **kv = arg;
    json_object_set_new(cfg, kv[0], json_string(kv[1]));
    bert_new(cfg, 0, "cfg.json");
}

static void new_keep3(void *arg) {
    (void)arg;
    bert_new(tiny_config(), 3, "cfg.json");
}

static void load_dir(void *arg) { bert_load(arg, 0); }

static void bad_id_forward(void *arg) {
    (void)arg;
    bert_model *m = bert_load(tiny, 0);
    bert_cache *c = bert_cache_new(m, 1, 4);
    int32_t ids[4] = {2, 5, 100, 0};
    bert_forward(m, c, ids, NULL, 1, 4);
}

static void too_long(void *arg) {
    (void)arg;
    bert_model *m = bert_load(tiny, 0);
    bert_cache_new(m, 1, 129);
}

static void test_errors(void) {
    const char *relu[2] = {"hidden_act", "relu"}, *rel[2] = {"position_embedding_type", "relative_key"};
    expect_dies("relu", new_with, relu, 2, "cfg.json: hidden_act \"relu\" is not supported");
    expect_dies("relative positions", new_with, rel, 2, "position_embedding_type \"relative_key\"");
    const char *roberta[2] = {"model_type", "roberta"};
    expect_dies("roberta", new_with, roberta, 2, "model_type \"roberta\" is not supported");
    expect_dies("keep 3 of 2 layers", new_keep3, NULL, 2, "cannot keep 3 layers of a model with num_hidden_layers 2");
    char *bin = xasprintf("%s/binonly", unit_tmpdir());
    CHECK(mkdir(bin, 0755) == 0 || errno == EEXIST);
    char *p = xasprintf("%s/pytorch_model.bin", bin);
    unit_spit(p, "x", 1);
    expect_dies("pytorch_model.bin only", load_dir, bin, 2, "has only pytorch_model.bin");
    expect_dies("no weights", load_dir, (void *)unit_tmpdir(), 2, "no model.safetensors");
    expect_dies("id 100 of vocab 100", bad_id_forward, NULL, 2, "token id 100 at position 2 is outside the vocabulary");
    expect_dies("T 129 > 128 positions", too_long, NULL, 2, "exceeds max_position_embeddings 128");
    free(p), free(bin);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    snprintf(tiny, sizeof tiny, "%s", fixture_path("models/tiny-bert"));
    fx = st_open(fixture_path("bert.safetensors"));
    RUN(test_errors); /* first: forks before any OpenMP team exists */
    RUN(test_forward);
    RUN(test_forward_t112);
    RUN(test_forward_truncated);
    RUN(test_forward_larger_cache);
    RUN(test_backward);
    RUN(test_backward_larger_cache);
    RUN(test_finite_differences);
    RUN(test_name_variants);
    RUN(test_truncated_config);
    RUN(test_random_init);
    st_close(fx);
    return unit_done();
}
