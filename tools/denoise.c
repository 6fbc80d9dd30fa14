/* denoise.c — the middle of the generation pipeline: reads rep2lat's stream,
 * runs the UNet over each record's latents for --steps scheduler steps with
 * classifier-free guidance (denoise_loop.h: StableDiffusionPipeline's loop),
 * --batch records per UNet pass, and writes the same records, in order, with
 * the final latents and the provenance (scheduler, steps, guidance) added to
 * meta. Every check on a record happens before any work on its batch, and
 * names the record. */
#include "common.h"
#include "denoise_loop.h"
#include "diffusers.h"
#include "progress.h"
#include "rng.h"
#include "scheduler.h"
#include "stream.h"
#include "unet.h"
#include "unet_cuda.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "Usage: denoise [OPTION]... [FILE]\n"
    "Denoise rep2lat's latents with the Stable Diffusion UNet, a scheduler and\n"
    "classifier-free guidance. Reads a cxrstream(5) from FILE (or standard input\n"
    "when FILE is - or absent) and writes the same records with the final latent.\n"
    "\n"
    "  -m, --model DIR           diffusers model folder (default: the model named\n"
    "                            in the stream)\n"
    "      --scheduler NAME      pndm, ddim, euler, euler_a or dpmpp_2m (default:\n"
    "                            the model's scheduler/scheduler_config.json)\n"
    "      --steps N             denoising steps, 1-1000 (default 50)\n"
    "      --guidance G          guidance scale, 0-100; 1 or less turns guidance\n"
    "                            off (default 7.5)\n"
    "      --batch B             records per UNet pass, 1-1024 (default 1)\n"
    "      --precision P         fp32, fp16 or bf16 (default: fp32 on the CPU,\n"
    "                            fp16 on CUDA)\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  rep2lat -m roentgen reports.jsonl | denoise --steps 75 --guidance 4 | lat2png\n";

static const char *const schedulers[] = {"pndm", "ddim", "euler", "euler_a", "dpmpp_2m", NULL};
static const char *const precisions[] = {"fp32", "fp16", "bf16", NULL};

struct cmdline {
    const char *model;   /* NULL: the folder named in the stream header */
    const char *input;   /* "-" = stdin */
    int scheduler;       /* index into schedulers; -1: the model's */
    long steps;
    double guidance;
    long batch;
    int precision;       /* index into precisions; -1: per device */
    struct common_opts common;
};

enum { OPT_SCHEDULER = OPT_COMMON_LAST, OPT_STEPS, OPT_GUIDANCE, OPT_BATCH, OPT_PRECISION };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"scheduler", required_argument, 0, OPT_SCHEDULER},
    {"steps", required_argument, 0, OPT_STEPS},
    {"guidance", required_argument, 0, OPT_GUIDANCE},
    {"batch", required_argument, 0, OPT_BATCH},
    {"precision", required_argument, 0, OPT_PRECISION},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"denoise", usage};
    *cl = (struct cmdline){.input = "-", .scheduler = -1, .steps = 50, .guidance = 7.5,
                           .batch = 1, .precision = -1};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "m:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm': cl->model = optarg; break;
        case OPT_SCHEDULER: cl->scheduler = parse_enum("--scheduler", optarg, schedulers); break;
        case OPT_STEPS: cl->steps = parse_long("--steps", optarg, 1, 1000); break;
        case OPT_GUIDANCE: cl->guidance = parse_double("--guidance", optarg, 0, 100); break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 1, 1024); break;
        case OPT_PRECISION: cl->precision = parse_enum("--precision", optarg, precisions); break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input file at most ('%s' is extra)", argv[optind]);
}

/* The scheduler class diffusers' from_pretrained loads: model_index.json's
 * entry, which wins over scheduler_config.json's "_class_name" (the config
 * file still gives the keys). NULL: take the config file's class. */
static const char *folder_scheduler(const diffusers_part *sp, const char *model_dir) {
    if (!sp->class_name) return NULL;
    for (int k = SCHED_PNDM; k <= SCHED_DPMPP_2M; k++)
        if (!strcmp(sp->class_name, sched_class_name((sched_kind)k))) return sched_kind_name((sched_kind)k);
    die("%s/model_index.json: scheduler class %s is not built (pndm, ddim, euler, euler_a, dpmpp_2m are; "
        "choose one with --scheduler)", model_dir, sp->class_name);
}

