/* tensor.c — allocation, shapes and dtype conversion of the tensor type. */
#include "tensor.h"
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[DTYPE_COUNT] = {
    [DTYPE_F32] = {"f32", 4}, [DTYPE_F16] = {"f16", 2}, [DTYPE_BF16] = {"bf16", 2},
    [DTYPE_I32] = {"i32", 4}, [DTYPE_I64] = {"i64", 8}, [DTYPE_U8] = {"u8", 1},
};

size_t dtype_size(dtype_t dt) {
    CHECK(dt >= 0 && dt < DTYPE_COUNT);
    return dtypes[dt].size;
}

const char *dtype_name(dtype_t dt) {
    if (dt < 0 || dt >= DTYPE_COUNT) return "invalid";
    return dtypes[dt].name;
}

dtype_t dtype_from_name(const char *name) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) return (dtype_t)i;
    return DTYPE_INVALID;
}

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

static tensor *tensor_header(dtype_t dt, int ndim, const int64_t *shape) {
    CHECKF(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor with %d dimensions (at most %d)",
           ndim, TENSOR_MAX_DIMS);
    CHECKF(shape_numel(ndim, shape) >= 0, "tensor shape is negative or overflows");
    tensor *t = xcalloc(1, sizeof *t);
    t->dtype = dt;
    t->mem = MEM_CPU;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}

tensor *tensor_new(dtype_t dt, int ndim, const int64_t *shape) {
    tensor *t = tensor_header(dt, ndim, shape);
    size_t n = tensor_nbytes(t);
    t->data = xmalloc_aligned(n);
    memset(t->data, 0, n);
    t->owns = 1;
    return t;
}

tensor *tensor_new_f32(int ndim, const int64_t *shape) { return tensor_new(DTYPE_F32, ndim, shape); }

tensor *tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data) {
    tensor *t = tensor_header(dt, ndim, shape);
    t->data = data;
    t->owns = 0;
    return t;
}

void tensor_free(tensor *t) {
    if (!t) return;
    CHECKF(t->mem == MEM_CPU || !t->owns, "tensor_free on GPU memory: use tensor_cuda_free");
    if (t->owns) free(t->data);
    free(t);
}

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }
size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

int tensor_same_shape(const tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

/* ---- half and bfloat16 ---------------------------------------------------- */

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float a;
        memcpy(&a, &absx, 4);
        /* 2^-24 is the subnormal step; rint rounds half to even. */
        return (uint16_t)(sign | (uint32_t)rintf(a * 16777216.0f));
    }
    uint32_t mant_odd = (absx >> 13) & 1;
    absx += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (absx >> 13));
}

float bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void convert_to_f32(float *dst, const void *src, dtype_t dt, size_t n) {
    switch (dt) {
    case DTYPE_F32: memcpy(dst, src, n * 4); break;
    case DTYPE_F16: for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(((const uint16_t *)src)[i]); break;
    case DTYPE_BF16: for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(((const uint16_t *)src)[i]); break;
    case DTYPE_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case DTYPE_I64: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i]; break;
    case DTYPE_U8: for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i]; break;
    default: die("convert_to_f32: unknown dtype %d", (int)dt);
    }
}

void convert_from_f32(void *dst, const float *src, dtype_t dt, size_t n) {
    switch (dt) {
    case DTYPE_F32: memcpy(dst, src, n * 4); break;
    case DTYPE_F16: for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_f16(src[i]); break;
    case DTYPE_BF16: for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_bf16(src[i]); break;
    case DTYPE_I32: for (size_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)lrintf(src[i]); break;
    case DTYPE_I64: for (size_t i = 0; i < n; i++) ((int64_t *)dst)[i] = (int64_t)llrintf(src[i]); break;
    case DTYPE_U8:
        for (size_t i = 0; i < n; i++) {
            float v = src[i] < 0 ? 0 : src[i] > 255 ? 255 : src[i];
            ((uint8_t *)dst)[i] = (uint8_t)lrintf(v);
        }
        break;
    default: die("convert_from_f32: unknown dtype %d", (int)dt);
    }
}

tensor *tensor_to_f32(const tensor *t) {
    CHECK(t->mem == MEM_CPU);
    tensor *o = tensor_new(DTYPE_F32, t->ndim, t->shape);
    convert_to_f32(o->data, t->data, t->dtype, (size_t)tensor_numel(t));
    return o;
}

tensor *tensor_from_f32(const tensor *t, dtype_t dt) {
    CHECK(t->mem == MEM_CPU && t->dtype == DTYPE_F32);
    tensor *o = tensor_new(dt, t->ndim, t->shape);
    convert_from_f32(o->data, t->data, dt, (size_t)tensor_numel(t));
    return o;
}

tensor *tensor_clone(const tensor *t) {
    CHECK(t->mem == MEM_CPU);
    tensor *o = tensor_new(t->dtype, t->ndim, t->shape);
    memcpy(o->data, t->data, tensor_nbytes(t));
    return o;
}
