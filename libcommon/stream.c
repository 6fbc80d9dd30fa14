/* stream.c — the cxrstream reader and writer on msgpack-c (format: man 5
 * cxrstream). The reader feeds a msgpack_unpacker from the input in chunks,
 * turns each complete map into a validated record (tensor data copied into
 * aligned memory, meta into jansson) and releases the msgpack memory before
 * the next one, so memory stays near the size of the largest record. */
#include "stream.h"
#include "common.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cxrstream tensor data is little-endian; this reader copies it as is"
#endif

enum { READ_CHUNK = 64 * 1024 };

/* ---- small helpers ------------------------------------------------------- */

/* s (n bytes) quoted for a message: control characters escaped, long text cut. */
static const char *quote(char *buf, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 60) { o += (size_t)snprintf(buf + o, cap - o, "..."); break; }
        if (c == '"' || c == '\\') { buf[o++] = '\\'; buf[o++] = (char)c; }
        else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        else buf[o++] = (char)c;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

static const char *mp_type_name(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "positive integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative integer";
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin (binary data)";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown msgpack type";
}

static int mp_str_is(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

static const char *mp_quote(char *buf, size_t cap, const msgpack_object *o) {
    return quote(buf, cap, o->via.str.ptr, o->via.str.size);
}

/* ---- records --------------------------------------------------------------- */

void record_init(record *rec) { memset(rec, 0, sizeof *rec); }

void record_clear(record *rec) {
    free(rec->id);
    if (rec->meta) json_decref(rec->meta);
    for (int i = 0; i < rec->ntensors; i++) {
        free(rec->tensors[i].name);
        tensor_free(rec->tensors[i].t);
    }
    free(rec->tensors);
    free(rec->extra);
    free(rec->src);
    record_init(rec);
}

record *record_new(const char *id) {
    record *rec = xcalloc(1, sizeof *rec);
    if (id) rec->id = xstrdup(id);
    rec->meta = json_object();
    return rec;
}

void record_free(record *rec) {
    if (!rec) return;
    record_clear(rec);
    free(rec);
}

void record_set_id(record *rec, const char *id) {
    free(rec->id);
    rec->id = id ? xstrdup(id) : NULL;
}

const char *record_where(const record *rec, char *buf, size_t n) {
    char q[256] = "";
    if (rec->id) quote(q, sizeof q, rec->id, strlen(rec->id));
    if (!rec->src)
        snprintf(buf, n, rec->id ? "record %s" : "header", q);
    else if (rec->index == 0)
        snprintf(buf, n, "%s: header", rec->src);
    else if (rec->id)
        snprintf(buf, n, "%s: record %ld (id %s)", rec->src, rec->index, q);
    else
        snprintf(buf, n, "%s: record %ld", rec->src, rec->index);
    return buf;
}

static int tensor_index(const record *rec, const char *name) {
    for (int i = 0; i < rec->ntensors; i++)
        if (!strcmp(rec->tensors[i].name, name)) return i;
    return -1;
}

tensor *record_find_tensor(const record *rec, const char *name) {
    int i = tensor_index(rec, name);
    return i < 0 ? NULL : rec->tensors[i].t;
}

void record_add_tensor(record *rec, const char *name, tensor *t) {
    CHECK(name && t);
    int i = tensor_index(rec, name);
    if (i >= 0) {
        tensor_free(rec->tensors[i].t);
        rec->tensors[i].t = t;
        return;
    }
    if (rec->ntensors == rec->cap) {
        rec->cap = rec->cap ? 2 * rec->cap : 4;
        rec->tensors = xrealloc(rec->tensors, (size_t)rec->cap * sizeof *rec->tensors);
    }
    rec->tensors[rec->ntensors].name = xstrdup(name);
    rec->tensors[rec->ntensors].t = t;
    rec->ntensors++;
}

tensor *record_take_tensor(record *rec, const char *name) {
    int i = tensor_index(rec, name);
    if (i < 0) return NULL;
    tensor *t = rec->tensors[i].t;
    free(rec->tensors[i].name);
    memmove(rec->tensors + i, rec->tensors + i + 1, (size_t)(rec->ntensors - i - 1) * sizeof *rec->tensors);
    rec->ntensors--;
    return t;
}

tensor *record_require_tensor(const record *rec, const char *name, dtype_t dt, int ndim,
                              const int64_t *shape) {
    char where[512], got[256], want[256];
    tensor *t = record_find_tensor(rec, name);
    if (!t) {
        char have[1024] = "";
        size_t o = 0;
        for (int i = 0; i < rec->ntensors && o < sizeof have - 1; i++)
            o += (size_t)snprintf(have + o, sizeof have - o, "%s%s", i ? ", " : "", rec->tensors[i].name);
        die("%s: missing tensor \"%s\" (%s%s)", record_where(rec, where, sizeof where), name,
            rec->ntensors ? "it has: " : "it has no tensors", have);
    }
    if (dt != DTYPE_INVALID && t->dtype != dt)
        die("%s: tensor \"%s\" is %s, expected %s", record_where(rec, where, sizeof where), name,
            dtype_name(t->dtype), dtype_name(dt));
    int ok = ndim < 0 || t->ndim == ndim;
    for (int i = 0; ok && shape && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (!ok) {
        shape_str(got, sizeof got, t->ndim, t->shape);
        if (shape) {
            size_t o = 0;
            o += (size_t)snprintf(want + o, sizeof want - o, "[");
            for (int i = 0; i < ndim && o < sizeof want; i++)
                o += shape[i] >= 0
                         ? (size_t)snprintf(want + o, sizeof want - o, "%s%lld", i ? ", " : "", (long long)shape[i])
                         : (size_t)snprintf(want + o, sizeof want - o, "%s*", i ? ", " : "");
            if (o < sizeof want) snprintf(want + o, sizeof want - o, "]");
        } else {
            snprintf(want, sizeof want, "%d dimensions", ndim);
        }
        die("%s: tensor \"%s\" has shape %s, expected %s", record_where(rec, where, sizeof where), name,
            got, want);
    }
    return t;
}

void stream_header_init(stream_header *h, const char *kind, const char *producer) {
    memset(h, 0, sizeof *h);
    h->version = STREAM_VERSION;
    h->kind = xstrdup(kind);
    h->producer = producer ? xstrdup(producer) : NULL;
    h->rec.meta = json_object();
}

void stream_header_derive(stream_header *h, const stream_header *in, const char *kind, const char *producer) {
    stream_header_init(h, kind, producer);
    if (!in) return;
    if (in->rec.meta) {
        json_decref(h->rec.meta);
        h->rec.meta = json_deep_copy(in->rec.meta);
        CHECKF(h->rec.meta, "out of memory copying the header meta");
    }
    if (in->rec.extra_len) {
        h->rec.extra = xmalloc(in->rec.extra_len);
        memcpy(h->rec.extra, in->rec.extra, in->rec.extra_len);
        h->rec.extra_len = in->rec.extra_len;
        h->rec.nextra = in->rec.nextra;
    }
}

void stream_header_clear(stream_header *h) {
    free(h->kind);
    free(h->producer);
    record_clear(&h->rec);
    memset(h, 0, sizeof *h);
}

const char *stream_kind_producer(const char *kind) {
    if (!strcmp(kind, "conditioning")) return "rep2lat";
    if (!strcmp(kind, "latents")) return "denoise";
    if (!strcmp(kind, "pairs")) return "pairpack";
    return NULL;
}

/* ---- reader ------------------------------------------------------------------ */

struct stream_reader {
    FILE *f;
    int fd;                   /* fileno(f), or -1 (memory streams): then fread */
    char *name;
    msgpack_unpacker mp;
    msgpack_unpacked res;
    int eof;
    size_t fed;               /* bytes read from the input */
    size_t done;              /* bytes of the objects decoded so far */
    size_t last_size;         /* bytes of the last object */
    int first_byte;           /* for the hint on text input; -1 before any byte */
    int header_done;          /* 1 once the header (or empty input) was seen */
    int have_header;
    stream_header hdr;
    long count;               /* records read */
    json_t *meta_root;        /* meta being converted (reachable if a fault dies) */
    char where[512];          /* "stdin: record 3 (id \"x\")" for the map being read */
};

stream_reader *stream_reader_open(FILE *f, const char *name) {
    CHECK(f && name);
    stream_reader *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->fd = fileno(f);
    r->name = xstrdup(name);
    r->first_byte = -1;
    if (!msgpack_unpacker_init(&r->mp, READ_CHUNK)) die("%s: out of memory", name);
    msgpack_unpacked_init(&r->res);
    return r;
}

void stream_reader_close(stream_reader *r) {
    if (!r) return;
    msgpack_unpacked_destroy(&r->res);
    msgpack_unpacker_destroy(&r->mp);
    if (r->have_header) stream_header_clear(&r->hdr);
    free(r->name);
    free(r);
}

long stream_reader_count(const stream_reader *r) { return r->count; }

static void fill(stream_reader *r) {
    /* Room for a record the size of the last one at once: growing the buffer
     * chunk by chunk would reallocate (and copy) it many times per record. */
    size_t want = READ_CHUNK;
    size_t partial = msgpack_unpacker_message_size(&r->mp);
    if (r->last_size > partial && r->last_size - partial > want) want = r->last_size - partial;
    if (!msgpack_unpacker_reserve_buffer(&r->mp, want))
        die("%s: out of memory buffering the input", r->name);
    char *buf = msgpack_unpacker_buffer(&r->mp);
    size_t cap = msgpack_unpacker_buffer_capacity(&r->mp);
    size_t n;
    if (r->fd >= 0) {
        ssize_t k;
        do k = read(r->fd, buf, cap); while (k < 0 && errno == EINTR);
        if (k < 0) die("%s: read error: %s", r->name, strerror(errno));
        n = (size_t)k;
    } else {
        n = fread(buf, 1, cap, r->f);
        if (n == 0 && ferror(r->f)) die("%s: read error: %s", r->name, strerror(errno));
    }
    if (n == 0) { r->eof = 1; return; }
    if (r->first_byte < 0) r->first_byte = (unsigned char)buf[0];
    msgpack_unpacker_buffer_consumed(&r->mp, n);
    r->fed += n;
}

/* What the next map will be, for messages before it is parsed. */
static void where_next(stream_reader *r) {
    if (!r->header_done) snprintf(r->where, sizeof r->where, "%s: header", r->name);
    else snprintf(r->where, sizeof r->where, "%s: record %ld", r->name, r->count + 1);
}

/* The next complete msgpack object in r->res; 0 at a clean end of input. */
static int next_object(stream_reader *r) {
    msgpack_unpacked_destroy(&r->res);
    for (;;) {
        msgpack_unpack_return ret = msgpack_unpacker_next(&r->mp, &r->res);
        if (ret == MSGPACK_UNPACK_SUCCESS) {
            r->last_size = r->fed - (r->mp.used - r->mp.off) - r->done;
            r->done += r->last_size;
            return 1;
        }
        if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
            die("%s: cannot decode: a map or array declares more entries than memory allows, or "
                "containers nest more than %d deep (a corrupt stream?)", r->where, 32);
        if (ret != MSGPACK_UNPACK_CONTINUE) {
            size_t at = r->fed - (r->mp.used - r->mp.off);
            die("%s: not valid msgpack near byte %zu (a type byte msgpack does not define)",
                r->where, at);
        }
        if (r->eof) {
            size_t partial = msgpack_unpacker_message_size(&r->mp);
            if (partial > 0)
                die("%s: truncated: the input ends %zu byte%s into it, inside a msgpack object "
                    "(a cut-off transfer, or a writer that died?)", r->where, partial, partial == 1 ? "" : "s");
            return 0;
        }
        fill(r);
    }
}

/* Dies unless the msgpack string o is valid UTF-8 without NUL bytes. */
static void mp_str_check(stream_reader *r, const msgpack_object *o, const char *what) {
    if (memchr(o->via.str.ptr, 0, o->via.str.size)) die("%s: %s contains a NUL byte", r->where, what);
    json_t *utf8 = json_stringn(o->via.str.ptr, o->via.str.size); /* NULL unless valid UTF-8 */
    if (!utf8) die("%s: %s is not valid UTF-8", r->where, what);
    json_decref(utf8);
}

/* Copies a checked msgpack string into fresh memory. */
static char *mp_strdup(stream_reader *r, const msgpack_object *o, const char *what) {
    mp_str_check(r, o, what);
    char *s = xmalloc(o->via.str.size + 1);
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = 0;
    return s;
}

/* msgpack -> JSON for meta. Each value is attached to its parent (an array
 * when key is NULL) before its children are converted, so that all that was
 * built stays reachable from the root when a fault further in dies; path names
 * the key at fault ("meta.source[2]"). */
static void mp_attach(stream_reader *r, const msgpack_object *o, json_t *parent, const char *key, size_t klen,
                      char *path, size_t plen, size_t cap) {
    json_t *j = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: j = json_null(); break;
    case MSGPACK_OBJECT_BOOLEAN: j = json_boolean(o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            die("%s: %s is %llu, beyond the signed 64-bit range meta keeps", r->where, path,
                (unsigned long long)o->via.u64);
        j = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: j = json_integer((json_int_t)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            die("%s: %s is %g; meta holds JSON values, which have no NaN or infinity", r->where, path, o->via.f64);
        j = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        j = json_stringn(o->via.str.ptr, o->via.str.size);
        if (!j) die("%s: %s is not valid UTF-8", r->where, path);
        break;
    case MSGPACK_OBJECT_ARRAY: j = json_array(); break;
    case MSGPACK_OBJECT_MAP: j = json_object(); break;
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT:
        die("%s: %s is msgpack %s; meta holds only JSON-like values (binary data belongs in a tensor)",
            r->where, path, o->type == MSGPACK_OBJECT_BIN ? "bin" : "ext");
    }
    if (!j) die("%s: %s has an unknown msgpack type", r->where, path);
    if (key) {
        if (json_object_setn_new(parent, key, klen, j)) die("%s: %s: the key is not valid UTF-8", r->where, path);
    } else {
        json_array_append_new(parent, j);
    }
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            snprintf(path + plen, cap - plen, "[%u]", i);
            mp_attach(r, &o->via.array.ptr[i], j, NULL, 0, path, strlen(path), cap);
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            path[plen] = 0;
            if (k->type != MSGPACK_OBJECT_STR)
                die("%s: %s has a key that is a %s; meta keys are strings", r->where, path, mp_type_name(k));
            const char *kp = k->via.str.ptr;
            size_t kn = k->via.str.size;
            snprintf(path + plen, cap - plen, ".%.*s", (int)(kn < 80 ? kn : 80), kp);
            if (memchr(kp, 0, kn)) die("%s: a key in %.*s contains a NUL byte", r->where, (int)plen, path);
            if (json_object_getn(j, kp, kn)) die("%s: %s appears twice", r->where, path);
            mp_attach(r, &o->via.map.ptr[i].val, j, kp, kn, path, strlen(path), cap);
        }
    }
    path[plen] = 0;
}

/* The meta map as a JSON object; r->meta_root keeps it reachable meanwhile. */
static json_t *read_meta(stream_reader *r, const msgpack_object *o) {
    if (o->type != MSGPACK_OBJECT_MAP) die("%s: \"meta\" is a %s, not a map", r->where, mp_type_name(o));
    char path[1024] = "meta";
    json_t *holder = json_array();
    r->meta_root = holder;
    mp_attach(r, o, holder, NULL, 0, path, strlen(path), sizeof path);
    json_t *meta = json_incref(json_array_get(holder, 0));
    json_decref(holder);
    r->meta_root = NULL;
    return meta;
}

static void read_tensor(stream_reader *r, record *rec, const msgpack_object *k, const msgpack_object *v) {
    char q[256], s[256];
    if (k->type != MSGPACK_OBJECT_STR)
        die("%s: a tensor name is a %s, not a string", r->where, mp_type_name(k));
    mp_str_check(r, k, "a tensor name");
    mp_quote(q, sizeof q, k);
    if (!k->via.str.size) die("%s: a tensor has an empty name", r->where);
    for (int i = 0; i < rec->ntensors; i++)
        if (strlen(rec->tensors[i].name) == k->via.str.size && !memcmp(rec->tensors[i].name, k->via.str.ptr, k->via.str.size))
            die("%s: tensor %s appears twice", r->where, q);
    if (v->type != MSGPACK_OBJECT_MAP)
        die("%s: tensor %s is a %s, not a map of dtype, shape and data", r->where, q, mp_type_name(v));
    const msgpack_object *dt = NULL, *shape = NULL, *data = NULL;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *kk = &v->via.map.ptr[i].key, *vv = &v->via.map.ptr[i].val;
        const msgpack_object **slot = mp_str_is(kk, "dtype") ? &dt : mp_str_is(kk, "shape") ? &shape
                                    : mp_str_is(kk, "data") ? &data : NULL;
        if (!slot) {
            if (kk->type == MSGPACK_OBJECT_STR)
                die("%s: tensor %s: unknown key %s (a tensor has dtype, shape and data)", r->where, q,
                    mp_quote(s, sizeof s, kk));
            die("%s: tensor %s: a key is a %s, not a string", r->where, q, mp_type_name(kk));
        }
        if (*slot) die("%s: tensor %s: key %s appears twice", r->where, q, mp_quote(s, sizeof s, kk));
        *slot = vv;
    }
    if (!dt) die("%s: tensor %s: missing \"dtype\"", r->where, q);
    if (!shape) die("%s: tensor %s: missing \"shape\"", r->where, q);
    if (!data) die("%s: tensor %s: missing \"data\"", r->where, q);
    if (dt->type != MSGPACK_OBJECT_STR)
        die("%s: tensor %s: dtype is a %s, not a string", r->where, q, mp_type_name(dt));
    char dts[16] = "";
    if (dt->via.str.size < sizeof dts) memcpy(dts, dt->via.str.ptr, dt->via.str.size);
    dtype_t dtype = dt->via.str.size < sizeof dts && !memchr(dts, 0, dt->via.str.size) ? dtype_from_name(dts)
                                                                                        : DTYPE_INVALID;
    if (dtype == DTYPE_INVALID)
        die("%s: tensor %s: unknown dtype %s (known: f32, f16, bf16, i32, i64, u8)", r->where, q,
            mp_quote(s, sizeof s, dt));
    if (shape->type != MSGPACK_OBJECT_ARRAY)
        die("%s: tensor %s: shape is a %s, not an array", r->where, q, mp_type_name(shape));
    if (shape->via.array.size > TENSOR_MAX_DIMS)
        die("%s: tensor %s: shape has %u dimensions (at most %d)", r->where, q, shape->via.array.size,
            TENSOR_MAX_DIMS);
    int ndim = (int)shape->via.array.size;
    int64_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        const msgpack_object *e = &shape->via.array.ptr[i];
        if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            die("%s: tensor %s: shape entry %d is %lld (negative)", r->where, q, i, (long long)e->via.i64);
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            die("%s: tensor %s: shape entry %d is a %s, not an integer", r->where, q, i, mp_type_name(e));
        if (e->via.u64 > (uint64_t)INT64_MAX)
            die("%s: tensor %s: shape entry %d is too large", r->where, q, i);
        dims[i] = (int64_t)e->via.u64;
    }
    int64_t numel = shape_numel(ndim, dims);
    size_t esize = dtype_size(dtype);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / esize)
        die("%s: tensor %s: shape %s is too large", r->where, q, shape_str(s, sizeof s, ndim, dims));
    size_t need = (size_t)numel * esize;
    if (data->type != MSGPACK_OBJECT_BIN)
        die("%s: tensor %s: data is a %s, not bin", r->where, q, mp_type_name(data));
    if (data->via.bin.size != need)
        die("%s: tensor %s: %u bytes of data, but shape %s %s needs %zu", r->where, q, data->via.bin.size,
            shape_str(s, sizeof s, ndim, dims), dtype_name(dtype), need);
    /* A copy in aligned memory the kernels can use; the msgpack buffer goes with the record. */
    tensor *t = tensor_view(dtype, ndim, dims, NULL);
    t->data = xmalloc_aligned(need);
    t->owns = 1;
    if (need) memcpy(t->data, data->via.bin.ptr, need);
    char *name = mp_strdup(r, k, "a tensor name");
    record_add_tensor(rec, name, t);
    free(name);
}

