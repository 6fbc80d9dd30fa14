/* test_gpu_attention.c — attention_forward_cuda against its CPU twin
 * attention_forward, for each storage type and each kernel (the CUDA-core
 * kernel for all three; the two tensor-core kernels, WMMA and mma.sync, for
 * f16/bf16; the cuBLAS path for heads over 160 wide, all three): head dims 40, 64,
 * 80, 160 (SD's) and odd ones, T not a multiple of the tiles, tq != tk, batch
 * > 1, causal, an additive key mask with -inf and large negative entries, a
 * fully masked batch (zeros, as the CPU), and out == q. Inputs are rounded to
 * the storage type first on both sides; the normalised error is printed and
 * held to 1e-4 (f32: summation order), 2e-3 (f16), 1.6e-2 (bf16). The tensor-
 * core kernels also round the probabilities to the storage type before P V
 * (as flash attention does); its figures show what that costs.
 * Without a GPU (or in a CUDA=0 build) every test says "# SKIP no GPU". */
#include "unit.h"
#include "device.h"

#include "attention.h"

#ifdef SYNTHCXR_CUDA
#include "gpu_test.h"

typedef struct {
    int batch, heads, tq, tk, d, causal;
    int mask; /* 0 none; 1 random padding (-inf / -1e4 tails); 2 that and batch 1 fully masked */
} attn_case;

static const attn_case cases[] = {
    {1, 1, 1, 1, 64, 0, 0},      /* one query, one key */
    {2, 3, 77, 77, 64, 1, 0},    /* CLIP text: causal, T = 77 */
    {2, 2, 100, 37, 40, 0, 1},   /* SD 1.5 level 1 head dim, cross-attention shape, padding mask */
    {1, 5, 130, 130, 80, 0, 0},  /* head dim 80, T past two tiles */
    {2, 2, 65, 200, 160, 1, 1},  /* head dim 160, causal with tq < tk, masked */
    {3, 2, 33, 129, 64, 0, 2},   /* a fully masked batch */
    {1, 3, 200, 50, 64, 1, 0},   /* causal with tq > tk: late queries see every key */
    {2, 1, 47, 47, 24, 0, 0},    /* head dim not a multiple of 16 (padded) */
    {1, 2, 257, 77, 160, 0, 1},  /* SD 1.5 cross-attention at the lowest level, T past the tile */
    {1, 2, 70, 75, 33, 1, 1},    /* odd head dim: element-wise staging instead of 16-byte loads */
};

static void run_case(const attn_case *c, dtype_t dt, int impl, int in_place) {
    const int B = c->batch, H = c->heads, tq = c->tq, tk = c->tk, D = c->d;
    size_t nq = (size_t)B * tq * H * D, nk = (size_t)B * tk * H * D;
    float *q = host_rand(nq, 1.5f, 0, dt), *k = host_rand(nk, 1.5f, 0, dt), *v = host_rand(nk, 1, 0, dt);
    float *mask = NULL;
    if (c->mask) {
        mask = xmalloc((size_t)B * tk * sizeof *mask);
        for (int b = 0; b < B; b++) {
            int keep = 1 + (int)((frand() + 1) * 0.5f * (tk - 1)); /* the first keep keys are real */
            for (int j = 0; j < tk; j++) mask[(size_t)b * tk + j] = j < keep ? 0.0f : (j & 1 ? -INFINITY : -1e4f);
            if (c->mask == 2 && b == 1)
                for (int j = 0; j < tk; j++) mask[(size_t)b * tk + j] = -INFINITY;
        }
    }
    const float scale = 1.0f / sqrtf((float)D);
    float *want = xmalloc(nq * sizeof *want);
    attention_forward(want, q, k, v, B, H, tq, tk, D, scale, c->causal, mask);
    void *dq = dev_from(q, nq, dt), *dk = dev_from(k, nk, dt), *dv = dev_from(v, nk, dt);
    float *dmask = NULL;
    if (mask) {
        dmask = cuda_malloc((size_t)B * tk * sizeof *dmask);
        CUDA_CHECK(cudaMemcpy(dmask, mask, (size_t)B * tk * sizeof *dmask, cudaMemcpyHostToDevice));
    }
    void *dout = in_place ? dq : cuda_malloc(nq * dtype_size(dt));
    int old = attention_cuda_set_impl(impl);
    attention_forward_cuda(dout, dq, dk, dv, B, H, tq, tk, D, scale, c->causal, dmask, dt);
    attention_cuda_set_impl(old);
    float *got = host_from(dout, nq, dt);
    char what[160];
    snprintf(what, sizeof what, "attention %s B%d H%d tq%d tk%d D%d%s%s%s", impl == 1 ? "fma" : impl == 2 ? "wmma" : impl == 3 ? "mma" : "cublas", B, H, tq,
             tk, D, c->causal ? " causal" : "", c->mask == 1 ? " mask" : c->mask == 2 ? " mask+fully-masked" : "",
             in_place ? " out=q" : "");
    gt_compare(what, dt, got, want, nq, gt_tol(dt, 1e-4));
    if (c->mask == 2) { /* the fully masked batch must be exactly zero */
        int zero = 1;
        for (size_t i = (size_t)tq * H * D; i < 2 * (size_t)tq * H * D; i++) zero &= got[i] == 0.0f;
        EXPECT(zero, "%s %s: the fully masked batch is not zero", what, dtype_name(dt));
    }
    if (!in_place) cuda_free(dout);
    cuda_free(dq), cuda_free(dk), cuda_free(dv), cuda_free(dmask);
    free(q), free(k), free(v), free(mask), free(want), free(got);
}

