/* params.c — named tensors in one contiguous block (see params.h). */
#include "params.h"

#include "common.h"

#include <stdlib.h>
#include <string.h>

void param_set_init(param_set *ps) { memset(ps, 0, sizeof *ps); }

size_t param_add(param_set *ps, const char *name, int ndim, const int64_t *shape, int decay)
{
    CHECKF(ps->data == NULL, "param_add(\"%s\") after param_set_alloc", name);
    CHECKF(ndim >= 0 && ndim <= PARAM_MAX_DIMS, "param_add(\"%s\"): ndim %d", name, ndim);
    CHECKF(strlen(name) < PARAM_NAME_MAX, "param_add: name too long: %s", name);
    CHECKF(param_find(ps, name) == NULL, "param_add: duplicate name %s", name);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->e = xrealloc(ps->e, (size_t)ps->cap * sizeof *ps->e);
    }
    param_entry *e = &ps->e[ps->n++];
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        CHECKF(shape[i] > 0, "param_add(\"%s\"): dimension %d is %lld", name, i, (long long)shape[i]);
        e->shape[i] = shape[i];
        e->numel *= (size_t)shape[i];
    }
    e->decay = decay;
    /* 16-float alignment, so every tensor starts on a cache line */
    e->offset = ps->total;
    ps->total += (e->numel + 15) & ~(size_t)15;
    return e->offset;
}

size_t param_add_count(param_set *ps, const char *name)
{
    size_t off = param_add(ps, name, 0, NULL, 0);
    ps->e[ps->n - 1].is_i64 = 1;
    return off;
}

void param_set_alloc(param_set *ps, int with_grad)
{
    CHECK(ps->data == NULL);
    size_t n = ps->total ? ps->total : 16;
    ps->data = xmalloc_aligned(n * sizeof(float));
    memset(ps->data, 0, n * sizeof(float));
    if (with_grad) {
        ps->grad = xmalloc_aligned(n * sizeof(float));
        memset(ps->grad, 0, n * sizeof(float));
    }
}

void param_set_free(param_set *ps)
{
    free(ps->e);
    free(ps->data);
    free(ps->grad);
    memset(ps, 0, sizeof *ps);
}

const param_entry *param_find(const param_set *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->e[i].name, name) == 0) return &ps->e[i];
    return NULL;
}

float *param_get(const param_set *ps, const char *name)
{
    const param_entry *e = param_find(ps, name);
    CHECKF(e != NULL, "no parameter named %s", name);
    CHECK(ps->data != NULL);
    return ps->data + e->offset;
}

float *param_grad(const param_set *ps, const char *name)
{
    const param_entry *e = param_find(ps, name);
    CHECKF(e != NULL, "no parameter named %s", name);
    CHECK(ps->grad != NULL);
    return ps->grad + e->offset;
}

void param_zero_grad(param_set *ps)
{
    if (ps->grad) memset(ps->grad, 0, ps->total * sizeof(float));
}

int param_load(param_set *ps, const st_file *f, const char *prefix, int allow_missing)
{
    int loaded = 0;
    if (!prefix) prefix = "";
    for (int i = 0; i < ps->n; i++) {
        const param_entry *e = &ps->e[i];
        char *key = xasprintf("%s%s", prefix, e->name);
        const st_entry *se = st_find(f, key);
        if (!se) {
            if (!allow_missing) die("%s: missing tensor \"%s\"", f->path, key);
            free(key);
            continue;
        }
        if (se->dtype == DTYPE_I64 && e->is_i64 && se->ndim == 0) {
            int64_t v;
            memcpy(&v, se->data, sizeof v);
            ps->data[e->offset] = (float)v;
        } else if (se->dtype == DTYPE_I64 || se->dtype == DTYPE_I32) {
            die("%s: tensor \"%s\" is %s, expected a float tensor", f->path, key, se->st_dtype);
        } else {
            st_read_f32(f, key, e->ndim, e->shape, ps->data + e->offset);
        }
        loaded++;
        free(key);
    }
    return loaded;
}

int param_list_append(const param_set *ps, const float *src, const char *prefix, int n, char ***names,
                      const tensor ***ts)
{
    if (!prefix) prefix = "";
    *names = xrealloc(*names, (size_t)(n + ps->n) * sizeof **names);
    *ts = xrealloc((void *)*ts, (size_t)(n + ps->n) * sizeof **ts);
    for (int i = 0; i < ps->n; i++) {
        const param_entry *e = &ps->e[i];
        (*names)[n] = xasprintf("%s%s", prefix, e->name);
        tensor *t;
        if (e->is_i64) {
            /* torch keeps num_batches_tracked as a 0-d int64 tensor */
            t = tensor_new(DTYPE_I64, 0, NULL);
            *(int64_t *)t->data = (int64_t)src[e->offset];
        } else {
            t = tensor_view(DTYPE_F32, e->ndim, e->shape, (void *)(src + e->offset));
        }
        (*ts)[n++] = t;
    }
    return n;
}

void param_list_free(int n, char **names, const tensor **ts)
{
    for (int i = 0; i < n; i++) {
        free(names[i]);
        tensor_free((tensor *)ts[i]);
    }
    free(names);
    free((void *)ts);
}
