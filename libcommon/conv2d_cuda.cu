/* conv2d_cuda.cu — the CUDA twin of conv2d.h (see cuda_ops.h for the
 * conventions). Two implementations, chosen by conv2d_cuda_set_impl or the
 * environment variable SYNTHCXR_CONV_IMPL:
 *  - im2col + cuBLAS (every storage type; the default): a 1x1 stride-1
 *    unpadded convolution is one strided-batched GEMM over the batch (the
 *    weight shared, stride 0); any other goes through im2col into a bounded
 *    workspace: as many whole images as it holds ([n, K = in_ch*k_h*k_w,
 *    out_h*out_w]) and one strided-batched GEMM weight [out_ch, K] @ col per
 *    run of images; or, when not even one image fits, runs of output pixels of
 *    one image and a GEMM into the run's columns of out [out_ch, out_h*out_w].
 *    The bias is broadcast into out first and the GEMMs add to it (beta = 1):
 *    f16/bf16 outputs are rounded once.
 *  - implicit GEMM on the tensor cores (f16/bf16; f32 keeps the first):
 *    conv_igemm_kernel, the GEMM out [out_ch, batch*out_h*out_w] = weight
 *    [out_ch, K] @ col [K, batch*out_h*out_w] with col never stored: each
 *    block gathers its 32 x BN slice of col from the input into shared memory
 *    (zeros in the padding and past K), mma.sync m16n8k16 with float
 *    accumulators, the bias added in the epilogue and the output rounded once.
 *    No workspace, one pass over memory. */
#include "cuda_kernels.cuh"

#include <stdlib.h>
#include <string.h>

enum { BLOCK = 256 };
#define CONV2D_CUDA_MAX_WS ((size_t)64 << 20)

static void conv2d_cuda_check(const conv2d_dims *d) {
    if (d->batch <= 0 || d->in_ch <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->out_ch <= 0 || d->k_h <= 0 ||
        d->k_w <= 0 || d->stride_h <= 0 || d->stride_w <= 0 || d->pad_h < 0 || d->pad_w < 0)
        die("conv2d_forward_cuda: bad dims batch=%d in_ch=%d in=%dx%d out_ch=%d kernel=%dx%d stride=%dx%d "
            "pad=%dx%d",
            d->batch, d->in_ch, d->in_h, d->in_w, d->out_ch, d->k_h, d->k_w, d->stride_h, d->stride_w, d->pad_h,
            d->pad_w);
    if (d->in_h + 2 * d->pad_h < d->k_h || d->in_w + 2 * d->pad_w < d->k_w)
        die("conv2d_forward_cuda: kernel %dx%d is larger than the padded input %dx%d", d->k_h, d->k_w,
            d->in_h + 2 * d->pad_h, d->in_w + 2 * d->pad_w);
    if ((int64_t)d->in_ch * d->k_h * d->k_w > INT32_MAX || (int64_t)conv2d_out_h(d) * conv2d_out_w(d) > INT32_MAX)
        die("conv2d_forward_cuda: sizes overflow a GEMM dimension");
}

static int is_pointwise(const conv2d_dims *d) {
    return d->k_h == 1 && d->k_w == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0;
}

extern "C" size_t conv2d_cuda_workspace_bytes(const conv2d_dims *d, dtype_t dt) {
    conv2d_cuda_check(d);
    if (is_pointwise(d)) return 0;
    return (size_t)d->in_ch * d->k_h * d->k_w * conv2d_out_h(d) * conv2d_out_w(d) * dtype_size(dt);
}

/* out[b, c, p] = bias[c] for every plane. */
template <typename T> __global__ static void fill_channels_kernel(T *out, const T *bias, size_t hw, size_t ch,
                                                                  size_t n) {
    GRID_STRIDE(i, n) out[i] = bias[(i / hw) % ch];
}

/* col [nimg, K, np]: for image z of x (images img_stride apart, each [in_ch,
 * in_h, in_w]), row r = (c, ki, kj), column q = output pixel p0 + q:
 * x[c, oy*sh - ph + ki, ox*sw - pw + kj], 0 in the padding. One thread per
 * element; consecutive threads write consecutive columns. n = nimg * K * np. */
