/* cxreval.c — the study's measure: how good is a frozen image encoder? Loads
 * the ResNet image encoder of a vlptrain checkpoint (or the ImageNet / random
 * baselines), reads a chest X-ray dataset in its distributed layout
 * (cxr_datasets.h), computes every image's feature once (cached on disk),
 * trains a linear probe on a label fraction (linear_probe.h) and prints one
 * JSON line of results (metrics.h) on stdout and a table on stderr.
 * Segmentation and detection heads come later. */
#include "common.h"

#include "cxr_datasets.h"
#include "image_prep.h"
#include "linear_probe.h"
#include "metrics.h"
#include "progress.h"
#include "resnet.h"
#include "safetensors.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "Usage: cxreval --dataset D --data DIR --checkpoint CKPT [OPTION]...\n"
    "       cxreval --dataset D --data DIR --init imagenet|random [OPTION]...\n"
    "Evaluate a frozen pre-trained image encoder on a chest X-ray dataset: a linear\n"
    "probe for classification (segmentation and detection heads later). Writes one\n"
    "JSON line of results to standard output and a table to standard error.\n"
    "\n"
    "      --task T              classification (or classify), segmentation or\n"
    "                            detection (default classification)\n"
    "      --dataset D           classification: chexpert, rsna or covidx;\n"
    "                            segmentation: siim or rsna; detection: rsna or\n"
    "                            object-cxr; required\n"
    "      --data DIR            the dataset's folder as distributed; required\n"
    "      --checkpoint CKPT     vlptrain checkpoint whose image encoder is tested\n"
    "      --init I              checkpoint, imagenet or random (default checkpoint)\n"
    "      --image-weights FILE  torchvision ResNet-50 weights (safetensors) for\n"
    "                            --init imagenet\n"
    "      --image-arch A        encoder for --init random: resnet50 (default) or a\n"
    "                            JSON ResNet config (see cxreval(1))\n"
    "      --fraction F          fraction of the training labels used, 0-1\n"
    "                            (default 1; the study uses 0.01, 0.1 and 1)\n"
    "      --seed N              label sampling, splits, probe init (default 0)\n"
    "      --lr LR               AdamW learning rate, 0-1 (default 5e-4)\n"
    "      --weight-decay W      AdamW weight decay, 0-1 (default 1e-6)\n"
    "      --batch B             images per step, 1-65536 (default 48)\n"
    "      --epochs N            at most N epochs, 1-100000 (default 50)\n"
    "      --patience N          stop after N epochs without a better validation\n"
    "                            loss, 1-100000 (default 10)\n"
    "      --bootstrap N         resamples for 95% intervals; 0 = none (default 1000)\n"
    "      --image-size N        resize the longer side to N and pad, 32-4096\n"
    "                            (default 256, as MGCA)\n"
    "      --crop N              centre crop fed to the encoder, 32-4096, at most\n"
    "                            --image-size (default 224)\n"
    "      --cache-dir DIR       feature cache (default: $XDG_CACHE_HOME/synthcxr/\n"
    "                            cxreval, else ~/.cache/synthcxr/cxreval);\n"
    "                            --cache DIR is the same\n"
    "      --no-cache            compute the features, keep nothing\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  cxreval --dataset chexpert --data CheXpert-v1.0 --fraction 0.01 \\\n"
    "          --checkpoint convirt.safetensors >>results.jsonl\n";

static const char *const tasks[] = {"classification", "segmentation", "detection", "classify", NULL};
enum { TASK_CLASSIFY, TASK_SEGMENT, TASK_DETECT, TASK_CLASSIFY_ALIAS };
static const char *const datasets[] = {"chexpert", "rsna", "covidx", "siim", "object-cxr", NULL};
enum { DS_CHEXPERT, DS_RSNA, DS_COVIDX, DS_SIIM, DS_OBJECT_CXR };
static const char *const inits[] = {"checkpoint", "imagenet", "random", NULL};
enum { INIT_CHECKPOINT, INIT_IMAGENET, INIT_RANDOM };

