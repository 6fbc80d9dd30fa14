/* attention_cuda.cu — the CUDA twin of attention.h (see cuda_ops.h for the
 * conventions): flash-attention style, the tq x tk score matrix never in
 * memory. Two kernels, both with float scores, running max/sum and output
 * accumulators, and the CPU's online softmax (rescale the partial output by
 * exp(m_old - m_new) when the row maximum grows):
 *  - attn_fma_kernel (every storage type, head_dim <= 160): a block of 128
 *    threads takes 32 queries of one (batch, head), 4 threads per query, each
 *    holding a quarter of the query row and of its output in registers; key and
 *    value tiles of 32 rows are staged in shared memory as float. CUDA cores only.
 *  - attn_wmma_kernel (f16/bf16, head_dim padded to 48/64/80/128/160): a block
 *    of 4 warps takes 64 queries, a warp 16 of them; per tile of 64 keys,
 *    S = Q K^T on the tensor cores (WMMA 16x16x16, float accumulate) into
 *    shared memory, the warp's online softmax there (P rounded to the storage
 *    type, as flash attention does), then O += P V on the tensor cores with O
 *    kept in shared memory as float. The first tensor-core version: no
 *    register-resident O, no cp.async pipelining, no wgmma. */
#include "cuda_kernels.cuh"

#include <mma.h>

static int g_impl = 0; /* attention_cuda_set_impl */

extern "C" int attention_cuda_set_impl(int impl) {
    if (impl < 0 || impl > 2) die("attention_cuda_set_impl: unknown kernel %d (0 auto, 1 FMA, 2 tensor cores)", impl);
    int old = g_impl;
    g_impl = impl;
    return old;
}

/* ---- CUDA-core kernel ------------------------------------------------------ */

enum { FQ = 32, FK = 32, TPQ = 4, FTHREADS = FQ * TPQ };

template <typename T, int DMAX>
__global__ static void __launch_bounds__(FTHREADS)
attn_fma_kernel(T *out, const T *q, const T *k, const T *v, const float *key_mask, int heads, int tq, int tk, int D,
                float scale, int causal) {
    constexpr int DPT = DMAX / TPQ; /* dims per thread: d = g + TPQ * t */
    __shared__ float Ks[FK][DMAX], Vs[FK][DMAX];
    const int b = blockIdx.z, h = blockIdx.y;
    const int g = threadIdx.x % TPQ; /* the 4 threads of a query are adjacent lanes */
    const int i = blockIdx.x * FQ + threadIdx.x / TPQ;
    const size_t ld = (size_t)heads * D; /* between tokens */
    float qr[DPT], o[DPT];
    const T *qp = q + ((size_t)b * tq + (i < tq ? i : 0)) * ld + (size_t)h * D;
#pragma unroll
    for (int t = 0; t < DPT; t++) {
        const int d = g + TPQ * t;
        qr[t] = (i < tq && d < D) ? to_f(qp[d]) : 0.0f;
        o[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int i_last = min(tq, (int)(blockIdx.x + 1) * FQ) - 1;
    const int kend = causal ? min(tk, i_last + 1) : tk; /* causal: later keys are never seen */
    const float *mk = key_mask ? key_mask + (size_t)b * tk : nullptr;
    for (int j0 = 0; j0 < kend; j0 += FK) {
        __syncthreads(); /* the previous tile is consumed */
        for (int idx = threadIdx.x; idx < FK * DMAX; idx += FTHREADS) {
            const int jj = idx / DMAX, dd = idx % DMAX, j = j0 + jj;
            float kv = 0.0f, vv = 0.0f; /* zeros past tk and past D: 0 * garbage could be NaN */
            if (j < tk && dd < D) {
                const size_t off = ((size_t)b * tk + j) * ld + (size_t)h * D + dd;
                kv = to_f(k[off]);
                vv = to_f(v[off]);
            }
            Ks[jj][dd] = kv;
            Vs[jj][dd] = vv;
        }
        __syncthreads();
        float s[FK];
        float mx = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < FK; jj++) {
            float dot = 0.0f;
#pragma unroll
            for (int t = 0; t < DPT; t++) dot += qr[t] * Ks[jj][g + TPQ * t];
            dot += __shfl_xor_sync(0xffffffffu, dot, 1);
            dot += __shfl_xor_sync(0xffffffffu, dot, 2);
            const int j = j0 + jj;
            float sv = dot * scale;
            if (j >= tk || (causal && j > i)) sv = -INFINITY;
            else if (mk) sv += mk[j];
            s[jj] = sv;
            mx = fmaxf(mx, sv);
        }
        const float mnew = fmaxf(m, mx);
        if (mnew == -INFINITY) continue; /* nothing visible yet (no shuffles below) */
        const float alpha = expf(m - mnew); /* 0 on the first visible tile */
        float sum = 0.0f;
#pragma unroll
        for (int jj = 0; jj < FK; jj++) {
            s[jj] = expf(s[jj] - mnew);
            sum += s[jj];
        }
        l = l * alpha + sum;
        m = mnew;
#pragma unroll
        for (int t = 0; t < DPT; t++) o[t] *= alpha;
#pragma unroll
        for (int jj = 0; jj < FK; jj++)
#pragma unroll
            for (int t = 0; t < DPT; t++) o[t] += s[jj] * Vs[jj][g + TPQ * t];
    }
    if (i < tq) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f; /* all keys -inf: zeros, as the CPU */
        T *op = out + ((size_t)b * tq + i) * ld + (size_t)h * D;
#pragma unroll
        for (int t = 0; t < DPT; t++) {
            const int d = g + TPQ * t;
            if (d < D) op[d] = from_f<T>(o[t] * inv);
        }
    }
}

