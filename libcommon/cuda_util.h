/* cuda_util.h — the CUDA base every GPU op builds on: check macros that name
 * file:line and the CUDA/cuBLAS error, a per-thread cuBLAS handle, tensors in
 * GPU memory (mem = MEM_CUDA), an fp32 GEMM with gemm_f32's row-major
 * semantics. The ops on top (GEMMs of every storage type, convolutions,
 * norms, attention, activations, element-wise) are in cuda_ops.h. Only in CUDA builds
 * (SYNTHCXR_CUDA); includable from C11 and from .cu files. */
#ifndef SYNTHCXR_CUDA_UTIL_H
#define SYNTHCXR_CUDA_UTIL_H

#ifdef SYNTHCXR_CUDA

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "tensor.h"

/* "prog: file:line: CUDA error in <expr>: <what>" on stderr, then exit 2. */
void cuda_die_at(const char *file, int line, const char *api, const char *expr, const char *what)
    __attribute__((noreturn));
/* cuBLAS status as its enum name ("CUBLAS_STATUS_NOT_INITIALIZED"). */
const char *cublas_status_name(cublasStatus_t s);

/* CUDA_CHECK(cudaMalloc(&p, n)); CUBLAS_CHECK(cublasSgemm(...)). Always on. */
#define CUDA_CHECK(call)                                                                 \
    do {                                                                                 \
        cudaError_t cuda_err_ = (call);                                                  \
        if (cuda_err_ != cudaSuccess)                                                    \
            cuda_die_at(__FILE__, __LINE__, "CUDA", #call, cudaGetErrorString(cuda_err_)); \
    } while (0)
#define CUBLAS_CHECK(call)                                                               \
    do {                                                                                 \
        cublasStatus_t cublas_st_ = (call);                                              \
        if (cublas_st_ != CUBLAS_STATUS_SUCCESS)                                         \
            cuda_die_at(__FILE__, __LINE__, "cuBLAS", #call, cublas_status_name(cublas_st_)); \
    } while (0)
/* After a kernel launch: a bad launch configuration shows here. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* Streams: the CUDA build compiles with the per-thread default stream
 * (nvcc --default-stream per-thread, CUDA_API_PER_THREAD_DEFAULT_STREAM for
 * the C files), so every launch and copy "on stream 0" goes to the calling
 * thread's cudaStreamPerThread, in order, as on the legacy stream for a
 * single-threaded program; unlike the legacy stream it can be captured into
 * a CUDA graph (unet_cuda.h). */

/* The calling thread's cuBLAS handle, created on first use on the current
 * device (fp32 GEMMs stay fp32: no TF32), on cudaStreamPerThread with a
 * workspace of CUBLAS_WORKSPACE_BYTES of its own (so no GEMM allocates: CUDA
 * graphs). Lives until the process ends. */
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)   /* cuBLAS's advice for Hopper */
cublasHandle_t cublas_handle(void);

/* GPU memory; an out-of-memory dies naming the size asked for. NULL is fine for
 * free. Both die when the calling thread is capturing a CUDA graph. */
void *cuda_malloc(size_t nbytes);
void cuda_free(void *p);
/* How many buffers cuda_free has released in the process so far: a CUDA graph
 * holds device pointers, so one captured before a free may point into freed
 * memory (a grown scratch buffer) and must be captured again. */
unsigned long cuda_free_count(void);

/* A new zero-filled GPU tensor. */
tensor *tensor_cuda_new(dtype_t dt, int ndim, const int64_t *shape);
/* A GPU copy of a CPU tensor. */
tensor *tensor_cuda_upload(const tensor *cpu);
/* A CPU copy of a GPU tensor (synchronous). */
tensor *tensor_cuda_download(const tensor *gpu);
/* Copies between existing tensors of the same dtype and shape (synchronous). */
void tensor_cuda_copy_to_device(tensor *gpu_dst, const tensor *cpu_src);
void tensor_cuda_copy_to_host(tensor *cpu_dst, const tensor *gpu_src);
/* Frees a GPU tensor (its data too if it owns it); NULL is fine. */
void tensor_cuda_free(tensor *t);

/* Row-major GEMM on device pointers, the same arguments as gemm_f32:
 *   C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C
 * op(X) = X^T when trans_x; lda/ldb/ldc are row strides of A, B, C as stored
 * (A is [m,lda] or, transposed, [k,lda]). Runs on the default stream. */
void gemm_f32_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);

#ifdef __cplusplus
}
#endif

#endif /* SYNTHCXR_CUDA */
#endif
