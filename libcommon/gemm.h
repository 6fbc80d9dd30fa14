/* gemm.h — float32 matrix products on OpenBLAS (cblas, row-major), the building
 * block for every linear layer, 1x1 convolution, im2col convolution and
 * attention in the CPU path. */
#ifndef SYNTHCXR_GEMM_H
#define SYNTHCXR_GEMM_H

#include <stdint.h>

/* Row-major C = alpha * op(A) op(B) + beta * C, as cblas_sgemm with CblasRowMajor.
 * op(X) is X or X^T (trans_x != 0). op(A) is [m, k], op(B) is [k, n], C is [m, n].
 * a: stored [m, lda] (lda >= k) or, transposed, [k, lda] (lda >= m); likewise b
 * ([k, ldb] with ldb >= n, or [n, ldb] with ldb >= k); c: [m, ldc], ldc >= n.
 * With beta == 0, C need not be initialised (NaN there is not propagated).
 * Called outside an OpenMP region it uses all threads; inside, one. */
void gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* `batch` independent products of the same shape: matrix i of A starts at
 * a + i * stride_a (likewise b, c). Many small matrices run one per thread
 * (single-threaded cblas inside an OpenMP loop); a few large ones run one after
 * another with multithreaded cblas. C matrices must not overlap. */
void gemm_batched_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                      int64_t stride_a, const float *b, int ldb, int64_t stride_b, float beta, float *c,
                      int ldc, int64_t stride_c, int batch);

/* torch.nn.Linear: out = inp @ weight^T + bias.
 * out: [n, out_f]; inp: [n, in_f]; weight: [out_f, in_f]; bias: [out_f] or NULL. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int in_f,
                    int out_f);

/* Its backward pass. Gradients ACCUMULATE (+=), as llm.c: callers zero them once
 * per step. Any of dinp, dweight, dbias may be NULL (not wanted).
 * dinp: [n, in_f]; dweight: [out_f, in_f]; dbias: [out_f]; dout: [n, out_f];
 * inp: [n, in_f] (the forward input); weight: [out_f, in_f]. */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int n, int in_f, int out_f);

#endif