template <typename T, int DMAX>
static void attn_fma_launch(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads,
                            int tq, int tk, int D, float scale, int causal) {
    dim3 grid((unsigned)((tq + FQ - 1) / FQ), (unsigned)heads, (unsigned)batch);
    attn_fma_kernel<T, DMAX><<<grid, FTHREADS>>>(out, q, k, v, mask, heads, tq, tk, D, scale, causal);
    CUDA_CHECK_LAUNCH();
}

/* ---- tensor-core kernel ------------------------------------------------------ */

namespace wmma = nvcuda::wmma;
enum { WQ = 64, WK = 64, WWARPS = 4, WTHREADS = WWARPS * 32 };

/* Shared-memory layout for padded head dim DP; rows padded (by 16 bytes for
 * the 16-bit arrays, 16 for the float ones) against bank conflicts, keeping
 * every 16-row fragment start 32-byte aligned as WMMA requires. */
template <typename T, int DP> struct wmma_smem {
    static constexpr size_t E = sizeof(T);
    static constexpr int LDH = DP + 8;  /* Q, K, V rows (storage type) */
    static constexpr int LDS = WK + 4;  /* S rows (float) */
    static constexpr int LDP = WK + 8;  /* P rows (storage type) */
    static constexpr int LDO = DP + 4;  /* O rows (float) */
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + (size_t)WQ * LDH * E;
    static constexpr size_t v_off = k_off + (size_t)WK * LDH * E;
    static constexpr size_t s_off = v_off + (size_t)WK * LDH * E;
    static constexpr size_t p_off = s_off + (size_t)WQ * LDS * 4;
    static constexpr size_t o_off = p_off + (size_t)WQ * LDP * E;
    static constexpr size_t bytes = o_off + (size_t)WQ * LDO * 4;
};