static void read_tensors(stream_reader *r, record *rec, const msgpack_object *o) {
    if (o->type != MSGPACK_OBJECT_MAP)
        die("%s: \"tensors\" is a %s, not a map of name to tensor", r->where, mp_type_name(o));
    for (uint32_t i = 0; i < o->via.map.size; i++) read_tensor(r, rec, &o->via.map.ptr[i].key, &o->via.map.ptr[i].val);
}

/* Packer sink appending to the record's extra buffer. */
static int extra_append(void *data, const char *buf, size_t len) {
    record *rec = data;
    rec->extra = xrealloc(rec->extra, rec->extra_len + len);
    memcpy(rec->extra + rec->extra_len, buf, len);
    rec->extra_len += len;
    return 0;
}

static void keep_extra(record *rec, const msgpack_object *k, const msgpack_object *v) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, rec, extra_append);
    msgpack_pack_object(&pk, *k);
    msgpack_pack_object(&pk, *v);
    rec->nextra++;
}

/* Top-level keys of a header or record: strings, each once. */
static void check_keys(stream_reader *r, const msgpack_object *o) {
    char s[256];
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) die("%s: a key is a %s, not a string", r->where, mp_type_name(k));
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *k2 = &o->via.map.ptr[j].key;
            if (k2->via.str.size == k->via.str.size && !memcmp(k2->via.str.ptr, k->via.str.ptr, k->via.str.size))
                die("%s: key %s appears twice", r->where, mp_quote(s, sizeof s, k));
        }
    }
}

