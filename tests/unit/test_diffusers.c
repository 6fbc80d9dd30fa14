/* test_diffusers.c — the model-folder resolver on folders the test lays out in
 * a temporary directory the way diffusers' save_pretrained and the Hugging
 * Face hub do (tiny JSON, tiny safetensors): part discovery from
 * model_index.json, config files per kind of part, fp32/fp16 preference with
 * fallback, transformers vs diffusers weight names, sharded checkpoints,
 * display names, and each missing piece as an error naming what was looked for. */
#include "unit.h"
#include "diffusers.h"
#include "json.h"

#include <sys/stat.h>

static char tmp[256];

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* Writes text to <tmp>/<rel>, making folders on the way. */
static void put(const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

/* A tiny safetensors file with one tensor named `name` (value v). */
static void put_st(const char *rel, const char *name, float v) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdirs(path);
    *slash = '/';
    tensor *t = tensor_new_f32(1, (int64_t[]){2});
    ((float *)t->data)[0] = ((float *)t->data)[1] = v;
    const char *names[] = {name};
    st_write(path, 1, names, (const tensor *const *)&t, NULL);
    tensor_free(t);
}

static char *at(const char *rel) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, rel);
    return buf[k];
}

static const char *SD_INDEX =
    "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.8.0\",\n"
    " \"feature_extractor\": [\"transformers\", \"CLIPImageProcessor\"],\n"
    " \"requires_safety_checker\": false, \"safety_checker\": [null, null],\n"
    " \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
    " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
    " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n";

/* sd21/: unet has fp32 and fp16 weights, vae only fp32, text_encoder only fp16. */
static void make_sd(const char *dir) {
    char r[256];
#define P(x) (snprintf(r, sizeof r, "%s/%s", dir, x), r)
    put(P("model_index.json"), SD_INDEX);
    put(P("unet/config.json"), "{\"_class_name\": \"UNet2DConditionModel\", \"sample_size\": 64}");
    put_st(P("unet/diffusion_pytorch_model.safetensors"), "conv_in.weight", 32);
    put_st(P("unet/diffusion_pytorch_model.fp16.safetensors"), "conv_in.weight", 16);
    put(P("vae/config.json"), "{\"_class_name\": \"AutoencoderKL\", \"scaling_factor\": 0.18215}");
    put_st(P("vae/diffusion_pytorch_model.safetensors"), "decoder.conv_in.weight", 32);
    put(P("text_encoder/config.json"), "{\"architectures\": [\"CLIPTextModel\"], \"hidden_size\": 1024}");
    put_st(P("text_encoder/model.fp16.safetensors"), "text_model.embeddings.token_embedding.weight", 16);
    put(P("tokenizer/vocab.json"), "{}");
    put(P("tokenizer/merges.txt"), "#version: 0.2\n");
    put(P("tokenizer/tokenizer_config.json"), "{\"model_max_length\": 77}");
    put(P("scheduler/scheduler_config.json"), "{\"_class_name\": \"PNDMScheduler\", \"num_train_timesteps\": 1000}");
    put(P("feature_extractor/preprocessor_config.json"), "{\"crop_size\": 224}");
#undef P
}

static int path_is(const char *got, const char *rel) { return got && !strcmp(got, at(rel)); }

