/* test_unet.c — the C UNet2DConditionModel against diffusers 0.42: three tiny
 * random UNets (tests/oracle/make_unet.py: SD1-like, SD2-like, and a deep one
 * with three levels and two layers per block) loaded from their save_pretrained
 * folders (plus a fourth with the rarer config keys) and run on the inputs in unet_ref.safetensors, outputs compared to
 * 1e-4 of their scale; then the config refusals and weight errors. */
#include "unit.h"
#include "diffusers.h"
#include "json.h"
#include "unet.h"

#include <sys/stat.h>
#include <time.h>

static st_file *ref;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Runs every case "<cfg>.<case>.*" of the fixture through the model in dir. */
static void check_config(const char *cfg, const char *dir, int cin, int cout, int ctx, const char *const *cases,
                         int n_cases) {
    char path[4200];
    snprintf(path, sizeof path, "%s", fixture_path(dir));
    unet_model *m = unet_load_dir(path);
    const unet_info *in = unet_get_info(m);
    EXPECT(in->in_channels == cin && in->out_channels == cout, "channels %d %d", in->in_channels,
           in->out_channels);
    EXPECT(in->cross_attention_dim == ctx, "cross_attention_dim %d", in->cross_attention_dim);
    for (int i = 0; i < n_cases; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%s.sample", cfg, cases[i]);
        const st_entry *e = st_get(ref, name);
        int B = (int)e->shape[0], H = (int)e->shape[2], W = (int)e->shape[3];
        tensor *sample = st_load_f32(ref, name, -1, NULL);
        snprintf(name, sizeof name, "%s.%s.t", cfg, cases[i]);
        tensor *t = st_load_f32(ref, name, -1, NULL);
        snprintf(name, sizeof name, "%s.%s.enc", cfg, cases[i]);
        tensor *enc = st_load_f32(ref, name, -1, NULL);
        int T = (int)enc->shape[1];
        size_t n = (size_t)B * cout * H * W;
        float *out = xmalloc(n * sizeof(float));
        unet_forward(m, out, sample->data, t->data, enc->data, B, H, W, T);
        snprintf(name, sizeof name, "%s.%s.out", cfg, cases[i]);
        expect_close_fixture(ref, name, out, n, 1e-4);
        /* the figures for the report: error against diffusers, and the best of
         * a few timed calls (the arena is reused, nothing is allocated) */
        tensor *want = st_load_f32(ref, name, -1, NULL);
        double err = 0, scale = 0;
        for (size_t k = 0; k < n; k++) {
            const float *wd = want->data;
            double d = fabs((double)out[k] - wd[k]), w = fabs((double)wd[k]);
            if (d > err) err = d;
            if (w > scale) scale = w;
        }
        tensor_free(want);
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            unet_forward(m, out, sample->data, t->data, enc->data, B, H, W, T);
            if (now() - t0 < best) best = now() - t0;
        }
        printf("# %s.%s: B=%d %dx%d T=%d t=%g: max abs err %.2e (scale %.3g, %.1e of it); forward %.2f ms\n", cfg,
               cases[i], B, H, W, T, (double)((const float *)t->data)[0], err, scale, err / scale, 1e3 * best);
        free(out);
        tensor_free(sample);
        tensor_free(t);
        tensor_free(enc);
    }
    unet_free(m);
}

static void test_sd1(void) {
    const char *cases[] = {"t999", "t500", "t1", "b2", "wide"};
    check_config("sd1", "models/tiny-sd1/unet", 4, 4, 32, cases, 5);
}
static void test_sd2(void) {
    const char *cases[] = {"t999", "t500", "t1", "b2", "big"};
    check_config("sd2", "models/tiny-sd2/unet", 4, 4, 16, cases, 5);
}
static void test_deep(void) {
    const char *cases[] = {"t999", "t1", "b2", "tall"};
    check_config("deep", "unet-deep/unet", 4, 4, 32, cases, 4);
}

/* in/out channels 9/8, center_input_sample, per-block lists, mid_block_scale_factor,
 * conv kernels 5/1, weights in three shards */
static void test_misc(void) {
    const char *cases[] = {"b2"};
    check_config("misc", "unet-misc/unet", 9, 8, 16, cases, 1);
}

