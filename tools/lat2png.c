/* lat2png.c — the tail of the generation pipeline: decodes each record's
 * final latents with the VAE (libcommon/vae.h on the CPU, vae_cuda.h on the
 * GPU, --batch latents per pass) and writes one PNG per record (report and
 * provenance in text chunks), and a JSON line per image on stdout (the
 * manifest pairpack reads). Pixels are made as diffusers' pipelines make
 * them; grey is PIL's convert("L"). */
#include "common.h"
#include "png_io.h"
#include "progress.h"
#include "stream.h"
#include "vae.h"
#include "vae_cuda.h"

#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: lat2png [OPTION]... [FILE]\n"
    "Decode denoised latents with the VAE into PNG files, one per record, named from\n"
    "the record's id. Reads a cxrstream(5) from FILE (or standard input when FILE is\n"
    "- or absent); writes a JSON line per image (id, path, text, provenance) to\n"
    "standard output.\n"
    "\n"
    "  -m, --model DIR           diffusers model folder (default: the model named\n"
    "                            in the stream)\n"
    "  -o, --outdir DIR          folder for the PNG files (default: .)\n"
    "      --gray                grey (ITU-R 601 luma) instead of RGB\n"
    "      --depth N             bits per sample, 8 or 16 (default 8)\n"
    "      --tile PX             decode in overlapping tiles of PX pixels, a\n"
    "                            multiple of 64; 0 = whole image (default 512)\n"
    "      --force               overwrite existing files instead of failing\n"
    "      --batch B             latents per VAE pass, 1-1024 (default 1); on the\n"
    "                            GPU the arena is sized for B\n"
    "      --precision P         fp32, fp16 or bf16 (default: fp32 on the CPU,\n"
    "                            fp16 on CUDA)\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  rep2lat -m roentgen reports.jsonl | denoise | lat2png --gray -o png >png.jsonl\n";

static const char *const precisions[] = {"fp32", "fp16", "bf16", NULL};
static const dtype_t prec_dtype[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};   /* by index of precisions */

struct cmdline {
    const char *model;   /* NULL: the folder named in the stream header */
    const char *outdir;
    const char *input;   /* "-" = stdin */
    int gray;
    long depth;          /* 8 or 16 */
    long tile;           /* pixels; 0 = no tiling */
    int force;
    long batch;
    int precision;       /* index into precisions; -1: per device */
    struct common_opts common;
};

enum { OPT_GRAY = OPT_COMMON_LAST, OPT_DEPTH, OPT_TILE, OPT_FORCE, OPT_BATCH, OPT_PRECISION };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"outdir", required_argument, 0, 'o'},
    {"gray", no_argument, 0, OPT_GRAY},
    {"depth", required_argument, 0, OPT_DEPTH},
    {"tile", required_argument, 0, OPT_TILE},
    {"force", no_argument, 0, OPT_FORCE},
    {"batch", required_argument, 0, OPT_BATCH},
    {"precision", required_argument, 0, OPT_PRECISION},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"lat2png", usage};
    *cl = (struct cmdline){.outdir = ".", .input = "-", .depth = 8, .tile = 512, .batch = 1,
                           .precision = -1};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "m:o:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm': cl->model = optarg; break;
        case 'o':
            if (!*optarg) die_usage("--outdir: the folder name is empty");
            cl->outdir = optarg;
            break;
        case OPT_GRAY: cl->gray = 1; break;
        case OPT_DEPTH:
            cl->depth = parse_long("--depth", optarg, 8, 16);
            if (cl->depth != 8 && cl->depth != 16) die_usage("--depth: %ld is not 8 or 16", cl->depth);
            break;
        case OPT_TILE:
            /* Tiles map onto whole latent pixels and whole VAE blocks. */
            cl->tile = parse_long("--tile", optarg, 0, 8192);
            if (cl->tile % 64) die_usage("--tile: %ld is not a multiple of 64", cl->tile);
            break;
        case OPT_FORCE: cl->force = 1; break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 1, 1024); break;
        case OPT_PRECISION: cl->precision = parse_enum("--precision", optarg, precisions); break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input file at most ('%s' is extra)", argv[optind]);
}

/* ---- file names ------------------------------------------------------------ */

