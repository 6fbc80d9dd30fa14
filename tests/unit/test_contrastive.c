/* test_contrastive.c — L2 normalisation, symmetric InfoNCE and retrieval
 * recall (libcommon/contrastive) against tests/fixtures/contrastive_ref.safetensors
 * (tests/oracle/make_contrastive.py: F.normalize, F.cross_entropy, autograd),
 * and the backward against central differences of the forward. */
#include "unit.h"
#include "contrastive.h"

#include <math.h>

#define B 9
#define D 8

static double f64_at(const st_file *f, const char *name, int i) {
    const st_entry *e = st_get(f, name);
    CHECK(!strcmp(e->st_dtype, "F64") && (size_t)(i + 1) * 8 <= e->nbytes);
    double v;
    memcpy(&v, (const char *)e->data + 8 * i, 8);
    return v;
}

/* loss of raw (unnormalised) embeddings, and optionally its gradient */
static double loss_raw(const float *ri, const float *rt, float temp, float lam, float *dri, float *drt,
                       float *logits_out) {
    float ni[B * D], nt[B * D], nri[B], nrt[B], logits[B * B];
    l2norm_forward(ni, nri, ri, B, D);
    l2norm_forward(nt, nrt, rt, B, D);
    double loss = infonce_forward(logits, NULL, ni, nt, B, D, temp, lam);
    if (logits_out) memcpy(logits_out, logits, sizeof logits);
    if (dri) {
        float dni[B * D] = {0}, dnt[B * D] = {0};
        infonce_backward(dni, dnt, logits, ni, nt, B, D, temp, lam, 1.0f);
        l2norm_backward(dri, dni, ni, nri, B, D);
        l2norm_backward(drt, dnt, nt, nrt, B, D);
    }
    return loss;
}

static void nce_case(const char *tag) {
    st_file *f = st_open(fixture_path("contrastive_ref.safetensors"));
    char key[96];
    float ri[B * D], rt[B * D];
    st_read_f32(f, "nce.img_raw", 2, (int64_t[]){B, D}, ri);
    st_read_f32(f, "nce.txt_raw", 2, (int64_t[]){B, D}, rt);
    snprintf(key, sizeof key, "nce.%s.cfg", tag);
    float temp = (float)f64_at(f, key, 0), lam = (float)f64_at(f, key, 1);
    float dri[B * D] = {0}, drt[B * D] = {0}, logits[B * B], ni[B * D], nrm[B];
    double loss = loss_raw(ri, rt, temp, lam, dri, drt, logits);
    double want = f64_at(f, (snprintf(key, sizeof key, "nce.%s.loss", tag), key), 0);
    EXPECT(fabs(loss - want) <= 1e-6 * fabs(want), "%s: loss %.9g, torch %.9g (rel %.2g)", tag, loss, want,
           fabs(loss - want) / fabs(want));
    l2norm_forward(ni, nrm, ri, B, D);
    expect_close_fixture(f, (snprintf(key, sizeof key, "nce.%s.norm_img", tag), key), ni, B * D, 1e-6);
    expect_close_fixture(f, (snprintf(key, sizeof key, "nce.%s.logits", tag), key), logits, B * B, 1e-6);
    expect_close_fixture(f, (snprintf(key, sizeof key, "nce.%s.dimg_raw", tag), key), dri, B * D, 1e-5);
    expect_close_fixture(f, (snprintf(key, sizeof key, "nce.%s.dtxt_raw", tag), key), drt, B * D, 1e-5);

    /* central differences on the raw inputs. Row 3 of img is scaled by 1e-3, so
     * its step is scaled too. float forward, h = 1e-2 of the row's size:
     * truncation and rounding measured at 4e-5 of the gradient scale (bound 5e-4). */
    float fd[B * D];
    double scale = 0;
    for (int i = 0; i < B * D; i++) scale = fmax(scale, fabs(dri[i]));
    for (int i = 0; i < B * D; i++) {
        float h = (i / D == 3) ? 1e-5f : 1e-2f;
        float keep = ri[i];
        ri[i] = keep + h;
        double lp = loss_raw(ri, rt, temp, lam, NULL, NULL, NULL);
        ri[i] = keep - h;
        double lm = loss_raw(ri, rt, temp, lam, NULL, NULL, NULL);
        ri[i] = keep;
        fd[i] = (float)((lp - lm) / (2.0 * ((double)(keep + h) - (double)keep)));
    }
    expect_close("finite differences, image side", dri, fd, B * D, 5e-4);
    for (int i = 0; i < B * D; i++) {
        float keep = rt[i], h = 1e-2f;
        rt[i] = keep + h;
        double lp = loss_raw(ri, rt, temp, lam, NULL, NULL, NULL);
        rt[i] = keep - h;
        double lm = loss_raw(ri, rt, temp, lam, NULL, NULL, NULL);
        rt[i] = keep;
        fd[i] = (float)((lp - lm) / (2.0 * h));
    }
    expect_close("finite differences, text side", drt, fd, B * D, 5e-4);
    st_close(f);
}

