/* pairpack.c — turns image-report pairs into vlptrain's input, the "pairs"
 * cxrstream: each image loaded (PNG or JPEG), made grey, its longer side
 * resized to 256 and zero-padded to a square of u8 (libcommon/image_prep.h),
 * each report cleaned as MGCA does (report_clean.h) and tokenised with BERT
 * WordPiece (wordpiece.h), as records on stdout or in shard files. Pairs are
 * read in batches whose images are decoded in parallel and written in input
 * order, so the output is the same bytes whatever the thread count. */
#include "atomic_file.h"
#include "common.h"
#include "image_prep.h"
#include "json.h"
#include "progress.h"
#include "report_clean.h"
#include "stream.h"
#include "wordpiece.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: pairpack (--text-model DIR | --vocab FILE) [OPTION]... [FILE]\n"
    "       pairpack (--text-model DIR | --vocab FILE) --mimic DIR [OPTION]...\n"
    "Pack image-report pairs for vlptrain: grey u8 images padded to a square and\n"
    "BERT token ids of the cleaned report, as a cxrstream(5) of kind \"pairs\". FILE\n"
    "holds JSON lines with id, path and text (lat2png's manifest; standard input\n"
    "when FILE is - or absent); --mimic reads a MIMIC-CXR style folder (as\n"
    "cxrphantom writes it).\n"
    "\n"
    "      --text-model DIR      BERT folder: vocab.txt, and do_lower_case from\n"
    "                            tokenizer_config.json when present\n"
    "      --vocab FILE          a vocab.txt alone (lower-cased unless --cased)\n"
    "      --lowercase           lower-case and strip accents, whatever the config\n"
    "      --cased               keep case and accents, whatever the config\n"
    "      --mimic DIR           read DIR/reports.jsonl and DIR/mimic-cxr-2.0.0-split.csv\n"
    "      --format F            jsonl (default) or mimic (then FILE is the folder)\n"
    "      --split S             with --mimic: train, validate, test or all (default)\n"
    "      --root DIR            resolve relative image paths against DIR (default:\n"
    "                            the folder of FILE; . for standard input)\n"
    "      --image-size N        longer side resized to N, padded to N x N, 32-4096\n"
    "                            (default 256)\n"
    "      --max-tokens N        token ids per report with [CLS] and [SEP], 8-512\n"
    "                            (default 112)\n"
    "  -o, --out DIR             write shards DIR/pairs-00000.cxs, pairs-00001.cxs, ...\n"
    "                            (default: one stream on standard output)\n"
    "      --shard-size N        records per shard with --out, 1-10000000\n"
    "                            (default 1000)\n"
    "      --force               with --out: replace the shards already in DIR\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  pairpack --text-model bert --mimic phantom/mimic --split train -o shards/train\n";

static const char *const formats[] = {"jsonl", "mimic", NULL};
static const char *const splits[] = {"train", "validate", "test", "all", NULL};
enum { FORMAT_JSONL, FORMAT_MIMIC };
enum { SPLIT_ALL = 3 };
enum { BATCH = 64 }; /* pairs decoded at once */

struct cmdline {
    const char *text_model; /* HF BERT folder; or */
    const char *vocab;      /* a vocab.txt */
    int lowercase;          /* -1: the config's (or yes for --vocab) */
    const char *input;      /* JSONL file, "-" = stdin; the folder for mimic */
    const char *root;       /* NULL: the folder of the input */
    int format;
    int split;
    long image_size;
    long max_tokens;
    const char *out;        /* shard folder; NULL: one stream on stdout */
    long shard_size;
    int shard_size_set;
    int force;
    struct common_opts common;
};

enum { OPT_TEXT_MODEL = OPT_COMMON_LAST, OPT_VOCAB, OPT_LOWERCASE, OPT_CASED, OPT_MIMIC, OPT_FORMAT,
       OPT_SPLIT, OPT_ROOT, OPT_IMAGE_SIZE, OPT_MAX_TOKENS, OPT_SHARD_SIZE, OPT_FORCE };

