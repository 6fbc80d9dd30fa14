/* metrics.h — the classification measures of the study, equal to
 * scikit-learn's: roc_auc_score (binary, and the unweighted macro mean over
 * the columns of a multi-label table), accuracy_score of the arg-max class,
 * and a seeded percentile bootstrap for 95 % intervals. Everything is double.
 *
 * AUROC = the area under sklearn's ROC curve (trapezoids, tied scores one
 * step), which is the Mann-Whitney statistic with half credit for ties:
 * (sum of the positives' mid-ranks - P(P+1)/2) / (P N). A label with only one
 * class has no AUROC: sklearn raises, we die naming the label (never NaN).
 *
 * Bootstrap: each resample draws n indices with replacement
 * (splitmix64_below(state, n), the state seeded with the given seed); a
 * resample in which some AUROC label is single-class is SKIPPED and a fresh
 * one drawn in its place, until n_resamples valid ones are in hand (dies after
 * 100 * n_resamples + 100 draws). The interval is the 2.5th and 97.5th
 * percentile of the resampled values, interpolated linearly as numpy.percentile. */
#ifndef SYNTHCXR_METRICS_H
#define SYNTHCXR_METRICS_H

#include <stdint.h>

/* splitmix64 (Steele, Lea, Flood 2014): the small seeded generator the
 * evaluation uses for bootstraps, splits, label sampling and shuffles;
 * next() returns the next word, below(n) a value in [0, n) as
 * (next * n) >> 64. */
uint64_t splitmix64_next(uint64_t *state);
uint64_t splitmix64_below(uint64_t *state, uint64_t n);

/* AUROC of one label: score [n], label [n] (0 or 1, anything non-zero = 1).
 * Dies "what: only one class present ..." if label is single-class (or n < 1),
 * and on a NaN score. */
double metrics_auroc(const double *score, const uint8_t *label, long n, const char *what);
/* The same, returning 0 and leaving *auc alone when single-class (1 otherwise). */
int metrics_auroc_try(const double *score, const uint8_t *label, long n, double *auc);

/* Macro AUROC over L labels: score, label [n, L] row-major (one row per image).
 * Dies naming the first single-class column ("what, label k ..."). */
double metrics_auroc_macro(const double *score, const uint8_t *label, long n, int n_labels, const char *what);

/* Top-1 accuracy: score [n, C]; the predicted class is the first arg-max (as
 * numpy.argmax); y [n] in 0..C-1. Dies on n < 1 or a class out of range. */
double metrics_accuracy(const double *score, const int32_t *y, long n, int n_classes);

enum metric_kind { METRIC_AUROC_MACRO, METRIC_ACCURACY };

typedef struct metric_ci {
    double value;          /* on the whole set */
    double low, high;      /* 95 % percentile interval; = value when n_resamples is 0 */
    long n_resamples;      /* valid resamples used */
    long n_skipped;        /* resamples redrawn because a label was single-class */
} metric_ci;

/* The metric and its bootstrap interval. AUROC: score, label [n, k] with k =
 * labels (label is uint8 0/1, y unused). Accuracy: score [n, k] with k =
 * classes, y [n] (label unused). */
metric_ci metrics_bootstrap(enum metric_kind kind, const double *score, const uint8_t *label, const int32_t *y,
                            long n, int k, long n_resamples, uint64_t seed, const char *what);

/* numpy.percentile(x, q) with linear interpolation; sorts x [n] in place. */
double metrics_percentile(double *x, long n, double q);

#endif
