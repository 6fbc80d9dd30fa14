/* json.c — JSON files and JSON Lines with located errors. */
#include "json.h"
#include "common.h"

#include <errno.h>
#include <string.h>

static json_t *load(const char *path, int must_exist) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!must_exist && errno == ENOENT) return NULL;
        die("cannot open %s: %s", path, strerror(errno));
    }
    json_error_t err;
    json_t *j = json_loadf(f, JSON_DECODE_ANY, &err);
    fclose(f);
    if (!j) die("%s:%d: malformed JSON at column %d: %s", path, err.line, err.column, err.text);
    return j;
}

json_t *json_load_path(const char *path) { return load(path, 1); }
json_t *json_load_path_opt(const char *path) { return load(path, 0); }

void jsonl_open(jsonl_reader *r, FILE *f, const char *name) {
    memset(r, 0, sizeof *r);
    r->f = f;
    r->name = name;
}

json_t *jsonl_next(jsonl_reader *r) {
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) die("%s: read error after line %ld: %s", r->name, r->lineno, strerror(errno));
            return NULL;
        }
        r->lineno++;
        const char *p = r->buf;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue; /* blank line */
        if ((size_t)n != strlen(r->buf))
            die("%s:%ld: line contains a NUL byte", r->name, r->lineno);
        json_error_t err;
        json_t *j = json_loadb(r->buf, (size_t)n, JSON_DECODE_ANY, &err);
        if (!j) die("%s:%ld: malformed JSON at column %d: %s", r->name, r->lineno, err.column, err.text);
        return j;
    }
}

void jsonl_close(jsonl_reader *r) {
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

int json_has(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v);
}

long json_get_int(const json_t *obj, const char *key, long dflt, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return dflt;
    if (json_is_integer(v)) return (long)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) == (double)(long)json_real_value(v))
        return (long)json_real_value(v);
    die("%s: \"%s\" should be an integer", what, key);
}

double json_get_num(const json_t *obj, const char *key, double dflt, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_number(v)) die("%s: \"%s\" should be a number", what, key);
    return json_number_value(v);
}

int json_get_bool(const json_t *obj, const char *key, int dflt, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_boolean(v)) die("%s: \"%s\" should be true or false", what, key);
    return json_is_true(v);
}

const char *json_get_str(const json_t *obj, const char *key, const char *dflt, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_string(v)) die("%s: \"%s\" should be a string", what, key);
    return json_string_value(v);
}