static void test_sd_layout(void) {
    make_sd("sd21");
    diffusers_model *m = diffusers_open(at("sd21/"), DIFFUSERS_PREFER_FP32);
    EXPECT(!strcmp(m->root, at("sd21")), "root %s", m->root);
    EXPECT(!strcmp(m->name, "sd21"), "name %s", m->name);
    EXPECT(m->class_name && !strcmp(m->class_name, "StableDiffusionPipeline"), "class");
    EXPECT(m->n_parts == 6, "%d parts (safety_checker [null, null] is not one)", m->n_parts);
    EXPECT(diffusers_has_part(m, "unet") && diffusers_has_part(m, "feature_extractor") &&
           !diffusers_has_part(m, "safety_checker") && !diffusers_has_part(m, "requires_safety_checker"),
           "has_part");

    const diffusers_part *u = diffusers_part_get(m, "unet");
    EXPECT(!strcmp(u->library, "diffusers") && !strcmp(u->class_name, "UNet2DConditionModel"), "unet class");
    EXPECT(path_is(u->config_path, "sd21/unet/config.json"), "unet config %s", u->config_path);
    EXPECT(json_get_int(u->config, "sample_size", 0, "unet") == 64, "unet config parsed");
    EXPECT(u->n_weights == 1 && path_is(u->weight_paths[0], "sd21/unet/diffusion_pytorch_model.safetensors") &&
           !u->fp16_variant, "unet fp32 weights: %s", u->n_weights ? u->weight_paths[0] : "none");
    EXPECT(diffusers_part_get(m, "unet") == u, "a part is resolved once");
    EXPECT(path_is(diffusers_weight_file(u, "anything"), "sd21/unet/diffusion_pytorch_model.safetensors"),
           "weight_file of a single file");
    st_file *f = st_open(u->weight_paths[0]);
    EXPECT(st_find(f, "conv_in.weight") != NULL, "the weights open");
    st_close(f);

    /* text_encoder has only the fp16 file: taken even when fp32 is preferred. */
    const diffusers_part *te = diffusers_part_get(m, "text_encoder");
    EXPECT(te->n_weights == 1 && path_is(te->weight_paths[0], "sd21/text_encoder/model.fp16.safetensors") &&
           te->fp16_variant, "text_encoder falls back to fp16");
    EXPECT(json_get_int(te->config, "hidden_size", 0, "te") == 1024, "text_encoder config");

    const diffusers_part *s = diffusers_part_get(m, "scheduler");
    EXPECT(s->n_weights == 0 && path_is(s->config_path, "sd21/scheduler/scheduler_config.json") &&
           json_get_int(s->config, "num_train_timesteps", 0, "s") == 1000, "scheduler config");
    const diffusers_part *tk = diffusers_part_get(m, "tokenizer");
    EXPECT(tk->n_weights == 0 && path_is(tk->config_path, "sd21/tokenizer/tokenizer_config.json"), "tokenizer");
    char *vocab = diffusers_file(m, "tokenizer", "vocab.json");
    EXPECT(path_is(vocab, "sd21/tokenizer/vocab.json"), "vocab %s", vocab);
    free(vocab);
    const diffusers_part *fe = diffusers_part_get(m, "feature_extractor");
    EXPECT(fe->n_weights == 0 && path_is(fe->config_path, "sd21/feature_extractor/preprocessor_config.json"),
           "feature extractor");
    diffusers_close(m);

    /* Preferring fp16: unet takes its fp16 file, vae falls back to fp32. */
    m = diffusers_open(at("sd21"), DIFFUSERS_PREFER_FP16);
    u = diffusers_part_get(m, "unet");
    EXPECT(u->n_weights == 1 && path_is(u->weight_paths[0], "sd21/unet/diffusion_pytorch_model.fp16.safetensors") &&
           u->fp16_variant, "unet fp16 preferred");
    const diffusers_part *v = diffusers_part_get(m, "vae");
    EXPECT(v->n_weights == 1 && path_is(v->weight_paths[0], "sd21/vae/diffusion_pytorch_model.safetensors") &&
           !v->fp16_variant, "vae falls back to fp32");
    te = diffusers_part_get(m, "text_encoder");
    EXPECT(te->fp16_variant, "text_encoder fp16");
    diffusers_close(m);
}

