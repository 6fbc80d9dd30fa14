/* test_unet_plan.c — the GPU UNet's arena planner (unet_cuda.h), which is CPU
 * arithmetic and runs in every build: the plan of a model built from its
 * config alone equals the plan of the loaded model; the bytes grow with the
 * batch (monotone, and linear up to the per-block alignment and the
 * batch-independent im2col workspace), halve from f32 to f16; the "largest
 * batch that fits" answer is the last batch whose plan fits, per record with
 * guidance doubling the UNet batch; and the figures of SD 2.1-base at 512^2
 * (64x64 latents, 77 tokens), whose parameter count must be diffusers' own. */
#include "unit.h"
#include "json.h"
#include "unet_cuda.h"
#include "unet_model.h"

static unet_model *from_config(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", fixture_path(dir));
    json_t *c = json_load_path(path);
    unet_model *m = unet_from_config(c, path);
    json_decref(c);
    return m;
}

/* The walk is the same with or without weights. */
static void test_config_only(void) {
    const char *dirs[] = {"models/tiny-sd1/unet", "models/tiny-sd2/unet", "unet-deep/unet", "unet-misc/unet"};
    for (int i = 0; i < 4; i++) {
        unet_model *a = from_config(dirs[i]), *b = unet_load_dir(fixture_path(dirs[i]));
        EXPECT(unet_get_info(a)->n_params == unet_get_info(b)->n_params, "%s: n_params %zu vs %zu", dirs[i],
               unet_get_info(a)->n_params, unet_get_info(b)->n_params);
        EXPECT(unet_cuda_weight_bytes(a, DTYPE_F16) == unet_cuda_weight_bytes(b, DTYPE_F16), "%s: weight bytes",
               dirs[i]);
        for (int B = 1; B <= 4; B++) {
            size_t pa = unet_cuda_arena_bytes(a, DTYPE_F32, B, 16, 8, 77);
            size_t pb = unet_cuda_arena_bytes(b, DTYPE_F32, B, 16, 8, 77);
            EXPECT(pa == pb, "%s B=%d: %zu vs %zu", dirs[i], B, pa, pb);
        }
        unet_free(a);
        unet_free(b);
    }
}

static void test_monotone_linear(void) {
    unet_model *m = from_config("models/tiny-sd1/unet");
    dtype_t dts[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        size_t prev = 0;
        for (int B = 1; B <= 40; B++) {
            size_t b = unet_cuda_arena_bytes(m, dts[d], B, 32, 32, 77);
            EXPECT(b > prev, "%s: B=%d needs %zu bytes, B=%d %zu", dtype_name(dts[d]), B, b, B - 1, prev);
            prev = b;
        }
        size_t b1 = unet_cuda_arena_bytes(m, dts[d], 1, 32, 32, 77);
        size_t b2 = unet_cuda_arena_bytes(m, dts[d], 2, 32, 32, 77);
        size_t b16 = unet_cuda_arena_bytes(m, dts[d], 16, 32, 32, 77);
        printf("# tiny-sd1 32x32 %s: batch 1 %zu, 2 %zu, 16 %zu bytes\n", dtype_name(dts[d]), b1, b2, b16);
        /* the workspace (one image) plus buffers of B times a per-sample size,
         * each rounded up to 256 bytes: b(B) = F + B P up to the rounding, so
         * b(16) - b(1) = 15 (b(2) - b(1)) within 15 x 256 bytes per live buffer */
        EXPECT(b16 <= 16 * b1 && b2 <= 2 * b1, "super-linear: %zu %zu %zu", b1, b2, b16);
        long long lin = (long long)(b16 - b1) - 15 * (long long)(b2 - b1);
        EXPECT(llabs(lin) <= 15 * 256 * 100, "not linear in the batch: %zu %zu %zu (off by %lld)", b1, b2, b16, lin);
    }
    /* f16 and bf16 take the same bytes, about half of f32 */
    for (int B = 1; B <= 16; B *= 2) {
        size_t f32 = unet_cuda_arena_bytes(m, DTYPE_F32, B, 64, 64, 77);
        size_t f16 = unet_cuda_arena_bytes(m, DTYPE_F16, B, 64, 64, 77);
        size_t bf16 = unet_cuda_arena_bytes(m, DTYPE_BF16, B, 64, 64, 77);
        EXPECT(f16 == bf16, "B=%d: f16 %zu, bf16 %zu", B, f16, bf16);
        EXPECT(f16 < f32 && 2 * f16 >= f32 && 2 * f16 <= f32 + (size_t)200 * 256, "B=%d: f32 %zu, f16 %zu", B, f32,
               f16);
    }
    /* larger latents and more tokens never need less */
    EXPECT(unet_cuda_arena_bytes(m, DTYPE_F16, 2, 64, 64, 77) > unet_cuda_arena_bytes(m, DTYPE_F16, 2, 32, 64, 77),
           "64x64 vs 32x64");
    EXPECT(unet_cuda_arena_bytes(m, DTYPE_F16, 2, 8, 8, 154) >= unet_cuda_arena_bytes(m, DTYPE_F16, 2, 8, 8, 77),
           "154 vs 77 tokens");
    unet_free(m);
}

