/* common.c — messages, check macros, checked allocation, common options. */
#include "common.h"
#include "device.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *prog_name = "synthcxr";
int common_quiet = 0;

void prog_init(const char *argv0) {
    if (argv0) {
        const char *slash = strrchr(argv0, '/');
        prog_name = slash ? slash + 1 : argv0;
    }
}

static void vmsg(const char *prefix, const char *fmt, va_list ap) {
    /* One fprintf per line so messages from parallel jobs do not interleave. */
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    fprintf(stderr, "%s: %s%s\n", prog_name, prefix, buf);
}

_Thread_local struct die_trap *die_trap;

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (die_trap) {
        struct die_trap *t = die_trap;
        die_trap = NULL; /* a die while handling this one exits */
        vsnprintf(t->msg, sizeof t->msg, fmt, ap);
        va_end(ap);
        longjmp(t->jb, 1);
    }
    vmsg("", fmt, ap);
    va_end(ap);
    exit(EXIT_DATA);
}

void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", prog_name);
    exit(EXIT_USAGE);
}

void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void info(const char *fmt, ...) {
    if (common_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
}

void die_at(const char *file, int line, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s:%d: %s\n", prog_name, file, line, buf);
    exit(EXIT_DATA);
}

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc_at(void *old, size_t n, const char *file, int line) {
    void *p = realloc(old, n ? n : 1);
    if (!p) die_at(file, line, "out of memory reallocating to %zu bytes", n);
    return p;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

void *xmalloc_aligned_at(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t rounded = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        die_at(file, line, "out of memory allocating %zu aligned bytes", n);
    return p;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    char *s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

/* ---- options ------------------------------------------------------------ */

void common_defaults(struct common_opts *o) {
    o->device = "auto";
    o->threads = 0;
    o->quiet = 0;
}

long parse_long(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        die_usage("%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        die_usage("%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    return v;
}

double parse_double(const char *opt, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        die_usage("%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi)
        die_usage("%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    return v;
}

int parse_enum(const char *opt, const char *s, const char *const names[]) {
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; names[i]; i++) {
        if (!strcmp(s, names[i])) return i;
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (n > 0 && (size_t)n < sizeof list - used) used += (size_t)n;
    }
    die_usage("%s: '%s' is not one of %s", opt, s, list);
}

int common_option(int c, const char *arg, struct common_opts *o, const struct prog_doc *doc) {
    switch (c) {
    case OPT_DEVICE:
        if (strcmp(arg, "auto") && strcmp(arg, "cpu") && strcmp(arg, "cuda"))
            die_usage("--device: '%s' is not one of auto, cpu, cuda", arg);
        o->device = arg;
        return 1;
    case OPT_THREADS:
        o->threads = (int)parse_long("--threads", arg, 1, 4096);
        return 1;
    case 'q':
        o->quiet = 1;
        return 1;
    case 'h':
        fputs(doc->usage, stdout);
        exit(EXIT_OK);
    case 'V':
        printf("%s (synthcxr) %s\n", doc->name, SYNTHCXR_VERSION);
        exit(EXIT_OK);
    case '?': /* getopt_long already named the option */
    case ':':
        fprintf(stderr, "Try '%s --help' for more information.\n", prog_name);
        exit(EXIT_USAGE);
    default:
        return 0;
    }
}

static int g_threads = 0;

int threads_get(void) {
    if (g_threads <= 0) g_threads = omp_get_max_threads();
    return g_threads;
}

void threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    /* One pool: OpenBLAS (OpenMP build) runs single-threaded when called from
     * inside our parallel regions, and uses the same count outside them. */
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

enum device_kind common_start(const struct common_opts *o) {
    common_quiet = o->quiet;
    threads_set(o->threads);
    int ngpu = cuda_device_count();
    if (!strcmp(o->device, "cpu")) return DEVICE_CPU;
    if (!strcmp(o->device, "cuda")) {
        if (ngpu <= 0) die("--device cuda: %s", cuda_unavailable_reason());
        info("device: cuda (%d GPU%s)", ngpu, ngpu == 1 ? "" : "s");
        return DEVICE_CUDA;
    }
    if (ngpu > 0) {
        info("device: cuda (auto; %d GPU%s)", ngpu, ngpu == 1 ? "" : "s");
        return DEVICE_CUDA;
    }
    info("device: cpu (auto; %s), %d threads", cuda_unavailable_reason(), threads_get());
    return DEVICE_CPU;
}
