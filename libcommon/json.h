/* json.h — JSON and JSON Lines input on jansson, with errors that name the
 * file, line and column. Config files (config.json, model_index.json) and
 * report files (JSONL) both come through here. */
#ifndef SYNTHCXR_JSON_H
#define SYNTHCXR_JSON_H

#include <jansson.h>
#include <stdio.h>

/* Parse a whole JSON file; dies naming path:line:column on a syntax error,
 * and the path on a missing file. */
json_t *json_load_path(const char *path);
/* Same, but returns NULL (no message) when the file does not exist. */
json_t *json_load_path_opt(const char *path);

/* JSON Lines: one value per line, blank lines skipped. */
typedef struct jsonl_reader {
    FILE *f;
    const char *name;   /* for messages: a path or "stdin" */
    long lineno;        /* line of the value last returned (1-based) */
    char *buf;
    size_t cap;
} jsonl_reader;

void jsonl_open(jsonl_reader *r, FILE *f, const char *name);
/* Next value, or NULL at end of input. A malformed line dies:
 * "prog: reports.jsonl:17: malformed JSON at column 5: ..." */
json_t *jsonl_next(jsonl_reader *r);
void jsonl_close(jsonl_reader *r);

/* Typed lookups in a config object, with a default when the key is absent
 * (or null). A present key of the wrong type dies naming the key and what. */
long json_get_int(const json_t *obj, const char *key, long dflt, const char *what);
double json_get_num(const json_t *obj, const char *key, double dflt, const char *what);
int json_get_bool(const json_t *obj, const char *key, int dflt, const char *what);
const char *json_get_str(const json_t *obj, const char *key, const char *dflt, const char *what);
/* Was the key present (and not null)? Schedulers need to know. */
int json_has(const json_t *obj, const char *key);

#endif
