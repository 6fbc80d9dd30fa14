/* bench_gpu.c — the GPU figures `make gpu-check` records (issue 6): which
 * device answers; what the fp32 cuBLAS GEMM of libcommon reaches at the UNet's
 * and a square shape; the f16 GemmEx (tensor cores, fp32 accumulation) at
 * 8192^3; and the fused attention kernels (cuda_ops.h) at SD's 64x64-latent
 * self-attention (batch 2 for guidance, T 4096, 5 heads of 64): f16 and bf16
 * on the mma.sync kernel (the default), f16 on the WMMA and the CUDA-core
 * kernels, f32 on the latter; the VAE's one-head-of-512 attention (cuBLAS
 * path); the convolutions of the UNet (SD 2.1-base at 512x512, batch 2 and
 * 16) and of the VAE decoder through both implementations (im2col + GemmEx,
 * implicit GEMM: conv2d_cuda_set_impl); GroupNorm+SiLU at the UNet's 64x64
 * latents and the VAE's 512x512. Timed with CUDA
 * events (median of --reps). One JSON object per line on stdout; without a GPU
 * (or in a CUDA=0 build) one line {"skipped": why}. */
#include "common.h"
#include "device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SYNTHCXR_CUDA
#include "bench_util.h"
#include "cuda_ops.h"
#include "tensor.h"

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
/* Median milliseconds of reps runs of fn(ctx) (after one warm-up), by CUDA events. */
static double time_ms(void (*fn)(void *), void *ctx, int reps) {
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    double *ms = xmalloc((size_t)reps * sizeof *ms);
    fn(ctx);
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(t0, 0));
        fn(ctx);
        CUDA_CHECK(cudaEventRecord(t1, 0));
        CUDA_CHECK(cudaEventSynchronize(t1));
        float f;
        CUDA_CHECK(cudaEventElapsedTime(&f, t0, t1));
        ms[r] = f;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    double med = ms[reps / 2];
    free(ms);
    CUDA_CHECK(cudaEventDestroy(t0));
    CUDA_CHECK(cudaEventDestroy(t1));
    return med;
}

/* n random values in [-amp, amp) of storage type dt in fresh GPU memory. */
static void *gpu_random(size_t n, float amp, dtype_t dt) {
    float *h = xmalloc(n * sizeof *h);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = amp * ((float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f);
    }
    void *conv = xmalloc(n * dtype_size(dt));
    convert_from_f32(conv, h, dt, n);
    void *d = cuda_malloc(n * dtype_size(dt));
    CUDA_CHECK(cudaMemcpy(d, conv, n * dtype_size(dt), cudaMemcpyHostToDevice));
    free(conv);
    free(h);
    return d;
}

typedef struct { int m, n, k; void *a, *b, *c; dtype_t dt; } gemmex_ctx;
static void run_gemmex(void *p) {
    gemmex_ctx *g = p;
    gemm_cuda(0, 1, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->k, 0.0f, g->c, g->n, g->dt);
}

static void bench_gemmex(int m, int n, int k, dtype_t dt, int reps) {
    gemmex_ctx g = {m, n, k, gpu_random((size_t)m * k, 1, dt), gpu_random((size_t)n * k, 1, dt),
                    cuda_malloc((size_t)m * n * dtype_size(dt)), dt};
    double ms = time_ms(run_gemmex, &g, reps);
    printf("{\"kernel\":\"cublas_gemmex_%s\",\"shape\":\"%dx%dx%d\",\"ms_median\":%.4f,\"tflops\":%.2f}\n",
           dtype_name(dt), m, n, k, ms, 2.0 * m * n * k / (ms * 1e-3) / 1e12);
    fflush(stdout);
    cuda_free(g.a);
    cuda_free(g.b);
    cuda_free(g.c);
}

typedef struct { int batch, heads, t, d; void *q, *k, *v, *o; dtype_t dt; } attn_ctx;
static void run_attention(void *p) {
    attn_ctx *a = p;
    attention_forward_cuda(a->o, a->q, a->k, a->v, a->batch, a->heads, a->t, a->t, a->d, 1.0f / sqrtf((float)a->d),
                           0, NULL, a->dt);
}

/* impl: 1 the CUDA-core kernel, 2 the WMMA kernel, 3 the mma.sync kernel, 4 the cuBLAS path
 * (attention_cuda_set_impl). */
