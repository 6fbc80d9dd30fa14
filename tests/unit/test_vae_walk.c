/* test_vae_walk.c — the GPU VAE decoder's walk (libcommon/vae_cuda.c) run on
 * the CPU: this file includes vae_cuda.c with every cuda_ops.h op it calls
 * bound to its CPU twin (cuda_walk_emu.h; the device is host memory; run in
 * f32 here), so the arena
 * layout, the weight mapping, the buffer aliasing and the layer order of the
 * GPU code are checked against vae_decode on the tiny fixture VAEs (those of
 * test_vae.c and tests/60-lat2png.bats) and on variants without
 * post_quant_conv and without the mid-block attention, without a GPU. Same
 * kernels on the same values in the same order: the images must be equal bit
 * for bit (memcmp), whole and in tiles (vae_cuda_decode_tiled against
 * vae_decode_tiled). The emulated ops also check what the real ones require:
 * the conv workspace given, inside the arena and holding at least one
 * column, no output aliasing an input where the op forbids it, every buffer
 * inside the arena or the weights; and the arena allocated is the planned
 * size, every byte an op touched inside it. Then the planner: a decoder built
 * from its config alone plans as the loaded one, the bytes grow with the
 * batch, and SD's own VAE at 512^2 (printed). What it cannot check: the CUDA
 * kernels themselves (test_gpu_ops.c, test_gpu_attention.c, test_gpu_vae.c on
 * a GPU). */
#undef SYNTHCXR_CUDA
#define VAE_CUDA_EMULATE 1

#include "unit.h"
#include "cuda_walk_emu.h"
#include "json.h"
#include "tensor.h"

#include <errno.h>
#include <sys/stat.h>

#include "../../libcommon/vae_cuda.c"

/* ---- the tests ------------------------------------------------------------------------ */

static st_file *ref;

/* fixture latents `key`, divided by the scaling factor as the pipelines do */
static tensor *latents(const char *key) {
    tensor *l = st_load_f32(ref, key, -1, NULL);
    float *z = l->data;
    for (int64_t i = 0; i < tensor_numel(l); i++) z[i] = z[i] / 0.18215f;
    return l;
}

/* The walk against vae_decode (tile_px 0) or vae_decode_tiled, bit for bit;
 * the arena is the plan, every byte touched inside it. */
static void check_walk(const vae_decoder *v, const char *what, const char *key, int tile_px) {
    tensor *l = latents(key);
    const vae_config *c = vae_get_config(v);
    int B = (int)l->shape[0], h = (int)l->shape[2], w = (int)l->shape[3], s = vae_upscale(v);
    size_t n = (size_t)B * c->out_channels * h * s * w * s;
    float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
    vae_cuda *g = vae_cuda_new(v, DTYPE_F32);
    emu_convs = emu_conv_runs = 0;
    if (tile_px) {
        vae_decode_tiled(v, want, l->data, B, h, w, tile_px);
        vae_cuda_decode_tiled(g, got, l->data, B, h, w, tile_px);
    } else {
        vae_decode(v, want, l->data, B, h, w);
        vae_cuda_decode(g, got, l->data, B, h, w);
    }
    int pb, ph, pw;
    vae_cuda_tiled_pass(v, B, h, w, tile_px, &pb, &ph, &pw);
    size_t plan = vae_cuda_arena_bytes(v, DTYPE_F32, pb, ph, pw), touched = emu_touched(g->arena);
    double err = 0;
    for (size_t k = 0; k < n; k++) err = fmax(err, fabs((double)got[k] - want[k]));
    printf("# %s %s [%d, 4, %d, %d]%s: walk vs CPU max abs err %.2e; arena %zu bytes planned (pass %dx%dx%d), "
           "%zu touched; %d convs, %d in runs\n",
           what, key, B, h, w, tile_px ? " tiled" : "", err, plan, pb, ph, pw, touched, emu_convs, emu_conv_runs);
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s%s", what, key, tile_px ? " tiled" : "");
    EXPECT(!memcmp(got, want, n * sizeof *got), "%s: the walk differs from the CPU decoder (max abs err %.3g)", msg,
           err);
    EXPECT(g->arena_cap == plan, "%s: arena of %zu bytes, the plan %zu", msg, g->arena_cap, plan);
    EXPECT(touched <= g->arena_cap && touched > 0, "%s: %zu bytes touched of %zu", msg, touched, g->arena_cap);
    vae_cuda_free(g);
    free(want), free(got);
    tensor_free(l);
}

