/* safetensors.h — the weight and checkpoint format. Reading maps the file and
 * bounds-checks every header entry against it; loading converts to f32 for the
 * CPU kernels; writing is atomic (temporary name + rename). Tensor names are
 * the PyTorch / diffusers state-dict keys. */
#ifndef SYNTHCXR_SAFETENSORS_H
#define SYNTHCXR_SAFETENSORS_H

#include "tensor.h"

#include <jansson.h>

/* The file's own dtype names: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. */
typedef struct st_entry {
    const char *name;
    char st_dtype[8];      /* as written in the file */
    dtype_t dtype;         /* DTYPE_INVALID for F64, I16, I8, BOOL (still loadable as f32) */
    size_t elem_size;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;      /* inside the mapping; may be unaligned */
    size_t nbytes;
} st_entry;

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
    int n;
    st_entry *entries;     /* sorted by name */
    json_t *header;        /* owns the names */
    json_t *metadata;      /* "__metadata__" object or NULL (borrowed from header) */
} st_file;

/* Maps and validates path; dies naming the file and the entry at fault. */
st_file *st_open(const char *path);
void st_close(st_file *f);

/* NULL if absent. */
const st_entry *st_find(const st_file *f, const char *name);
/* Dies "<path>: missing tensor \"name\"" if absent. */
const st_entry *st_get(const st_file *f, const char *name);

/* Loads a tensor as f32 in fresh memory. If ndim >= 0 the shape must equal
 * `shape`, else it dies naming file, tensor, expected and found shapes. */
tensor *st_load_f32(const st_file *f, const char *name, int ndim, const int64_t *shape);
/* Same, into caller memory of exactly numel floats. */
void st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, float *out);
/* A tensor in its own dtype (copy); only for the stream dtypes. */
tensor *st_load(const st_file *f, const char *name);

/* Writes n named CPU tensors (any stream dtype) and optional string metadata
 * atomically. Names must be unique. */
void st_write(const char *path, int n, const char *const *names, const tensor *const *ts,
              const json_t *metadata);

#endif