/* Which datasets carry labels for which task (the study's grid). */
static const int task_has_dataset[3][5] = {
    [TASK_CLASSIFY] = {[DS_CHEXPERT] = 1, [DS_RSNA] = 1, [DS_COVIDX] = 1},
    [TASK_SEGMENT] = {[DS_SIIM] = 1, [DS_RSNA] = 1},
    [TASK_DETECT] = {[DS_RSNA] = 1, [DS_OBJECT_CXR] = 1},
};

struct cmdline {
    int task, dataset, init;  /* indices into the tables above; dataset -1: unset */
    const char *data;         /* dataset root */
    const char *checkpoint;   /* vlptrain checkpoint, with --init checkpoint */
    const char *image_weights;/* torchvision weights, with --init imagenet */
    double fraction;
    long seed;
    double lr, weight_decay;
    long batch, epochs, patience, bootstrap;
    int image_size, crop;     /* evaluation image: resize/pad to image_size, centre crop */
    const char *cache;        /* NULL: the XDG default */
    const char *image_arch;   /* --init random: resnet50 or a JSON config */
    int no_cache;
    struct common_opts common;
};

enum { OPT_TASK = OPT_COMMON_LAST, OPT_DATASET, OPT_DATA, OPT_CHECKPOINT, OPT_INIT,
       OPT_IMAGE_WEIGHTS, OPT_FRACTION, OPT_SEED, OPT_LR, OPT_WEIGHT_DECAY, OPT_BATCH,
       OPT_EPOCHS, OPT_PATIENCE, OPT_BOOTSTRAP, OPT_CACHE, OPT_IMAGE_ARCH, OPT_NO_CACHE,
       OPT_IMAGE_SIZE, OPT_CROP };

static const struct option longopts[] = {
    {"task", required_argument, 0, OPT_TASK},
    {"dataset", required_argument, 0, OPT_DATASET},
    {"data", required_argument, 0, OPT_DATA},
    {"checkpoint", required_argument, 0, OPT_CHECKPOINT},
    {"init", required_argument, 0, OPT_INIT},
    {"image-weights", required_argument, 0, OPT_IMAGE_WEIGHTS},
    {"fraction", required_argument, 0, OPT_FRACTION},
    {"seed", required_argument, 0, OPT_SEED},
    {"lr", required_argument, 0, OPT_LR},
    {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
    {"batch", required_argument, 0, OPT_BATCH},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"patience", required_argument, 0, OPT_PATIENCE},
    {"bootstrap", required_argument, 0, OPT_BOOTSTRAP},
    {"cache", required_argument, 0, OPT_CACHE},
    {"cache-dir", required_argument, 0, OPT_CACHE},
    {"no-cache", no_argument, 0, OPT_NO_CACHE},
    {"image-arch", required_argument, 0, OPT_IMAGE_ARCH},
    {"image-size", required_argument, 0, OPT_IMAGE_SIZE},
    {"crop", required_argument, 0, OPT_CROP},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"cxreval", usage};
    /* Defaults: the MGCA linear-probe protocol (STUDY.md). */
    *cl = (struct cmdline){.task = TASK_CLASSIFY, .dataset = -1, .init = INIT_CHECKPOINT,
                           .fraction = 1, .lr = 5e-4, .weight_decay = 1e-6, .batch = 48,
                           .epochs = 50, .patience = 10, .bootstrap = 1000,
                           .image_size = 256, .crop = 224};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TASK:
            cl->task = parse_enum("--task", optarg, tasks);
            if (cl->task == TASK_CLASSIFY_ALIAS) cl->task = TASK_CLASSIFY;
            break;
        case OPT_DATASET: cl->dataset = parse_enum("--dataset", optarg, datasets); break;
        case OPT_DATA: cl->data = optarg; break;
        case OPT_CHECKPOINT: cl->checkpoint = optarg; break;
        case OPT_INIT: cl->init = parse_enum("--init", optarg, inits); break;
        case OPT_IMAGE_WEIGHTS: cl->image_weights = optarg; break;
        case OPT_FRACTION:
            cl->fraction = parse_double("--fraction", optarg, 0, 1);
            if (cl->fraction <= 0) die_usage("--fraction: must be above 0");
            break;
        case OPT_SEED: cl->seed = parse_long("--seed", optarg, 0, INT64_MAX); break;
        case OPT_LR: cl->lr = parse_double("--lr", optarg, 0, 1); break;
        case OPT_WEIGHT_DECAY:
            cl->weight_decay = parse_double("--weight-decay", optarg, 0, 1);
            break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 1, 65536); break;
        case OPT_EPOCHS: cl->epochs = parse_long("--epochs", optarg, 1, 100000); break;
        case OPT_PATIENCE: cl->patience = parse_long("--patience", optarg, 1, 100000); break;
        case OPT_BOOTSTRAP: cl->bootstrap = parse_long("--bootstrap", optarg, 0, 1000000); break;
        case OPT_CACHE: cl->cache = optarg; break;
        case OPT_NO_CACHE: cl->no_cache = 1; break;
        case OPT_IMAGE_ARCH: cl->image_arch = optarg; break;
        case OPT_IMAGE_SIZE: cl->image_size = (int)parse_long("--image-size", optarg, 32, 4096); break;
        case OPT_CROP: cl->crop = (int)parse_long("--crop", optarg, 32, 4096); break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) die_usage("no operands are taken ('%s' is extra)", argv[optind]);
    if (cl->dataset < 0) die_usage("--dataset is required");
    if (!task_has_dataset[cl->task][cl->dataset])
        die_usage("--dataset %s has no %s labels", datasets[cl->dataset], tasks[cl->task]);
    if (cl->crop > cl->image_size)
        die_usage("--crop %d is larger than --image-size %d", cl->crop, cl->image_size);
    if (!cl->data) die_usage("--data DIR is required (the dataset's folder)");
    if (cl->init == INIT_CHECKPOINT && !cl->checkpoint)
        die_usage("--checkpoint CKPT is required (or --init imagenet|random for a baseline)");
    if (cl->init != INIT_CHECKPOINT && cl->checkpoint)
        die_usage("--checkpoint goes with --init checkpoint, not --init %s", inits[cl->init]);
    if (cl->init == INIT_IMAGENET && !cl->image_weights)
        die_usage("--init imagenet needs --image-weights FILE (torchvision ResNet-50)");
    if (cl->init != INIT_IMAGENET && cl->image_weights)
        die_usage("--image-weights goes with --init imagenet");
    if (cl->image_arch && cl->init != INIT_RANDOM)
        die_usage("--image-arch goes with --init random (a checkpoint names its own; ImageNet is resnet50)");
}


