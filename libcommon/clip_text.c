/* clip_text.c — CLIPTextModel forward on the libcommon CPU kernels
 * (linear_forward, layernorm_forward, attention_forward with causal=1, the
 * activations), and its loading from a diffusers text_encoder/ folder. */
#include "clip_text.h"

#include "activation.h"
#include "attention.h"
#include "common.h"
#include "eltwise.h"
#include "gemm.h"
#include "json.h"
#include "norm.h"
#include "safetensors.h"

#include <math.h>
#include <string.h>

void clip_text_config_read(clip_text_config *cfg, const json_t *config, const char *what) {
    /* Absent keys take CLIPTextConfig's defaults. */
    cfg->vocab = (int)json_get_int(config, "vocab_size", 49408, what);
    cfg->max_pos = (int)json_get_int(config, "max_position_embeddings", 77, what);
    cfg->hidden = (int)json_get_int(config, "hidden_size", 512, what);
    cfg->heads = (int)json_get_int(config, "num_attention_heads", 8, what);
    cfg->layers = (int)json_get_int(config, "num_hidden_layers", 12, what);
    cfg->inter = (int)json_get_int(config, "intermediate_size", 2048, what);
    cfg->eps = (float)json_get_num(config, "layer_norm_eps", 1e-5, what);
    const char *act = json_get_str(config, "hidden_act", "quick_gelu", what);
    if (!strcmp(act, "quick_gelu")) {
        cfg->act = CLIP_ACT_QUICK_GELU, cfg->act_name = "quick_gelu";
    } else if (!strcmp(act, "gelu")) {
        cfg->act = CLIP_ACT_GELU, cfg->act_name = "gelu";
    } else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh")) {
        cfg->act = CLIP_ACT_GELU_TANH, cfg->act_name = "gelu_tanh";
    } else {
        die("%s: hidden_act \"%s\" is not one this text encoder knows (quick_gelu, gelu, gelu_new, "
            "gelu_pytorch_tanh)", what, act);
    }
    if (cfg->vocab < 1 || cfg->max_pos < 1 || cfg->hidden < 1 || cfg->heads < 1 || cfg->layers < 0 ||
        cfg->inter < 1 || cfg->hidden % cfg->heads || !(cfg->eps > 0))
        die("%s: not a CLIP text config: vocab_size %d, max_position_embeddings %d, hidden_size %d, "
            "num_attention_heads %d, num_hidden_layers %d, intermediate_size %d, layer_norm_eps %g",
            what, cfg->vocab, cfg->max_pos, cfg->hidden, cfg->heads, cfg->layers, cfg->inter, cfg->eps);
}

/* The weight files of a part, open together: a sharded checkpoint spreads the
 * tensors over several, and the names may or may not carry "text_model.". */
typedef struct weight_files {
    int n;
    st_file **f;
    const diffusers_part *part;
} weight_files;

static void load_weight(const weight_files *w, const char *name, int ndim, const int64_t *shape, float *out) {
    char full[256];
    for (int pass = 0; pass < 2; pass++) {
        snprintf(full, sizeof full, "%s%s", pass ? "" : "text_model.", name);
        for (int i = 0; i < w->n; i++)
            if (st_find(w->f[i], full)) {
                st_read_f32(w->f[i], full, ndim, shape, out);
                return;
            }
    }
    die("%s: missing tensor \"text_model.%s\"%s", w->f[0]->path, name,
        w->n > 1 ? " (in none of the shards)" : "");
}

