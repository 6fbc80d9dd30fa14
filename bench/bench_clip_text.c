/* bench_clip_text.c — reports per second of the CLIP text encoder (rep2lat's
 * cost) at the real Stable Diffusion shapes: SD 2.x's OpenCLIP ViT-H/14 text
 * tower as diffusers stores it (23 layers, width 1024, 16 heads, 4096, gelu)
 * and SD 1.x's CLIP ViT-L/14 (12 layers, 768, 12 heads, 3072, quick_gelu).
 * The weights are random, written by the bench itself as a float16
 * text_encoder folder (config.json + model.safetensors) in a temporary
 * directory and loaded with clip_text_load, as rep2lat loads a model. One
 * JSON object per line on stdout, in bench_kernels' form (bench/run.sh adds
 * the machine's peak), plus reports_per_s.
 *   bench_clip_text [--reps N] [--batch B] [--sd1-only] */
#include "clip_text.h"
#include "bench_util.h"
#include "common.h"
#include "safetensors.h"

#include <cblas.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned lcg(unsigned *s) { return *s = *s * 1664525u + 1013904223u; }

/* A random f16 tensor: uniform in [-scale, scale), or ones + noise for norms. */
static tensor *random_f16(int ndim, const int64_t *shape, float scale, float offset, unsigned *seed) {
    tensor *t = tensor_new(DTYPE_F16, ndim, shape);
    uint16_t *p = t->data;
    for (int64_t i = 0, n = tensor_numel(t); i < n; i++)
        p[i] = f32_to_f16(offset + scale * ((float)((lcg(seed) >> 8) & 0xffff) / 32768.0f - 1.0f));
    return t;
}

struct spec { const char *name; int layers, hidden, heads, inter; const char *act; };

/* Writes dir/config.json and dir/model.safetensors for spec s. */
static void write_model(const char *dir, const struct spec *s) {
    char *path = xasprintf("%s/config.json", dir);
    json_t *cfg = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:s}", "architectures", "CLIPTextModel",
                            "model_type", "clip_text_model", "vocab_size", 49408, "max_position_embeddings", 77,
                            "hidden_size", s->hidden, "num_attention_heads", s->heads, "num_hidden_layers",
                            s->layers, "hidden_act", s->act, "layer_norm_eps", 1e-5, "dtype", "float16");
    json_object_set_new(cfg, "intermediate_size", json_integer(s->inter));
    if (json_dump_file(cfg, path, JSON_INDENT(2))) die("%s: cannot write", path);
    json_decref(cfg);
    free(path);

    const int64_t D = s->hidden, F = s->inter;
    int cap = 4 + 16 * s->layers, n = 0;
    char **names = xcalloc(cap, sizeof *names);
    tensor **ts = xcalloc(cap, sizeof *ts);
    unsigned seed = 1234;
    names[n] = xstrdup("text_model.embeddings.token_embedding.weight");
    ts[n++] = random_f16(2, (int64_t[]){49408, D}, 0.02f, 0, &seed);
    names[n] = xstrdup("text_model.embeddings.position_embedding.weight");
    ts[n++] = random_f16(2, (int64_t[]){77, D}, 0.01f, 0, &seed);
    static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};
    for (int l = 0; l < s->layers; l++) {
        for (int k = 0; k < 6; k++) {
            int64_t out = k == 4 ? F : D, in = k == 5 ? F : D;
            names[n] = xasprintf("text_model.encoder.layers.%d.%s.weight", l, lin[k]);
            ts[n++] = random_f16(2, (int64_t[]){out, in}, 1.0f / (float)in, 0, &seed);
            names[n] = xasprintf("text_model.encoder.layers.%d.%s.bias", l, lin[k]);
            ts[n++] = random_f16(1, (int64_t[]){out}, 0.01f, 0, &seed);
        }
        for (int k = 1; k <= 2; k++) {
            names[n] = xasprintf("text_model.encoder.layers.%d.layer_norm%d.weight", l, k);
            ts[n++] = random_f16(1, (int64_t[]){D}, 0.1f, 1.0f, &seed);
            names[n] = xasprintf("text_model.encoder.layers.%d.layer_norm%d.bias", l, k);
            ts[n++] = random_f16(1, (int64_t[]){D}, 0.1f, 0, &seed);
        }
    }
    names[n] = xstrdup("text_model.final_layer_norm.weight");
    ts[n++] = random_f16(1, (int64_t[]){D}, 0.1f, 1.0f, &seed);
    names[n] = xstrdup("text_model.final_layer_norm.bias");
    ts[n++] = random_f16(1, (int64_t[]){D}, 0.1f, 0, &seed);
    CHECK(n <= cap);
    path = xasprintf("%s/model.safetensors", dir);
    st_write(path, n, (const char *const *)names, (const tensor *const *)ts, NULL);
    free(path);
    for (int i = 0; i < n; i++) free(names[i]), tensor_free(ts[i]);
    free(names), free(ts);
}

