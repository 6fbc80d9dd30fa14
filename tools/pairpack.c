/* pairpack.c — turns image-report pairs into vlptrain's input: each image
 * loaded (PNG or JPEG), made grey, resized and padded to a square of u8, each
 * report cleaned and tokenised with BERT WordPiece, as cxrstream(5) records on
 * stdout or in shard files. This file is the command line; the packing
 * arrives with issue #8. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>

static const char usage[] =
    "Usage: pairpack --text-model DIR [OPTION]... [FILE]\n"
    "       pairpack --text-model DIR --format mimic [OPTION]... DIR\n"
    "Pack image-report pairs for vlptrain: grey u8 images padded to a square and\n"
    "BERT token ids of the cleaned report, as a cxrstream(5). FILE holds JSON lines\n"
    "with id, path and text (lat2png's manifest; standard input when FILE is - or\n"
    "absent); with --format mimic, DIR is a MIMIC-CXR style folder (as cxrphantom\n"
    "writes it).\n"
    "\n"
    "      --text-model DIR      BERT folder (vocab.txt, tokenizer_config.json) that\n"
    "                            tokenises the reports; required\n"
    "      --format F            jsonl or mimic (default jsonl)\n"
    "      --root DIR            resolve relative image paths against DIR (default:\n"
    "                            the folder of FILE; . for standard input)\n"
    "      --image-size N        longer side resized to N, padded to N x N, 32-4096\n"
    "                            (default 256)\n"
    "      --max-tokens N        token ids per report with [CLS] and [SEP], 8-512\n"
    "                            (default 112)\n"
    "  -o, --output PREFIX       write shards PREFIX-00000.cxr, PREFIX-00001.cxr, ...\n"
    "                            (default: one stream on standard output)\n"
    "      --shard-size N        records per shard with --output, 1-10000000\n"
    "                            (default 1000)\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  lat2png -o png <latents.cxr | pairpack --text-model bert -o shards/train\n";

static const char *const formats[] = {"jsonl", "mimic", NULL};
enum { FORMAT_JSONL, FORMAT_MIMIC };

struct cmdline {
    const char *text_model; /* HF BERT folder (vocab.txt, tokenizer_config.json) */
    const char *input;      /* JSONL file, "-" = stdin; the folder for mimic */
    const char *root;       /* NULL: the folder of the input */
    int format;
    long image_size;
    long max_tokens;
    const char *output;     /* shard prefix; NULL: one stream on stdout */
    long shard_size;
    int shard_size_set;
    struct common_opts common;
};

enum { OPT_TEXT_MODEL = OPT_COMMON_LAST, OPT_FORMAT, OPT_ROOT, OPT_IMAGE_SIZE, OPT_MAX_TOKENS,
       OPT_SHARD_SIZE };

static const struct option longopts[] = {
    {"text-model", required_argument, 0, OPT_TEXT_MODEL},
    {"format", required_argument, 0, OPT_FORMAT},
    {"root", required_argument, 0, OPT_ROOT},
    {"image-size", required_argument, 0, OPT_IMAGE_SIZE},
    {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
    {"output", required_argument, 0, 'o'},
    {"shard-size", required_argument, 0, OPT_SHARD_SIZE},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"pairpack", usage};
    *cl = (struct cmdline){.format = FORMAT_JSONL, .image_size = 256, .max_tokens = 112,
                           .shard_size = 1000};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "o:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TEXT_MODEL: cl->text_model = optarg; break;
        case OPT_FORMAT: cl->format = parse_enum("--format", optarg, formats); break;
        case OPT_ROOT: cl->root = optarg; break;
        case OPT_IMAGE_SIZE: cl->image_size = parse_long("--image-size", optarg, 32, 4096); break;
        case OPT_MAX_TOKENS: cl->max_tokens = parse_long("--max-tokens", optarg, 8, 512); break;
        case 'o':
            if (!*optarg) die_usage("--output: the prefix is empty");
            cl->output = optarg;
            break;
        case OPT_SHARD_SIZE:
            cl->shard_size = parse_long("--shard-size", optarg, 1, 10000000);
            cl->shard_size_set = 1;
            break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) cl->input = argv[optind++];
    if (optind < argc) die_usage("one input at most ('%s' is extra)", argv[optind]);
    if (!cl->text_model) die_usage("--text-model DIR is required (a BERT folder with vocab.txt)");
    if (cl->format == FORMAT_MIMIC && !cl->input)
        die_usage("--format mimic needs the dataset folder as its operand");
    if (!cl->input) cl->input = "-";
    if (cl->shard_size_set && !cl->output)
        die_usage("--shard-size needs --output (standard output carries one stream)");
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "pairpack:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    die("image loading and BERT tokenisation for pairs are not built yet (issue #8); "
        "nothing was read or written");
}