/* The model folder the stream names: header meta "model_path" (the folder
 * rep2lat was given), else "model" when that is a folder here. */
static const char *model_from_stream(const stream_header *h) {
    const json_t *meta = h->rec.meta;
    const char *keys[] = {"model_path", "model"};
    const char *named = NULL;
    for (int k = 0; k < 2; k++) {
        const json_t *v = meta ? json_object_get(meta, keys[k]) : NULL;
        if (!json_is_string(v)) continue;
        const char *dir = json_string_value(v);
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return dir;
        if (!named) named = dir;
    }
    if (named)
        die("the stream names the model \"%s\", which is not a folder here; give the folder with --model DIR",
            named);
    die("the stream does not name its model folder; give it with --model DIR");
}

/* What the loop needs from one record, checked against the UNet. */
struct rec_view {
    tensor *cond;      /* [T, D] */
    tensor *latents;   /* [C, H, W] */
    int has_seed;
    uint64_t seed;
};

static void check_record(record *rec, struct rec_view *v, const unet_info *ui, const tensor *uncond,
                         const char *model_dir, sched_kind kind) {
    char where[256];
    record_where(rec, where, sizeof where);
    v->cond = record_require_tensor(rec, "cond", DTYPE_F32, 2, NULL);
    if (v->cond->shape[1] != ui->cross_attention_dim)
        die("%s: cond is [%lld, %lld] but the UNet of %s takes text states of width %d (cross_attention_dim): "
            "the stream was made with another model's text encoder",
            where, (long long)v->cond->shape[0], (long long)v->cond->shape[1], model_dir, ui->cross_attention_dim);
    if (uncond && v->cond->shape[0] != uncond->shape[0])
        die("%s: cond has %lld tokens but the header's uncond has %lld", where, (long long)v->cond->shape[0],
            (long long)uncond->shape[0]);
    if (!record_find_tensor(rec, "latents")) die("%s: no \"latents\" tensor (the initial noise rep2lat draws)", where);
    v->latents = record_require_tensor(rec, "latents", DTYPE_F32, 3, NULL);
    const int64_t *sh = v->latents->shape;
    if (sh[0] != ui->in_channels)
        die("%s: latents are [%lld, %lld, %lld] but the UNet of %s takes %d channels", where, (long long)sh[0],
            (long long)sh[1], (long long)sh[2], model_dir, ui->in_channels);
    if (sh[1] < 1 || sh[2] < 1 || sh[1] % ui->downscale || sh[2] % ui->downscale)
        die("%s: latents are [%lld, %lld, %lld] but the UNet of %s needs sides that are multiples of %d", where,
            (long long)sh[0], (long long)sh[1], (long long)sh[2], model_dir, ui->downscale);
    const json_t *seed = json_object_get(rec->meta, "seed");
    v->has_seed = json_is_integer(seed) && json_integer_value(seed) >= 0;
    v->seed = v->has_seed ? (uint64_t)json_integer_value(seed) : 0;
    if (kind == SCHED_EULER_A && !v->has_seed)
        die("%s: no integer seed in meta; Euler ancestral draws its noise from the record's seeded generator",
            where);
}

static int same_shape(const struct rec_view *a, const struct rec_view *b) {
    return a->latents->shape[1] == b->latents->shape[1] && a->latents->shape[2] == b->latents->shape[2] &&
           a->cond->shape[0] == b->cond->shape[0];
}

static const dtype_t prec_dtype[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};   /* by index of precisions */

static void gpu_unet(void *g, float *out, const float *sample, const float *timesteps, const float *enc, int B,
                     int H, int W, int T) {
    unet_cuda_forward(g, out, sample, timesteps, enc, B, H, W, T);
}

/* The GPU arena for batches of `records` (a UNet batch of per_record times
 * that with guidance) at H x W with T tokens, allocated once (again only for
 * a larger size); when the GPU cannot hold it, the batch that fits. */