template <typename T>
__global__ static void im2col_kernel(T *col, const T *x, int64_t img_stride, int K, int in_h, int in_w, int k_h,
                                     int k_w, int sh, int sw, int ph, int pw, int out_w, int64_t p0, int np,
                                     size_t n) {
    const int kk = k_h * k_w;
    const size_t per_img = (size_t)K * np;
    GRID_STRIDE(idx, n) {
        const size_t z = idx / per_img, i = idx % per_img;
        const T *xi = x + (int64_t)z * img_stride;
        const int r = (int)(i / np), q = (int)(i % np);
        const int c = r / kk, ki = (r % kk) / k_w, kj = r % k_w;
        const int64_t p = p0 + q;
        const int oy = (int)(p / out_w), ox = (int)(p % out_w);
        const int iy = oy * sh - ph + ki, ix = ox * sw - pw + kj;
        col[idx] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? xi[((int64_t)c * in_h + iy) * in_w + ix]
                                                                    : from_f<T>(0.0f);
    }
}

/* ---- implicit GEMM on the tensor cores (f16/bf16) ----------------------------
 * Block tile IG_BM (out channels) x BN (output pixels of the whole batch,
 * n = b*out_h*out_w + p), K in steps of IG_BK = 32; 8 warps as 2 x 4, a warp
 * tile 64 x BN/4 of 4 x BN/32 mma tiles (float accumulators in registers).
 * Shared memory holds two stages of A = weight [IG_BM][IG_BK] and of B^T =
 * col^T [BN][IG_BK] (k contiguous in both, so every fragment pair is one
 * 32-bit load; rows padded by 8 elements, so the 8 rows g of a fragment load
 * and the rows of the 16-byte stores fall in distinct banks). Double buffering
 * through registers: the global loads of step s+1 are issued before the mma of
 * step s and stored to the other stage after it, one __syncthreads per step.
 * The A loader moves 8-element chunks (16 bytes when K % 8 == 0 and the weight
 * is 16-byte aligned, else element by element with predication); the B loader
 * gives each thread one output pixel (consecutive lanes, consecutive pixels,
 * so the gathers coalesce along the rows of the input) and a run of BN/8
 * consecutive k = (c, ki, kj), walked incrementally. Rows past out_ch,
 * pixels past the batch and k past K are zeros; nothing outside the tensors is
 * read. pair_out (out_h*out_w even, out 4-byte aligned): the epilogue stores
 * the two adjacent pixels of a C fragment as one 32-bit pair. 40 KiB of shared
 * memory (BN 128; 30 for 64) and at most 128 registers a thread (ptxas: 126,
 * no spills, for BN 128 on sm_90), so two blocks share a multiprocessor. Not yet: cp.async or TMA,
 * ldmatrix, Hopper's wgmma, a staged epilogue with 16-byte stores, split-K
 * for the small grids of 16x16 latents. */
enum { IG_BM = 128, IG_BK = 32, IG_THREADS = 256, IG_LD = IG_BK + 8 };

template <typename T, int BN> struct igemm_smem {
    static constexpr size_t a_stage = (size_t)IG_BM * IG_LD, b_stage = (size_t)BN * IG_LD; /* elements */
    static constexpr size_t bytes = 2 * (a_stage + b_stage) * sizeof(T);
};

