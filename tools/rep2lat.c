/* rep2lat.c — head of the generation pipeline: radiology reports (JSON Lines)
 * in, a cxrstream(5) out with, per report, the CLIP text states that condition
 * the UNet and the seeded initial latent noise (the unconditional states for
 * guidance travel once, in the header). Reports are read, cleaned and batched
 * through the text encoder (on the CPU, or on the GPU with clip_text_cuda);
 * each batch's records are written whole, in order. The latents are drawn on
 * the host whatever the device. */
#include "clip_text.h"
#include "clip_text_cuda.h"
#include "clip_tokenizer.h"
#include "common.h"
#include "diffusers.h"
#include "json.h"
#include "png_io.h"
#include "progress.h"
#include "rng.h"
#include "stream.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "Usage: rep2lat --model DIR [OPTION]... [FILE]\n"
    "Turn radiology reports (JSON Lines) into Stable Diffusion conditioning: CLIP\n"
    "text states and seeded initial latents, as a cxrstream(5) on standard output.\n"
    "With no FILE, or when FILE is -, read standard input.\n"
    "\n"
    "  -m, --model DIR           diffusers model folder (RoentGen, SD 1.x, SD 2.x);\n"
    "                            required\n"
    "      --field KEY           report text key (default: text, else impression\n"
    "                            then findings)\n"
    "      --negative TEXT       prompt of the unconditional states (default: empty)\n"
    "      --seed N              noise seed of the first record; record i gets N+i\n"
    "                            (default 0)\n"
    "      --height N            image height, a multiple of 8 (default: the\n"
    "                            unet's sample_size x the VAE scale, 8)\n"
    "      --width N             image width, a multiple of 8 (default: as\n"
    "                            --height)\n"
    "      --clip-skip N         skip the last N CLIP layers; 0 = last_hidden_state\n"
    "                            (default 0)\n"
    "      --batch B             reports per text-encoder pass (the GPU batch),\n"
    "                            1-1024 (default 1)\n"
    "      --precision P         fp32, fp16 or bf16: the latents are drawn in that\n"
    "                            type; on the GPU the text encoder's storage type\n"
    "                            (default fp16 there), on the CPU its weights are\n"
    "                            rounded to it (default fp32 there)\n"
    "      --shard K/N           write only records i with i mod N = K-1 (ids and\n"
    "                            seeds as in the whole file), 1 <= K <= N\n"
    "      --skip-existing DIR   skip records whose PNG (lat2png's name) is in DIR\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  cat reports.jsonl | rep2lat -m roentgen | denoise --steps 50 | lat2png -o png\n";

static const char *const precisions[] = {"fp32", "fp16", "bf16", NULL};

struct cmdline {
    const char *model;     /* diffusers folder */
    const char *field;     /* NULL: "text", else impression + findings */
    const char *negative;  /* NULL: the empty prompt */
    const char *input;     /* "-" = stdin */
    long seed;
    long height, width;    /* 0: from the model's unet/config.json */
    long clip_skip;
    long batch;
    int precision;         /* index into precisions; -1: per device (main resolves it) */
    long shard_k, shard_n; /* --shard K/N; N = 0: every record */
    const char *skip_dir;  /* --skip-existing DIR, or NULL */
    struct common_opts common;
};

enum { OPT_FIELD = OPT_COMMON_LAST, OPT_NEGATIVE, OPT_SEED, OPT_HEIGHT, OPT_WIDTH,
       OPT_CLIP_SKIP, OPT_BATCH, OPT_PRECISION, OPT_SHARD, OPT_SKIP_EXISTING };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"field", required_argument, 0, OPT_FIELD},
    {"negative", required_argument, 0, OPT_NEGATIVE},
    {"seed", required_argument, 0, OPT_SEED},
    {"height", required_argument, 0, OPT_HEIGHT},
    {"width", required_argument, 0, OPT_WIDTH},
    {"clip-skip", required_argument, 0, OPT_CLIP_SKIP},
    {"batch", required_argument, 0, OPT_BATCH},
    {"precision", required_argument, 0, OPT_PRECISION},
    {"shard", required_argument, 0, OPT_SHARD},
    {"skip-existing", required_argument, 0, OPT_SKIP_EXISTING},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