template <typename T, int DP>
__global__ static void __launch_bounds__(WTHREADS)
attn_wmma_kernel(T *out, const T *q, const T *k, const T *v, const float *key_mask, int heads, int tq, int tk, int D,
                 float scale, int causal) {
    using L = wmma_smem<T, DP>;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Qs = (T *)(smem + L::q_off), *Ks = (T *)(smem + L::k_off), *Vs = (T *)(smem + L::v_off);
    float *S = (float *)(smem + L::s_off), *O = (float *)(smem + L::o_off);
    T *P = (T *)(smem + L::p_off);
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * WQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t ld = (size_t)heads * D;
    const T zero = from_f<T>(0.0f);

    /* Q tile (zeros past tq and past D) and O = 0. */
    for (int idx = threadIdx.x; idx < WQ * DP; idx += WTHREADS) {
        const int r = idx / DP, d = idx % DP, i = i0 + r;
        Qs[r * L::LDH + d] = (i < tq && d < D) ? q[((size_t)b * tq + i) * ld + (size_t)h * D + d] : zero;
        O[r * L::LDO + d] = 0.0f;
    }
    /* Softmax bookkeeping: lanes 2r and 2r+1 share row r of the warp's 16, each
     * taking half of the columns; both keep the row's m and l. */
    const int wr = warp * 16;          /* the warp's first row in the block */
    const int r = wr + (lane >> 1);    /* this lane's row */
    const int half = lane & 1;
    const int i = i0 + r;              /* its query */
    float m = -INFINITY, l = 0.0f;
    const int i_last = min(tq, i0 + WQ) - 1;
    const int kend = causal ? min(tk, i_last + 1) : tk;
    const float *mk = key_mask ? key_mask + (size_t)b * tk : nullptr;

    for (int j0 = 0; j0 < kend; j0 += WK) {
        __syncthreads(); /* Q/O written, or the previous K/V tile consumed */
        for (int idx = threadIdx.x; idx < WK * DP; idx += WTHREADS) {
            const int jj = idx / DP, d = idx % DP, j = j0 + jj;
            T kv = zero, vv = zero;
            if (j < tk && d < D) {
                const size_t off = ((size_t)b * tk + j) * ld + (size_t)h * D + d;
                kv = k[off];
                vv = v[off];
            }
            Ks[jj * L::LDH + d] = kv;
            Vs[jj * L::LDH + d] = vv;
        }
        __syncthreads();

        /* S[wr.., :] = Q[wr.., :] K^T: K stored [key, d] is K^T column-major. */
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[WK / 16];
#pragma unroll
            for (int n = 0; n < WK / 16; n++) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
            for (int kk = 0; kk < DP / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::load_matrix_sync(a, Qs + wr * L::LDH + kk * 16, L::LDH);
#pragma unroll
                for (int n = 0; n < WK / 16; n++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bf;
                    wmma::load_matrix_sync(bf, Ks + n * 16 * L::LDH + kk * 16, L::LDH);
                    wmma::mma_sync(acc[n], a, bf, acc[n]);
                }
            }
#pragma unroll
            for (int n = 0; n < WK / 16; n++)
                wmma::store_matrix_sync(S + wr * L::LDS + n * 16, acc[n], L::LDS, wmma::mem_row_major);
        }
        __syncwarp();

        /* Online softmax of row r over this tile: this lane's columns c = half + 2u. */
        float *srow = S + r * L::LDS;
        float mx = -INFINITY;
        for (int c = half; c < WK; c += 2) {
            const int j = j0 + c;
            float sv = srow[c] * scale;
            if (j >= tk || (causal && j > i)) sv = -INFINITY;
            else if (mk) sv += mk[j];
            srow[c] = sv;
            mx = fmaxf(mx, sv);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float mnew = fmaxf(m, mx);
        T *prow = P + r * L::LDP;
        float *orow = O + r * L::LDO;
        if (mnew == -INFINITY) { /* nothing visible yet: p = 0, O and l stay */
            for (int c = half; c < WK; c += 2) prow[c] = zero;
        } else {
            const float alpha = expf(m - mnew);
            float sum = 0.0f;
            for (int c = half; c < WK; c += 2) {
                const float p = expf(srow[c] - mnew);
                const T pt = from_f<T>(p);
                prow[c] = pt;
                sum += to_f(pt); /* l sums what P V multiplies */
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            l = l * alpha + sum;
            m = mnew;
            if (alpha != 1.0f)
                for (int d = half; d < DP; d += 2) orow[d] *= alpha;
        }
        __syncwarp();

        /* O[wr.., :] += P[wr.., :] V */
#pragma unroll
        for (int n = 0; n < DP / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, O + wr * L::LDO + n * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < WK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bf;
                wmma::load_matrix_sync(a, P + wr * L::LDP + kk * 16, L::LDP);
                wmma::load_matrix_sync(bf, Vs + kk * 16 * L::LDH + n * 16, L::LDH);
                wmma::mma_sync(acc, a, bf, acc);
            }
            wmma::store_matrix_sync(O + wr * L::LDO + n * 16, acc, L::LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp(); /* a warp that saw no tile still wrote O = 0 block-wide: wait for all */
    __syncthreads();
    if (i < tq) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const float *orow = O + r * L::LDO;
        T *op = out + ((size_t)b * tq + i) * ld + (size_t)h * D;
        for (int d = half; d < D; d += 2) op[d] = from_f<T>(orow[d] * inv);
    }
}

/* Launches the tensor-core kernel for padded head dim DP; 0 when the device
 * cannot give the block its shared memory (the caller falls back). */
template <typename T, int DP>
static int attn_wmma_launch(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads,
                            int tq, int tk, int D, float scale, int causal) {
    const size_t bytes = wmma_smem<T, DP>::bytes;
    static int optin = -1; /* per instance: this device's per-block opt-in limit, and the attribute set */
    if (optin < 0) {
        int dev = 0, lim = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&lim, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        if ((size_t)lim >= bytes)
            CUDA_CHECK(cudaFuncSetAttribute(attn_wmma_kernel<T, DP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)bytes));
        optin = lim;
    }
    if ((size_t)optin < bytes) return 0;
    dim3 grid((unsigned)((tq + WQ - 1) / WQ), (unsigned)heads, (unsigned)batch);
    attn_wmma_kernel<T, DP><<<grid, WTHREADS, bytes>>>(out, q, k, v, mask, heads, tq, tk, D, scale, causal);
    CUDA_CHECK_LAUNCH();
    return 1;
}

template <typename T>
static int attn_wmma_dispatch(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads,
                              int tq, int tk, int D, float scale, int causal) {
    if (D <= 48) return attn_wmma_launch<T, 48>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 64) return attn_wmma_launch<T, 64>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 80) return attn_wmma_launch<T, 80>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 128) return attn_wmma_launch<T, 128>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    return attn_wmma_launch<T, 160>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
}

