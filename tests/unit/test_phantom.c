/* test_phantom.c — cxrphantom's world: the same (seed, index) gives the same
 * film; SIIM's run-length code against a hand-worked example and round trips;
 * reports that mention every finding on the film and negate only absent ones;
 * prevalences that do what they say; and the signal probe: a logistic
 * regression on 16x16 down-sampled films must find effusion, cardiomegaly
 * and pneumothorax learnable but not trivial (held-out AUROC in [0.7, 0.97]). */
#include "unit.h"

#include "phantom_findings.h"
#include "phantom_formats.h"
#include "phantom_report.h"

#include <ctype.h>
#include <omp.h>

static float prev_def[PP_N];

static void test_film_is_deterministic(void) {
    int n = 96;
    uint8_t *a = xmalloc(n * n), *b = xmalloc(n * n), *m1 = xmalloc(n * n), *m2 = xmalloc(n * n);
    phantom_case c1, c2;
    phantom_case_make(&c1, 5, 3, n, prev_def);
    phantom_case_render(&c1, a, m1, NULL);
    phantom_case_make(&c2, 5, 3, n, prev_def);
    phantom_case_render(&c2, b, m2, NULL);
    EXPECT(!memcmp(a, b, n * n), "the same (seed, index) gave two different films");
    EXPECT(!memcmp(m1, m2, n * n), "the same (seed, index) gave two different masks");
    EXPECT(!memcmp(&c1, &c2, sizeof c1), "the same (seed, index) gave two different cases");
    phantom_case_make(&c2, 5, 4, n, prev_def);
    phantom_case_render(&c2, b, m2, NULL);
    EXPECT(memcmp(a, b, n * n), "index 3 and 4 gave the same film");
    phantom_case_make(&c2, 6, 3, n, prev_def);
    phantom_case_render(&c2, b, m2, NULL);
    EXPECT(memcmp(a, b, n * n), "seed 5 and 6 gave the same film");
    /* a film is a film: not flat, not saturated */
    double mean = 0;
    for (int i = 0; i < n * n; i++) mean += a[i];
    mean /= n * n;
    EXPECT(mean > 60 && mean < 200, "mean grey %.1f", mean);
    free(a); free(b); free(m1); free(m2);
}

static void test_rle_hand_example(void) {
    /* 3x3, row-major:  0 1 0 / 0 1 1 / 0 0 0. Column by column the pixels are
     * 0 0 0 | 1 1 0 | 0 1 0: a run at 3 of length 2, then (2 pixels after its
     * end) a run of 1. */
    const uint8_t m[9] = {0, 1, 0, 0, 1, 1, 0, 0, 0};
    char *s = phantom_rle_encode(m, 3);
    EXPECT(!strcmp(s, "3 2 2 1"), "encoded '%s', want '3 2 2 1'", s);
    uint8_t back[9];
    phantom_rle_decode(s, 3, back, "test");
    EXPECT(!memcmp(back, m, 9), "decode of '%s' differs", s);
    free(s);
    const uint8_t empty[4] = {0};
    s = phantom_rle_encode(empty, 2);
    EXPECT(!strcmp(s, ""), "empty mask encoded as '%s'", s);
    free(s);
    phantom_rle_decode("-1", 2, back, "test");
    EXPECT(!back[0] && !back[1] && !back[2] && !back[3], "-1 is an empty mask");
    /* the last pixel: a run that reaches the end of the image */
    const uint8_t last[4] = {0, 0, 0, 1};
    s = phantom_rle_encode(last, 2);
    EXPECT(!strcmp(s, "3 1"), "last pixel encoded as '%s'", s);
    free(s);
}

