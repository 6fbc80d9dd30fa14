/* conv2d_cuda.cu — the CUDA twin of conv2d.h (see cuda_ops.h for the
 * conventions), first version: a 1x1 stride-1 unpadded convolution is one
 * strided-batched GEMM over the batch (the weight shared, stride 0); any other
 * goes through im2col into a bounded workspace: as many whole images as it
 * holds ([n, K = in_ch*k_h*k_w, out_h*out_w]) and one strided-batched GEMM
 * weight [out_ch, K] @ col per run of images; or, when not even one image
 * fits, runs of output pixels of one image and a GEMM into the run's columns
 * of out [out_ch, out_h*out_w]. The bias is broadcast into out first
 * and the GEMMs add to it (beta = 1): f16/bf16 outputs are rounded once.
 * An implicit-GEMM kernel (no workspace, no second pass over memory) is for later. */
#include "cuda_kernels.cuh"

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

extern "C" void conv2d_forward_cuda(void *out, const void *inp, const void *weight, const void *bias,
                                    const conv2d_dims *d, void *ws, size_t ws_bytes, dtype_t dt) {
    if (!out || !inp || !weight || !d) die("conv2d_forward_cuda: NULL out, inp, weight or dims");
    conv2d_cuda_check(d);
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
