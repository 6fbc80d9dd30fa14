/* clip_text_cuda.c — the CLIP text encoder on the GPU (see clip_text_cuda.h):
 * clip_text.c's clip_text_forward, line for line, on the cuda_ops.h kernels,
 * so the two read side by side. One walk serves two purposes, as in
 * unet_cuda.c: with plan set it runs nothing and only counts the arena (bump
 * allocation with marks); without, it runs the pass in an arena sized by that
 * count. Pointers handed out while planning are made-up addresses that
 * nothing dereferences.
 * The token and position embeddings are looked up on the host, not by a
 * gather kernel on the device: the tables (vocab x D, 100 MB of f16 for SD
 * 2.x) then need no device memory, no new kernel needs a GPU to be tested,
 * and the upload is B x T x D values per pass, the size of what a gather
 * would write (2.5 MB for 16 prompts of SD 2.x in f16; one pass per batch of
 * records, against the UNet's 100 passes per record). The sum is formed in
 * float, as the CPU forms it, and rounded once to the storage type. */
#include "clip_text_cuda.h"

#include "common.h"

/* CLIP_TEXT_CUDA_EMULATE: tests/unit/test_clip_text_walk.c includes this file
 * with the cuda_ops.h names (and the few CUDA runtime calls) bound to the CPU
 * twins, so the walk runs on the CPU. */
#if defined(SYNTHCXR_CUDA) && !defined(CLIP_TEXT_CUDA_EMULATE)
#include "cuda_ops.h"
#endif
#if defined(SYNTHCXR_CUDA) || defined(CLIP_TEXT_CUDA_EMULATE)
#define CUDA_WALK_RUNS 1
#endif
#include "cuda_walk.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the walk's context (cuda_walk.h) --------------------------------------- */

typedef struct gctx {
    gwalk w;
    const clip_text_config *cfg;
    const clip_text_model *m;  /* NULL when planning from a config alone */
} gctx;

/* The first weight on the device: what follows the two embedding tables in
 * the model's one block (clip_text_load's layout). */
static __attribute__((unused)) size_t emb_floats(const clip_text_config *c) { return (size_t)(c->vocab + c->max_pos) * c->hidden; }

/* ---- the pass (clip_text_forward) ------------------------------------------------ */

static void g_act(gctx *c, void *x, size_t n) {
    switch (c->cfg->act) {
    case CLIP_ACT_QUICK_GELU: OP(c, quick_gelu_forward_cuda(x, x, n, c->w.dt)); break;
    case CLIP_ACT_GELU: OP(c, gelu_forward_cuda(x, x, n, c->w.dt)); break;
    case CLIP_ACT_GELU_TANH: OP(c, gelu_tanh_forward_cuda(x, x, n, c->w.dt)); break;
    }
}

/* x [B*T, D]: the embedded input in, the states out (through n_layers layers
 * and the final layer norm, in place). */
static void g_encoder(gctx *c, void *x, int B, int T, int n_layers) {
    static const clip_text_layer none;   /* planning from a config: every weight NULL */
    const clip_text_config *cf = c->cfg;
    const int D = cf->hidden, I = cf->inter, H = cf->heads, hd = D / H;
    const int rows = B * T;
    const size_t n = (size_t)rows * D;
    dtype_t dt = c->w.dt;
    size_t mk = gwalk_save(&c->w);
    void *h = gwalk_alloc(&c->w, n);                  /* [rows, D] */
    void *q = gwalk_alloc(&c->w, n);                  /* [B, T, H, hd] */
    void *k = gwalk_alloc(&c->w, n);                  /* [B, T, H, hd] */
    void *v = gwalk_alloc(&c->w, n);                  /* [B, T, H, hd] */
    void *f = gwalk_alloc(&c->w, (size_t)rows * I);   /* [rows, I] */

    const float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < n_layers; l++) {
        const clip_text_layer *L = c->m ? &c->m->layer[l] : &none;
        /* x = x + out_proj(attn(ln1(x))), causal: token i sees tokens <= i. */
        OP(c, layernorm_forward_cuda(h, x, gwalk_weight(&c->w, L->ln1_w), gwalk_weight(&c->w, L->ln1_b), rows, D, cf->eps, dt));
        OP(c, linear_forward_cuda(q, h, gwalk_weight(&c->w, L->q_w), gwalk_weight(&c->w, L->q_b), rows, D, D, dt));
        OP(c, linear_forward_cuda(k, h, gwalk_weight(&c->w, L->k_w), gwalk_weight(&c->w, L->k_b), rows, D, D, dt));
        OP(c, linear_forward_cuda(v, h, gwalk_weight(&c->w, L->v_w), gwalk_weight(&c->w, L->v_b), rows, D, D, dt));
        OP(c, attention_forward_cuda(q, q, k, v, B, H, T, T, hd, scale, 1, NULL, dt));
        OP(c, linear_forward_cuda(h, q, gwalk_weight(&c->w, L->o_w), gwalk_weight(&c->w, L->o_b), rows, D, D, dt));
        OP(c, eltwise_add_cuda(x, x, h, n, dt));
        /* x = x + fc2(act(fc1(ln2(x)))) */
        OP(c, layernorm_forward_cuda(h, x, gwalk_weight(&c->w, L->ln2_w), gwalk_weight(&c->w, L->ln2_b), rows, D, cf->eps, dt));
        OP(c, linear_forward_cuda(f, h, gwalk_weight(&c->w, L->fc1_w), gwalk_weight(&c->w, L->fc1_b), rows, D, I, dt));
        g_act(c, f, (size_t)rows * I);
        OP(c, linear_forward_cuda(h, f, gwalk_weight(&c->w, L->fc2_w), gwalk_weight(&c->w, L->fc2_b), rows, I, D, dt));
        OP(c, eltwise_add_cuda(x, x, h, n, dt));
    }
    OP(c, layernorm_forward_cuda(x, x, gwalk_weight(&c->w, c->m ? c->m->lnf_w : NULL), gwalk_weight(&c->w, c->m ? c->m->lnf_b : NULL), rows, D,
                                 cf->eps, dt));
    gwalk_restore(&c->w, mk);
}

