/* test_vae.c — the VAE decoder against diffusers (tests/oracle/make_vae.py):
 * two tiny random AutoencoderKLs (tests/fixtures/models/tiny-sd{1,2}/vae),
 * decode(latents / scaling_factor).sample for latents [1,4,8,8] and
 * [2,4,6,10] and [1,4,16,16], and tiled decoding (tiled_decode) of [2,4,10,15],
 * to 1e-4 of the output scale; then the loader:
 * config values honoured (scaling_factor, use_post_quant_conv), old attention
 * names, and each unsupported config, missing or mis-shaped tensor an error
 * naming it. */
#include "unit.h"
#include "json.h"
#include "vae.h"

#include <sys/stat.h>
#include <time.h>

static const char *SD1 = "tests/fixtures/models/tiny-sd1";
static const char *SD2 = "tests/fixtures/models/tiny-sd2";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Decodes fixture latents `lat` with v and compares with fixture `want`. */
static void check_decode(const vae_decoder *v, const st_file *ref, const char *lat, const char *want) {
    tensor *l = st_load_f32(ref, lat, -1, NULL);
    const vae_config *c = vae_get_config(v);
    int b = (int)l->shape[0], h = (int)l->shape[2], w = (int)l->shape[3], s = vae_upscale(v);
    EXPECT(l->shape[1] == c->latent_channels, "%s: channels", lat);
    float *z = l->data;
    for (int64_t i = 0; i < tensor_numel(l); i++) z[i] = z[i] / c->scaling_factor; /* as the pipeline */
    size_t n = (size_t)b * c->out_channels * h * s * w * s;
    float *out = xmalloc(n * sizeof(float));
    double t0 = now();
    vae_decode(v, out, z, b, h, w);
    double dt = now() - t0;
    tensor *ref_t = st_load_f32(ref, want, -1, NULL);
    double maxerr = 0;
    if ((size_t)tensor_numel(ref_t) == n)
        for (size_t i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - ((float *)ref_t->data)[i]));
    printf("# %s -> %s [%d, %d, %d, %d]: max abs error %.3g, %.1f ms\n", lat, want, b, c->out_channels, h * s,
           w * s, maxerr, dt * 1e3);
    expect_close_fixture(ref, want, out, n, 1e-4);
    tensor_free(ref_t);
    free(out);
    tensor_free(l);
}

static void test_sd1_parity(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    vae_decoder *v = vae_load_dir(SD1);
    const vae_config *c = vae_get_config(v);
    EXPECT(c->n_blocks == 4 && c->block_out[0] == 16 && c->block_out[1] == 32 && c->block_out[3] == 32 &&
               c->layers_per_block == 1 && c->groups == 8 && c->latent_channels == 4 && vae_upscale(v) == 8,
           "tiny-sd1 config as the oracle made it");
    EXPECT(c->scaling_factor == 0.18215f, "scaling_factor %g", (double)c->scaling_factor);
    check_decode(v, ref, "sd1.lat1", "sd1.out1");
    check_decode(v, ref, "sd1.lat2", "sd1.out2");
    vae_free(v);
    st_close(ref);
}

static void test_sd2_parity(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    vae_decoder *v = vae_load_dir(SD2);
    const vae_config *c = vae_get_config(v);
    EXPECT(c->n_blocks == 4 && c->layers_per_block == 2 && vae_upscale(v) == 8, "tiny-sd2 config");
    check_decode(v, ref, "sd2.lat1", "sd2.out1");
    check_decode(v, ref, "sd2.lat2", "sd2.out2");
    check_decode(v, ref, "png.lat", "png.out");
    vae_free(v);
    st_close(ref);
}

/* The same answer on one thread as on all (the kernels split work differently). */
/* diffusers' tiled_decode with 64-pixel tiles: [2,4,10,15] latents -> 80x120
 * images from 2 x 3 tiles per image (a tile every 6 latents), blended and cropped. */
static void test_tiled(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    vae_decoder *v = vae_load_dir(SD2);
    tensor *l = st_load_f32(ref, "tile.lat", -1, NULL);
    float *z = l->data;
    for (int64_t i = 0; i < tensor_numel(l); i++) z[i] = z[i] / 0.18215f;
    size_t n = (size_t)2 * 3 * 80 * 120;
    float *out = xmalloc(n * sizeof(float));
    double t0 = now();
    vae_decode_tiled(v, out, z, 2, 10, 15, 64);
    double dt = now() - t0;
    tensor *want = st_load_f32(ref, "tile.out", -1, NULL);
    double maxerr = 0;
    for (size_t i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - ((float *)want->data)[i]));
    printf("# tile.lat -> tile.out [2, 3, 80, 120], 64-pixel tiles: max abs error %.3g, %.1f ms\n", maxerr, dt * 1e3);
    expect_close_fixture(ref, "tile.out", out, n, 1e-4);
    /* tile_px 0, or a tile as large as the image: whole decoding, not the fixture */
    float *whole = xmalloc(n * sizeof(float)), *big = xmalloc(n * sizeof(float));
    vae_decode(v, whole, z, 2, 10, 15);
    vae_decode_tiled(v, big, z, 2, 10, 15, 128);
    EXPECT(!memcmp(whole, big, n * sizeof(float)), "a tile larger than the image decodes whole");
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs(whole[i] - out[i]));
    EXPECT(d > 1e-2, "tiled and whole decoding differ for this tiny random VAE (%g)", d);
    free(whole), free(big), free(out);
    tensor_free(want), tensor_free(l);
    vae_free(v);
    st_close(ref);
}

