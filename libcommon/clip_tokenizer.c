/* clip_tokenizer.c — the CLIP tokenizer as a diffusers StableDiffusionPipeline
 * runs it: transformers 5's CLIPTokenizer is the `tokenizers`-backed class
 * (no ftfy, no slow Python path), so one call does
 *   1. split the raw text on the non-normalised added tokens ("!" in SD 2.x,
 *      "<|endoftext|>" in SD 1.x folders), leftmost-longest;
 *   2. normalise the rest: NFC, runs of \s -> " ", per-character lower-case;
 *   3. split that on the normalised added tokens ("<|startoftext|>", ...);
 *   4. pre-tokenise with the CLIP pattern
 *        <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *      (whitespace dropped), then ByteLevel's GPT-2 pattern inside each piece,
 *      which only changes the two literals: "<|", name, "|>";
 *   5. byte-level BPE per piece, the last symbol carrying "</w>";
 *   6. BOS, the ids truncated to max_length - 2, EOS, padding with pad_token.
 * Unicode tables (classes, lower-case, NFC) are generated into clip_unicode.h
 * from the `tokenizers` library by tests/oracle/make_clip_unicode.py.
 * Not modelled: added tokens with lstrip/rstrip/single_word set (no SD folder
 * has them), a pad/extra token missing from vocab.json (dies; transformers would
 * append a new id), folders with only tokenizer.json (dies naming vocab.json).
 * Without tokenizer_config.json the max length is 77 (transformers: unbounded).
 * Stray invalid UTF-8 bytes become U+FFFD (JSON input is valid UTF-8 anyway).
 * clip_tokenize keeps no state, so threads may share one tokenizer. */
#include "clip_tokenizer.h"

#include "utf8.h"
#include "clip_unicode.h"
#include "common.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Unicode ---------------------------------------------------------- */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum { CL_OTHER = 0, CL_SPACE = 1, CL_LETTER = 2, CL_NUMBER = 3 };

static int uni_class(uint32_t c) {
    if (c < 128) {
        if (c == ' ' || (c >= 9 && c <= 13)) return CL_SPACE;
        if ((c | 32) >= 'a' && (c | 32) <= 'z') return CL_LETTER;
        if (c >= '0' && c <= '9') return CL_NUMBER;
        return CL_OTHER;
    }
    if (UNICODE_IN(uni_space, c)) return CL_SPACE;
    if (UNICODE_IN(uni_letter, c)) return CL_LETTER;
    if (UNICODE_IN(uni_number, c)) return CL_NUMBER;
    return CL_OTHER;
}

static int combining_class(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = NELEM(uni_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < uni_ccc[mid][0]) hi = mid;
        else if (c > uni_ccc[mid][1]) lo = mid + 1;
        else return (int)uni_ccc[mid][2];
    }
    return 0;
}

/* Hangul syllables decompose and compose by arithmetic (Unicode ch. 3.12). */
enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7,
       H_LCOUNT = 19, H_VCOUNT = 21, H_TCOUNT = 28, H_NCOUNT = 588, H_SCOUNT = 11172 };

/* Appends the full canonical decomposition of c to out; returns the count (<= 4). */
static int uni_decompose(uint32_t c, uint32_t *out) {
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        uint32_t s = c - H_SBASE;
        out[0] = H_LBASE + s / H_NCOUNT;
        out[1] = H_VBASE + (s % H_NCOUNT) / H_TCOUNT;
        if (s % H_TCOUNT) { out[2] = H_TBASE + s % H_TCOUNT; return 3; }
        return 2;
    }
    const uint32_t *row = c < 0xC0 ? NULL : unicode_find_row(&uni_decomp[0][0], NELEM(uni_decomp), 5, c);
    if (!row) { out[0] = c; return 1; }
    int n = 0;
    while (n < 4 && row[1 + n]) { out[n] = row[1 + n]; n++; }
    return n;
}

static uint32_t uni_compose_pair(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 &&
        b > H_TBASE && b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = NELEM(uni_compose);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t *r = uni_compose[mid];
        if (a < r[0] || (a == r[0] && b < r[1])) hi = mid;
        else if (a > r[0] || b > r[1]) lo = mid + 1;
        else return r[2];
    }
    return 0;
}

