/* attention_cuda.cu — the CUDA twin of attention.h (see cuda_ops.h for the
 * conventions): flash-attention style, the tq x tk score matrix never in
 * memory. Three kernels, all with float scores, running max/sum and output
 * accumulators, and the CPU's online softmax (rescale the partial output by
 * exp(m_old - m_new) when the row maximum grows):
 *  - attn_fma_kernel (every storage type, head_dim <= 160; the f32 path): a
 *    block of 128 threads takes 32 queries of one (batch, head), 4 threads per
 *    query, each holding a quarter of the query row and of its output in
 *    registers; key and value tiles of 32 rows are staged in shared memory as
 *    float. CUDA cores only.
 *  - attn_mma_kernel (f16/bf16, their default; head_dim padded to 48, 64, 80,
 *    128 or 160): a block of 4 warps takes 64 queries, a warp 16 of them; per
 *    tile of 64 keys, S = Q K^T and O += P V on mma.sync m16n8k16 with S, P
 *    and O in registers (flash attention 2; P rounded to the storage type, as
 *    flash attention does).
 *  - attn_wmma_kernel (f16/bf16, the same padding; the first tensor-core
 *    version, kept as a cross-check): the same tiling on WMMA 16x16x16 with S,
 *    P and O going through shared memory between the steps.
 * and, for head_dim over 160 (the VAE's mid-block attention: one head of 512),
 * attn_blas: cuBLAS products around a row softmax, per block of queries.
 * None uses cp.async pipelining or Hopper's wgmma yet. */
#include "cuda_kernels.cuh"

#include <mma.h>

static int g_impl = 0; /* attention_cuda_set_impl */