static void test_sd1(void) {
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd1"));
    check_walk(v, "tiny-sd1", "sd1.lat1", 0);
    check_walk(v, "tiny-sd1", "sd1.lat2", 0);
    vae_free(v);
}

static void test_sd2(void) {
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd2"));
    check_walk(v, "tiny-sd2", "sd2.lat1", 0);
    check_walk(v, "tiny-sd2", "sd2.lat2", 0);
    check_walk(v, "tiny-sd2", "png.lat", 0);
    vae_free(v);
}

/* diffusers' tiled_decode with 64-pixel tiles (test_vae.c's tile case): the
 * tiling and blending are vae.c's, each tile one walk; and a tile larger
 * than the image decodes whole. */
static void test_tiled(void) {
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd2"));
    check_walk(v, "tiny-sd2", "tile.lat", 64);
    check_walk(v, "tiny-sd2", "tile.lat", 128);
    check_walk(v, "tiny-sd2", "tile.lat", 0);
    vae_free(v);
}

/* A workspace capped below one image: the convs get runs; the walk stays exact. */
static void test_workspace_cap(void) {
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd1"));
    size_t keep = vae_cuda_set_workspace_max(4096);   /* 1 KiB columns (32 x 9 floats): runs of a few pixels */
    size_t capped = vae_cuda_arena_bytes(v, DTYPE_F32, 2, 6, 10);
    check_walk(v, "tiny-sd1 ws 4096", "sd1.lat2", 0);
    EXPECT(emu_conv_runs > 0, "no conv ran in runs");
    vae_cuda_set_workspace_max(1);                    /* below a column: one column is the least */
    check_walk(v, "tiny-sd1 ws 1", "sd1.lat2", 0);
    vae_cuda_set_workspace_max(keep);
    size_t full = vae_cuda_arena_bytes(v, DTYPE_F32, 2, 6, 10);
    printf("# tiny-sd1 [2, 4, 6, 10]: arena %zu bytes, %zu with the workspace capped at 4096\n", full, capped);
    EXPECT(capped < full, "the cap saved nothing: %zu vs %zu", capped, full);
    vae_free(v);
}

/* A variant of tiny-sd1's VAE folder in a temporary folder: its config with
 * the two switches, its weights (the loader reads only the tensors it wants). */
static vae_decoder *variant(const char *name, int pq, int attn) {
    char *dir = xasprintf("%s/%s", unit_tmpdir(), name);
    CHECK(mkdir(dir, 0777) == 0 || errno == EEXIST);
    char *src = xasprintf("%s/vae/config.json", fixture_path("models/tiny-sd1"));
    json_t *cfg = json_load_path(src);
    json_object_set_new(cfg, "use_post_quant_conv", json_boolean(pq));
    json_object_set_new(cfg, "mid_block_add_attention", json_boolean(attn));
    char *cpath = xasprintf("%s/config.json", dir);
    CHECK(json_dump_file(cfg, cpath, 0) == 0);
    char *wsrc = xasprintf("%s/vae/diffusion_pytorch_model.safetensors", fixture_path("models/tiny-sd1"));
    char *wdst = xasprintf("%s/diffusion_pytorch_model.safetensors", dir);
    size_t nb;
    unsigned char *bytes = unit_slurp(wsrc, &nb);
    unit_spit(wdst, bytes, nb);
    vae_decoder *v = vae_load_dir(dir);
    free(bytes), free(wsrc), free(wdst), free(cpath), free(src), free(dir);
    json_decref(cfg);
    return v;
}

