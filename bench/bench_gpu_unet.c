/* bench_gpu_unet.c — synthcxr's side of the GPU generation benchmark that
 * `make gpu-check` runs next to diffusers' (bench/gpu_diffusers.py, which
 * writes the same random-weight UNet it timed as a diffusers folder): the UNet
 * at 64x64 latents (512^2 images), 77 tokens, classifier-free guidance (2
 * samples per image), in f16 storage with fp32 math; seconds per CFG step at
 * batch 1 and batch 16 (medians after warm-up, each pass synchronous, its
 * input upload and output download included), it/s, images/s over 50 steps
 * and TFLOP/s counting one UNet forward as 0.80 TFLOP (STUDY.md); each
 * twice: plain passes (the b1_* and b16_* keys, the default of denoise) and
 * with CUDA graphs (unet_cuda_set_graphs: the *_graphs keys; their warm-up
 * includes the capture).
 *   bench_gpu_unet UNET_DIR [MODEL_NAME] [STEPS1] [STEPS16]
 * One JSON line on stdout; {"skipped": why} without a GPU. */
#include "common.h"
#include "device.h"
#include "unet.h"
#include "unet_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SYNTHCXR_CUDA
#include "bench_util.h"

static double time_pass(unet_cuda *g, const unet_model *m, int B, int warm, int reps) {
    unet_info info = *unet_get_info(m);
    int H = 64, W = 64, T = 77;
    size_t ns = (size_t)B * info.in_channels * H * W, no = (size_t)B * info.out_channels * H * W;
    size_t ne = (size_t)B * T * info.cross_attention_dim;
    float *x = xmalloc(ns * sizeof *x), *out = xmalloc(no * sizeof *out), *enc = xmalloc(ne * sizeof *enc);
    float *t = xmalloc((size_t)B * sizeof *t);
    uint64_t s = 42;
    for (size_t i = 0; i < ns; i++) { s = s * 6364136223846793005ull + 1; x[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1; }
    for (size_t i = 0; i < ne; i++) { s = s * 6364136223846793005ull + 1; enc[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1; }
    for (int i = 0; i < B; i++) t[i] = 500;
    double *sec = xmalloc((size_t)reps * sizeof *sec);
    for (int r = 0; r < warm + reps; r++) {
        double t0 = now_s();
        unet_cuda_forward(g, out, x, t, enc, B, H, W, T);
        if (r >= warm) sec[r - warm] = now_s() - t0;
    }
    qsort(sec, (size_t)reps, sizeof *sec, cmp_double);
    double med = sec[reps / 2];
    free(sec), free(x), free(out), free(enc), free(t);
    return med;
}
#endif

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc < 2) die_usage("usage: bench_gpu_unet UNET_DIR [MODEL_NAME] [STEPS1] [STEPS16]");
    const char *name = argc > 2 ? argv[2] : "unet";
    int steps1 = argc > 3 ? (int)parse_long("STEPS1", argv[3], 1, 1000) : 20;
    int steps16 = argc > 4 ? (int)parse_long("STEPS16", argv[4], 1, 1000) : 6;
    (void)name, (void)steps1, (void)steps16;
    if (cuda_device_count() == 0) {
        printf("{\"side\":\"synthcxr\",\"skipped\":\"%s\"}\n", cuda_unavailable_reason());
        return 0;
    }
#ifdef SYNTHCXR_CUDA
    double t0 = now_s();
    unet_model *m = unet_load_dir(argv[1]);
    unet_cuda *g = unet_cuda_new(m, DTYPE_F16);
    info("%s: loaded and uploaded in %.1f s", name, now_s() - t0);
    unet_cuda_set_graphs(g, 0);
    double s1 = time_pass(g, m, 2, 3, steps1);
    info("%s: batch 1: %.1f ms per CFG step", name, s1 * 1e3);
    double s16 = time_pass(g, m, 32, 2, steps16);
    info("%s: batch 16: %.1f ms per CFG step", name, s16 * 1e3);
    unet_cuda_set_graphs(g, 1);
    double g1 = time_pass(g, m, 2, 3, steps1);
    info("%s: batch 1, CUDA graphs: %.1f ms per CFG step", name, g1 * 1e3);
    double g16 = time_pass(g, m, 32, 2, steps16);
    info("%s: batch 16, CUDA graphs: %.1f ms per CFG step", name, g16 * 1e3);
    long caps, reps;
    unet_cuda_graph_counts(g, &caps, &reps);
    printf("{\"side\":\"synthcxr\",\"model\":\"%s\",\"precision\":\"fp16\",\"b1_s_per_step\":%.6f,"
           "\"b1_it_per_s\":%.3f,\"b16_s_per_step\":%.6f,\"b16_images_per_s_50steps\":%.4f,"
           "\"b1_tflops\":%.2f,\"b16_tflops\":%.2f,"
           "\"b1_s_per_step_graphs\":%.6f,\"b1_it_per_s_graphs\":%.3f,\"b16_s_per_step_graphs\":%.6f,"
           "\"b16_images_per_s_50steps_graphs\":%.4f,\"graph_captures\":%ld,\"graph_replays\":%ld}\n",
           name, s1, 1.0 / s1, s16, 16.0 / (50 * s16), 2 * 0.80 / s1, 32 * 0.80 / s16, g1, 1.0 / g1, g16,
           16.0 / (50 * g16), caps, reps);
    unet_cuda_free(g);
    unet_free(m);
#endif
    return 0;
}