static void test_threads(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    vae_decoder *v = vae_load_dir(SD1);
    int keep = threads_get();
    threads_set(1);
    check_decode(v, ref, "sd1.lat2", "sd1.out2");
    threads_set(keep);
    vae_free(v);
    st_close(ref);
}

/* ---- variants of a VAE folder, written to a temporary directory -------------- */

static char *tmp_vae(const char *name) {
    char *d = xasprintf("%s/%s", unit_tmpdir(), name);
    mkdir(d, 0755);
    return d;
}

/* Copies SD1's vae into dir with config edits (a JSON object merged in, keys
 * with null removed... kept as null) and tensor edits: drop one name, rename
 * a prefix, reshape one tensor, or set post_quant_conv to the identity. */
typedef struct edit {
    const char *config_json;     /* merged into config.json, or NULL */
    const char *drop;            /* tensor to leave out */
    const char *bad_shape;       /* tensor written as [1, numel] */
    int old_attn_names;          /* to_q -> query, ... */
    int identity_pq;             /* post_quant_conv = identity, bias 0 */
    int f16_rounded;             /* every value rounded to float16 (kept f32) */
    int f16_file;                /* written as f16 to diffusion_pytorch_model.fp16.safetensors */
    int sharded;                 /* two shards and a .safetensors.index.json */
} edit;

static void write_variant(const char *dir, const edit *e) {
    char *src = xasprintf("%s/vae/config.json", SD1);
    json_t *cfg = json_load_path(src);
    free(src);
    if (e->config_json) {
        json_error_t err;
        json_t *m = json_loads(e->config_json, 0, &err);
        CHECK(m);
        json_object_update(cfg, m);
        json_decref(m);
    }
    char *cpath = xasprintf("%s/config.json", dir);
    CHECK(json_dump_file(cfg, cpath, JSON_INDENT(2)) == 0);
    json_decref(cfg);
    free(cpath);

    char *wsrc = xasprintf("%s/vae/diffusion_pytorch_model.safetensors", SD1);
    st_file *f = st_open(wsrc);
    free(wsrc);
    const char **names = xcalloc((size_t)f->n, sizeof *names);
    tensor **ts = xcalloc((size_t)f->n, sizeof *ts);
    char **owned = xcalloc((size_t)f->n, sizeof *owned);
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const char *nm = f->entries[i].name;
        if (e->drop && !strcmp(nm, e->drop)) continue;
        tensor *t = st_load_f32(f, nm, -1, NULL);
        if (e->bad_shape && !strcmp(nm, e->bad_shape)) {
            t->ndim = 2;
            t->shape[1] = tensor_numel(t);
            t->shape[0] = 1;
        }
        if (e->identity_pq && !strncmp(nm, "post_quant_conv.", 16)) {
            float *p = t->data;
            memset(p, 0, tensor_nbytes(t));
            if (t->ndim == 4)
                for (int k = 0; k < t->shape[0]; k++) p[k * t->shape[1] + k] = 1;
        }
        if (e->f16_rounded || e->f16_file) {
            float *p = t->data;
            for (int64_t k = 0; k < tensor_numel(t); k++) p[k] = f16_to_f32(f32_to_f16(p[k]));
        }
        if (e->f16_file) {
            tensor *h = tensor_from_f32(t, DTYPE_F16);
            tensor_free(t);
            t = h;
        }
        const char *nn = nm;
        if (e->old_attn_names && strstr(nm, "attentions.0.")) {
            static const char *const from[] = {"to_q.", "to_k.", "to_v.", "to_out.0."};
            static const char *const to[] = {"query.", "key.", "value.", "proj_attn."};
            for (int k = 0; k < 4; k++) {
                const char *hit = strstr(nm, from[k]);
                if (hit) {
                    owned[n] = xasprintf("%.*s%s%s", (int)(hit - nm), nm, to[k], hit + strlen(from[k]));
                    nn = owned[n];
                    if (k == 0 && t->ndim == 2) { /* one of them as an old 1x1 conv */
                        t->ndim = 4;
                        t->shape[2] = t->shape[3] = 1;
                    }
                }
            }
        }
        names[n] = nn;
        ts[n++] = t;
    }
    if (e->sharded) { /* decoder.up_blocks.* in shard 2, the rest in shard 1 */
        const char *shard[2] = {"diffusion_pytorch_model-00001-of-00002.safetensors",
                                "diffusion_pytorch_model-00002-of-00002.safetensors"};
        json_t *map = json_object();
        for (int part = 0; part < 2; part++) {
            const char **pn = xcalloc((size_t)n, sizeof *pn);
            const tensor **pt = xcalloc((size_t)n, sizeof *pt);
            int m = 0;
            for (int i = 0; i < n; i++)
                if ((strncmp(names[i], "decoder.up_blocks.", 18) == 0) == part) {
                    pn[m] = names[i], pt[m++] = ts[i];
                    json_object_set_new(map, names[i], json_string(shard[part]));
                }
            char *sp = xasprintf("%s/%s", dir, shard[part]);
            st_write(sp, m, pn, pt, NULL);
            free(sp), free(pn), free(pt);
        }
        json_t *index = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", map);
        char *ip = xasprintf("%s/diffusion_pytorch_model.safetensors.index.json", dir);
        CHECK(json_dump_file(index, ip, JSON_INDENT(2)) == 0);
        free(ip);
        json_decref(index);
    } else {
        char *wdst = xasprintf("%s/diffusion_pytorch_model%s.safetensors", dir, e->f16_file ? ".fp16" : "");
        st_write(wdst, n, names, (const tensor *const *)ts, NULL);
        free(wdst);
    }
    for (int i = 0; i < n; i++) {
        tensor_free(ts[i]);
        free(owned[i]);
    }
    free(owned);
    free(ts);
    free(names);
    st_close(f);
}

