/* test_metrics.c — metrics.c against scikit-learn (tests/oracle/make_metrics.py):
 * roc_auc_score on 17 cases (ties, all-equal scores, n = 1..300, macro over
 * labels, single-class labels that must die), accuracy_score on 5, the
 * bootstrap interval over the same splitmix64 index stream, and
 * numpy.percentile. Tolerance 1e-12 absolute (all double). */
#include "metrics.h"
#include "unit.h"

static st_file *F;

/* A fixture tensor as fresh doubles (F64), with its first dim and numel. */
static double *load_f64(const char *name, long *rows, long *numel) {
    const st_entry *e = st_get(F, name);
    CHECK(!strcmp(e->st_dtype, "F64"));
    long n = (long)(e->nbytes / 8);
    double *x = xmalloc((size_t)n * 8 + 8);
    memcpy(x, e->data, e->nbytes);
    if (rows) *rows = e->ndim ? (long)e->shape[0] : 1;
    if (numel) *numel = n;
    return x;
}

static void *load_raw(const char *name, const char *dtype) {
    const st_entry *e = st_get(F, name);
    CHECK(!strcmp(e->st_dtype, dtype));
    void *x = xmalloc(e->nbytes + 8);
    memcpy(x, e->data, e->nbytes);
    return x;
}

struct auc_case { double *s; uint8_t *y; long n; int L; };

static void die_macro(void *arg) {
    struct auc_case *c = arg;
    metrics_auroc_macro(c->s, c->y, c->n, c->L, "case");
}
static void die_binary(void *arg) {
    struct auc_case *c = arg;
    metrics_auroc(c->s, c->y, c->n, "case");
}

static void test_auroc_sklearn(void) {
    int n_cases = 0, n_die = 0;
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "auc%d_score", i);
        if (!st_find(F, name)) break;
        struct auc_case c;
        long numel;
        c.s = load_f64(name, &c.n, &numel);
        c.L = (int)(numel / c.n);
        snprintf(name, sizeof name, "auc%d_label", i);
        c.y = load_raw(name, "U8");
        snprintf(name, sizeof name, "auc%d_want", i);
        double *want = load_f64(name, NULL, NULL);
        char what[64];
        snprintf(what, sizeof what, "AUROC case %d", i);
        if (isnan(want[0])) {
            /* sklearn refuses: we must die (exit 2) saying so, never return NaN */
            expect_dies(what, die_macro, &c, 2, "only one class present");
            if (c.L == 1) expect_dies(what, die_binary, &c, 2, "only one class present");
            double got = -1;
            if (c.L == 1) EXPECT(!metrics_auroc_try(c.s, c.y, c.n, &got) && got == -1, "%s: try", what);
            n_die++;
        } else {
            double got = metrics_auroc_macro(c.s, c.y, c.n, c.L, what);
            EXPECT(fabs(got - want[0]) <= 1e-12, "%s: got %.17g want %.17g", what, got, want[0]);
            if (c.L == 1) {
                double g1 = metrics_auroc(c.s, c.y, c.n, what);
                EXPECT(fabs(g1 - want[0]) <= 1e-12, "%s (binary): got %.17g want %.17g", what, g1, want[0]);
            }
        }
        n_cases++;
        free(c.s);
        free(c.y);
        free(want);
    }
    EXPECT(n_cases >= 17 && n_die >= 3, "%d cases, %d single-class", n_cases, n_die);
}

static void test_accuracy_sklearn(void) {
    int n_cases = 0;
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "acc%d_score", i);
        if (!st_find(F, name)) break;
        long n, numel;
        double *s = load_f64(name, &n, &numel);
        snprintf(name, sizeof name, "acc%d_y", i);
        int32_t *y = load_raw(name, "I32");
        snprintf(name, sizeof name, "acc%d_want", i);
        double *want = load_f64(name, NULL, NULL);
        double got = metrics_accuracy(s, y, n, (int)(numel / n));
        EXPECT(fabs(got - want[0]) <= 1e-12, "accuracy case %d: got %.17g want %.17g", i, got, want[0]);
        free(s);
        free(y);
        free(want);
        n_cases++;
    }
    EXPECT(n_cases >= 5, "%d cases", n_cases);
}

