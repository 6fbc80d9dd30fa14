/* test_clip_text_walk.c — the GPU text encoder's walk (libcommon/clip_text_cuda.c)
 * run on the CPU: this file includes clip_text_cuda.c with every cuda_ops.h op
 * it calls bound to its CPU twin (cuda_walk_emu.h), the device being host memory, so the
 * weight mapping, the arena layout, the buffer aliasing, the layer order and
 * the clip skip of the GPU code are checked against clip_text_forward on the
 * tiny SD 1 and SD 2 text encoders without a GPU.
 * The emulated ops keep the real ones' storage: each reads its tensors in the
 * storage type, computes in float on the CPU twin and rounds its result once
 * to the storage type, as cuda_ops.h says the CUDA ops do. So in f32 the walk
 * must equal clip_text_forward bit for bit (same kernels, same order), and in
 * f16 and bf16 it measures, on the CPU, the rounding error the GPU will show
 * (the GPU adds only its own summation order): the tolerances of
 * test_gpu_clip_text.c rest on these figures. The emulated ops also check
 * what the real ones require: no output aliasing an input where the op
 * forbids it, attention causal (clip_attention_rule, below), every buffer
 * inside the arena or the weights.
 * Then the planner: its bytes by formula, the SD 1.5 and SD 2.1 text encoders'
 * figures, the reservation refusing what does not fit. What it cannot check:
 * the CUDA kernels themselves (test_gpu_ops.c, test_gpu_attention.c, on a GPU). */
#undef SYNTHCXR_CUDA
#define CLIP_TEXT_CUDA_EMULATE 1

#include "unit.h"
#include "clip_text.h"
#include "cuda_walk_emu.h"
#include "json.h"
#include "tensor.h"

/* the text encoder's attention, at every call of the walk */
static void clip_attention_rule(int tq, int tk, int causal, const float *mask) {
    CHECKF(causal == 1 && !mask && tq == tk, "emu: the text encoder's attention is causal, unmasked, square");
}

#include "../../libcommon/clip_text_cuda.c"

/* ---- the tests ------------------------------------------------------------------------ */

static st_file *ref;

/* f16 and bf16 bounds on max|walk - cpu| / max|cpu| for the tiny encoders,
 * the same as test_gpu_clip_text.c's: 4x the largest error measured here
 * (printed below: f16 1.7e-3, bf16 1.7e-2, both at sd2 clip skip 0), so
 * that the GPU's own summation order and the attention kernels' extra
 * rounding of the probabilities to the storage type (for the tensor-core
 * product with V) have room, and no more. */
#define TOL_F16 7e-3
#define TOL_BF16 7e-2

typedef struct tiny {
    const char *key;
    diffusers_model *dm;
    clip_text_model *m;
    tensor *ids;
    int B;
} tiny;

static tiny tiny_open(const char *key, const char *folder, dtype_t round_to) {
    tiny t = {.key = key};
    t.dm = diffusers_open(fixture_path(folder), DIFFUSERS_PREFER_FP32);
    t.m = clip_text_load(diffusers_part_get(t.dm, "text_encoder"), round_to);
    char name[64];
    snprintf(name, sizeof name, "%s.ids", key);
    t.ids = st_load(ref, name);
    CHECK(t.ids->dtype == DTYPE_I32 && t.ids->ndim == 2 && t.ids->shape[1] == 77);
    t.B = (int)t.ids->shape[0];
    return t;
}
static void tiny_close(tiny *t) {
    tensor_free(t->ids);
    clip_text_free(t->m);
    diffusers_close(t->dm);
}

static double max_rel_err(const float *got, const float *want, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d;   /* NaN propagates */
        if (fabs((double)want[i]) > s) s = fabs((double)want[i]);
    }
    return e / (s > 0 ? s : 1);
}

/* f32: every clip skip (down to no layer at all: the final norm of the
 * embeddings), the whole batch and each prompt alone, bit for bit. */