/* Loaded through the pipeline resolver as the denoiser will. */
static void test_info(void) {
    diffusers_part *p = diffusers_part_open(fixture_path("models/tiny-sd2/unet"), DIFFUSERS_PREFER_FP32);
    unet_model *m = unet_load(p);
    const unet_info *in = unet_get_info(m);
    EXPECT(in->sample_size == 8, "sample_size %d", in->sample_size);
    EXPECT(in->cross_attention_dim == 16, "cross_attention_dim %d", in->cross_attention_dim);
    EXPECT(in->downscale == 2, "downscale %d", in->downscale);
    EXPECT(in->n_params == 267172, "n_params %zu (diffusers counts 267172)", in->n_params);
    unet_free(m);
    diffusers_part_free(p);
}

/* ---- errors: a copy of tiny-sd1/unet with one thing changed ------------------- */

static char bad_dir[512];

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    CHECK(f && g);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) CHECK(fwrite(buf, 1, n, g) == n);
    fclose(f);
    fclose(g);
}

/* bad_dir gets the sd1 weights and its config with key set to value (JSON text). */
static void make_bad(const char *key, const char *value) {
    snprintf(bad_dir, sizeof bad_dir, "%s/bad-%s", unit_tmpdir(), key);
    mkdir(bad_dir, 0755);
    char src[4200], dst[1024];
    snprintf(src, sizeof src, "%s", fixture_path("models/tiny-sd1/unet/diffusion_pytorch_model.safetensors"));
    snprintf(dst, sizeof dst, "%s/diffusion_pytorch_model.safetensors", bad_dir);
    copy_file(src, dst);
    json_t *c = json_load_path(fixture_path("models/tiny-sd1/unet/config.json"));
    json_error_t err;
    json_object_set_new(c, key, json_loads(value, JSON_DECODE_ANY, &err));
    snprintf(dst, sizeof dst, "%s/config.json", bad_dir);
    CHECK(json_dump_file(c, dst, 0) == 0);
    json_decref(c);
}

static void load_bad(void *arg) {
    (void)arg;
    unet_load_dir(bad_dir);
}

static void refused(const char *key, const char *value, const char *msg) {
    make_bad(key, value);
    char what[128];
    snprintf(what, sizeof what, "%s=%s", key, value);
    expect_dies(what, load_bad, NULL, 2, msg);
}

static void test_refusals(void) {
    refused("class_embed_type", "\"timestep\"", "unsupported class_embed_type \"timestep\"");
    refused("time_embedding_type", "\"fourier\"", "unsupported time_embedding_type \"fourier\"");
    refused("dual_cross_attention", "true", "unsupported dual_cross_attention true");
    refused("resnet_time_scale_shift", "\"scale_shift\"", "unsupported resnet_time_scale_shift");
    refused("mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", "unsupported mid_block_type");
    refused("only_cross_attention", "true", "unsupported only_cross_attention true");
    refused("num_attention_heads", "8", "unsupported num_attention_heads 8");
    refused("addition_embed_type", "\"text_time\"", "unsupported addition_embed_type");
    refused("down_block_types", "[\"SimpleCrossAttnDownBlock2D\",\"DownBlock2D\"]", "unsupported down_block_types");
    refused("attention_head_dim", "[4,4,4]", "unsupported attention_head_dim [4,4,4]");
    refused("transformer_layers_per_block", "[[1],[1]]", "unsupported transformer_layers_per_block");
}

static void test_weight_errors(void) {
    /* the config says more channels than the weights have */
    make_bad("block_out_channels", "[16,48]");
    expect_dies("mis-shaped weight", load_bad, NULL, 2, "down_blocks.1.resnets.0.conv1.weight");
    /* one more layer per block than was saved */
    make_bad("layers_per_block", "2");
    expect_dies("missing weight", load_bad, NULL, 2, "missing tensor \"down_blocks.0.resnets.1.norm1.weight\"");
}

static void fwd_bad_size(void *arg) {
    unet_model *m = arg;
    float buf[4 * 9 * 8], t = 1, enc[77 * 32];
    memset(buf, 0, sizeof buf);
    memset(enc, 0, sizeof enc);
    unet_forward(m, buf, buf, &t, enc, 1, 9, 8, 77);
}

static void test_bad_size(void) {
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd1/unet"));
    expect_dies("odd latent", fwd_bad_size, m, 2, "latent size 9x8 is not a multiple of 2");
    unet_free(m);
}

int main(void) {
    ref = st_open(fixture_path("unet_ref.safetensors"));
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_deep);
    RUN(test_misc);
    RUN(test_info);
    RUN(test_refusals);
    RUN(test_weight_errors);
    RUN(test_bad_size);
    st_close(ref);
    return unit_done();
}
