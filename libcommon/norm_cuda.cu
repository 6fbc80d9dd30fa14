/* norm_cuda.cu — the CUDA twins of norm.h and softmax.h (see cuda_ops.h for
 * the conventions). Group norm in two kernels, so that a few large slabs
 * (the VAE at 512x512: 32 slabs of a million values) still fill the GPU:
 * gn_stats_kernel, one block per chunk of GN_CHUNK values of a (batch, group)
 * slab, sums d = x - shift and d^2 in double (shift = the slab's first value,
 * which keeps E[d^2] - E[d]^2 free of cancellation) into a per-chunk partial;
 * gn_apply_kernel, one block per chunk again, adds its slab's partials in a
 * fixed order (so results do not depend on scheduling), then normalises,
 * scales, shifts (and applies SiLU). Layer norm and softmax: one warp per row. */
#include "cuda_kernels.cuh"

enum { GN_BLOCK = 256, GN_CHUNK = 8192, ROW_WARPS = 4 };

/* part, per slab u: [chunk][2] sums of d and d^2, then the shift. */
template <typename T>
__global__ static void __launch_bounds__(GN_BLOCK)
gn_stats_kernel(double *part, const T *inp, size_t slab, int chunks) {
    __shared__ double sh[33];
    const size_t u = blockIdx.y;
    const T *x = inp + u * slab;
    const float shift = to_f(x[0]);
    const size_t beg = (size_t)blockIdx.x * GN_CHUNK, end = beg + GN_CHUNK < slab ? beg + GN_CHUNK : slab;
    double s = 0, ss = 0;
#pragma unroll 4
    for (size_t i = beg + threadIdx.x; i < end; i += GN_BLOCK) {
        const double d = (double)to_f(x[i]) - (double)shift;
        s += d;
        ss += d * d;
    }
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    double *p = part + u * (2 * (size_t)chunks + 1);
    if (threadIdx.x == 0) {
        p[2 * blockIdx.x] = s;
        p[2 * blockIdx.x + 1] = ss;
        if (blockIdx.x == 0) p[2 * (size_t)chunks] = shift;
    }
}

template <typename T, int SILU>
__global__ static void __launch_bounds__(GN_BLOCK)
gn_apply_kernel(T *out, const T *inp, const T *gamma, const T *beta, const double *part, int chunks, size_t slab,
                int cpg, int hw, int groups, float eps) {
    __shared__ double stat[2]; /* mean, rstd */
    const size_t u = blockIdx.y;
    const double *p = part + u * (2 * (size_t)chunks + 1);
    if (threadIdx.x < 32) { /* warp 0: the slab's statistics, in a fixed order */
        double s = 0, ss = 0;
        for (int c = threadIdx.x; c < chunks; c += 32) s += p[2 * c], ss += p[2 * c + 1];
        s = warp_sum(s);
        ss = warp_sum(ss);
        if (threadIdx.x == 0) {
            const double md = s / (double)slab;
            double var = ss / (double)slab - md * md;
            if (var < 0) var = 0;
            stat[0] = p[2 * (size_t)chunks] + md;
            stat[1] = 1.0 / sqrt(var + (double)eps);
        }
    }
    __syncthreads();
    const double mean = stat[0], rstd = stat[1];
    /* The mean as float hi + lo, as the CPU twin: x - hi is exact near the mean. */
    const float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
    const int g = (int)(u % groups);
    const T *x = inp + u * slab;
    T *y = out + u * slab;
    const size_t beg = (size_t)blockIdx.x * GN_CHUNK, end = beg + GN_CHUNK < slab ? beg + GN_CHUNK : slab;
    for (size_t i = beg + threadIdx.x; i < end; i += GN_BLOCK) {
        const int c = g * cpg + (int)(i / hw);
        const float a = (float)(rstd * (gamma ? (double)to_f(gamma[c]) : 1.0));
        const float b = beta ? to_f(beta[c]) : 0.0f;
        float t = ((to_f(x[i]) - mhi) - mlo) * a + b;
        if (SILU) t = t / (1.0f + expf(-t));
        y[i] = from_f<T>(t);
    }
}

/* The partials: a per-thread device buffer that only grows (16 bytes per
 * chunk of each slab: 64 KiB for the VAE's largest group norm). */
static double *gn_partials(size_t n) {
    static thread_local double *buf = nullptr;
    static thread_local size_t cap = 0;
    if (n > cap) {
        cuda_free(buf); /* cudaFree waits for the kernels still using it */
        cap = n > 4096 ? n : 4096;
        buf = (double *)cuda_malloc(cap * sizeof(double));
    }
    return buf;
}

static void groupnorm_launch(int silu, const char *fn, void *out, const void *inp, const void *gamma,
                             const void *beta, int batch, int ch, int hw, int groups, float eps, dtype_t dt) {
    if (!out || !inp) die("%s: NULL input or output", fn);
    if (batch <= 0 || ch <= 0 || hw <= 0 || groups <= 0)
        die("%s: bad dimensions batch %d, channels %d, hw %d, groups %d", fn, batch, ch, hw, groups);
    if (ch % groups) die("%s: %d groups do not divide %d channels", fn, groups, ch);
    if (!gamma != !beta) die("%s: gamma and beta must both be given or both be NULL", fn);
    const long slabs = (long)batch * groups;
    if (slabs > 65535) die("%s: batch %d x %d groups is over 65535 slabs", fn, batch, groups);
    const int cpg = ch / groups;
    const size_t slab = (size_t)cpg * hw;
    const int chunks = (int)((slab + GN_CHUNK - 1) / GN_CHUNK);
    double *part = gn_partials((size_t)slabs * (2 * (size_t)chunks + 1));
    const dim3 grid((unsigned)chunks, (unsigned)slabs);
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        gn_stats_kernel<T><<<grid, GN_BLOCK>>>(part, (const T *)inp, slab, chunks);
        CUDA_CHECK_LAUNCH();
        if (silu)
            gn_apply_kernel<T, 1><<<grid, GN_BLOCK>>>((T *)out, (const T *)inp, (const T *)gamma, (const T *)beta,
                                                      part, chunks, slab, cpg, hw, groups, eps);
        else
            gn_apply_kernel<T, 0><<<grid, GN_BLOCK>>>((T *)out, (const T *)inp, (const T *)gamma, (const T *)beta,
                                                      part, chunks, slab, cpg, hw, groups, eps);
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
