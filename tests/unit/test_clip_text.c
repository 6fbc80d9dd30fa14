/* test_clip_text.c — the CLIP text encoder against transformers' CLIPTextModel
 * (tests/oracle/make_clip_text.py): two tiny random models in diffusers
 * layout, SD 1.x-like (quick_gelu, text_model.* names, model.safetensors) and
 * SD 2.x-like (gelu, unprefixed names, model.fp16.safetensors only), fed the
 * token ids CLIPTokenizer gave; last_hidden_state and diffusers' clip_skip
 * 1 and 2. Also prepare_latents' noise, and the loader's errors. */
#include "unit.h"
#include "clip_text.h"
#include "rng.h"

#include <sys/stat.h>

static st_file *ref;

static clip_text_model *load_model(const char *folder, diffusers_model **dm_out) {
    diffusers_model *dm = diffusers_open(fixture_path(folder), DIFFUSERS_PREFER_FP32);
    clip_text_model *m = clip_text_load(diffusers_part_get(dm, "text_encoder"), DTYPE_F32);
    *dm_out = dm;
    return m;
}

/* Max |got - want| over n values (the criterion is absolute). */
static double max_abs_err(const float *got, const float *want, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
    }
    return e;
}

static void check_model(const char *key, const char *folder, int D, int layers, clip_act act) {
    diffusers_model *dm;
    clip_text_model *m = load_model(folder, &dm);
    EXPECT(m->cfg.hidden == D && m->cfg.layers == layers && m->cfg.act == act && m->cfg.vocab == 49408 &&
               m->cfg.max_pos == 77,
           "%s: config hidden %d layers %d act %d", key, m->cfg.hidden, m->cfg.layers, m->cfg.act);
    char name[64];
    snprintf(name, sizeof name, "%s.ids", key);
    tensor *ids = st_load(ref, name);
    CHECK(ids->dtype == DTYPE_I32 && ids->ndim == 2 && ids->shape[1] == 77);
    const int B = (int)ids->shape[0], T = 77;
    const size_t n = (size_t)B * T * D;
    float *got = xmalloc(n * sizeof(float));
    const char *outs[] = {"hidden", "skip1", "skip2"};
    for (int skip = 0; skip < 3; skip++) {
        clip_text_forward(m, got, ids->data, B, T, skip);
        snprintf(name, sizeof name, "%s.%s", key, outs[skip]);
        tensor *want = st_load_f32(ref, name, 3, (int64_t[]){B, T, D});
        double e = max_abs_err(got, want->data, n);
        EXPECT(e <= 1e-4, "%s: max abs error %.3g > 1e-4", name, e);
        expect_close(name, got, want->data, n, 1e-4);
        printf("# %s: max abs error %.3g over %zu values\n", name, e, n);
        tensor_free(want);
    }
    /* A batch of one gives each row the same states as the whole batch. */
    snprintf(name, sizeof name, "%s.hidden", key);
    tensor *want = st_load_f32(ref, name, 3, (int64_t[]){B, T, D});
    for (int b = 0; b < B; b++) {
        clip_text_forward(m, got, (int32_t *)ids->data + (size_t)b * T, 1, T, 0);
        char what[160];
        snprintf(what, sizeof what, "%s row %d alone", name, b);
        expect_close(what, got, (float *)want->data + (size_t)b * T * D, (size_t)T * D, 1e-4);
    }
    /* Row 0 is the empty prompt: the unconditional states. */
    snprintf(name, sizeof name, "%s.uncond", key);
    expect_close_fixture(ref, name, (float *)want->data, (size_t)T * D, 1e-6);
    tensor_free(want);
    /* Weights rounded to f16 on load: the files are f16, so nothing changes. */
    clip_text_model *m16 = clip_text_load(diffusers_part_get(dm, "text_encoder"), DTYPE_F16);
    EXPECT(!memcmp(m16->params, m->params, m->n_params * sizeof(float)), "%s: f16 rounding changed f16 weights", key);
    clip_text_free(m16);
    free(got);
    tensor_free(ids);
    clip_text_free(m);
    diffusers_close(dm);
}

static void test_sd1(void) { check_model("sd1", "models/tiny-sd1", 32, 3, CLIP_ACT_QUICK_GELU); }
static void test_sd2(void) { check_model("sd2", "models/tiny-sd2", 16, 4, CLIP_ACT_GELU); }

/* StableDiffusionPipeline.prepare_latents with torch.Generator("cpu").manual_seed(s):
 * the draw rep2lat makes for a record, bit for bit. */