extern "C" int attention_cuda_set_impl(int impl) {
    if (impl < 0 || impl > 4)
        die("attention_cuda_set_impl: unknown kernel %d (0 auto, 1 FMA, 2 WMMA, 3 mma.sync, 4 cuBLAS)", impl);
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

/* ---- tensor-core kernel, registers (mma.sync) ---------------------------------
 * Flash-attention-2 style: the warp's S tile and O rows stay in registers in
 * the documented fragment layouts of mma.sync.m16n8k16 (lane = 4 g + t: A
 * holds rows g and g+8, columns 2t, 2t+1 and 2t+8, 2t+9 of a 16 x 16 tile; B
 * rows 2t, 2t+1 and 2t+8, 2t+9 of column g of a 16 x 8 tile; C/D rows g and
 * g+8, columns 2t, 2t+1 of a 16 x 8 tile). A C tile of P is then already the A
 * fragment of P V, so P never goes through shared memory; the row max and sum
 * are reduced over the 4 lanes t of a row group with two shuffles. K and V are
 * staged in shared memory as stored ([key, d], 16-byte accesses): a B fragment
 * of Q K^T is two 32-bit loads; one of P V pairs up 16-bit loads from two key
 * rows (a transposed copy of V would make them 32-bit, but its stores
 * conflicted 16 ways across the banks). */

enum { MQ = 64, MK = 64, MWARPS = 4, MTHREADS = MWARPS * 32 };

template <typename T, int DP> struct mma_smem {
    static constexpr int LDQ = DP + 8;  /* Q and K rows: +16 bytes, so the 8 rows g of a fragment load hit distinct banks */
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + (size_t)MQ * LDQ * sizeof(T);
    static constexpr size_t v_off = k_off + (size_t)MK * LDQ * sizeof(T);
    static constexpr size_t bytes = v_off + (size_t)MK * LDQ * sizeof(T);
};

template <typename T, int DP>
__global__ static void __launch_bounds__(MTHREADS)
attn_mma_kernel(T *out, const T *q, const T *k, const T *v, const float *key_mask, int heads, int tq, int tk, int D,
                float scale, int causal, int vec) {
    using L = mma_smem<T, DP>;
    using P2 = typename pair_of<T>::type;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Qs = (T *)(smem + L::q_off), *Ks = (T *)(smem + L::k_off), *Vs = (T *)(smem + L::v_off);
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * MQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const size_t ld = (size_t)heads * D;
    const T zero = from_f<T>(0.0f);
    constexpr int C8 = DP / 8; /* 8-element chunks per padded row */

    /* Q tile: zeros past tq and past D. */
    for (int idx = threadIdx.x; idx < MQ * C8; idx += MTHREADS) {
        const int r = idx / C8, c = (idx % C8) * 8, i = i0 + r;
        vec8<T> x;
        const T *src = q + ((size_t)b * tq + i) * ld + (size_t)h * D + c;
        if (vec && i < tq && c < D) x = *(const vec8<T> *)src;
        else
            for (int e = 0; e < 8; e++) x.x[e] = (i < tq && c + e < D) ? src[e] : zero;
        *(vec8<T> *)(Qs + r * L::LDQ + c) = x;
    }
    __syncthreads();
    const int wr = warp * 16; /* the warp's rows; this lane's are wr + g and wr + g + 8 */
    P2 qa[DP / 16][4];
#pragma unroll
    for (int kk = 0; kk < DP / 16; kk++) {
        const T *q0 = Qs + (wr + g) * L::LDQ + kk * 16 + 2 * t, *q1 = q0 + 8 * L::LDQ;
        qa[kk][0] = *(const P2 *)q0;
        qa[kk][1] = *(const P2 *)q1;
        qa[kk][2] = *(const P2 *)(q0 + 8);
        qa[kk][3] = *(const P2 *)(q1 + 8);
    }
    float o[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* rows g, g+8; l: this lane's columns only */
    const int qi0 = i0 + wr + g, qi1 = qi0 + 8;
    const int i_last = min(tq, i0 + MQ) - 1;
    const int kend = causal ? min(tk, i_last + 1) : tk;
    const float *mk = key_mask ? key_mask + (size_t)b * tk : nullptr;

    for (int j0 = 0; j0 < kend; j0 += MK) {
        __syncthreads(); /* the previous tile is consumed */
        for (int idx = threadIdx.x; idx < MK * C8; idx += MTHREADS) {
            const int jj = idx / C8, c = (idx % C8) * 8, j = j0 + jj;
            vec8<T> kx, vx;
            const size_t off = ((size_t)b * tk + j) * ld + (size_t)h * D + c;
            if (vec && j < tk && c < D) {
                kx = *(const vec8<T> *)(k + off);
                vx = *(const vec8<T> *)(v + off);
            } else {
                for (int e = 0; e < 8; e++) {
                    const bool in = j < tk && c + e < D;
                    kx.x[e] = in ? k[off + e] : zero;
                    vx.x[e] = in ? v[off + e] : zero;
                }
            }
            *(vec8<T> *)(Ks + jj * L::LDQ + c) = kx;
            *(vec8<T> *)(Vs + jj * L::LDQ + c) = vx;
        }
        __syncthreads();

        /* S = Q K^T for the warp's 16 rows x 64 keys: 8 tiles of 16 x 8. */
        float s[MK / 8][4];
#pragma unroll
        for (int n = 0; n < MK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DP / 16; kk++)
#pragma unroll
            for (int n = 0; n < MK / 8; n++) {
                const T *kp = Ks + (n * 8 + g) * L::LDQ + kk * 16 + 2 * t;
                P2 bf[2] = {*(const P2 *)kp, *(const P2 *)(kp + 8)};
                mma16816(s[n], qa[kk], bf);
            }

        /* Scale, mask, row maxima (rows g: elements 0, 1; g+8: 2, 3). */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < MK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = j0 + n * 8 + 2 * t + (e & 1), qi = e < 2 ? qi0 : qi1;
                float sv = s[n][e] * scale;
                if (j >= tk || (causal && j > qi)) sv = -INFINITY;
                else if (mk) sv += mk[j];
                s[n][e] = sv;
                if (e < 2) mx0 = fmaxf(mx0, sv);
                else mx1 = fmaxf(mx1, sv);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        /* Nothing visible yet in a row: its p are 0 and its O, l, m stay (alpha 1). */
        const float a0 = mn0 == -INFINITY ? 1.0f : expf(m0 - mn0), a1 = mn1 == -INFINITY ? 1.0f : expf(m1 - mn1);
        const float sub0 = mn0 == -INFINITY ? 0.0f : mn0, sub1 = mn1 == -INFINITY ? 0.0f : mn1;
        m0 = mn0, m1 = mn1;

        /* P (rounded to T, as P V multiplies it) straight into A fragments: the
         * C tiles 2kk and 2kk+1 are the A tile kk. */
        P2 pa[MK / 16][4];
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < MK / 8; n++) {
            const T p0 = from_f<T>(expf(s[n][0] - sub0)), p1 = from_f<T>(expf(s[n][1] - sub0));
            const T p2 = from_f<T>(expf(s[n][2] - sub1)), p3 = from_f<T>(expf(s[n][3] - sub1));
            sum0 += to_f(p0) + to_f(p1);
            sum1 += to_f(p2) + to_f(p3);
            pa[n / 2][(n & 1) * 2 + 0] = make_pair2(p0, p1);
            pa[n / 2][(n & 1) * 2 + 1] = make_pair2(p2, p3);
        }
        l0 = l0 * a0 + sum0;
        l1 = l1 * a1 + sum1;
#pragma unroll
        for (int n = 0; n < DP / 8; n++) o[n][0] *= a0, o[n][1] *= a0, o[n][2] *= a1, o[n][3] *= a1;

        /* O += P V: B fragment rows (keys) 2t, 2t+1 and 2t+8, 2t+9, column (d) g. */
#pragma unroll
        for (int kk = 0; kk < MK / 16; kk++)
#pragma unroll
            for (int n = 0; n < DP / 8; n++) {
                const T *vp = Vs + (kk * 16 + 2 * t) * L::LDQ + n * 8 + g;
                P2 bf[2] = {make_pair2(vp[0], vp[L::LDQ]), make_pair2(vp[8 * L::LDQ], vp[9 * L::LDQ])};
                mma16816(o[n], pa[kk], bf);
            }
    }
    /* Each lane summed only its own columns: the row sums are over the 4 lanes t. */
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int n = 0; n < DP / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int qi = e < 2 ? qi0 : qi1, d = n * 8 + 2 * t + (e & 1);
            if (qi < tq && d < D)
                out[((size_t)b * tq + qi) * ld + (size_t)h * D + d] = from_f<T>(o[n][e] * (e < 2 ? inv0 : inv1));
        }
}