static void check_f32(const char *key, const char *folder) {
    tiny t = tiny_open(key, folder, DTYPE_F32);
    const clip_text_config *c = &t.m->cfg;
    const int T = 77, D = c->hidden;
    const size_t n = (size_t)t.B * T * D;
    clip_text_cuda *g = clip_text_cuda_new(t.m, DTYPE_F32);
    float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
    for (int skip = 0; skip <= c->layers; skip++) {
        emu_attn_calls = 0;
        clip_text_forward(t.m, want, t.ids->data, t.B, T, skip);
        memset(got, 0xff, n * sizeof *got);
        clip_text_cuda_forward(g, got, t.ids->data, t.B, T, skip);
        EXPECT(emu_attn_calls == c->layers - skip, "%s skip %d: %d attention calls", key, skip, emu_attn_calls);
        double e = max_rel_err(got, want, n);
        printf("# %s f32 clip skip %d (B=%d): walk vs clip_text_forward err %.2e; arena %zu bytes\n", key, skip,
               t.B, e, clip_text_cuda_arena_bytes(c, DTYPE_F32, t.B, T));
        EXPECT(!memcmp(got, want, n * sizeof *got), "%s f32 skip %d: not bit for bit (err %.3g)", key, skip, e);
        for (int b = 0; b < t.B; b++) {
            clip_text_cuda_forward(g, got, (int32_t *)t.ids->data + (size_t)b * T, 1, T, skip);
            clip_text_forward(t.m, want, (int32_t *)t.ids->data + (size_t)b * T, 1, T, skip);
            EXPECT(!memcmp(got, want, (size_t)T * D * sizeof *got), "%s f32 skip %d: prompt %d alone", key, skip, b);
        }
    }
    /* the reference itself: the states transformers gave (test_clip_text.c checks the CPU at 1e-4) */
    clip_text_cuda_forward(g, got, t.ids->data, t.B, T, 0);
    char name[64];
    snprintf(name, sizeof name, "%s.hidden", key);
    expect_close_fixture(ref, name, got, n, 1e-4);
    free(want), free(got);
    clip_text_cuda_free(g);
    tiny_close(&t);
}

static void test_sd1_f32(void) { check_f32("sd1", "models/tiny-sd1"); }
static void test_sd2_f32(void) { check_f32("sd2", "models/tiny-sd2"); }

/* f16 and bf16 storage against the CPU forward with the same (rounded) weights. */
static void check_storage(const char *key, const char *folder) {
    const dtype_t dts[2] = {DTYPE_F16, DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        tiny t = tiny_open(key, folder, dts[d]);
        const clip_text_config *c = &t.m->cfg;
        const size_t n = (size_t)t.B * 77 * c->hidden;
        clip_text_cuda *g = clip_text_cuda_new(t.m, dts[d]);
        float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
        for (int skip = 0; skip <= 2; skip++) {
            clip_text_forward(t.m, want, t.ids->data, t.B, 77, skip);
            clip_text_cuda_forward(g, got, t.ids->data, t.B, 77, skip);
            double e = max_rel_err(got, want, n), tol = dts[d] == DTYPE_F16 ? TOL_F16 : TOL_BF16;
            printf("# %s %s clip skip %d: emulated storage vs clip_text_forward err %.2e (tol %.0e)\n", key,
                   dtype_name(dts[d]), skip, e, tol);
            char what[96];
            snprintf(what, sizeof what, "%s %s skip %d", key, dtype_name(dts[d]), skip);
            expect_close(what, got, want, n, tol);
            EXPECT(e > 0, "%s: no rounding at all? the storage type is not applied", what);
        }
        free(want), free(got);
        clip_text_cuda_free(g);
        tiny_close(&t);
    }
}

static void test_sd1_storage(void) { check_storage("sd1", "models/tiny-sd1"); }
static void test_sd2_storage(void) { check_storage("sd2", "models/tiny-sd2"); }

/* The CPU forward's checks, in its words, before anything runs. */
static clip_text_cuda *dying_g;
static tiny dying_t;
static void die_seq(void *arg) {
    (void)arg;
    static int32_t ids[78];
    clip_text_cuda_forward(dying_g, NULL, ids, 1, 78, 0);
}
static void die_skip(void *arg) {
    (void)arg;
    clip_text_cuda_forward(dying_g, NULL, dying_t.ids->data, 1, 77, 4);
}
static void die_id(void *arg) {
    (void)arg;
    static int32_t ids[77];
    ids[5] = 49408;
    clip_text_cuda_forward(dying_g, NULL, ids, 1, 77, 0);
}
static void die_dtype(void *arg) {
    (void)arg;
    clip_text_cuda_new(dying_t.m, DTYPE_I32);
}
static void test_errors(void) {
    dying_t = tiny_open("sd1", "models/tiny-sd1", DTYPE_F32);
    dying_g = clip_text_cuda_new(dying_t.m, DTYPE_F32);
    expect_dies("78 tokens", die_seq, NULL, 2, "78 tokens, but the text encoder has 77 positions");
    expect_dies("clip skip 4", die_skip, NULL, 2, "clip skip 4: the text encoder");
    expect_dies("id 49408", die_id, NULL, 2, "token id 49408 (prompt 0, position 5) is outside");
    expect_dies("i32 storage", die_dtype, NULL, 2, "storage type i32 is not f32, f16 or bf16");
    clip_text_cuda_free(dying_g);
    tiny_close(&dying_t);
}