static const struct option longopts[] = {
    {"text-model", required_argument, 0, OPT_TEXT_MODEL},
    {"vocab", required_argument, 0, OPT_VOCAB},
    {"lowercase", no_argument, 0, OPT_LOWERCASE},
    {"cased", no_argument, 0, OPT_CASED},
    {"mimic", required_argument, 0, OPT_MIMIC},
    {"format", required_argument, 0, OPT_FORMAT},
    {"split", required_argument, 0, OPT_SPLIT},
    {"root", required_argument, 0, OPT_ROOT},
    {"image-size", required_argument, 0, OPT_IMAGE_SIZE},
    {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
    {"out", required_argument, 0, 'o'},
    {"shard-size", required_argument, 0, OPT_SHARD_SIZE},
    {"force", no_argument, 0, OPT_FORCE},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"pairpack", usage};
    *cl = (struct cmdline){.lowercase = -1, .format = FORMAT_JSONL, .split = SPLIT_ALL, .image_size = 256,
                           .max_tokens = 112, .shard_size = 1000};
    common_defaults(&cl->common);
    const char *mimic = NULL;
    int split_set = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TEXT_MODEL: cl->text_model = optarg; break;
        case OPT_VOCAB: cl->vocab = optarg; break;
        case OPT_LOWERCASE: cl->lowercase = 1; break;
        case OPT_CASED: cl->lowercase = 0; break;
        case OPT_MIMIC:
            if (!*optarg) die_usage("--mimic: the folder name is empty");
            mimic = optarg;
            break;
        case OPT_FORMAT: cl->format = parse_enum("--format", optarg, formats); break;
        case OPT_SPLIT:
            cl->split = parse_enum("--split", optarg, splits);
            split_set = 1;
            break;
        case OPT_ROOT: cl->root = optarg; break;
        case OPT_IMAGE_SIZE: cl->image_size = parse_long("--image-size", optarg, 32, 4096); break;
        case OPT_MAX_TOKENS: cl->max_tokens = parse_long("--max-tokens", optarg, 8, 512); break;
        case 'o':
            if (!*optarg) die_usage("--out: the folder name is empty");
            cl->out = optarg;
            break;
        case OPT_SHARD_SIZE:
            cl->shard_size = parse_long("--shard-size", optarg, 1, 10000000);
            cl->shard_size_set = 1;
            break;
        case OPT_FORCE: cl->force = 1; break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input at most ('%s' is extra)", argv[optind]);
    if (!cl->text_model && !cl->vocab)
        die_usage("--text-model DIR or --vocab FILE is required (the BERT vocab.txt that tokenises the reports)");
    if (cl->text_model && cl->vocab) die_usage("--text-model and --vocab: give one of them");
    if (mimic) {
        if (cl->input) die_usage("--mimic DIR reads that folder; the operand '%s' is extra", cl->input);
        cl->format = FORMAT_MIMIC;
        cl->input = mimic;
    }
    if (cl->format == FORMAT_MIMIC && !cl->input) die_usage("--format mimic needs the dataset folder as its operand");
    if (split_set && cl->format != FORMAT_MIMIC) die_usage("--split needs --mimic (JSON lines have no split)");
    if (!cl->input) cl->input = "-";
    if (cl->shard_size_set && !cl->out) die_usage("--shard-size needs --out (standard output carries one stream)");
    if (cl->force && !cl->out) die_usage("--force needs --out");
}

/* ---- input ------------------------------------------------------------------ */

/* One pair as read, then as prepared. */
typedef struct pair {
    long line;            /* line of the JSONL file */
    char *id;
    char *path;           /* as the input gives it (goes into meta) */
    char *file;           /* resolved against the root */
    char *text;           /* cleaned report */
    int ntokens;          /* its \w tokens (MGCA keeps >= 3) */
    json_t *meta;         /* the record's meta */
    tensor *image;        /* u8 [S, S], or NULL when unreadable */
    char err[600];
} pair;

static void pair_clear(pair *p) {
    free(p->id);
    free(p->path);
    free(p->file);
    free(p->text);
    json_decref(p->meta);
    tensor_free(p->image);
    memset(p, 0, sizeof *p);
}

/* MIMIC split table: dicom_id -> split index, sorted for bsearch. */
typedef struct split_row { char *dicom; int split; } split_row;

typedef struct source {
    int format, split;
    const char *name;     /* for messages: the JSONL path or "stdin" */
    char *root;           /* image paths are relative to this ("" for none) */
    FILE *f;
    jsonl_reader r;
    split_row *rows;
    size_t nrows;
} source;

static int split_cmp(const void *a, const void *b) {
    return strcmp(((const split_row *)a)->dicom, ((const split_row *)b)->dicom);
}