/* Launches the register-resident tensor-core kernel for padded head dim DP;
 * 0 when the device cannot give the block its shared memory (the caller falls back). */
template <typename T, int DP>
static int attn_mma_launch(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads,
                           int tq, int tk, int D, float scale, int causal) {
    const size_t bytes = mma_smem<T, DP>::bytes;
    static int optin = -1;
    if (optin < 0) {
        int dev = 0, lim = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&lim, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        if ((size_t)lim >= bytes)
            CUDA_CHECK(cudaFuncSetAttribute(attn_mma_kernel<T, DP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)bytes));
        optin = lim;
    }
    if ((size_t)optin < bytes) return 0;
    /* 16-byte row accesses need D a multiple of 8 and 16-byte aligned bases. */
    const int vec = D % 8 == 0 && ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v) % 16 == 0;
    dim3 grid((unsigned)((tq + MQ - 1) / MQ), (unsigned)heads, (unsigned)batch);
    attn_mma_kernel<T, DP><<<grid, MTHREADS, bytes>>>(out, q, k, v, mask, heads, tq, tk, D, scale, causal, vec);
    CUDA_CHECK_LAUNCH();
    return 1;
}

template <typename T>
static int attn_mma_dispatch(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads,
                             int tq, int tk, int D, float scale, int causal) {
    if (D <= 48) return attn_mma_launch<T, 48>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 64) return attn_mma_launch<T, 64>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 80) return attn_mma_launch<T, 80>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    if (D <= 128) return attn_mma_launch<T, 128>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
    return attn_mma_launch<T, 160>(out, q, k, v, mask, batch, heads, tq, tk, D, scale, causal);
}

/* ---- head_dim over 160 (the VAE's single 512-wide head): cuBLAS per query block --------
 * Per batch item and block of nq queries, all heads at once (strided-batched,
 * a head's rows are D apart): S [H, nq, tk] = scale Q K^T in float (GemmEx,
 * float output whatever the storage type), a row softmax with the mask and
 * the causal limit into P [H, nq, tk] (storage type), then O = P V (GemmEx,
 * float accumulation). Exact softmax over all keys, so no online rescaling;
 * the scores of one query block are in memory, never the whole tq x tk: the
 * block is sized to keep S and P within ATT_BLAS_BUDGET bytes. */

#define ATT_BLAS_BUDGET ((size_t)64 << 20)

