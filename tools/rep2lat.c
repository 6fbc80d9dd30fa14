/* rep2lat.c — head of the generation pipeline: radiology reports (JSON Lines)
 * in, a cxrstream(5) out with, per report, the CLIP text states that condition
 * the UNet and the seeded initial latent noise (the unconditional states for
 * guidance travel once, in the header). This file is the command line; the
 * tokenizer and the text encoder arrive with issue #3. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>

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
    "                            model's sample_size x 8)\n"
    "      --width N             image width, a multiple of 8 (default: the\n"
    "                            model's sample_size x 8)\n"
    "      --clip-skip N         skip the last N CLIP layers; 0 = last_hidden_state\n"
    "                            (default 0)\n"
    "      --batch B             reports per text-encoder pass, 1-1024 (default 1)\n"
    "      --precision P         fp32, fp16 or bf16 (default: fp32 on the CPU,\n"
    "                            fp16 on CUDA)\n"
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
    int precision;         /* index into precisions; -1: per device */
    struct common_opts common;
};

enum { OPT_FIELD = OPT_COMMON_LAST, OPT_NEGATIVE, OPT_SEED, OPT_HEIGHT, OPT_WIDTH,
       OPT_CLIP_SKIP, OPT_BATCH, OPT_PRECISION };

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
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input file at most ('%s' is extra)", argv[optind]);
    if (!cl->model) die_usage("--model DIR is required (a diffusers folder)");
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "rep2lat:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    die("the CLIP tokenizer and text encoder are not built yet (issue #3); "
        "nothing was read or written");
}