static void test_bootstrap_sklearn(void) {
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "boot%d_score", i);
        if (!st_find(F, name)) { EXPECT(i >= 4, "only %d bootstrap cases", i); break; }
        long n, numel;
        double *s = load_f64(name, &n, &numel);
        int k = (int)(numel / n);
        snprintf(name, sizeof name, "boot%d_want", i);
        double *want = load_f64(name, NULL, NULL);   /* low, high, skipped, resamples, seed */
        snprintf(name, sizeof name, "boot%d_label", i);
        metric_ci ci;
        uint8_t *lab = NULL;
        int32_t *y = NULL;
        if (st_find(F, name)) {
            lab = load_raw(name, "U8");
            ci = metrics_bootstrap(METRIC_AUROC_MACRO, s, lab, NULL, n, k, (long)want[3], (uint64_t)want[4], "boot");
            EXPECT(fabs(ci.value - metrics_auroc_macro(s, lab, n, k, "boot")) == 0, "value");
        } else {
            snprintf(name, sizeof name, "boot%d_y", i);
            y = load_raw(name, "I32");
            ci = metrics_bootstrap(METRIC_ACCURACY, s, NULL, y, n, k, (long)want[3], (uint64_t)want[4], "boot");
        }
        EXPECT(fabs(ci.low - want[0]) <= 1e-12 && fabs(ci.high - want[1]) <= 1e-12,
               "bootstrap case %d: [%.17g, %.17g], want [%.17g, %.17g]", i, ci.low, ci.high, want[0], want[1]);
        EXPECT(ci.n_skipped == (long)want[2] && ci.n_resamples == (long)want[3],
               "bootstrap case %d: skipped %ld of %ld, want %g", i, ci.n_skipped, ci.n_resamples, want[2]);
        EXPECT(ci.low <= ci.value + 1e-12 || i == 2, "case %d: low %g above value %g", i, ci.low, ci.value);
        free(s);
        free(want);
        free(lab);
        free(y);
    }
}

static void test_percentile_and_rng(void) {
    long n;
    double *x = load_f64("pct_x", &n, NULL);
    double *want = load_f64("pct_want", NULL, NULL);
    static const double q[] = {0, 2.5, 50, 97.5, 100};
    for (int i = 0; i < 5; i++) {
        double got = metrics_percentile(x, n, q[i]);
        EXPECT(fabs(got - want[i]) <= 1e-15, "percentile %g: %.17g want %.17g", q[i], got, want[i]);
    }
    int64_t *w = load_raw("splitmix_words", "I64");
    uint64_t st = 1234567;
    for (int i = 0; i < 8; i++) {
        uint64_t got = splitmix64_next(&st);
        EXPECT(got == (uint64_t)w[i], "splitmix64 word %d: %llu", i, (unsigned long long)got);
    }
    free(x);
    free(want);
    free(w);
}

static void die_nan(void *arg) {
    (void)arg;
    double s[3] = {0.1, NAN, 0.3};
    uint8_t y[3] = {0, 1, 1};
    metrics_auroc(s, y, 3, "nan case");
}
static void die_class(void *arg) {
    (void)arg;
    double s[4] = {1, 0, 0, 1};
    int32_t y[2] = {0, 2};
    metrics_accuracy(s, y, 2, 2);
}
static void die_boot(void *arg) {
    (void)arg;
    double s[2] = {0.1, 0.9};
    uint8_t y[2] = {0, 1};   /* n = 2: half the resamples are single-class, but some are not */
    metric_ci ci = metrics_bootstrap(METRIC_AUROC_MACRO, s, y, NULL, 2, 1, 50, 1, "tiny");
    if (ci.n_resamples == 50 && ci.n_skipped > 0) {
        /* and one image alone can never make an interval */
        double s1[1] = {0.5};
        uint8_t y1[1] = {1};
        metrics_bootstrap(METRIC_AUROC_MACRO, s1, y1, NULL, 1, 1, 10, 1, "one");
    }
    exit(0);
}

static void test_bad_input_dies(void) {
    expect_dies("NaN score", die_nan, NULL, 2, "NaN");
    expect_dies("class out of range", die_class, NULL, 2, "outside 0..1");
    expect_dies("single image", die_boot, NULL, 2, "one, label 0: only one class present");
}

int main(void) {
    F = st_open(fixture_path("metrics_ref.safetensors"));
    RUN(test_auroc_sklearn);
    RUN(test_accuracy_sklearn);
    RUN(test_bootstrap_sklearn);
    RUN(test_percentile_and_rng);
    RUN(test_bad_input_dies);
    st_close(F);
    return unit_done();
}