/* A growable code-point buffer. */
typedef struct { uint32_t *p; size_t n, cap; } cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->p = xrealloc(b->p, b->cap * sizeof *b->p);
    }
    b->p[b->n++] = c;
}

/* NFC of in[0..n) appended to out. Below U+0300 nothing decomposes into or
 * composes with anything else in the string, so such text is already NFC. */
static void uni_nfc(const uint32_t *in, size_t n, cpbuf *out) {
    size_t i;
    for (i = 0; i < n && in[i] < 0x300; i++) {}
    if (i == n) { for (i = 0; i < n; i++) cp_push(out, in[i]); return; }
    cpbuf d = {0};
    for (i = 0; i < n; i++) {
        uint32_t tmp[4];
        int k = uni_decompose(in[i], tmp);
        for (int j = 0; j < k; j++) cp_push(&d, tmp[j]);
    }
    /* Canonical ordering: a stable sort by combining class inside each run of non-starters. */
    for (i = 1; i < d.n; i++) {
        int ci = combining_class(d.p[i]);
        if (!ci) continue;
        size_t j = i;
        while (j > 0 && combining_class(d.p[j - 1]) > ci) {
            uint32_t t = d.p[j]; d.p[j] = d.p[j - 1]; d.p[j - 1] = t;
            j--;
        }
    }
    /* Canonical composition: a character joins the last starter unless blocked. */
    long starter = -1;
    int last_ccc = -1; /* class of the last character kept after the starter; -1: none yet */
    for (i = 0; i < d.n; i++) {
        uint32_t c = d.p[i];
        int cc = combining_class(c);
        if (starter >= 0 && (last_ccc == -1 || (last_ccc < cc))) {
            uint32_t comp = uni_compose_pair(out->p[starter], c);
            if (comp) { out->p[starter] = comp; continue; }
        }
        if (cc == 0) { starter = (long)out->n; last_ccc = -1; }
        else last_ccc = cc;
        cp_push(out, c);
    }
    free(d.p);
}

/* UTF-8 -> code points. Input comes from JSON, so it is valid UTF-8; a stray
 * byte becomes U+FFFD (what a lossy decode would give) rather than an error. */
static void utf8_decode(const char *s, size_t len, cpbuf *out) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) cp_push(out, utf8_next(&p, end));
}