/* ---- the encoder --------------------------------------------------------- */

/* Checks that f holds every tensor of ps under prefix ("image_encoder." in a
 * checkpoint, "" in torchvision weights) with ps's shape, so a wrong
 * architecture is one clear sentence (exit 2), not a crash. */
static void check_encoder_tensors(const st_file *f, const param_set *ps, const char *arch, const char *prefix) {
    int found = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < f->n; i++) found += !strncmp(f->entries[i].name, prefix, pl);
    if (!found)
        die("%s: no image_encoder.* tensors: not a vlptrain checkpoint (an image encoder under "
            "image_encoder.<torchvision name> is needed)", f->path);
    for (int k = 0; k < ps->n; k++) {
        const param_entry *e = &ps->e[k];
        char name[PARAM_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        const st_entry *t = st_find(f, name);
        if (!t) {
            if (e->is_i64) continue;   /* num_batches_tracked: optional, as torchvision */
            die("%s: no tensor %s: %s %s image encoder (wrong architecture?)", f->path, name,
                pl ? "the checkpoint is not a" : "these are not torchvision weights of a", arch);
        }
        int same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            char want[96] = "", got[96] = "";
            for (int d = 0; d < e->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)e->shape[d]);
            for (int d = 0; d < t->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
            die("%s: tensor %s has shape [%s], a %s image encoder needs [%s] (wrong architecture?)", f->path, name,
                got, arch, want);
        }
    }
}