static void gpu_reserve(unet_cuda *g, const unet_model *m, int records, int per_record, int H, int W, int T) {
    unet_cuda_oom oom;
    if (unet_cuda_reserve(g, records * per_record, H, W, T, &oom)) return;
    dtype_t dt = unet_cuda_dtype(g);
    int fit = unet_cuda_max_batch(m, dt, per_record, H, W, T, oom.avail);
    const double gib = 1073741824.0;
    char tail[128];
    if (fit > 0) snprintf(tail, sizeof tail, "the largest --batch that fits is %d", fit);
    else snprintf(tail, sizeof tail, "not even --batch 1 fits");
    die("out of GPU memory: --batch %d at %dx%d latents%s needs %.2f GiB of %s activations, and %.2f GiB of the "
        "GPU's %.2f GiB are free after the weights (%.2f GiB kept for cuBLAS and buffers); %s",
        records, H, W, per_record > 1 ? " with guidance (2 UNet samples per record)" : "", oom.need / gib,
        dtype_name(dt), oom.free / gib, oom.total / gib, UNET_CUDA_RESERVE / gib, tail);
}

struct prog_ctx {
    progress p;
};
static void on_call(void *ctx, int call, int ncalls) {
    (void)ncalls;
    progress_update(&((struct prog_ctx *)ctx)->p, call);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "denoise:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    enum device_kind dev = common_start(&cl.common);
    int prec = cl.precision >= 0 ? cl.precision : dev == DEVICE_CUDA ? 1 : 0;   /* fp16 on the GPU */
    if (dev == DEVICE_CPU && prec > 0)
        die("--precision %s is not built on the CPU (fp32 is the reference there)%s", precisions[prec],
            strcmp(cl.common.device, "cpu") ? "; no GPU answered --device auto" : "");

    FILE *fin = stdin;
    const char *in_name = "stdin";
    if (strcmp(cl.input, "-")) {
        fin = fopen(cl.input, "rb");
        if (!fin) die("%s: cannot open: %s", cl.input, strerror(errno));
        in_name = cl.input;
    }
    stream_reader *in = stream_reader_open(fin, in_name);
    stream_expect_kind(in, "conditioning");
    const stream_header *ih = stream_read_header(in);
    stream_writer *out = stream_writer_open(stdout, "stdout");
    stream_header oh;
    stream_header_derive(&oh, ih, "latents", "denoise " SYNTHCXR_VERSION);
    if (!ih) { /* an empty stream: an empty (header-only) answer, no model needed */
        stream_write_header(out, &oh);
        stream_header_clear(&oh);
        stream_writer_close(out);
        stream_reader_close(in);
        return 0;
    }

    const char *model_dir = cl.model ? cl.model : model_from_stream(ih);
    diffusers_model *dm = diffusers_open(model_dir, DIFFUSERS_PREFER_FP32);
    const diffusers_part *sp = diffusers_part_get(dm, "scheduler");
    if (!sp->config) die("%s/: no scheduler/scheduler_config.json", model_dir);
    scheduler *sched = sched_from_config(sp->config, cl.scheduler >= 0 ? schedulers[cl.scheduler]
                                                                       : folder_scheduler(sp, model_dir),
                                         sp->config_path);
    sched_set_timesteps(sched, (int)cl.steps);
    unet_model *um = unet_load(diffusers_part_get(dm, "unet"));
    const unet_info *ui = unet_get_info(um);
    unet_cuda *gu = dev == DEVICE_CUDA ? unet_cuda_new(um, prec_dtype[prec]) : NULL;
    const char *sched_name = sched_kind_name(sched_get_kind(sched));
    int cfg = cl.guidance > 1.0;

    tensor *uncond = NULL;
    if (cfg) {
        char where[256];
        record_where(&ih->rec, where, sizeof where);
        uncond = record_find_tensor(&ih->rec, "uncond");
        if (!uncond)
            die("%s: no \"uncond\" tensor (the unconditional text states guidance %g needs; --guidance 1 runs "
                "without them)", where, cl.guidance);
        uncond = record_require_tensor(&ih->rec, "uncond", DTYPE_F32, 2, NULL);
        if (uncond->shape[1] != ui->cross_attention_dim)
            die("%s: uncond is [%lld, %lld] but the UNet of %s takes text states of width %d "
                "(cross_attention_dim)", where, (long long)uncond->shape[0], (long long)uncond->shape[1],
                model_dir, ui->cross_attention_dim);
    }
    info("%s: %s, %d UNet calls per record (%ld steps), guidance %g%s, batch %ld, %s %s", model_dir,
         sched_class_name(sched_get_kind(sched)), sched_num_calls(sched), cl.steps, cl.guidance,
         cfg ? "" : " (off)", cl.batch, dev == DEVICE_CUDA ? "cuda" : "cpu", precisions[prec]);
    stream_write_header(out, &oh);
    stream_header_clear(&oh);

    int B = (int)cl.batch;
    /* static: still reachable when a bad record makes die() exit mid-batch (LeakSanitizer) */
    static record *recs;
    static struct rec_view *views;
    recs = xcalloc((size_t)B + 1, sizeof *recs);
    views = xcalloc((size_t)B + 1, sizeof *views);
    for (int i = 0; i <= B; i++) record_init(&recs[i]);
    float **lats = xmalloc((size_t)B * sizeof *lats);
    const float **conds = xmalloc((size_t)B * sizeof *conds);
    torch_gen *gens = xmalloc((size_t)B * sizeof *gens);
    torch_gen **genp = xmalloc((size_t)B * sizeof *genp);
    int n = 0, carry = 0, eof = 0;
    long done = 0;
    while (!eof || n > 0) {
        while (n < B && !carry) {
            if (!stream_read_record(in, &recs[n])) {
                eof = 1;
                break;
            }
            check_record(&recs[n], &views[n], ui, uncond, model_dir, sched_get_kind(sched));
            if (n > 0 && !same_shape(&views[0], &views[n])) carry = 1; /* starts the next batch */
            else n++;
        }
        if (n == 0) break;
        const int64_t *sh = views[0].latents->shape;
        int C = (int)sh[0], H = (int)sh[1], W = (int)sh[2], T = (int)views[0].cond->shape[0];
        for (int b = 0; b < n; b++) {
            lats[b] = views[b].latents->data;
            conds[b] = views[b].cond->data;
            /* the generator as the pipeline's continues after prepare_latents drew the noise */
            torch_gen_seed(&gens[b], views[b].seed);
            float *skip = xmalloc((size_t)C * H * W * sizeof *skip);
            torch_randn_f32(&gens[b], skip, (int64_t)C * H * W);
            free(skip);
            genp[b] = &gens[b];
        }
        struct prog_ctx pc;
        char label[48];
        if (n == 1) snprintf(label, sizeof label, "record %ld", done + 1);
        else snprintf(label, sizeof label, "records %ld-%ld", done + 1, done + n);
        progress_start(&pc.p, label, sched_num_calls(sched), "step");
        if (gu) {
            gpu_reserve(gu, um, B, cfg ? 2 : 1, H, W, T);
            denoise_batch_with(gpu_unet, gu, ui, sched, n, lats, conds, uncond ? uncond->data : NULL, genp, C, H, W,
                               T, ui->cross_attention_dim, cl.guidance, on_call, &pc);
        } else {
            denoise_batch(um, sched, n, lats, conds, uncond ? uncond->data : NULL, genp, C, H, W, T,
                          ui->cross_attention_dim, cl.guidance, on_call, &pc);
        }
        progress_end(&pc.p);
        for (int b = 0; b < n; b++) {
            record *r = &recs[b];
            tensor_free(record_take_tensor(r, "cond"));
            json_object_set_new(r->meta, "scheduler", json_string(sched_name));
            json_object_set_new(r->meta, "steps", json_integer(cl.steps));
            json_object_set_new(r->meta, "guidance", json_real(cl.guidance));
            stream_write_record(out, r);
        }
        done += n;
        if (carry) { /* the record that did not fit the batch's shape opens the next one */
            record tmp = recs[0];
            recs[0] = recs[n];
            recs[n] = tmp;
            views[0] = views[n];
            n = 1;
            carry = 0;
        } else {
            n = 0;
        }
    }
    info("%ld records denoised", done);
    for (int i = 0; i <= B; i++) record_clear(&recs[i]);
    free(recs);
    free(views);
    free(lats);
    free(conds);
    free(gens);
    free(genp);
    unet_cuda_free(gu);
    unet_free(um);
    sched_free(sched);
    diffusers_close(dm);
    stream_writer_close(out);
    stream_reader_close(in);
    if (fin != stdin) fclose(fin);
    return 0;
}
