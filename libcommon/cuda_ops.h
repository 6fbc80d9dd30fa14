/* cuda_ops.h — the CUDA twins of the CPU kernels that the CLIP text encoder,
 * the UNet and the VAE use (gemm.h, conv2d.h, norm.h, softmax.h, attention.h,
 * activation.h, eltwise.h, upsample.h). Conventions, the same for every op:
 *  - Pointers are DEVICE pointers; shapes, layouts, aliasing rules and the
 *    meaning of every argument are those of the CPU twin (row-major, NCHW),
 *    whose name is the op's name without the _cuda suffix.
 *  - Storage type: the LAST argument, dtype_t dt (DTYPE_F32, DTYPE_F16 or
 *    DTYPE_BF16), gives the type of every tensor argument of the call (inputs,
 *    outputs, weights, biases, gamma/beta) — except attention's key_mask,
 *    which is always float — and scalars (alpha, beta, scale, eps) are float.
 *    Any other dtype dies with the op's name.
 *  - Precision: values are read, converted to float, computed in float and
 *    rounded once to dt on store. Norm statistics (mean, variance) are
 *    accumulated in double; softmax and attention scores, running max/sum and
 *    accumulators are float. GEMMs and convolutions go through cuBLAS with
 *    float accumulation (CUBLAS_COMPUTE_32F): f16/bf16 on the tensor cores,
 *    f32 in plain fp32 (no TF32: cublas_handle()'s math mode is kept); the
 *    optional implicit-GEMM convolution (conv2d_cuda_set_impl) accumulates
 *    in float on the tensor cores as well.
 *  - Launches go on the default stream (stream 0: the per-thread default
 *    stream, cuda_util.h), asynchronously; errors of a launch are checked
 *    (CUDA_CHECK_LAUNCH), those of the kernel show at the next synchronising
 *    call. Empty inputs (n == 0) do nothing; other bad
 *    dimensions die like the CPU twin.
 * Only in CUDA builds (SYNTHCXR_CUDA); includable from C11 and from .cu files. */
#ifndef SYNTHCXR_CUDA_OPS_H
#define SYNTHCXR_CUDA_OPS_H

#ifdef SYNTHCXR_CUDA

#include <stddef.h>
#include <stdint.h>

#include "cuda_util.h" /* its own extern "C"; includes CUDA headers, so outside ours */

#ifdef __cplusplus
extern "C" {
#endif

#include "conv2d.h"
#include "tensor.h"

/* ---- GEMM (gemm_cuda.cu) ------------------------------------------------
 * gemm_f32's arguments (row-major C = alpha op(A) op(B) + beta C, lda/ldb/ldc
 * row strides as stored); A, B and C all of type dt. gemm_f32_cuda
 * (cuda_util.h) is the same for f32 through cublasSgemm. */
void gemm_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const void *a, int lda, const void *b,
               int ldb, float beta, void *c, int ldc, dtype_t dt);
/* gemm_batched_f32's arguments: matrix i of A at a + i * stride_a ELEMENTS
 * (likewise b, c); a stride of 0 reuses one matrix for every batch. */
void gemm_batched_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const void *a, int lda,
                       int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, void *c, int ldc,
                       int64_t stride_c, int batch, dtype_t dt);
/* torch.nn.Linear: out [n, out_f] = inp [n, in_f] @ weight [out_f, in_f]^T + bias [out_f] (or NULL).
 * The bias goes in as C with beta = 1, so f16/bf16 outputs are rounded once. out must not alias inp. */
void linear_forward_cuda(void *out, const void *inp, const void *weight, const void *bias, int n, int in_f,
                         int out_f, dtype_t dt);

/* ---- Conv2d (conv2d_cuda.cu) ---------------------------------------------
 * conv2d_forward's arguments: out [batch, out_ch, out_h, out_w]; inp [batch,
 * in_ch, in_h, in_w]; weight [out_ch, in_ch, k_h, k_w]; bias [out_ch] or NULL.
 * Implementation 1 (the default; see conv2d_cuda_set_impl below):
 * 1x1 stride-1 unpadded convolutions are one strided-batched GEMM; the others
 * im2col a run of output pixels into the workspace ws (ws_bytes bytes of
 * device memory) and multiply, run after run, so ws bounds the scratch; it
 * must hold at least one pixel's column (in_ch*k_h*k_w elements of dt).
 * ws == NULL: the call allocates min(conv2d_cuda_workspace_bytes, 64 MiB)
 * itself and frees it (a synchronising cudaFree: for tests and one-offs). */
void conv2d_forward_cuda(void *out, const void *inp, const void *weight, const void *bias, const conv2d_dims *d,
                         void *ws, size_t ws_bytes, dtype_t dt);
/* Bytes of workspace for one whole image's im2col (0 for a 1x1 stride-1 unpadded conv). */
size_t conv2d_cuda_workspace_bytes(const conv2d_dims *d, dtype_t dt);
/* Which implementation conv2d_forward_cuda uses: 1 im2col + cuBLAS (above);
 * 2 implicit GEMM on the tensor cores (f16/bf16 only: the input gathered into
 * shared memory tile by tile, mma.sync with float accumulation, the bias added
 * before the one rounding; ignores ws; f32 and sizes past its int offsets fall
 * back to 1); 0 auto: the environment variable SYNTHCXR_CONV_IMPL (0, 1 or 2,
 * read once, for benchmarking) if set, else 1: the implicit GEMM is not the
 * default until a GPU has measured it faster (bench_gpu's conv2d figures).
 * Returns the previous setting. */