/* ---- the planner ------------------------------------------------------------------- */

static size_t al(size_t n) { return (n + 255) / 256 * 256; }

/* The arena is the residual stream plus h, q, k, v and the MLP's [rows, I],
 * each rounded to 256 bytes; the weights are the block less the embeddings. */
static void test_plan_formula(void) {
    const char *keys[] = {"sd1", "sd2"}, *folders[] = {"models/tiny-sd1", "models/tiny-sd2"};
    const dtype_t dts[3] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        tiny t = tiny_open(keys[i], folders[i], DTYPE_F32);
        const clip_text_config *c = &t.m->cfg;
        for (int d = 0; d < 3; d++) {
            size_t es = dtype_size(dts[d]);
            EXPECT(clip_text_cuda_weight_bytes(c, dts[d]) ==
                       (t.m->n_params - (size_t)(c->vocab + c->max_pos) * c->hidden) * es,
                   "%s %s: weight bytes", keys[i], dtype_name(dts[d]));
            for (int B = 1; B <= 64; B = B * 3 + 1)
                for (int T = 1; T <= 77; T += 19) {
                    size_t rows = (size_t)B * T;
                    size_t want = 5 * al(rows * c->hidden * es) + al(rows * c->inter * es);
                    size_t got = clip_text_cuda_arena_bytes(c, dts[d], B, T);
                    EXPECT(got == want, "%s %s B=%d T=%d: %zu bytes, formula %zu", keys[i], dtype_name(dts[d]), B,
                           T, got, want);
                }
        }
        tiny_close(&t);
    }
}

/* The real text encoders (transformers' configs of runwayml/stable-diffusion-v1-5
 * and stabilityai/stable-diffusion-2-1 text_encoder/config.json): parameter
 * counts as published (123,060,480 and 340,387,840), then the figures. */
static void plan_real(const char *name, const char *json, size_t n_params) {
    json_error_t err;
    json_t *j = json_loads(json, 0, &err);
    CHECK(j);
    clip_text_config c;
    clip_text_config_read(&c, j, name);
    json_decref(j);
    size_t emb = (size_t)(c.vocab + c.max_pos) * c.hidden;
    EXPECT(clip_text_cuda_weight_bytes(&c, DTYPE_F32) == (n_params - emb) * 4, "%s: %zu weight bytes", name,
           clip_text_cuda_weight_bytes(&c, DTYPE_F32));
    printf("# %s text encoder (D %d, %d layers, I %d): weights on the GPU %.1f MB f16 (%.1f MB f32); "
           "embedding tables %.1f MB f32 on the host\n",
           name, c.hidden, c.layers, c.inter, clip_text_cuda_weight_bytes(&c, DTYPE_F16) / 1e6,
           clip_text_cuda_weight_bytes(&c, DTYPE_F32) / 1e6, emb * 4 / 1e6);
    const int Bs[2] = {1, 16};
    for (int b = 0; b < 2; b++) {
        size_t f16 = clip_text_cuda_arena_bytes(&c, DTYPE_F16, Bs[b], 77);
        size_t f32 = clip_text_cuda_arena_bytes(&c, DTYPE_F32, Bs[b], 77);
        size_t rows = (size_t)Bs[b] * 77;
        EXPECT(f16 == 5 * al(rows * c.hidden * 2) + al(rows * c.inter * 2), "%s B=%d f16", name, Bs[b]);
        EXPECT(f32 == 5 * al(rows * c.hidden * 4) + al(rows * c.inter * 4), "%s B=%d f32", name, Bs[b]);
        printf("# %s 77 tokens, batch %2d: arena %zu bytes (%.2f MiB) f16, %zu bytes (%.2f MiB) f32\n", name, Bs[b],
               f16, f16 / 1048576.0, f32, f32 / 1048576.0);
    }
    /* an 80 GB card holds the largest batch there is */
    EXPECT(clip_text_cuda_max_batch(&c, DTYPE_F16, 77, (size_t)70 << 30) == CLIP_TEXT_CUDA_MAX_BATCH, "%s", name);
}
static void test_plan_real(void) {
    plan_real("SD 1.5",
              "{\"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, \"intermediate_size\": 3072,"
              " \"max_position_embeddings\": 77, \"num_attention_heads\": 12, \"num_hidden_layers\": 12,"
              " \"vocab_size\": 49408, \"layer_norm_eps\": 1e-05}",
              123060480);
    plan_real("SD 2.1",
              "{\"hidden_act\": \"gelu\", \"hidden_size\": 1024, \"intermediate_size\": 4096,"
              " \"max_position_embeddings\": 77, \"num_attention_heads\": 16, \"num_hidden_layers\": 23,"
              " \"vocab_size\": 49408, \"layer_norm_eps\": 1e-05}",
              340387840);
}

