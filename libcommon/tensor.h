/* tensor.h — the one tensor type: row-major, last dimension contiguous, shape
 * outermost first (PyTorch order), in CPU or GPU memory. */
#ifndef SYNTHCXR_TENSOR_H
#define SYNTHCXR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DTYPE_F32 = 0, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_I64, DTYPE_U8,
    DTYPE_COUNT,
    DTYPE_INVALID = -1
} dtype_t;

typedef enum { MEM_CPU = 0, MEM_CUDA = 1 } mem_t;

#define TENSOR_MAX_DIMS 8

typedef struct tensor {
    dtype_t dtype;
    mem_t mem;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
    int owns;            /* 1: data freed with the tensor; 0: a view (mmap, caller memory) */
} tensor;

size_t dtype_size(dtype_t dt);
/* Stream / short names: "f32", "f16", "bf16", "i32", "i64", "u8". */
const char *dtype_name(dtype_t dt);
dtype_t dtype_from_name(const char *name);              /* DTYPE_INVALID if unknown */

/* A new zero-filled CPU tensor (64-byte aligned). */
tensor *tensor_new(dtype_t dt, int ndim, const int64_t *shape);
/* Shorthand for f32: tensor_new_f32(3, (int64_t[]){4, 64, 64}). */
tensor *tensor_new_f32(int ndim, const int64_t *shape);
/* A tensor over memory it does not own. */
tensor *tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data);
void tensor_free(tensor *t);                          /* NULL is fine */

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);
int64_t shape_numel(int ndim, const int64_t *shape);   /* -1 on overflow */
int tensor_same_shape(const tensor *t, int ndim, const int64_t *shape);
/* "[77, 768]" into buf; returns buf. */
char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* A copy converted to f32 (from any dtype); the source is left alone. */
tensor *tensor_to_f32(const tensor *t);
/* A copy converted to dtype dt from f32. */
tensor *tensor_from_f32(const tensor *t, dtype_t dt);
tensor *tensor_clone(const tensor *t);

/* Scalar conversions (round to nearest even, as PyTorch does). */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);
void convert_to_f32(float *dst, const void *src, dtype_t dt, size_t n);
void convert_from_f32(void *dst, const float *src, dtype_t dt, size_t n);

#endif