static void check_dtype(dtype_t dt) {
    if (dt != DTYPE_F32 && dt != DTYPE_F16 && dt != DTYPE_BF16)
        die("clip_text_cuda: storage type %s is not f32, f16 or bf16", dtype_name(dt));
}

/* What the kernels index: rows in an int, the batch in a grid dimension. */
static void check_size(const clip_text_config *c, int B, int T) {
    if (B < 1 || T < 1 || T > c->max_pos || B > CLIP_TEXT_CUDA_MAX_BATCH ||
        (int64_t)B * T * (c->inter > c->hidden ? c->inter : c->hidden) > INT32_MAX)
        die("clip_text_cuda: a pass of %d prompts of %d tokens is outside 1..%d prompts of 1..%d tokens", B, T,
            CLIP_TEXT_CUDA_MAX_BATCH, c->max_pos);
}

/* The planning pass: bytes of the bump region at its peak. */
static size_t g_plan(const clip_text_config *cf, dtype_t dt, int B, int T) {
    check_dtype(dt);
    check_size(cf, B, T);
    gctx c = {.w = gwalk_planner("clip_text_cuda", dt), .cfg = cf};
    void *x = gwalk_alloc(&c.w, (size_t)B * T * cf->hidden);
    g_encoder(&c, x, B, T, cf->layers);
    return c.w.peak;
}

size_t clip_text_cuda_arena_bytes(const clip_text_config *c, dtype_t dt, int B, int T) {
    return g_plan(c, dt, B, T);
}

size_t clip_text_cuda_weight_bytes(const clip_text_config *c, dtype_t dt) {
    check_dtype(dt);
    const size_t D = (size_t)c->hidden, I = (size_t)c->inter;
    /* clip_text_load's block less the embeddings: per layer 2 norms, 4 D x D
     * projections with biases, fc1 and fc2 with biases; the final norm */
    const size_t per_layer = 4 * D + 4 * D * D + 4 * D + 2 * I * D + I + D;
    return ((size_t)c->layers * per_layer + 2 * D) * dtype_size(dt);
}

