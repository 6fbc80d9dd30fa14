/* progress.h — progress of long work on stderr. On a terminal: one line
 * redrawn in place (\r), at most 5 times a second, with a bar, count/total,
 * rate and ETA. Otherwise (a log file, a pipe, GNU parallel): a plain line at
 * every 10 % (but not within 2 s of the last line) and at least every 10 s.
 * Both end with a final line. Nothing at
 * all under --quiet (common_quiet).
 *
 *   progress p;
 *   progress_start(&p, "denoise", steps, "step");
 *   for (int i = 0; i < steps; i++) { ...; progress_update(&p, i + 1); }
 *   progress_end(&p);
 */
#ifndef SYNTHCXR_PROGRESS_H
#define SYNTHCXR_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    char label[48];
    char unit[16];
    int64_t total;        /* <= 0: unknown (no bar, no ETA) */
    int64_t done;
    double t_start;
    double t_last;        /* last time something was printed */
    int64_t last_decile;  /* non-terminal: the last 10 % step printed */
    int tty;              /* stderr is a terminal */
    int quiet;
    int active;
    int drawn;            /* terminal: a line is on screen without its newline */
} progress;

/* Starts (prints nothing yet on a terminal; nothing until the first 10 % or
 * 10 s otherwise). unit is singular, e.g. "step", "image". */
void progress_start(progress *p, const char *label, int64_t total, const char *unit);
/* done = units finished so far (absolute, not an increment). Cheap: call it often. */
void progress_update(progress *p, int64_t done);
/* Final line: "prog: label: 50/50 step in 14.7 s (3.40 step/s)". */
void progress_end(progress *p);

/* Seconds on a monotonic clock; tests may point it elsewhere. */
extern double (*progress_clock)(void);
/* Force the terminal (1) or plain (0) form; -1 (default) asks isatty(stderr). */
extern int progress_force_tty;

#endif