static void bench_attention(int batch, int t, int heads, int d, dtype_t dt, int impl, int reps) {
    size_t n = (size_t)batch * t * heads * d;
    attn_ctx a = {batch, heads, t, d, gpu_random(n, 1.5f, dt), gpu_random(n, 1.5f, dt), gpu_random(n, 1, dt),
                  cuda_malloc(n * dtype_size(dt)), dt};
    int old = attention_cuda_set_impl(impl);
    double ms = time_ms(run_attention, &a, reps);
    attention_cuda_set_impl(old);
    double flop = 4.0 * batch * heads * (double)t * t * d; /* Q K^T and P V */
    printf("{\"kernel\":\"attention_%s_%s\",\"shape\":\"B%d T%d H%d D%d\",\"seconds\":%.6f,\"ms_median\":%.4f,"
           "\"tflops\":%.2f}\n",
           impl == 4 ? "cublas" : impl == 3 ? "mma" : impl == 2 ? "wmma" : "fma", dtype_name(dt), batch, t, heads, d, ms * 1e-3, ms, flop / (ms * 1e-3) / 1e12);
    fflush(stdout);
    cuda_free(a.q);
    cuda_free(a.k);
    cuda_free(a.v);
    cuda_free(a.o);
}
typedef struct { conv2d_dims d; void *x, *w, *b, *y, *ws; size_t ws_bytes; dtype_t dt; } conv_ctx;
static void run_conv(void *p) {
    conv_ctx *c = p;
    conv2d_forward_cuda(c->y, c->x, c->w, c->b, &c->d, c->ws, c->ws_bytes, c->dt);
}

/* One convolution (pad k/2) of the UNet or the VAE through both implementations
 * (conv2d_cuda_set_impl): im2col + GemmEx with its workspace allocated once
 * (64 MiB at most, as the model walks), and the implicit GEMM. One line each:
 * kernel conv2d_<impl>_<dtype>, model, shape, milliseconds, TFLOP/s; the
 * implicit GEMM's also with max|igemm - im2col| / max|im2col| of the outputs
 * (f16: a few 1e-3 at most, the two roundings of float sums; 1e30 for NaN). */
static void bench_conv(const char *model, int batch, int in_ch, int out_ch, int hw, int k, int stride, dtype_t dt,
                       int reps) {
    conv_ctx c = {{batch, in_ch, hw, hw, out_ch, k, k, stride, stride, k / 2, k / 2}, NULL, NULL, NULL, NULL, NULL, 0,
                  dt};
    const int ohw = conv2d_out_h(&c.d) * conv2d_out_w(&c.d);
    c.x = gpu_random((size_t)batch * in_ch * hw * hw, 1, dt);
    c.w = gpu_random((size_t)out_ch * in_ch * k * k, 0.05f, dt);
    c.b = gpu_random((size_t)out_ch, 1, dt);
    c.y = cuda_malloc((size_t)batch * out_ch * ohw * dtype_size(dt));
    size_t full = conv2d_cuda_workspace_bytes(&c.d, dt);
    c.ws_bytes = full < ((size_t)64 << 20) ? full : ((size_t)64 << 20);
    c.ws = c.ws_bytes ? cuda_malloc(c.ws_bytes) : NULL;
    const double flop = 2.0 * batch * out_ch * (double)ohw * in_ch * k * k;
    const size_t ny = (size_t)batch * out_ch * ohw;
    float *y1 = xmalloc(ny * sizeof *y1), *y2 = xmalloc(ny * sizeof *y2);
    void *tmp = xmalloc(ny * dtype_size(dt));
    for (int impl = 1; impl <= 2; impl++) {
        int old = conv2d_cuda_set_impl(impl);
        double ms = time_ms(run_conv, &c, reps);
        conv2d_cuda_set_impl(old);
        /* the second's output against the first's: max|igemm - im2col| / max|im2col| */
        CUDA_CHECK(cudaMemcpy(tmp, c.y, ny * dtype_size(dt), cudaMemcpyDeviceToHost));
        convert_to_f32(impl == 1 ? y1 : y2, tmp, dt, ny);
        double diff = 0, scale = 0;
        for (size_t i = 0; impl == 2 && i < ny; i++) {
            double e = fabs((double)y2[i] - y1[i]);
            diff = e > diff || e != e ? e : diff;
            scale = fabs(y1[i]) > scale ? fabs(y1[i]) : scale;
        }
        printf("{\"kernel\":\"conv2d_%s_%s\",\"impl\":%d,\"model\":\"%s\",\"shape\":\"B%d C%d->%d %dx%d k%d s%d\","
               "\"ms_median\":%.4f,\"tflops\":%.2f",
               impl == 2 ? "igemm" : "im2col", dtype_name(dt), impl, model, batch, in_ch, out_ch, hw, hw, k, stride,
               ms, flop / (ms * 1e-3) / 1e12);
        if (impl == 2) printf(",\"rel_diff_vs_im2col\":%.3g", diff != diff ? 1e30 : diff / (scale > 0 ? scale : 1));
        printf("}\n");
        fflush(stdout);
    }
    free(y1), free(y2), free(tmp);
    cuda_free(c.x), cuda_free(c.w), cuda_free(c.b), cuda_free(c.y), cuda_free(c.ws);
}