int clip_text_cuda_max_batch(const clip_text_config *c, dtype_t dt, int T, size_t avail) {
    /* the arena grows with the batch: bisect for the last B that fits */
    int lo = 0, hi = CLIP_TEXT_CUDA_MAX_BATCH;
    int64_t lim = INT32_MAX / ((int64_t)T * (c->inter > c->hidden ? c->inter : c->hidden));
    if (hi > lim) hi = (int)lim;
    if (hi < 1) return 0;
    if (clip_text_cuda_arena_bytes(c, dt, hi, T) <= avail) return hi;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (clip_text_cuda_arena_bytes(c, dt, mid, T) <= avail) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* ---- on the device ------------------------------------------------------------------ */

#ifdef CUDA_WALK_RUNS

struct clip_text_cuda {
    const clip_text_model *m;
    dtype_t dt;
    void *weights;            /* m->params after the embeddings, converted, same layout */
    void *arena;
    size_t arena_cap;
    gwalk_stage emb;          /* host: the embedded input of a pass [rows, D] (float) */
    gwalk_stage stage;        /* host: staging for conversions */
};

clip_text_cuda *clip_text_cuda_new(const clip_text_model *m, dtype_t dt) {
    check_dtype(dt);
    const size_t skip = emb_floats(&m->cfg), n = m->n_params - skip;
    CHECKF(m->n_params > skip && n * dtype_size(dt) == clip_text_cuda_weight_bytes(&m->cfg, dt),
           "clip_text_cuda: the model's block (%zu floats) is not clip_text_load's layout", m->n_params);
    clip_text_cuda *g = xcalloc(1, sizeof *g);
    g->m = m, g->dt = dt;
    g->weights = gwalk_upload_weights(m->params + skip, n, dt);
    return g;
}

void clip_text_cuda_free(clip_text_cuda *g) {
    if (!g) return;
    cuda_free(g->arena);
    cuda_free(g->weights);
    free(g->emb.p);
    free(g->stage.p);
    free(g);
}

dtype_t clip_text_cuda_dtype(const clip_text_cuda *g) { return g->dt; }

int clip_text_cuda_reserve(clip_text_cuda *g, int B, int T, clip_text_cuda_oom *oom) {
    return gwalk_arena_reserve(&g->arena, &g->arena_cap, clip_text_cuda_arena_bytes(&g->m->cfg, g->dt, B, T),
                               CLIP_TEXT_CUDA_RESERVE, oom);
}

void clip_text_cuda_forward(clip_text_cuda *g, float *out, const int32_t *ids, int batch, int seq, int clip_skip) {
    const clip_text_model *m = g->m;
    const clip_text_config *cf = &m->cfg;
    const int D = cf->hidden;
    /* clip_text_forward's checks, in its words */
    if (seq < 1 || seq > cf->max_pos)
        die("%s: %d tokens, but the text encoder has %d positions", m->source, seq, cf->max_pos);
    if (clip_skip < 0 || clip_skip > cf->layers)
        die("clip skip %d: the text encoder (%s) has %d layers", clip_skip, m->source, cf->layers);
    const int64_t rows = (int64_t)batch * seq;
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= cf->vocab)
            die("token id %d (prompt %lld, position %lld) is outside the text encoder's vocabulary of %d",
                ids[r], (long long)(r / seq), (long long)(r % seq), cf->vocab);
    size_t peak = g_plan(cf, g->dt, batch, seq);
    clip_text_cuda_oom oom;
    if (!clip_text_cuda_reserve(g, batch, seq, &oom))
        die("out of GPU memory: a text-encoder pass of %d prompts of %d tokens in %s needs an arena of %.2f GiB, "
            "and %.2f GiB of the GPU's %.2f GiB are free",
            batch, seq, dtype_name(g->dt), oom.need / 1073741824.0, oom.free / 1073741824.0,
            oom.total / 1073741824.0);

    /* Embeddings on the host: token row + position row, as the CPU adds them. */
    const size_t n = (size_t)rows * D;
    float *e = gwalk_stage_get(&g->emb, n * sizeof *e);
#pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) {
        const float *te = m->tok_emb + (int64_t)ids[r] * D, *pe = m->pos_emb + (r % seq) * D;
        for (int j = 0; j < D; j++) e[r * D + j] = te[j] + pe[j];
    }

    gctx c = {.w = gwalk_runner("clip_text_cuda", g->dt, g->arena, g->arena_cap, 0, g->weights,
                                m->params + emb_floats(cf), m->params + m->n_params),
              .cfg = cf, .m = m};
    void *x = gwalk_alloc(&c.w, n);
    gwalk_upload(&g->stage, x, e, n, g->dt);
    g_encoder(&c, x, batch, seq, cf->layers - clip_skip);
    CHECKF(c.w.peak == peak, "clip_text_cuda: the pass used %zu bytes, the plan %zu", c.w.peak, peak);

    gwalk_download(&g->stage, out, x, n, g->dt);   /* waits for the pass */
}

#else /* a build without CUDA: planning only */

struct clip_text_cuda { int unused; };

static void no_cuda(void) __attribute__((noreturn));
static void no_cuda(void) { die("the CUDA text encoder needs a build with CUDA (this one is CPU only)"); }
clip_text_cuda *clip_text_cuda_new(const clip_text_model *m, dtype_t dt) { (void)m, (void)dt; no_cuda(); }
void clip_text_cuda_free(clip_text_cuda *g) { (void)g; }
dtype_t clip_text_cuda_dtype(const clip_text_cuda *g) { (void)g; no_cuda(); }
int clip_text_cuda_reserve(clip_text_cuda *g, int B, int T, clip_text_cuda_oom *oom) {
    (void)g, (void)B, (void)T, (void)oom;
    no_cuda();
}
void clip_text_cuda_forward(clip_text_cuda *g, float *out, const int32_t *ids, int batch, int seq, int clip_skip) {
    (void)g, (void)out, (void)ids, (void)batch, (void)seq, (void)clip_skip;
    no_cuda();
}

#endif
