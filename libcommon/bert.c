/* bert.c — HF BertModel forward and backward on the CPU (see bert.h): the
 * parameter table under HF names, the HF folder loader (name variants of old
 * and pre-training checkpoints), HF's random init, the activation cache, and
 * the two passes written as layer pairs over libcommon's kernels. */
#include "bert.h"

#include "activation.h"
#include "attention.h"
#include "common.h"
#include "eltwise.h"
#include "embedding.h"
#include "gemm.h"
#include "json.h"
#include "norm.h"
#include "rng.h"
#include "safetensors.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- config --------------------------------------------------------------- */

void bert_config_read(bert_config *cfg, const json_t *config, int keep_layers, const char *what) {
    if (!json_is_object(config)) die("%s: not a JSON object", what);
    /* Defaults are BertConfig's. */
    cfg->vocab = (int)json_get_int(config, "vocab_size", 30522, what);
    cfg->hidden = (int)json_get_int(config, "hidden_size", 768, what);
    cfg->layers_file = (int)json_get_int(config, "num_hidden_layers", 12, what);
    cfg->heads = (int)json_get_int(config, "num_attention_heads", 12, what);
    cfg->inter = (int)json_get_int(config, "intermediate_size", 3072, what);
    cfg->max_pos = (int)json_get_int(config, "max_position_embeddings", 512, what);
    cfg->type_vocab = (int)json_get_int(config, "type_vocab_size", 2, what);
    cfg->pad_id = (int)json_get_int(config, "pad_token_id", 0, what);
    cfg->eps = (float)json_get_num(config, "layer_norm_eps", 1e-12, what);
    cfg->init_range = (float)json_get_num(config, "initializer_range", 0.02, what);
    /* RoBERTa and the like share the field names but not the positions */
    const char *type = json_get_str(config, "model_type", "bert", what);
    if (strcmp(type, "bert")) die("%s: model_type \"%s\" is not supported (only \"bert\")", what, type);
    const char *act = json_get_str(config, "hidden_act", "gelu", what);
    if (strcmp(act, "gelu"))
        die("%s: hidden_act \"%s\" is not supported (only \"gelu\", the exact erf GELU of BERT)", what, act);
    const char *pe = json_get_str(config, "position_embedding_type", "absolute", what);
    if (strcmp(pe, "absolute"))
        die("%s: position_embedding_type \"%s\" is not supported (only \"absolute\")", what, pe);
    if (json_get_bool(config, "is_decoder", 0, what) || json_get_bool(config, "add_cross_attention", 0, what))
        die("%s: a decoder / cross-attention BERT is not supported (BertModel as an encoder only)", what);
    if (cfg->vocab <= 0 || cfg->hidden <= 0 || cfg->layers_file <= 0 || cfg->heads <= 0 || cfg->inter <= 0 ||
        cfg->max_pos <= 0 || cfg->type_vocab <= 0 || cfg->hidden > 1 << 16 || cfg->inter > 1 << 18 ||
        cfg->vocab > 1 << 24 || cfg->max_pos > 1 << 16 || cfg->layers_file > 256 || cfg->type_vocab > 1 << 16)
        die("%s: not a BERT config: vocab_size %d, hidden_size %d, num_hidden_layers %d, num_attention_heads %d, "
            "intermediate_size %d, max_position_embeddings %d, type_vocab_size %d",
            what, cfg->vocab, cfg->hidden, cfg->layers_file, cfg->heads, cfg->inter, cfg->max_pos, cfg->type_vocab);
    if (cfg->hidden % cfg->heads)
        die("%s: hidden_size %d is not a multiple of num_attention_heads %d", what, cfg->hidden, cfg->heads);
    if (!(cfg->eps > 0) || !isfinite(cfg->eps)) die("%s: layer_norm_eps %g is not positive", what, (double)cfg->eps);
    if (!(cfg->init_range >= 0) || !isfinite(cfg->init_range))
        die("%s: initializer_range %g is not valid", what, (double)cfg->init_range);
    if (cfg->pad_id < 0 || cfg->pad_id >= cfg->vocab) cfg->pad_id = -1; /* no padding_idx */
    if (keep_layers < 0) die("%s: cannot keep %d layers", what, keep_layers);
    if (keep_layers > cfg->layers_file)
        die("%s: cannot keep %d layers of a model with num_hidden_layers %d", what, keep_layers, cfg->layers_file);
    cfg->layers = keep_layers ? keep_layers : cfg->layers_file;
}