static const msgpack_object *map_get(const msgpack_object *o, const char *key) {
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (mp_str_is(&o->via.map.ptr[i].key, key)) return &o->via.map.ptr[i].val;
    return NULL;
}

static void read_header(stream_reader *r) {
    char s[256];
    r->header_done = 1;
    snprintf(r->where, sizeof r->where, "%s: header", r->name);
    if (!next_object(r)) return; /* empty input: a valid stream with no records */
    const msgpack_object *o = &r->res.data;
    if (o->type != MSGPACK_OBJECT_MAP) {
        const char *hint = r->first_byte == '{' || r->first_byte == '['
                               ? " (it looks like JSON text; a cxrstream is binary msgpack)"
                           : r->first_byte >= 0x20 && r->first_byte < 0x7f ? " (it looks like text)" : "";
        die("%s: not a cxrstream: the input starts with a msgpack %s, not a header map%s", r->name,
            mp_type_name(o), hint);
    }
    check_keys(r, o);
    const msgpack_object *magic = map_get(o, "magic");
    if (!magic) {
        const msgpack_object *id = map_get(o, "id");
        if (id && id->type == MSGPACK_OBJECT_STR)
            die("%s: header missing: the first map is a record (id %s); a stream starts with a header "
                "whose magic is \"" STREAM_MAGIC "\"", r->name, mp_quote(s, sizeof s, id));
        die("%s: header missing: the first map has no \"magic\" key (not a cxrstream?)", r->name);
    }
    if (magic->type != MSGPACK_OBJECT_STR) die("%s: magic is a %s, not a string", r->where, mp_type_name(magic));
    if (!mp_str_is(magic, STREAM_MAGIC))
        die("%s: magic is %s, expected \"" STREAM_MAGIC "\" (not a cxrstream)", r->where,
            mp_quote(s, sizeof s, magic));
    const msgpack_object *ver = map_get(o, "version");
    if (!ver) die("%s: missing \"version\"", r->where);
    if (ver->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        die("%s: version is a %s, not a positive integer", r->where, mp_type_name(ver));
    if (ver->via.u64 != STREAM_VERSION)
        die("%s: unsupported version %llu (this program reads version %d)", r->where,
            (unsigned long long)ver->via.u64, STREAM_VERSION);
    stream_header *h = &r->hdr;
    memset(h, 0, sizeof *h);
    r->have_header = 1;
    h->version = STREAM_VERSION;
    h->rec.src = xstrdup(r->name);
    h->rec.index = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (mp_str_is(k, "magic") || mp_str_is(k, "version")) continue;
        if (mp_str_is(k, "kind") || mp_str_is(k, "producer")) {
            if (v->type != MSGPACK_OBJECT_STR)
                die("%s: %s is a %s, not a string", r->where, mp_quote(s, sizeof s, k), mp_type_name(v));
            char *str = mp_strdup(r, v, mp_str_is(k, "kind") ? "kind" : "producer");
            if (mp_str_is(k, "kind")) h->kind = str; else h->producer = str;
        } else if (mp_str_is(k, "meta")) {
            h->rec.meta = read_meta(r, v);
        } else if (mp_str_is(k, "tensors")) {
            read_tensors(r, &h->rec, v);
        } else {
            keep_extra(&h->rec, k, v);
        }
    }
    if (!h->kind) die("%s: missing \"kind\"", r->where);
    if (!*h->kind) die("%s: \"kind\" is empty", r->where);
    if (!h->rec.meta) h->rec.meta = json_object();
    msgpack_unpacked_destroy(&r->res);
}