template <typename T, int BN>
__global__ static void __launch_bounds__(IG_THREADS, 2)
conv_igemm_kernel(T *out, const T *x, const T *w, const T *bias, int in_ch, int in_h, int in_w, int out_ch,
                  int k_h, int k_w, int sh, int sw, int ph, int pw, int out_w, int ohw, int npix, int vec_a,
                  int pair_out) {
    using L = igemm_smem<T, BN>;
    using P2 = typename pair_of<T>::type;
    constexpr int KPT = IG_BK * BN / IG_THREADS;                /* k per B-loader thread: 16 or 8 */
    constexpr int NT = BN / 32;                                 /* 8-pixel mma tiles per warp */
    constexpr int ACH = IG_BM * IG_BK / 8 / IG_THREADS;         /* A chunks of 8 per thread: 2 */
    static_assert(KPT % 8 == 0 && ACH >= 1, "tile shape");
    extern __shared__ __align__(128) unsigned char smem[];
    T *As = (T *)smem;           /* [2][IG_BM][IG_LD] */
    T *Bs = As + 2 * L::a_stage; /* [2][BN][IG_LD] */
    const int K = in_ch * k_h * k_w, khw = k_h * k_w, ihw = in_h * in_w;
    const int m0 = blockIdx.y * IG_BM, n0 = blockIdx.x * BN;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int wm = warp >> 2, wn = warp & 3;
    const T zero = from_f<T>(0.0f);

    /* B loader: pixel bn of the tile, k run bk .. bk + KPT - 1 of each step. */
    const int bn = threadIdx.x % BN, bk = threadIdx.x / BN * KPT;
    const bool n_ok = n0 + bn < npix;
    int iy0 = 0, ix0 = 0;
    const T *xb = x;
    if (n_ok) {
        const int n = n0 + bn, b = n / ohw, p = n % ohw;
        iy0 = p / out_w * sh - ph;
        ix0 = p % out_w * sw - pw;
        xb = x + (size_t)b * in_ch * ihw;
    }
    vec8<T> ra[ACH], rb[KPT / 8];
    auto load = [&](int k0) {
#pragma unroll
        for (int j = 0; j < ACH; j++) {
            const int q = threadIdx.x + j * IG_THREADS, r = q / (IG_BK / 8), kc = q % (IG_BK / 8) * 8;
            const int m = m0 + r, k = k0 + kc;
            const T *src = w + (size_t)(m < out_ch ? m : 0) * K + k;
            if (vec_a && m < out_ch && k < K) ra[j] = *(const vec8<T> *)src;
            else
#pragma unroll
                for (int e = 0; e < 8; e++) ra[j].x[e] = (m < out_ch && k + e < K) ? src[e] : zero;
        }
        int k = k0 + bk, c = k / khw, r = k - c * khw, ki = r / k_w, kj = r - ki * k_w;
#pragma unroll
        for (int i = 0; i < KPT; i++, k++) {
            const int iy = iy0 + ki, ix = ix0 + kj;
            rb[i / 8].x[i % 8] = (n_ok && k < K && (unsigned)iy < (unsigned)in_h && (unsigned)ix < (unsigned)in_w)
                                     ? xb[c * ihw + iy * in_w + ix]
                                     : zero;
            if (++kj == k_w) {
                kj = 0;
                if (++ki == k_h) ki = 0, c++;
            }
        }
    };
    auto store = [&](int st) {
        T *a = As + st * L::a_stage;
#pragma unroll
        for (int j = 0; j < ACH; j++) {
            const int q = threadIdx.x + j * IG_THREADS;
            *(vec8<T> *)(a + q / (IG_BK / 8) * IG_LD + q % (IG_BK / 8) * 8) = ra[j];
        }
        T *bp = Bs + st * L::b_stage + bn * IG_LD + bk;
#pragma unroll
        for (int j = 0; j < KPT / 8; j++) *(vec8<T> *)(bp + 8 * j) = rb[j];
    };

    float acc[4][NT][4];
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;

    const int steps = (K + IG_BK - 1) / IG_BK;
    load(0);
    store(0);
    __syncthreads();
    for (int s = 0; s < steps; s++) {
        if (s + 1 < steps) load((s + 1) * IG_BK); /* in flight during the mma below */
        const T *a = As + (s & 1) * L::a_stage, *bt = Bs + (s & 1) * L::b_stage;
#pragma unroll
        for (int kk = 0; kk < IG_BK; kk += 16) {
            P2 af[4][4], bf[NT][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const T *p = a + (wm * 64 + mt * 16 + g) * IG_LD + kk + 2 * t;
                af[mt][0] = *(const P2 *)p;
                af[mt][1] = *(const P2 *)(p + 8 * IG_LD);
                af[mt][2] = *(const P2 *)(p + 8);
                af[mt][3] = *(const P2 *)(p + 8 * IG_LD + 8);
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const T *p = bt + (wn * (BN / 4) + nt * 8 + g) * IG_LD + kk + 2 * t;
                bf[nt][0] = *(const P2 *)p;
                bf[nt][1] = *(const P2 *)(p + 8);
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mma16816(acc[mt][nt], af[mt], bf[nt]);
        }
        if (s + 1 < steps) store((s + 1) & 1); /* the other stage: read in step s - 1, before the last sync */
        __syncthreads();
    }

    /* Epilogue: C element (row g + 8h, pixel 2t + e) of each tile, plus the bias, rounded once. */
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int n = n0 + wn * (BN / 4) + nt * 8 + 2 * t;
        size_t off[2] = {0, 0}; /* out offset of pixels n, n + 1 at channel 0 */
#pragma unroll
        for (int e = 0; e < 2; e++)
            if (n + e < npix) off[e] = (size_t)((n + e) / ohw) * out_ch * ohw + (n + e) % ohw;
#pragma unroll
        for (int mt = 0; mt < 4; mt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int m = m0 + wm * 64 + mt * 16 + g + 8 * h;
                if (m >= out_ch || n >= npix) continue;
                const float bv = bias ? to_f(bias[m]) : 0.0f;
                const T v0 = from_f<T>(acc[mt][nt][2 * h] + bv), v1 = from_f<T>(acc[mt][nt][2 * h + 1] + bv);
                if (pair_out) {
                    *(P2 *)(out + off[0] + (size_t)m * ohw) = make_pair2(v0, v1); /* n even, npix even */
                } else {
                    out[off[0] + (size_t)m * ohw] = v0;
                    if (n + 1 < npix) out[off[1] + (size_t)m * ohw] = v1;
                }
            }
    }
}