clip_text_model *clip_text_load(const diffusers_part *part, dtype_t round_to) {
    if (!part->config || part->n_weights < 1) die("%s: no text encoder config or weights", part->dir);
    clip_text_model *m = xcalloc(1, sizeof *m);
    clip_text_config *c = &m->cfg;
    clip_text_config_read(c, part->config, part->config_path);
    const int64_t D = c->hidden, I = c->inter;

    /* One block: embeddings, the layers, the final norm. */
    const size_t per_layer = (size_t)(4 * D + 4 * D * D + 4 * D + 2 * I * D + I + D);
    m->n_params = (size_t)(c->vocab + c->max_pos) * D + (size_t)c->layers * per_layer + 2 * D;
    m->params = xmalloc_aligned(m->n_params * sizeof(float));
    m->layer = xcalloc(c->layers > 0 ? c->layers : 1, sizeof *m->layer);
    float *p = m->params;
#define TAKE(ptr, n) ((ptr) = p, p += (n))
    TAKE(m->tok_emb, c->vocab * D);
    TAKE(m->pos_emb, c->max_pos * D);
    for (int l = 0; l < c->layers; l++) {
        clip_text_layer *L = &m->layer[l];
        TAKE(L->ln1_w, D), TAKE(L->ln1_b, D), TAKE(L->ln2_w, D), TAKE(L->ln2_b, D);
        TAKE(L->q_w, D * D), TAKE(L->k_w, D * D), TAKE(L->v_w, D * D), TAKE(L->o_w, D * D);
        TAKE(L->q_b, D), TAKE(L->k_b, D), TAKE(L->v_b, D), TAKE(L->o_b, D);
        TAKE(L->fc1_w, I * D), TAKE(L->fc2_w, D * I), TAKE(L->fc1_b, I), TAKE(L->fc2_b, D);
    }
    TAKE(m->lnf_w, D), TAKE(m->lnf_b, D);
#undef TAKE
    CHECK(p == m->params + m->n_params);

    weight_files w = {part->n_weights, xcalloc(part->n_weights, sizeof(st_file *)), part};
    for (int i = 0; i < w.n; i++) w.f[i] = st_open(part->weight_paths[i]);
    m->source = xstrdup(part->weight_paths[0]);
    load_weight(&w, "embeddings.token_embedding.weight", 2, (int64_t[]){c->vocab, D}, m->tok_emb);
    load_weight(&w, "embeddings.position_embedding.weight", 2, (int64_t[]){c->max_pos, D}, m->pos_emb);
    for (int l = 0; l < c->layers; l++) {
        clip_text_layer *L = &m->layer[l];
        struct { const char *name; float *dst; int ndim; int64_t d0, d1; } ws[] = {
            {"layer_norm1.weight", L->ln1_w, 1, D, 0}, {"layer_norm1.bias", L->ln1_b, 1, D, 0},
            {"layer_norm2.weight", L->ln2_w, 1, D, 0}, {"layer_norm2.bias", L->ln2_b, 1, D, 0},
            {"self_attn.q_proj.weight", L->q_w, 2, D, D}, {"self_attn.q_proj.bias", L->q_b, 1, D, 0},
            {"self_attn.k_proj.weight", L->k_w, 2, D, D}, {"self_attn.k_proj.bias", L->k_b, 1, D, 0},
            {"self_attn.v_proj.weight", L->v_w, 2, D, D}, {"self_attn.v_proj.bias", L->v_b, 1, D, 0},
            {"self_attn.out_proj.weight", L->o_w, 2, D, D}, {"self_attn.out_proj.bias", L->o_b, 1, D, 0},
            {"mlp.fc1.weight", L->fc1_w, 2, I, D}, {"mlp.fc1.bias", L->fc1_b, 1, I, 0},
            {"mlp.fc2.weight", L->fc2_w, 2, D, I}, {"mlp.fc2.bias", L->fc2_b, 1, D, 0},
        };
        for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
            char name[160];
            snprintf(name, sizeof name, "encoder.layers.%d.%s", l, ws[k].name);
            load_weight(&w, name, ws[k].ndim, (int64_t[]){ws[k].d0, ws[k].d1}, ws[k].dst);
        }
    }
    load_weight(&w, "final_layer_norm.weight", 1, (int64_t[]){D}, m->lnf_w);
    load_weight(&w, "final_layer_norm.bias", 1, (int64_t[]){D}, m->lnf_b);
    for (int i = 0; i < w.n; i++) st_close(w.f[i]);
    free(w.f);

    if (round_to == DTYPE_F16) {
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = f16_to_f32(f32_to_f16(m->params[i]));
    } else if (round_to == DTYPE_BF16) {
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = bf16_to_f32(f32_to_bf16(m->params[i]));
    } else if (round_to != DTYPE_F32) {
        die("clip_text_load: weights can be rounded to f16 or bf16 only, not %s", dtype_name(round_to));
    }
    return m;
}

