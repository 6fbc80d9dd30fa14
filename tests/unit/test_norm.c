/* test_norm.c — group norm (with and without affine, two eps values, a large
 * mean offset, the fused SiLU), layer norm (including means of 1e3 and 1e4) and
 * softmax (large values, -inf entries) against torch.nn.functional evaluated
 * in float64 (tests/oracle/make_kernels2.py). The kernels accumulate their
 * statistics in double, so they are held to 1e-5 of the output scale, ten
 * times tighter than the project's fp32 default. */
#include "norm.h"
#include "softmax.h"
#include "unit.h"

#include <math.h>

static st_file *fx;

static tensor *get(const char *name, const char *part) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, part);
    return st_find(fx, key) ? st_load_f32(fx, key, -1, NULL) : NULL;
}

static double rel_err(const float *got, const tensor *want) {
    const float *w = want->data;
    double e = 0, s = 0;
    for (int64_t i = 0; i < tensor_numel(want); i++) e = fmax(e, fabs((double)got[i] - w[i])), s = fmax(s, fabs(w[i]));
    return e / (s > 0 ? s : 1);
}

static void gn_case(const char *name, float eps, int silu, double tol) {
    tensor *x = get(name, "x"), *g = get(name, "gamma"), *b = get(name, "beta"), *want = get(name, "out");
    int B = (int)x->shape[0], C = (int)x->shape[1], HW = (int)x->shape[2];
    size_t n = (size_t)tensor_numel(x);
    float *out = xmalloc(n * sizeof(float));
    const float *gp = g ? g->data : NULL, *bp = b ? b->data : NULL;
    if (silu) groupnorm_silu_forward(out, x->data, gp, bp, B, C, HW, 32, eps);
    else groupnorm_forward(out, x->data, gp, bp, B, C, HW, 32, eps);
    printf("# %s: [%d, %d, %d] eps %g%s%s: max err %.2e of scale\n", name, B, C, HW, (double)eps,
           g ? " affine" : "", silu ? " +silu" : "", rel_err(out, want));
    expect_close(name, out, want->data, n, tol);
    /* In place gives the same bits. */
    float *xin = xmalloc(n * sizeof(float));
    memcpy(xin, x->data, n * sizeof(float));
    if (silu) groupnorm_silu_forward(xin, xin, gp, bp, B, C, HW, 32, eps);
    else groupnorm_forward(xin, xin, gp, bp, B, C, HW, 32, eps);
    EXPECT(!memcmp(xin, out, n * sizeof(float)), "%s: in place differs", name);
    free(xin), free(out);
    tensor_free(x), tensor_free(want);
    if (g) tensor_free(g), tensor_free(b);
}

static void test_groupnorm_affine(void) { gn_case("gn1", 1e-5f, 0, 1e-5); }
static void test_groupnorm_plain_eps6(void) { gn_case("gn2", 1e-6f, 0, 1e-5); }
static void test_groupnorm_large_mean(void) { gn_case("gn3", 1e-6f, 0, 1e-5); }
static void test_groupnorm_silu(void) { gn_case("gn4", 1e-5f, 1, 1e-5); }

static void ln_case(const char *name) {
    tensor *x = get(name, "x"), *g = get(name, "gamma"), *b = get(name, "beta"), *want = get(name, "out");
    int rows = (int)x->shape[0], ch = (int)x->shape[1];
    size_t n = (size_t)tensor_numel(x);
    float *out = xmalloc(n * sizeof(float));
    layernorm_forward(out, x->data, g ? g->data : NULL, b ? b->data : NULL, rows, ch, 1e-5f);
    printf("# %s: [%d, %d]%s: max err %.2e of scale\n", name, rows, ch, g ? " affine" : "", rel_err(out, want));
    expect_close(name, out, want->data, n, 1e-5);
    layernorm_forward(x->data, x->data, g ? g->data : NULL, b ? b->data : NULL, rows, ch, 1e-5f);
    EXPECT(!memcmp(x->data, out, n * sizeof(float)), "%s: in place differs", name);
    free(out);
    tensor_free(x), tensor_free(want);
    if (g) tensor_free(g), tensor_free(b);
}

static void test_layernorm(void) { ln_case("ln1"); }
static void test_layernorm_plain(void) { ln_case("ln3"); }
static void test_layernorm_mean_1e3(void) { ln_case("ln4"); }
static void test_layernorm_mean_1e4(void) { ln_case("ln2"); }

static void test_softmax(void) {
    tensor *x = get("softmax", "x"), *want = get("softmax", "out");
    int rows = (int)x->shape[0], cols = (int)x->shape[1];
    size_t n = (size_t)tensor_numel(x);
    float *out = xmalloc(n * sizeof(float));
    softmax_forward(out, x->data, rows, cols);
    printf("# softmax: [%d, %d]: max err %.2e of scale\n", rows, cols, rel_err(out, want));
    expect_close("softmax", out, want->data, n, 1e-5);
    /* Masked entries are exactly 0 and every row sums to 1. */
    const float *xi = x->data;
    for (size_t i = 0; i < n; i++)
        if (xi[i] == -INFINITY) EXPECT(out[i] == 0.0f, "masked entry %zu = %g", i, out[i]);
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += out[(size_t)r * cols + c];
        EXPECT(fabs(s - 1) < 1e-5, "row %d sums to %.8f", r, s);
    }
    softmax_forward(x->data, x->data, rows, cols);
    EXPECT(!memcmp(x->data, out, n * sizeof(float)), "softmax in place differs");
    /* A row that is all -inf gives zeros (torch: NaN). */
    float allmasked[3] = {-INFINITY, -INFINITY, -INFINITY};
    softmax_forward(allmasked, allmasked, 1, 3);
    EXPECT(allmasked[0] == 0 && allmasked[1] == 0 && allmasked[2] == 0, "all -inf row");
    free(out);
    tensor_free(x), tensor_free(want);
}

static void gn_bad_groups(void *arg) {
    (void)arg;
    float x[12] = {0};
    groupnorm_forward(x, x, NULL, NULL, 1, 6, 2, 4, 1e-5f);
}
static void ln_half_affine(void *arg) {
    (void)arg;
    float x[4] = {0}, g[4] = {0};
    layernorm_forward(x, x, g, NULL, 1, 4, 1e-5f);
}
static void sm_bad_dims(void *arg) {
    (void)arg;
    float x[4] = {0};
    softmax_forward(x, x, 1, -4);
}
static void test_bad_arguments(void) {
    expect_dies("groups do not divide", gn_bad_groups, NULL, 2, "groupnorm_forward: 4 groups do not divide 6 channels");
    expect_dies("gamma without beta", ln_half_affine, NULL, 2, "layernorm_forward: gamma and beta");
    expect_dies("softmax cols", sm_bad_dims, NULL, 2, "softmax_forward: bad dimensions");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels2.safetensors"));
    RUN(test_groupnorm_affine);
    RUN(test_groupnorm_plain_eps6);
    RUN(test_groupnorm_large_mean);
    RUN(test_groupnorm_silu);
    RUN(test_layernorm);
    RUN(test_layernorm_plain);
    RUN(test_layernorm_mean_1e3);
    RUN(test_layernorm_mean_1e4);
    RUN(test_softmax);
    RUN(test_bad_arguments);
    st_close(fx);
    return unit_done();
}