/* The encoder for the command line, and a printable name of its weights. */
static void encoder_open(resnet *m, const struct cmdline *cl) {
    if (cl->init == INIT_RANDOM) {
        resnet_config cfg = cl->image_arch ? resnet_config_parse(cl->image_arch) : resnet50_config();
        resnet_init(m, &cfg, (uint64_t)cl->seed);
        return;
    }
    const char *path = cl->init == INIT_CHECKPOINT ? cl->checkpoint : cl->image_weights;
    st_file *f = st_open(path);
    resnet_config cfg = resnet50_config();
    const char *arch = "resnet50";
    if (cl->init == INIT_CHECKPOINT && f->metadata) {
        json_t *a = json_object_get(f->metadata, "image_arch");
        if (a && !json_is_string(a)) die("%s: metadata image_arch is not a string", path);
        if (a) {
            arch = json_string_value(a);
            cfg = resnet_config_parse(arch);
        }
    }
    resnet_init(m, &cfg, 0);
    const char *prefix = cl->init == INIT_CHECKPOINT ? "image_encoder." : "";
    check_encoder_tensors(f, &m->params, arch, prefix);
    check_encoder_tensors(f, &m->buffers, arch, prefix);
    resnet_load(m, f, prefix);
    st_close(f);
}

/* 64-bit FNV-1a, for the cache key. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ---- features ------------------------------------------------------------ */

enum { ENC_BATCH = 16 };

/* MGCA's evaluation image: resize_img to 256 (longer side, zero padding),
 * CenterCrop 224 (offset int(round((256-224)/2.0)) = 16, Python rounding half
 * to even), ToTensor, Normalize(0.5, 0.5), grey copied to the three channels
 * (PIL convert("RGB")); --image-size and --crop change 256 and 224 for
 * miniature studies whose encoder was pre-trained on small crops.
 * out [3, crop, crop]. Returns 0 with err set when the file is unreadable. */
static int image_tensor(float *out, const char *path, int pad, int crop, char *err, size_t errlen) {
    tensor *t = image_prep_load(path, pad, err, errlen);
    if (!t) return 0;
    const uint8_t *px = t->data;
    int diff = pad - crop, off = diff / 2;
    if (diff % 2 && off % 2) off++;   /* round(x.5) to even, as Python */
    for (int y = 0; y < crop; y++)
        for (int x = 0; x < crop; x++) {
            float v = ((float)px[(y + off) * pad + x + off] / 255.0f - 0.5f) / 0.5f;
            for (int c = 0; c < 3; c++) out[((size_t)c * crop + y) * crop + x] = v;
        }
    tensor_free(t);
    return 1;
}

static char *cache_dir(const struct cmdline *cl) {
    if (cl->cache) return xstrdup(cl->cache);
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x) return xasprintf("%s/synthcxr/cxreval", x);
    return xasprintf("%s/.cache/synthcxr/cxreval", home && *home ? home : ".");
}

static void mkdirs(const char *dir) {
    char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            die("cannot create folder %s: %s", p, strerror(err));
        }
        if (!c) break;
        *s = c;
    }
    free(p);
}

/* Features [n, feat_dim] of the items idx[0..n): from the cache when its key
 * matches (encoder weights + architecture, dataset, image paths with their
 * sizes and modification times, the image recipe), else computed and stored. */