static void test_attention_fma(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) run_case(&cases[ci], gt_dtypes[di], 1, 0);
}

static void test_attention_wmma(void) {
    if (!have_gpu()) return;
    for (int di = 1; di < 3; di++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) run_case(&cases[ci], gt_dtypes[di], 2, 0);
}

static void test_attention_mma(void) {
    if (!have_gpu()) return;
    for (int di = 1; di < 3; di++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) run_case(&cases[ci], gt_dtypes[di], 3, 0);
}

static void test_attention_in_place(void) {
    if (!have_gpu()) return;
    for (int di = 0; di < 3; di++) {
        run_case(&cases[1], gt_dtypes[di], 1, 1);
        if (di) run_case(&cases[2], gt_dtypes[di], 2, 1);
        if (di) run_case(&cases[4], gt_dtypes[di], 3, 1);
    }
}

/* A larger case at SD's shape (one 64x64-latent self-attention head group, T = 4096 would
 * take the CPU seconds): T = 1024, 5 heads of 64, every kernel, f16 (and bf16 for mma.sync). */
static void test_attention_large(void) {
    if (!have_gpu()) return;
    attn_case c = {2, 5, 1024, 1024, 64, 0, 0};
    run_case(&c, DTYPE_F16, 3, 0);
    run_case(&c, DTYPE_BF16, 3, 0);
    run_case(&c, DTYPE_F16, 2, 0);
    run_case(&c, DTYPE_F16, 1, 0);
    run_case(&c, DTYPE_F32, 1, 0);
}

/* Heads wider than 160 (the VAE's mid-block attention: one head of 512) take
 * the cuBLAS path; it is also tried on ordinary shapes (impl 4). */
static void test_attention_wide(void) {
    if (!have_gpu()) return;
    attn_case wide[] = {
        {2, 1, 130, 130, 512, 0, 0}, /* the VAE's shape, T past any tile */
        {1, 2, 77, 50, 200, 1, 1},   /* causal with tq > tk, masked */
        {3, 1, 33, 70, 256, 0, 2},   /* a fully masked batch */
    };
    for (int di = 0; di < 3; di++) {
        for (size_t ci = 0; ci < sizeof wide / sizeof wide[0]; ci++) run_case(&wide[ci], gt_dtypes[di], 4, 0);
        for (size_t ci = 1; ci < 6; ci++) run_case(&cases[ci], gt_dtypes[di], 4, 0);
        run_case(&wide[0], gt_dtypes[di], 4, 1); /* out = q */
    }
}

static void alias_k(void *arg) {
    (void)arg;
    attention_forward_cuda((void *)16, (void *)32, (void *)16, (void *)64, 1, 1, 1, 1, 64, 1.0f, 0, NULL, DTYPE_F16);
}

static void test_attention_limits(void) {
    expect_dies("out = k", alias_k, NULL, 2, "attention_forward_cuda: out must not alias k or v");
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_attention_fma no_cuda
#define test_attention_wmma no_cuda
#define test_attention_mma no_cuda
#define test_attention_in_place no_cuda
#define test_attention_large no_cuda
#define test_attention_wide no_cuda
#define test_attention_limits no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    /* The tests that fork (expect_dies) first, before any CUDA call, so a
     * child's exit() has no CUDA state inherited from its parent to tear down. */
    RUN(test_attention_limits);
    if (cuda_device_count() == 0) fprintf(stdout, "# %s\n", cuda_unavailable_reason());
    RUN(test_attention_fma);
    RUN(test_attention_wmma);
    RUN(test_attention_mma);
    RUN(test_attention_in_place);
    RUN(test_attention_large);
    RUN(test_attention_wide);
    return unit_done();
}
