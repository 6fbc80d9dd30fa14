/* test_gpu_vae.c — the GPU VAE decoder (vae_cuda.h) against the CPU decoder
 * (vae.h, itself tested against diffusers in test_vae.c) on the tiny fixture
 * VAEs and the latents of vae_ref.safetensors: fp32 within 1e-4 of the
 * image's scale (cuBLAS sums in another order than OpenBLAS); fp16 within
 * 2e-2 and bf16 within 1e-1 (first estimates, not yet measured on a GPU: the
 * storage unit roundoff, 4.9e-4 and 3.9e-3, times the some 40 roundings along
 * the decoder's path, as test_gpu_unet.c; the measured errors are printed);
 * tiled decoding against the CPU's, and the attention's cuBLAS path (SD's
 * 512-wide head) forced on the tiny VAEs (the same tolerances); a batch of 2 equal,
 * per latent, to two passes of 1 (fp32 1e-5, fp16 2e-3: cuBLAS may pick other
 * kernels for other shapes); a second pass giving the same bytes; the convs
 * in runs under a small workspace cap; the arena reservation refusing a batch
 * that cannot fit, without dying, and the batch it names fitting. Without a
 * GPU (or CUDA) every test says "# SKIP no GPU". */
#include "unit.h"
#include "device.h"
#include "vae.h"
#include "vae_cuda.h"

#ifdef SYNTHCXR_CUDA
#include "gpu_test.h"

static st_file *ref;

static double vae_tol(dtype_t dt) { return dt == DTYPE_F32 ? 1e-4 : dt == DTYPE_F16 ? 2e-2 : 1e-1; }

/* fixture latents `key`, divided by the scaling factor as the pipelines do */
static tensor *latents(const char *key) {
    tensor *l = st_load_f32(ref, key, -1, NULL);
    float *z = l->data;
    for (int64_t i = 0; i < tensor_numel(l); i++) z[i] = z[i] / 0.18215f;
    return l;
}

/* keys through the CPU and the GPU in the three storage types; tile_px 0: whole */
static void check_model(const char *dir, const char *const *keys, int n_keys, int tile_px) {
    vae_decoder *v = vae_load_dir(fixture_path(dir));
    const vae_config *c = vae_get_config(v);
    int s = vae_upscale(v);
    for (int d = 0; d < 3; d++) {
        dtype_t dt = gt_dtypes[d];
        vae_cuda *g = vae_cuda_new(v, dt);
        for (int i = 0; i < n_keys; i++) {
            tensor *l = latents(keys[i]);
            int B = (int)l->shape[0], h = (int)l->shape[2], w = (int)l->shape[3];
            size_t n = (size_t)B * c->out_channels * h * s * w * s;
            float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
            float *again = xmalloc(n * sizeof *again);
            if (tile_px) {
                vae_decode_tiled(v, want, l->data, B, h, w, tile_px);
                vae_cuda_decode_tiled(g, got, l->data, B, h, w, tile_px);
                vae_cuda_decode_tiled(g, again, l->data, B, h, w, tile_px);
            } else {
                vae_decode(v, want, l->data, B, h, w);
                vae_cuda_decode(g, got, l->data, B, h, w);
                vae_cuda_decode(g, again, l->data, B, h, w);
            }
            char what[160];
            snprintf(what, sizeof what, "%s %s [%d, 4, %d, %d]%s gpu vs cpu", dir, keys[i], B, h, w,
                     tile_px ? " tiled" : "");
            gt_compare(what, dt, got, want, n, vae_tol(dt));
            /* the arena is reused: a second pass gives the same bytes */
            EXPECT(!memcmp(again, got, n * sizeof *got), "%s %s: a second pass differs", what, dtype_name(dt));
            free(want), free(got), free(again);
            tensor_free(l);
        }
        vae_cuda_free(g);
    }
    vae_free(v);
}

static void test_sd1(void) {
    if (!have_gpu()) return;
    const char *keys[] = {"sd1.lat1", "sd1.lat2"};
    check_model("models/tiny-sd1", keys, 2, 0);
}

static void test_sd2(void) {
    if (!have_gpu()) return;
    const char *keys[] = {"sd2.lat1", "sd2.lat2", "png.lat"};
    check_model("models/tiny-sd2", keys, 3, 0);
}

