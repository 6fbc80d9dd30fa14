/* wordpiece.c — BERT's basic tokenizer and WordPiece (see wordpiece.h). The
 * character classes come from bert_unicode.h, NFD and lower-case from
 * clip_unicode.h; both are generated from the `tokenizers` library, so the
 * C code follows the same Unicode tables as the oracle. The vocab is an
 * open-addressing hash table of byte strings. */
#include "wordpiece.h"

#include "utf8.h"

#include "common.h"
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bert_unicode.h"
/* clip_unicode.h serves the CLIP tokenizer too; here only its NFD and
 * lower-case tables are used. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#include "clip_unicode.h"
#pragma GCC diagnostic pop

enum { MAX_WORD_CHARS = 100 };

struct wordpiece {
    char *blob;         /* the vocab file's bytes, each line NUL-terminated */
    char **tokens;      /* [n] into blob */
    int n;
    int32_t *slots;     /* [cap] hash table of ids, -1 empty */
    size_t cap;
    int lowercase, strip_accents;
    int32_t unk, cls, sep, pad;
};

/* ---- vocab -------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int32_t vocab_find(const wordpiece *wp, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & (wp->cap - 1);
    for (;;) {
        int32_t id = wp->slots[i];
        if (id < 0) return -1;
        const char *t = wp->tokens[id];
        if (strncmp(t, s, n) == 0 && t[n] == 0) return id;
        i = (i + 1) & (wp->cap - 1);
    }
}

static void vocab_insert(wordpiece *wp, int32_t id) {
    const char *t = wp->tokens[id];
    size_t n = strlen(t), i = hash_bytes(t, n) & (wp->cap - 1);
    for (;;) {
        int32_t cur = wp->slots[i];
        if (cur < 0 || strcmp(wp->tokens[cur], t) == 0) { /* a repeat keeps the last id, as HF */
            wp->slots[i] = id;
            return;
        }
        i = (i + 1) & (wp->cap - 1);
    }
}

static int32_t special(wordpiece *wp, const char *name, const char *path) {
    int32_t id = vocab_find(wp, name, strlen(name));
    if (id < 0) {
        wordpiece_free(wp);
        die("%s: the vocab has no %s token", path, name);
    }
    return id;
}

