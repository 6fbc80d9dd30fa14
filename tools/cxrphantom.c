/* cxrphantom.c — a procedural chest X-ray world written in the real datasets'
 * formats: per case a patient, findings, a film, masks, boxes and a report
 * (libcommon/phantom_*), all from (seed, index), rendered in parallel over
 * images and laid out as MIMIC-CXR, CheXpert, RSNA, SIIM, COVIDx or Object-CXR.
 * This file is the command line and the loop. */
#include "atomic_file.h"
#include "common.h"
#include "phantom_formats.h"
#include "phantom_report.h"
#include "png_io.h"

#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char usage[] =
    "Usage: cxrphantom --outdir DIR [OPTION]...\n"
    "Render a synthetic chest X-ray dataset (images, findings, masks, boxes and\n"
    "reports) deterministically from a seed, in the layout of a real dataset.\n"
    "\n"
    "  -o, --outdir DIR          the dataset's root folder (made if missing); required\n"
    "  -f, --format F            mimic (default), chexpert, rsna, siim, covidx or\n"
    "                            object-cxr\n"
    "  -n, --count N             images, 1 to 10000000 (default 100)\n"
    "      --seed N              world seed, 0 to 2^63-1 (default 0)\n"
    "      --size N              image side in pixels, 32 to 1024 (default 256)\n"
    "  -j, --jobs N              images rendered at once (default: --threads)\n"
    "      --prevalence LIST     NAME=P[,NAME=P]... finding rates, P in [0, 1]; names:\n"
    "                            cardiomegaly effusion pneumothorax edema\n"
    "                            consolidation pneumonia atelectasis nodule devices\n"
    "                            foreign fracture pleural-other enlarged-cm covid\n"
    "      --sheet FILE          also write a contact sheet PNG of the first\n"
    "                            (up to 16) images with boxes and findings marked\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  cxrphantom -o phantom/mimic --count 2000 --seed 7\n";

struct cmdline {
    const char *outdir;
    const char *sheet;
    int format;
    long count, seed, size, jobs;
    float prev[PP_N];
    struct common_opts common;
};

enum { OPT_SEED = OPT_COMMON_LAST, OPT_SIZE, OPT_PREVALENCE, OPT_SHEET };

static const struct option longopts[] = {
    {"outdir", required_argument, 0, 'o'},
    {"format", required_argument, 0, 'f'},
    {"count", required_argument, 0, 'n'},
    {"seed", required_argument, 0, OPT_SEED},
    {"size", required_argument, 0, OPT_SIZE},
    {"jobs", required_argument, 0, 'j'},
    {"prevalence", required_argument, 0, OPT_PREVALENCE},
    {"sheet", required_argument, 0, OPT_SHEET},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"cxrphantom", usage};
    *cl = (struct cmdline){.format = PF_MIMIC, .count = 100, .size = 256};
    memcpy(cl->prev, phantom_prev_default, sizeof cl->prev);
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "o:f:n:j:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg) die_usage("--outdir: the folder name is empty");
            cl->outdir = optarg;
            break;
        case 'f': cl->format = parse_enum("--format", optarg, phantom_format_names); break;
        case 'n': cl->count = parse_long("--count", optarg, 1, 10000000); break;
        case OPT_SEED: cl->seed = parse_long("--seed", optarg, 0, INT64_MAX); break;
        case OPT_SIZE: cl->size = parse_long("--size", optarg, 32, 1024); break;
        case 'j': cl->jobs = parse_long("--jobs", optarg, 1, 4096); break;
        case OPT_PREVALENCE: phantom_prev_parse(cl->prev, optarg); break;
        case OPT_SHEET:
            if (!*optarg) die_usage("--sheet: the file name is empty");
            cl->sheet = optarg;
            break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    if (optind < argc) die_usage("no operands are taken ('%s' is extra)", argv[optind]);
    if (!cl->outdir) die_usage("--outdir DIR is required");
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name;
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    if (mkdir(cl.outdir, 0777) != 0 && errno != EEXIST) die("cannot create %s: %s", cl.outdir, strerror(errno));
    struct stat st;
    if (stat(cl.outdir, &st) != 0 || !S_ISDIR(st.st_mode)) die("%s is not a folder", cl.outdir);
    atomic_file_fsync = 0;          /* thousands of small files that the seed can remake: */
    pngio_compression_level = 1;    /* no fsync each, and fast zlib (same pixels) */
    int jobs = cl.jobs ? (int)cl.jobs : threads_get();
    int n = (int)cl.size;
    long count = cl.count;
    phantom_record *rec = xcalloc((size_t)count, sizeof *rec);
    int cols = 4, nsheet = count < 16 ? (int)count : 16;
    uint8_t *sheet = cl.sheet ? xcalloc((size_t)((nsheet + cols - 1) / cols) * n * cols * n * 3, 1) : NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* One image per iteration; each draws from its own generators, seeded from
     * (seed, index), so the files do not depend on --jobs. */
#pragma omp parallel num_threads(jobs)
    {
        uint8_t *film = xmalloc((size_t)n * n), *ptx = xmalloc((size_t)n * n);
        phantom_maps ws;
        phantom_maps_init(&ws, n);
#pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < count; i++) {
            phantom_record *r = &rec[i];
            phantom_case_make(&r->c, (uint64_t)cl.seed, i, n, cl.prev);
            phantom_case_render_ws(&r->c, &ws, film, ptx, NULL);
            if (cl.format == PF_MIMIC) {
                phantom_report rep;
                phantom_report_make(&r->c, &rep);
                r->findings = rep.findings;
                r->impression = rep.impression;
            }
            if (cl.format == PF_SIIM && r->c.has_ptx_mask) r->rle = phantom_rle_encode(ptx, n);
            char rel[512];
            phantom_image_path(cl.format, &r->c, rel, sizeof rel);
            char *path = xasprintf("%s/%s", cl.outdir, rel);
            phantom_mkdirs_for(path);
            char seed_s[32], index_s[32];
            snprintf(seed_s, sizeof seed_s, "%ld", cl.seed);
            snprintf(index_s, sizeof index_s, "%ld", i);
            const pngio_text text[] = {{"Software", "cxrphantom " SYNTHCXR_VERSION}, {"seed", seed_s}, {"index", index_s}};
            pngio_write_u8(path, film, n, n, 1, text, 3);
            free(path);
            if (sheet && i < nsheet) phantom_sheet_put(sheet, cols, n, (int)i, &r->c, film, r->c.has_ptx_mask ? ptx : NULL);
        }
        free(film);
        free(ptx);
        phantom_maps_free(&ws);
    }
    phantom_write_tables(cl.format, cl.outdir, rec, count);
    if (sheet) pngio_write_u8(cl.sheet, sheet, (nsheet + cols - 1) / cols * n, cols * n, 3, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    info("%ld %s images of %dx%d in %s (%.1f s, %d jobs)", count, phantom_format_names[cl.format], n, n, cl.outdir, sec,
         jobs);
    for (long i = 0; i < count; i++) {
        free(rec[i].findings);
        free(rec[i].impression);
        free(rec[i].rle);
    }
    free(rec);
    free(sheet);
    return 0;
}