/* One launch of the implicit-GEMM kernel over the whole convolution. */
template <typename T, int BN>
static void conv_igemm_launch(T *out, const T *x, const T *w, const T *bias, const conv2d_dims *d, int vec_a,
                              int pair_out) {
    const int out_w = conv2d_out_w(d), ohw = conv2d_out_h(d) * out_w, npix = d->batch * ohw;
    const dim3 grid = {(unsigned)((npix + BN - 1) / BN), (unsigned)((d->out_ch + IG_BM - 1) / IG_BM), 1};
    conv_igemm_kernel<T, BN><<<grid, IG_THREADS, igemm_smem<T, BN>::bytes>>>(
        out, x, w, bias, d->in_ch, d->in_h, d->in_w, d->out_ch, d->k_h, d->k_w, d->stride_h, d->stride_w,
        d->pad_h, d->pad_w, out_w, ohw, npix, vec_a, pair_out);
    CUDA_CHECK_LAUNCH();
}

/* Whether the implicit-GEMM kernel's int offsets hold for these sizes. */
static int igemm_fits(const conv2d_dims *d) {
    return (int64_t)d->in_ch * d->in_h * d->in_w <= INT32_MAX &&
           (int64_t)d->batch * conv2d_out_h(d) * conv2d_out_w(d) <= INT32_MAX - 256 &&
           (d->out_ch + IG_BM - 1) / IG_BM <= 65535;
}

/* The implicit-GEMM convolution: tiles of 128 pixels, or 64 when 128 would
 * leave fewer than two blocks per multiprocessor. */
template <typename T>
static void conv_igemm(T *out, const T *x, const T *w, const T *bias, const conv2d_dims *d) {
    static int sms = 0;
    if (!sms) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    }
    const int K = d->in_ch * d->k_h * d->k_w;
    const int64_t ohw = (int64_t)conv2d_out_h(d) * conv2d_out_w(d), npix = d->batch * ohw;
    const int vec_a = K % 8 == 0 && aligned16(w);
    const int pair_out = ohw % 2 == 0 && ((uintptr_t)out & 3) == 0;
    const int64_t blocks128 = (npix + 127) / 128 * ((d->out_ch + IG_BM - 1) / IG_BM);
    if (blocks128 >= 2 * (int64_t)sms) conv_igemm_launch<T, 128>(out, x, w, bias, d, vec_a, pair_out);
    else conv_igemm_launch<T, 64>(out, x, w, bias, d, vec_a, pair_out);
}

/* ---- selection ------------------------------------------------------------------ */

static int g_impl = 0; /* conv2d_cuda_set_impl */

extern "C" int conv2d_cuda_set_impl(int impl) {
    if (impl < 0 || impl > 2)
        die("conv2d_cuda_set_impl: unknown implementation %d (0 auto, 1 im2col + cuBLAS, 2 implicit GEMM)", impl);
    int old = g_impl;
    g_impl = impl;
    return old;
}

/* The implementation in force: conv2d_cuda_set_impl's, else SYNTHCXR_CONV_IMPL's, else im2col + cuBLAS. */
static int conv_impl(void) {
    static int env = -1; /* read once */
    if (g_impl) return g_impl;
    if (env < 0) {
        const char *s = getenv("SYNTHCXR_CONV_IMPL");
        if (!s || !*s || !strcmp(s, "0")) env = 0;
        else if (!strcmp(s, "1") || !strcmp(s, "2")) env = s[0] - '0';
        else die("SYNTHCXR_CONV_IMPL=%s: expected 0 (auto), 1 (im2col + cuBLAS) or 2 (implicit GEMM)", s);
    }
    return env ? env : 1;
}