/* ---- parameters ----------------------------------------------------------- */

static void add(param_set *ps, const char *name, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    param_add(ps, name, d1 ? 2 : 1, shape, 1); /* MGCA's AdamW decays every parameter */
}

static void add_layer_param(param_set *ps, int l, const char *suffix, int64_t d0, int64_t d1) {
    char *name = xasprintf("encoder.layer.%d.%s", l, suffix);
    add(ps, name, d0, d1);
    free(name);
}

/* Linear layers: weight [out, in] and bias [out], as nn.Linear. */
static void add_linear(param_set *ps, int l, const char *mod, int64_t out_f, int64_t in_f) {
    char s[64];
    snprintf(s, sizeof s, "%s.weight", mod);
    add_layer_param(ps, l, s, out_f, in_f);
    snprintf(s, sizeof s, "%s.bias", mod);
    add_layer_param(ps, l, s, out_f, 0);
}

static void register_params(param_set *ps, const bert_config *c) {
    add(ps, "embeddings.word_embeddings.weight", c->vocab, c->hidden);
    add(ps, "embeddings.position_embeddings.weight", c->max_pos, c->hidden);
    add(ps, "embeddings.token_type_embeddings.weight", c->type_vocab, c->hidden);
    add(ps, "embeddings.LayerNorm.weight", c->hidden, 0);
    add(ps, "embeddings.LayerNorm.bias", c->hidden, 0);
    for (int l = 0; l < c->layers; l++) {
        add_linear(ps, l, "attention.self.query", c->hidden, c->hidden);
        add_linear(ps, l, "attention.self.key", c->hidden, c->hidden);
        add_linear(ps, l, "attention.self.value", c->hidden, c->hidden);
        add_linear(ps, l, "attention.output.dense", c->hidden, c->hidden);
        add_linear(ps, l, "attention.output.LayerNorm", c->hidden, 0);
        add_linear(ps, l, "intermediate.dense", c->inter, c->hidden);
        add_linear(ps, l, "output.dense", c->hidden, c->inter);
        add_linear(ps, l, "output.LayerNorm", c->hidden, 0);
    }
}

/* Pointers into base (params.data or params.grad) by entry offset. */
static float *at(const param_set *ps, float *base, const char *name) {
    const param_entry *e = param_find(ps, name);
    CHECKF(e, "bert: no parameter %s", name);
    return base + e->offset;
}

static float *at_layer(const param_set *ps, float *base, int l, const char *suffix) {
    char *name = xasprintf("encoder.layer.%d.%s", l, suffix);
    float *p = at(ps, base, name);
    free(name);
    return p;
}

