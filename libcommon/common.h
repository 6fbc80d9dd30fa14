/* common.h — what every synthcxr program and library file shares: the program
 * name used in messages, the check macros (always on, independent of NDEBUG),
 * checked allocation, and the common command-line options. */
#ifndef SYNTHCXR_COMMON_H
#define SYNTHCXR_COMMON_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef SYNTHCXR_VERSION
#define SYNTHCXR_VERSION "0.0.0"
#endif

/* Exit statuses, the same for every program (see the man pages). */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_DATA = 2 };

/* The name messages are prefixed with ("rep2lat: ..."); set by prog_init. */
extern const char *prog_name;
void prog_init(const char *argv0);

/* "prog: message" on stderr, then exit 2 (bad input, I/O, runtime failure). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* "prog: message" plus a hint to --help on stderr, then exit 1 (bad command line). */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* "prog: warning: message" on stderr; never exits. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: message" on stderr unless quiet mode is on (progress, device choice). */
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int common_quiet;

/* A caller that can carry on after one failed step (pairpack skips an
 * unreadable image) points die_trap at a struct die_trap whose jb it has
 * setjmp'ed; die() then keeps its message (without the "prog: " prefix) in
 * msg and longjmps there instead of printing and exiting. Only for calls that
 * free what they hold before they die (pngio_read, jpegio_read do); clear it
 * again right after. die_usage, die_at and CHECK are never trapped. */
struct die_trap {
    jmp_buf jb;
    char msg[1024];
};
extern _Thread_local struct die_trap *die_trap;

void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* CHECK(expr): an always-on assertion naming file:line and the expression. */
#define CHECK(expr) \
    do { if (!(expr)) die_at(__FILE__, __LINE__, "check failed: %s", #expr); } while (0)
/* CHECKF(expr, fmt, ...): the same with a sentence for the reader. */
#define CHECKF(expr, ...) \
    do { if (!(expr)) die_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(c, s) xcalloc_at((c), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
/* 64-byte aligned allocation for kernels; free with free(). */
void *xmalloc_aligned_at(size_t n, const char *file, int line);
#define xmalloc_aligned(n) xmalloc_aligned_at((n), __FILE__, __LINE__)

/* Formatted string in fresh memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- common command-line options ----------------------------------------
 * Every program accepts --device, --threads, -q/--quiet, -h/--help, -V/--version.
 * A program adds COMMON_LONGOPTS to its getopt_long table and COMMON_SHORTOPTS
 * to its short string, and passes every option it does not know itself to
 * common_option(). */
enum device_kind { DEVICE_CPU = 0, DEVICE_CUDA = 1 };

struct common_opts {
    const char *device;   /* "auto" (default), "cpu" or "cuda" */
    int threads;          /* 0 = all cores */
    int quiet;
};

struct prog_doc {
    const char *name;     /* "rep2lat" */
    const char *usage;    /* full --help text, printed as is */
};

enum { OPT_DEVICE = 0x1000, OPT_THREADS, OPT_COMMON_LAST };
#define COMMON_SHORTOPTS "qhV"
#define COMMON_LONGOPTS                                  \
    {"device", required_argument, 0, OPT_DEVICE},        \
    {"threads", required_argument, 0, OPT_THREADS},      \
    {"quiet", no_argument, 0, 'q'},                      \
    {"help", no_argument, 0, 'h'},                       \
    {"version", no_argument, 0, 'V'}

/* Help text for the common options, for a program's --help. */
#define COMMON_HELP                                                          \
    "      --device D            auto (default), cpu or cuda\n"               \
    "      --threads N           CPU threads (default: all cores)\n"          \
    "  -q, --quiet               no progress or notes on stderr\n"            \
    "  -h, --help                this help, then exit 0\n"                    \
    "  -V, --version             version, then exit 0\n"

void common_defaults(struct common_opts *o);
/* Handles a common option c (from getopt_long); '?' and ':' become a usage
 * error. Exits for --help/--version. Returns 1 if handled, 0 if c is not common. */
int common_option(int c, const char *arg, struct common_opts *o, const struct prog_doc *doc);
/* After parsing: applies --threads and --quiet, resolves --device (saying which
 * one on stderr unless quiet) and returns it. */
enum device_kind common_start(const struct common_opts *o);

/* Parse helpers for option values; a bad value is a usage error naming the option. */
long parse_long(const char *opt, const char *s, long lo, long hi);
double parse_double(const char *opt, const char *s, double lo, double hi);
/* Index of s in the NULL-terminated list names; anything else is a usage error
 * naming the option and listing the choices. */
int parse_enum(const char *opt, const char *s, const char *const names[]);

/* Threads in use for CPU kernels (after common_start / threads_set). */
int threads_get(void);
void threads_set(int n);

#endif
