/* lat2png.c — the tail of the generation pipeline: decodes each record's
 * final latent with the VAE and writes one PNG per record (report and
 * provenance in tEXt chunks), and a JSON line per image on stdout (the
 * manifest pairpack reads). This file is the command line; the VAE decoder
 * and the PNG writer arrive with issue #5. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>

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
    "      --batch B             latents per VAE pass, 1-1024 (default 1)\n"
    "      --precision P         fp32, fp16 or bf16 (default: fp32 on the CPU,\n"
    "                            fp16 on CUDA)\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  rep2lat -m roentgen reports.jsonl | denoise | lat2png --gray -o png >png.jsonl\n";

static const char *const precisions[] = {"fp32", "fp16", "bf16", NULL};

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

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "lat2png:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    die("the VAE decoder and the PNG writer are not built yet (issue #5); "
        "nothing was read or written");
}