static void test_nce_mgca(void) { nce_case("mgca"); }
static void test_nce_paper(void) { nce_case("paper"); }

/* dloss scales the gradient and the accumulation adds to what is there */
static void test_nce_accumulates(void) {
    float img[4 * 3] = {1, 0, 0, 0, 1, 0, 0.6f, 0.8f, 0, 0, 0, 1};
    float txt[4 * 3] = {0.8f, 0.6f, 0, 0, 1, 0, 0, 0.6f, 0.8f, 0, 0, 1};
    float lg[16], a[12] = {0}, b[12] = {0}, a2[12], b2[12];
    infonce_forward(lg, NULL, img, txt, 4, 3, 0.5f, 0.3f);
    infonce_backward(a, b, lg, img, txt, 4, 3, 0.5f, 0.3f, 1.0f);
    for (int i = 0; i < 12; i++) { a2[i] = 1.0f; b2[i] = -1.0f; }
    infonce_backward(a2, b2, lg, img, txt, 4, 3, 0.5f, 0.3f, 2.5f);
    for (int i = 0; i < 12; i++) {
        a[i] = 1.0f + 2.5f * a[i];
        b[i] = -1.0f + 2.5f * b[i];
    }
    expect_close("accumulated dimg", a2, a, 12, 1e-6);
    expect_close("accumulated dtxt", b2, b, 12, 1e-6);
    /* lambda = 1: only image->text; perfectly separated pairs give a small loss */
    double parts[2];
    double l = infonce_forward(lg, parts, img, img, 4, 3, 0.01f, 1.0f);
    EXPECT(fabs(l - parts[0]) < 1e-12, "lambda 1 is the image->text term");
    EXPECT(l >= 0 && parts[1] >= 0, "cross-entropies are non-negative");
}

static void test_recall(void) {
    st_file *f = st_open(fixture_path("contrastive_ref.safetensors"));
    enum { M = 40 };
    float *sim = xmalloc(M * M * sizeof(float));
    st_read_f32(f, "recall.sim", 2, (int64_t[]){M, M}, sim);
    int ks[3] = {1, 5, 10};
    double i2t[3], t2i[3];
    retrieval_recall(i2t, t2i, sim, M, ks, 3);
    for (int k = 0; k < 3; k++) {
        EXPECT(fabs(i2t[k] - f64_at(f, "recall.i2t", k)) < 1e-12, "i2t@%d %.4f, torch %.4f", ks[k], i2t[k],
               f64_at(f, "recall.i2t", k));
        EXPECT(fabs(t2i[k] - f64_at(f, "recall.t2i", k)) < 1e-12, "t2i@%d %.4f, torch %.4f", ks[k], t2i[k],
               f64_at(f, "recall.t2i", k));
    }
    EXPECT(i2t[0] < i2t[1] && i2t[1] <= i2t[2] && i2t[0] > 0 && i2t[2] < 1, "the case is not degenerate");
    /* ties: 4 identical texts (columns 0..3 equal), and a column above all */
    float tie[16] = {5, 5, 5, 5,  /* image 0: its text ties with texts 1..3 */
                     1, 2, 1, 1,  /* image 1: its own is the best */
                     3, 3, 3, 3,  /* image 2: all four equal */
                     0, 0, 0, 0}; /* image 3: all equal */
    int k2[2] = {1, 2};
    double a[2], b[2];
    retrieval_recall(a, b, tie, 4, k2, 2);
    /* i2t@1: image 0: 1/4, image 1: 1, image 2: 1/4, image 3: 1/4 -> 1.75/4 */
    EXPECT(fabs(a[0] - 1.75 / 4) < 1e-12, "i2t@1 with ties %.4f", a[0]);
    EXPECT(fabs(a[1] - 2.5 / 4) < 1e-12, "i2t@2 with ties %.4f", a[1]); /* 2/4 + 1 + 2/4 + 2/4 */
    /* t2i@1, column j against its diagonal: col 0 (5 vs 1,3,0): 1; col 1 (2 vs
     * 5,3,0): one above -> 0; col 2 (3 vs 5,1,0): one above -> 0; col 3 (0 vs
     * 5,1,3): 0 */
    EXPECT(fabs(b[0] - 1.0 / 4) < 1e-12, "t2i@1 with ties %.4f", b[0]);
    free(sim);
    st_close(f);
}

int main(void) {
    RUN(test_nce_mgca);
    RUN(test_nce_paper);
    RUN(test_nce_accumulates);
    RUN(test_recall);
    return unit_done();
}
