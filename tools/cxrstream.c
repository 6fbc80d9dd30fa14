/* cxrstream — reads a cxrstream (man 5 cxrstream), validates every record and
 * prints a JSON-lines summary: the header, then one line per record with its
 * id, meta and each tensor's dtype and shape (never the data). Like netpbm's
 * pamfile: the way to look inside a pipeline, or (--check) to test a file. */
#include "common.h"
#include "stream.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

static const char usage[] =
    "Usage: cxrstream [OPTION]... [FILE]\n"
    "Validate a cxrstream (msgpack tensor stream) and summarise it as JSON lines:\n"
    "the header, then one line per record with its id, meta and tensor shapes.\n"
    "With no FILE, or FILE -, read standard input.\n"
    "\n"
    "  -c, --check       validate only; print nothing\n"
    "  -k, --kind K      require the stream's kind to be K (e.g. conditioning, latents)\n"
    COMMON_HELP
    "\n"
    "Exit status: 0 valid, 1 bad command line, 2 invalid stream or read error.\n"
    "See cxrstream(1) and cxrstream(5).\n";

struct cmdline {
    struct common_opts common;
    int check;
    const char *kind;
    const char *path;          /* NULL or "-": stdin */
};

static void parse_cmdline(int argc, char **argv, struct cmdline *cl) {
    static const struct option longopts[] = {
        {"check", no_argument, 0, 'c'},
        {"kind", required_argument, 0, 'k'},
        COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    static const struct prog_doc doc = {"cxrstream", usage};
    memset(cl, 0, sizeof *cl);
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "ck:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'c': cl->check = 1; break;
        case 'k':
            if (!*optarg) die_usage("--kind: the kind is empty");
            cl->kind = optarg;
            break;
        default: common_option(c, optarg, &cl->common, &doc); break;
        }
    }
    if (argc - optind > 1) die_usage("one FILE at most (got %d)", argc - optind);
    if (optind < argc) cl->path = argv[optind];
}

/* {"name": {"dtype": "f32", "shape": [4, 64, 64]}, ...} */
static json_t *tensor_summary(const record *rec) {
    json_t *ts = json_object();
    for (int i = 0; i < rec->ntensors; i++) {
        const tensor *t = rec->tensors[i].t;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(ts, rec->tensors[i].name,
                            json_pack("{s:s, s:o}", "dtype", dtype_name(t->dtype), "shape", shape));
    }
    return ts;
}

static void print_line(json_t *line) {
    if (json_dumpf(line, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        die("stdout: write error");
    json_decref(line);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    struct cmdline cl;
    parse_cmdline(argc, argv, &cl);
    /* --device and --threads are accepted like everywhere else; nothing here computes. */
    common_quiet = cl.common.quiet;

    const char *name = "stdin";
    FILE *f = stdin;
    if (cl.path && strcmp(cl.path, "-")) {
        f = fopen(cl.path, "rb");
        if (!f) die("cannot open %s: %s", cl.path, strerror(errno));
        name = cl.path;
    }
    stream_reader *r = stream_reader_open(f, name);
    if (cl.kind) stream_expect_kind(r, cl.kind);
    const stream_header *h = stream_read_header(r);
    if (h && !cl.check) {
        json_t *line = json_pack("{s:s, s:i, s:s}", "magic", STREAM_MAGIC, "version", h->version, "kind", h->kind);
        if (h->producer) json_object_set_new(line, "producer", json_string(h->producer));
        json_object_set(line, "meta", h->rec.meta);
        json_object_set_new(line, "tensors", tensor_summary(&h->rec));
        if (h->rec.nextra) json_object_set_new(line, "extra_keys", json_integer(h->rec.nextra));
        print_line(line);
    }
    record rec;
    record_init(&rec);
    while (stream_read_record(r, &rec)) {
        if (cl.check) continue;
        json_t *line = json_pack("{s:I, s:s}", "index", (json_int_t)rec.index, "id", rec.id);
        json_object_set(line, "meta", rec.meta);
        json_object_set_new(line, "tensors", tensor_summary(&rec));
        if (rec.nextra) json_object_set_new(line, "extra_keys", json_integer(rec.nextra));
        print_line(line);
    }
    record_clear(&rec);
    stream_reader_close(r);
    if (f != stdin) fclose(f);
    return EXIT_OK;
}