static void map_weights(bert_weights *w, const param_set *ps, float *base, int layers) {
    w->word = at(ps, base, "embeddings.word_embeddings.weight");
    w->pos = at(ps, base, "embeddings.position_embeddings.weight");
    w->type = at(ps, base, "embeddings.token_type_embeddings.weight");
    w->ln_w = at(ps, base, "embeddings.LayerNorm.weight");
    w->ln_b = at(ps, base, "embeddings.LayerNorm.bias");
    w->layer = xcalloc((size_t)layers, sizeof *w->layer);
    for (int l = 0; l < layers; l++) {
        bert_layer *L = &w->layer[l];
        L->q_w = at_layer(ps, base, l, "attention.self.query.weight");
        L->q_b = at_layer(ps, base, l, "attention.self.query.bias");
        L->k_w = at_layer(ps, base, l, "attention.self.key.weight");
        L->k_b = at_layer(ps, base, l, "attention.self.key.bias");
        L->v_w = at_layer(ps, base, l, "attention.self.value.weight");
        L->v_b = at_layer(ps, base, l, "attention.self.value.bias");
        L->ao_w = at_layer(ps, base, l, "attention.output.dense.weight");
        L->ao_b = at_layer(ps, base, l, "attention.output.dense.bias");
        L->ln1_w = at_layer(ps, base, l, "attention.output.LayerNorm.weight");
        L->ln1_b = at_layer(ps, base, l, "attention.output.LayerNorm.bias");
        L->i_w = at_layer(ps, base, l, "intermediate.dense.weight");
        L->i_b = at_layer(ps, base, l, "intermediate.dense.bias");
        L->o_w = at_layer(ps, base, l, "output.dense.weight");
        L->o_b = at_layer(ps, base, l, "output.dense.bias");
        L->ln2_w = at_layer(ps, base, l, "output.LayerNorm.weight");
        L->ln2_b = at_layer(ps, base, l, "output.LayerNorm.bias");
    }
}

bert_model *bert_new(const json_t *config, int keep_layers, const char *what) {
    bert_model *m = xcalloc(1, sizeof *m);
    bert_config_read(&m->cfg, config, keep_layers, what);
    m->config = json_deep_copy(config);
    CHECK(m->config);
    param_set_init(&m->params);
    register_params(&m->params, &m->cfg);
    param_set_alloc(&m->params, 1);
    map_weights(&m->w, &m->params, m->params.data, m->cfg.layers);
    map_weights(&m->g, &m->params, m->params.grad, m->cfg.layers);
    return m;
}

