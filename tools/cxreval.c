/* cxreval.c — the study's measure: how good is a frozen image encoder? Loads
 * the encoder of a vlptrain checkpoint (or ImageNet / random baselines), reads
 * a chest X-ray dataset in its distributed layout, trains a linear probe
 * (segmentation and detection heads later) on a label fraction, and prints one
 * JSON line of results. This file is the command line; classification arrives
 * with issue #9. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

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
    "      --image-weights FILE  torchvision ResNet-50 weights for --init imagenet\n"
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
    "      --cache DIR           feature cache (default: $XDG_CACHE_HOME/synthcxr,\n"
    "                            else ~/.cache/synthcxr)\n"
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
    const char *cache;        /* NULL: the XDG default */
    struct common_opts common;
};

enum { OPT_TASK = OPT_COMMON_LAST, OPT_DATASET, OPT_DATA, OPT_CHECKPOINT, OPT_INIT,
       OPT_IMAGE_WEIGHTS, OPT_FRACTION, OPT_SEED, OPT_LR, OPT_WEIGHT_DECAY, OPT_BATCH,
       OPT_EPOCHS, OPT_PATIENCE, OPT_BOOTSTRAP, OPT_CACHE };

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
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"cxreval", usage};
    /* Defaults: the MGCA linear-probe protocol (STUDY.md). */
    *cl = (struct cmdline){.task = TASK_CLASSIFY, .dataset = -1, .init = INIT_CHECKPOINT,
                           .fraction = 1, .lr = 5e-4, .weight_decay = 1e-6, .batch = 48,
                           .epochs = 50, .patience = 10, .bootstrap = 1000};
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
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) die_usage("no operands are taken ('%s' is extra)", argv[optind]);
    if (cl->dataset < 0) die_usage("--dataset is required");
    if (!task_has_dataset[cl->task][cl->dataset])
        die_usage("--dataset %s has no %s labels", datasets[cl->dataset], tasks[cl->task]);
    if (!cl->data) die_usage("--data DIR is required (the dataset's folder)");
    if (cl->init == INIT_CHECKPOINT && !cl->checkpoint)
        die_usage("--checkpoint CKPT is required (or --init imagenet|random for a baseline)");
    if (cl->init != INIT_CHECKPOINT && cl->checkpoint)
        die_usage("--checkpoint goes with --init checkpoint, not --init %s", inits[cl->init]);
    if (cl->init == INIT_IMAGENET && !cl->image_weights)
        die_usage("--init imagenet needs --image-weights FILE (torchvision ResNet-50)");
    if (cl->init != INIT_IMAGENET && cl->image_weights)
        die_usage("--image-weights goes with --init imagenet");
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "cxreval:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    if (cl.task == TASK_CLASSIFY)
        die("linear-probe classification is not built yet (issue #9); nothing was read or written");
    die("--task %s is not built yet (it follows classification, issue #9); "
        "nothing was read or written", tasks[cl.task]);
}