static void test_rle_round_trip(void) {
    torch_gen g;
    torch_gen_seed(&g, 11);
    int n = 37;
    uint8_t *m = xmalloc(n * n), *b = xmalloc(n * n);
    for (int t = 0; t < 50; t++) {
        float p = ph_unif(&g, 0, 1);
        for (int i = 0; i < n * n; i++) m[i] = ph_unif(&g, 0, 1) < p;
        char *s = phantom_rle_encode(m, n);
        phantom_rle_decode(s, n, b, "round trip");
        EXPECT(!memcmp(m, b, n * n), "round trip %d (p %.2f) differs", t, p);
        free(s);
    }
    /* and a real pneumothorax mask */
    phantom_case c;
    for (long i = 0;; i++) {
        phantom_case_make(&c, 1, i, 128, prev_def);
        if (c.present[PL_PNEUMOTHORAX]) break;
    }
    uint8_t *film = xmalloc(128 * 128), *pm = xmalloc(128 * 128), *pb = xmalloc(128 * 128);
    phantom_case_render(&c, film, pm, NULL);
    long area = 0;
    for (int i = 0; i < 128 * 128; i++) area += pm[i];
    EXPECT(area > 20, "pneumothorax mask of %ld pixels", area);
    char *s = phantom_rle_encode(pm, 128);
    phantom_rle_decode(s, 128, pb, "ptx");
    EXPECT(!memcmp(pm, pb, 128 * 128), "pneumothorax mask round trip differs");
    free(s); free(m); free(b); free(film); free(pm); free(pb);
}

static void rle_past_end(void *arg) {
    (void)arg;
    uint8_t m[4];
    phantom_rle_decode("2 5", 2, m, "train-rle.csv line 2");
}
static void rle_garbage(void *arg) {
    (void)arg;
    uint8_t m[4];
    phantom_rle_decode("1 x", 2, m, "train-rle.csv line 3");
}
static void test_rle_errors(void) {
    expect_dies("run past the image", rle_past_end, NULL, 2, "train-rle.csv line 2: a run ends at pixel 7");
    expect_dies("malformed", rle_garbage, NULL, 2, "train-rle.csv line 3: a start without a positive length");
}

/* sentences of a report, lower-cased */
static int split_sentences(const char *text, char out[][400], int max) {
    int k = 0;
    const char *s = text;
    while (*s && k < max) {
        while (*s == ' ') s++;
        if (!*s) break;
        const char *e = strchr(s, '.');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len >= 400) len = 399;
        for (size_t i = 0; i < len; i++) out[k][i] = (char)tolower((unsigned char)s[i]);
        out[k][len] = 0;
        k++;
        s = e ? e + 1 : s + len;
    }
    return k;
}

static int has_any(const char *s, const char *const *words) {
    for (int i = 0; words[i]; i++)
        if (strstr(s, words[i])) return 1;
    return 0;
}

static void test_reports_agree_with_labels(void) {
    static char sent[64][400];
    int checked = 0, hedged = 0, negated = 0;
    for (long i = 0; i < 1500; i++) {
        phantom_case c;
        phantom_case_make(&c, 9, i, 64, prev_def);
        phantom_report r;
        phantom_report_make(&c, &r);
        char all[4096];
        snprintf(all, sizeof all, "%s %s", r.findings, r.impression);
        int ns = split_sentences(all, sent, 64);
        for (int l = PL_ENLARGED_CM; l < PL_N; l++) {
            if (l == PL_LUNG_OPACITY) continue; /* a parent label, spoken of through its children */
            const char *const *w = phantom_label_words[l];
            int pos_mention = 0, neg_mention = 0, bad = 0, unhedged = 0;
            for (int k = 0; k < ns; k++) {
                if (!has_any(sent[k], w)) continue;
                int neg = has_any(sent[k], phantom_negation_cues);
                int hedge = has_any(sent[k], phantom_hedge_cues);
                if (neg) neg_mention++;
                else {
                    pos_mention++;
                    if (!hedge) unhedged++;
                }
                if (!c.present[l] && !neg) bad = 1;
                if (c.present[l] && neg) bad = 1;
            }
            if (c.present[l]) {
                EXPECT(pos_mention, "case %ld: %s is on the film but not in the report: %s", i, phantom_label_names[l], all);
                if (c.uncertain[l]) {
                    EXPECT(!unhedged, "case %ld: %s is uncertain but stated flatly: %s", i, phantom_label_names[l], all);
                    hedged++;
                } else
                    EXPECT(unhedged, "case %ld: %s is certain but only hedged: %s", i, phantom_label_names[l], all);
            }
            if (c.negated[l]) {
                EXPECT(neg_mention, "case %ld: %s is negated in the labels but not in the report: %s", i,
                       phantom_label_names[l], all);
                negated++;
            }
            EXPECT(!bad, "case %ld: a sentence about %s contradicts the film: %s", i, phantom_label_names[l], all);
            checked++;
        }
        phantom_report_free(&r);
    }
    EXPECT(hedged > 50 && negated > 500, "too few hedges (%d) or negations (%d) to be a test", hedged, negated);
    printf("# %d label checks, %d hedged, %d negated\n", checked, hedged, negated);
}