/* The normaliser: NFC, every run of \s -> one space, then per-character lower-case. */
static void normalize(const uint32_t *in, size_t n, cpbuf *out) {
    cpbuf nfc = {0};
    uni_nfc(in, n, &nfc);
    for (size_t i = 0; i < nfc.n; i++) {
        uint32_t c = nfc.p[i];
        if (uni_class(c) == CL_SPACE) {
            while (i + 1 < nfc.n && uni_class(nfc.p[i + 1]) == CL_SPACE) i++;
            cp_push(out, ' ');
        } else if (c < 128) {
            cp_push(out, c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else {
            const uint32_t *row = unicode_find_row(&uni_lower[0][0], NELEM(uni_lower), 3, c);
            if (!row) cp_push(out, c);
            else {
                cp_push(out, row[1]);
                if (row[2]) cp_push(out, row[2]);
            }
        }
    }
    free(nfc.p);
}

/* ---- hash maps -------------------------------------------------------- */

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

typedef struct { uint64_t key; int32_t rank, merged; } merge_slot;

typedef struct {
    char *content;     /* UTF-8 */
    uint32_t *cps;     /* content as code points (normalised when `normalized`) */
    size_t ncp;
    int32_t id;
    int normalized;    /* matched on the normalised text (1) or the raw text (0) */
} added_token;

struct clip_tokenizer {
    int max_len;
    int32_t bos, eos, pad;
    /* vocab: token strings by id, open-addressing table of ids */
    char **tok;
    size_t *tok_len;
    int32_t ntok;      /* 1 + largest id */
    int32_t *vslot;    /* vcap slots: id or -1 */
    size_t vcap;
    merge_slot *mslot; /* mcap slots: key (a << 32 | b) + 1, 0 = empty */
    size_t mcap;
    int32_t byte_id[256], byte_id_eow[256]; /* byte-level symbols without / with "</w>" */
    added_token *added;
    int nadded;
};

static int32_t vocab_find(const clip_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->vcap - 1;
    for (size_t i = hash_bytes((const unsigned char *)s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = t->vslot[i];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && !memcmp(t->tok[id], s, n)) return id;
    }
}

static const merge_slot *merge_find(const clip_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->mcap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (t->mslot[i].key == key) return &t->mslot[i];
        if (t->mslot[i].key == 0) return NULL;
    }
}

/* ---- loading ---------------------------------------------------------- */

/* GPT-2's byte -> printable character map: the printable Latin-1 bytes stand
 * for themselves, the other 68 take U+0100.. in byte order. */
static uint32_t byte_to_unicode(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 256u + (uint32_t)k;
}

static void load_vocab(clip_tokenizer *t, const char *path) {
    json_t *v = json_load_path(path);
    if (!json_is_object(v)) die("%s: expected a JSON object of token -> id", path);
    size_t n = json_object_size(v);
    if (n == 0) die("%s: the vocabulary is empty", path);
    int32_t maxid = -1;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > 10000000)
            die("%s: token \"%s\" has no valid id", path, key);
        if (json_integer_value(val) > maxid) maxid = (int32_t)json_integer_value(val);
    }
    t->ntok = maxid + 1;
    t->tok = xcalloc((size_t)t->ntok, sizeof *t->tok);
    t->tok_len = xcalloc((size_t)t->ntok, sizeof *t->tok_len);
    for (t->vcap = 16; t->vcap < 2 * n; t->vcap *= 2) {}
    t->vslot = xmalloc(t->vcap * sizeof *t->vslot);
    memset(t->vslot, 0xff, t->vcap * sizeof *t->vslot);
    json_object_foreach(v, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (t->tok[id]) die("%s: id %d is given to both \"%s\" and \"%s\"", path, id, t->tok[id], key);
        size_t len = strlen(key);
        t->tok[id] = xstrdup(key);
        t->tok_len[id] = len;
        size_t mask = t->vcap - 1, i = hash_bytes((const unsigned char *)key, len) & mask;
        while (t->vslot[i] >= 0) i = (i + 1) & mask;
        t->vslot[i] = id;
    }
    json_decref(v);
    for (int b = 0; b < 256; b++) {
        unsigned char u[8];
        int k = utf8_put(u, byte_to_unicode(b));
        memcpy(u + k, "</w>", 4);
        t->byte_id[b] = vocab_find(t, (const char *)u, (size_t)k);
        t->byte_id_eow[b] = vocab_find(t, (const char *)u, (size_t)k + 4);
        if (t->byte_id[b] < 0 || t->byte_id_eow[b] < 0)
            die("%s: byte-level symbol for byte 0x%02x (with and without </w>) missing", path, b);
    }
}

static void load_merges(clip_tokenizer *t, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, count = 0;
    ssize_t len;
    long lineno = 0;
    t->mcap = 1 << 17;
    t->mslot = xcalloc(t->mcap, sizeof *t->mslot);
    char *buf = NULL;
    size_t bufcap = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno == 1 && !strncmp(line, "#version", 8)) continue;
        if (len == 0) continue;
        char *sp = strchr(line, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == line || !sp[1])
            die("%s:%ld: a merge must be two tokens separated by one space", path, lineno);
        size_t la = (size_t)(sp - line), lb = (size_t)len - la - 1;
        int32_t a = vocab_find(t, line, la), b = vocab_find(t, sp + 1, lb);
        if ((size_t)len > bufcap) { bufcap = (size_t)len + 16; buf = xrealloc(buf, bufcap); }
        memcpy(buf, line, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t ab = vocab_find(t, buf, la + lb);
        if (a < 0 || b < 0 || ab < 0)
            die("%s:%ld: merge \"%s\" uses a token missing from vocab.json", path, lineno, line);
        if (2 * (count + 1) > t->mcap) {  /* grow, keeping the load factor at most 1/2 */
            merge_slot *old = t->mslot;
            size_t oldcap = t->mcap;
            t->mcap *= 2;
            t->mslot = xcalloc(t->mcap, sizeof *t->mslot);
            for (size_t i = 0; i < oldcap; i++) {
                if (!old[i].key) continue;
                size_t j = hash_u64(old[i].key) & (t->mcap - 1);
                while (t->mslot[j].key) j = (j + 1) & (t->mcap - 1);
                t->mslot[j] = old[i];
            }
            free(old);
        }
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        size_t j = hash_u64(key) & (t->mcap - 1);
        while (t->mslot[j].key && t->mslot[j].key != key) j = (j + 1) & (t->mcap - 1);
        if (t->mslot[j].key) continue; /* a repeated merge keeps its first rank */
        t->mslot[j] = (merge_slot){key, (int32_t)count, ab};
        count++;
    }
    if (ferror(f)) die("%s: read error: %s", path, strerror(errno));
    fclose(f);
    free(line);
    free(buf);
    if (count == 0) die("%s: no merges", path);
}