/* Row r of S (head r / nq, query i0 + r % nq) -> row r of P. One warp per row. */
template <typename T>
__global__ static void attn_softmax_rows_kernel(T *P, const float *S, const float *mask, int rows, int nq, int tk,
                                                int i0, int causal) {
    const int lane = threadIdx.x & 31;
    const long r = (long)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (r >= rows) return; /* whole warps leave together */
    const int i = i0 + (int)(r % nq);
    const int nv = causal ? min(tk, i + 1) : tk; /* keys this query sees */
    const float *s = S + (size_t)r * tk;
    T *p = P + (size_t)r * tk;
    float mx = -INFINITY;
    for (int j = lane; j < nv; j += 32) mx = fmaxf(mx, s[j] + (mask ? mask[j] : 0.0f));
    mx = warp_max(mx);
    if (mx == -INFINITY) { /* nothing visible: zeros, as the CPU */
        for (int j = lane; j < tk; j += 32) p[j] = from_f<T>(0.0f);
        return;
    }
    float sum = 0.0f;
    for (int j = lane; j < nv; j += 32) sum += expf(s[j] + (mask ? mask[j] : 0.0f) - mx);
    const float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < tk; j += 32)
        p[j] = from_f<T>(j < nv ? expf(s[j] + (mask ? mask[j] : 0.0f) - mx) * inv : 0.0f);
}

/* A per-thread device buffer that only grows. */
static void *attn_blas_ws(size_t bytes) {
    static thread_local void *buf = nullptr;
    static thread_local size_t cap = 0;
    if (bytes > cap) {
        cuda_free(buf); /* cudaFree waits for the kernels still using it */
        buf = cuda_malloc(bytes);
        cap = bytes;
    }
    return buf;
}

template <typename T>
static void attn_blas(T *out, const T *q, const T *k, const T *v, const float *mask, int batch, int heads, int tq,
                      int tk, int D, float scale, int causal, cudaDataType_t ct) {
    const size_t per_row = (size_t)heads * tk * (sizeof(float) + sizeof(T));
    const int nq_max = (int)(ATT_BLAS_BUDGET / per_row < (size_t)tq ? ATT_BLAS_BUDGET / per_row : (size_t)tq);
    const int nqb = nq_max > 0 ? nq_max : 1;
    float *S = (float *)attn_blas_ws(per_row * nqb);
    T *P = (T *)(S + (size_t)heads * nqb * tk);
    const long long ld = (long long)heads * D;
    const float zero = 0.0f, one = 1.0f;
    for (int b = 0; b < batch; b++)
        for (int i0 = 0; i0 < tq; i0 += nqb) {
            const int nq = tq - i0 < nqb ? tq - i0 : nqb;
            const T *qb = q + ((size_t)b * tq + i0) * ld, *kb = k + (size_t)b * tk * ld, *vb = v + (size_t)b * tk * ld;
            /* S[h] [nq, tk] = scale Q[h] [nq, D] K[h]^T (row-major; cuBLAS sees the transposes) */
            CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, tk, nq, D, &scale, kb,
                                                    ct, (int)ld, D, qb, ct, (int)ld, D, &zero, S, CUDA_R_32F, tk,
                                                    (long long)nq * tk, heads, CUBLAS_COMPUTE_32F,
                                                    CUBLAS_GEMM_DEFAULT));
            const int rows = heads * nq;
            attn_softmax_rows_kernel<T><<<(unsigned)((rows + 3) / 4), 128>>>(P, S, mask ? mask + (size_t)b * tk : nullptr,
                                                                          rows, nq, tk, i0, causal);
            CUDA_CHECK_LAUNCH();
            /* O[h] [nq, D] (rows ld apart) = P[h] [nq, tk] V[h] [tk, D] */
            CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, D, nq, tk, &one, vb, ct,
                                                    (int)ld, D, P, ct, tk, (long long)nq * tk, &zero,
                                                    out + ((size_t)b * tq + i0) * ld, ct, (int)ld, D, heads,
                                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
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
    if (heads > 65535 || batch > 65535) die("attention_forward_cuda: %d heads x %d batch is too many", heads, batch);
    if ((long)heads * head_dim > 1L << 30) die("attention_forward_cuda: heads x head_dim is too large");
    dispatch_dtype(dt, "attention_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        T *o = (T *)out;
        const T *qq = (const T *)q, *kk = (const T *)k, *vv = (const T *)v;
        if (head_dim > 160 || g_impl == 4) {
            const cudaDataType_t ct = std::is_same<T, float>::value     ? CUDA_R_32F
                                      : std::is_same<T, __half>::value ? CUDA_R_16F
                                                                        : CUDA_R_16BF;
            attn_blas<T>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal, ct);
            return;
        }
        if constexpr (!std::is_same<T, float>::value) {
            if ((g_impl == 0 || g_impl == 3) &&
                attn_mma_dispatch<T>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal))
                return;
            if (g_impl == 2 &&
                attn_wmma_dispatch<T>(o, qq, kk, vv, key_mask, batch, heads, tq, tk, head_dim, scale, causal))
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