static void test_reports_vary(void) {
    /* Normal studies should not all read the same. */
    char seen[8][1024];
    int distinct = 0;
    for (long i = 0; i < 400 && distinct < 8; i++) {
        phantom_case c;
        phantom_case_make(&c, 2, i, 64, prev_def);
        if (!c.present[PL_NO_FINDING]) continue;
        phantom_report r;
        phantom_report_make(&c, &r);
        int dup = 0;
        for (int k = 0; k < distinct; k++) dup |= !strcmp(seen[k], r.findings);
        if (!dup) snprintf(seen[distinct++], 1024, "%s", r.findings);
        phantom_report_free(&r);
    }
    EXPECT(distinct == 8, "only %d distinct normal reports in 400 cases", distinct);
}

static void test_prevalence(void) {
    float p[PP_N];
    memcpy(p, prev_def, sizeof p);
    phantom_prev_parse(p, "effusion=0,pneumothorax=1");
    int eff = 0, ptx = 0, cm = 0;
    for (long i = 0; i < 1000; i++) {
        phantom_case c;
        phantom_case_make(&c, 4, i, 64, p);
        eff += c.present[PL_EFFUSION];
        ptx += c.present[PL_PNEUMOTHORAX];
        cm += c.present[PL_CARDIOMEGALY];
    }
    EXPECT(eff == 0 && ptx == 1000, "effusion=0 gave %d, pneumothorax=1 gave %d of 1000", eff, ptx);
    EXPECT(cm > 100 && cm < 180, "cardiomegaly %d of 1000 at the default 0.14", cm);
}

static void bad_prev(void *arg) {
    float p[PP_N];
    phantom_prev_parse(p, arg);
}
static void test_prevalence_errors(void) {
    expect_dies("unknown name", bad_prev, "effusions=0.2", 1, "unknown finding 'effusions'");
    expect_dies("out of range", bad_prev, "edema=1.5", 1, "--prevalence");
    expect_dies("no =", bad_prev, "edema", 1, "is not NAME=P");
}

/* ---- the signal probe ------------------------------------------------------ */

static double auroc(const float *score, const int *y, int n) {
    /* probability that a random positive outranks a random negative (ties 1/2) */
    double num = 0;
    long np = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        if (!y[i]) continue;
        np++;
        for (int j = 0; j < n; j++) {
            if (y[j]) continue;
            num += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
        }
    }
    for (int j = 0; j < n; j++) nn += !y[j];
    return np && nn ? num / ((double)np * nn) : 0.5;
}

/* Logistic regression, full-batch gradient descent with a little L2, on
 * standardised features x [n, d]. Returns held-out scores for rows [ntr, n). */
static void logreg(const float *x, const int *y, int n, int ntr, int d, float *score) {
    float *w = xcalloc(d + 1, sizeof(float)), *grad = xmalloc((d + 1) * sizeof(float));
    for (int it = 0; it < 400; it++) {
        memset(grad, 0, (d + 1) * sizeof(float));
        for (int i = 0; i < ntr; i++) {
            const float *xi = x + (size_t)i * d;
            float z = w[d];
            for (int k = 0; k < d; k++) z += w[k] * xi[k];
            float e = 1.0f / (1.0f + expf(-z)) - (float)y[i];
            for (int k = 0; k < d; k++) grad[k] += e * xi[k];
            grad[d] += e;
        }
        for (int k = 0; k <= d; k++) w[k] -= 0.5f * (grad[k] / ntr + (k < d ? 1e-3f * w[k] : 0));
    }
    for (int i = ntr; i < n; i++) {
        float z = w[d];
        for (int k = 0; k < d; k++) z += w[k] * x[(size_t)i * d + k];
        score[i - ntr] = z;
    }
    free(w);
    free(grad);
}