/* A special token entry of tokenizer_config.json / special_tokens_map.json:
 * a string, or an AddedToken object {"content": ..., "normalized": ...}. */
typedef struct { const char *content; int normalized; } tok_spec;

static void read_spec(json_t *obj, const char *key, const char *path, int dict_default_norm, tok_spec *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return;
    if (json_is_string(v)) {
        out->content = json_string_value(v);
        out->normalized = 0; /* a plain string becomes a special AddedToken(normalized=False) */
    } else if (json_is_object(v)) {
        json_t *c = json_object_get(v, "content");
        if (!json_is_string(c)) die("%s: \"%s\" has no string \"content\"", path, key);
        out->content = json_string_value(c);
        json_t *nz = json_object_get(v, "normalized"), *sp = json_object_get(v, "special");
        if (nz && !json_is_boolean(nz)) die("%s: \"%s\".normalized must be true or false", path, key);
        /* AddedToken's default: normalized = not special */
        out->normalized = nz ? json_is_true(nz) : json_is_boolean(sp) ? !json_is_true(sp) : dict_default_norm;
    } else {
        die("%s: \"%s\" must be a string or an object", path, key);
    }
}

static void add_token(clip_tokenizer *t, const char *content, int32_t id, int normalized) {
    for (int i = 0; i < t->nadded; i++)
        if (!strcmp(t->added[i].content, content)) { /* registered again: the last flags win */
            t->added[i].normalized = normalized;
            t->added[i].id = id;
            return;
        }
    t->added = xrealloc(t->added, (size_t)(t->nadded + 1) * sizeof *t->added);
    added_token *a = &t->added[t->nadded++];
    memset(a, 0, sizeof *a);
    a->content = xstrdup(content);
    a->id = id;
    a->normalized = normalized;
}

static int32_t token_id(const clip_tokenizer *t, const char *content, const char *what, const char *dir) {
    int32_t id = vocab_find(t, content, strlen(content));
    if (id < 0) die("%s: %s \"%s\" is not in vocab.json", dir, what, content);
    return id;
}

/* Special tokens as transformers 5 sets them up: tokenizer_config.json's
 * entries; with no "added_tokens_decoder" there (the older saves SD folders
 * have), special_tokens_map.json's entries replace them. Each becomes an added
 * token; the pad entry comes last, so its flags win for a shared content. */