/* Image sides must map onto whole latent pixels (the VAE scales by 8). */
static long parse_side(const char *opt, const char *s) {
    long v = parse_long(opt, s, 8, 8192);
    if (v % 8) die_usage("%s: %ld is not a multiple of 8", opt, v);
    return v;
}

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"rep2lat", usage};
    *cl = (struct cmdline){.input = "-", .batch = 1, .precision = -1};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "m:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm': cl->model = optarg; break;
        case OPT_FIELD:
            if (!*optarg) die_usage("--field: the key is empty");
            cl->field = optarg;
            break;
        case OPT_NEGATIVE: cl->negative = optarg; break;
        case OPT_SEED: cl->seed = parse_long("--seed", optarg, 0, INT64_MAX); break;
        case OPT_HEIGHT: cl->height = parse_side("--height", optarg); break;
        case OPT_WIDTH: cl->width = parse_side("--width", optarg); break;
        case OPT_CLIP_SKIP: cl->clip_skip = parse_long("--clip-skip", optarg, 0, 47); break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 1, 1024); break;
        case OPT_PRECISION: cl->precision = parse_enum("--precision", optarg, precisions); break;
        case OPT_SHARD: {
            const char *slash = strchr(optarg, '/');
            if (!slash || slash == optarg) die_usage("--shard: '%s' is not K/N", optarg);
            char k[32];
            if ((size_t)(slash - optarg) >= sizeof k) die_usage("--shard: '%s' is not K/N", optarg);
            memcpy(k, optarg, (size_t)(slash - optarg));
            k[slash - optarg] = 0;
            cl->shard_n = parse_long("--shard N", slash + 1, 1, 1000000);
            cl->shard_k = parse_long("--shard K", k, 1, cl->shard_n);
            break;
        }
        case OPT_SKIP_EXISTING:
            if (!*optarg) die_usage("--skip-existing: the folder name is empty");
            cl->skip_dir = optarg;
            break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input file at most ('%s' is extra)", argv[optind]);
    if (!cl->model) die_usage("--model DIR is required (a diffusers folder)");
}

/* ---- the model ------------------------------------------------------------- */

struct model {
    diffusers_model *dm;
    clip_tokenizer *tok;
    clip_text_model *te;
    clip_text_cuda *gte;  /* the text encoder on the GPU, or NULL: on the CPU */
    int max_len;          /* 77 */
    int dim;              /* D */
    const char *family;   /* "sd1" (CLIP ViT-L/14, quick_gelu) or "sd2" (OpenCLIP, gelu) */
    long height, width;
    long scale;           /* VAE scale factor: pixels per latent pixel (8) */
    long channels;        /* latent channels: unet in_channels (4) */
};

/* A config in the model folder that may be absent (unet/, vae/ when only the
 * text side is installed). */
static json_t *load_part_config(const diffusers_model *dm, const char *part) {
    char *path = xasprintf("%s/%s/config.json", dm->root, part);
    json_t *j = json_load_path_opt(path);
    free(path);
    return j;
}

/* The latent geometry as StableDiffusionPipeline sets it: the VAE scale
 * factor 2^(len(vae block_out_channels) - 1) (8 without vae/config.json), the
 * unet's in_channels (4 without unet/config.json), and the default image size
 * unet sample_size x scale; without unet/config.json --height and --width are
 * needed. */
static void model_geometry(struct model *m, long height, long width) {
    m->scale = 8, m->channels = 4;
    json_t *vae = load_part_config(m->dm, "vae");
    if (vae) {
        json_t *boc = json_object_get(vae, "block_out_channels");
        if (json_is_array(boc) && json_array_size(boc) > 0 && json_array_size(boc) <= 4)
            m->scale = 1L << (json_array_size(boc) - 1);
        json_decref(vae);
    }
    m->height = height, m->width = width;
    json_t *unet = load_part_config(m->dm, "unet");
    if (!unet && (!height || !width))
        die("%s/: no unet/config.json to take the image size from; give --height and --width",
            m->dm->root);
    if (unet) {
        char *what = xasprintf("%s/unet/config.json", m->dm->root);
        m->channels = json_get_int(unet, "in_channels", 4, what);
        if (m->channels < 1 || m->channels > 64) die("%s: in_channels %ld is not a latent's", what, m->channels);
        long sh, sw;
        json_t *ss = json_object_get(unet, "sample_size");
        if (json_is_array(ss) && json_array_size(ss) == 2 && json_is_integer(json_array_get(ss, 0)) &&
            json_is_integer(json_array_get(ss, 1))) {
            sh = (long)json_integer_value(json_array_get(ss, 0));
            sw = (long)json_integer_value(json_array_get(ss, 1));
        } else {
            sh = sw = json_get_int(unet, "sample_size", 64, what);
        }
        if (!height) m->height = sh * m->scale;
        if (!width) m->width = sw * m->scale;
        if (sh < 1 || sw < 1 || m->height > 8192 || m->width > 8192 || m->height % 8 || m->width % 8)
            die("%s: sample_size %ld x %ld gives an image of %ld x %ld, not multiples of 8 from 8 to 8192; "
                "give --height and --width", what, sh, sw, m->height, m->width);
        free(what);
        json_decref(unet);
    }
    if (m->height % m->scale || m->width % m->scale)
        die("%ld x %ld is not a multiple of the VAE's scale factor %ld (from %s/vae/config.json)", m->height,
            m->width, m->scale, m->dm->root);
}

