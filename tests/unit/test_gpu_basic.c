/* test_gpu_basic.c — the CUDA base against the CPU: upload/download round
 * trip, the fp32 cuBLAS GEMM (shapes, transposes, strides, alpha/beta) against
 * a double-precision CPU GEMM, and SiLU (f32; activation_cuda.cu) against
 * its CPU twin (test_gpu_ops.c covers every op and storage type). Without a GPU
 * (or in a CUDA=0 build) every test says "# SKIP no GPU". */
#include "unit.h"
#include "device.h"
#include "activation.h"

#ifdef SYNTHCXR_CUDA
#include "cuda_ops.h"

/* Deterministic values in [-1, 1) (xorshift), so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static int have_gpu(void) {
    if (cuda_device_count() > 0) return 1;
    const char *r = cuda_unavailable_reason();
    char why[200];
    snprintf(why, sizeof why, "%s%s", strncmp(r, "no GPU", 6) ? "no GPU: " : "", r);
    unit_skip(why);
    return 0;
}

static void test_upload_download(void) {
    if (!have_gpu()) return;
    dtype_t dts[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_I64, DTYPE_U8};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        tensor *cpu = tensor_new(dts[k], 3, (int64_t[]){3, 5, 7});
        unsigned char *p = cpu->data;
        for (size_t i = 0; i < tensor_nbytes(cpu); i++) p[i] = (unsigned char)(i * 37 + k);
        tensor *gpu = tensor_cuda_upload(cpu);
        EXPECT(gpu->mem == MEM_CUDA && gpu->dtype == dts[k] && tensor_same_shape(gpu, 3, cpu->shape), "%s meta",
               dtype_name(dts[k]));
        tensor *back = tensor_cuda_download(gpu);
        EXPECT(back->mem == MEM_CPU && !memcmp(back->data, cpu->data, tensor_nbytes(cpu)), "%s bytes differ",
               dtype_name(dts[k]));
        /* Copy into existing tensors, and a fresh GPU tensor is zero. */
        tensor *z = tensor_cuda_new(dts[k], 3, cpu->shape);
        tensor *zb = tensor_cuda_download(z);
        int zero = 1;
        for (size_t i = 0; i < tensor_nbytes(zb); i++) zero &= ((unsigned char *)zb->data)[i] == 0;
        EXPECT(zero, "%s: tensor_cuda_new is not zero-filled", dtype_name(dts[k]));
        tensor_cuda_copy_to_device(z, cpu);
        memset(zb->data, 0xab, tensor_nbytes(zb));
        tensor_cuda_copy_to_host(zb, z);
        EXPECT(!memcmp(zb->data, cpu->data, tensor_nbytes(cpu)), "%s: copy_to_device/host", dtype_name(dts[k]));
        tensor_free(zb);
        tensor_cuda_free(z);
        tensor_free(back);
        tensor_cuda_free(gpu);
        tensor_free(cpu);
    }
}

/* The CPU reference, in double: C = alpha op(A) op(B) + beta C, row-major. */
static void gemm_ref(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            c[(size_t)i * ldc + j] = (float)(alpha * s + (double)beta * c[(size_t)i * ldc + j]);
        }
}

