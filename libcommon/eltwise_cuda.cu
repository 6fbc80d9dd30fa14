/* eltwise_cuda.cu — the CUDA twins of eltwise.h and upsample.h (see
 * cuda_ops.h for the conventions): sums, products, scaling, the bias and
 * time-embedding broadcasts, channel concatenation, the batched transpose
 * (32 x 32 tiles through shared memory, so reads and writes both coalesce)
 * and nearest 2x upsampling. Grid-stride loops, one element per step, float math. */
#include "cuda_kernels.cuh"

#define NEED(cond, ...) do { if (!(cond)) die(__VA_ARGS__); } while (0)

enum { BLOCK = 256 };

/* ---- binary and scaling ------------------------------------------------------ */

template <typename T> __global__ static void add_kernel(T *out, const T *a, const T *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}
template <typename T> __global__ static void mul_kernel(T *out, const T *a, const T *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = from_f<T>(to_f(a[i]) * to_f(b[i]));
}
template <typename T> __global__ static void axpby_kernel(T *out, float alpha, const T *a, float beta, const T *b,
                                                          size_t n) {
    GRID_STRIDE(i, n) out[i] = from_f<T>(alpha * to_f(a[i]) + beta * to_f(b[i]));
}
template <typename T> __global__ static void scale_kernel(T *out, const T *a, float s, size_t n) {
    GRID_STRIDE(i, n) out[i] = from_f<T>(to_f(a[i]) * s);
}

extern "C" void eltwise_add_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    if (!n) return;
    NEED(out && a && b, "eltwise_add_cuda: NULL pointer");
    dispatch_dtype(dt, "eltwise_add_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        add_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)a, (const T *)b, n);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void eltwise_mul_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    if (!n) return;
    NEED(out && a && b, "eltwise_mul_cuda: NULL pointer");
    dispatch_dtype(dt, "eltwise_mul_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        mul_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)a, (const T *)b, n);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void eltwise_scale_cuda(void *out, const void *a, float s, size_t n, dtype_t dt) {
    if (!n) return;
    NEED(out && a, "eltwise_scale_cuda: NULL pointer");
    dispatch_dtype(dt, "eltwise_scale_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        scale_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)a, s, n);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void eltwise_axpby_cuda(void *out, float alpha, const void *a, float beta, const void *b, size_t n,
                                   dtype_t dt) {
    if (!n) return;
    NEED(out && a && b, "eltwise_axpby_cuda: NULL pointer");
    dispatch_dtype(dt, "eltwise_axpby_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        axpby_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, alpha, (const T *)a, beta, (const T *)b, n);
    });
    CUDA_CHECK_LAUNCH();
}

/* ---- broadcasts ------------------------------------------------------------------ */

/* x[i] += v[(i / div) % mod]: bias rows (div 1, mod ch), bias channels
 * (div hw, mod ch) and per batch-channel (div hw, mod batch*ch). */
template <typename T> __global__ static void add_bcast_kernel(T *x, const T *v, size_t n, size_t div, size_t mod) {
    GRID_STRIDE(i, n) x[i] = from_f<T>(to_f(x[i]) + to_f(v[(i / div) % mod]));
}

static void add_bcast(const char *fn, void *x, const void *v, size_t n, size_t div, size_t mod, dtype_t dt) {
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        add_bcast_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)x, (const T *)v, n, div, mod);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void eltwise_add_bias_rows_cuda(void *x, const void *bias, int rows, int ch, dtype_t dt) {
    NEED(x && bias, "eltwise_add_bias_rows_cuda: NULL pointer");
    NEED(rows > 0 && ch > 0, "eltwise_add_bias_rows_cuda: bad dimensions rows %d, channels %d", rows, ch);
    add_bcast("eltwise_add_bias_rows_cuda", x, bias, (size_t)rows * ch, 1, (size_t)ch, dt);
}

extern "C" void eltwise_add_bias_channels_cuda(void *x, const void *bias, int batch, int ch, int hw, dtype_t dt) {
    NEED(x && bias, "eltwise_add_bias_channels_cuda: NULL pointer");
    NEED(batch > 0 && ch > 0 && hw > 0,
         "eltwise_add_bias_channels_cuda: bad dimensions batch %d, channels %d, hw %d", batch, ch, hw);
    add_bcast("eltwise_add_bias_channels_cuda", x, bias, (size_t)batch * ch * hw, (size_t)hw, (size_t)ch, dt);
}

extern "C" void eltwise_add_batch_channels_cuda(void *x, const void *v, int batch, int ch, int hw, dtype_t dt) {
    NEED(x && v, "eltwise_add_batch_channels_cuda: NULL pointer");
    NEED(batch > 0 && ch > 0 && hw > 0,
         "eltwise_add_batch_channels_cuda: bad dimensions batch %d, channels %d, hw %d", batch, ch, hw);
    add_bcast("eltwise_add_batch_channels_cuda", x, v, (size_t)batch * ch * hw, (size_t)hw, (size_t)batch * ch,
              dt);
}

/* ---- layout ------------------------------------------------------------------------ */