static void test_variants(void) {
    vae_decoder *v = variant("no-pq", 0, 1);
    EXPECT(!vae_get_config(v)->post_quant_conv, "no post_quant_conv");
    check_walk(v, "tiny-sd1 without post_quant_conv", "sd1.lat2", 0);
    vae_free(v);
    v = variant("no-attn", 1, 0);
    EXPECT(!vae_get_config(v)->mid_attention, "no attention");
    check_walk(v, "tiny-sd1 without mid attention", "sd1.lat2", 0);
    vae_free(v);
}

/* The reservation refuses what the (emulated) free memory cannot hold, names
 * the need, and the planner's largest batch then reserves. */
static void test_reserve(void) {
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd1"));
    vae_cuda *g = vae_cuda_new(v, DTYPE_F32);
    size_t one = vae_cuda_arena_bytes(v, DTYPE_F32, 1, 32, 32);
    emu_free = VAE_CUDA_RESERVE + 5 * one;   /* room for about 5 latents, not 40 */
    vae_cuda_oom oom = {0};
    EXPECT(!vae_cuda_reserve(g, 40, 32, 32, &oom), "40 reserved");
    EXPECT(oom.need == vae_cuda_arena_bytes(v, DTYPE_F32, 40, 32, 32) && oom.avail == 5 * one, "need %zu avail %zu",
           oom.need, oom.avail);
    int fit = vae_cuda_max_batch(v, DTYPE_F32, 32, 32, oom.avail);
    EXPECT(fit >= 5 && fit < 40, "fit %d", fit);
    EXPECT(vae_cuda_reserve(g, fit, 32, 32, &oom), "the fitting batch %d", fit);
    EXPECT(g->arena_cap == vae_cuda_arena_bytes(v, DTYPE_F32, fit, 32, 32), "arena %zu", g->arena_cap);
    EXPECT(vae_cuda_reserve(g, 1, 32, 32, &oom), "a smaller pass reuses the arena");
    EXPECT(!vae_cuda_reserve(g, fit + 1, 32, 32, &oom), "one more latent");
    emu_free = (size_t)64 << 30;
    vae_cuda_free(g);
    vae_free(v);
}

/* ---- the planner ------------------------------------------------------------------------ */

static vae_decoder *from_config_text(const char *text, const char *where) {
    json_error_t err;
    json_t *c = json_loads(text, 0, &err);
    CHECKF(c, "%s: %s", where, err.text);
    vae_decoder *v = vae_from_config(c, where);
    json_decref(c);
    return v;
}

static vae_decoder *from_config_dir(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/vae/config.json", fixture_path(dir));
    json_t *c = json_load_path(path);
    vae_decoder *v = vae_from_config(c, path);
    json_decref(c);
    return v;
}

/* The plan is the same with or without weights. */
static void test_config_only(void) {
    const char *dirs[] = {"models/tiny-sd1", "models/tiny-sd2"};
    for (int i = 0; i < 2; i++) {
        vae_decoder *a = from_config_dir(dirs[i]), *b = vae_load_dir(fixture_path(dirs[i]));
        EXPECT(vae_cuda_weight_bytes(a, DTYPE_F16) == vae_cuda_weight_bytes(b, DTYPE_F16), "%s: weight bytes %zu vs %zu",
               dirs[i], vae_cuda_weight_bytes(a, DTYPE_F16), vae_cuda_weight_bytes(b, DTYPE_F16));
        for (int B = 1; B <= 4; B++) {
            size_t pa = vae_cuda_arena_bytes(a, DTYPE_F32, B, 6, 10);
            size_t pb = vae_cuda_arena_bytes(b, DTYPE_F32, B, 6, 10);
            EXPECT(pa == pb, "%s B=%d: %zu vs %zu", dirs[i], B, pa, pb);
        }
        vae_free(a);
        vae_free(b);
    }
}

