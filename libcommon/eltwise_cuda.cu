/* eltwise_cuda.cu — the CUDA twins of eltwise.h and upsample.h (see
 * cuda_ops.h for the conventions): sums, products, scaling, the bias and
 * time-embedding broadcasts, channel concatenation, the batched transpose
 * (32 x 32 tiles through shared memory, so reads and writes both coalesce)
 * and nearest 2x upsampling. Grid-stride loops, float math; the sums,
 * products and broadcasts move 16-byte packs where the pointers allow. */
#include "cuda_kernels.cuh"

#define NEED(cond, ...) do { if (!(cond)) die(__VA_ARGS__); } while (0)

enum { BLOCK = 256 };

/* ---- binary and scaling ------------------------------------------------------ */

enum { OP_ADD, OP_MUL, OP_AXPBY, OP_SCALE };

template <int OP> __device__ __forceinline__ float op1(float a, float b, float alpha, float beta) {
    if (OP == OP_ADD) return a + b;
    if (OP == OP_MUL) return a * b;
    if (OP == OP_AXPBY) return alpha * a + beta * b;
    return a * alpha; /* OP_SCALE: b unused */
}

/* vec: every pointer 16-byte aligned; 16-byte packs, then the last n % V one by one. */
template <typename T, int OP>
__global__ static void binary_kernel(T *out, const T *a, const T *b, float alpha, float beta, size_t n, int vec) {
    const T *bb = OP == OP_SCALE ? a : b; /* SCALE has no b: read a twice, ignore it */
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        const size_t nv = n / V;
        GRID_STRIDE(i, nv) {
            pack16<T> x = ((const pack16<T> *)a)[i], y = ((const pack16<T> *)bb)[i], z;
#pragma unroll
            for (int e = 0; e < V; e++) z.x[e] = from_f<T>(op1<OP>(to_f(x.x[e]), to_f(y.x[e]), alpha, beta));
            ((pack16<T> *)out)[i] = z;
        }
        GRID_STRIDE(i, n - nv * V) {
            const size_t k = nv * V + i;
            out[k] = from_f<T>(op1<OP>(to_f(a[k]), to_f(bb[k]), alpha, beta));
        }
    } else {
        GRID_STRIDE(i, n) out[i] = from_f<T>(op1<OP>(to_f(a[i]), to_f(bb[i]), alpha, beta));
    }
}

template <int OP>
static void binary_launch(const char *fn, void *out, const void *a, const void *b, float alpha, float beta, size_t n,
                          dtype_t dt) {
    if (!n) return;
    NEED(out && a && (b || OP == OP_SCALE), "%s: NULL pointer", fn);
    const int vec = aligned16(out) && aligned16(a) && (OP == OP_SCALE || aligned16(b));
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        const size_t work = vec ? n / (16 / sizeof(T)) + 1 : n;
        binary_kernel<T, OP><<<grid_for(work, BLOCK), BLOCK>>>((T *)out, (const T *)a, (const T *)b, alpha, beta, n,
                                                               vec);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void eltwise_add_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    binary_launch<OP_ADD>("eltwise_add_cuda", out, a, b, 1.0f, 1.0f, n, dt);
}

extern "C" void eltwise_mul_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    binary_launch<OP_MUL>("eltwise_mul_cuda", out, a, b, 1.0f, 1.0f, n, dt);
}

extern "C" void eltwise_scale_cuda(void *out, const void *a, float s, size_t n, dtype_t dt) {
    binary_launch<OP_SCALE>("eltwise_scale_cuda", out, a, NULL, s, 0.0f, n, dt);
}

extern "C" void eltwise_axpby_cuda(void *out, float alpha, const void *a, float beta, const void *b, size_t n,
                                   dtype_t dt) {
    binary_launch<OP_AXPBY>("eltwise_axpby_cuda", out, a, b, alpha, beta, n, dt);
}

/* ---- broadcasts ------------------------------------------------------------------ */

/* x[i] += v[(i / div) % mod]: bias rows (div 1, mod ch), bias channels
 * (div hw, mod ch) and per batch-channel (div hw, mod batch*ch). vec: x
 * 16-byte aligned, packs of x (each element finds its own v). */
template <typename T>
__global__ static void add_bcast_kernel(T *x, const T *v, size_t n, size_t div, size_t mod, int vec) {
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        const size_t nv = n / V;
        GRID_STRIDE(i, nv) {
            pack16<T> p = ((pack16<T> *)x)[i];
#pragma unroll
            for (int e = 0; e < V; e++) p.x[e] = from_f<T>(to_f(p.x[e]) + to_f(v[((i * V + e) / div) % mod]));
            ((pack16<T> *)x)[i] = p;
        }
        GRID_STRIDE(i, n - nv * V) {
            const size_t k = nv * V + i;
            x[k] = from_f<T>(to_f(x[k]) + to_f(v[(k / div) % mod]));
        }
    } else {
        GRID_STRIDE(i, n) x[i] = from_f<T>(to_f(x[i]) + to_f(v[(i / div) % mod]));
    }
}

static void add_bcast(const char *fn, void *x, const void *v, size_t n, size_t div, size_t mod, dtype_t dt) {
    const int vec = aligned16(x);
    dispatch_dtype(dt, fn, [&](auto tag) {
        using T = STORAGE_T(tag);
        const size_t work = vec ? n / (16 / sizeof(T)) + 1 : n;
        add_bcast_kernel<T><<<grid_for(work, BLOCK), BLOCK>>>((T *)x, (const T *)v, n, div, mod, vec);
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
