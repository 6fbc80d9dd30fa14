/* norm_cuda.cu — the CUDA twins of norm.h and softmax.h (see cuda_ops.h for
 * the conventions). Group norm: one block per (batch, group) slab, two passes
 * for the statistics (mean, then the sum of squared deviations, accumulated in
 * double as the CPU does, so a large mean costs no accuracy) and one to
 * normalise, scale, shift (and SiLU). Layer norm and softmax: one warp per row.
 * First version: a slab per block leaves SMs idle when batch * groups is
 * small (32 blocks at batch 1); splitting slabs across blocks is for later. */
#include "cuda_kernels.cuh"

enum { GN_BLOCK = 512, ROW_WARPS = 4 };

template <typename T, int SILU>
__global__ static void __launch_bounds__(GN_BLOCK)
groupnorm_kernel(T *out, const T *inp, const T *gamma, const T *beta, int ch, int hw, int groups, float eps) {
    __shared__ double sh[33];
    const int cpg = ch / groups;
    const size_t slab = (size_t)cpg * hw;
    const size_t u = blockIdx.x; /* batch * groups + group */
    const int g = (int)(u % groups);
    const T *x = inp + u * slab;
    T *y = out + u * slab;
    double s = 0;
    for (size_t i = threadIdx.x; i < slab; i += blockDim.x) s += (double)to_f(x[i]);
    const double mean = block_sum(s, sh) / (double)slab;
    double ss = 0;
    for (size_t i = threadIdx.x; i < slab; i += blockDim.x) {
        double d = (double)to_f(x[i]) - mean;
        ss += d * d;
    }
    const double rstd = 1.0 / sqrt(block_sum(ss, sh) / (double)slab + (double)eps);
    /* The mean as float hi + lo, as the CPU twin: x - hi is exact near the mean. */
    const float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
    for (size_t i = threadIdx.x; i < slab; i += blockDim.x) {
        const int c = g * cpg + (int)(i / hw);
        const float a = (float)(rstd * (gamma ? (double)to_f(gamma[c]) : 1.0));
        const float b = beta ? to_f(beta[c]) : 0.0f;
        float t = ((to_f(x[i]) - mhi) - mlo) * a + b;
        if (SILU) t = t / (1.0f + expf(-t));
        y[i] = from_f<T>(t);
    }
}

static void groupnorm_launch(int silu, const char *fn, void *out, const void *inp, const void *gamma,
                             const void *beta, int batch, int ch, int hw, int groups, float eps, dtype_t dt) {
    if (!out || !inp) die("%s: NULL input or output", fn);
    if (batch <= 0 || ch <= 0 || hw <= 0 || groups <= 0)
        die("%s: bad dimensions batch %d, channels %d, hw %d, groups %d", fn, batch, ch, hw, groups);
    if (ch % groups) die("%s: %d groups do not divide %d channels", fn, groups, ch);
    if (!gamma != !beta) die("%s: gamma and beta must both be given or both be NULL", fn);
    const unsigned blocks = (unsigned)((long)batch * groups);
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        if (silu)
            groupnorm_kernel<T, 1><<<blocks, GN_BLOCK>>>((T *)out, (const T *)inp, (const T *)gamma,
                                                         (const T *)beta, ch, hw, groups, eps);
        else
            groupnorm_kernel<T, 0><<<blocks, GN_BLOCK>>>((T *)out, (const T *)inp, (const T *)gamma,
                                                         (const T *)beta, ch, hw, groups, eps);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void groupnorm_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta, int batch,
                                       int ch, int hw, int groups, float eps, dtype_t dt) {
    groupnorm_launch(0, "groupnorm_forward_cuda", out, inp, gamma, beta, batch, ch, hw, groups, eps, dt);
}

extern "C" void groupnorm_silu_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta,
                                            int batch, int ch, int hw, int groups, float eps, dtype_t dt) {
    groupnorm_launch(1, "groupnorm_silu_forward_cuda", out, inp, gamma, beta, batch, ch, hw, groups, eps, dt);
}

/* One warp per row; the row is read three times (it stays in L1/L2). */
template <typename T>
__global__ static void layernorm_kernel(T *out, const T *inp, const T *gamma, const T *beta, int rows, int ch,
                                        float eps) {
    const int lane = threadIdx.x & 31;
    const long r = (long)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return; /* whole warps leave together: the shuffles below stay full */
    const T *x = inp + r * ch;
    T *y = out + r * ch;
    double s = 0;
    for (int i = lane; i < ch; i += 32) s += (double)to_f(x[i]);
    const double mean = warp_sum(s) / ch;
    double ss = 0;
    for (int i = lane; i < ch; i += 32) {
        double d = (double)to_f(x[i]) - mean;
        ss += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(warp_sum(ss) / ch + (double)eps));
    const float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
    for (int i = lane; i < ch; i += 32) {
        float t = ((to_f(x[i]) - mhi) - mlo) * rstd;
        if (gamma) t = t * to_f(gamma[i]) + to_f(beta[i]);
        y[i] = from_f<T>(t);
    }
}

extern "C" void layernorm_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta, int rows,
                                       int ch, float eps, dtype_t dt) {
    if (!out || !inp) die("layernorm_forward_cuda: NULL input or output");
    if (rows <= 0 || ch <= 0) die("layernorm_forward_cuda: bad dimensions rows %d, channels %d", rows, ch);
    if (!gamma != !beta) die("layernorm_forward_cuda: gamma and beta must both be given or both be NULL");
    const unsigned blocks = (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS);
    dispatch_dtype(dt, "layernorm_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        layernorm_kernel<T><<<blocks, ROW_WARPS * 32>>>((T *)out, (const T *)inp, (const T *)gamma,
                                                        (const T *)beta, rows, ch, eps);
    });
    CUDA_CHECK_LAUNCH();
}

/* One warp per row: the maximum, the sum of exponentials (in double, as the
 * CPU), then each exponential again times 1/sum. */
template <typename T> __global__ static void softmax_kernel(T *out, const T *inp, int rows, int cols) {
    const int lane = threadIdx.x & 31;
    const long r = (long)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const T *x = inp + r * cols;
    T *y = out + r * cols;
    float mx = -INFINITY;
    for (int i = lane; i < cols; i += 32) mx = fmaxf(mx, to_f(x[i]));
    mx = warp_max(mx);
    if (mx == -INFINITY) { /* nothing to attend to: zeros, as the CPU twin */
        for (int i = lane; i < cols; i += 32) y[i] = from_f<T>(0.0f);
        return;
    }
    double s = 0;
    for (int i = lane; i < cols; i += 32) s += (double)expf(to_f(x[i]) - mx);
    const float inv = (float)(1.0 / warp_sum(s));
    for (int i = lane; i < cols; i += 32) y[i] = from_f<T>(expf(to_f(x[i]) - mx) * inv);
}

extern "C" void softmax_forward_cuda(void *out, const void *inp, int rows, int cols, dtype_t dt) {
    if (!out || !inp) die("softmax_forward_cuda: NULL input or output");
    if (rows <= 0 || cols <= 0) die("softmax_forward_cuda: bad dimensions rows %d, cols %d", rows, cols);
    const unsigned blocks = (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS);
    dispatch_dtype(dt, "softmax_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        softmax_kernel<T><<<blocks, ROW_WARPS * 32>>>((T *)out, (const T *)inp, rows, cols);
    });
    CUDA_CHECK_LAUNCH();
}