/* The tiny-sd1 output for lat2 from a decoder, in fresh memory. */
static float *decode_lat2(const vae_decoder *v, const st_file *ref, size_t *n) {
    tensor *l = st_load_f32(ref, "sd1.lat2", -1, NULL);
    float *z = l->data;
    for (int64_t i = 0; i < tensor_numel(l); i++) z[i] /= 0.18215f;
    *n = (size_t)2 * 3 * 48 * 80; /* [2,4,6,10] latents, the VAE scales by 8 */
    float *out = xmalloc(*n * sizeof(float));
    vae_decode(v, out, z, 2, 6, 10);
    tensor_free(l);
    return out;
}

static void test_old_attention_names(void) {
    char *d = tmp_vae("old_names");
    write_variant(d, &(edit){.old_attn_names = 1});
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    vae_decoder *v = vae_load_dir(d);
    check_decode(v, ref, "sd1.lat2", "sd1.out2");
    vae_free(v);
    st_close(ref);
    free(d);
}

/* use_post_quant_conv: false skips the layer (its tensors may be absent).
 * With post_quant_conv set to the identity both configs must agree, and the
 * real (random) post_quant_conv must make a difference. */
static void test_post_quant_conv_flag(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    char *d1 = tmp_vae("pq_identity"), *d2 = tmp_vae("pq_off"), *d3 = tmp_vae("pq_off_absent");
    write_variant(d1, &(edit){.identity_pq = 1});
    write_variant(d2, &(edit){.config_json = "{\"use_post_quant_conv\": false}"});
    write_variant(d3, &(edit){.config_json = "{\"use_post_quant_conv\": false}", .drop = "post_quant_conv.weight"});
    vae_decoder *v1 = vae_load_dir(d1), *v2 = vae_load_dir(d2), *v3 = vae_load_dir(d3), *v0 = vae_load_dir(SD1);
    size_t n;
    float *o1 = decode_lat2(v1, ref, &n), *o2 = decode_lat2(v2, ref, &n), *o3 = decode_lat2(v3, ref, &n);
    float *o0 = decode_lat2(v0, ref, &n);
    expect_close("use_post_quant_conv false == identity post_quant_conv", o2, o1, n, 1e-6);
    EXPECT(!memcmp(o2, o3, n * sizeof(float)), "absent post_quant_conv tensors are not needed");
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs(o0[i] - o1[i]));
    EXPECT(diff > 1e-2, "post_quant_conv changes the output (max diff %g)", diff);
    free(o0), free(o1), free(o2), free(o3);
    vae_free(v0), vae_free(v1), vae_free(v2), vae_free(v3);
    free(d1), free(d2), free(d3);
    st_close(ref);
}

/* fp16 weights (the .fp16 variant, the only file there) are widened to f32:
 * the same output, bit for bit, as f32 weights holding the same values; and
 * a sharded checkpoint gives the output of the single file. */
