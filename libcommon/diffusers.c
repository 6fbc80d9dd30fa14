/* diffusers.c — resolving a diffusers model folder to its config and weight
 * files. Nothing is loaded here but JSON; the weights are opened by the
 * caller with st_open. */
#include "diffusers.h"
#include "common.h"
#include "json.h"

#include <dirent.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A growing ", "-separated list for messages. */
typedef struct strlist {
    char *s;
} strlist;
static void strlist_add(strlist *l, const char *item) {
    char *n = l->s ? xasprintf("%s, %s", l->s, item) : xstrdup(item);
    free(l->s);
    l->s = n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The resolving context: how messages name things. */
typedef struct ctx {
    const char *root;     /* "<root>" for messages: "<root>/: ..." */
    const char *dir;      /* the part's folder */
    const char *prefix;   /* "unet/" or "" for a lone part folder */
    const char *label;    /* "unet " or "" */
    void (*cleanup)(void *); /* frees what is being resolved before dying */
    void *cleanup_arg;
} ctx;

/* die() after freeing what the resolver holds: the message is formatted
 * first, since its arguments may point into that memory. */
static void fail(const ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail(const ctx *c, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cleanup) c->cleanup(c->cleanup_arg);
    die("%s", msg);
}

/* Reads a sharded checkpoint's index; fills weight_paths with its shards. */
static void resolve_shards(diffusers_part *p, const ctx *c, const char *index_name) {
    p->index_path = xasprintf("%s/%s", c->dir, index_name);
    p->index = json_load_path(p->index_path);
    json_t *map = json_is_object(p->index) ? json_object_get(p->index, "weight_map") : NULL;
    if (!json_is_object(map) || json_object_size(map) == 0)
        fail(c, "%s/: %s%s has no \"weight_map\" object naming the shards", c->root, c->prefix, index_name);
    p->weight_map = map;
    size_t n = json_object_size(map), k = 0;
    const char **names = xmalloc(n * sizeof *names);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || !strcmp(f, "..") || !ends_with(f, ".safetensors")) {
            free(names);
            fail(c, "%s/: %s%s: tensor \"%s\" maps to %s, not a .safetensors file in the same folder", c->root,
                c->prefix, index_name, key, f ? f : "a non-string");
        }
        names[k++] = f;
    }
    qsort(names, n, sizeof *names, cmp_str);
    p->weight_paths = xmalloc(n * sizeof *p->weight_paths);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !strcmp(names[i], names[i - 1])) continue;
        char *path = xasprintf("%s/%s", c->dir, names[i]);
        p->weight_paths[p->n_weights++] = path; /* owned by p from here, freed by the cleanup */
        if (!is_file(path)) {
            char shard[1024];
            snprintf(shard, sizeof shard, "%s", names[i]);
            free(names);
            fail(c, "%s/: %s%s names shard %s%s, which is missing", c->root, c->prefix, index_name, c->prefix, shard);
        }
    }
    free(names);
}

/* Names pickle-format weights in the folder, if there are any ("a.bin, b.ckpt"). */
static char *pickle_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    strlist l = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (ends_with(e->d_name, ".bin") || ends_with(e->d_name, ".ckpt") || ends_with(e->d_name, ".pt") ||
            ends_with(e->d_name, ".pth"))
            strlist_add(&l, e->d_name);
    closedir(d);
    return l.s;
}