/* One thread per output element: per batch, the first na come from a, the next nb from b. */
template <typename T> __global__ static void concat_kernel(T *out, const T *a, size_t na, const T *b, size_t nb,
                                                           size_t n) {
    GRID_STRIDE(i, n) {
        size_t bi = i / (na + nb), r = i % (na + nb);
        out[i] = r < na ? a[bi * na + r] : b[bi * nb + (r - na)];
    }
}

extern "C" void eltwise_concat_channels_cuda(void *out, const void *a, int ca, const void *b, int cb, int batch,
                                             int hw, dtype_t dt) {
    NEED(out && a && b, "eltwise_concat_channels_cuda: NULL pointer");
    NEED(batch > 0 && ca >= 0 && cb >= 0 && hw > 0,
         "eltwise_concat_channels_cuda: bad dimensions batch %d, channels %d + %d, hw %d", batch, ca, cb, hw);
    size_t na = (size_t)ca * hw, nb = (size_t)cb * hw, n = (size_t)batch * (na + nb);
    if (!n) return;
    dispatch_dtype(dt, "eltwise_concat_channels_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        concat_kernel<T><<<grid_for(n, BLOCK), BLOCK>>>((T *)out, (const T *)a, na, (const T *)b, nb, n);
    });
    CUDA_CHECK_LAUNCH();
}

enum { TT = 32, TROWS = 8 }; /* transpose tile and the rows a 32 x 8 block moves per step */

/* Block (32, 8) moves one 32 x 32 tile of matrix z: rows i0.. of inp [m, n]
 * become columns of out [n, m]. The +1 column keeps the shared-memory reads
 * of a column free of bank conflicts. */
template <typename T> __global__ static void transpose_kernel(T *out, const T *inp, int batch, int m, int n) {
    __shared__ T tile[TT][TT + 1];
    const int i0 = blockIdx.y * TT, j0 = blockIdx.x * TT;
    for (int z = blockIdx.z; z < batch; z += gridDim.z) {
        const T *src = inp + (size_t)z * m * n;
        T *dst = out + (size_t)z * m * n;
        for (int r = threadIdx.y; r < TT; r += TROWS) {
            int i = i0 + r, j = j0 + threadIdx.x;
            if (i < m && j < n) tile[r][threadIdx.x] = src[(size_t)i * n + j];
        }
        __syncthreads();
        for (int r = threadIdx.y; r < TT; r += TROWS) {
            int j = j0 + r, i = i0 + threadIdx.x;
            if (j < n && i < m) dst[(size_t)j * m + i] = tile[threadIdx.x][r];
        }
        __syncthreads(); /* the tile is refilled for the next matrix */
    }
}

extern "C" void eltwise_transpose_cuda(void *out, const void *inp, int batch, int m, int n, dtype_t dt) {
    NEED(out && inp, "eltwise_transpose_cuda: NULL pointer");
    NEED(out != inp, "eltwise_transpose_cuda: out must not alias inp");
    NEED(batch > 0 && m > 0 && n > 0, "eltwise_transpose_cuda: bad dimensions batch %d, %d x %d", batch, m, n);
    unsigned gy = (unsigned)((m + TT - 1) / TT);
    NEED(gy <= 65535, "eltwise_transpose_cuda: %d rows is too many", m);
    dim3 grid((unsigned)((n + TT - 1) / TT), gy, (unsigned)(batch < 65535 ? batch : 65535));
    dim3 block(TT, TROWS);
    dispatch_dtype(dt, "eltwise_transpose_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        transpose_kernel<T><<<grid, block>>>((T *)out, (const T *)inp, batch, m, n);
    });
    CUDA_CHECK_LAUNCH();
}

/* One thread per output element: out row 2r+dy, column 2x+dx comes from inp row r, column x. */
template <typename T> __global__ static void upsample2x_kernel(T *out, const T *inp, size_t planes, int h, int w) {
    const size_t ow = 2 * (size_t)w, ohw = 4 * (size_t)h * w, n = planes * ohw;
    GRID_STRIDE(i, n) {
        size_t p = i / ohw, r = i % ohw;
        size_t oy = r / ow, ox = r % ow;
        out[i] = inp[p * h * w + (oy >> 1) * w + (ox >> 1)];
    }
}

extern "C" void upsample_nearest2x_forward_cuda(void *out, const void *inp, int batch, int ch, int h, int w,
                                                dtype_t dt) {
    NEED(out && inp, "upsample_nearest2x_forward_cuda: NULL pointer");
    NEED(batch > 0 && ch > 0 && h > 0 && w > 0, "upsample_nearest2x_forward_cuda: bad dims batch=%d ch=%d h=%d w=%d",
         batch, ch, h, w);
    size_t planes = (size_t)batch * ch;
    dispatch_dtype(dt, "upsample_nearest2x_forward_cuda", [&](auto tag) {
        using T = STORAGE_T(tag);
        upsample2x_kernel<T><<<grid_for(planes * 4 * h * w, BLOCK), BLOCK>>>((T *)out, (const T *)inp, planes, h, w);
    });
    CUDA_CHECK_LAUNCH();
}
