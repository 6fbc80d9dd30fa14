/* unit.h — the C unit-test harness: TAP lines ("ok N - name", "not ok N - name",
 * "ok N - name # SKIP why"), comparisons against reference fixtures with a
 * stated tolerance, and checks that a call dies with the right status and message.
 * A test binary exits 1 if any test failed. tests/run.sh gathers the lines. */
#ifndef SYNTHCXR_UNIT_H
#define SYNTHCXR_UNIT_H

#include "common.h"
#include "safetensors.h"
#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int unit_n, unit_failed, unit_cur_failed, unit_cur_skipped;
static char unit_skip_why[256];

/* Report a failure of the current test (the test goes on, so every fault shows). */
static void unit_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void unit_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("#   ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    unit_cur_failed = 1;
}

#define EXPECT(cond, ...) \
    do { if (!(cond)) unit_fail("%s:%d: %s", __FILE__, __LINE__, #cond), unit_fail(__VA_ARGS__); } while (0)

/* Mark the current test skipped; the caller returns. */
static void unit_skip(const char *why) __attribute__((unused));
static void unit_skip(const char *why) {
    unit_cur_skipped = 1;
    snprintf(unit_skip_why, sizeof unit_skip_why, "%s", why);
}

#define RUN(fn) unit_run(#fn, fn)
static void unit_run(const char *name, void (*fn)(void)) __attribute__((unused));
static void unit_run(const char *name, void (*fn)(void)) {
    unit_cur_failed = unit_cur_skipped = 0;
    fflush(stdout);
    fn();
    unit_n++;
    if (unit_cur_skipped && !unit_cur_failed)
        printf("ok %d - %s # SKIP %s\n", unit_n, name, unit_skip_why);
    else if (unit_cur_failed) {
        printf("not ok %d - %s\n", unit_n, name);
        unit_failed++;
    } else
        printf("ok %d - %s\n", unit_n, name);
    fflush(stdout);
}

static int unit_done(void) __attribute__((unused));
static int unit_done(void) {
    printf("1..%d\n", unit_n);
    return unit_failed ? 1 : 0;
}

/* Fixture folder: $SYNTHCXR_FIXTURES or tests/fixtures (tests run from the repo root). */
static const char *fixture_path(const char *name) __attribute__((unused));
static const char *fixture_path(const char *name) {
    static char buf[4096];
    const char *dir = getenv("SYNTHCXR_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "tests/fixtures", name);
    return buf;
}

/* A temporary folder for this test binary, made on first use. */
static const char *unit_tmpdir(void) __attribute__((unused));
static const char *unit_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/synthcxr-unit-XXXXXX");
        CHECK(mkdtemp(dir));
    }
    return dir;
}

/* A whole file in fresh memory (one spare byte at the end); dies if unreadable. */
static unsigned char *unit_slurp(const char *path, size_t *n) __attribute__((unused));
static unsigned char *unit_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECKF(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = xmalloc((size_t)len + 1);
    CHECK(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Writes n bytes to path (test inputs such as cut or damaged files). */
static void unit_spit(const char *path, const void *b, size_t n) __attribute__((unused));
static void unit_spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* Compare got against want (n floats): no NaN/inf, and
 * max |got - want| <= tol * scale, where scale = max |want| (1 if all zero).
 * Prints the figures on failure; returns 1 when it passes. */
static int expect_close(const char *what, const float *got, const float *want, size_t n, double tol)
    __attribute__((unused));
static int expect_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double scale = 0, maxerr = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            unit_fail("%s: element %zu is %f (not finite)", what, i, (double)got[i]);
            return 0;
        }
        double a = fabs((double)want[i]);
        if (a > scale) scale = a;
        double e = fabs((double)got[i] - (double)want[i]);
        if (e > maxerr) { maxerr = e; worst = i; }
    }
    if (scale == 0) scale = 1;
    if (maxerr > tol * scale) {
        unit_fail("%s: max abs error %.3g at element %zu (got %.8g, want %.8g) exceeds %.1g x scale %.4g",
                  what, maxerr, worst, (double)got[worst], (double)want[worst], tol, scale);
        return 0;
    }
    return 1;
}

/* Compare got with fixture tensor `name` of file f (shape must match numel). */
static int expect_close_fixture(const st_file *f, const char *name, const float *got, size_t n, double tol)
    __attribute__((unused));
static int expect_close_fixture(const st_file *f, const char *name, const float *got, size_t n, double tol) {
    tensor *want = st_load_f32(f, name, -1, NULL);
    int ok = 1;
    if ((size_t)tensor_numel(want) != n) {
        unit_fail("%s: %zu values computed, fixture has %lld", name, n, (long long)tensor_numel(want));
        ok = 0;
    } else {
        ok = expect_close(name, got, want->data, n, tol);
    }
    tensor_free(want);
    return ok;
}

/* Run fn(arg) in a child process; it must exit with `status` and print a
 * message on stderr containing `needle`. Returns 1 when it does. */
static int expect_dies(const char *what, void (*fn)(void *), void *arg, int status, const char *needle)
    __attribute__((unused));
static int expect_dies(const char *what, void (*fn)(void *), void *arg, int status, const char *needle) {
    int pfd[2];
    if (pipe(pfd) != 0) { unit_fail("%s: pipe failed", what); return 0; }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        fn(arg);
        _exit(0);
    }
    close(pfd[1]);
    char msg[8192];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof msg - 1 && (r = read(pfd[0], msg + len, sizeof msg - 1 - len)) > 0) len += (size_t)r;
    msg[len] = 0;
    close(pfd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    if (!WIFEXITED(ws)) { unit_fail("%s: child crashed (signal %d): %s", what, WTERMSIG(ws), msg); return 0; }
    if (WEXITSTATUS(ws) != status) {
        unit_fail("%s: exit status %d, expected %d; stderr: %s", what, WEXITSTATUS(ws), status, msg);
        return 0;
    }
    if (needle && !strstr(msg, needle)) {
        unit_fail("%s: stderr lacks \"%s\": %s", what, needle, msg);
        return 0;
    }
    return 1;
}

#endif
