/* test_gpu_unet.c — the GPU UNet (unet_cuda.h) against the CPU UNet (unet.h,
 * itself tested against diffusers in test_unet.c) on the tiny fixture models
 * and the inputs of unet_ref.safetensors: fp32 within 1e-4 of the output's
 * scale; fp16 within 2e-2 and bf16 within 1e-1 (first estimates, not yet
 * measured on a GPU: the storage unit roundoff, 4.9e-4 and 3.9e-3, times the
 * some 40 roundings along the deepest path; the measured errors are printed);
 * a batch of 2 equal, per sample, to two passes of 1 (fp32 1e-5, fp16 2e-3:
 * cuBLAS may pick other kernels for other shapes); the arena reservation
 * refusing a batch that cannot fit, without dying, and the batch it names
 * fitting; CUDA graphs (unet_cuda_set_graphs): a replay gives the plain pass's
 * output bit for bit (the same kernels on the same pointers), on new inputs,
 * across sizes and a regrown arena, in f32 and f16, and the captures and
 * replays happen when they should. Without a GPU (or CUDA) every test says
 * "# SKIP no GPU". */
#include "unit.h"
#include "device.h"
#include "unet.h"
#include "unet_cuda.h"

#ifdef SYNTHCXR_CUDA
#include "gpu_test.h"

static st_file *ref;

typedef struct ucase {
    tensor *sample, *t, *enc;
    int B, H, W, T;
} ucase;

static ucase case_load(const char *cfg, const char *name) {
    char key[128];
    ucase u;
    snprintf(key, sizeof key, "%s.%s.sample", cfg, name);
    u.sample = st_load_f32(ref, key, -1, NULL);
    snprintf(key, sizeof key, "%s.%s.t", cfg, name);
    u.t = st_load_f32(ref, key, -1, NULL);
    snprintf(key, sizeof key, "%s.%s.enc", cfg, name);
    u.enc = st_load_f32(ref, key, -1, NULL);
    u.B = (int)u.sample->shape[0], u.H = (int)u.sample->shape[2], u.W = (int)u.sample->shape[3];
    u.T = (int)u.enc->shape[1];
    return u;
}

static void case_free(ucase *u) {
    tensor_free(u->sample);
    tensor_free(u->t);
    tensor_free(u->enc);
}

static double unet_tol(dtype_t dt) { return dt == DTYPE_F32 ? 1e-4 : dt == DTYPE_F16 ? 2e-2 : 1e-1; }