static void model_open(struct model *m, const struct cmdline *cl) {
    m->dm = diffusers_open(cl->model, DIFFUSERS_PREFER_FP32);
    const diffusers_part *te = diffusers_part_get(m->dm, "text_encoder");
    dtype_t round_to = cl->precision == 1 ? DTYPE_F16 : cl->precision == 2 ? DTYPE_BF16 : DTYPE_F32;
    char *vocab = diffusers_file(m->dm, "tokenizer", "vocab.json");
    char *tokdir = xstrdup(vocab);
    m->tok = clip_tokenizer_open(dirname(tokdir));
    free(tokdir);
    free(vocab);
    m->te = clip_text_load(te, round_to);
    m->max_len = clip_tokenizer_max_length(m->tok);
    m->dim = m->te->cfg.hidden;
    if (m->max_len > m->te->cfg.max_pos)
        die("%s/: the tokenizer makes %d tokens but the text encoder has %d positions", m->dm->root,
            m->max_len, m->te->cfg.max_pos);
    if (cl->clip_skip > m->te->cfg.layers)
        die("--clip-skip %ld: the text encoder of %s/ has %d layers", cl->clip_skip, m->dm->root,
            m->te->cfg.layers);
    /* SD 1.x conditions on OpenAI's CLIP ViT-L/14 (quick_gelu), SD 2.x on
     * OpenCLIP ViT-H/14 (gelu); the activation in text_encoder/config.json
     * tells them apart, and the tokenizer's pad token agrees (EOS vs "!"). */
    m->family = m->te->cfg.act == CLIP_ACT_QUICK_GELU ? "sd1" : "sd2";
    json_t *unet = load_part_config(m->dm, "unet");
    if (unet) {
        long cad = json_get_int(unet, "cross_attention_dim", m->dim, "unet/config.json");
        json_decref(unet); /* before a die too: LeakSanitizer may not see it reachable */
        if (cad != m->dim)
            die("%s/: the unet's cross_attention_dim is %ld but the text encoder's hidden_size is %d",
                m->dm->root, cad, m->dim);
    }
    model_geometry(m, cl->height, cl->width);
}

/* The states of n prompts of T token ids, on whichever device holds the encoder. */
static void model_encode(const struct model *m, float *out, const int32_t *ids, int n, int clip_skip) {
    if (m->gte) clip_text_cuda_forward(m->gte, out, ids, n, m->max_len, clip_skip);
    else clip_text_forward(m->te, out, ids, n, m->max_len, clip_skip);
}

static const dtype_t prec_dtype[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};   /* by index of precisions */

/* The text encoder on the GPU in the storage type of --precision, with the
 * arena for --batch prompts allocated once; when the GPU cannot hold it, the
 * batch that fits. Before anything is written. */
static void model_to_gpu(struct model *m, const struct cmdline *cl) {
    dtype_t dt = prec_dtype[cl->precision];
    m->gte = clip_text_cuda_new(m->te, dt);
    clip_text_cuda_oom oom;
    if (clip_text_cuda_reserve(m->gte, (int)cl->batch, m->max_len, &oom)) return;
    int fit = clip_text_cuda_max_batch(&m->te->cfg, dt, m->max_len, oom.avail);
    const double gib = 1073741824.0;
    char tail[128];
    if (fit > 0) snprintf(tail, sizeof tail, "the largest --batch that fits is %d", fit);
    else snprintf(tail, sizeof tail, "not even --batch 1 fits");
    die("out of GPU memory: --batch %ld of %d tokens needs %.2f GiB of %s text-encoder activations, and %.2f GiB of "
        "the GPU's %.2f GiB are free after the weights (%.2f GiB kept for cuBLAS); %s",
        cl->batch, m->max_len, oom.need / gib, dtype_name(dt), oom.free / gib, oom.total / gib,
        CLIP_TEXT_CUDA_RESERVE / gib, tail);
}

