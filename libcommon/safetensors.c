/* safetensors.c — mmap reader with bounds checks, f32 loading, atomic writer.
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data;
 * each entry's data_offsets are relative to the end of the header. */
#include "safetensors.h"
#include "atomic_file.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; dtype_t dt; } st_dtypes[] = {
    {"F32", 4, DTYPE_F32}, {"F16", 2, DTYPE_F16}, {"BF16", 2, DTYPE_BF16},
    {"I32", 4, DTYPE_I32}, {"I64", 8, DTYPE_I64}, {"U8", 1, DTYPE_U8},
    {"F64", 8, DTYPE_INVALID}, {"I16", 2, DTYPE_INVALID}, {"I8", 1, DTYPE_INVALID},
    {"BOOL", 1, DTYPE_INVALID},
};

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static uint64_t read_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

st_file *st_open(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) die("cannot stat %s: %s", path, strerror(errno));
    size_t size = (size_t)sb.st_size;
    if (size < 8) die("%s: not a safetensors file (%zu bytes, too short for a header)", path, size);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) die("cannot map %s: %s", path, strerror(errno));

    const unsigned char *base = map;
    uint64_t hlen = read_le64(base);
    if (hlen > size - 8)
        die("%s: header length %llu runs past the end of the file (%zu bytes)", path,
            (unsigned long long)hlen, size);
    json_error_t jerr;
    json_t *hdr = json_loadb((const char *)base + 8, (size_t)hlen, 0, &jerr);
    if (!hdr) die("%s: header is not valid JSON (column %d): %s", path, jerr.column, jerr.text);
    if (!json_is_object(hdr)) die("%s: header is not a JSON object", path);

    st_file *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->map = map;
    f->size = size;
    f->header = hdr;
    f->entries = xcalloc(json_object_size(hdr) + 1, sizeof(st_entry));
    const unsigned char *data = base + 8 + hlen;
    size_t data_len = size - 8 - (size_t)hlen;

    const char *key;
    json_t *val;
    json_object_foreach(hdr, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) die("%s: __metadata__ is not an object", path);
            f->metadata = val;
            continue;
        }
        st_entry *e = &f->entries[f->n];
        e->name = key;
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) ||
            !json_is_array(jo) || json_array_size(jo) != 2)
            die("%s: tensor \"%s\": header entry needs dtype, shape and data_offsets", path, key);
        const char *dn = json_string_value(jd);
        size_t k, nd = sizeof st_dtypes / sizeof st_dtypes[0];
        for (k = 0; k < nd; k++)
            if (!strcmp(dn, st_dtypes[k].name)) break;
        if (k == nd) die("%s: tensor \"%s\": unsupported dtype \"%s\"", path, key, dn);
        snprintf(e->st_dtype, sizeof e->st_dtype, "%s", dn);
        e->dtype = st_dtypes[k].dt;
        e->elem_size = st_dtypes[k].size;
        if (json_array_size(js) > TENSOR_MAX_DIMS)
            die("%s: tensor \"%s\": %zu dimensions (at most %d)", path, key, json_array_size(js),
                TENSOR_MAX_DIMS);
        e->ndim = (int)json_array_size(js);
        for (int d = 0; d < e->ndim; d++) {
            json_t *x = json_array_get(js, (size_t)d);
            if (!json_is_integer(x) || json_integer_value(x) < 0)
                die("%s: tensor \"%s\": shape entry %d is not a non-negative integer", path, key, d);
            e->shape[d] = json_integer_value(x);
        }
        int64_t numel = shape_numel(e->ndim, e->shape);
        json_t *b0 = json_array_get(jo, 0), *b1 = json_array_get(jo, 1);
        if (numel < 0 || !json_is_integer(b0) || !json_is_integer(b1))
            die("%s: tensor \"%s\": bad shape or data_offsets", path, key);
        json_int_t begin = json_integer_value(b0), end = json_integer_value(b1);
        if (begin < 0 || end < begin || (uint64_t)end > data_len)
            die("%s: tensor \"%s\": data_offsets [%lld, %lld] outside the %zu data bytes", path, key,
                (long long)begin, (long long)end, data_len);
        if ((uint64_t)numel > SIZE_MAX / e->elem_size ||
            (size_t)(end - begin) != (size_t)numel * e->elem_size) {
            char sb2[96];
            die("%s: tensor \"%s\": %lld data bytes, but shape %s %s needs %lld", path, key,
                (long long)(end - begin), shape_str(sb2, sizeof sb2, e->ndim, e->shape), dn,
                (long long)numel * (long long)e->elem_size);
        }
        e->data = data + begin;
        e->nbytes = (size_t)(end - begin);
        f->n++;
    }
    qsort(f->entries, (size_t)f->n, sizeof(st_entry), entry_cmp);
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    munmap(f->map, f->size);
    json_decref(f->header);
    free(f->entries);
    free(f->path);
    free(f);
}