static void decode_config_only(void *v) {
    float out[1], z[1] = {0};
    vae_decode(v, out, z, 1, 1, 1);
}

static void plan_too_large(void *v) { vae_cuda_arena_bytes(v, DTYPE_F16, 2048, 1024, 1024); }

static void test_monotone(void) {
    vae_decoder *v = from_config_dir("models/tiny-sd2");
    expect_dies("vae_decode of a config-only VAE", decode_config_only, v, 2, "built from its config alone");
    dtype_t dts[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        size_t prev = 0;
        for (int B = 1; B <= 40; B++) {
            size_t b = vae_cuda_arena_bytes(v, dts[d], B, 32, 32);
            EXPECT(b > prev, "%s: B=%d needs %zu bytes, B=%d %zu", dtype_name(dts[d]), B, b, B - 1, prev);
            prev = b;
        }
    }
    for (int B = 1; B <= 16; B *= 2) {
        size_t f32 = vae_cuda_arena_bytes(v, DTYPE_F32, B, 64, 64), f16 = vae_cuda_arena_bytes(v, DTYPE_F16, B, 64, 64);
        EXPECT(f16 == vae_cuda_arena_bytes(v, DTYPE_BF16, B, 64, 64), "B=%d: f16 and bf16 differ", B);
        EXPECT(f16 < f32 && 2 * f16 >= f32 && 2 * f16 <= f32 + (size_t)20 * 256, "B=%d: f32 %zu, f16 %zu", B, f32, f16);
    }
    EXPECT(vae_cuda_arena_bytes(v, DTYPE_F16, 2, 64, 64) > vae_cuda_arena_bytes(v, DTYPE_F16, 2, 32, 64),
           "64x64 vs 32x64");
    /* the largest batch: exactly the plan of k fits k, a byte less k - 1 */
    for (int k = 1; k <= 20; k += 3) {
        size_t fits = vae_cuda_arena_bytes(v, DTYPE_F16, k, 32, 32);
        EXPECT(vae_cuda_max_batch(v, DTYPE_F16, 32, 32, fits) == k, "%d fits", k);
        EXPECT(vae_cuda_max_batch(v, DTYPE_F16, 32, 32, fits - 1) == k - 1, "a byte short of %d", k);
    }
    /* unbounded memory: the cap, or what the kernels index (batch x h x w < 2^31 at 1024 x 1024 latents) */
    EXPECT(vae_cuda_max_batch(v, DTYPE_F16, 8, 8, (size_t)1 << 62) == VAE_CUDA_MAX_BATCH, "unbounded memory, 8x8");
    int lim = vae_cuda_max_batch(v, DTYPE_F16, 1024, 1024, (size_t)1 << 62);
    EXPECT(lim == 2047, "unbounded memory, 1024x1024: %d", lim);
    expect_dies("a pass too large to index", plan_too_large, v, 2, "too large for the GPU kernels' index types");
    /* tiled passes: one tile at batch 1, or the whole batch when the image is not larger than a tile */
    int pb, ph, pw;
    vae_cuda_tiled_pass(v, 4, 96, 128, 512, &pb, &ph, &pw);
    EXPECT(pb == 1 && ph == 64 && pw == 64, "tiled pass %dx%dx%d", pb, ph, pw);
    vae_cuda_tiled_pass(v, 4, 10, 70, 512, &pb, &ph, &pw);
    EXPECT(pb == 1 && ph == 10 && pw == 64, "tiled pass %dx%dx%d", pb, ph, pw);
    vae_cuda_tiled_pass(v, 4, 64, 64, 512, &pb, &ph, &pw);
    EXPECT(pb == 4 && ph == 64 && pw == 64, "whole pass %dx%dx%d", pb, ph, pw);
    vae_cuda_tiled_pass(v, 4, 96, 96, 0, &pb, &ph, &pw);
    EXPECT(pb == 4 && ph == 96 && pw == 96, "untiled pass %dx%dx%d", pb, ph, pw);
    vae_free(v);
}