static void split_load(source *s, const char *dir) {
    char *path = xasprintf("%s/mimic-cxr-2.0.0-split.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s: %s (a --mimic folder has the split table beside reports.jsonl)", path,
                strerror(errno));
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    long lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (lineno == 1) {
            if (strncmp(line, "dicom_id,", 9) != 0 || !strstr(line, ",split"))
                die("%s:1: expected the header dicom_id,study_id,subject_id,split", path);
            continue;
        }
        if (!*line) continue;
        char *comma = strchr(line, ','), *last = strrchr(line, ',');
        if (!comma || comma == last) die("%s:%ld: expected dicom_id,study_id,subject_id,split", path, lineno);
        *comma = 0;
        int sp = -1;
        for (int k = 0; k < SPLIT_ALL; k++)
            if (!strcmp(last + 1, splits[k])) sp = k;
        if (sp < 0) die("%s:%ld: split '%s' is not train, validate or test", path, lineno, last + 1);
        if (s->nrows == alloc) s->rows = xrealloc(s->rows, sizeof *s->rows * (alloc = alloc ? 2 * alloc : 1024));
        s->rows[s->nrows++] = (split_row){xstrdup(line), sp};
    }
    free(line);
    fclose(f);
    qsort(s->rows, s->nrows, sizeof *s->rows, split_cmp);
    free(path);
}

static int split_of(const source *s, const char *dicom) {
    split_row key = {(char *)dicom, 0};
    const split_row *r = bsearch(&key, s->rows, s->nrows, sizeof *s->rows, split_cmp);
    return r ? r->split : -1;
}

static void source_open(source *s, const struct cmdline *cl) {
    *s = (source){.format = cl->format, .split = cl->split};
    char *jsonl;
    if (cl->format == FORMAT_MIMIC) {
        struct stat st;
        if (stat(cl->input, &st) != 0 || !S_ISDIR(st.st_mode))
            die("--mimic %s: not a folder (cxrphantom --format mimic writes one)", cl->input);
        jsonl = xasprintf("%s/reports.jsonl", cl->input);
        s->root = xstrdup(cl->root ? cl->root : cl->input);
        split_load(s, cl->input);
    } else {
        jsonl = xstrdup(cl->input);
        if (cl->root) s->root = xstrdup(cl->root);
        else if (!strcmp(cl->input, "-")) s->root = xstrdup("");
        else {
            const char *slash = strrchr(cl->input, '/');
            s->root = slash ? xasprintf("%.*s", (int)(slash - cl->input), cl->input) : xstrdup("");
            if (slash && slash == cl->input) { free(s->root); s->root = xstrdup("/"); }
        }
    }
    if (!strcmp(jsonl, "-")) {
        s->f = stdin;
        s->name = "stdin";
    } else {
        s->f = fopen(jsonl, "r");
        if (!s->f) die("cannot open %s: %s", jsonl, strerror(errno));
        s->name = xstrdup(jsonl);
    }
    free(jsonl);
    jsonl_open(&s->r, s->f, s->name);
}

static void source_close(source *s) {
    jsonl_close(&s->r);
    if (s->f != stdin) {
        fclose(s->f);
        free((char *)s->name);
    }
    for (size_t i = 0; i < s->nrows; i++) free(s->rows[i].dicom);
    free(s->rows);
    free(s->root);
}

/* A bad record ends the run: "<input> line N: what". The message is made
 * before o (which may hold its strings) is freed, so a sanitizer build sees
 * no leak either. */
static void bad_record(const source *s, json_t *o, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
static void bad_record(const source *s, json_t *o, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_decref(o);
    die("%s line %ld%s", s->name, s->r.lineno, msg);
}

static const char *str_field(const source *s, json_t *o, const char *key, int required) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) bad_record(s, o, ": no \"%s\" (every pair needs id, path and text)", key);
        return NULL;
    }
    if (!json_is_string(v)) bad_record(s, o, ": \"%s\" is not a string", key);
    return json_string_value(v);
}