void bert_free(bert_model *m) {
    if (!m) return;
    free(m->w.layer);
    free(m->g.layer);
    param_set_free(&m->params);
    json_decref(m->config);
    free(m);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* The key of name in f: as is, with "bert." in front, or with TF-era
 * LayerNorm.gamma / LayerNorm.beta for .weight / .bias; NULL if none. */
static const char *find_key(const st_file *f, const char *name, char *buf, size_t cap) {
    const char *prefixes[2] = {"", "bert."};
    for (int alt = 0; alt < 2; alt++) {
        char base[PARAM_NAME_MAX + 8];
        snprintf(base, sizeof base, "%s", name);
        if (alt) {
            if (has_suffix(name, "LayerNorm.weight"))
                snprintf(base + strlen(base) - strlen("weight"), 8, "gamma");
            else if (has_suffix(name, "LayerNorm.bias"))
                snprintf(base + strlen(base) - strlen("bias"), 8, "beta");
            else
                continue;
        }
        for (int p = 0; p < 2; p++) {
            snprintf(buf, cap, "%s%s", prefixes[p], base);
            if (st_find(f, buf)) return buf;
        }
    }
    return NULL;
}

bert_model *bert_load(const char *dir, int keep_layers) {
    char *cfg_path = xasprintf("%s/config.json", dir);
    char *st_path = xasprintf("%s/model.safetensors", dir);
    if (!file_exists(st_path)) {
        char *bin = xasprintf("%s/pytorch_model.bin", dir);
        char *idx = xasprintf("%s/model.safetensors.index.json", dir);
        if (file_exists(idx))
            die("%s: sharded safetensors weights are not supported; save the model as one model.safetensors "
                "(BERT-base is 440 MB)", idx);
        if (file_exists(bin))
            die("%s has only pytorch_model.bin (a pickle, which this program does not read); convert it once "
                "to model.safetensors, e.g. python -c \"from transformers import BertModel; "
                "BertModel.from_pretrained('%s').save_pretrained('%s')\"", dir, dir, dir);
        die("%s: no model.safetensors (an HF BERT folder holds config.json and model.safetensors)", dir);
    }
    json_t *config = json_load_path(cfg_path);
    bert_model *m = bert_new(config, keep_layers, cfg_path);
    json_decref(config);
    st_file *f = st_open(st_path);
    char key[PARAM_NAME_MAX + 16];
    for (int i = 0; i < m->params.n; i++) {
        const param_entry *e = &m->params.e[i];
        const char *k = find_key(f, e->name, key, sizeof key);
        if (!k) die("%s: missing tensor \"%s\" (nor bert.%s)", st_path, e->name, e->name);
        st_read_f32(f, k, e->ndim, e->shape, m->params.data + e->offset);
    }
    st_close(f);
    free(cfg_path);
    free(st_path);
    return m;
}

void bert_init_random(bert_model *m, uint64_t seed) {
    torch_gen g;
    torch_gen_seed(&g, seed);
    const param_set *ps = &m->params;
    for (int i = 0; i < ps->n; i++) {
        const param_entry *e = &ps->e[i];
        float *p = ps->data + e->offset;
        if (has_suffix(e->name, "LayerNorm.weight"))
            for (size_t j = 0; j < e->numel; j++) p[j] = 1.0f;
        else if (has_suffix(e->name, ".bias"))
            memset(p, 0, e->numel * sizeof(float));
        else
            torch_normal_f32(&g, p, (int64_t)e->numel, 0.0, m->cfg.init_range);
    }
    if (m->cfg.pad_id >= 0) memset(m->w.word + (size_t)m->cfg.pad_id * m->cfg.hidden, 0, m->cfg.hidden * sizeof(float));
}

char *bert_config_text(const bert_model *m) {
    json_t *c = json_deep_copy(m->config);
    CHECK(c);
    json_object_set_new(c, "num_hidden_layers", json_integer(m->cfg.layers));
    char *s = json_dumps(c, JSON_INDENT(2) | JSON_SORT_KEYS);
    CHECK(s);
    json_decref(c);
    char *r = xstrdup(s);
    free(s);
    return r;
}

/* ---- activation cache ------------------------------------------------------ */

/* Carves n floats (64-byte aligned) from the block; with block NULL only counts. */
static float *take(float *block, size_t *used, size_t n) {
    float *p = block ? block + *used : NULL;
    *used += (n + 15) & ~(size_t)15;
    return p;
}

static void cache_layout(bert_cache *c, const bert_config *cfg, float *block) {
    size_t u = 0, N = (size_t)c->max_batch * c->max_seq, H = cfg->hidden, I = cfg->inter;
    c->key_mask = take(block, &u, N);
    c->emb = take(block, &u, N * H);
    c->emb_mean = take(block, &u, N);
    c->emb_rstd = take(block, &u, N);
    for (int l = 0; l <= cfg->layers; l++) c->h[l] = take(block, &u, N * H);
    for (int l = 0; l < cfg->layers; l++) {
        struct bert_layer_acts *a = &c->l[l];
        a->q = take(block, &u, N * H);
        a->k = take(block, &u, N * H);
        a->v = take(block, &u, N * H);
        a->probs = take(block, &u, N * cfg->heads * c->max_seq);
        a->ctx = take(block, &u, N * H);
        a->res1 = take(block, &u, N * H);
        a->mean1 = take(block, &u, N);
        a->rstd1 = take(block, &u, N);
        a->a = take(block, &u, N * H);
        a->pre = take(block, &u, N * I);
        a->act = take(block, &u, N * I);
        a->res2 = take(block, &u, N * H);
        a->mean2 = take(block, &u, N);
        a->rstd2 = take(block, &u, N);
    }
    float **d[] = {&c->dh0, &c->dh1, &c->dres, &c->da, &c->dctx, &c->dq, &c->dk, &c->dv};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) *d[i] = take(block, &u, N * H);
    c->dact = take(block, &u, N * I);
    c->dpre = take(block, &u, N * I);
    c->floats = u;
}

