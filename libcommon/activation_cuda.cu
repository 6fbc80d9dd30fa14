/* activation_cuda.cu — the CUDA twins of activation.h (see cuda_ops.h for the
 * conventions): GELU (erf), GELU (tanh), quick GELU, SiLU and GEGLU, with the
 * CPU's formulas in float (erff, tanhf, expf: no fast-math intrinsics);
 * 16-byte packs where the pointers allow. */
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

/* vec: out and inp 16-byte aligned; packs of 16 bytes, then the last n % V one by one. */
template <typename T, int ACT> __global__ static void act_kernel(T *out, const T *inp, size_t n, int vec) {
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        const size_t nv = n / V;
        GRID_STRIDE(i, nv) {
            pack16<T> x = ((const pack16<T> *)inp)[i], y;
#pragma unroll
            for (int e = 0; e < V; e++) y.x[e] = from_f<T>(act1<ACT>(to_f(x.x[e])));
            ((pack16<T> *)out)[i] = y;
        }
        GRID_STRIDE(i, n - nv * V) out[nv * V + i] = from_f<T>(act1<ACT>(to_f(inp[nv * V + i])));
    } else {
        GRID_STRIDE(i, n) out[i] = from_f<T>(act1<ACT>(to_f(inp[i])));
    }
}

template <int ACT> static void act_launch(const char *fn, void *out, const void *inp, size_t n, dtype_t dt) {
    if (!n) return;
    if (!out || !inp) die("%s: NULL input or output", fn);
    const int vec = aligned16(out) && aligned16(inp);
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        const size_t work = vec ? n / (16 / sizeof(T)) + 1 : n;
        act_kernel<T, ACT><<<grid_for(work, BLOCK), BLOCK>>>((T *)out, (const T *)inp, n, vec);
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

/* Output element (r, c): inp row r holds hidden [0, ch) then gate [ch, 2ch).
 * vec (ch a multiple of the pack, pointers aligned): a pack never leaves a row. */
template <typename T> __global__ static void geglu_kernel(T *out, const T *inp, size_t ch, size_t n, int vec) {
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        GRID_STRIDE(j, n / V) {
            const size_t r = j * V / ch, c = j * V % ch;
            const T *row = inp + 2 * ch * r;
            pack16<T> hv = *(const pack16<T> *)(row + c), gv = *(const pack16<T> *)(row + ch + c), y;
#pragma unroll
            for (int e = 0; e < V; e++) y.x[e] = from_f<T>(to_f(hv.x[e]) * gelu1(to_f(gv.x[e])));
            ((pack16<T> *)out)[j] = y;
        }
    } else {
        GRID_STRIDE(i, n) {
            const size_t r = i / ch, c = i % ch;
            const T *row = inp + 2 * ch * r;
            out[i] = from_f<T>(to_f(row[c]) * gelu1(to_f(row[ch + c])));
        }
    }
}

extern "C" void geglu_forward_cuda(void *out, const void *inp, int rows, int ch, dtype_t dt) {
    if (!out || !inp) die("geglu_forward_cuda: NULL input or output");
    if (rows <= 0 || ch <= 0) die("geglu_forward_cuda: bad dimensions rows %d, channels %d", rows, ch);
    if (out == inp) die("geglu_forward_cuda: out must not alias inp");
    size_t n = (size_t)rows * ch;
    dispatch_dtype(dt, "geglu_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        constexpr int V = 16 / sizeof(T);
        const int vec = ch % V == 0 && aligned16(out) && aligned16(inp);
        geglu_kernel<T><<<grid_for(vec ? n / V : n, BLOCK), BLOCK>>>((T *)out, (const T *)inp, (size_t)ch, n, vec);
    });
    CUDA_CHECK_LAUNCH();
}