static void bench_model(const struct spec *s, int batch, int reps) {
    char tmpl[] = "/tmp/bench_clip_text.XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp: cannot make a temporary folder");
    write_model(tmpl, s);
    diffusers_part *part = diffusers_part_open(tmpl, DIFFUSERS_PREFER_FP32);
    double t0 = now_s();
    clip_text_model *m = clip_text_load(part, DTYPE_F32);
    double load_s = now_s() - t0;
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    if (system(cmd) != 0) warn("could not remove %s", tmpl);
    free(cmd);

    const int T = 77, D = s->hidden, F = s->inter;
    int32_t *ids = xmalloc((size_t)batch * T * sizeof *ids);
    unsigned seed = 99;
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < T; t++)
            ids[b * T + t] = t == 0 ? 49406 : t < 40 ? (int32_t)(lcg(&seed) % 49406) : 49407;
    float *out = xmalloc_aligned((size_t)batch * T * D * sizeof *out);
    /* Linear layers 2*T*(4D^2 + 2DI) per layer, attention 2*2*T*T*D (the
     * causal half is computed too), per prompt. */
    double flops = (double)batch * s->layers * (2.0 * T * (4.0 * D * D + 2.0 * D * F) + 4.0 * T * T * D);
    clip_text_forward(m, out, ids, batch, T, 0); /* warm-up */
    double *t = xmalloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double a = now_s();
        clip_text_forward(m, out, ids, batch, T, 0);
        t[r] = now_s() - a;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    char shape[128];
    snprintf(shape, sizeof shape, "%s B%d L%d D%d H%d F%d", s->name, batch, s->layers, D, s->heads, F);
    printf("{\"kernel\":\"clip_text\",\"shape\":\"%s\",\"blas_core\":\"%s\",\"threads\":%d,\"reps\":%d,"
           "\"flops\":%.0f,\"median_s\":%.6f,\"best_s\":%.6f,\"gflops_median\":%.2f,\"gflops_best\":%.2f,"
           "\"reports_per_s\":%.3f,\"load_s\":%.3f}\n",
           shape, openblas_get_corename(), threads_get(), reps, flops, med, t[0], flops / med * 1e-9,
           flops / t[0] * 1e-9, batch / med, load_s);
    fflush(stdout);
    free(t), free(ids), free(out);
    clip_text_free(m);
    diffusers_part_free(part);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    int reps = 3, batch = 8, sd1_only = 0;
    static const struct option longopts[] = {{"reps", required_argument, 0, 'r'},
                                             {"batch", required_argument, 0, 'b'},
                                             {"sd1-only", no_argument, 0, '1'},
                                             {"threads", required_argument, 0, 't'},
                                             {0, 0, 0, 0}};
    int c;
    threads_set(0);
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': reps = (int)parse_long("--reps", optarg, 1, 1000); break;
        case 'b': batch = (int)parse_long("--batch", optarg, 1, 1024); break;
        case '1': sd1_only = 1; break;
        case 't': threads_set((int)parse_long("--threads", optarg, 1, 4096)); break;
        default: die_usage("usage: bench_clip_text [--reps N] [--batch B] [--sd1-only] [--threads N]");
        }
    }
    if (!sd1_only) bench_model(&(struct spec){"sd2-openclip-h", 23, 1024, 16, 4096, "gelu"}, batch, reps);
    bench_model(&(struct spec){"sd1-clip-l", 12, 768, 12, 3072, "quick_gelu"}, batch, reps);
    return 0;
}