static float *features_get(resnet *m, const cxr_data *d, const long *idx, long n, const struct cmdline *cl) {
    int F = m->feat_dim;
    uint64_t h = 0xcbf29ce484222325ull;
    char *arch = resnet_config_string(&m->cfg);
    h = fnv1a(h, arch, strlen(arch) + 1);
    free(arch);
    h = fnv1a(h, m->params.data, m->params.total * sizeof(float));
    h = fnv1a(h, m->buffers.data, m->buffers.total * sizeof(float));
    uint64_t wh = h;
    char recipe[96];
    snprintf(recipe, sizeof recipe, "mgca-resize%d-pad-centercrop%d-norm0.5-grey3", cl->image_size, cl->crop);
    h = fnv1a(h, recipe, strlen(recipe) + 1);
    h = fnv1a(h, cxr_dataset_names[d->dataset], strlen(cxr_dataset_names[d->dataset]) + 1);
    /* each image by path, size and modification time, so that a dataset rewritten in
     * place (same names, new pixels) is never served stale features */
    for (long i = 0; i < n; i++) {
        const cxr_item *it = &d->items[idx[i]];
        struct stat st;
        if (stat(it->path, &st) != 0) die("image %s does not exist (%s)", it->path, it->source);
        int64_t id[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
        h = fnv1a(h, it->path, strlen(it->path) + 1);
        h = fnv1a(h, id, sizeof id);
    }
    char key[40];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)h);
    char *dir = cl->no_cache ? NULL : cache_dir(cl);
    char *file = dir ? xasprintf("%s/%s-%s.safetensors", dir, cxr_dataset_names[d->dataset], key) : NULL;
    float *feat = xmalloc((size_t)n * F * sizeof *feat);
    struct stat sb;
    if (file && stat(file, &sb) == 0) {
        st_file *f = st_open(file);
        json_t *k = f->metadata ? json_object_get(f->metadata, "key") : NULL;
        if (k && json_is_string(k) && !strcmp(json_string_value(k), key)) {
            int64_t shape[2] = {n, F};
            st_read_f32(f, "features", 2, shape, feat);
            st_close(f);
            info("features of %ld images from the cache %s", n, file);
            free(file);
            free(dir);
            return feat;
        }
        st_close(f);
        warn("%s: not a cache file for this run; computing afresh", file);
    }
    resnet_cache rc;
    int C = cl->crop;
    resnet_cache_alloc(&rc, m, ENC_BATCH, C, C, 0);
    float *x = xmalloc((size_t)ENC_BATCH * 3 * C * C * sizeof *x);
    int *ok = xmalloc(ENC_BATCH * sizeof *ok);
    char (*err)[512] = xmalloc(ENC_BATCH * sizeof *err);
    progress pg;
    progress_start(&pg, "features", n, "images");
    for (long s = 0; s < n; s += ENC_BATCH) {
        int b = (int)(n - s < ENC_BATCH ? n - s : ENC_BATCH);
        #pragma omp parallel for schedule(dynamic, 1)
        for (int k = 0; k < b; k++)
            ok[k] = image_tensor(x + (size_t)k * 3 * C * C, d->items[idx[s + k]].path, cl->image_size, C,
                                 err[k], sizeof err[k]);
        for (int k = 0; k < b; k++)
            if (!ok[k]) die("%s (%s)", err[k], d->items[idx[s + k]].source);
        resnet_forward(feat + s * F, m, &rc, x, b, 0);
        progress_update(&pg, s + b);
    }
    progress_end(&pg);
    free(err);
    free(ok);
    free(x);
    resnet_cache_free(&rc);
    if (file) {
        mkdirs(dir);
        int64_t shape[2] = {n, F};
        tensor *t = tensor_view(DTYPE_F32, 2, shape, feat);
        const char *names[1] = {"features"};
        const tensor *ts[1] = {t};
        char wk[40];
        snprintf(wk, sizeof wk, "%016llx", (unsigned long long)wh);
        char nimg[32];
        snprintf(nimg, sizeof nimg, "%ld", n);
        /* safetensors metadata values are strings */
        json_t *meta = json_pack("{s:s, s:s, s:s, s:s}", "key", key, "weights", wk, "dataset",
                                 cxr_dataset_names[d->dataset], "images", nimg);
        st_write(file, 1, names, ts, meta);
        json_decref(meta);
        tensor_free(t);
        info("features cached in %s", file);
    }
    free(file);
    free(dir);
    return feat;
}

/* ---- the run --------------------------------------------------------------- */

/* Rows of split s: features [k, F] and targets [k, out] (labels, or one-hot classes). */
static long gather(const cxr_data *d, int s, const float *feat, const long *pos, int F, float **x, float **t) {
    long k = d->n_split[s], r = 0;
    *x = xmalloc((size_t)(k ? k : 1) * F * sizeof **x);
    *t = xcalloc((size_t)(k ? k : 1) * d->n_labels, sizeof **t);
    for (long i = 0; i < d->n; i++) {
        const cxr_item *it = &d->items[i];
        if (it->split != s) continue;
        memcpy(*x + r * F, feat + pos[i] * F, (size_t)F * sizeof **x);
        for (int j = 0; j < d->n_labels; j++)
            (*t)[r * d->n_labels + j] = d->multi_label ? it->label[j] : (float)(it->cls == j);
        r++;
    }
    CHECK(r == k);
    return k;
}