/* The names given out in this run (open addressing), to catch two ids that
 * map to one file. */
typedef struct name_set {
    char **slot;
    long *rec;        /* record number that took the name */
    size_t cap, n;
} name_set;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds name; returns 0, or the record number that already has it. */
static long name_set_add(name_set *ns, const char *name, long rec) {
    if (2 * (ns->n + 1) > ns->cap) {
        name_set old = *ns;
        ns->cap = old.cap ? 2 * old.cap : 64;
        ns->slot = xcalloc(ns->cap, sizeof *ns->slot);
        ns->rec = xcalloc(ns->cap, sizeof *ns->rec);
        ns->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slot[i]) {
                size_t j = hash_str(old.slot[i]) & (ns->cap - 1);
                while (ns->slot[j]) j = (j + 1) & (ns->cap - 1);
                ns->slot[j] = old.slot[i];
                ns->rec[j] = old.rec[i];
                ns->n++;
            }
        free(old.slot);
        free(old.rec);
    }
    size_t j = hash_str(name) & (ns->cap - 1);
    for (; ns->slot[j]; j = (j + 1) & (ns->cap - 1))
        if (!strcmp(ns->slot[j], name)) return ns->rec[j];
    ns->slot[j] = xstrdup(name);
    ns->rec[j] = rec;
    ns->n++;
    return 0;
}

static void name_set_free(name_set *ns) {
    for (size_t i = 0; i < ns->cap; i++) free(ns->slot[i]);
    free(ns->slot);
    free(ns->rec);
}

/* ---- pixels ------------------------------------------------------------------ */

/* img [3, h, w] as the VAE returns it -> samples [h, w, c] (c = 3, or 1 with
 * gray), as the pipelines do: clamp(x / 2 + 0.5, 0, 1) in float32, then
 * x * 255 (65535) in float32 rounded half to even ((image * 255).round() in
 * numpy). Grey is PIL's convert("L") of those samples: ITU-R BT.601 weights in
 * 16-bit fixed point, (19595 R + 38470 G + 7471 B + 32768) >> 16, applied to
 * 16-bit samples too. Returns the count of non-finite values (written as 0). */
static size_t to_samples(uint16_t *pix, const float *img, int h, int w, int depth, int gray) {
    size_t plane = (size_t)h * w, bad = 0;
    float maxv = depth == 8 ? 255.0f : 65535.0f;
    for (size_t i = 0; i < plane; i++) {
        uint32_t q[3];
        for (int c = 0; c < 3; c++) {
            float x = img[c * plane + i];
            if (!isfinite(x)) bad++;
            float v = x / 2 + 0.5f;
            v = v > 0 ? (v < 1 ? v : 1) : 0;   /* NaN fails v > 0 and becomes 0 */
            q[c] = (uint32_t)lrintf(v * maxv);
        }
        if (gray)
            pix[i] = (uint16_t)(((uint64_t)q[0] * 19595 + (uint64_t)q[1] * 38470 + (uint64_t)q[2] * 7471 + 32768) >> 16);
        else
            for (int c = 0; c < 3; c++) pix[i * 3 + c] = (uint16_t)q[c];
    }
    return bad;
}

/* ---- provenance ---------------------------------------------------------------- */

/* The manifest line of a record: id, path, the record's meta, and the
 * provenance keys the record lacks taken from the stream header's meta. */
static const char *const prov_keys[] = {"text", "model", "seed", "scheduler", "steps", "guidance", NULL};

static json_t *manifest_entry(const record *rec, const json_t *hmeta, const char *path) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(rec->id));
    json_object_set_new(o, "path", json_string(path));
    for (int i = 0; prov_keys[i]; i++) {
        json_t *v = rec->meta ? json_object_get(rec->meta, prov_keys[i]) : NULL;
        if (!v && hmeta) v = json_object_get(hmeta, prov_keys[i]);
        if (v) json_object_set(o, prov_keys[i], v);
    }
    const char *k;
    json_t *v;
    if (rec->meta)
        json_object_foreach(rec->meta, k, v)
            if (!json_object_get(o, k)) json_object_set(o, k, v);
    return o;
}

static char *json_text(const json_t *v) {
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(s);
    return s;
}

/* ---- the run ---------------------------------------------------------------------- */