wordpiece *wordpiece_load(const char *vocab_path, int lowercase, int strip_accents) {
    FILE *f = fopen(vocab_path, "rb");
    if (!f) die("cannot open %s: %s", vocab_path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *blob = xmalloc(cap);
    size_t got;
    while ((got = fread(blob + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) blob = xrealloc(blob, cap *= 2);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(blob);
        die("cannot read %s", vocab_path);
    }
    blob[len] = 0;
    if (memchr(blob, 0, len)) {
        free(blob);
        die("%s: a NUL byte; not a vocab.txt", vocab_path);
    }

    /* Lines: "\n" ends a token (HF strips only "\n"); a last line without
     * one is a token too; no empty last token after a final "\n". */
    int n = 0;
    for (size_t i = 0; i < len; i++) n += blob[i] == '\n';
    if (len && blob[len - 1] != '\n') n++;
    if (n == 0) {
        free(blob);
        die("%s: empty vocab", vocab_path);
    }
    wordpiece *wp = xcalloc(1, sizeof *wp);
    wp->blob = blob;
    wp->tokens = xmalloc(sizeof *wp->tokens * (size_t)n);
    char *p = blob;
    for (int k = 0; k < n; k++) {
        wp->tokens[k] = p;
        char *nl = strchr(p, '\n');
        if (nl) { *nl = 0; p = nl + 1; }
        else p += strlen(p);
    }
    wp->n = n;
    wp->cap = 1;
    while (wp->cap < (size_t)n * 2) wp->cap <<= 1;
    wp->slots = xmalloc(sizeof *wp->slots * wp->cap);
    for (size_t i = 0; i < wp->cap; i++) wp->slots[i] = -1;
    for (int k = 0; k < n; k++) vocab_insert(wp, k);
    wp->lowercase = lowercase != 0;
    wp->strip_accents = strip_accents < 0 ? wp->lowercase : strip_accents != 0;
    wp->unk = special(wp, "[UNK]", vocab_path);
    wp->cls = special(wp, "[CLS]", vocab_path);
    wp->sep = special(wp, "[SEP]", vocab_path);
    wp->pad = special(wp, "[PAD]", vocab_path);
    return wp;
}

wordpiece *wordpiece_open_dir(const char *dir, int lowercase) {
    char *cfg_path = xasprintf("%s/tokenizer_config.json", dir);
    char *vocab_path = xasprintf("%s/vocab.txt", dir);
    json_t *cfg = json_load_path_opt(cfg_path);
    int lower = 1, strip = -1;
    if (cfg) {
        if (!json_is_object(cfg)) die("%s: not a JSON object", cfg_path);
        lower = json_get_bool(cfg, "do_lower_case", 1, cfg_path);
        if (json_has(cfg, "strip_accents")) strip = json_get_bool(cfg, "strip_accents", 0, cfg_path);
        json_decref(cfg);
    }
    if (lowercase >= 0) lower = lowercase;
    wordpiece *wp = wordpiece_load(vocab_path, lower, strip);
    free(cfg_path);
    free(vocab_path);
    return wp;
}

void wordpiece_free(wordpiece *wp) {
    if (!wp) return;
    free(wp->blob);
    free(wp->tokens);
    free(wp->slots);
    free(wp);
}

int wordpiece_lowercase(const wordpiece *wp) { return wp->lowercase; }
int wordpiece_vocab_size(const wordpiece *wp) { return wp->n; }
int32_t wordpiece_id(const wordpiece *wp, const char *token) { return vocab_find(wp, token, strlen(token)); }

const char *wordpiece_token(const wordpiece *wp, int32_t id) {
    CHECK(id >= 0 && id < wp->n);
    return wp->tokens[id];
}

/* ---- Unicode -------------------------------------------------------------- */


typedef struct { uint32_t *c; size_t n, cap; } cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) b->c = xrealloc(b->c, sizeof *b->c * (b->cap = b->cap ? 2 * b->cap : 256));
    b->c[b->n++] = c;
}

static void push_lower(const wordpiece *wp, cpbuf *b, uint32_t c) {
    if (wp->lowercase) {
        const uint32_t *row = unicode_find_row(&uni_lower[0][0], sizeof uni_lower / sizeof uni_lower[0], 3, c);
        if (row) {
            cp_push(b, row[1]);
            if (row[2]) cp_push(b, row[2]);
            return;
        }
    }
    cp_push(b, c);
}

/* strip_accents (NFD, marks dropped) then lowercase, for one code point. */
static void push_folded(const wordpiece *wp, cpbuf *b, uint32_t c) {
    if (!wp->strip_accents) { push_lower(wp, b, c); return; }
    uint32_t d[4];
    int nd = 0;
    if (c >= 0xac00 && c <= 0xd7a3) { /* Hangul syllable: L V (T) by the algorithm */
        uint32_t s = c - 0xac00;
        d[nd++] = 0x1100 + s / 588;
        d[nd++] = 0x1161 + (s % 588) / 28;
        if (s % 28) d[nd++] = 0x11a7 + s % 28;
    } else {
        const uint32_t *row = unicode_find_row(&uni_decomp[0][0], sizeof uni_decomp / sizeof uni_decomp[0], 5, c);
        if (row) for (int i = 1; i <= 4 && row[i]; i++) d[nd++] = row[i];
        else d[nd++] = c;
    }
    for (int i = 0; i < nd; i++)
        if (!UNICODE_IN(bert_mn, d[i])) push_lower(wp, b, d[i]);
}