int conv2d_cuda_set_impl(int impl);

/* ---- norms and softmax (norm_cuda.cu) ----------------------------------- */
/* out, inp [batch, ch, hw]; gamma, beta [ch] or both NULL; in place ok.
 * Two kernels (per-chunk partial sums, then normalise); the partials live in a
 * per-thread device buffer that grows on demand (16 bytes per 8192 values). */
void groupnorm_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta, int batch, int ch,
                            int hw, int groups, float eps, dtype_t dt);
void groupnorm_silu_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta, int batch,
                                 int ch, int hw, int groups, float eps, dtype_t dt);
/* out, inp [rows, ch]; gamma, beta [ch] or both NULL; in place ok. */
void layernorm_forward_cuda(void *out, const void *inp, const void *gamma, const void *beta, int rows, int ch,
                            float eps, dtype_t dt);
/* out, inp [rows, cols]; an all -inf row gives zeros (as the CPU twin); in place ok. */
void softmax_forward_cuda(void *out, const void *inp, int rows, int cols, dtype_t dt);

/* ---- attention (attention_cuda.cu) ----------------------------------------
 * attention_forward's arguments: q, out [batch, tq, heads, head_dim]; k, v
 * [batch, tk, heads, head_dim]; key_mask NULL or float [batch, tk] (additive);
 * causal as the CPU twin. Flash-attention style: tiles of K and V in shared
 * memory, online softmax with float scores, running max/sum and accumulators;
 * the tq x tk matrix is never stored. head_dim over 160 (the VAE's one head
 * of 512) goes through cuBLAS instead: S = Q K^T for a block of queries (float),
 * a row softmax into P (storage type), O = P V; the block is sized so S and P
 * take at most 64 MiB (a per-thread device buffer that grows on demand).
 * out == q is allowed (queries are read before their outputs are written);
 * out must not alias k or v. */
void attention_forward_cuda(void *out, const void *q, const void *k, const void *v, int batch, int heads, int tq,
                            int tk, int head_dim, float scale, int causal, const float *key_mask, dtype_t dt);
/* Which kernel attention_forward_cuda uses: 0 auto (3 for f16/bf16, 1 for
 * f32), 1 the CUDA-core (FMA) kernel always, 2 the tensor-core kernel on WMMA
 * (S, P and O through shared memory), 3 the tensor-core kernel on mma.sync
 * (S, P, O in registers, flash-attention-2 style); 2 and 3 apply to f16/bf16
 * (f32 falls back to 1); 4 the cuBLAS path (always taken for head_dim > 160).
 * For tests and benchmarks. Returns the previous setting. */
int attention_cuda_set_impl(int impl);

/* ---- activations (activation_cuda.cu); out, inp [n]; in place ok ---------- */
void gelu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt);
void gelu_tanh_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt);
void quick_gelu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt);
void silu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt);
/* out [rows, ch] = hidden * gelu(gate), (hidden, gate) = inp [rows, 2*ch] split in halves; not in place. */
void geglu_forward_cuda(void *out, const void *inp, int rows, int ch, dtype_t dt);

/* ---- element-wise and layout (eltwise_cuda.cu) --------------------------- */
void eltwise_add_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt);
void eltwise_mul_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt);
void eltwise_scale_cuda(void *out, const void *a, float s, size_t n, dtype_t dt);
void eltwise_axpby_cuda(void *out, float alpha, const void *a, float beta, const void *b, size_t n, dtype_t dt);
/* x [rows, ch] += bias [ch] */
void eltwise_add_bias_rows_cuda(void *x, const void *bias, int rows, int ch, dtype_t dt);
/* x [batch, ch, hw] += bias [ch] */
void eltwise_add_bias_channels_cuda(void *x, const void *bias, int batch, int ch, int hw, dtype_t dt);
/* x [batch, ch, hw] += v [batch, ch] */
void eltwise_add_batch_channels_cuda(void *x, const void *v, int batch, int ch, int hw, dtype_t dt);
/* out [batch, ca+cb, hw] = cat(a [batch, ca, hw], b [batch, cb, hw], dim=1) */
void eltwise_concat_channels_cuda(void *out, const void *a, int ca, const void *b, int cb, int batch, int hw,
                                  dtype_t dt);
/* out [batch, n, m] = inp [batch, m, n] transposed; not in place */
void eltwise_transpose_cuda(void *out, const void *inp, int batch, int m, int n, dtype_t dt);
/* out [batch, ch, 2h, 2w] = nearest 2x of inp [batch, ch, h, w] */
void upsample_nearest2x_forward_cuda(void *out, const void *inp, int batch, int ch, int h, int w, dtype_t dt);

#ifdef __cplusplus
}
#endif

#endif /* SYNTHCXR_CUDA */
#endif