const st_entry *st_find(const st_file *f, const char *name) {
    st_entry key = {.name = name};
    return bsearch(&key, f->entries, (size_t)f->n, sizeof(st_entry), entry_cmp);
}

const st_entry *st_get(const st_file *f, const char *name) {
    const st_entry *e = st_find(f, name);
    if (!e) die("%s: missing tensor \"%s\"", f->path, name);
    return e;
}

static void check_shape(const st_file *f, const st_entry *e, int ndim, const int64_t *shape) {
    if (ndim < 0) return;
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
        char a[128], b[128];
        die("%s: tensor \"%s\" has shape %s, expected %s", f->path, e->name,
            shape_str(a, sizeof a, e->ndim, e->shape), shape_str(b, sizeof b, ndim, shape));
    }
}

/* Drops the mapped pages wholly inside [p, p + n) from the process: once a
 * tensor is copied out they only doubled the resident size while a model
 * loads (the UNet's 3.5 GB of f32 weights made a 6.6 GB peak). The mapping is
 * private and read-only, so a later access reads the file again; nothing is
 * lost. */
static void release_pages(const void *p, size_t n) {
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) / page * page, b = ((uintptr_t)p + n) / page * page;
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, float *out) {
    const st_entry *e = st_get(f, name);
    check_shape(f, e, ndim, shape);
    size_t n = e->nbytes / e->elem_size;
    if (e->dtype != DTYPE_INVALID) {
        if (e->dtype == DTYPE_F32) {
            memcpy(out, e->data, e->nbytes);
        } else {
            /* Copy first: the mapped data may be unaligned for its type. */
            void *tmp = xmalloc(e->nbytes);
            memcpy(tmp, e->data, e->nbytes);
            convert_to_f32(out, tmp, e->dtype, n);
            free(tmp);
        }
        release_pages(e->data, e->nbytes);
        return;
    }
    const unsigned char *p = e->data;
    for (size_t i = 0; i < n; i++, p += e->elem_size) {
        if (!strcmp(e->st_dtype, "F64")) { double v; memcpy(&v, p, 8); out[i] = (float)v; }
        else if (!strcmp(e->st_dtype, "I16")) { int16_t v; memcpy(&v, p, 2); out[i] = v; }
        else if (!strcmp(e->st_dtype, "I8")) { out[i] = (float)(int8_t)*p; }
        else { out[i] = *p ? 1.0f : 0.0f; } /* BOOL */
    }
}

tensor *st_load_f32(const st_file *f, const char *name, int ndim, const int64_t *shape) {
    const st_entry *e = st_get(f, name);
    check_shape(f, e, ndim, shape);
    tensor *t = tensor_new(DTYPE_F32, e->ndim, e->shape);
    st_read_f32(f, name, -1, NULL, t->data);
    return t;
}

tensor *st_load(const st_file *f, const char *name) {
    const st_entry *e = st_get(f, name);
    if (e->dtype == DTYPE_INVALID)
        die("%s: tensor \"%s\": dtype %s cannot be kept as is (load it as f32)", f->path, name,
            e->st_dtype);
    tensor *t = tensor_new(e->dtype, e->ndim, e->shape);
    memcpy(t->data, e->data, e->nbytes);
    return t;
}

static const char *st_name_of(dtype_t dt) {
    for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
        if (st_dtypes[k].dt == dt) return st_dtypes[k].name;
    die("safetensors: no file dtype for %s", dtype_name(dt));
}

void st_write(const char *path, int n, const char *const *names, const tensor *const *ts,
              const json_t *metadata) {
    json_t *hdr = json_object();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        CHECKF(ts[i]->mem == MEM_CPU, "st_write: tensor \"%s\" is not in CPU memory", names[i]);
        if (json_object_get(hdr, names[i])) die("%s: tensor name \"%s\" given twice", path, names[i]);
        json_t *shape = json_array();
        for (int d = 0; d < ts[i]->ndim; d++) json_array_append_new(shape, json_integer(ts[i]->shape[d]));
        size_t nb = tensor_nbytes(ts[i]);
        json_object_set_new(hdr, names[i],
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_name_of(ts[i]->dtype), "shape",
                                      shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    if (metadata) {
        /* The format allows only string values there; Python's reader refuses others. */
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)metadata, k, v)
            CHECKF(json_is_string(v), "st_write(%s): metadata \"%s\" is not a string", path, k);
        json_object_set(hdr, "__metadata__", (json_t *)metadata);
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    CHECK(text);
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;

    atomic_file a;
    atomic_open(&a, path);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(padded >> (8 * i));
    fwrite(le, 1, 8, a.f);
    fwrite(text, 1, hlen, a.f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', a.f);
    for (int i = 0; i < n; i++) fwrite(ts[i]->data, 1, tensor_nbytes(ts[i]), a.f);
    free(text);
    atomic_commit(&a);
}