const stream_header *stream_read_header(stream_reader *r) {
    if (!r->header_done) read_header(r);
    return r->have_header ? &r->hdr : NULL;
}

void stream_expect_kind(stream_reader *r, const char *kind) {
    const stream_header *h = stream_read_header(r);
    if (!h || !strcmp(h->kind, kind)) return;
    char want[128] = "", got[256] = "", q[256];
    const char *wp = stream_kind_producer(kind);
    if (wp) snprintf(want, sizeof want, " (from %s)", wp);
    const char *gp = h->producer ? h->producer : stream_kind_producer(h->kind);
    if (gp) snprintf(got, sizeof got, " (from %s)", gp);
    /* A well-formed kind is a plain word; anything else is shown quoted. */
    const char *k = h->kind;
    for (const char *p = k; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\') { k = quote(q, sizeof q, h->kind, strlen(h->kind)); break; }
    die("%s: expected a %s stream%s, got %s%s", r->name, kind, want, k, got);
}

int stream_read_record(stream_reader *r, record *rec) {
    char s[256];
    if (!r->header_done) read_header(r);
    record_clear(rec);
    where_next(r);
    if (!r->have_header) return 0; /* empty input */
    if (!next_object(r)) return 0;
    r->count++;
    const msgpack_object *o = &r->res.data;
    if (o->type != MSGPACK_OBJECT_MAP) die("%s: a msgpack %s, not a map", r->where, mp_type_name(o));
    /* Name the id in every message about this record, if it has a usable one. */
    const msgpack_object *id = map_get(o, "id");
    if (id && id->type == MSGPACK_OBJECT_STR)
        snprintf(r->where, sizeof r->where, "%s: record %ld (id %s)", r->name, r->count, mp_quote(s, sizeof s, id));
    check_keys(r, o);
    if (map_get(o, "magic"))
        die("%s: a second header inside the stream (two streams joined with cat? a stream has one header)",
            r->where);
    if (!id) die("%s: missing \"id\"", r->where);
    if (id->type != MSGPACK_OBJECT_STR) die("%s: \"id\" is a %s, not a string", r->where, mp_type_name(id));
    rec->src = xstrdup(r->name);
    rec->index = r->count;
    rec->id = mp_strdup(r, id, "the id");
    if (!*rec->id) die("%s: the id is empty", r->where);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (mp_str_is(k, "id")) continue;
        if (mp_str_is(k, "meta")) rec->meta = read_meta(r, v);
        else if (mp_str_is(k, "tensors")) read_tensors(r, rec, v);
        else keep_extra(rec, k, v);
    }
    if (!rec->meta) rec->meta = json_object();
    msgpack_unpacked_destroy(&r->res); /* the msgpack copy goes now, before the caller works */
    return 1;
}

