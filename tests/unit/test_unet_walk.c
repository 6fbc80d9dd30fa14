/* test_unet_walk.c — the GPU UNet's walk (libcommon/unet_cuda.c) run on the
 * CPU: this file includes unet_cuda.c with every cuda_ops.h op it calls bound
 * to its CPU twin (cuda_walk_emu.h; the device is host memory; run in f32
 * here), so the arena layout, the weight mapping, the buffer aliasing and the block order of the GPU code
 * are checked against unet_forward on the fixture models without a GPU.
 * Same kernels, same order: the outputs must agree to float rounding (they
 * are expected bit for bit; the bound is 1e-6 of the scale). The emulated
 * ops also check what the real ones require: the conv workspace given and
 * holding one whole image (emu_conv_ws_whole: the UNet plans it so), no output aliasing an input where the op forbids it, every
 * buffer inside the arena or the weights. What it cannot check: the CUDA
 * kernels themselves (test_gpu_ops.c, test_gpu_attention.c, on a GPU).
 * CUDA graphs (test_graphs): an emulated capture keeps the walk's context and
 * a replay walks again with it, so a replay reads and writes the pointers of
 * its capture, as a real graph's kernels do: a replay after the arena moved
 * would touch freed memory (the ops' checks fail), and one whose inputs were
 * not uploaded where the capture reads them would give other outputs. */
#undef SYNTHCXR_CUDA
#define UNET_CUDA_EMULATE 1

#include "unit.h"
#include "cuda_walk_emu.h"
#include "tensor.h"

#include "../../libcommon/unet_cuda.c"

/* ---- the tests ------------------------------------------------------------------------ */

static st_file *ref;

/* The walk in storage type dt against unet_forward (f32) on the fixture cases:
 * f32 bit for bit (bound 1e-6 of the scale); f16 and bf16 store every weight
 * and activation rounded (cuda_walk_emu.h: read, compute in float, round once
 * on store, as the CUDA ops do), so they differ by that rounding alone. */
static void check_config_dt(const char *cfg, const char *dir, const char *const *cases, int n_cases, dtype_t dt,
                            double tol) {
    unet_model *m = unet_load_dir(fixture_path(dir));
    const unet_info *in = unet_get_info(m);
    unet_cuda *g = unet_cuda_new(m, dt);
    for (int i = 0; i < n_cases; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%s.sample", cfg, cases[i]);
        tensor *x = st_load_f32(ref, key, -1, NULL);
        snprintf(key, sizeof key, "%s.%s.t", cfg, cases[i]);
        tensor *t = st_load_f32(ref, key, -1, NULL);
        snprintf(key, sizeof key, "%s.%s.enc", cfg, cases[i]);
        tensor *e = st_load_f32(ref, key, -1, NULL);
        int B = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3], T = (int)e->shape[1];
        size_t n = (size_t)B * in->out_channels * H * W;
        float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
        unet_forward(m, want, x->data, t->data, e->data, B, H, W, T);
        unet_cuda_forward(g, got, x->data, t->data, e->data, B, H, W, T);
        double err = 0, scale = 0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)got[k] - want[k]);
            if (d > err) err = d;
            if (fabs((double)want[k]) > scale) scale = fabs((double)want[k]);
        }
        printf("# %s.%s %s (B=%d %dx%d T=%d): walk vs unet_forward max abs err %.2e (scale %.3g, %.2e of it); "
               "arena %zu bytes\n", cfg, cases[i], dtype_name(dt), B, H, W, T, err, scale, err / scale,
               unet_cuda_arena_bytes(m, dt, B, H, W, T));
        char what[128];
        snprintf(what, sizeof what, "%s.%s %s", cfg, cases[i], dtype_name(dt));
        expect_close(what, got, want, n, tol);
        free(want), free(got);
        tensor_free(x), tensor_free(t), tensor_free(e);
    }
    unet_cuda_free(g);
    unet_free(m);
}

static void check_config(const char *cfg, const char *dir, const char *const *cases, int n_cases) {
    check_config_dt(cfg, dir, cases, n_cases, DTYPE_F32, 1e-6);
}

/* f16 and bf16 storage on the CPU, against the f32 UNet. Measured over these
 * cases: at most 2.6e-3 (f16) and 2.9e-2 (bf16) of the scale, about 5 and 7
 * units of each type's rounding (2^-11, 2^-8) after some 60 layers. The GPU
 * test (test_gpu_unet.c) bounds the GPU's fp16/bf16 UNet by 2e-2 / 1e-1 of
 * the scale; here storage rounding alone must stay within half of those
 * (1e-2 / 5e-2), so the GPU bounds leave room for the GPU's own summation
 * order on top; a walk that read a 2-byte buffer at the wrong offset would
 * be off by far more. */
static void test_half(void) {
    const char *c1[] = {"t999", "b2", "wide"}, *c2[] = {"t500", "b2", "big"};
    for (int k = 0; k < 2; k++) {
        dtype_t dt = k ? DTYPE_BF16 : DTYPE_F16;
        double tol = k ? 1e-1 / 2 : 2e-2 / 2;
        check_config_dt("sd1", "models/tiny-sd1/unet", c1, 3, dt, tol);
        check_config_dt("sd2", "models/tiny-sd2/unet", c2, 3, dt, tol);
    }
}