static void test_signal_probe(void) {
    enum { N = 2000, NTR = 1400, S = 64, F = 16, D = F * F };
    float *x = xmalloc(sizeof(float) * N * D);
    int *lab[3];
    static const int which[3] = {PL_EFFUSION, PL_CARDIOMEGALY, PL_PNEUMOTHORAX};
    for (int k = 0; k < 3; k++) lab[k] = xmalloc(sizeof(int) * N);
#pragma omp parallel
    {
        uint8_t *film = xmalloc(S * S);
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < N; i++) {
            phantom_case c;
            phantom_case_make(&c, 2024, i, S, prev_def);
            phantom_case_render(&c, film, NULL, NULL);
            for (int k = 0; k < 3; k++) lab[k][i] = c.present[which[k]];
            int b = S / F;
            for (int u = 0; u < F; u++)
                for (int v = 0; v < F; v++) {
                    float s = 0;
                    for (int a = 0; a < b; a++)
                        for (int e = 0; e < b; e++) s += film[(u * b + a) * S + v * b + e];
                    x[(size_t)i * D + u * F + v] = s / (b * b * 255.0f);
                }
        }
        free(film);
    }
    /* Global intensity alone (the mean of the down-sampled film) must not give
     * the answer away. */
    float *meanv = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        double m = 0;
        for (int k = 0; k < D; k++) m += x[(size_t)i * D + k];
        meanv[i] = (float)(m / D);
    }
    for (int k = 0; k < 3; k++) {
        double a = auroc(meanv, lab[k], N);
        if (a < 0.5) a = 1.0 - a;
        printf("# mean grey alone %-17s AUROC %.3f\n", phantom_label_names[which[k]], a);
        EXPECT(a < 0.75, "%s: the mean grey alone separates it (AUROC %.3f)", phantom_label_names[which[k]], a);
    }
    free(meanv);
    /* standardise with the training rows' statistics */
    for (int k = 0; k < D; k++) {
        double m = 0, v = 0;
        for (int i = 0; i < NTR; i++) m += x[(size_t)i * D + k];
        m /= NTR;
        for (int i = 0; i < NTR; i++) v += (x[(size_t)i * D + k] - m) * (x[(size_t)i * D + k] - m);
        float sd = (float)sqrt(v / NTR) + 1e-6f;
        for (int i = 0; i < N; i++) x[(size_t)i * D + k] = (x[(size_t)i * D + k] - (float)m) / sd;
    }
    float *score = xmalloc(sizeof(float) * (N - NTR));
    for (int k = 0; k < 3; k++) {
        logreg(x, lab[k], N, NTR, D, score);
        double a = auroc(score, lab[k] + NTR, N - NTR);
        int pos = 0;
        for (int i = NTR; i < N; i++) pos += lab[k][i];
        printf("# probe %-17s AUROC %.3f (%d of %d held-out positive)\n", phantom_label_names[which[k]], a, pos, N - NTR);
        EXPECT(a >= 0.7 && a <= 0.97, "%s: AUROC %.3f outside [0.7, 0.97]", phantom_label_names[which[k]], a);
    }
    for (int k = 0; k < 3; k++) free(lab[k]);
    free(x);
    free(score);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    memcpy(prev_def, phantom_prev_default, sizeof prev_def);
    RUN(test_film_is_deterministic);
    RUN(test_rle_hand_example);
    RUN(test_rle_round_trip);
    RUN(test_rle_errors);
    RUN(test_reports_agree_with_labels);
    RUN(test_reports_vary);
    RUN(test_prevalence);
    RUN(test_prevalence_errors);
    RUN(test_signal_probe);
    return unit_done();
}