/* ---- writer -------------------------------------------------------------------- */

struct stream_writer {
    FILE *f;
    char *name;
    msgpack_packer pk;
    int failed;               /* a short fwrite; errno kept in err */
    int err;
    int header_written;
    long count;
};

static int writer_sink(void *data, const char *buf, size_t len) {
    stream_writer *w = data;
    if (len && fwrite(buf, 1, len, w->f) != len) {
        if (!w->failed) w->err = errno;
        w->failed = 1;
        return -1;
    }
    return 0;
}

stream_writer *stream_writer_open(FILE *f, const char *name) {
    CHECK(f && name);
    stream_writer *w = xcalloc(1, sizeof *w);
    w->f = f;
    w->name = xstrdup(name);
    msgpack_packer_init(&w->pk, w, writer_sink);
    return w;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str(pk, n);
    if (n) msgpack_pack_str_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s) { pack_str(pk, s, strlen(s)); }

static void pack_json(msgpack_packer *pk, const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, key, v) {
            pack_cstr(pk, key);
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++) pack_json(pk, json_array_get(j, i));
        break;
    case JSON_STRING: pack_str(pk, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: msgpack_pack_int64(pk, (int64_t)json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

static void pack_meta(stream_writer *w, const record *rec, const char *where) {
    pack_cstr(&w->pk, "meta");
    if (!rec->meta) { msgpack_pack_map(&w->pk, 0); return; }
    if (!json_is_object(rec->meta)) die("%s: %s: meta is not a JSON object", w->name, where);
    pack_json(&w->pk, rec->meta);
}

static void pack_tensors(stream_writer *w, const record *rec, const char *where) {
    pack_cstr(&w->pk, "tensors");
    msgpack_pack_map(&w->pk, (size_t)rec->ntensors);
    for (int i = 0; i < rec->ntensors; i++) {
        const tensor *t = rec->tensors[i].t;
        if (t->mem != MEM_CPU)
            die("%s: %s: tensor \"%s\" is in GPU memory; copy it to the CPU before writing", w->name, where,
                rec->tensors[i].name);
        size_t n = tensor_nbytes(t);
        if (n > UINT32_MAX)
            die("%s: %s: tensor \"%s\" has %zu bytes; a msgpack bin holds at most 4 GiB", w->name, where,
                rec->tensors[i].name, n);
        CHECK(n == 0 || t->data);
        pack_cstr(&w->pk, rec->tensors[i].name);
        msgpack_pack_map(&w->pk, 3);
        pack_cstr(&w->pk, "dtype");
        pack_cstr(&w->pk, dtype_name(t->dtype));
        pack_cstr(&w->pk, "shape");
        msgpack_pack_array(&w->pk, (size_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) msgpack_pack_int64(&w->pk, t->shape[d]);
        pack_cstr(&w->pk, "data");
        msgpack_pack_bin(&w->pk, n);
        if (n) msgpack_pack_bin_body(&w->pk, t->data, n);
    }
}

static void writer_flush(stream_writer *w) {
    if (fflush(w->f) != 0 && !w->failed) { w->failed = 1; w->err = errno; }
    if (w->failed) die("%s: write error: %s", w->name, strerror(w->err));
}

void stream_write_header(stream_writer *w, const stream_header *h) {
    CHECKF(!w->header_written, "%s: stream_write_header called twice", w->name);
    CHECKF(h->kind && *h->kind, "%s: a stream header needs a kind", w->name);
    w->header_written = 1;
    msgpack_pack_map(&w->pk, (size_t)(5 + (h->producer != NULL) + h->rec.nextra));
    pack_cstr(&w->pk, "magic");
    pack_cstr(&w->pk, STREAM_MAGIC);
    pack_cstr(&w->pk, "version");
    msgpack_pack_int(&w->pk, STREAM_VERSION);
    pack_cstr(&w->pk, "kind");
    pack_cstr(&w->pk, h->kind);
    if (h->producer) {
        pack_cstr(&w->pk, "producer");
        pack_cstr(&w->pk, h->producer);
    }
    pack_meta(w, &h->rec, "header");
    pack_tensors(w, &h->rec, "header");
    if (h->rec.extra_len) writer_sink(w, h->rec.extra, h->rec.extra_len);
    writer_flush(w);
}

void stream_write_record(stream_writer *w, const record *rec) {
    char where[512];
    CHECKF(w->header_written, "%s: a record written before the header", w->name);
    w->count++;
    if (!rec->id || !*rec->id) die("%s: record %ld has no id", w->name, w->count);
    snprintf(where, sizeof where, "record %ld", w->count);
    msgpack_pack_map(&w->pk, (size_t)(3 + rec->nextra));
    pack_cstr(&w->pk, "id");
    pack_cstr(&w->pk, rec->id);
    pack_meta(w, rec, where);
    pack_tensors(w, rec, where);
    if (rec->extra_len) writer_sink(w, rec->extra, rec->extra_len);
    writer_flush(w);
}

void stream_writer_close(stream_writer *w) {
    if (!w) return;
    writer_flush(w);
    free(w->name);
    free(w);
}