/* The normalised code points of text (BertNormalizer). */
static void normalize(const wordpiece *wp, const char *text, cpbuf *b) {
    const unsigned char *s = (const unsigned char *)text, *end = s + strlen(text);
    while (s < end) {
        uint32_t c = utf8_next(&s, end);
        if (c == 0xfffd || UNICODE_IN(bert_drop, c)) continue;
        if (UNICODE_IN(bert_space, c)) c = ' ';
        if (UNICODE_IN(bert_cjk, c)) {
            cp_push(b, ' ');
            push_folded(wp, b, c);
            cp_push(b, ' ');
        } else {
            push_folded(wp, b, c);
        }
    }
}

/* ---- WordPiece -------------------------------------------------------------- */

typedef struct { int32_t *id; int n, cap; } idbuf;

static void id_push(idbuf *b, int32_t id) {
    if (b->n == b->cap) b->id = xrealloc(b->id, sizeof *b->id * (size_t)(b->cap = b->cap ? 2 * b->cap : 64));
    b->id[b->n++] = id;
}

/* One word (n code points) -> its pieces; key is scratch for "##" + UTF-8. */
static void word_pieces(const wordpiece *wp, const uint32_t *w, int n, idbuf *out, char *key) {
    if (n > MAX_WORD_CHARS) { id_push(out, wp->unk); return; }
    char utf[4 * MAX_WORD_CHARS + 1];
    int off[MAX_WORD_CHARS + 1]; /* byte offset of each character */
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + utf8_put((unsigned char *)utf + off[i], w[i]);
    int first = out->n, start = 0;
    while (start < n) {
        int end = n, found = -1;
        int klen0 = start > 0 ? 2 : 0;
        memcpy(key, "##", 2);
        for (; end > start; end--) {
            int len = off[end] - off[start];
            memcpy(key + klen0, utf + off[start], (size_t)len);
            found = vocab_find(wp, key, (size_t)(klen0 + len));
            if (found >= 0) break;
        }
        if (found < 0) { /* no piece matches here: the whole word is [UNK] */
            out->n = first;
            id_push(out, wp->unk);
            return;
        }
        id_push(out, found);
        start = end;
    }
}

static int is_punct(uint32_t c) { return UNICODE_IN(bert_punct, c); }

static void tokenize_into(const wordpiece *wp, const char *text, idbuf *out) {
    cpbuf b = {0};
    normalize(wp, text, &b);
    char key[2 + 4 * MAX_WORD_CHARS + 1];
    size_t i = 0;
    while (i < b.n) {
        uint32_t c = b.c[i];
        if (c == ' ') { i++; continue; }
        if (is_punct(c)) { word_pieces(wp, &b.c[i], 1, out, key); i++; continue; }
        size_t j = i;
        while (j < b.n && b.c[j] != ' ' && !is_punct(b.c[j])) j++;
        size_t n = j - i;
        word_pieces(wp, &b.c[i], n > MAX_WORD_CHARS ? MAX_WORD_CHARS + 1 : (int)n, out, key);
        i = j;
    }
    free(b.c);
}

int32_t *wordpiece_tokenize(const wordpiece *wp, const char *text, int *n) {
    idbuf out = {0};
    tokenize_into(wp, text, &out);
    *n = out.n;
    if (!out.id) out.id = xmalloc(sizeof *out.id);
    return out.id;
}

int wordpiece_encode(const wordpiece *wp, const char *text, int max_length, int32_t *ids, uint8_t *mask) {
    CHECK(max_length >= 2);
    idbuf t = {0};
    tokenize_into(wp, text, &t);
    int keep = t.n < max_length - 2 ? t.n : max_length - 2;
    int k = 0;
    ids[k++] = wp->cls;
    for (int i = 0; i < keep; i++) ids[k++] = t.id[i];
    ids[k++] = wp->sep;
    for (int i = 0; i < max_length; i++) mask[i] = i < k;
    while (k < max_length) ids[k++] = wp->pad;
    free(t.id);
    return t.n;
}
