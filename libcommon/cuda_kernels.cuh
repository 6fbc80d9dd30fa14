/* cuda_kernels.cuh — what the libcommon *_cuda.cu files share (C++ only, not
 * part of the C API): float conversions of the three storage types, the
 * dtype_t -> template dispatch, 16-byte packs, grid sizing for grid-stride
 * loops, warp and block reductions, and the mma.sync m16n8k16 wrapper. */
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

/* ---- mma.sync m16n8k16 (sm_80+), shared by attention_cuda.cu and conv2d_cuda.cu ----
 * Fragment layouts (lane = 4 g + t): A holds rows g and g+8, columns 2t, 2t+1
 * and 2t+8, 2t+9 of a 16 x 16 tile (four pairs: (g, 2t), (g+8, 2t), (g, 2t+8),
 * (g+8, 2t+8)); B rows 2t, 2t+1 and 2t+8, 2t+9 of column g of a 16 x 8 tile;
 * C/D rows g and g+8, columns 2t, 2t+1 of a 16 x 8 tile. A pair is two
 * consecutive 16-bit values in one 32-bit register. */
template <typename T> struct pair_of;
template <> struct pair_of<__half> { typedef __half2 type; };
template <> struct pair_of<__nv_bfloat16> { typedef __nv_bfloat162 type; };

__device__ __forceinline__ __half2 make_pair2(__half x, __half y) { return __halves2half2(x, y); }
__device__ __forceinline__ __nv_bfloat162 make_pair2(__nv_bfloat16 x, __nv_bfloat16 y) {
    return __halves2bfloat162(x, y);
}

template <typename P2> __device__ __forceinline__ uint32_t as_u32(P2 x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* d = a b + d for one m16n8k16 tile, float accumulators. */
__device__ __forceinline__ void mma16816(float (&d)[4], const __half2 (&a)[4], const __half2 (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(as_u32(a[0])), "r"(as_u32(a[1])), "r"(as_u32(a[2])), "r"(as_u32(a[3])), "r"(as_u32(b[0])),
                   "r"(as_u32(b[1])));
}
__device__ __forceinline__ void mma16816(float (&d)[4], const __nv_bfloat162 (&a)[4], const __nv_bfloat162 (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(as_u32(a[0])), "r"(as_u32(a[1])), "r"(as_u32(a[2])), "r"(as_u32(a[3])), "r"(as_u32(b[0])),
                   "r"(as_u32(b[1])));
}

/* 8 elements moved as one 16-byte access (16-bit types) where rows allow it. */
template <typename T> struct alignas(16) vec8 { T x[8]; };

#endif