bert_cache *bert_cache_new(const bert_model *m, int max_batch, int max_seq) {
    const bert_config *cfg = &m->cfg;
    if (max_batch <= 0 || max_seq <= 0) die("bert_cache_new: bad batch %d or sequence length %d", max_batch, max_seq);
    if (max_seq > cfg->max_pos)
        die("bert_cache_new: sequence length %d exceeds max_position_embeddings %d", max_seq, cfg->max_pos);
    if ((double)max_batch * max_seq * (cfg->heads * max_seq + 8.0 * cfg->hidden + 2.0 * cfg->inter) *
            (cfg->layers + 1) > 1e11)
        die("bert_cache_new: batch %d x sequence %d needs too much memory", max_batch, max_seq);
    bert_cache *c = xcalloc(1, sizeof *c);
    c->max_batch = max_batch, c->max_seq = max_seq;
    c->h = xcalloc((size_t)cfg->layers + 1, sizeof *c->h);
    c->l = xcalloc((size_t)cfg->layers, sizeof *c->l);
    cache_layout(c, cfg, NULL);
    c->block = xmalloc_aligned(c->floats * sizeof(float));
    cache_layout(c, cfg, c->block);
    size_t N = (size_t)max_batch * max_seq;
    c->ids = xmalloc(N * sizeof *c->ids);
    c->pos_ids = xmalloc(N * sizeof *c->pos_ids);
    c->type_ids = xcalloc(N, sizeof *c->type_ids);
    return c;
}

void bert_cache_free(bert_cache *c) {
    if (!c) return;
    free(c->block);
    free(c->h);
    free(c->l);
    free(c->ids);
    free(c->pos_ids);
    free(c->type_ids);
    free(c);
}

/* ---- forward --------------------------------------------------------------- */

const float *bert_forward(const bert_model *m, bert_cache *c, const int32_t *ids, const uint8_t *mask, int batch,
                          int seq) {
    const bert_config *cfg = &m->cfg;
    if (!ids) die("bert_forward: NULL ids");
    if (batch <= 0 || seq <= 0 || batch > c->max_batch || seq > c->max_seq)
        die("bert_forward: batch %d x sequence %d does not fit the cache (%d x %d)", batch, seq, c->max_batch,
            c->max_seq);
    const int H = cfg->hidden, I = cfg->inter, N = batch * seq, D = H / cfg->heads;
    c->batch = batch, c->seq = seq;
    memcpy(c->ids, ids, (size_t)N * sizeof *ids);
    for (int i = 0; i < N; i++) {
        c->pos_ids[i] = i % seq;
        /* HF: (1 - mask) * finfo(float32).min, added to every head's scores */
        c->key_mask[i] = mask && !mask[i] ? -FLT_MAX : 0.0f;
    }
    /* embeddings: (word + token_type) + position, as BertEmbeddings adds them */
    embedding_forward(c->emb, c->ids, m->w.word, N, cfg->vocab, H);
#pragma omp parallel for schedule(static) if ((long)N * H > 65536)
    for (int i = 0; i < N; i++) {
        float *e = c->emb + (size_t)i * H;
        const float *tt = m->w.type, *pp = m->w.pos + (size_t)(i % seq) * H;
#pragma omp simd
        for (int j = 0; j < H; j++) e[j] = (e[j] + tt[j]) + pp[j];
    }
    layernorm_forward_save(c->h[0], c->emb_mean, c->emb_rstd, c->emb, m->w.ln_w, m->w.ln_b, N, H, cfg->eps);

    for (int l = 0; l < cfg->layers; l++) {
        const bert_layer *w = &m->w.layer[l];
        struct bert_layer_acts *a = &c->l[l];
        const float *x = c->h[l];
        linear_forward(a->q, x, w->q_w, w->q_b, N, H, H);
        linear_forward(a->k, x, w->k_w, w->k_b, N, H, H);
        linear_forward(a->v, x, w->v_w, w->v_b, N, H, H);
        attention_train_forward(a->ctx, a->probs, a->q, a->k, a->v, batch, cfg->heads, seq, seq, D,
                                1.0f / sqrtf((float)D), c->key_mask);
        linear_forward(a->res1, a->ctx, w->ao_w, w->ao_b, N, H, H);
        eltwise_add(a->res1, a->res1, x, (size_t)N * H);
        layernorm_forward_save(a->a, a->mean1, a->rstd1, a->res1, w->ln1_w, w->ln1_b, N, H, cfg->eps);
        linear_forward(a->pre, a->a, w->i_w, w->i_b, N, H, I);
        gelu_forward(a->act, a->pre, (size_t)N * I);
        linear_forward(a->res2, a->act, w->o_w, w->o_b, N, I, H);
        eltwise_add(a->res2, a->res2, a->a, (size_t)N * H);
        layernorm_forward_save(c->h[l + 1], a->mean2, a->rstd2, a->res2, w->ln2_w, w->ln2_b, N, H, cfg->eps);
    }
    return c->h[cfg->layers];
}