static void plan_too_large(void *arg) { unet_cuda_arena_bytes(arg, DTYPE_F16, 4096, 512, 512, 77); }

static void test_max_batch(void) {
    unet_model *m = from_config("models/tiny-sd2/unet");
    for (int per = 1; per <= 2; per++) {
        for (int k = 1; k <= 20; k += 3) {
            size_t fits = unet_cuda_arena_bytes(m, DTYPE_F16, k * per, 32, 32, 77);
            int got = unet_cuda_max_batch(m, DTYPE_F16, per, 32, 32, 77, fits);
            EXPECT(got == k, "per %d: exactly the plan of %d fits, answer %d", per, k, got);
            got = unet_cuda_max_batch(m, DTYPE_F16, per, 32, 32, 77, fits - 1);
            EXPECT(got == k - 1, "per %d: one byte short of %d, answer %d", per, k, got);
            size_t next = unet_cuda_arena_bytes(m, DTYPE_F16, (k + 1) * per, 32, 32, 77);
            got = unet_cuda_max_batch(m, DTYPE_F16, per, 32, 32, 77, (fits + next) / 2);
            EXPECT(got == k, "per %d: between %d and %d, answer %d", per, k, k + 1, got);
        }
    }
    EXPECT(unet_cuda_max_batch(m, DTYPE_F16, 2, 32, 32, 77, 1000) == 0, "1000 bytes hold a batch");
    EXPECT(unet_cuda_max_batch(m, DTYPE_F16, 1, 32, 32, 77, (size_t)1 << 62) == UNET_CUDA_MAX_BATCH,
           "the cap for unbounded memory");
    unet_free(m);
    /* the kernels' index limit: B * H * W < 2^30, so 2047 records x 2 at 512 x 512 */
    m = from_config("models/tiny-sd1/unet");
    int lim = unet_cuda_max_batch(m, DTYPE_F16, 2, 512, 512, 77, (size_t)1 << 62);
    EXPECT(lim == 2047, "the limit at 512x512 with guidance: %d", lim);
    expect_dies("a pass too large to index", plan_too_large, m, 2, "too large for the GPU kernels' index types");
    unet_free(m);
}

/* SD 2.1-base's UNet config (stabilityai/stable-diffusion-2-1-base, the keys
 * that differ from the defaults). */
static const char sd21[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"attention_head_dim\": [5, 10, 20, 20],"
    " \"block_out_channels\": [320, 640, 1280, 1280], \"cross_attention_dim\": 1024,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\"], \"in_channels\": 4, \"out_channels\": 4, \"layers_per_block\": 2,"
    " \"norm_num_groups\": 32, \"sample_size\": 64, \"use_linear_projection\": true,"
    " \"flip_sin_to_cos\": true, \"freq_shift\": 0}";

static void test_sd21(void) {
    json_error_t err;
    json_t *c = json_loads(sd21, 0, &err);
    CHECK(c);
    unet_model *m = unet_from_config(c, "sd21/config.json");
    json_decref(c);
    /* diffusers: sum(p.numel() for p in UNet2DConditionModel(**sd21).parameters()) */
    EXPECT(unet_get_info(m)->n_params == 865910724, "n_params %zu", unet_get_info(m)->n_params);
    size_t w = unet_cuda_weight_bytes(m, DTYPE_F16);
    printf("# SD 2.1-base UNet: %zu parameters, %.3f GiB of f16 weights\n", unet_get_info(m)->n_params,
           w / 1073741824.0);
    const int bs[] = {1, 2, 16, 32};
    for (int i = 0; i < 4; i++) {
        size_t a = unet_cuda_arena_bytes(m, DTYPE_F16, bs[i], 64, 64, 77);
        printf("# SD 2.1-base 512^2 f16 arena, UNet batch %d: %zu bytes (%.3f GiB)\n", bs[i], a, a / 1073741824.0);
    }
    /* --batch 16 with guidance is a UNet batch of 32: it must fit an 80 GB card with room to spare */
    size_t a32 = unet_cuda_arena_bytes(m, DTYPE_F16, 32, 64, 64, 77);
    EXPECT(a32 + w + UNET_CUDA_RESERVE < (size_t)40e9, "batch 16 (x2) takes %zu + %zu bytes", a32, w);
    int fit80 = unet_cuda_max_batch(m, DTYPE_F16, 2, 64, 64, 77, (size_t)80e9 - w - UNET_CUDA_RESERVE);
    printf("# SD 2.1-base 512^2 f16: the largest --batch (with guidance) an 80 GB card holds: %d\n", fit80);
    EXPECT(fit80 >= 16, "80 GB holds only --batch %d", fit80);
    unet_free(m);
}

int main(void) {
    RUN(test_config_only);
    RUN(test_monotone_linear);
    RUN(test_max_batch);
    RUN(test_sd21);
    return unit_done();
}