static void model_close(struct model *m) {
    clip_text_cuda_free(m->gte);
    clip_text_free(m->te);
    clip_tokenizer_free(m->tok);
    diffusers_close(m->dm);
}

/* ---- reports --------------------------------------------------------------- */

/* The prompt as a user of MIMIC reports expects it: de-identification blanks
 * (runs of 3 or more underscores) removed, ASCII white space collapsed to one
 * space, trimmed. In fresh memory. */
static char *clean_text(const char *s) {
    char *out = xmalloc(strlen(s) + 1), *o = out;
    int space = 0;
    while (*s) {
        if (s[0] == '_' && s[1] == '_' && s[2] == '_') {
            while (*s == '_') s++;
            continue;
        }
        if (strchr(" \t\n\r\f\v", *s)) {
            space = 1;
            s++;
            continue;
        }
        if (space && o > out) *o++ = ' ';
        space = 0;
        *o++ = *s++;
    }
    *o = 0;
    return out;
}

/* An input error: the reports already read are encoded and written first,
 * so the records before the bad line are whole on stdout; then it dies. */
struct pending;
static void fail(struct pending *p, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Reports read but not yet encoded (at most --batch). */
struct report {
    char *id, *text;
    long line;
    uint64_t seed;
};
struct pending {
    struct report *r;
    int n, cap;
    const struct cmdline *cl;
    struct model *m;
    stream_writer *out;
    const char *src;       /* input name for meta and messages */
    long written;
    long counted;          /* non-empty reports seen: record i of the whole input */
    long have_png;         /* left out by --skip-existing */
    uint64_t next_seed;
    int32_t *ids;          /* [batch, max_len] */
    float *states;         /* [batch, max_len, D] */
    progress prog;
};

static void encode_and_write(struct pending *p) {
    if (!p->n) return;
    const struct model *m = p->m;
    const int T = m->max_len, D = m->dim;
    for (int i = 0; i < p->n; i++) clip_tokenize(m->tok, p->r[i].text, p->ids + (size_t)i * T);
    model_encode(m, p->states, p->ids, p->n, (int)p->cl->clip_skip);
    dtype_t ldt = prec_dtype[p->cl->precision];   /* the same on either device */
    for (int i = 0; i < p->n; i++) {
        struct report *r = &p->r[i];
        record *rec = record_new(r->id);
        json_object_set_new(rec->meta, "text", json_string(r->text));
        json_object_set_new(rec->meta, "seed", json_integer((json_int_t)r->seed));
        json_object_set_new(rec->meta, "model", json_string(m->dm->name));
        json_object_set_new(rec->meta, "height", json_integer(m->height));
        json_object_set_new(rec->meta, "width", json_integer(m->width));
        json_object_set_new(rec->meta, "clip_skip", json_integer(p->cl->clip_skip));
        json_object_set_new(rec->meta, "source", json_pack("{s:s,s:I}", "file", p->src, "line", (json_int_t)r->line));
        tensor *cond = tensor_new_f32(2, (int64_t[]){T, D});
        memcpy(cond->data, p->states + (size_t)i * T * D, (size_t)T * D * sizeof(float));
        record_add_tensor(rec, "cond", cond);
        /* = prepare_latents for one image: randn([1, C, H/s, W/s]) from
         * torch.Generator("cpu").manual_seed(seed), in the pipeline's dtype;
         * not yet multiplied by the scheduler's init_noise_sigma. */
        int64_t shape[3] = {m->channels, m->height / m->scale, m->width / m->scale};
        torch_gen g;
        torch_gen_seed(&g, r->seed);
        tensor *lat = tensor_new(ldt, 3, shape);
        torch_randn_tensor(&g, lat);
        if (ldt != DTYPE_F32) {
            tensor *f = tensor_to_f32(lat);
            tensor_free(lat);
            lat = f;
        }
        record_add_tensor(rec, "latents", lat);
        stream_write_record(p->out, rec);
        record_free(rec);
        free(r->id), free(r->text);
        p->written++;
    }
    p->n = 0;
    progress_update(&p->prog, p->written);
}

static void fail(struct pending *p, const char *fmt, ...) {
    encode_and_write(p); /* the reports before the bad line go out whole */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die("%s", msg);
}

/* A string field of a report: NULL when absent or null; an input error when
 * it is not a string. */
static const char *field_str(struct pending *p, const json_t *obj, const char *key, long line) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) fail(p, "%s: line %ld: \"%s\" is not a string", p->src, line, key);
    return json_string_value(v);
}