/* The next pair (of the chosen split), or 0 at the end. Bad records die. */
static int source_next(source *s, pair *p) {
    for (;;) {
        json_t *o = jsonl_next(&s->r);
        if (!o) return 0;
        if (!json_is_object(o)) bad_record(s, o, ": not a JSON object");
        const char *id = str_field(s, o, "id", 1);
        if (!*id) bad_record(s, o, ": the id is empty");
        int sp = -1;
        if (s->format == FORMAT_MIMIC) {
            sp = split_of(s, id);
            if (sp < 0) bad_record(s, o, " (%s): not in mimic-cxr-2.0.0-split.csv", id);
            if (s->split != SPLIT_ALL && sp != s->split) { json_decref(o); continue; }
        }
        const char *path = str_field(s, o, "path", 1);
        const char *text = str_field(s, o, "text", 0);
        const char *imp = str_field(s, o, "impression", 0), *fin = str_field(s, o, "findings", 0);
        if (!text && !imp && !fin) bad_record(s, o, " (%s): no \"text\" (nor \"impression\"/\"findings\")", id);
        p->line = s->r.lineno;
        p->id = xstrdup(id);
        p->path = xstrdup(path);
        p->file = path[0] == '/' || !s->root[0] ? xstrdup(path) : xasprintf("%s/%s", s->root, path);
        /* MGCA: impression + " " + findings; a lone text is the whole report */
        p->text = imp || fin ? report_clean(imp, fin, &p->ntokens) : report_clean(text, NULL, &p->ntokens);
        p->meta = json_object();
        json_object_set_new(p->meta, "path", json_string(path));
        json_object_set_new(p->meta, "text", json_string(p->text));
        if (sp >= 0) json_object_set_new(p->meta, "split", json_string(splits[sp]));
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) { /* the rest travels along */
            if (strcmp(key, "id") && strcmp(key, "path") && strcmp(key, "text") && strcmp(key, "impression") &&
                strcmp(key, "findings"))
                json_object_set(p->meta, key, v);
        }
        json_decref(o);
        return 1;
    }
}

/* ---- output ------------------------------------------------------------------- */

typedef struct sink {
    const char *dir;          /* NULL: stdout */
    long shard_size;
    stream_header h;
    stream_writer *w;
    atomic_file af;
    long in_shard, shards, records;
} sink;

static char *shard_path(const char *dir, long k) { return xasprintf("%s/pairs-%05ld.cxs", dir, k); }

static int is_shard_name(const char *n) {
    size_t len = strlen(n);
    if (len < 15 || strncmp(n, "pairs-", 6) || strcmp(n + len - 4, ".cxs")) return 0;
    for (size_t i = 6; i < len - 4; i++)
        if (n[i] < '0' || n[i] > '9') return 0;
    return 1;
}

/* --out: the folder made; shards of an earlier run refused (or, with
 * --force, removed) so a glob over it never mixes two runs. */
static void shard_dir_prepare(const char *dir, int force) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) die("cannot make the folder %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) die("cannot read the folder %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_shard_name(e->d_name)) continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        if (!force) die("%s already holds shards (%s); use another folder, or --force to replace them", dir, p);
        if (unlink(p) != 0) die("cannot remove %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
}

static void sink_open(sink *k, const struct cmdline *cl, const wordpiece *wp, const char *vocab_path) {
    *k = (sink){.dir = cl->out, .shard_size = cl->shard_size};
    stream_header_init(&k->h, "pairs", "pairpack " SYNTHCXR_VERSION);
    json_t *m = k->h.rec.meta;
    json_object_set_new(m, "image_size", json_integer(cl->image_size));
    json_object_set_new(m, "max_tokens", json_integer(cl->max_tokens));
    json_object_set_new(m, "vocab", json_string(vocab_path));
    json_object_set_new(m, "lowercase", json_boolean(wordpiece_lowercase(wp)));
    if (cl->format == FORMAT_MIMIC) json_object_set_new(m, "split", json_string(splits[cl->split]));
    if (k->dir) shard_dir_prepare(k->dir, cl->force);
}

/* The stream (stdout, or the next shard) is opened, header first, when its
 * first record is ready: input that fails early leaves stdout empty. */
static void sink_start(sink *k) {
    if (k->dir) {
        char *path = shard_path(k->dir, k->shards);
        atomic_open(&k->af, path);
        k->w = stream_writer_open(k->af.f, path);
        free(path);
    } else {
        k->w = stream_writer_open(stdout, "stdout");
    }
    stream_write_header(k->w, &k->h);
}

static void shard_finish(sink *k) {
    stream_writer_close(k->w);
    k->w = NULL;
    atomic_commit(&k->af);
    k->shards++;
    k->in_shard = 0;
}

