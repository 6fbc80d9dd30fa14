/* activation_cuda.cu — the CUDA twins of activation.h (see cuda_ops.h for the
 * conventions): GELU (erf), GELU (tanh), quick GELU, SiLU and GEGLU, with the
 * CPU's formulas in float (erff, tanhf, expf: no fast-math intrinsics). */
#include "cuda_kernels.cuh"

enum { BLOCK = 256 };
enum { ACT_GELU, ACT_GELU_TANH, ACT_QUICK_GELU, ACT_SILU };

__device__ __forceinline__ float gelu1(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

template <int ACT> __device__ __forceinline__ float act1(float x) {
    if (ACT == ACT_GELU) return gelu1(x);
    if (ACT == ACT_GELU_TANH) return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    if (ACT == ACT_QUICK_GELU) return x / (1.0f + expf(-1.702f * x));
    return x / (1.0f + expf(-x)); /* SiLU; exp overflow gives x / inf = -0 for x << 0, as the CPU */
}

template <typename T, int ACT> __global__ static void act_kernel(T *out, const T *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = from_f<T>(act1<ACT>(to_f(inp[i])));
}

template <int ACT> static void act_launch(const char *fn, void *out, const void *inp, size_t n, dtype_t dt) {
    if (!n) return;
    if (!out || !inp) die("%s: NULL input or output", fn);
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        act_kernel<T, ACT><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)inp, n);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void gelu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt) {
    act_launch<ACT_GELU>("gelu_forward_cuda", out, inp, n, dt);
}
extern "C" void gelu_tanh_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt) {
    act_launch<ACT_GELU_TANH>("gelu_tanh_forward_cuda", out, inp, n, dt);
}
extern "C" void quick_gelu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt) {
    act_launch<ACT_QUICK_GELU>("quick_gelu_forward_cuda", out, inp, n, dt);
}
extern "C" void silu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt) {
    act_launch<ACT_SILU>("silu_forward_cuda", out, inp, n, dt);
}

/* One thread per output element (r, c): inp row r holds hidden [0, ch) then gate [ch, 2ch). */
template <typename T> __global__ static void geglu_kernel(T *out, const T *inp, size_t ch, size_t n) {
    GRID_STRIDE(i, n) {
        size_t r = i / ch, c = i % ch;
        const T *row = inp + 2 * ch * r;
        out[i] = from_f<T>(to_f(row[c]) * gelu1(to_f(row[ch + c])));
    }
}

extern "C" void geglu_forward_cuda(void *out, const void *inp, int rows, int ch, dtype_t dt) {
    if (!out || !inp) die("geglu_forward_cuda: NULL input or output");
    if (rows <= 0 || ch <= 0) die("geglu_forward_cuda: bad dimensions rows %d, channels %d", rows, ch);
    if (out == inp) die("geglu_forward_cuda: out must not alias inp");
    size_t n = (size_t)rows * ch;
    dispatch_dtype(dt, "geglu_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        geglu_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)inp, (size_t)ch, n);
    });
    CUDA_CHECK_LAUNCH();
}