typedef struct { void *x, *g, *b; int batch, ch, hw; dtype_t dt; } gn_ctx;
static void run_gn(void *p) {
    gn_ctx *c = p;
    groupnorm_silu_forward_cuda(c->x, c->x, c->g, c->b, c->batch, c->ch, c->hw, 32, 1e-5f, c->dt);
}

/* GroupNorm+SiLU in place: three reads and one write of the tensor. */
static void bench_groupnorm(int batch, int ch, int hw, dtype_t dt, int reps) {
    size_t n = (size_t)batch * ch * hw;
    gn_ctx c = {gpu_random(n, 1, dt), gpu_random((size_t)ch, 1, dt), gpu_random((size_t)ch, 1, dt), batch, ch, hw,
                dt};
    double ms = time_ms(run_gn, &c, reps);
    printf("{\"kernel\":\"groupnorm_silu_%s\",\"shape\":\"B%d C%d HW%d\",\"ms_median\":%.4f,\"gbps\":%.1f}\n",
           dtype_name(dt), batch, ch, hw, ms, 4.0 * n * dtype_size(dt) / (ms * 1e-3) / 1e9);
    fflush(stdout);
    cuda_free(c.x), cuda_free(c.g), cuda_free(c.b);
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
    bench_gemmex(8192, 8192, 8192, DTYPE_F16, reps);
    /* SD's 64x64-latent self-attention, batch 2 (classifier-free guidance) */
    bench_attention(2, 4096, 5, 64, DTYPE_F16, 3, reps);
    bench_attention(2, 4096, 5, 64, DTYPE_BF16, 3, reps);
    bench_attention(2, 4096, 5, 64, DTYPE_F16, 2, reps);
    bench_attention(2, 4096, 5, 64, DTYPE_F16, 1, reps);
    bench_attention(2, 4096, 5, 64, DTYPE_F32, 1, reps);
    /* the VAE decoder's mid-block attention at 512x512 (one head of 512): the cuBLAS path */
    bench_attention(1, 4096, 1, 512, DTYPE_F16, 4, reps);
    /* The UNet's ResNet convs (SD 2.1-base at 512x512: 64x64 latents) at batch 2 (guidance) and 16, a
     * downsampler and a 1x1 shortcut; the VAE decoder's 3x3 convs at batch 1; both implementations. */
    for (int bi = 0; bi < 2; bi++) {
        const int batch = bi ? 16 : 2;
        bench_conv("unet", batch, 320, 320, 64, 3, 1, DTYPE_F16, reps);
        bench_conv("unet", batch, 640, 640, 32, 3, 1, DTYPE_F16, reps);
        bench_conv("unet", batch, 1280, 1280, 16, 3, 1, DTYPE_F16, reps);
    }
    bench_conv("unet", 2, 320, 320, 64, 3, 1, DTYPE_BF16, reps);
    bench_conv("unet", 2, 320, 320, 64, 3, 2, DTYPE_F16, reps);
    bench_conv("unet", 2, 640, 1280, 16, 1, 1, DTYPE_F16, reps);
    bench_conv("vae", 1, 512, 512, 64, 3, 1, DTYPE_F16, reps);
    bench_conv("vae", 1, 256, 256, 256, 3, 1, DTYPE_F16, reps);
    bench_conv("vae", 1, 128, 128, 512, 3, 1, DTYPE_F16, reps);
    /* GroupNorm+SiLU at 64x64 latents, batch 2 and 16; the VAE's widest */
    bench_groupnorm(2, 320, 64 * 64, DTYPE_F16, reps);
    bench_groupnorm(16, 320, 64 * 64, DTYPE_F16, reps);
    bench_groupnorm(1, 128, 512 * 512, DTYPE_F16, reps);
#endif
    return 0;
}
