/* vlptrain.c — vision-language pre-training on pairpack shards: a ResNet-50
 * image encoder and a BERT text encoder with projection heads, trained with a
 * contrastive loss (ConVIRT; GLoRIA and MGCA later), AdamW with a cosine
 * schedule, checkpoints as safetensors with torchvision / HF names. This file
 * is the command line; training arrives with issue #8 (ConVIRT). */
#include "common.h"

#include <getopt.h>
#include <stdio.h>

static const char usage[] =
    "Usage: vlptrain --text-model DIR -o CKPT [OPTION]... [SHARD]...\n"
    "Pre-train an image and a text encoder on image-report pairs with a contrastive\n"
    "loss. SHARDs are pairpack streams, cxrstream(5) (files or quoted globs; with\n"
    "none, standard input). Writes a JSON line per logged step to standard output.\n"
    "\n"
    "      --method M            convirt, gloria or mgca (default convirt)\n"
    "      --text-model DIR      BERT folder such as Bio_ClinicalBERT; required\n"
    "      --text-layers N       keep the first N BERT layers, 1-48 (default 6)\n"
    "      --image-weights FILE  torchvision ResNet-50 weights, safetensors\n"
    "                            (default: random initialisation)\n"
    "      --embed-dim N         projection size, 1-4096 (default 128)\n"
    "      --temperature T       InfoNCE temperature, 0.001-10 (default 0.07)\n"
    "      --lambda L            weight of the image-to-text loss, 0-1 (default 0.5;\n"
    "                            the ConVIRT paper used 0.75 with temperature 0.1)\n"
    "      --epochs N            passes over the pairs, 1-100000 (default 50)\n"
    "      --batch B             pairs per forward pass, 2-65536 (default 72)\n"
    "      --accumulate N        batches per optimiser step, 1-1024 (default 1)\n"
    "      --lr LR               peak learning rate, 0-1 (default 2e-5)\n"
    "      --min-lr LR           learning rate at the end, 0-1 (default 1e-8)\n"
    "      --weight-decay W      AdamW weight decay, 0-1 (default 0.05)\n"
    "      --warmup F            fraction of the steps in linear warm-up, 0-1\n"
    "                            (default 0.4)\n"
    "      --clip-grad N         clip the global gradient norm to N; 0 = off\n"
    "                            (default 0)\n"
    "      --val-fraction F      pairs held out for validation, 0-0.5 (default 0.05)\n"
    "      --seed N              initialisation, split, shuffling, crops (default 0)\n"
    "  -o, --output CKPT         checkpoint file (safetensors); required\n"
    "      --save-every N        steps between checkpoints; 0 = only at the end\n"
    "                            (default 1000)\n"
    "      --log-every N         steps between JSON log lines, 1-1000000 (default 10)\n"
    "      --resume CKPT         continue exactly from a checkpoint\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  vlptrain --text-model bio_clinicalbert --image-weights resnet50.safetensors \\\n"
    "           -o convirt.safetensors 'shards/train-*.cxr' >train.jsonl\n";

static const char *const methods[] = {"convirt", "gloria", "mgca", NULL};
enum { METHOD_CONVIRT, METHOD_GLORIA, METHOD_MGCA };

struct cmdline {
    int method;
    const char *text_model;     /* HF BERT folder */
    long text_layers;
    const char *image_weights;  /* NULL: random init */
    long embed_dim;
    double temperature, lambda;
    long epochs, batch, accumulate;
    double lr, min_lr, weight_decay, warmup, clip_grad, val_fraction;
    long seed;
    const char *output;         /* checkpoint path */
    long save_every, log_every;
    const char *resume;         /* NULL: fresh start */
    char **shards;              /* argv tail; nshards == 0: stdin */
    int nshards;
    struct common_opts common;
};

enum { OPT_METHOD = OPT_COMMON_LAST, OPT_TEXT_MODEL, OPT_TEXT_LAYERS, OPT_IMAGE_WEIGHTS,
       OPT_EMBED_DIM, OPT_TEMPERATURE, OPT_LAMBDA, OPT_EPOCHS, OPT_BATCH, OPT_ACCUMULATE,
       OPT_LR, OPT_MIN_LR, OPT_WEIGHT_DECAY, OPT_WARMUP, OPT_CLIP_GRAD, OPT_VAL_FRACTION,
       OPT_SEED, OPT_SAVE_EVERY, OPT_LOG_EVERY, OPT_RESUME };