typedef struct run {
    const struct cmdline *cl;
    const char *model_dir;
    vae_decoder *vae;
    vae_cuda *gpu;                 /* NULL: decode on the CPU */
    const json_t *hmeta;           /* the input header's meta */
    name_set names;
    progress prog;
    long written;
    record *recs;                  /* the records of the pending batch */
    char **paths;                  /* their output paths */
} run;

/* The run's state lives here, so that what it holds stays reachable when a
 * bad record ends the program (die) and a leak checker stays quiet. */
static run state;

static char *join_path(const char *dir, const char *name) {
    if (!strcmp(dir, ".")) return xstrdup(name);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return xasprintf("%.*s/%s", (int)n, dir, name);
}

/* Checks a record before anything is decoded or written: its latents fit the
 * VAE, its file name is new in this run and (without --force) on disk.
 * Returns the output path; sets *h, *w to the latent size. */
static char *record_check(run *R, const record *rec, int *h, int *w) {
    char where[512];
    record_where(rec, where, sizeof where);
    const vae_config *c = vae_get_config(R->vae);
    tensor *t = record_find_tensor(rec, "latents");
    if (!t) die("%s: no \"latents\" tensor (lat2png reads the final latents denoise writes)", where);
    char sh[128];
    shape_str(sh, sizeof sh, t->ndim, t->shape);
    if (t->dtype != DTYPE_F32 || t->ndim != 3)
        die("%s: tensor \"latents\" is %s %s; lat2png needs f32 [%d, h, w]", where, dtype_name(t->dtype), sh,
            c->latent_channels);
    if (t->shape[0] != c->latent_channels)
        die("%s: tensor \"latents\" %s has %lld channels, but the VAE of %s takes %d", where, sh,
            (long long)t->shape[0], R->model_dir, c->latent_channels);
    if (t->shape[1] < 1 || t->shape[2] < 1 || t->shape[1] > 8192 || t->shape[2] > 8192)
        die("%s: tensor \"latents\" %s has no usable size", where, sh);
    *h = (int)t->shape[1];
    *w = (int)t->shape[2];
    /* the messages below are made before what they name is freed: die() exits
     * with nothing of ours left unreachable (clean under LeakSanitizer) */
    static char msg[1024];
    char *name = pngio_file_name(rec->id);
    long other = strlen(name) > 255 ? -1 : name_set_add(&R->names, name, rec->index);
    if (other) {
        if (other < 0) snprintf(msg, sizeof msg, "%s: the file name made from the id is longer than 255 bytes", where);
        else snprintf(msg, sizeof msg, "%s: its file name %s is also that of record %ld; ids must differ in A-Z a-z 0-9 . _ -",
                      where, name, other);
        free(name);
        die("%s", msg);
    }
    char *path = join_path(R->cl->outdir, name);
    free(name);
    struct stat st;
    if (!R->cl->force && lstat(path, &st) == 0) {
        snprintf(msg, sizeof msg, "%s: %s exists (--force overwrites it)", where, path);
        free(path);
        die("%s", msg);
    }
    return path;
}