static void sink_write(sink *k, const record *rec) {
    if (!k->w) sink_start(k);
    stream_write_record(k->w, rec);
    k->records++;
    if (k->dir && ++k->in_shard == k->shard_size) shard_finish(k);
}

/* No pairs: stdout still gets a header (a valid, empty "pairs" stream);
 * --out gets no shard. */
static void sink_close(sink *k) {
    if (k->dir) {
        if (k->w) shard_finish(k);
    } else {
        if (!k->w) sink_start(k);
        stream_writer_close(k->w);
    }
    stream_header_clear(&k->h);
}

/* ---- the loop ------------------------------------------------------------------- */

typedef struct counts { long read, unreadable, empty; } counts;

static void write_pair(sink *k, pair *p, const wordpiece *wp, long max_tokens) {
    record rec;
    record_init(&rec);
    record_set_id(&rec, p->id);
    json_decref(rec.meta);
    rec.meta = p->meta;
    p->meta = NULL;
    record_add_tensor(&rec, "image", p->image);
    p->image = NULL;
    tensor *ids = tensor_new(DTYPE_I32, 1, (int64_t[]){max_tokens});
    tensor *mask = tensor_new(DTYPE_U8, 1, (int64_t[]){max_tokens});
    wordpiece_encode(wp, p->text, (int)max_tokens, ids->data, mask->data);
    record_add_tensor(&rec, "input_ids", ids);
    record_add_tensor(&rec, "attention_mask", mask);
    sink_write(k, &rec);
    record_clear(&rec);
}

/* Decodes a batch's images in parallel, then writes (or skips) in order. */
static void flush_batch(pair *b, int n, int size, const source *s, sink *k, const wordpiece *wp,
                        long max_tokens, counts *c) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++)
        if (b[i].ntokens >= REPORT_MIN_TOKENS) b[i].image = image_prep_load(b[i].file, size, b[i].err, sizeof b[i].err);
    for (int i = 0; i < n; i++) {
        pair *p = &b[i];
        if (p->ntokens < REPORT_MIN_TOKENS) {
            warn("%s line %ld (%s): skipped: the report is empty after cleaning (%d word%s; MGCA keeps >= %d)",
                 s->name, p->line, p->id, p->ntokens, p->ntokens == 1 ? "" : "s", REPORT_MIN_TOKENS);
            c->empty++;
        } else if (!p->image) {
            warn("%s line %ld (%s): skipped: unreadable image: %s", s->name, p->line, p->id, p->err);
            c->unreadable++;
        } else {
            write_pair(k, p, wp, max_tokens);
        }
        pair_clear(p);
    }
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "pairpack:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);

    char *vocab_path = cl.vocab ? xstrdup(cl.vocab) : xasprintf("%s/vocab.txt", cl.text_model);
    wordpiece *wp = cl.vocab ? wordpiece_load(cl.vocab, cl.lowercase != 0, -1)
                             : wordpiece_open_dir(cl.text_model, cl.lowercase);
    source src;
    source_open(&src, &cl);
    sink out;
    sink_open(&out, &cl, wp, vocab_path);

    progress prog;
    progress_start(&prog, "packed", -1, "pair");
    counts c = {0};
    pair batch[BATCH];
    memset(batch, 0, sizeof batch);
    int n = 0;
    while (source_next(&src, &batch[n])) {
        c.read++;
        if (++n == BATCH) {
            flush_batch(batch, n, (int)cl.image_size, &src, &out, wp, cl.max_tokens, &c);
            n = 0;
            progress_update(&prog, c.read);
        }
    }
    flush_batch(batch, n, (int)cl.image_size, &src, &out, wp, cl.max_tokens, &c);
    progress_update(&prog, c.read);
    progress_end(&prog);
    sink_close(&out);

    char where[64] = "";
    if (cl.out) snprintf(where, sizeof where, " in %ld shard%s", out.shards, out.shards == 1 ? "" : "s");
    if (c.unreadable || c.empty)
        warn("%ld of %ld pairs written%s; skipped %ld with an unreadable image, %ld with an empty report", out.records,
             c.read, where, c.unreadable, c.empty);
    else
        info("%ld of %ld pairs written%s", out.records, c.read, where);
    source_close(&src);
    wordpiece_free(wp);
    free(vocab_path);
    return EXIT_OK;
}