static void test_weight_files(void) {
    st_file *ref = st_open(fixture_path("vae_ref.safetensors"));
    char *d1 = tmp_vae("f16_rounded"), *d2 = tmp_vae("f16_file"), *d3 = tmp_vae("sharded");
    write_variant(d1, &(edit){.f16_rounded = 1});
    write_variant(d2, &(edit){.f16_file = 1});
    write_variant(d3, &(edit){.sharded = 1});
    vae_decoder *v1 = vae_load_dir(d1), *v2 = vae_load_dir(d2), *v3 = vae_load_dir(d3);
    size_t n;
    float *o1 = decode_lat2(v1, ref, &n), *o2 = decode_lat2(v2, ref, &n);
    EXPECT(!memcmp(o1, o2, n * sizeof(float)), "fp16 file == f32 file of the rounded values");
    check_decode(v3, ref, "sd1.lat2", "sd1.out2");
    free(o1), free(o2);
    vae_free(v1), vae_free(v2), vae_free(v3);
    free(d1), free(d2), free(d3);
    st_close(ref);
}

static void test_scaling_factor_from_config(void) {
    char *d = tmp_vae("sf");
    write_variant(d, &(edit){.config_json = "{\"scaling_factor\": 0.5}"});
    vae_decoder *v = vae_load_dir(d);
    EXPECT(vae_get_config(v)->scaling_factor == 0.5f, "scaling_factor %g", (double)vae_get_config(v)->scaling_factor);
    vae_free(v);
    free(d);
}

static void load_dies(void *dir) { vae_load_dir(dir); }

static void expect_refused(const char *name, const edit *e, const char *needle) {
    char *d = tmp_vae(name);
    write_variant(d, e);
    expect_dies(name, load_dies, d, 2, needle);
    free(d);
}

static void test_refusals(void) {
    expect_refused("missing", &(edit){.drop = "decoder.mid_block.attentions.0.to_k.weight"},
                   "missing tensor \"decoder.mid_block.attentions.0.to_k.weight\"");
    expect_refused("missing_up", &(edit){.drop = "decoder.up_blocks.0.upsamplers.0.conv.bias"},
                   "decoder.up_blocks.0.upsamplers.0.conv.bias");
    expect_refused("shape", &(edit){.bad_shape = "decoder.up_blocks.1.resnets.1.conv2.weight"},
                   "decoder.up_blocks.1.resnets.1.conv2.weight");
    expect_refused("up_type", &(edit){.config_json = "{\"up_block_types\": [\"UpDecoderBlock2D\", \"AttnUpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}"},
                   "up_block_types[1] is AttnUpDecoderBlock2D");
    expect_refused("act", &(edit){.config_json = "{\"act_fn\": \"gelu\"}"}, "act_fn \"gelu\"");
    expect_refused("shift", &(edit){.config_json = "{\"shift_factor\": 0.0609}"}, "shift_factor is set");
    expect_refused("groups", &(edit){.config_json = "{\"norm_num_groups\": 5}"}, "norm_num_groups 5 does not divide");
    expect_refused("class", &(edit){.config_json = "{\"_class_name\": \"AutoencoderTiny\"}"}, "AutoencoderTiny");
    /* block_out_channels that do not match the weights: a shape error naming a tensor */
    expect_refused("channels", &(edit){.config_json = "{\"block_out_channels\": [64, 64, 64, 64]}"}, "decoder.conv_in.weight");
    /* layers_per_block 2 needs resnets.2 that tiny-sd1 lacks */
    expect_refused("layers", &(edit){.config_json = "{\"layers_per_block\": 2}"}, "resnets.2");
    expect_dies("no folder", load_dies, (void *)"/nonexistent/vae", 2, "not a model folder");
}

static void test_scratch_bound(void) {
    vae_decoder *v = vae_load_dir(SD2);
    /* 3 buffers of the largest activation: after the last upsample, 16 ch at 8x;
     * plus q, k, v, tokens at the mid block. */
    size_t want = (3 * (size_t)16 * 64 * 80 + 4 * (size_t)32 * 8 * 10) * 2 * sizeof(float);
    EXPECT(vae_decode_scratch_bytes(v, 2, 8, 10) == want, "scratch %zu, want %zu",
           vae_decode_scratch_bytes(v, 2, 8, 10), want);
    vae_free(v);
}

int main(void) {
    prog_init("test_vae");
    RUN(test_sd1_parity);
    RUN(test_sd2_parity);
    RUN(test_tiled);
    RUN(test_threads);
    RUN(test_old_attention_names);
    RUN(test_post_quant_conv_flag);
    RUN(test_weight_files);
    RUN(test_scaling_factor_from_config);
    RUN(test_refusals);
    RUN(test_scratch_bound);
    return unit_done();
}
