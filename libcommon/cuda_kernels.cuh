/* cuda_kernels.cuh — what the libcommon *_cuda.cu files share (C++ only, not
 * part of the C API): float conversions of the three storage types, the
 * dtype_t -> template dispatch, 16-byte packs, grid sizing for grid-stride
 * loops, and warp and block reductions. */
#ifndef SYNTHCXR_CUDA_KERNELS_CUH
#define SYNTHCXR_CUDA_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_ops.h"

extern "C" {
#include "common.h"
}
#include <stdint.h>
#include <type_traits>

/* Storage <-> float; stores round to nearest even. */
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* Calls f((T *)nullptr) with T the storage type of dt: the generic lambda
 * f picks its template instance from the pointer's type
 * (using T = std::remove_pointer_t<decltype(tag)>). Other dtypes die. */
template <typename F> static inline void dispatch_dtype(dtype_t dt, const char *fn, F f) {
    switch (dt) {
    case DTYPE_F32: f((float *)nullptr); break;
    case DTYPE_F16: f((__half *)nullptr); break;
    case DTYPE_BF16: f((__nv_bfloat16 *)nullptr); break;
    default: die("%s: unsupported storage type %s (f32, f16 or bf16)", fn, dtype_name(dt));
    }
}
#define STORAGE_T(tag) std::remove_pointer_t<decltype(tag)>

/* Blocks for a grid-stride loop over n items: enough to fill any GPU many
 * times over, few enough that the loop, not the launch, covers huge n. */
static inline unsigned grid_for(size_t n, int block) {
    size_t b = (n + (size_t)block - 1) / (size_t)block;
    if (b > 16384) b = 16384;
    return b ? (unsigned)b : 1u;
}

/* 16 bytes of storage (4 floats, 8 halves): the unit of vectorised access,
 * for kernels whose pointers pass aligned16 (cudaMalloc gives 256-byte
 * alignment; offsets into a buffer may break it, so it is checked per call). */
template <typename T> struct alignas(16) pack16 { T x[16 / sizeof(T)]; };
static inline int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the total. sh: 33 slots of shared memory, reusable right after. */
template <typename A> __device__ A block_sum(A v, A *sh) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        A t = lane < nwarps ? sh[lane] : (A)0;
        t = warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    A total = sh[32];
    __syncthreads(); /* sh may be reused by the caller's next reduction */
    return total;
}

#endif
