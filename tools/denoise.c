/* denoise.c — the middle of the generation pipeline: reads rep2lat's stream,
 * runs the UNet over each record's latent for --steps scheduler steps with
 * classifier-free guidance, and writes the same records with the final latent
 * and the provenance (scheduler, steps, guidance) added to meta. This file is
 * the command line; the UNet and the schedulers arrive with issue #4. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>

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

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "denoise:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    die("the UNet and the schedulers are not built yet (issue #4); nothing was read or written");
}
