/* test_progress.c — progress reporting as a person and a log see it: stderr
 * on a pipe gets plain lines at each 10 % and every 10 s plus a final line;
 * on a terminal (a pty) one line redrawn in place at most 5 times a second;
 * under --quiet nothing. A fake clock makes the timing exact. */
#include "unit.h"
#include "progress.h"

#include <pty.h>

static double fake_now;
static double fake_clock(void) { return fake_now; }

/* Runs fn in a child whose stderr is a pipe (tty = 0) or a pty (tty = 1);
 * returns everything it wrote there. */
static char *capture(void (*fn)(void), int tty) {
    int rd, wr;
    if (tty) {
        CHECK(openpty(&rd, &wr, NULL, NULL, NULL) == 0);
    } else {
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        rd = pfd[0], wr = pfd[1];
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(rd);
        dup2(wr, 2);
        close(wr);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(wr);
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap);
    ssize_t r;
    /* A pty's master reads EIO once the child has gone: that is the end. */
    while (len < cap - 1 && (r = read(rd, out + len, cap - 1 - len)) > 0) len += (size_t)r;
    out[len] = 0;
    close(rd);
    int ws;
    waitpid(pid, &ws, 0);
    EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child failed");
    return out;
}

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* 50 steps, one a second. */
static void run_steps(void) {
    progress_clock = fake_clock;
    fake_now = 100;
    progress p;
    progress_start(&p, "denoise", 50, "step");
    for (int i = 1; i <= 50; i++) {
        fake_now += 1;
        progress_update(&p, i);
    }
    progress_end(&p);
}

/* 50 steps in half a second: only the final line in a log. */
static void run_fast_plain(void) {
    progress_clock = fake_clock;
    fake_now = 100;
    progress p;
    progress_start(&p, "denoise", 50, "step");
    for (int i = 1; i <= 50; i++) {
        fake_now += 0.01;
        progress_update(&p, i);
    }
    progress_end(&p);
}

static void test_plain_fast_work_logs_once(void) {
    char *out = capture(run_fast_plain, 0);
    EXPECT(count(out, "\n") == 1 && strstr(out, "test_progress: denoise: 50/50 step in 0.5 s"),
           "only the final line; got:\n%s", out);
    free(out);
}

static void test_plain_lines(void) {
    char *out = capture(run_steps, 0);
    EXPECT(count(out, "\n") == 10, "9 lines at 10 %% ... 90 %%, then the final one; got:\n%s", out);
    EXPECT(strstr(out, "test_progress: denoise: 5/50 step (10%), 1.00 step/s, ETA 0:45\n"), "10 %% line:\n%s", out);
    EXPECT(strstr(out, "test_progress: denoise: 45/50 step (90%), 1.00 step/s, ETA 0:05\n"), "90 %% line:\n%s", out);
    EXPECT(strstr(out, "test_progress: denoise: 50/50 step in 50.0 s (1.00 step/s)\n"), "final line:\n%s", out);
    EXPECT(!strchr(out, '\r') && !strchr(out, '\033'), "no terminal controls in a log:\n%s", out);
    free(out);
}

/* Unknown total, one image a second for 35 s, then slow steps. */
static void run_unknown(void) {
    progress_clock = fake_clock;
    fake_now = 0;
    progress p;
    progress_start(&p, "scan", 0, "image");
    for (int i = 1; i <= 35; i++) {
        fake_now += 1;
        progress_update(&p, i);
    }
    progress_end(&p);
    progress_start(&p, "vae", 4, "image");
    for (int i = 1; i <= 4; i++) {
        fake_now += 12.5;
        progress_update(&p, i);
    }
    progress_end(&p);
}

static void test_plain_every_10s(void) {
    char *out = capture(run_unknown, 0);
    EXPECT(strstr(out, "test_progress: scan: 10 image, 1.00 image/s\n") &&
           strstr(out, "test_progress: scan: 20 image, 1.00 image/s\n") &&
           strstr(out, "test_progress: scan: 30 image, 1.00 image/s\n") &&
           strstr(out, "test_progress: scan: 35 image in 35.0 s (1.00 image/s)\n") && count(out, "scan:") == 4,
           "a line every 10 s and a final one:\n%s", out);
    /* Slower than one a second: seconds per unit. 4 steps of 12.5 s: 25 %, 50 %, 75 % lines. */
    EXPECT(strstr(out, "test_progress: vae: 1/4 image (25%), 12.5 s/image, ETA 0:38\n") &&
           strstr(out, "test_progress: vae: 4/4 image in 50.0 s (12.5 s/image)\n") && count(out, "vae:") == 4,
           "slow rate:\n%s", out);
    free(out);
}

static void run_quiet(void) {
    common_quiet = 1;
    run_steps();
    run_unknown();
}

static void test_quiet(void) {
    char *out = capture(run_quiet, 0);
    EXPECT(out[0] == 0, "--quiet printed: %s", out);
    free(out);
    out = capture(run_quiet, 1);
    EXPECT(out[0] == 0, "--quiet printed on a terminal: %s", out);
    free(out);
}

/* 50 updates 1/16 s apart (3.125 s): the first, then every 4th (0.25 s
 * >= 0.2 s), then the final one: 14 redraws, not 51. */
static void run_fast(void) {
    progress_clock = fake_clock;
    fake_now = 0;
    progress p;
    progress_start(&p, "denoise", 50, "step");
    for (int i = 1; i <= 50; i++) {
        fake_now += 0.0625;
        progress_update(&p, i);
    }
    progress_end(&p);
}

static void test_terminal(void) {
    char *out = capture(run_fast, 1);
    int redraws = count(out, "\rtest_progress: denoise [");
    EXPECT(redraws == 14, "%d redraws for 3.1 s at most 5 a second:\n%s", redraws, out);
    EXPECT(strstr(out, "\rtest_progress: denoise [........................] 1/50 step  16.00 step/s  0:00 ETA 0:03\033[K"),
           "the first redraw:\n%s", out);
    EXPECT(strstr(out, "\rtest_progress: denoise [############............] 25/50 step  16.00 step/s  0:02 ETA 0:02\033[K"),
           "half way:\n%s", out);
    EXPECT(strstr(out, "\rtest_progress: denoise [########################] 50/50 step  16.00 step/s  0:03 ETA -\033[K"),
           "the final line, full bar:\n%s", out);
    size_t n = strlen(out);
    EXPECT(n >= 2 && out[n - 1] == '\n', "the final line ends the line");
    EXPECT(count(out, "\n") == 1, "only the final newline on a terminal:\n%s", out);
    free(out);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    RUN(test_plain_lines);
    RUN(test_plain_fast_work_logs_once);
    RUN(test_plain_every_10s);
    RUN(test_quiet);
    RUN(test_terminal);
    return unit_done();
}