static void test_sharded(void) {
    put("shard/model_index.json", "{\"_class_name\": \"StableDiffusionPipeline\", \"unet\": [\"diffusers\", "
                                   "\"UNet2DConditionModel\"], \"text_encoder\": [\"transformers\", \"CLIPTextModel\"]}");
    put("shard/unet/config.json", "{}");
    put_st("shard/unet/diffusion_pytorch_model-00001-of-00002.safetensors", "a", 1);
    put_st("shard/unet/diffusion_pytorch_model-00002-of-00002.safetensors", "b", 2);
    put("shard/unet/diffusion_pytorch_model.safetensors.index.json",
        "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
        "\"c\": \"diffusion_pytorch_model-00002-of-00002.safetensors\","
        "\"a\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
        "\"b\": \"diffusion_pytorch_model-00002-of-00002.safetensors\"}}");
    /* fp16 shards, transformers naming: model.safetensors.index.fp16.json */
    put("shard/text_encoder/config.json", "{}");
    put_st("shard/text_encoder/model-00001-of-00001.fp16.safetensors", "t", 1);
    put("shard/text_encoder/model.safetensors.index.fp16.json",
        "{\"weight_map\": {\"t\": \"model-00001-of-00001.fp16.safetensors\"}}");
    diffusers_model *m = diffusers_open(at("shard"), DIFFUSERS_PREFER_FP32);
    const diffusers_part *u = diffusers_part_get(m, "unet");
    EXPECT(u->n_weights == 2, "%d shards", u->n_weights);
    if (u->n_weights == 2)
        EXPECT(path_is(u->weight_paths[0], "shard/unet/diffusion_pytorch_model-00001-of-00002.safetensors") &&
               path_is(u->weight_paths[1], "shard/unet/diffusion_pytorch_model-00002-of-00002.safetensors"),
               "shards in order, once each");
    EXPECT(path_is(u->index_path, "shard/unet/diffusion_pytorch_model.safetensors.index.json"), "index path");
    EXPECT(path_is(diffusers_weight_file(u, "a"), "shard/unet/diffusion_pytorch_model-00001-of-00002.safetensors") &&
           path_is(diffusers_weight_file(u, "c"), "shard/unet/diffusion_pytorch_model-00002-of-00002.safetensors") &&
           diffusers_weight_file(u, "zzz") == NULL, "weight_file through the weight_map");
    const diffusers_part *te = diffusers_part_get(m, "text_encoder");
    EXPECT(te->n_weights == 1 && te->fp16_variant &&
           path_is(te->weight_paths[0], "shard/text_encoder/model-00001-of-00001.fp16.safetensors"), "fp16 shards");
    diffusers_close(m);
}

static void test_names(void) {
    make_sd("hub/models--stabilityai--stable-diffusion-2-1-base/snapshots/5ede9e4bf3e3fd1cb0ef2f7a3fff13ee514fdf06");
    diffusers_model *m = diffusers_open(
        at("hub/models--stabilityai--stable-diffusion-2-1-base/snapshots/5ede9e4bf3e3fd1cb0ef2f7a3fff13ee514fdf06"),
        DIFFUSERS_PREFER_FP32);
    EXPECT(!strcmp(m->name, "stabilityai/stable-diffusion-2-1-base"), "hub cache name: %s", m->name);
    diffusers_close(m);
    put("named/model_index.json", "{\"_class_name\": \"StableDiffusionPipeline\", \"_name_or_path\": \"stanfordmimi/RoentGen\"}");
    m = diffusers_open(at("named"), DIFFUSERS_PREFER_FP32);
    EXPECT(!strcmp(m->name, "stanfordmimi/RoentGen") && m->n_parts == 0, "_name_or_path: %s", m->name);
    diffusers_close(m);
    /* "." is named after the real folder. */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd));
    CHECK(chdir(at("sd21/unet")) == 0 && chdir("..") == 0);
    m = diffusers_open(".", DIFFUSERS_PREFER_FP32);
    EXPECT(!strcmp(m->name, "sd21"), "name of .: %s", m->name);
    diffusers_close(m);
    CHECK(chdir(cwd) == 0);
}

static void test_lone_part(void) {
    put("vae-ft-mse/config.json", "{\"_class_name\": \"AutoencoderKL\"}");
    put_st("vae-ft-mse/diffusion_pytorch_model.fp16.safetensors", "x", 1);
    put_st("vae-ft-mse/diffusion_pytorch_model.safetensors", "x", 1);
    diffusers_part *p = diffusers_part_open(at("vae-ft-mse/"), DIFFUSERS_PREFER_FP16);
    EXPECT(!strcmp(p->name, "vae-ft-mse") && p->class_name && !strcmp(p->class_name, "AutoencoderKL"), "lone part");
    EXPECT(p->n_weights == 1 && p->fp16_variant &&
           path_is(p->weight_paths[0], "vae-ft-mse/diffusion_pytorch_model.fp16.safetensors"), "lone part fp16");
    diffusers_part_free(p);
}

/* ---- errors ------------------------------------------------------------- */