void clip_text_free(clip_text_model *m) {
    if (!m) return;
    free(m->params);
    free(m->layer);
    free(m->source);
    free(m);
}

static void act_forward(clip_act act, float *x, size_t n) {
    switch (act) {
    case CLIP_ACT_QUICK_GELU: quick_gelu_forward(x, x, n); break;
    case CLIP_ACT_GELU: gelu_forward(x, x, n); break;
    case CLIP_ACT_GELU_TANH: gelu_tanh_forward(x, x, n); break;
    }
}

void clip_text_forward(const clip_text_model *m, float *out, const int32_t *ids, int batch, int seq,
                       int clip_skip) {
    const clip_text_config *c = &m->cfg;
    const int D = c->hidden, I = c->inter, H = c->heads, hd = D / H;
    if (seq < 1 || seq > c->max_pos)
        die("%s: %d tokens, but the text encoder has %d positions", m->source, seq, c->max_pos);
    if (clip_skip < 0 || clip_skip > c->layers)
        die("clip skip %d: the text encoder (%s) has %d layers", clip_skip, m->source, c->layers);
    const int64_t rows = (int64_t)batch * seq;
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= c->vocab)
            die("token id %d (prompt %lld, position %lld) is outside the text encoder's vocabulary of %d",
                ids[r], (long long)(r / seq), (long long)(r % seq), c->vocab);

    float *x = out;                                           /* [rows, D] the residual stream */
    float *h = xmalloc_aligned((size_t)rows * D * sizeof(float));     /* [rows, D] */
    float *q = xmalloc_aligned((size_t)rows * D * sizeof(float));     /* [batch, seq, H, hd] */
    float *k = xmalloc_aligned((size_t)rows * D * sizeof(float));     /* [batch, seq, H, hd] */
    float *v = xmalloc_aligned((size_t)rows * D * sizeof(float));     /* [batch, seq, H, hd] */
    float *f = xmalloc_aligned((size_t)rows * I * sizeof(float));     /* [rows, I] */

    /* Embeddings: token row + position row. */
#pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) {
        const float *te = m->tok_emb + (int64_t)ids[r] * D, *pe = m->pos_emb + (r % seq) * D;
        for (int j = 0; j < D; j++) x[r * D + j] = te[j] + pe[j];
    }
    const float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->layers - clip_skip; l++) {
        const clip_text_layer *L = &m->layer[l];
        /* x = x + out_proj(attn(ln1(x))), causal: token i sees tokens <= i. */
        layernorm_forward(h, x, L->ln1_w, L->ln1_b, (int)rows, D, c->eps);
        linear_forward(q, h, L->q_w, L->q_b, (int)rows, D, D);
        linear_forward(k, h, L->k_w, L->k_b, (int)rows, D, D);
        linear_forward(v, h, L->v_w, L->v_b, (int)rows, D, D);
        attention_forward(q, q, k, v, batch, H, seq, seq, hd, scale, 1, NULL);
        linear_forward(h, q, L->o_w, L->o_b, (int)rows, D, D);
        eltwise_add(x, x, h, (size_t)rows * D);
        /* x = x + fc2(act(fc1(ln2(x)))) */
        layernorm_forward(h, x, L->ln2_w, L->ln2_b, (int)rows, D, c->eps);
        linear_forward(f, h, L->fc1_w, L->fc1_b, (int)rows, D, I);
        act_forward(c->act, f, (size_t)rows * I);
        linear_forward(h, f, L->fc2_w, L->fc2_b, (int)rows, I, D);
        eltwise_add(x, x, h, (size_t)rows * D);
    }
    layernorm_forward(out, x, m->lnf_w, m->lnf_b, (int)rows, D, c->eps);
    free(h), free(q), free(k), free(v), free(f);
}
