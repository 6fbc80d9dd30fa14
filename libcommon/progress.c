/* progress.c — the progress line on stderr (see progress.h). Each line goes
 * out in one write so parallel jobs' lines do not interleave mid-line. */
#include "progress.h"
#include "common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double clock_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double (*progress_clock)(void) = clock_monotonic;
int progress_force_tty = -1;

#define TTY_INTERVAL 0.2    /* at most 5 redraws a second */
#define PLAIN_INTERVAL 10.0 /* a plain line at least this often */
#define PLAIN_MIN_GAP 2.0   /* and a 10 % line no more often than this */
#define BAR_WIDTH 24

void progress_start(progress *p, const char *label, int64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->quiet = common_quiet;
    p->tty = progress_force_tty >= 0 ? progress_force_tty : isatty(fileno(stderr));
    p->t_start = p->t_last = progress_clock();
    p->active = 1;
}

/* "1:02:03" or "2:03". */
static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e8) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* "3.40 step/s", or "12.5 s/step" when slower than one a second. */
static void fmt_rate(char *buf, size_t n, const progress *p, double elapsed) {
    if (p->done <= 0 || elapsed <= 0) snprintf(buf, n, "- %s/s", p->unit);
    else if (p->done >= elapsed) snprintf(buf, n, "%.2f %s/s", (double)p->done / elapsed, p->unit);
    else snprintf(buf, n, "%.1f s/%s", elapsed / (double)p->done, p->unit);
}

static void draw(progress *p, double now, int final) {
    double elapsed = now - p->t_start;
    char rate[48], eta[24], line[1024];
    fmt_rate(rate, sizeof rate, p, elapsed);
    int known = p->total > 0;
    if (known && p->done > 0 && p->done < p->total)
        fmt_duration(eta, sizeof eta, elapsed / (double)p->done * (double)(p->total - p->done));
    else snprintf(eta, sizeof eta, "-");
    if (p->tty) {
        char bar[BAR_WIDTH + 1];
        int fill = known ? (int)((double)BAR_WIDTH * (double)(p->done < p->total ? p->done : p->total) / (double)p->total) : 0;
        for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = 0;
        char count[64];
        if (known) snprintf(count, sizeof count, "%lld/%lld", (long long)p->done, (long long)p->total);
        else snprintf(count, sizeof count, "%lld", (long long)p->done);
        char el[24];
        fmt_duration(el, sizeof el, elapsed);
        /* \033[K clears what a longer previous line left behind. */
        if (known)
            snprintf(line, sizeof line, "\r%.64s: %s [%s] %s %s  %s  %s ETA %s\033[K%s", prog_name, p->label, bar, count,
                     p->unit, rate, el, eta, final ? "\n" : "");
        else
            snprintf(line, sizeof line, "\r%.64s: %s %s %s  %s  %s\033[K%s", prog_name, p->label, count, p->unit, rate, el,
                     final ? "\n" : "");
        p->drawn = !final;
    } else if (final) {
        char el[32];
        snprintf(el, sizeof el, "%.1f s", elapsed);
        if (known)
            snprintf(line, sizeof line, "%.64s: %s: %lld/%lld %s in %s (%s)\n", prog_name, p->label, (long long)p->done,
                     (long long)p->total, p->unit, el, rate);
        else
            snprintf(line, sizeof line, "%.64s: %s: %lld %s in %s (%s)\n", prog_name, p->label, (long long)p->done, p->unit,
                     el, rate);
    } else {
        if (known)
            snprintf(line, sizeof line, "%.64s: %s: %lld/%lld %s (%d%%), %s, ETA %s\n", prog_name, p->label,
                     (long long)p->done, (long long)p->total, p->unit, (int)(100.0 * (double)p->done / (double)p->total),
                     rate, eta);
        else
            snprintf(line, sizeof line, "%.64s: %s: %lld %s, %s\n", prog_name, p->label, (long long)p->done, p->unit, rate);
    }
    fputs(line, stderr);
    fflush(stderr);
    p->t_last = now;
}

void progress_update(progress *p, int64_t done) {
    if (!p->active) return;
    p->done = done;
    if (p->quiet) return;
    double now = progress_clock();
    if (p->tty) {
        if (now - p->t_last >= TTY_INTERVAL || !p->drawn) draw(p, now, 0);
        return;
    }
    /* Plain: at each new 10 % step (not at 100 %: the final line says it) once
     * PLAIN_MIN_GAP has passed since the last line, so work that takes a second
     * logs only its final line; or after 10 s. */
    int64_t decile = p->total > 0 ? (int64_t)(10.0 * (double)done / (double)p->total) : 0;
    if (p->total > 0 && decile > p->last_decile && done < p->total && now - p->t_last >= PLAIN_MIN_GAP) {
        p->last_decile = decile;
        draw(p, now, 0);
    } else if (now - p->t_last >= PLAIN_INTERVAL && (p->total <= 0 || done < p->total)) {
        draw(p, now, 0);
    }
}

void progress_end(progress *p) {
    if (!p->active) return;
    p->active = 0;
    if (p->quiet) return;
    draw(p, progress_clock(), 1);
}