/* test_vae.c's tile case: [2, 4, 10, 15] latents in 64-pixel tiles, one GPU pass per tile */
static void test_tiled(void) {
    if (!have_gpu()) return;
    const char *keys[] = {"tile.lat"};
    check_model("models/tiny-sd2", keys, 1, 64);
}

/* SD's VAE has one head of 512 channels, which attention_forward_cuda sends
 * through cuBLAS (head_dim > 160); the tiny VAEs' 32 take the flash kernels.
 * The cuBLAS path forced (attention_cuda_set_impl(4)) on the tiny VAEs. */
static void test_attention_cublas(void) {
    if (!have_gpu()) return;
    int keep = attention_cuda_set_impl(4);
    const char *k1[] = {"sd1.lat2"}, *k2[] = {"sd2.lat1"};
    check_model("models/tiny-sd1", k1, 1, 0);
    check_model("models/tiny-sd2", k2, 1, 0);
    attention_cuda_set_impl(keep);
}

/* sd1.lat2 as one pass of 2 and two passes of 1. */
static void test_batch(void) {
    if (!have_gpu()) return;
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd1"));
    tensor *l = latents("sd1.lat2");
    CHECK(l->shape[0] == 2);
    int h = (int)l->shape[2], w = (int)l->shape[3], s = vae_upscale(v);
    size_t ni = (size_t)4 * h * w, no = (size_t)3 * h * s * w * s;
    const float *z = l->data;
    for (int d = 0; d < 2; d++) {
        dtype_t dt = gt_dtypes[d];
        vae_cuda *g = vae_cuda_new(v, dt);
        float *both = xmalloc(2 * no * sizeof *both), *one = xmalloc(2 * no * sizeof *one);
        vae_cuda_decode(g, both, z, 2, h, w);
        for (int b = 0; b < 2; b++) vae_cuda_decode(g, one + b * no, z + b * ni, 1, h, w);
        gt_compare("tiny-sd1 sd1.lat2 batch 2 vs 1 + 1", dt, both, one, 2 * no, dt == DTYPE_F32 ? 1e-5 : 2e-3);
        free(both), free(one);
        vae_cuda_free(g);
    }
    tensor_free(l);
    vae_free(v);
}

/* The im2col workspace capped at 4 KiB: every 3x3 conv runs in runs of a few
 * pixels (conv2d_forward_cuda's other path); the image stays the CPU's. */
static void test_workspace_cap(void) {
    if (!have_gpu()) return;
    size_t keep = vae_cuda_set_workspace_max(4096);
    const char *keys[] = {"sd1.lat2"};
    check_model("models/tiny-sd1", keys, 1, 0);
    vae_cuda_set_workspace_max(keep);
}

/* A batch no GPU holds is refused with the sizes; the largest batch the
 * planner says fits in what is free then reserves. */
static void test_oom(void) {
    if (!have_gpu()) return;
    vae_decoder *v = vae_load_dir(fixture_path("models/tiny-sd1"));
    vae_cuda *g = vae_cuda_new(v, DTYPE_F16);
    vae_cuda_oom oom = {0};
    int ok = vae_cuda_reserve(g, 2000, 128, 128, &oom);
    printf("# tiny-sd1 batch 2000 of 128x128 latents: need %zu, avail %zu, free %zu, total %zu\n", oom.need,
           oom.avail, oom.free, oom.total);
    EXPECT(!ok && oom.need > oom.avail && oom.free <= oom.total && oom.total > 0, "2000 x 128^2 reserved?");
    int fit = vae_cuda_max_batch(v, DTYPE_F16, 128, 128, oom.avail);
    printf("# the largest batch that fits: %d\n", fit);
    EXPECT(fit >= 1 && fit < 2000, "fit %d", fit);
    if (fit >= 1) EXPECT(vae_cuda_reserve(g, fit, 128, 128, &oom), "batch %d does not reserve", fit);
    vae_cuda_free(g);
    vae_free(v);
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_sd1 no_cuda
#define test_sd2 no_cuda
#define test_tiled no_cuda
#define test_attention_cublas no_cuda
#define test_batch no_cuda
#define test_workspace_cap no_cuda
#define test_oom no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
#ifdef SYNTHCXR_CUDA
    ref = st_open(fixture_path("vae_ref.safetensors"));
#endif
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_tiled);
    RUN(test_attention_cublas);
    RUN(test_batch);
    RUN(test_workspace_cap);
    RUN(test_oom);
#ifdef SYNTHCXR_CUDA
    st_close(ref);
#endif
    return unit_done();
}