static const struct option longopts[] = {
    {"method", required_argument, 0, OPT_METHOD},
    {"text-model", required_argument, 0, OPT_TEXT_MODEL},
    {"text-layers", required_argument, 0, OPT_TEXT_LAYERS},
    {"image-weights", required_argument, 0, OPT_IMAGE_WEIGHTS},
    {"embed-dim", required_argument, 0, OPT_EMBED_DIM},
    {"temperature", required_argument, 0, OPT_TEMPERATURE},
    {"lambda", required_argument, 0, OPT_LAMBDA},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"accumulate", required_argument, 0, OPT_ACCUMULATE},
    {"lr", required_argument, 0, OPT_LR},
    {"min-lr", required_argument, 0, OPT_MIN_LR},
    {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"clip-grad", required_argument, 0, OPT_CLIP_GRAD},
    {"val-fraction", required_argument, 0, OPT_VAL_FRACTION},
    {"seed", required_argument, 0, OPT_SEED},
    {"output", required_argument, 0, 'o'},
    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"log-every", required_argument, 0, OPT_LOG_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"vlptrain", usage};
    /* Defaults: the MGCA recipe (STUDY.md), ConVIRT loss with temperature 0.07. */
    *cl = (struct cmdline){.method = METHOD_CONVIRT, .text_layers = 6, .embed_dim = 128,
                           .temperature = 0.07, .lambda = 0.5, .epochs = 50, .batch = 72,
                           .accumulate = 1, .lr = 2e-5, .min_lr = 1e-8, .weight_decay = 0.05,
                           .warmup = 0.4, .val_fraction = 0.05, .save_every = 1000,
                           .log_every = 10};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "o:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_METHOD: cl->method = parse_enum("--method", optarg, methods); break;
        case OPT_TEXT_MODEL: cl->text_model = optarg; break;
        case OPT_TEXT_LAYERS: cl->text_layers = parse_long("--text-layers", optarg, 1, 48); break;
        case OPT_IMAGE_WEIGHTS: cl->image_weights = optarg; break;
        case OPT_EMBED_DIM: cl->embed_dim = parse_long("--embed-dim", optarg, 1, 4096); break;
        case OPT_TEMPERATURE:
            cl->temperature = parse_double("--temperature", optarg, 1e-3, 10);
            break;
        case OPT_LAMBDA: cl->lambda = parse_double("--lambda", optarg, 0, 1); break;
        case OPT_EPOCHS: cl->epochs = parse_long("--epochs", optarg, 1, 100000); break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 2, 65536); break;
        case OPT_ACCUMULATE: cl->accumulate = parse_long("--accumulate", optarg, 1, 1024); break;
        case OPT_LR: cl->lr = parse_double("--lr", optarg, 0, 1); break;
        case OPT_MIN_LR: cl->min_lr = parse_double("--min-lr", optarg, 0, 1); break;
        case OPT_WEIGHT_DECAY:
            cl->weight_decay = parse_double("--weight-decay", optarg, 0, 1);
            break;
        case OPT_WARMUP: cl->warmup = parse_double("--warmup", optarg, 0, 1); break;
        case OPT_CLIP_GRAD: cl->clip_grad = parse_double("--clip-grad", optarg, 0, 1e6); break;
        case OPT_VAL_FRACTION:
            cl->val_fraction = parse_double("--val-fraction", optarg, 0, 0.5);
            break;
        case OPT_SEED: cl->seed = parse_long("--seed", optarg, 0, INT64_MAX); break;
        case 'o':
            if (!*optarg) die_usage("--output: the file name is empty");
            cl->output = optarg;
            break;
        case OPT_SAVE_EVERY: cl->save_every = parse_long("--save-every", optarg, 0, INT64_MAX); break;
        case OPT_LOG_EVERY: cl->log_every = parse_long("--log-every", optarg, 1, 1000000); break;
        case OPT_RESUME: cl->resume = optarg; break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    cl->shards = argv + optind;
    cl->nshards = argc - optind;
    if (!cl->text_model) die_usage("--text-model DIR is required (a BERT folder)");
    if (!cl->output) die_usage("--output CKPT is required (where the checkpoint goes)");
    if (cl->min_lr > cl->lr) die_usage("--min-lr %g is above --lr %g", cl->min_lr, cl->lr);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "vlptrain:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    if (cl.method == METHOD_CONVIRT)
        die("ConVIRT training (ResNet-50, BERT, InfoNCE, AdamW) is not built yet (issue #8); "
            "nothing was read or written");
    die("--method %s is not built yet (it follows ConVIRT, issue #8); nothing was read or written",
        methods[cl.method]);
}