static void test_sd1(void) {
    const char *cases[] = {"t999", "b2", "wide"};
    check_config("sd1", "models/tiny-sd1/unet", cases, 3);
}
static void test_sd2(void) {
    const char *cases[] = {"t500", "b2", "big"};
    check_config("sd2", "models/tiny-sd2/unet", cases, 3);
}
static void test_deep(void) {
    const char *cases[] = {"b2", "tall"};
    check_config("deep", "unet-deep/unet", cases, 2);
}
static void test_misc(void) {
    const char *cases[] = {"b2"};
    check_config("misc", "unet-misc/unet", cases, 1);
}

/* The reservation refuses what the (emulated) free memory cannot hold, names
 * the need, and the planner's largest batch then reserves. */
static void test_reserve(void) {
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd1/unet"));
    unet_cuda *g = unet_cuda_new(m, DTYPE_F32);
    size_t one = unet_cuda_arena_bytes(m, DTYPE_F32, 2, 32, 32, 77);
    emu_free = UNET_CUDA_RESERVE + 5 * one;   /* room for some batches of 2, not 20 */
    unet_cuda_oom oom = {0};
    EXPECT(!unet_cuda_reserve(g, 40, 32, 32, 77, &oom), "40 reserved");
    EXPECT(oom.need == unet_cuda_arena_bytes(m, DTYPE_F32, 40, 32, 32, 77) && oom.avail == 5 * one,
           "need %zu avail %zu", oom.need, oom.avail);
    int fit = unet_cuda_max_batch(m, DTYPE_F32, 2, 32, 32, 77, oom.avail);
    EXPECT(fit >= 5 && fit < 20, "fit %d", fit);
    EXPECT(unet_cuda_reserve(g, 2 * fit, 32, 32, 77, &oom), "the fitting batch %d x 2", fit);
    EXPECT(!unet_cuda_reserve(g, 2 * fit + 2, 32, 32, 77, &oom), "one more record");
    emu_free = (size_t)64 << 30;
    unet_cuda_free(g);
    unet_free(m);
}

/* graphs on: the first pass of a size is the plain walk and a capture, the
 * next ones replays on new inputs; another size, a regrown arena or a freed
 * buffer captures again; every output the plain walk's, bit for bit. */
static void test_graphs(void) {
    unet_model *m = unet_load_dir(fixture_path("models/tiny-sd1/unet"));
    const unet_info *in = unet_get_info(m);
    unet_cuda *plain = unet_cuda_new(m, DTYPE_F32), *gr = unet_cuda_new(m, DTYPE_F32);
    EXPECT(!unet_cuda_graphs(gr), "graphs on by default");
    unet_cuda_set_graphs(gr, 1);
    /* call 7 follows a reserve that regrows the arena, call 8 a freed buffer: both capture again */
    const char *cases[] = {"t999", "t500", "t1", "b2", "b2", "t999", "t1", "t999", "t500", "wide"};
    const long want_c[] = {1, 1, 1, 2, 2, 3, 4, 5, 5, 6}, want_r[] = {0, 1, 2, 2, 3, 3, 3, 3, 4, 4};
    for (int i = 0; i < 10; i++) {
        char key[128];
        snprintf(key, sizeof key, "sd1.%s.sample", cases[i]);
        tensor *x = st_load_f32(ref, key, -1, NULL);
        snprintf(key, sizeof key, "sd1.%s.t", cases[i]);
        tensor *t = st_load_f32(ref, key, -1, NULL);
        snprintf(key, sizeof key, "sd1.%s.enc", cases[i]);
        tensor *e = st_load_f32(ref, key, -1, NULL);
        int B = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3], T = (int)e->shape[1];
        unet_cuda_oom oom;
        if (i == 6) CHECK(unet_cuda_reserve(gr, 4, H, W, T, &oom));   /* the arena of 2 moves */
        if (i == 7) cuda_free(cuda_malloc(64));                          /* as a scratch that grew */
        size_t n = (size_t)B * in->out_channels * H * W;
        float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
        unet_cuda_forward(plain, want, x->data, t->data, e->data, B, H, W, T);
        unet_cuda_forward(gr, got, x->data, t->data, e->data, B, H, W, T);
        long nc, nr;
        unet_cuda_graph_counts(gr, &nc, &nr);
        EXPECT(!memcmp(got, want, n * sizeof *got), "call %d (%s): the graph's output differs from the plain walk's",
               i + 1, cases[i]);
        EXPECT(nc == want_c[i] && nr == want_r[i], "call %d (%s): %ld captures, %ld replays; want %ld, %ld", i + 1,
               cases[i], nc, nr, want_c[i], want_r[i]);
        free(want), free(got);
        tensor_free(x), tensor_free(t), tensor_free(e);
    }
    long nc, nr;
    unet_cuda_graph_counts(plain, &nc, &nr);
    EXPECT(nc == 0 && nr == 0, "graphs off: %ld captures, %ld replays", nc, nr);
    unet_cuda_set_graphs(gr, 0);
    EXPECT(!unet_cuda_graphs(gr), "graphs still on");
    unet_cuda_free(plain);
    unet_cuda_free(gr);
    unet_free(m);
}

int main(void) {
    emu_conv_ws_whole = 1;   /* the UNet plans a workspace for one whole image's im2col */
    ref = st_open(fixture_path("unet_ref.safetensors"));
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_deep);
    RUN(test_misc);
    RUN(test_half);
    RUN(test_reserve);
    RUN(test_graphs);
    st_close(ref);
    return unit_done();
}