static void resolve_weights(diffusers_part *p, const ctx *c, diffusers_pref pref) {
    /* transformers names its weights model.safetensors, diffusers
     * diffusion_pytorch_model.safetensors; an unknown library may use either. */
    const char *bases[2];
    int nb = 0;
    if (!p->library || strcmp(p->library, "transformers")) bases[nb++] = "diffusion_pytorch_model";
    if (!p->library || strcmp(p->library, "diffusers")) bases[nb++] = "model";
    strlist looked = {0}, looked_index = {0};
    for (int b = 0; b < nb; b++) {
        for (int pass = 0; pass < 2; pass++) {
            int fp16 = pref == DIFFUSERS_PREFER_FP16 ? pass == 0 : pass == 1;
            /* The variant goes before the last extension, as diffusers and transformers name it. */
            /* Stack buffers: resolve_shards may fail() while these are in use. */
            char single[128], index[128], spath[PATH_MAX], ipath[PATH_MAX];
            snprintf(single, sizeof single, "%s%s.safetensors", bases[b], fp16 ? ".fp16" : "");
            snprintf(index, sizeof index, "%s.safetensors.index%s.json", bases[b], fp16 ? ".fp16" : "");
            snprintf(spath, sizeof spath, "%s/%s", c->dir, single);
            snprintf(ipath, sizeof ipath, "%s/%s", c->dir, index);
            int found = 0;
            if (is_file(spath)) {
                p->weight_paths = xmalloc(sizeof *p->weight_paths);
                p->weight_paths[0] = xstrdup(spath);
                p->n_weights = 1;
                found = 1;
            } else if (is_file(ipath)) {
                free(looked.s);
                free(looked_index.s);
                looked.s = looked_index.s = NULL;
                resolve_shards(p, c, index);
                found = 1;
            } else {
                char *a = xasprintf("%s%s", c->prefix, single), *i2 = xasprintf("%s%s", c->prefix, index);
                strlist_add(&looked, a);
                strlist_add(&looked_index, i2);
                free(a);
                free(i2);
            }
            if (found) {
                p->fp16_variant = fp16;
                free(looked.s);
                free(looked_index.s);
                return;
            }
        }
    }
    char msg[3072];
    char *pk = pickle_files(c->dir);
    if (pk)
        snprintf(msg, sizeof msg, "%s/: %sweights are only in PyTorch pickle format (%s%s); safetensors is required: "
                 "convert them, e.g. with diffusers' save_pretrained(..., safe_serialization=True)",
                 c->root, c->label, c->prefix, pk);
    else
        snprintf(msg, sizeof msg, "%s/: no %sweights: looked for %s, or a shard index %s", c->root, c->label, looked.s,
                 looked_index.s);
    free(pk);
    free(looked.s);
    free(looked_index.s);
    fail(c, "%s", msg);
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* Fills p (name, library, class_name set) from its folder. */
static void resolve_part(diffusers_part *p, const ctx *c, diffusers_pref pref) {
    if (!is_dir(c->dir)) fail(c, "%s/: no %s folder (model_index.json lists the part)", c->root, p->name);
    int scheduler = contains(p->class_name, "Scheduler") || (!p->class_name && contains(p->name, "scheduler"));
    int tokenizer = contains(p->class_name, "Tokenizer") || (!p->class_name && contains(p->name, "tokenizer"));
    int processor = contains(p->class_name, "ImageProcessor") || contains(p->class_name, "FeatureExtractor") ||
                    (!p->class_name && contains(p->name, "feature_extractor"));
    if (scheduler) {
        p->config_path = xasprintf("%s/scheduler_config.json", c->dir);
        if (!is_file(p->config_path)) fail(c, "%s/: no %sconfig: looked for %sscheduler_config.json", c->root, c->label, c->prefix);
    } else if (tokenizer || processor) {
        p->config_path = xasprintf("%s/%s", c->dir, tokenizer ? "tokenizer_config.json" : "preprocessor_config.json");
        if (!is_file(p->config_path)) {
            free(p->config_path);
            p->config_path = NULL; /* optional: a tokenizer is its vocabulary files */
        }
    } else {
        p->config_path = xasprintf("%s/config.json", c->dir);
        if (!is_file(p->config_path)) fail(c, "%s/: no %sconfig: looked for %sconfig.json", c->root, c->label, c->prefix);
    }
    if (p->config_path) {
        p->config = json_load_path(p->config_path);
        if (!json_is_object(p->config)) fail(c, "%s: not a JSON object", p->config_path);
    }
    if (!scheduler && !tokenizer && !processor) resolve_weights(p, c, pref);
}

static char *strip_slashes(const char *path) {
    char *r = xstrdup(path);
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') r[--n] = 0;
    return r;
}

/* "org/name" from ".../models--org--name/snapshots/<hash>", else NULL. */
static char *hub_cache_name(const char *real) {
    const char *s = strstr(real, "/models--");
    if (!s) return NULL;
    s += strlen("/models--");
    const char *end = strchr(s, '/');
    if (!end || strncmp(end, "/snapshots/", 11)) return NULL;
    char *name = xasprintf("%.*s", (int)(end - s), s);
    char *sep = strstr(name, "--");
    if (sep) {
        *sep = '/';
        memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
    }
    return name;
}

static char *display_name(const char *root, const json_t *index) {
    const char *nop = index ? json_string_value(json_object_get(index, "_name_or_path")) : NULL;
    if (nop && *nop) return xstrdup(nop);
    char real[PATH_MAX];
    const char *base = root;
    if (realpath(root, real)) {
        char *hub = hub_cache_name(real);
        if (hub) return hub;
        base = real;
    }
    const char *slash = strrchr(base, '/');
    return xstrdup(slash && slash[1] ? slash + 1 : base);
}

diffusers_model *diffusers_open(const char *root, diffusers_pref pref) {
    /* Checked before anything is allocated, so dying leaves nothing behind. */
    char rootbuf[PATH_MAX], ipath[PATH_MAX + 32];
    snprintf(rootbuf, sizeof rootbuf, "%s", root);
    size_t rl = strlen(rootbuf);
    while (rl > 1 && rootbuf[rl - 1] == '/') rootbuf[--rl] = 0;
    if (!is_dir(rootbuf)) die("%s/: no such model folder", rootbuf);
    snprintf(ipath, sizeof ipath, "%s/model_index.json", rootbuf);
    json_t *index = json_load_path_opt(ipath);
    if (!index) die("%s/: no model_index.json: not a diffusers pipeline folder", rootbuf);
    if (!json_is_object(index)) {
        json_decref(index);
        die("%s: not a JSON object", ipath);
    }
    diffusers_model *m = xcalloc(1, sizeof *m);
    m->root = xstrdup(rootbuf);
    m->pref = pref;
    m->index = index;
    const char *cls = json_string_value(json_object_get(m->index, "_class_name"));
    m->class_name = cls ? xstrdup(cls) : NULL;
    m->name = display_name(m->root, m->index);
    /* Parts: every key not starting with "_" whose value is [library, class]
     * with non-null entries (an absent safety checker is [null, null]). */
    size_t n = json_object_size(m->index);
    m->part_names = xcalloc(n + 1, sizeof *m->part_names);
    m->parts = xcalloc(n + 1, sizeof *m->parts);
    const char *key;
    json_t *v;
    json_object_foreach(m->index, key, v) {
        if (key[0] == '_' || !json_is_array(v) || json_array_size(v) != 2) continue;
        if (!json_is_string(json_array_get(v, 0)) || !json_is_string(json_array_get(v, 1))) continue;
        m->part_names[m->n_parts++] = xstrdup(key);
    }
    return m;
}

int diffusers_has_part(const diffusers_model *m, const char *name) {
    for (int i = 0; i < m->n_parts; i++)
        if (!strcmp(m->part_names[i], name)) return 1;
    return 0;
}

/* What a resolution in progress holds, for fail()'s cleanup. */
typedef struct pending {
    diffusers_part *p;
    char *prefix, *label, *root;
} pending;

static void pending_free(void *arg) {
    pending *q = arg;
    diffusers_part_free(q->p);
    free(q->prefix), free(q->label), free(q->root);
    q->p = NULL;
    q->prefix = q->label = q->root = NULL;
}

const diffusers_part *diffusers_part_get(diffusers_model *m, const char *name) {
    int i = 0;
    while (i < m->n_parts && strcmp(m->part_names[i], name)) i++;
    if (i == m->n_parts) die("%s/: model_index.json has no part \"%s\"", m->root, name);
    if (m->parts[i]) return m->parts[i];
    diffusers_part *p = xcalloc(1, sizeof *p);
    json_t *v = json_object_get(m->index, name);
    p->name = xstrdup(name);
    p->library = xstrdup(json_string_value(json_array_get(v, 0)));
    p->class_name = xstrdup(json_string_value(json_array_get(v, 1)));
    p->dir = xasprintf("%s/%s", m->root, name);
    pending q = {p, xasprintf("%s/", name), xasprintf("%s ", name), NULL};
    ctx c = {m->root, p->dir, q.prefix, q.label, pending_free, &q};
    resolve_part(p, &c, m->pref);
    free(q.prefix);
    free(q.label);
    m->parts[i] = p;
    return p;
}

char *diffusers_file(const diffusers_model *m, const char *part, const char *file) {
    char *path = xasprintf("%s/%s/%s", m->root, part, file);
    if (!is_file(path)) {
        free(path);
        die("%s/: no %s/%s", m->root, part, file);
    }
    return path;
}

diffusers_part *diffusers_part_open(const char *dir, diffusers_pref pref) {
    diffusers_part *p = xcalloc(1, sizeof *p);
    char *root = strip_slashes(dir);
    const char *slash = strrchr(root, '/');
    p->name = xstrdup(slash && slash[1] ? slash + 1 : root);
    p->dir = xstrdup(root);
    pending q = {p, NULL, NULL, root};
    ctx c = {root, p->dir, "", "", pending_free, &q};
    resolve_part(p, &c, pref);
    /* The class, if config.json says (diffusers "_class_name", transformers "architectures"). */
    const char *cls = p->config ? json_string_value(json_object_get(p->config, "_class_name")) : NULL;
    if (!cls && p->config) cls = json_string_value(json_array_get(json_object_get(p->config, "architectures"), 0));
    p->class_name = cls ? xstrdup(cls) : NULL;
    free(root);
    return p;
}

void diffusers_part_free(diffusers_part *p) {
    if (!p) return;
    free(p->name), free(p->library), free(p->class_name), free(p->dir), free(p->config_path);
    json_decref(p->config);
    for (int i = 0; i < p->n_weights; i++) free(p->weight_paths[i]);
    free(p->weight_paths);
    free(p->index_path);
    json_decref(p->index);
    free(p);
}

void diffusers_close(diffusers_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_parts; i++) {
        diffusers_part_free(m->parts[i]);
        free(m->part_names[i]);
    }
    free(m->parts), free(m->part_names);
    free(m->root), free(m->name), free(m->class_name);
    json_decref(m->index);
    free(m);
}

const char *diffusers_weight_file(const diffusers_part *p, const char *tensor_name) {
    if (p->n_weights == 0) return NULL;
    if (!p->weight_map) return p->weight_paths[0];
    const char *shard = json_string_value(json_object_get(p->weight_map, tensor_name));
    if (!shard) return NULL;
    for (int i = 0; i < p->n_weights; i++) {
        const char *s = strrchr(p->weight_paths[i], '/');
        if (!strcmp(s ? s + 1 : p->weight_paths[i], shard)) return p->weight_paths[i];
    }
    return NULL;
}