/* The reservation refuses what the (emulated) free memory cannot hold, names
 * the need, and the planner's largest batch then reserves; a pass larger
 * than the arena grows it. */
static void test_reserve(void) {
    tiny t = tiny_open("sd2", "models/tiny-sd2", DTYPE_F32);
    const clip_text_config *c = &t.m->cfg;
    clip_text_cuda *g = clip_text_cuda_new(t.m, DTYPE_F16);
    size_t one = clip_text_cuda_arena_bytes(c, DTYPE_F16, 8, 77);
    emu_free = CLIP_TEXT_CUDA_RESERVE + 5 * one;   /* room for about 40 prompts, not 400 */
    clip_text_cuda_oom oom = {0};
    EXPECT(!clip_text_cuda_reserve(g, 400, 77, &oom), "400 reserved");
    EXPECT(oom.need == clip_text_cuda_arena_bytes(c, DTYPE_F16, 400, 77) && oom.avail == 5 * one &&
               oom.free == emu_free,
           "need %zu avail %zu", oom.need, oom.avail);
    int fit = clip_text_cuda_max_batch(c, DTYPE_F16, 77, oom.avail);
    printf("# tiny sd2 f16: %zu bytes free for the arena, the largest batch that fits is %d\n", oom.avail, fit);
    EXPECT(fit >= 40 && fit < 400, "fit %d", fit);
    EXPECT(clip_text_cuda_arena_bytes(c, DTYPE_F16, fit, 77) <= oom.avail &&
               clip_text_cuda_arena_bytes(c, DTYPE_F16, fit + 1, 77) > oom.avail,
           "fit %d is not the last batch that fits", fit);
    EXPECT(clip_text_cuda_reserve(g, fit, 77, &oom), "the fitting batch %d", fit);
    EXPECT(!clip_text_cuda_reserve(g, fit + 1, 77, &oom), "one more prompt");
    EXPECT(clip_text_cuda_max_batch(c, DTYPE_F16, 77, 0) == 0, "nothing fits in 0 bytes");
    emu_free = (size_t)64 << 30;
    /* a fresh arena grows with the passes: one prompt, then the whole batch */
    clip_text_cuda_free(g);
    g = clip_text_cuda_new(t.m, DTYPE_F16);
    float *out = xmalloc((size_t)t.B * 77 * c->hidden * sizeof *out);
    clip_text_cuda_forward(g, out, t.ids->data, 1, 77, 0);
    EXPECT(g->arena_cap == clip_text_cuda_arena_bytes(c, DTYPE_F16, 1, 77), "arena %zu after a pass of 1",
           g->arena_cap);
    clip_text_cuda_forward(g, out, t.ids->data, t.B, 77, 0);
    EXPECT(g->arena_cap == clip_text_cuda_arena_bytes(c, DTYPE_F16, t.B, 77), "arena %zu after a pass of %d",
           g->arena_cap, t.B);
    clip_text_cuda_forward(g, out, t.ids->data, 1, 77, 0);
    EXPECT(g->arena_cap == clip_text_cuda_arena_bytes(c, DTYPE_F16, t.B, 77), "a smaller pass keeps the arena");
    free(out);
    clip_text_cuda_free(g);
    tiny_close(&t);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    emu_attention_rule = clip_attention_rule;
    ref = st_open(fixture_path("clip_text_ref.safetensors"));
    RUN(test_sd1_f32);
    RUN(test_sd2_f32);
    RUN(test_sd1_storage);
    RUN(test_sd2_storage);
    RUN(test_errors);
    RUN(test_plan_formula);
    RUN(test_plan_real);
    RUN(test_reserve);
    st_close(ref);
    return unit_done();
}