static const char *e_root, *e_part;
static void open_model(void *arg) {
    (void)arg;
    diffusers_model *m = diffusers_open(at(e_root), DIFFUSERS_PREFER_FP32);
    if (e_part) diffusers_part_get(m, e_part);
    diffusers_close(m);
}
static void get_file(void *arg) {
    (void)arg;
    diffusers_model *m = diffusers_open(at("sd21"), DIFFUSERS_PREFER_FP32);
    free(diffusers_file(m, "tokenizer", "special_tokens_map.json"));
}
static void open_lone(void *arg) {
    (void)arg;
    diffusers_part_free(diffusers_part_open(at(e_root), DIFFUSERS_PREFER_FP32));
}

static void dies(const char *root, const char *part, const char *needle) {
    e_root = root, e_part = part;
    char what[256];
    snprintf(what, sizeof what, "%s %s", root, part ? part : "");
    expect_dies(what, open_model, NULL, 2, needle);
}

static void test_errors(void) {
    dies("nothere", NULL, "nothere/: no such model folder");
    put("empty/readme.txt", "x");
    dies("empty", NULL, "empty/: no model_index.json");
    put("badjson/model_index.json", "{\"unet\": [\"diffusers\",");
    dies("badjson", NULL, "badjson/model_index.json:");

    /* roentgen/: the unet folder and config exist, weights do not. */
    put("roentgen/model_index.json", SD_INDEX);
    put("roentgen/unet/config.json", "{}");
    dies("roentgen", "unet",
         "roentgen/: no unet weights: looked for unet/diffusion_pytorch_model.safetensors, "
         "unet/diffusion_pytorch_model.fp16.safetensors, or a shard index "
         "unet/diffusion_pytorch_model.safetensors.index.json, unet/diffusion_pytorch_model.safetensors.index.fp16.json");
    dies("roentgen", "text_encoder", "roentgen/: no text_encoder folder");
    put("roentgen/vae/diffusion_pytorch_model.safetensors", "");
    dies("roentgen", "vae", "roentgen/: no vae config: looked for vae/config.json");
    put("roentgen/scheduler/config.json", "{}");
    dies("roentgen", "scheduler", "roentgen/: no scheduler config: looked for scheduler/scheduler_config.json");
    dies("roentgen", "safety_checker", "roentgen/: model_index.json has no part \"safety_checker\"");
    put("roentgen/text_encoder/config.json", "{}");
    put("roentgen/text_encoder/pytorch_model.bin", "pickle");
    dies("roentgen", "text_encoder",
         "roentgen/: text_encoder weights are only in PyTorch pickle format (text_encoder/pytorch_model.bin); "
         "safetensors is required");
    put("roentgen/unet/config.json", "[1, 2]");
    dies("roentgen", "unet", "roentgen/unet/config.json: not a JSON object");

    /* Sharded: a shard missing, a shard outside the folder, no weight_map. */
    put("badshard/model_index.json", "{\"unet\": [\"diffusers\", \"UNet2DConditionModel\"]}");
    put("badshard/unet/config.json", "{}");
    put("badshard/unet/diffusion_pytorch_model.safetensors.index.json",
        "{\"weight_map\": {\"a\": \"diffusion_pytorch_model-00001-of-00002.safetensors\"}}");
    dies("badshard", "unet",
         "badshard/: unet/diffusion_pytorch_model.safetensors.index.json names shard "
         "unet/diffusion_pytorch_model-00001-of-00002.safetensors, which is missing");
    put("badshard/unet/diffusion_pytorch_model.safetensors.index.json",
        "{\"weight_map\": {\"a\": \"../../etc/x.safetensors\"}}");
    dies("badshard", "unet", "tensor \"a\" maps to ../../etc/x.safetensors, not a .safetensors file in the same folder");
    put("badshard/unet/diffusion_pytorch_model.safetensors.index.json", "{\"metadata\": {}}");
    dies("badshard", "unet", "has no \"weight_map\" object");

    make_sd("sd21");
    expect_dies("missing tokenizer file", get_file, NULL, 2, "sd21/: no tokenizer/special_tokens_map.json");
    put("lonely/config.json", "{}");
    e_root = "lonely";
    expect_dies("lone part without weights", open_lone, NULL, 2,
                "lonely/: no weights: looked for diffusion_pytorch_model.safetensors");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    snprintf(tmp, sizeof tmp, "/tmp/synthcxr-diffusers-XXXXXX");
    CHECK(mkdtemp(tmp));
    RUN(test_sd_layout);
    RUN(test_sharded);
    RUN(test_names);
    RUN(test_lone_part);
    RUN(test_errors);
    return unit_done();
}