static void load_specials(clip_tokenizer *t, const char *dir) {
    char *cpath = xasprintf("%s/tokenizer_config.json", dir);
    char *mpath = xasprintf("%s/special_tokens_map.json", dir);
    json_t *cfg = json_load_path_opt(cpath);
    if (cfg && !json_is_object(cfg)) die("%s: expected a JSON object", cpath);
    static const char *const keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    tok_spec spec[4] = {{"<|startoftext|>", 1}, {"<|endoftext|>", 1}, {"<|endoftext|>", 1}, {"<|endoftext|>", 0}};
    json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    t->max_len = 77;
    if (cfg) {
        long ml = json_get_int(cfg, "model_max_length", 77, cpath);
        if (ml < 2 || ml > 100000) die("%s: model_max_length %ld is out of range", cpath, ml);
        t->max_len = (int)ml;
        for (int k = 0; k < 4; k++) read_spec(cfg, keys[k], cpath, 1, &spec[k]);
    }
    json_t *map = NULL;
    if (dec) {
        if (!json_is_object(dec)) die("%s: \"added_tokens_decoder\" must be an object", cpath);
        const char *idstr;
        json_t *e;
        json_object_foreach(dec, idstr, e) {
            char *endp;
            long id = strtol(idstr, &endp, 10);
            if (*endp || id < 0 || id >= t->ntok) die("%s: added_tokens_decoder id \"%s\" is not in the vocabulary", cpath, idstr);
            tok_spec s = {NULL, 0};
            json_t *wrap = json_pack("{sO}", "x", e);
            read_spec(wrap, "x", cpath, 0, &s);
            json_decref(wrap);
            if (!s.content) die("%s: added_tokens_decoder[%s] is empty", cpath, idstr);
            add_token(t, s.content, (int32_t)id, s.normalized);
        }
    } else {
        map = json_load_path_opt(mpath);
        if (map && !json_is_object(map)) die("%s: expected a JSON object", mpath);
        if (map)
            for (int k = 0; k < 4; k++) read_spec(map, keys[k], mpath, 0, &spec[k]);
    }
    for (int k = 0; k < 4; k++) {
        int found = 0;
        for (int i = 0; i < t->nadded && dec; i++)
            if (!strcmp(t->added[i].content, spec[k].content)) found = 1; /* keeps its decoder flags */
        int32_t id = token_id(t, spec[k].content, keys[k], dir);
        if (!found) add_token(t, spec[k].content, id, spec[k].normalized);
        if (k == 0) t->bos = id;
        if (k == 1) t->eos = id;
        if (k == 3) t->pad = id;
    }
    /* Extra special tokens (matched like the named ones): the map's list replaces the config's. */
    json_t *extra = NULL;
    const char *epath = cpath;
    static const char *const ekeys[2] = {"extra_special_tokens", "additional_special_tokens"};
    for (int k = 0; k < 2 && !extra; k++) {
        if (map && json_is_array(json_object_get(map, ekeys[k]))) { extra = json_object_get(map, ekeys[k]); epath = mpath; }
        else if (cfg && json_is_array(json_object_get(cfg, ekeys[k]))) extra = json_object_get(cfg, ekeys[k]);
    }
    for (size_t i = 0; extra && i < json_array_size(extra); i++) {
        tok_spec s = {NULL, 0};
        json_t *wrap = json_pack("{sO}", "extra_special_tokens", json_array_get(extra, i));
        read_spec(wrap, "extra_special_tokens", epath, 0, &s);
        json_decref(wrap);
        if (!s.content) continue;
        int found = 0;
        for (int j = 0; j < t->nadded && dec; j++)
            if (!strcmp(t->added[j].content, s.content)) found = 1;
        if (!found) add_token(t, s.content, token_id(t, s.content, "extra special token", dir), s.normalized);
    }
    /* Code points for matching; a normalised token is matched in its normalised form. */
    for (int i = 0; i < t->nadded; i++) {
        added_token *a = &t->added[i];
        cpbuf raw = {0}, nrm = {0};
        utf8_decode(a->content, strlen(a->content), &raw);
        if (a->normalized) {
            normalize(raw.p, raw.n, &nrm);
            free(raw.p);
            raw = nrm;
        }
        a->cps = raw.p;
        a->ncp = raw.n;
        if (!a->ncp) die("%s: an added token is empty", dir);
    }
    json_decref(cfg);
    json_decref(map);
    free(cpath);
    free(mpath);
}

clip_tokenizer *clip_tokenizer_open(const char *dir) {
    clip_tokenizer *t = xcalloc(1, sizeof *t);
    char *vpath = xasprintf("%s/vocab.json", dir);
    char *mpath = xasprintf("%s/merges.txt", dir);
    load_vocab(t, vpath);
    load_merges(t, mpath);
    load_specials(t, dir);
    free(vpath);
    free(mpath);
    return t;
}

void clip_tokenizer_free(clip_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->ntok; i++) free(t->tok[i]);
    free(t->tok);
    free(t->tok_len);
    free(t->vslot);
    free(t->mslot);
    for (int i = 0; i < t->nadded; i++) { free(t->added[i].content); free(t->added[i].cps); }
    free(t->added);
    free(t);
}

int clip_tokenizer_max_length(const clip_tokenizer *t) { return t->max_len; }
int32_t clip_tokenizer_bos(const clip_tokenizer *t) { return t->bos; }
int32_t clip_tokenizer_eos(const clip_tokenizer *t) { return t->eos; }
int32_t clip_tokenizer_pad(const clip_tokenizer *t) { return t->pad; }