/* Every case of a config through the CPU and the GPU in the three storage types. */
static void check_config(const char *cfg, const char *dir, const char *const *cases, int n_cases) {
    unet_model *m = unet_load_dir(fixture_path(dir));
    const unet_info *in = unet_get_info(m);
    for (int d = 0; d < 3; d++) {
        dtype_t dt = gt_dtypes[d];
        unet_cuda *g = unet_cuda_new(m, dt);
        for (int i = 0; i < n_cases; i++) {
            ucase u = case_load(cfg, cases[i]);
            size_t n = (size_t)u.B * in->out_channels * u.H * u.W;
            float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
            unet_forward(m, want, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            unet_cuda_forward(g, got, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            char what[160];
            snprintf(what, sizeof what, "%s.%s (B=%d %dx%d T=%d) gpu vs cpu", cfg, cases[i], u.B, u.H, u.W, u.T);
            gt_compare(what, dt, got, want, n, unet_tol(dt));
            /* the arena is reused: a second pass gives the same bytes */
            float *again = xmalloc(n * sizeof *again);
            unet_cuda_forward(g, again, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            EXPECT(!memcmp(again, got, n * sizeof *got), "%s %s: a second pass differs", what, dtype_name(dt));
            free(again);
            free(want);
            free(got);
            case_free(&u);
        }
        unet_cuda_free(g);
    }
    unet_free(m);
}

static void test_sd1(void) {
    if (!have_gpu()) return;
    const char *cases[] = {"t999", "t500", "t1", "b2", "wide"};
    check_config("sd1", "models/tiny-sd1/unet", cases, 5);
}
static void test_sd2(void) {
    if (!have_gpu()) return;
    const char *cases[] = {"t999", "t500", "t1", "b2", "big"};
    check_config("sd2", "models/tiny-sd2/unet", cases, 5);
}
static void test_deep(void) {
    if (!have_gpu()) return;
    const char *cases[] = {"t999", "t1", "b2", "tall"};
    check_config("deep", "unet-deep/unet", cases, 4);
}
static void test_misc(void) {
    if (!have_gpu()) return;
    const char *cases[] = {"b2"};
    check_config("misc", "unet-misc/unet", cases, 1);
}

/* sd2.b2 as one pass of 2 and two passes of 1. */
static void test_batch(void) {
    if (!have_gpu()) return;
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd2/unet"));
    const unet_info *in = unet_get_info(m);
    ucase u = case_load("sd2", "b2");
    CHECK(u.B == 2);
    size_t ni = (size_t)in->in_channels * u.H * u.W, no = (size_t)in->out_channels * u.H * u.W;
    size_t ne = (size_t)u.T * in->cross_attention_dim;
    const float *x = u.sample->data, *t = u.t->data, *e = u.enc->data;
    for (int d = 0; d < 2; d++) {
        dtype_t dt = gt_dtypes[d];
        unet_cuda *g = unet_cuda_new(m, dt);
        float *both = xmalloc(2 * no * sizeof *both), *one = xmalloc(2 * no * sizeof *one);
        unet_cuda_forward(g, both, x, t, e, 2, u.H, u.W, u.T);
        for (int b = 0; b < 2; b++)
            unet_cuda_forward(g, one + b * no, x + b * ni, t + b, e + b * ne, 1, u.H, u.W, u.T);
        gt_compare("sd2.b2 batch 2 vs 1 + 1", dt, both, one, 2 * no, dt == DTYPE_F32 ? 1e-5 : 2e-3);
        free(both);
        free(one);
        unet_cuda_free(g);
    }
    case_free(&u);
    unet_free(m);
}

/* A batch no GPU holds is refused with the sizes; the largest batch the
 * planner says fits in what is free then reserves. */
static void test_oom(void) {
    if (!have_gpu()) return;
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd1/unet"));
    unet_cuda *g = unet_cuda_new(m, DTYPE_F16);
    unet_cuda_oom oom = {0};
    int ok = unet_cuda_reserve(g, 2000, 512, 512, 77, &oom);
    printf("# tiny-sd1 B=2000 at 512x512: need %zu, avail %zu, free %zu, total %zu\n", oom.need, oom.avail, oom.free,
           oom.total);
    EXPECT(!ok && oom.need > oom.avail && oom.free <= oom.total && oom.total > 0, "2000 x 512^2 reserved?");
    int fit = unet_cuda_max_batch(m, DTYPE_F16, 1, 512, 512, 77, oom.avail);
    printf("# the largest batch that fits: %d\n", fit);
    EXPECT(fit >= 1 && fit < 2000, "fit %d", fit);
    if (fit >= 1) EXPECT(unet_cuda_reserve(g, fit, 512, 512, 77, &oom), "batch %d does not reserve", fit);
    unet_cuda_free(g);
    unet_free(m);
}

/* Graph replays against plain passes of a second unet_cuda (bit for bit): the
 * sequence of test_unet_walk.c's test_graphs, on the GPU. */
static void test_graphs(void) {
    if (!have_gpu()) return;
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd1/unet"));
    const unet_info *in = unet_get_info(m);
    const char *cases[] = {"t999", "t500", "t1", "b2", "b2", "t999", "t1", "t999", "t500", "wide"};
    const long want_c[] = {1, 1, 1, 2, 2, 3, 4, 5, 5, 6}, want_r[] = {0, 1, 2, 2, 3, 3, 3, 3, 4, 4};
    for (int d = 0; d < 2; d++) {
        dtype_t dt = gt_dtypes[d];
        unet_cuda *plain = unet_cuda_new(m, dt), *gr = unet_cuda_new(m, dt);
        unet_cuda_set_graphs(plain, 0);
        unet_cuda_set_graphs(gr, 1);
        /* every size through the plain one first, so that its passes below grow no shared scratch buffer
         * (a cuda_free, which would drop gr's graph beyond the expected counts) */
        for (int i = 0; i < 10; i++) {
            ucase u = case_load("sd1", cases[i]);
            float *o = xmalloc((size_t)u.B * in->out_channels * u.H * u.W * sizeof *o);
            unet_cuda_forward(plain, o, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            free(o);
            case_free(&u);
        }
        for (int i = 0; i < 10; i++) {
            ucase u = case_load("sd1", cases[i]);
            unet_cuda_oom oom;
            if (i == 6) CHECK(unet_cuda_reserve(gr, 4, u.H, u.W, u.T, &oom));   /* the arena moves */
            if (i == 7) cuda_free(cuda_malloc(64));                              /* as a scratch that grew */
            size_t n = (size_t)u.B * in->out_channels * u.H * u.W;
            float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
            unet_cuda_forward(plain, want, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            unet_cuda_forward(gr, got, u.sample->data, u.t->data, u.enc->data, u.B, u.H, u.W, u.T);
            long nc, nr;
            unet_cuda_graph_counts(gr, &nc, &nr);
            size_t diff = 0;
            for (size_t k = 0; k < n; k++) diff += memcmp(&got[k], &want[k], sizeof *got) != 0;
            printf("# graphs %s call %d (sd1.%s): %zu of %zu outputs differ from the plain pass; %ld captures, %ld "
                   "replays\n", dtype_name(dt), i + 1, cases[i], diff, n, nc, nr);
            EXPECT(diff == 0, "%s call %d (%s): the graph's output differs from the plain pass's in %zu of %zu",
                   dtype_name(dt), i + 1, cases[i], diff, n);
            EXPECT(nc == want_c[i] && nr == want_r[i], "%s call %d (%s): %ld captures, %ld replays; want %ld, %ld",
                   dtype_name(dt), i + 1, cases[i], nc, nr, want_c[i], want_r[i]);
            free(want), free(got);
            case_free(&u);
        }
        unet_cuda_free(plain);
        unet_cuda_free(gr);
    }
    unet_free(m);
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_sd1 no_cuda
#define test_sd2 no_cuda
#define test_deep no_cuda
#define test_misc no_cuda
#define test_batch no_cuda
#define test_oom no_cuda
#define test_graphs no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
#ifdef SYNTHCXR_CUDA
    ref = st_open(fixture_path("unet_ref.safetensors"));
#endif
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_deep);
    RUN(test_misc);
    RUN(test_batch);
    RUN(test_oom);
    RUN(test_graphs);
#ifdef SYNTHCXR_CUDA
    st_close(ref);
#endif
    return unit_done();
}
