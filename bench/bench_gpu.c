/* bench_gpu.c — the GPU figures `make gpu-check` records before synthcxr's own
 * GPU path exists for every op (issue 6): which device answers, and what the
 * fp32 cuBLAS GEMM of libcommon reaches at the UNet's and a square shape,
 * timed with CUDA events (median of --reps). One JSON object per line on
 * stdout; without a GPU (or in a CUDA=0 build) one line {"skipped": why}. */
#include "common.h"
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SYNTHCXR_CUDA
#include "bench_util.h"
#include "cuda_util.h"

static void bench_gemm(const char *what, int m, int n, int k, int reps) {
    float *a = cuda_malloc((size_t)m * k * sizeof(float));
    float *b = cuda_malloc((size_t)k * n * sizeof(float));
    float *c = cuda_malloc((size_t)m * n * sizeof(float));
    CUDA_CHECK(cudaMemset(a, 0, (size_t)m * k * sizeof(float)));
    CUDA_CHECK(cudaMemset(b, 0, (size_t)k * n * sizeof(float)));
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    double *ms = xmalloc((size_t)reps * sizeof *ms);
    gemm_f32_cuda(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n); /* warm-up */
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(t0, 0));
        gemm_f32_cuda(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        CUDA_CHECK(cudaEventRecord(t1, 0));
        CUDA_CHECK(cudaEventSynchronize(t1));
        float f;
        CUDA_CHECK(cudaEventElapsedTime(&f, t0, t1));
        ms[r] = f;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    double tflops = 2.0 * m * n * k / (ms[reps / 2] * 1e-3) / 1e12;
    printf("{\"kernel\":\"cublas_sgemm_f32\",\"shape\":\"%s %dx%dx%d\",\"ms_median\":%.4f,\"tflops\":%.2f}\n",
           what, m, n, k, ms[reps / 2], tflops);
    free(ms);
    cuda_free(a);
    cuda_free(b);
    cuda_free(c);
}
#endif

int main(int argc, char **argv) {
    prog_init(argv[0]);
    int reps = 20;
    if (argc > 2 && !strcmp(argv[1], "--reps")) reps = (int)parse_long("--reps", argv[2], 1, 10000);
    (void)reps;
    if (cuda_device_count() == 0) {
        printf("{\"skipped\":\"%s\"}\n", cuda_unavailable_reason());
        return 0;
    }
#ifdef SYNTHCXR_CUDA
    struct cudaDeviceProp p;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    int rt = 0, drv = 0;
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    CUDA_CHECK(cudaDriverGetVersion(&drv));
    printf("{\"device\":\"%s\",\"sm\":\"%d.%d\",\"multiprocessors\":%d,\"memory_gib\":%.1f,"
           "\"cuda_runtime\":%d,\"cuda_driver\":%d,\"devices\":%d}\n",
           p.name, p.major, p.minor, p.multiProcessorCount, (double)p.totalGlobalMem / (1 << 30), rt, drv,
           cuda_device_count());
    fflush(stdout);
    bench_gemm("square", 4096, 4096, 4096, reps);
    /* the UNet's widest attention projection at 64x64 latents, batch 2 (CFG) */
    bench_gemm("unet proj", 2 * 4096, 320, 320, reps);
    bench_gemm("unet ff", 2 * 1024, 5120, 640, reps);
#endif
    return 0;
}