/* ---- encoding --------------------------------------------------------- */

/* Where the ids go: at most `cap` of them; further ones are dropped (truncation). */
typedef struct { int32_t *ids; int n, cap; } id_sink;

static int sink_full(const id_sink *s) { return s->n >= s->cap; }
static void sink_put(id_sink *s, int32_t id) { if (s->n < s->cap) s->ids[s->n++] = id; }

/* Words longer than this many bytes merge through a heap (O(n log n)); shorter
 * ones by rescanning, which is faster for them. Both merge the lowest-ranked
 * pair first and, among equal ranks, the leftmost, as `tokenizers` does. */
#define BPE_SCAN_MAX 64

typedef struct { int32_t rank, pos; } bpe_cand;

static int cand_less(bpe_cand a, bpe_cand b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* sym[0..n) -> merged in place (a linked list over the array); returns the count left, compacted. */
static size_t bpe_merge_heap(const clip_tokenizer *t, int32_t *sym, size_t n) {
    int32_t *next = xmalloc(n * sizeof *next), *prev = xmalloc(n * sizeof *prev);
    bpe_cand *heap = xmalloc(n * 3 * sizeof *heap);  /* n - 1 pairs, then at most two per merge */
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prev[i] = (int32_t)i - 1;
        const merge_slot *m = i + 1 < n ? merge_find(t, sym[i], sym[i + 1]) : NULL;
        if (m) heap_push(heap, &nh, (bpe_cand){m->rank, (int32_t)i});
    }
    while (nh) {
        bpe_cand c = heap_pop(heap, &nh);
        int32_t i = c.pos, j = next[i];
        if (sym[i] < 0 || j < 0) continue;  /* merged away, or now the last symbol */
        const merge_slot *m = merge_find(t, sym[i], sym[j]);
        if (!m || m->rank != c.rank) continue;  /* stale: a neighbour changed */
        sym[i] = m->merged;
        sym[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0 && (m = merge_find(t, sym[prev[i]], sym[i])))
            heap_push(heap, &nh, (bpe_cand){m->rank, prev[i]});
        if (next[i] >= 0 && (m = merge_find(t, sym[i], sym[next[i]])))
            heap_push(heap, &nh, (bpe_cand){m->rank, i});
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sym[i] >= 0) sym[k++] = sym[i];
    free(next);
    free(prev);
    free(heap);
    return k;
}

/* Byte-level BPE of one pre-token (code points), ids to the sink. */
static void bpe_word(const clip_tokenizer *t, const uint32_t *w, size_t n, id_sink *out) {
    unsigned char stackb[4 * BPE_SCAN_MAX];
    int32_t stacks[4 * BPE_SCAN_MAX];
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) nb += (size_t)(w[i] < 0x80 ? 1 : w[i] < 0x800 ? 2 : w[i] < 0x10000 ? 3 : 4);
    unsigned char *bytes = nb <= sizeof stackb ? stackb : xmalloc(nb);
    int32_t *sym = nb <= 4 * BPE_SCAN_MAX ? stacks : xmalloc(nb * sizeof *sym);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8_put(bytes + k, w[i]);
    for (size_t i = 0; i < nb; i++) sym[i] = i + 1 < nb ? t->byte_id[bytes[i]] : t->byte_id_eow[bytes[i]];
    size_t ns = nb;
    if (nb > BPE_SCAN_MAX) {
        ns = bpe_merge_heap(t, sym, nb);
    } else {
        /* Merge the lowest-ranked adjacent pair, leftmost first, until none is left. */
        while (ns > 1) {
            int32_t best = INT32_MAX, merged = -1;
            size_t at = 0;
            for (size_t i = 0; i + 1 < ns; i++) {
                const merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
                if (m && m->rank < best) { best = m->rank; merged = m->merged; at = i; }
            }
            if (merged < 0) break;
            sym[at] = merged;
            memmove(sym + at + 1, sym + at + 2, (ns - at - 2) * sizeof *sym);
            ns--;
        }
    }
    for (size_t i = 0; i < ns; i++) sink_put(out, sym[i]);
    if (bytes != stackb) free(bytes);
    if (sym != stacks) free(sym);
}