static void write_image(run *R, const record *rec, const float *img, int h, int w, const char *path) {
    const struct cmdline *cl = R->cl;
    int c = cl->gray ? 1 : 3;
    uint16_t *pix = xmalloc((size_t)h * w * c * sizeof *pix);
    size_t bad = to_samples(pix, img, h, w, (int)cl->depth, cl->gray);
    if (bad) {
        char where[512];
        warn("%s: %zu decoded values are not finite (written as black)", record_where(rec, where, sizeof where), bad);
    }
    json_t *entry = manifest_entry(rec, R->hmeta, path);
    /* text chunks: the manifest's keys but the path, the whole record meta, the software */
    pngio_text text[16];
    char *vals[16];
    int n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(entry, k, v) {
        if (!strcmp(k, "path")) continue;
        int known = !strcmp(k, "id");
        for (int i = 0; prov_keys[i]; i++) known |= !strcmp(k, prov_keys[i]);
        if (!known || n >= 12) continue;
        vals[n] = json_text(v);
        text[n] = (pngio_text){k, vals[n]};
        n++;
    }
    vals[n] = rec->meta ? json_text(rec->meta) : xstrdup("{}");
    text[n] = (pngio_text){"meta", vals[n]};
    n++;
    vals[n] = xstrdup("lat2png " SYNTHCXR_VERSION " (synthcxr)");
    text[n] = (pngio_text){"Software", vals[n]};
    n++;
    if (cl->depth == 8) {
        uint8_t *p8 = xmalloc((size_t)h * w * c);
        for (size_t i = 0; i < (size_t)h * w * c; i++) p8[i] = (uint8_t)pix[i];
        pngio_write_u8(path, p8, h, w, c, text, n);
        free(p8);
    } else {
        pngio_write_u16(path, pix, h, w, c, text, n);
    }
    for (int i = 0; i < n; i++) free(vals[i]);
    free(pix);
    char *line = json_dumps(entry, 0);
    CHECK(line);
    if (fputs(line, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
        die("cannot write the manifest to standard output: %s", strerror(errno));
    free(line);
    json_decref(entry);
    progress_update(&R->prog, ++R->written);
}

/* The GPU arena for --batch latents of h x w (or for one tile of them),
 * allocated once (again only for a larger size); when the GPU cannot hold
 * it, the batch that fits, or the advice to tile. */
static void gpu_reserve(run *R, int h, int w) {
    const struct cmdline *cl = R->cl;
    int pb, ph, pw, s = vae_upscale(R->vae);
    vae_cuda_tiled_pass(R->vae, (int)cl->batch, h, w, (int)cl->tile, &pb, &ph, &pw);
    vae_cuda_oom oom;
    if (vae_cuda_reserve(R->gpu, pb, ph, pw, &oom)) return;
    dtype_t dt = vae_cuda_dtype(R->gpu);
    const double gib = 1073741824.0;
    char what[160], tail[160];
    if (ph != h || pw != w) { /* tiles: one at a time, whatever --batch */
        snprintf(what, sizeof what, "a --tile %ld tile (%dx%d latents of a %dx%d image)", cl->tile, ph, pw, h * s,
                 w * s);
        snprintf(tail, sizeof tail, "use a smaller --tile");
    } else {
        int fit = vae_cuda_max_batch(R->vae, dt, h, w, oom.avail);
        snprintf(what, sizeof what, "--batch %ld at %dx%d latents", cl->batch, h, w);
        if (fit > 0) snprintf(tail, sizeof tail, "the largest --batch that fits is %d", fit);
        else snprintf(tail, sizeof tail, "not even --batch 1 fits; --tile with tiles smaller than the image decodes it");
    }
    die("out of GPU memory: %s needs %.2f GiB of %s activations, and %.2f GiB of the GPU's %.2f GiB are free after "
        "the weights (%.2f GiB kept for cuBLAS and buffers); %s",
        what, oom.need / gib, dtype_name(dt), oom.free / gib, oom.total / gib, VAE_CUDA_RESERVE / gib, tail);
}

/* Decodes recs[0..n) (same latent size h x w) in one VAE pass and writes them. */
static void flush_batch(run *R, record *recs, char **paths, int n, int h, int w) {
    const vae_config *c = vae_get_config(R->vae);
    int s = vae_upscale(R->vae);
    size_t nl = (size_t)c->latent_channels * h * w, no = (size_t)c->out_channels * h * s * w * s;
    float *z = xmalloc_aligned((size_t)n * nl * sizeof(float));
    float *out = xmalloc_aligned((size_t)n * no * sizeof(float));
    for (int j = 0; j < n; j++) {
        const float *l = record_find_tensor(&recs[j], "latents")->data;
        for (size_t i = 0; i < nl; i++) z[j * nl + i] = l[i] / c->scaling_factor; /* as the pipelines */
    }
    if (R->gpu) {
        gpu_reserve(R, h, w);
        vae_cuda_decode_tiled(R->gpu, out, z, n, h, w, (int)R->cl->tile);
    } else {
        vae_decode_tiled(R->vae, out, z, n, h, w, (int)R->cl->tile);
    }
    for (int j = 0; j < n; j++) write_image(R, &recs[j], out + j * no, h * s, w * s, paths[j]);
    free(z);
    free(out);
}

/* --outdir: an existing writable folder, or one that can be made. */
static void outdir_prepare(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) die("--outdir %s: not a folder", dir);
        if (access(dir, W_OK | X_OK) != 0) die("--outdir %s: cannot write there: %s", dir, strerror(errno));
    } else if (errno != ENOENT || mkdir(dir, 0777) != 0) {
        die("--outdir %s: cannot create the folder: %s", dir, strerror(errno));
    }
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "lat2png:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    enum device_kind dev = common_start(&cl.common);
    int prec = cl.precision >= 0 ? cl.precision : dev == DEVICE_CUDA ? 1 : 0;   /* fp16 on the GPU */
    if (dev == DEVICE_CPU && prec > 0)
        die("--precision %s: the CPU decoder computes in fp32 only (the reference)%s", precisions[prec],
            strcmp(cl.common.device, "cpu") ? "; no GPU answered --device auto" : "");
    outdir_prepare(cl.outdir);

    FILE *f = stdin;
    const char *name = "stdin";
    if (strcmp(cl.input, "-")) {
        f = fopen(cl.input, "rb");
        if (!f) die("cannot open %s: %s", cl.input, strerror(errno));
        name = cl.input;
    }
    stream_reader *in = stream_reader_open(f, name);
    const stream_header *hdr = stream_read_header(in);
    if (!hdr) { /* an empty stream: no records, nothing to do */
        stream_reader_close(in);
        if (f != stdin) fclose(f);
        return EXIT_OK;
    }
    stream_expect_kind(in, "latents");

    state = (run){.cl = &cl, .hmeta = hdr->rec.meta};
    state.model_dir = cl.model;
    if (!state.model_dir) {
        const json_t *mp = hdr->rec.meta ? json_object_get(hdr->rec.meta, "model_path") : NULL;
        if (!json_is_string(mp))
            die("%s: the stream's header names no model folder (meta.model_path); give --model DIR", name);
        state.model_dir = json_string_value(mp);
    }
    state.vae = vae_load_dir(state.model_dir);
    const vae_config *vc = vae_get_config(state.vae);
    if (vc->out_channels != 3)
        die("%s: the VAE makes %d channels per pixel; lat2png writes RGB (3) images", state.model_dir, vc->out_channels);
    if (dev == DEVICE_CUDA) state.gpu = vae_cuda_new(state.vae, prec_dtype[prec]);
    info("VAE of %s: %d blocks, scaling_factor %g, %s, batch %ld, %s %s", state.model_dir, vc->n_blocks,
         (double)vc->scaling_factor, cl.gray ? "grey" : "RGB", cl.batch, dev == DEVICE_CUDA ? "cuda" : "cpu",
         precisions[prec]);
    progress_start(&state.prog, "decoded", -1, "image");

    int nb = (int)cl.batch, k = 0, bh = 0, bw = 0;
    record *recs = state.recs = xcalloc((size_t)nb, sizeof *recs);
    char **paths = state.paths = xcalloc((size_t)nb, sizeof *paths);
    for (int i = 0; i < nb; i++) record_init(&recs[i]);
    while (stream_read_record(in, &recs[k])) {
        int h, w;
        char *path = record_check(&state, &recs[k], &h, &w);
        if (k > 0 && (h != bh || w != bw)) { /* a new size: decode what is pending first */
            flush_batch(&state, recs, paths, k, bh, bw);
            record tmp = recs[0];
            recs[0] = recs[k];
            recs[k] = tmp;
            for (int j = 0; j < k; j++) free(paths[j]), paths[j] = NULL;
            k = 0;
        }
        paths[k++] = path;
        bh = h, bw = w;
        if (k == nb) {
            flush_batch(&state, recs, paths, k, bh, bw);
            for (int j = 0; j < k; j++) free(paths[j]), paths[j] = NULL;
            k = 0;
        }
    }
    if (k) flush_batch(&state, recs, paths, k, bh, bw);
    for (int j = 0; j < nb; j++) {
        free(paths[j]);
        record_clear(&recs[j]);
    }
    free(paths);
    free(recs);
    progress_end(&state.prog);
    name_set_free(&state.names);
    vae_cuda_free(state.gpu);
    vae_free(state.vae);
    stream_reader_close(in);
    if (f != stdin) fclose(f);
    return EXIT_OK;
}