static float *gpu_from(const float *h, size_t n) {
    float *d = cuda_malloc(n * sizeof(float));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static void test_gemm(void) {
    if (!have_gpu()) return;
    struct { int m, n, k, pad; float alpha, beta; } cases[] = {
        {1, 1, 1, 0, 1.0f, 0.0f},    {7, 13, 5, 0, 1.0f, 0.0f},   {13, 7, 5, 3, 1.5f, 0.5f},
        {64, 48, 33, 0, 1.0f, 1.0f}, {129, 65, 257, 5, -0.75f, 0.25f}, {256, 320, 77, 0, 1.0f, 0.0f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            int m = cases[ci].m, n = cases[ci].n, k = cases[ci].k, pad = cases[ci].pad;
            /* Stored shapes: A is [m,k] or [k,m]; B is [k,n] or [n,k]; rows padded by pad. */
            int arows = ta ? k : m, acols = ta ? m : k, brows = tb ? n : k, bcols = tb ? k : n;
            int lda = acols + pad, ldb = bcols + pad, ldc = n + pad;
            size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)m * ldc;
            float *a = xmalloc(na * sizeof *a), *b = xmalloc(nb * sizeof *b);
            float *c = xmalloc(nc * sizeof *c), *want = xmalloc(nc * sizeof *c), *got = xmalloc(nc * sizeof *c);
            for (size_t i = 0; i < na; i++) a[i] = frand();
            for (size_t i = 0; i < nb; i++) b[i] = frand();
            for (size_t i = 0; i < nc; i++) c[i] = frand();
            memcpy(want, c, nc * sizeof *c);
            gemm_ref(ta, tb, m, n, k, cases[ci].alpha, a, lda, b, ldb, cases[ci].beta, want, ldc);
            float *da = gpu_from(a, na), *db = gpu_from(b, nb), *dc = gpu_from(c, nc);
            gemm_f32_cuda(ta, tb, m, n, k, cases[ci].alpha, da, lda, db, ldb, cases[ci].beta, dc, ldc);
            CUDA_CHECK(cudaMemcpy(got, dc, nc * sizeof *got, cudaMemcpyDeviceToHost));
            char what[128];
            snprintf(what, sizeof what, "gemm m=%d n=%d k=%d trans_a=%d trans_b=%d pad=%d", m, n, k, ta, tb, pad);
            /* fp32 accumulation against a double reference: tight, normalised to the output's scale.
             * The padding past n in each row of C must be left alone: compare the whole buffer. */
            expect_close(what, got, want, nc, 1e-5);
            cuda_free(da);
            cuda_free(db);
            cuda_free(dc);
            free(a), free(b), free(c), free(want), free(got);
        }
    }
}


static void test_silu(void) {
    if (!have_gpu()) return;
    size_t n = 100003; /* not a multiple of the block size */
    float *x = xmalloc(n * sizeof *x), *want = xmalloc(n * sizeof *x), *got = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = 12.0f * frand();
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -88.0f; /* exp overflow and the flat tails */
    silu_forward(want, x, n); /* the CPU twin */
    float *dx = gpu_from(x, n);
    float *dy = cuda_malloc(n * sizeof *dy);
    silu_forward_cuda(dy, dx, n, DTYPE_F32);
    CUDA_CHECK(cudaMemcpy(got, dy, n * sizeof *got, cudaMemcpyDeviceToHost));
    /* expf on the GPU is within 2 ulp of the CPU's: 1e-6 of the output scale is tight for fp32. */
    expect_close("silu", got, want, n, 1e-6);
    EXPECT(got[0] == 0.0f || fabsf(got[0]) < 1e-30f, "silu(-100) = %g", (double)got[0]);
    EXPECT(fabsf(got[1] - 100.0f) < 1e-5f, "silu(100) = %g", (double)got[1]);
    /* In place. */
    silu_forward_cuda(dx, dx, n, DTYPE_F32);
    CUDA_CHECK(cudaMemcpy(got, dx, n * sizeof *got, cudaMemcpyDeviceToHost));
    expect_close("silu in place", got, want, n, 1e-6);
    cuda_free(dx);
    cuda_free(dy);
    free(x), free(want), free(got);
}

/* The macros on made-up failures: no GPU call is needed (and none is made
 * in the forked child, where CUDA may not be used). */
static void cuda_check_fails(void *arg) {
    (void)arg;
    cudaError_t err = cudaErrorInvalidDevicePointer;
    CUDA_CHECK(err);
}
static void cublas_check_fails(void *arg) {
    (void)arg;
    cublasStatus_t st = CUBLAS_STATUS_INVALID_VALUE;
    CUBLAS_CHECK(st);
}

static void test_check_macros(void) {
    expect_dies("CUDA_CHECK", cuda_check_fails, NULL, 2, "test_gpu_basic.c:");
    expect_dies("CUDA_CHECK", cuda_check_fails, NULL, 2, "CUDA error in err: invalid device pointer");
    expect_dies("CUBLAS_CHECK", cublas_check_fails, NULL, 2, "cuBLAS error in st: CUBLAS_STATUS_INVALID_VALUE");
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_upload_download no_cuda
#define test_gemm no_cuda
#define test_silu no_cuda
#define test_check_macros no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    /* The tests that fork (expect_dies) first, before any CUDA call, so a
     * child's exit() has no CUDA state inherited from its parent to tear down. */
    RUN(test_check_macros);
    /* device.h answers in both builds; with no GPU it gives a reason. */
    if (cuda_device_count() == 0) fprintf(stdout, "# %s\n", cuda_unavailable_reason());
    RUN(test_upload_download);
    RUN(test_gemm);
    RUN(test_silu);
    return unit_done();
}