static int match_at(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || s[i + k] != (uint32_t)(unsigned char)lit[k]) return 0;
    return (int)k;
}

/* The CLIP split pattern over normalised text; each piece goes to BPE. */
static void pretokenize(const clip_tokenizer *t, const uint32_t *s, size_t n, id_sink *out) {
    static const uint32_t lt_bar[2] = {'<', '|'}, bar_gt[2] = {'|', '>'};
    size_t i = 0;
    while (i < n && !sink_full(out)) {
        int cl = uni_class(s[i]);
        if (cl == CL_SPACE) { i++; continue; }
        int k = 0;
        if (s[i] == '<' && ((k = match_at(s, n, i, "<|startoftext|>")) || (k = match_at(s, n, i, "<|endoftext|>")))) {
            /* ByteLevel's own GPT-2 pattern splits the literal again */
            bpe_word(t, lt_bar, 2, out);
            bpe_word(t, s + i + 2, (size_t)k - 4, out);
            bpe_word(t, bar_gt, 2, out);
            i += (size_t)k;
            continue;
        }
        if (s[i] == '\'' && ((k = match_at(s, n, i, "'s")) || (k = match_at(s, n, i, "'t")) ||
                             (k = match_at(s, n, i, "'re")) || (k = match_at(s, n, i, "'ve")) ||
                             (k = match_at(s, n, i, "'m")) || (k = match_at(s, n, i, "'ll")) ||
                             (k = match_at(s, n, i, "'d")))) {
            bpe_word(t, s + i, (size_t)k, out);
            i += (size_t)k;
            continue;
        }
        size_t j = i + 1;
        if (cl == CL_LETTER) {
            while (j < n && uni_class(s[j]) == CL_LETTER) j++;
        } else if (cl == CL_OTHER) {
            while (j < n && uni_class(s[j]) == CL_OTHER) j++;
        } /* a number is one code point */
        bpe_word(t, s + i, j - i, out);
        i = j;
    }
}

/* Leftmost-longest match of one of the added tokens with this `normalized`
 * flag in s[from..n): returns its start (n if none), *len and *id. */
static size_t find_added(const clip_tokenizer *t, int normalized, const uint32_t *s, size_t from, size_t n,
                         size_t *len, int32_t *id) {
    for (size_t i = from; i < n; i++) {
        size_t best = 0;
        for (int a = 0; a < t->nadded; a++) {
            const added_token *tk = &t->added[a];
            if (tk->normalized != normalized || tk->ncp > n - i || tk->ncp <= best) continue;
            if (tk->cps[0] != s[i] || memcmp(tk->cps, s + i, tk->ncp * sizeof *s)) continue;
            best = tk->ncp;
            *id = tk->id;
        }
        if (best) { *len = best; return i; }
    }
    return n;
}

/* Normalise a raw piece, split it on the normalised added tokens, pre-tokenise the rest. */
static void encode_piece(const clip_tokenizer *t, const uint32_t *s, size_t n, id_sink *out) {
    if (!n) return;
    cpbuf nrm = {0};
    normalize(s, n, &nrm);
    size_t i = 0;
    while (i < nrm.n && !sink_full(out)) {
        size_t len = 0;
        int32_t id = -1;
        size_t at = find_added(t, 1, nrm.p, i, nrm.n, &len, &id);
        pretokenize(t, nrm.p + i, at - i, out);
        if (at == nrm.n) break;
        sink_put(out, id);
        i = at + len;
    }
    free(nrm.p);
}

int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids) {
    cpbuf raw = {0};
    utf8_decode(text, strlen(text), &raw);
    id_sink out = {ids + 1, 0, t->max_len - 2};
    size_t i = 0;
    while (i < raw.n && !sink_full(&out)) {
        size_t len = 0;
        int32_t id = -1;
        size_t at = find_added(t, 0, raw.p, i, raw.n, &len, &id);
        encode_piece(t, raw.p + i, at - i, &out);
        if (at == raw.n) break;
        sink_put(&out, id);
        i = at + len;
    }
    free(raw.p);
    ids[0] = t->bos;
    ids[out.n + 1] = t->eos;
    for (int k = out.n + 2; k < t->max_len; k++) ids[k] = t->pad;
    return out.n + 2;
}