/* One JSON line into the pending batch (or skipped with a warning). */
static void add_report(struct pending *p, const json_t *j, long line) {
    if (!json_is_object(j)) fail(p, "%s: line %ld: a report must be a JSON object", p->src, line);
    char *raw;
    if (p->cl->field) {
        const char *t = field_str(p, j, p->cl->field, line);
        raw = xstrdup(t ? t : "");
    } else if (json_object_get(j, "text") && !json_is_null(json_object_get(j, "text"))) {
        raw = xstrdup(field_str(p, j, "text", line));
    } else {
        const char *imp = field_str(p, j, "impression", line), *fin = field_str(p, j, "findings", line);
        raw = xasprintf("%s %s", imp ? imp : "", fin ? fin : "");
    }
    char *text = clean_text(raw);
    free(raw);
    char *id;
    json_t *jid = json_object_get(j, "id");
    if (!jid || json_is_null(jid)) {
        id = xasprintf("%ld", line);
    } else if (json_is_string(jid) && *json_string_value(jid) && !memchr(json_string_value(jid), 0, json_string_length(jid))) {
        id = xstrdup(json_string_value(jid));
    } else if (json_is_integer(jid)) {
        id = xasprintf("%lld", (long long)json_integer_value(jid));
    } else {
        free(text);
        fail(p, "%s: line %ld: \"id\" must be a non-empty string or an integer", p->src, line);
    }
    uint64_t seed = p->next_seed;
    json_t *js = json_object_get(j, "seed");
    if (js && !json_is_null(js)) {
        if (!json_is_integer(js) || json_integer_value(js) < 0) {
            free(text), free(id);
            fail(p, "%s: line %ld: \"seed\" must be an integer from 0 to 2^63-1", p->src, line);
        }
        seed = (uint64_t)json_integer_value(js);
    }
    if (!*text) {
        warn("%s: line %ld: report \"%s\" is empty%s%s; skipped", p->src, line, id,
             p->cl->field ? " in field " : "", p->cl->field ? p->cl->field : "");
        free(text), free(id);
        return;
    }
    p->next_seed++;
    long i = p->counted++;
    /* --shard and --skip-existing leave a record out after its id and seed
     * are fixed, so each record gets what a whole, single run gives it. */
    int out = p->cl->shard_n && i % p->cl->shard_n != p->cl->shard_k - 1;
    if (!out && p->cl->skip_dir) {
        char *name = pngio_file_name(id);
        char *path = xasprintf("%s/%s", p->cl->skip_dir, name);
        struct stat st;
        out = stat(path, &st) == 0;
        if (out) {
            /* another id may give the same name ("a b" and "a_b"): only the
             * image made for this id counts (lat2png writes it as tEXt "id") */
            pngio_image *im = pngio_read(path);
            const char *made_for = pngio_text_get(im, "id");
            if (!made_for || strcmp(made_for, id)) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s: line %ld: the PNG of id \"%.200s\", %.300s, was made for %s%.200s%s",
                         p->src, line, id, path, made_for ? "id \"" : "", made_for ? made_for : "no id (no id text chunk)",
                         made_for ? "\"" : "");
                pngio_image_free(im);
                free(text), free(id), free(name), free(path);
                fail(p, "%s", msg);
            }
            pngio_image_free(im);
        }
        p->have_png += out;
        free(name), free(path);
    }
    if (out) {
        free(text), free(id);
        return;
    }
    p->r[p->n++] = (struct report){id, text, line, seed};
    if (p->n == p->cap) encode_and_write(p);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "rep2lat:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    enum device_kind dev = common_start(&cl.common);
    if (cl.precision < 0) cl.precision = dev == DEVICE_CUDA ? 1 : 0;   /* fp16 on the GPU */

    FILE *in = stdin;
    const char *src = "stdin";
    if (strcmp(cl.input, "-")) {
        in = fopen(cl.input, "r");
        if (!in) die("%s: %s", cl.input, strerror(errno));
        src = cl.input;
    }
    struct model m = {0};
    model_open(&m, &cl);
    if (dev == DEVICE_CUDA) model_to_gpu(&m, &cl);
    info("text encoder: %s %s, batch %ld", dev == DEVICE_CUDA ? "cuda" : "cpu", precisions[cl.precision], cl.batch);
    const int T = m.max_len, D = m.dim;

    /* The header: run-level provenance and the unconditional states, which
     * diffusers computes from the negative prompt without clip_skip. */
    stream_writer *out = stream_writer_open(stdout, "stdout");
    stream_header h;
    stream_header_init(&h, "conditioning", "rep2lat " SYNTHCXR_VERSION);
    const clip_text_config *c = &m.te->cfg;
    json_object_set_new(h.rec.meta, "model", json_string(m.dm->name));
    json_object_set_new(h.rec.meta, "model_path", json_string(m.dm->root));
    json_object_set_new(h.rec.meta, "family", json_string(m.family));
    json_object_set_new(h.rec.meta, "text_encoder",
                        json_pack("{s:s,s:i,s:i,s:i,s:i,s:s,s:i,s:i,s:i,s:i}", "class", "CLIPTextModel",
                                  "hidden_size", c->hidden, "num_hidden_layers", c->layers,
                                  "num_attention_heads", c->heads, "intermediate_size", c->inter,
                                  "hidden_act", c->act_name, "vocab_size", c->vocab, "max_length", T,
                                  "pad_token_id", (int)clip_tokenizer_pad(m.tok), "eos_token_id",
                                  (int)clip_tokenizer_eos(m.tok)));
    json_object_set_new(h.rec.meta, "negative", json_string(cl.negative ? cl.negative : ""));
    json_object_set_new(h.rec.meta, "clip_skip", json_integer(cl.clip_skip));
    json_object_set_new(h.rec.meta, "height", json_integer(m.height));
    json_object_set_new(h.rec.meta, "width", json_integer(m.width));
    json_object_set_new(h.rec.meta, "precision", json_string(precisions[cl.precision]));
    json_object_set_new(h.rec.meta, "latent_scaled", json_false());
    {
        int32_t *ids = xmalloc((size_t)T * sizeof *ids);
        clip_tokenize(m.tok, cl.negative ? cl.negative : "", ids); /* as given, as diffusers */
        tensor *uncond = tensor_new_f32(2, (int64_t[]){T, D});
        model_encode(&m, uncond->data, ids, 1, 0);
        record_add_tensor(&h.rec, "uncond", uncond);
        free(ids);
    }
    stream_write_header(out, &h);
    stream_header_clear(&h);

    struct pending p = {.cap = (int)cl.batch, .cl = &cl, .m = &m, .out = out, .src = src,
                        .next_seed = (uint64_t)cl.seed};
    p.r = xcalloc(p.cap, sizeof *p.r);
    p.ids = xmalloc((size_t)p.cap * T * sizeof *p.ids);
    p.states = xmalloc_aligned((size_t)p.cap * T * D * sizeof *p.states);
    progress_start(&p.prog, "text encoder", 0, "report");

    /* JSON Lines by hand rather than jsonl_next, so that a malformed line
     * first lets the reports before it out (see fail). */
    char *buf = NULL;
    size_t cap = 0;
    long line = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, in)) >= 0) {
        line++;
        if ((size_t)n != strlen(buf)) fail(&p, "%s: line %ld: the line contains a NUL byte", src, line);
        const char *s = buf;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s) continue; /* a blank line */
        json_error_t err;
        json_t *j = json_loadb(buf, (size_t)n, 0, &err);
        if (!j) fail(&p, "%s: line %ld: malformed JSON at column %d: %s", src, line, err.column, err.text);
        add_report(&p, j, line);
        json_decref(j);
    }
    if (ferror(in)) fail(&p, "%s: read error after line %ld: %s", src, line, strerror(errno));
    encode_and_write(&p);
    progress_end(&p.prog);
    if (cl.skip_dir) info("%ld report(s) skipped: their PNG is in %s", p.have_png, cl.skip_dir);
    free(buf);
    if (in != stdin) fclose(in);
    stream_writer_close(out);
    free(p.r), free(p.ids), free(p.states);
    model_close(&m);
    return 0;
}