/* ---- backward -------------------------------------------------------------- */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

void bert_backward(bert_model *m, bert_cache *c, const float *dlast) {
    const bert_config *cfg = &m->cfg;
    if (!dlast) die("bert_backward: NULL gradient");
    if (c->batch <= 0) die("bert_backward: no forward pass to go back through");
    const int batch = c->batch, seq = c->seq, H = cfg->hidden, I = cfg->inter, N = batch * seq,
              D = H / cfg->heads;
    const size_t NH = (size_t)N * H, NI = (size_t)N * I;
    float *dcur = c->dh0, *dprev = c->dh1; /* gradients of h[l+1] and h[l] */
    memcpy(dcur, dlast, NH * sizeof(float));
    for (int l = cfg->layers - 1; l >= 0; l--) {
        const bert_layer *w = &m->w.layer[l];
        const bert_layer *g = &m->g.layer[l];
        const struct bert_layer_acts *a = &c->l[l];
        const float *x = c->h[l];
        /* h[l+1] = LN2(res2), res2 = a + dense_o(gelu(dense_i(a))): da gets the
         * residual path from LN2's backward, then the MLP path adds to it. */
        zero(c->da, NH);
        layernorm_backward(c->da, g->ln2_w, g->ln2_b, dcur, a->res2, w->ln2_w, a->mean2, a->rstd2, N, H);
        zero(c->dact, NI);
        linear_backward(c->dact, g->o_w, g->o_b, c->da, a->act, w->o_w, N, I, H);
        zero(c->dpre, NI);
        gelu_backward(c->dpre, c->dact, a->pre, NI);
        linear_backward(c->da, g->i_w, g->i_b, c->dpre, a->a, w->i_w, N, H, I);
        /* a = LN1(res1), res1 = x + dense_ao(attention(x)): likewise into dprev */
        zero(dprev, NH);
        layernorm_backward(dprev, g->ln1_w, g->ln1_b, c->da, a->res1, w->ln1_w, a->mean1, a->rstd1, N, H);
        zero(c->dctx, NH);
        linear_backward(c->dctx, g->ao_w, g->ao_b, dprev, a->ctx, w->ao_w, N, H, H);
        zero(c->dq, NH), zero(c->dk, NH), zero(c->dv, NH);
        attention_train_backward(c->dq, c->dk, c->dv, c->dctx, a->q, a->k, a->v, a->probs, batch, cfg->heads, seq,
                                 seq, D, 1.0f / sqrtf((float)D));
        linear_backward(dprev, g->q_w, g->q_b, c->dq, x, w->q_w, N, H, H);
        linear_backward(dprev, g->k_w, g->k_b, c->dk, x, w->k_w, N, H, H);
        linear_backward(dprev, g->v_w, g->v_b, c->dv, x, w->v_w, N, H, H);
        float *t = dcur;
        dcur = dprev, dprev = t;
    }
    zero(c->dres, NH);
    layernorm_backward(c->dres, m->g.ln_w, m->g.ln_b, dcur, c->emb, m->w.ln_w, c->emb_mean, c->emb_rstd, N, H);
    embedding_backward(m->g.word, c->dres, c->ids, N, cfg->vocab, H, cfg->pad_id);
    embedding_backward(m->g.pos, c->dres, c->pos_ids, N, cfg->max_pos, H, -1);
    embedding_backward(m->g.type, c->dres, c->type_ids, N, cfg->type_vocab, H, -1);
}
