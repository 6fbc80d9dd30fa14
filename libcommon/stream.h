/* stream.h — the cxrstream format (man 5 cxrstream): a header map, then one
 * msgpack map per record (id, meta, named tensors). The reader validates every
 * map fully and holds one record at a time, so a stream of any length runs in
 * memory bounded by its largest record; every error dies naming the stream,
 * the record number and its id. Metadata is a jansson object so that tools add
 * provenance with json_object_set_new and pass the rest through untouched.
 *
 * A filter (denoise, say) reads, works and writes one record at a time:
 *   stream_reader *in = stream_reader_open(stdin, "stdin");
 *   stream_expect_kind(in, "conditioning");
 *   stream_writer *out = stream_writer_open(stdout, "stdout");
 *   stream_header h;
 *   stream_header_derive(&h, stream_read_header(in), "latents", "denoise " SYNTHCXR_VERSION);
 *   stream_write_header(out, &h);
 *   record rec;
 *   record_init(&rec);
 *   while (stream_read_record(in, &rec)) {
 *       tensor *cond = record_require_tensor(&rec, "cond", DTYPE_F32, 2, (int64_t[]){77, -1});
 *       tensor_free(record_take_tensor(&rec, "cond"));      (after use: not passed on)
 *       record_add_tensor(&rec, "latents", latents);         (the record owns it now)
 *       json_object_set_new(rec.meta, "steps", json_integer(50));
 *       stream_write_record(out, &rec);
 *   }
 *   record_clear(&rec); stream_header_clear(&h);
 *   stream_writer_close(out); stream_reader_close(in);
 */
#ifndef SYNTHCXR_STREAM_H
#define SYNTHCXR_STREAM_H

#include "tensor.h"

#include <jansson.h>
#include <stdio.h>

#define STREAM_MAGIC "cxrstream"
#define STREAM_VERSION 1

typedef struct record_tensor {
    char *name;
    tensor *t;                 /* owned by the record */
} record_tensor;

/* A record; also the body of a header (then id is NULL). */
typedef struct record {
    char *id;                  /* owned; NULL in a header */
    json_t *meta;              /* a JSON object (owned reference); NULL is written as {} */
    int ntensors, cap;
    record_tensor *tensors;    /* in stream order */
    /* Top-level keys this version does not define, kept as packed msgpack
     * key/value pairs and written back verbatim (forward compatibility). */
    int nextra;
    char *extra;
    size_t extra_len;
    /* Where the record was read, for messages (src NULL when built in memory). */
    char *src;
    long index;                /* 1 = first record after the header; 0 = the header */
} record;

typedef struct stream_header {
    int version;               /* STREAM_VERSION */
    char *kind;                /* "conditioning", "latents", ... (owned) */
    char *producer;            /* "rep2lat 0.1.0" (owned; may be NULL when read) */
    record rec;                /* rec.meta: run-level meta; rec.tensors: header tensors */
} stream_header;

/* ---- records ------------------------------------------------------------- */

void record_init(record *rec);                       /* an empty record */
void record_clear(record *rec);                      /* frees the contents; empty again */
record *record_new(const char *id);                  /* heap record with meta {} */
void record_free(record *rec);                       /* NULL is fine */
void record_set_id(record *rec, const char *id);

/* The tensor called name, or NULL. */
tensor *record_find_tensor(const record *rec, const char *name);
/* The tensor called name, checked: dtype (DTYPE_INVALID = any), ndim (-1 = any)
 * and shape (NULL = any; an entry of -1 matches any size). Dies naming the
 * stream, record and tensor on a mismatch or when it is missing. */
tensor *record_require_tensor(const record *rec, const char *name, dtype_t dt, int ndim,
                              const int64_t *shape);
/* Adds t under name, taking ownership; replaces (and frees) one of that name. */
void record_add_tensor(record *rec, const char *name, tensor *t);
/* Detaches the tensor called name and hands it to the caller (NULL if absent). */
tensor *record_take_tensor(record *rec, const char *name);

/* "stdin: record 3 (id \"p10_s5\")", "stdin: header", or "record \"x\"" for
 * a record built in memory; into buf, returned. */
const char *record_where(const record *rec, char *buf, size_t n);

void stream_header_init(stream_header *h, const char *kind, const char *producer);
/* The header of a tool's output: its own kind and producer, with the input
 * header's meta (a deep copy) and unknown keys carried on, but not its
 * tensors (a tool that consumes them decides). in may be NULL (empty input). */
void stream_header_derive(stream_header *h, const stream_header *in, const char *kind, const char *producer);
void stream_header_clear(stream_header *h);

/* ---- reading --------------------------------------------------------------- */

typedef struct stream_reader stream_reader;

/* A reader over f; name is used in messages ("stdin", a path). When f has a
 * file descriptor the reader reads it with read(2), so each record is handed
 * on as soon as it has arrived through a pipe (fread would wait for a whole
 * chunk); f must not be read through stdio meanwhile. f is not closed. */
stream_reader *stream_reader_open(FILE *f, const char *name);
void stream_reader_close(stream_reader *r);

/* The header (owned by the reader), or NULL when the input is empty (zero
 * bytes: a valid stream with no records). Reads it on the first call. */
const stream_header *stream_read_header(stream_reader *r);
/* Dies unless the stream's kind is `kind`: "stdin: expected a conditioning
 * stream (from rep2lat), got latents (from denoise)". Empty input passes. */
void stream_expect_kind(stream_reader *r, const char *kind);
/* Clears rec and reads the next record into it; 1, or 0 at the end of the
 * stream. Reads the header first if that has not been done. */
int stream_read_record(stream_reader *r, record *rec);
/* Records read so far. */
long stream_reader_count(const stream_reader *r);

/* ---- writing ----------------------------------------------------------------- */

typedef struct stream_writer stream_writer;

stream_writer *stream_writer_open(FILE *f, const char *name);
/* The header first, exactly once; then records. Each call writes one map and
 * flushes, so a pipeline streams record by record; a write error dies. */
void stream_write_header(stream_writer *w, const stream_header *h);
void stream_write_record(stream_writer *w, const record *rec);
/* Flushes and frees the writer (f is not closed). */
void stream_writer_close(stream_writer *w);

/* Which program makes a kind ("rep2lat" for "conditioning"), or NULL. */
const char *stream_kind_producer(const char *kind);

#endif
