/* params.h — a model's named tensors in one contiguous float block, llm.c
 * style: one block for the values, one for the gradients (and, in the
 * optimiser, one each for Adam's m and v), with a table of PyTorch state-dict
 * names, shapes and offsets into it. Models fill the table once (param_add),
 * allocate once, and keep plain float pointers into the block; AdamW is then
 * one loop over the block and freeing is one call.
 *
 * Buffers that are state but not parameters (BatchNorm running_mean,
 * running_var, num_batches_tracked) go in a second param_set allocated without
 * gradients, so the optimiser never sees them. */
#ifndef SYNTHCXR_PARAMS_H
#define SYNTHCXR_PARAMS_H

#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 160
#define PARAM_MAX_DIMS 4

typedef struct param_entry {
    char name[PARAM_NAME_MAX];   /* PyTorch / HF state-dict key, e.g. "layer1.0.conv1.weight" */
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t offset;               /* in floats, into data (and grad) */
    size_t numel;
    int decay;                   /* 1: AdamW weight decay applies (weights); 0: biases, norms */
    int is_i64;                  /* saved as int64 (num_batches_tracked); stored as float here */
} param_entry;

typedef struct param_set {
    param_entry *e;
    int n, cap;
    size_t total;                /* floats in the block */
    float *data;                 /* [total] values, after param_set_alloc */
    float *grad;                 /* [total] gradients, or NULL (buffers) */
} param_set;

void param_set_init(param_set *ps);
/* Registers a tensor before param_set_alloc; returns its offset. Dies on a
 * duplicate name, a name too long, or ndim outside 0..4 (0: a scalar). */
size_t param_add(param_set *ps, const char *name, int ndim, const int64_t *shape, int decay);
/* A 0-d int64 counter such as BatchNorm's num_batches_tracked (kept as a float
 * here, exact up to 2^24; saved and loaded as int64). */
size_t param_add_count(param_set *ps, const char *name);
/* Allocates data (zeroed, 64-byte aligned) and, with with_grad, grad. */
void param_set_alloc(param_set *ps, int with_grad);
void param_set_free(param_set *ps);

/* The entry named name, or NULL. */
const param_entry *param_find(const param_set *ps, const char *name);
/* Pointer to the values of name; dies naming it if absent (a programming error). */
float *param_get(const param_set *ps, const char *name);
/* Pointer to the gradient of name (param_set allocated with grads). */
float *param_grad(const param_set *ps, const char *name);
void param_zero_grad(param_set *ps);

/* Copies every entry from f, looking up prefix + name (prefix may be "" or NULL),
 * converting f16/bf16/i64 to float. A shape mismatch dies naming file, tensor,
 * expected and found shapes. A missing tensor dies naming file and tensor unless
 * allow_missing, in which case it is left as it was. Returns the number loaded. */
int param_load(param_set *ps, const st_file *f, const char *prefix, int allow_missing);

/* Appends every entry as a tensor view (f32, or i64 for is_i64 entries: those are
 * converted into memory owned by the returned tensors) to a name/tensor list for
 * st_write. names[k] = prefix + name (xmalloc'ed); the caller frees names and
 * tensors with param_list_free. src: ps->data, or ps->grad, or any block laid out
 * like ps (Adam's m and v). Returns the new count. */
int param_list_append(const param_set *ps, const float *src, const char *prefix, int n, char ***names,
                      const tensor ***ts);
void param_list_free(int n, char **names, const tensor **ts);

#endif
