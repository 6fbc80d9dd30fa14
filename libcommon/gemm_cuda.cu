/* gemm_cuda.cu — the CUDA twins of gemm.h (see cuda_ops.h for the
 * conventions): row-major GEMMs of every storage type through cublasGemmEx /
 * cublasGemmStridedBatchedEx with float accumulation (CUBLAS_COMPUTE_32F:
 * tensor cores for f16/bf16; plain fp32 for f32, as the handle's math mode
 * keeps TF32 off), and Linear on top with its bias fed in as C. */
#include "cuda_kernels.cuh"

static cudaDataType_t cuda_type(dtype_t dt, const char *fn) {
    switch (dt) {
    case DTYPE_F32: return CUDA_R_32F;
    case DTYPE_F16: return CUDA_R_16F;
    case DTYPE_BF16: return CUDA_R_16BF;
    default: die("%s: unsupported storage type %s (f32, f16 or bf16)", fn, dtype_name(dt));
    }
}

static void gemm_check(const char *fn, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
    if (m < 0 || n < 0 || k < 0) die("%s: negative dimension m %d, n %d, k %d", fn, m, n, k);
    /* Row-major strides, as gemm_f32: A is [m, lda] or, transposed, [k, lda]. */
    if (lda < (ta ? m : k) || lda < 1 || ldb < (tb ? k : n) || ldb < 1 || ldc < n || ldc < 1)
        die("%s: strides lda %d, ldb %d, ldc %d too small for m %d, n %d, k %d (trans %d, %d)", fn, lda, ldb, ldc,
            m, n, k, ta, tb);
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the operands
 * swap (and m, n), each keeping its own transpose flag (as gemm_f32_cuda). */
extern "C" void gemm_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const void *a, int lda,
                          const void *b, int ldb, float beta, void *c, int ldc, dtype_t dt) {
    gemm_check("gemm_cuda", trans_a, trans_b, m, n, k, lda, ldb, ldc);
    if (m == 0 || n == 0) return;
    cudaDataType_t t = cuda_type(dt, "gemm_cuda");
    CUBLAS_CHECK(cublasGemmEx(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, t, ldb, a, t, lda, &beta, c,
                              t, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void gemm_batched_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const void *a,
                                  int lda, int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta,
                                  void *c, int ldc, int64_t stride_c, int batch, dtype_t dt) {
    gemm_check("gemm_batched_cuda", trans_a, trans_b, m, n, k, lda, ldb, ldc);
    if (batch < 0 || stride_a < 0 || stride_b < 0 || stride_c < 0)
        die("gemm_batched_cuda: negative batch %d or stride", batch);
    if (m == 0 || n == 0 || batch == 0) return;
    cudaDataType_t t = cuda_type(dt, "gemm_batched_cuda");
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, t, ldb,
                                            (long long)stride_b, a, t, lda, (long long)stride_a, &beta, c, t, ldc,
                                            (long long)stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* out[r, c] = bias[c]: the bias becomes the GEMM's C (beta = 1). */
template <typename T> __global__ static void fill_rows_kernel(T *out, const T *bias, size_t ch, size_t n) {
    GRID_STRIDE(i, n) out[i] = bias[i % ch];
}

extern "C" void linear_forward_cuda(void *out, const void *inp, const void *weight, const void *bias, int n,
                                    int in_f, int out_f, dtype_t dt) {
    if (!out || !inp || !weight) die("linear_forward_cuda: NULL out, inp or weight");
    if (n <= 0 || in_f <= 0 || out_f <= 0)
        die("linear_forward_cuda: bad dimensions n %d, in %d, out %d", n, in_f, out_f);
    if (out == inp) die("linear_forward_cuda: out must not alias inp");
    float beta = 0.0f;
    if (bias) {
        size_t total = (size_t)n * out_f;
        dispatch_dtype(dt, "linear_forward_cuda", [&](auto tag) {
            using T = STORAGE_T(tag);
            fill_rows_kernel<T><<<grid_for(total, 256), 256>>>((T *)out, (const T *)bias, (size_t)out_f, total);
        });
        CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    /* out [n, out_f] = inp [n, in_f] @ weight^T, weight [out_f, in_f] */
    gemm_cuda(0, 1, n, out_f, in_f, 1.0f, inp, in_f, weight, in_f, beta, out, out_f, dt);
}