/* ---- entry point ------------------------------------------------------------------ */

extern "C" void attention_forward_cuda(void *out, const void *q, const void *k, const void *v, int batch, int heads,
                                       int tq, int tk, int head_dim, float scale, int causal, const float *key_mask,
                                       dtype_t dt) {
    if (!out || !q || !k || !v) die("attention_forward_cuda: NULL q, k, v or out");
    if (batch <= 0 || heads <= 0 || tq <= 0 || tk <= 0 || head_dim <= 0)
        die("attention_forward_cuda: bad dimensions batch %d, heads %d, tq %d, tk %d, head_dim %d", batch, heads,
            tq, tk, head_dim);
    if (out == k || out == v) die("attention_forward_cuda: out must not alias k or v");
    if (!isfinite(scale)) die("attention_forward_cuda: scale %g is not finite", (double)scale);
    if (head_dim > 160) die("attention_forward_cuda: head_dim %d is over 160", head_dim);
    if (heads > 65535 || batch > 65535) die("attention_forward_cuda: %d heads x %d batch is too many", heads, batch);
    if ((long)heads * head_dim > 1L << 30) die("attention_forward_cuda: heads x head_dim is too large");
    dispatch_dtype(dt, "attention_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        T *o = (T *)out;
        const T *qq = (const T *)q, *kk = (const T *)k, *vv = (const T *)v;
        if constexpr (!std::is_same<T, float>::value) {
            if (g_impl != 1 && attn_wmma_dispatch<T>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale,
                                                     causal))
                return;
        }
        if (head_dim <= 64)
            attn_fma_launch<T, 64>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal);
        else if (head_dim <= 128)
            attn_fma_launch<T, 128>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal);
        else
            attn_fma_launch<T, 160>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal);
    });
}
