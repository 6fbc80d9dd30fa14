/* metrics.c — AUROC (Mann-Whitney with mid-ranks = sklearn's trapezoidal ROC
 * area), macro AUROC, top-1 accuracy and the seeded percentile bootstrap. */
#include "metrics.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t splitmix64_below(uint64_t *state, uint64_t n) {
    return (uint64_t)(((unsigned __int128)splitmix64_next(state) * n) >> 64);
}

typedef struct { double s; long i; } scored;

static int scored_cmp(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    if (x < y) return -1;
    if (x > y) return 1;
    long i = ((const scored *)a)->i, j = ((const scored *)b)->i;
    return (i > j) - (i < j);
}

/* The core over a strided column: score[k*stride], label[k*stride], k < n,
 * taking rows idx[k] when idx is given. Returns 0 when single-class. */
static int auroc_core(const double *score, const uint8_t *label, long stride, const long *idx, long n,
                      scored *buf, double *auc) {
    long pos = 0;
    for (long k = 0; k < n; k++) {
        long r = idx ? idx[k] : k;
        double s = score[r * stride];
        if (isnan(s)) die("AUROC: score %ld is NaN", r);
        buf[k].s = s;
        buf[k].i = label[r * stride] != 0;
        pos += buf[k].i;
    }
    long neg = n - pos;
    if (pos == 0 || neg == 0) return 0;
    qsort(buf, (size_t)n, sizeof *buf, scored_cmp);
    /* Sum of the positives' ranks (1-based), tied groups sharing their mid-rank. */
    double rank_sum = 0;
    for (long a = 0; a < n;) {
        long b = a;
        long p = 0;
        while (b < n && buf[b].s == buf[a].s) p += buf[b++].i;
        rank_sum += (double)p * (0.5 * (double)(a + 1 + b));   /* mid-rank of ranks a+1..b */
        a = b;
    }
    *auc = (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
    return 1;
}

int metrics_auroc_try(const double *score, const uint8_t *label, long n, double *auc) {
    if (n < 1) return 0;
    scored *buf = xmalloc((size_t)n * sizeof *buf);
    int ok = auroc_core(score, label, 1, NULL, n, buf, auc);
    free(buf);
    return ok;
}

double metrics_auroc(const double *score, const uint8_t *label, long n, const char *what) {
    double auc;
    if (!metrics_auroc_try(score, label, n, &auc))
        die("%s: only one class present in the labels (%ld images); ROC AUC is not defined", what, n);
    return auc;
}

double metrics_auroc_macro(const double *score, const uint8_t *label, long n, int n_labels, const char *what) {
    CHECK(n_labels >= 1);
    if (n < 1) die("%s: no images", what);
    scored *buf = xmalloc((size_t)n * sizeof *buf);
    double sum = 0;
    for (int l = 0; l < n_labels; l++) {
        double auc;
        if (!auroc_core(score + l, label + l, n_labels, NULL, n, buf, &auc)) {
            free(buf);
            die("%s, label %d: only one class present in the labels (%ld images); ROC AUC is not defined", what,
                l, n);
        }
        sum += auc;
    }
    free(buf);
    return sum / n_labels;
}

static int argmax_row(const double *row, int c) {
    int best = 0;
    for (int j = 1; j < c; j++)
        if (row[j] > row[best] || (isnan(row[j]) && !isnan(row[best]))) best = j;
    return best;
}

static double accuracy_core(const double *score, const int32_t *y, const long *idx, long n, int c) {
    long hit = 0;
    for (long k = 0; k < n; k++) {
        long r = idx ? idx[k] : k;
        hit += argmax_row(score + r * c, c) == y[r];
    }
    return (double)hit / (double)n;
}

double metrics_accuracy(const double *score, const int32_t *y, long n, int n_classes) {
    if (n < 1) die("accuracy: no images");
    CHECK(n_classes >= 1);
    for (long i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_classes) die("accuracy: class %d of image %ld is outside 0..%d", y[i], i, n_classes - 1);
    return accuracy_core(score, y, NULL, n, n_classes);
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double metrics_percentile(double *x, long n, double q) {
    CHECK(n >= 1 && q >= 0 && q <= 100);
    qsort(x, (size_t)n, sizeof *x, dbl_cmp);
    double v = q / 100.0 * (double)(n - 1);
    long lo = (long)floor(v);
    if (lo >= n - 1) return x[n - 1];
    double t = v - (double)lo, a = x[lo], b = x[lo + 1], d = b - a;
    /* numpy's _lerp: from below for t < 0.5, from above otherwise */
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

metric_ci metrics_bootstrap(enum metric_kind kind, const double *score, const uint8_t *label, const int32_t *y,
                            long n, int k, long n_resamples, uint64_t seed, const char *what) {
    metric_ci ci = {0};
    ci.value = kind == METRIC_AUROC_MACRO ? metrics_auroc_macro(score, label, n, k, what)
                                          : metrics_accuracy(score, y, n, k);
    ci.low = ci.high = ci.value;
    if (n_resamples <= 0) return ci;
    long *idx = xmalloc((size_t)n * sizeof *idx);
    scored *buf = xmalloc((size_t)n * sizeof *buf);
    double *vals = xmalloc((size_t)n_resamples * sizeof *vals);
    uint64_t st = seed;
    long draws = 0, max_draws = 100 * n_resamples + 100;
    while (ci.n_resamples < n_resamples) {
        if (draws++ >= max_draws)
            die("%s: bootstrap: %ld of %ld resamples had a single-class label; the set is too small for an "
                "interval", what, ci.n_skipped, draws - 1);
        for (long i = 0; i < n; i++) idx[i] = (long)splitmix64_below(&st, (uint64_t)n);
        double v;
        if (kind == METRIC_AUROC_MACRO) {
            double sum = 0;
            int ok = 1;
            for (int l = 0; l < k && ok; l++) {
                double auc;
                ok = auroc_core(score + l, label + l, k, idx, n, buf, &auc);
                sum += auc;
            }
            if (!ok) {
                ci.n_skipped++;
                continue;
            }
            v = sum / k;
        } else {
            v = accuracy_core(score, y, idx, n, k);
        }
        vals[ci.n_resamples++] = v;
    }
    ci.low = metrics_percentile(vals, ci.n_resamples, 2.5);
    ci.high = metrics_percentile(vals, ci.n_resamples, 97.5);
    free(vals);
    free(buf);
    free(idx);
    return ci;
}