static void test_prepare_latents(void) {
    const int seeds[] = {0, 1, 42}, sides[] = {512, 768};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            int64_t h = sides[j] / 8;
            tensor *lat = tensor_new(DTYPE_F32, 3, (int64_t[]){4, h, h});
            torch_gen g;
            torch_gen_seed(&g, (uint64_t)seeds[i]);
            torch_randn_tensor(&g, lat);
            char name[64];
            snprintf(name, sizeof name, "latents.s%d.%d.head", seeds[i], sides[j]);
            tensor *want = st_load_f32(ref, name, 1, (int64_t[]){256});
            EXPECT(!memcmp(lat->data, want->data, 256 * sizeof(float)), "%s: not bit-exact", name);
            if (seeds[i] == 42 && sides[j] == 512) {
                tensor *full = st_load_f32(ref, "latents.s42.512", 4, (int64_t[]){1, 4, 64, 64});
                EXPECT(!memcmp(lat->data, full->data, tensor_nbytes(lat)), "latents.s42.512: not bit-exact");
                tensor_free(full);
            }
            tensor_free(want);
            tensor_free(lat);
        }
}

/* ---- errors ------------------------------------------------------------------ */

static char bad_dir[4200];

/* A copy of tiny-sd1 in the temp dir, whose text encoder lacks one tensor or
 * has another config. */
static void make_bad_model(const char *drop, const char *sed) {
    snprintf(bad_dir, sizeof bad_dir, "%s/bad-sd1", unit_tmpdir());
    char *cmd = xasprintf("rm -rf '%s' && cp -rL '%s' '%s'", bad_dir, fixture_path("models/tiny-sd1"), bad_dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    char *path = xasprintf("%s/text_encoder/model.safetensors", bad_dir);
    if (drop) {
        st_file *f = st_open(path);
        const char *names[64];
        const tensor *ts[64];
        int n = 0;
        for (int i = 0; i < f->n; i++) {
            if (!strcmp(f->entries[i].name, drop)) continue;
            names[n] = xstrdup(f->entries[i].name);
            ts[n++] = st_load(f, f->entries[i].name);
        }
        st_close(f);
        st_write(path, n, names, ts, NULL);
        for (int i = 0; i < n; i++) free((char *)names[i]), tensor_free((tensor *)ts[i]);
    }
    if (sed) {
        cmd = xasprintf("sed -i '%s' '%s/text_encoder/config.json'", sed, bad_dir);
        CHECK(system(cmd) == 0);
        free(cmd);
    }
    free(path);
}

/* What the dying child holds lives in globals, so that LeakSanitizer sees it
 * as reachable at exit. */
static diffusers_model *volatile dying_dm;   /* volatile: the stores must stay */
static clip_text_model *volatile dying_m;
static float *volatile dying_out;

static void load_bad(void *arg) {
    (void)arg;
    dying_dm = diffusers_open(bad_dir, DIFFUSERS_PREFER_FP32);
    clip_text_load(diffusers_part_get(dying_dm, "text_encoder"), DTYPE_F32);
}

static void forward_bad(void *arg) {
    const int *which = arg;
    diffusers_model *dm;
    dying_m = load_model("models/tiny-sd1", &dm);
    dying_dm = dm;
    int32_t ids[78] = {49406, 49407};
    dying_out = xmalloc(78 * 32 * sizeof(float));
    if (which[0] == 0) ids[5] = 49408;
    clip_text_forward(dying_m, dying_out, ids, 1, which[0] == 1 ? 78 : 77, which[0] == 2 ? 4 : 0);
}

static void test_errors(void) {
    make_bad_model("text_model.encoder.layers.1.mlp.fc1.weight", NULL);
    expect_dies("missing weight", load_bad, NULL, 2, "missing tensor \"text_model.encoder.layers.1.mlp.fc1.weight\"");
    make_bad_model(NULL, "s/\"intermediate_size\": 64/\"intermediate_size\": 65/");
    expect_dies("mis-shaped weight", load_bad, NULL, 2, "mlp.fc1.weight");
    make_bad_model(NULL, "s/quick_gelu/swish/");
    expect_dies("unknown hidden_act", load_bad, NULL, 2, "hidden_act \"swish\"");
    make_bad_model(NULL, "s/\"num_attention_heads\": 4/\"num_attention_heads\": 5/");
    expect_dies("heads do not divide hidden", load_bad, NULL, 2, "not a CLIP text config");
    expect_dies("id outside the vocabulary", forward_bad, (int[]){0}, 2, "token id 49408");
    expect_dies("too many tokens", forward_bad, (int[]){1}, 2, "78 tokens");
    expect_dies("clip skip beyond the layers", forward_bad, (int[]){2}, 2, "has 3 layers");
}

int main(void) {
    ref = st_open(fixture_path("clip_text_ref.safetensors"));
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_prepare_latents);
    RUN(test_errors);
    st_close(ref);
    return unit_done();
}