/* SD's VAE (stabilityai/sd-vae-ft-mse and the vae/ of SD 1.5 and 2.1-base:
 * the same AutoencoderKL config). */
static const char sd_vae[] =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [128, 256, 512, 512],"
    " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\","
    " \"DownEncoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2,"
    " \"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 512, \"up_block_types\": [\"UpDecoderBlock2D\","
    " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

static void test_sd_vae(void) {
    vae_decoder *v = from_config_text(sd_vae, "sd-vae/config.json");
    size_t w = vae_cuda_weight_bytes(v, DTYPE_F16);
    printf("# SD VAE decoder (with post_quant_conv): %.1f MiB of f16 weights\n", w / 1048576.0);
    /* the decoder (49,490,179 parameters) and post_quant_conv (20) of SD's
     * AutoencoderKL, counted layer by layer from the config; each of the
     * 140-odd tensors padded to 16 values */
    EXPECT(w >= (size_t)49490199 * 2 && w < (size_t)49490199 * 2 + 200 * 32, "weights %zu bytes", w);
    dtype_t dts[] = {DTYPE_F16, DTYPE_F32};
    for (int d = 0; d < 2; d++) {
        size_t prev = 0;
        const int bs[] = {1, 2, 4, 8, 16};
        for (int i = 0; i < 5; i++) {
            size_t a = vae_cuda_arena_bytes(v, dts[d], bs[i], 64, 64);
            printf("# SD VAE 512^2 %s arena, batch %d: %zu bytes (%.3f GiB)\n", dtype_name(dts[d]), bs[i], a,
                   a / 1073741824.0);
            EXPECT(a > prev, "%s: batch %d needs %zu, less than a smaller batch's %zu", dtype_name(dts[d]), bs[i], a,
                   prev);
            prev = a;
        }
    }
    /* per latent: three buffers of 256 x 512 x 512 (the widest activation)
     * plus the image; the workspace (256 MiB cap) once */
    size_t a1 = vae_cuda_arena_bytes(v, DTYPE_F16, 1, 64, 64), a16 = vae_cuda_arena_bytes(v, DTYPE_F16, 16, 64, 64);
    size_t per = (size_t)3 * 256 * 512 * 512 * 2;
    EXPECT(a1 >= per + VAE_CUDA_WS_MAX && a1 < per + VAE_CUDA_WS_MAX + ((size_t)32 << 20), "batch 1: %zu", a1);
    EXPECT(a16 >= 16 * per && a16 < 16 * (per + ((size_t)32 << 20)) + VAE_CUDA_WS_MAX, "batch 16: %zu", a16);
    /* batch 16 at 512^2 fits an 80 GB card with room to spare */
    EXPECT(a16 + w + VAE_CUDA_RESERVE < (size_t)20e9, "batch 16 takes %zu bytes", a16);
    int fit80 = vae_cuda_max_batch(v, DTYPE_F16, 64, 64, (size_t)80e9 - w - VAE_CUDA_RESERVE);
    printf("# SD VAE 512^2 f16: the largest batch an 80 GB card holds: %d\n", fit80);
    EXPECT(fit80 >= 16, "80 GB holds only batch %d", fit80);
    /* one 64-latent tile of a 1024^2 image (--tile 512) plans as a 512^2 image */
    int pb, ph, pw;
    vae_cuda_tiled_pass(v, 16, 128, 128, 512, &pb, &ph, &pw);
    EXPECT(pb == 1 && vae_cuda_arena_bytes(v, DTYPE_F16, pb, ph, pw) == a1, "a tile of 1024^2");
    vae_free(v);
}

int main(void) {
    ref = st_open(fixture_path("vae_ref.safetensors"));
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_tiled);
    RUN(test_workspace_cap);
    RUN(test_variants);
    RUN(test_reserve);
    RUN(test_config_only);
    RUN(test_monotone);
    RUN(test_sd_vae);
    st_close(ref);
    return unit_done();
}