/* The run's metric on the validation split (the probe's best weights), no
 * interval: NAN when it is undefined there (a label with one class only). */
static double validation_metric(const linear_probe *p, const cxr_data *d, const float *x, const float *t, long n) {
    if (n == 0) return NAN;
    int L = d->n_labels;
    float *logits = xmalloc((size_t)n * L * sizeof *logits);
    probe_predict(p, x, n, logits);
    double *score = xmalloc((size_t)n * L * sizeof *score), v = 0;
    int32_t *y = xcalloc((size_t)n, sizeof *y);
    for (long i = 0; i < n * L; i++) score[i] = logits[i];
    for (long i = 0; i < n; i++)
        for (int j = 0; j < L; j++)
            if (t[i * L + j] > 0.5f) y[i] = j;
    if (!d->multi_label) {
        v = metrics_accuracy(score, y, n, L);
    } else {
        uint8_t *lb = xmalloc((size_t)n);
        double *sc = xmalloc((size_t)n * sizeof *sc), a;
        for (int j = 0; j < L && !isnan(v); j++) {
            for (long i = 0; i < n; i++) sc[i] = score[i * L + j], lb[i] = t[i * L + j] > 0.5f;
            v = metrics_auroc_try(sc, lb, n, &a) ? v + a / L : NAN;
        }
        free(lb);
        free(sc);
    }
    free(logits);
    free(score);
    free(y);
    return v;
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "cxreval:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    if (cl.task != TASK_CLASSIFY)
        die("--task %s is not built yet (it follows classification, issue #9); "
            "nothing was read or written", tasks[cl.task]);
    int ds = cl.dataset == DS_CHEXPERT ? CXR_CHEXPERT : cl.dataset == DS_RSNA ? CXR_RSNA : CXR_COVIDX;

    cxr_data *d = cxr_load(ds, cl.data, cl.fraction, (uint64_t)cl.seed);
    info("%s: %ld images for training (of %ld), %ld validation, %ld test", datasets[cl.dataset], d->n_split[0],
         d->n_train_full, d->n_split[1], d->n_split[2]);
    resnet m;
    encoder_open(&m, &cl);
    int F = m.feat_dim;

    /* every image of the dataset (all fractions and seeds share the cache) */
    long *idx = xmalloc((size_t)d->n * sizeof *idx), *pos = xmalloc((size_t)d->n * sizeof *pos), n = 0;
    for (long i = 0; i < d->n; i++) {
        pos[i] = -1;
        if (!d->items[i].dropped) pos[i] = n, idx[n++] = i;
    }
    float *feat = features_get(&m, d, idx, n, &cl);
    resnet_free(&m);

    float *xtr, *ttr, *xva, *tva, *xte, *tte;
    long ntr = gather(d, CXR_TRAIN, feat, pos, F, &xtr, &ttr);
    long nva = gather(d, CXR_VAL, feat, pos, F, &xva, &tva);
    long nte = gather(d, CXR_TEST, feat, pos, F, &xte, &tte);
    free(feat);

    probe_config pc = probe_defaults(d->multi_label, (uint64_t)cl.seed);
    pc.lr = (float)cl.lr;
    pc.weight_decay = (float)cl.weight_decay;
    pc.batch = (int)cl.batch;
    pc.max_epochs = (int)cl.epochs;
    pc.patience = (int)cl.patience;
    linear_probe p;
    probe_init(&p, F, d->n_labels, (uint64_t)cl.seed);
    probe_result pr = probe_train(&p, &pc, xtr, ttr, ntr, xva, tva, nva);

    float *logits = xmalloc((size_t)nte * d->n_labels * sizeof *logits);
    probe_predict(&p, xte, nte, logits);
    double *score = xmalloc((size_t)nte * d->n_labels * sizeof *score);
    uint8_t *lab = xmalloc((size_t)nte * d->n_labels);
    int32_t *y = xmalloc((size_t)nte * sizeof *y);
    for (long i = 0; i < nte; i++) {
        y[i] = 0;
        for (int j = 0; j < d->n_labels; j++) {
            score[i * d->n_labels + j] = logits[i * d->n_labels + j];
            lab[i * d->n_labels + j] = tte[i * d->n_labels + j] > 0.5f;
            if (tte[i * d->n_labels + j] > 0.5f) y[i] = j;
        }
    }
    const char *metric = d->multi_label ? "auroc" : "accuracy";
    double val_value = validation_metric(&p, d, xva, tva, nva);
    char what[256];
    snprintf(what, sizeof what, "%s test set", datasets[cl.dataset]);
    metric_ci ci = metrics_bootstrap(d->multi_label ? METRIC_AUROC_MACRO : METRIC_ACCURACY, score, lab, y, nte,
                                     d->n_labels, cl.bootstrap, (uint64_t)cl.seed, what);

    json_t *o = json_pack("{s:s, s:s, s:f, s:s, s:o, s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                          "task", "classify", "dataset", datasets[cl.dataset], "fraction", cl.fraction, "init",
                          inits[cl.init], "checkpoint", cl.checkpoint ? json_string(cl.checkpoint) : json_null(),
                          "metric", metric, "value", ci.value, "ci_low", ci.low, "ci_high", ci.high, "seed",
                          (json_int_t)cl.seed, "n_train", (json_int_t)ntr, "n_val", (json_int_t)nva, "n_test",
                          (json_int_t)nte, "bootstrap", (json_int_t)ci.n_resamples, "epochs",
                          (json_int_t)pr.epochs_run, "best_epoch", (json_int_t)pr.best_epoch);
    /* the validation split's figures, for choosing settings without the test set */
    if (o && (json_object_set_new(o, "val_loss", json_real(pr.best_val_loss)) ||
              json_object_set_new(o, "val_value", isnan(val_value) ? json_null() : json_real(val_value))))
        die("cannot build the result line");
    if (!o) die("cannot build the result line");
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (printf("%s\n", line) < 0 || fflush(stdout) != 0) die("cannot write the result: %s", strerror(errno));
    free(line);
    json_decref(o);

    if (!common_quiet) {
        fprintf(stderr, "\n  %s, %g of the training labels, init %s%s%s, seed %ld\n", datasets[cl.dataset],
                cl.fraction, inits[cl.init], cl.checkpoint ? " " : "", cl.checkpoint ? cl.checkpoint : "", cl.seed);
        fprintf(stderr, "  images: train %ld (of %ld), validation %ld, test %ld; feature %d-d\n", ntr,
                d->n_train_full, nva, nte, F);
        fprintf(stderr, "  probe: %d epochs, best %d (validation loss %.4f, %s %.4f)\n", pr.epochs_run,
                pr.best_epoch, pr.best_val_loss, d->multi_label ? "macro AUROC" : "accuracy", val_value);
        if (d->multi_label && d->n_labels > 1)
            for (int j = 0; j < d->n_labels; j++) {
                double a;
                double *sc = xmalloc((size_t)nte * sizeof *sc);
                uint8_t *lb = xmalloc((size_t)nte);
                for (long i = 0; i < nte; i++) sc[i] = score[i * d->n_labels + j], lb[i] = lab[i * d->n_labels + j];
                if (metrics_auroc_try(sc, lb, nte, &a)) fprintf(stderr, "  %-22s AUROC %.4f\n", d->label_names[j], a);
                free(sc);
                free(lb);
            }
        fprintf(stderr, "  %-22s %s %.4f  95%% CI [%.4f, %.4f] (%ld resamples, %ld redrawn)\n\n",
                d->multi_label ? (d->n_labels > 1 ? "macro" : d->label_names[0]) : "top-1",
                d->multi_label ? "AUROC" : "accuracy", ci.value, ci.low, ci.high, ci.n_resamples, ci.n_skipped);
    }
    probe_free(&p);
    free(score); free(lab); free(y); free(logits);
    free(xtr); free(ttr); free(xva); free(tva); free(xte); free(tte);
    free(idx); free(pos);
    cxr_free(d);
    return 0;
}