extern "C" void conv2d_forward_cuda(void *out, const void *inp, const void *weight, const void *bias,
                                    const conv2d_dims *d, void *ws, size_t ws_bytes, dtype_t dt) {
    if (!out || !inp || !weight || !d) die("conv2d_forward_cuda: NULL out, inp, weight or dims");
    conv2d_cuda_check(d);
    if (dt != DTYPE_F32 && conv_impl() == 2 && igemm_fits(d)) {
        dispatch_dtype(dt, "conv2d_forward_cuda", [&](auto tag) {
            using T = STORAGE_T(tag);
            if constexpr (!std::is_same<T, float>::value)
                conv_igemm<T>((T *)out, (const T *)inp, (const T *)weight, (const T *)bias, d);
        });
        return;
    }
    const int out_h = conv2d_out_h(d), out_w = conv2d_out_w(d);
    const int64_t ohw = (int64_t)out_h * out_w, ihw = (int64_t)d->in_h * d->in_w;
    const int K = d->in_ch * d->k_h * d->k_w;
    const size_t esz = dtype_size(dt);
    float beta = 0.0f;
    if (bias) {
        size_t n = (size_t)d->batch * d->out_ch * ohw;
        dispatch_dtype(dt, "conv2d_forward_cuda", [&](auto tag) {
            using T = STORAGE_T(tag);
            fill_channels_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)bias, (size_t)ohw,
                                                                   (size_t)d->out_ch, n);
        });
        CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    if (is_pointwise(d)) {
        /* out[b] [out_ch, hw] = weight [out_ch, in_ch] @ inp[b] [in_ch, hw] */
        gemm_batched_cuda(0, 0, d->out_ch, (int)ohw, d->in_ch, 1.0f, weight, d->in_ch, 0, inp, (int)ohw,
                          (int64_t)d->in_ch * ihw, beta, out, (int)ohw, (int64_t)d->out_ch * ohw, d->batch, dt);
        return;
    }
    void *own = NULL;
    if (!ws) {
        size_t full = conv2d_cuda_workspace_bytes(d, dt);
        ws_bytes = full < CONV2D_CUDA_MAX_WS ? full : CONV2D_CUDA_MAX_WS;
        if (ws_bytes < (size_t)K * esz) ws_bytes = (size_t)K * esz;
        ws = own = cuda_malloc(ws_bytes);
    }
    const int64_t run_max = (int64_t)(ws_bytes / ((size_t)K * esz));
    if (run_max < 1)
        die("conv2d_forward_cuda: workspace of %zu bytes holds no column (%d values of %s)", ws_bytes, K,
            dtype_name(dt));
    const int64_t img_stride = (int64_t)d->in_ch * ihw;
    if (run_max >= ohw) {
        /* Whole images per run: im2col of several, then one strided-batched GEMM
         * out[b] [out_ch, ohw] = weight [out_ch, K] @ col[b] [K, ohw] (weight shared). */
        const int per = (int)(run_max / ohw < d->batch ? run_max / ohw : d->batch);
        for (int b0 = 0; b0 < d->batch; b0 += per) {
            const int nb = d->batch - b0 < per ? d->batch - b0 : per;
            const size_t n = (size_t)nb * K * ohw;
            dispatch_dtype(dt, "conv2d_forward_cuda", [&](auto tag) {
                using T = STORAGE_T(tag);
                im2col_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)ws, (const T *)inp + (size_t)b0 * img_stride,
                                                                img_stride, K, d->in_h, d->in_w, d->k_h, d->k_w,
                                                                d->stride_h, d->stride_w, d->pad_h, d->pad_w, out_w,
                                                                0, (int)ohw, n);
            });
            CUDA_CHECK_LAUNCH();
            gemm_batched_cuda(0, 0, d->out_ch, (int)ohw, K, 1.0f, weight, K, 0, ws, (int)ohw, (int64_t)K * ohw, beta,
                              (char *)out + (size_t)b0 * d->out_ch * ohw * esz, (int)ohw, (int64_t)d->out_ch * ohw, nb,
                              dt);
        }
    } else {
        /* Runs of run_max output pixels of one image at a time. */
        const int run = (int)run_max;
        for (int b = 0; b < d->batch; b++) {
            for (int64_t p0 = 0; p0 < ohw; p0 += run) {
                const int np = (int)(ohw - p0 < run ? ohw - p0 : run);
                const size_t n = (size_t)K * np;
                dispatch_dtype(dt, "conv2d_forward_cuda", [&](auto tag) {
                    using T = STORAGE_T(tag);
                    im2col_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)ws, (const T *)inp + (size_t)b * img_stride,
                                                                    img_stride, K, d->in_h, d->in_w, d->k_h, d->k_w,
                                                                    d->stride_h, d->stride_w, d->pad_h, d->pad_w,
                                                                    out_w, p0, np, n);
                });
                CUDA_CHECK_LAUNCH();
                /* out[b][:, p0:p0+np] (row stride ohw) = weight [out_ch, K] @ col [K, np] */
                gemm_cuda(0, 0, d->out_ch, np, K, 1.0f, weight, K, ws, np, beta,
                          (char *)out + ((size_t)b * d->out_ch * ohw + (size_t)p0) * esz, (int)ohw, dt);
            }
        }
    }
    cuda_free(own); /* cudaFree waits for the GEMMs that read it */
}
