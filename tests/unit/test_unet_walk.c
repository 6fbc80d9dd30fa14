/* test_unet_walk.c — the GPU UNet's walk (libcommon/unet_cuda.c) run on the
 * CPU: this file includes unet_cuda.c with every cuda_ops.h op it calls bound
 * to its CPU twin (f32; the device is host memory), so the arena layout, the
 * weight mapping, the buffer aliasing and the block order of the GPU code
 * are checked against unet_forward on the fixture models without a GPU.
 * Same kernels, same order: the outputs must agree to float rounding (they
 * are expected bit for bit; the bound is 1e-6 of the scale). The emulated
 * ops also check what the real ones require: the conv workspace given and
 * large enough, no output aliasing an input where the op forbids it, every
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
#include "activation.h"
#include "attention.h"
#include "conv2d.h"
#include "eltwise.h"
#include "gemm.h"
#include "norm.h"
#include "tensor.h"
#include "upsample.h"

/* ---- the CUDA runtime, on the host ---------------------------------------------- */

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define CUDA_CHECK(call) CHECK((call) == cudaSuccess)

/* the device: blocks of host memory, remembered so every op can check its pointers */
static struct { const char *p; size_t n; } emu_blocks[16];
static size_t emu_free = (size_t)64 << 30;   /* what cudaMemGetInfo says */

static void emu_track(const void *p, size_t n) {
    for (int i = 0; i < 16; i++)
        if (!emu_blocks[i].p) {
            emu_blocks[i].p = p, emu_blocks[i].n = n;
            return;
        }
    CHECK(!"emu: too many blocks");
}
/* [p, p + bytes) lies in one device block */
static void emu_in(const void *p, size_t bytes) {
    for (int i = 0; i < 16; i++)
        if (emu_blocks[i].p && (const char *)p >= emu_blocks[i].p &&
            (const char *)p + bytes <= emu_blocks[i].p + emu_blocks[i].n)
            return;
    CHECKF(0, "emu: %zu bytes at %p are outside every device block", bytes, p);
}
static cudaError_t cudaMalloc(void **p, size_t n) {
    *p = xmalloc_aligned(n);
    emu_track(*p, n);
    return cudaSuccess;
}
static void *cuda_malloc(size_t n) {
    void *p;
    cudaMalloc(&p, n);
    return p;
}
static unsigned long emu_frees;
static void cuda_free(void *p) {
    for (int i = 0; i < 16; i++)
        if (p && emu_blocks[i].p == p) emu_blocks[i].p = NULL;
    if (p) emu_frees++;
    free(p);
}
static unsigned long cuda_free_count(void) { return emu_frees; }
static cudaError_t cudaMemcpy(void *d, const void *s, size_t n, int kind) {
    if (kind != cudaMemcpyHostToDevice) emu_in(s, n);
    if (kind != cudaMemcpyDeviceToHost) emu_in(d, n);
    memcpy(d, s, n);
    return cudaSuccess;
}
static cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, int kind, int stream) {
    (void)stream;
    return cudaMemcpy(d, s, n, kind);
}
static cudaError_t cudaMemGetInfo(size_t *fr, size_t *total) {
    *fr = emu_free, *total = (size_t)80 << 30;
    return cudaSuccess;
}
static cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static int cublas_handle(void) { return 0; }

/* ---- the ops, on their CPU twins (f32 only) ---------------------------------------- */

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))
static void f32_only(dtype_t dt) { CHECKF(dt == DTYPE_F32, "emu: %s", dtype_name(dt)); }

static size_t conv2d_cuda_workspace_bytes(const conv2d_dims *d, dtype_t dt) {
    if (d->k_h == 1 && d->k_w == 1 && d->stride_h == 1 && d->stride_w == 1 && !d->pad_h && !d->pad_w) return 0;
    return (size_t)d->in_ch * d->k_h * d->k_w * conv2d_out_h(d) * conv2d_out_w(d) * dtype_size(dt);
}
static void conv2d_forward_cuda(void *out, const void *inp, const void *w, const void *b, const conv2d_dims *d,
                                void *ws, size_t ws_bytes, dtype_t dt) {
    f32_only(dt);
    size_t need = conv2d_cuda_workspace_bytes(d, dt);
    if (need) {
        CHECKF(ws && ws_bytes >= need, "emu: conv workspace %zu bytes, one image needs %zu", ws_bytes, need);
        emu_in(ws, need);
    }
    emu_in(out, (size_t)d->batch * d->out_ch * conv2d_out_h(d) * conv2d_out_w(d) * 4);
    emu_in(inp, (size_t)d->batch * d->in_ch * d->in_h * d->in_w * 4);
    emu_in(w, (size_t)d->out_ch * d->in_ch * d->k_h * d->k_w * 4);
    CHECK(out != inp);
    conv2d_forward(F(out), CF(inp), CF(w), CF(b), d);
}
static void linear_forward_cuda(void *out, const void *inp, const void *w, const void *b, int n, int in_f,
                                int out_f, dtype_t dt) {
    f32_only(dt);
    CHECK(out != inp);
    emu_in(out, (size_t)n * out_f * 4);
    emu_in(inp, (size_t)n * in_f * 4);
    emu_in(w, (size_t)out_f * in_f * 4);
    if (b) emu_in(b, (size_t)out_f * 4);
    linear_forward(F(out), CF(inp), CF(w), CF(b), n, in_f, out_f);
}
static void groupnorm_forward_cuda(void *out, const void *inp, const void *g, const void *b, int batch, int ch,
                                   int hw, int groups, float eps, dtype_t dt) {
    f32_only(dt);
    emu_in(out, (size_t)batch * ch * hw * 4);
    emu_in(g, (size_t)ch * 4);
    groupnorm_forward(F(out), CF(inp), CF(g), CF(b), batch, ch, hw, groups, eps);
}
static void groupnorm_silu_forward_cuda(void *out, const void *inp, const void *g, const void *b, int batch,
                                        int ch, int hw, int groups, float eps, dtype_t dt) {
    f32_only(dt);
    emu_in(out, (size_t)batch * ch * hw * 4);
    emu_in(inp, (size_t)batch * ch * hw * 4);
    emu_in(g, (size_t)ch * 4);
    groupnorm_silu_forward(F(out), CF(inp), CF(g), CF(b), batch, ch, hw, groups, eps);
}
static void layernorm_forward_cuda(void *out, const void *inp, const void *g, const void *b, int rows, int ch,
                                   float eps, dtype_t dt) {
    f32_only(dt);
    emu_in(out, (size_t)rows * ch * 4);
    emu_in(inp, (size_t)rows * ch * 4);
    layernorm_forward(F(out), CF(inp), CF(g), CF(b), rows, ch, eps);
}
static void attention_forward_cuda(void *out, const void *q, const void *k, const void *v, int batch, int heads,
                                   int tq, int tk, int hd, float scale, int causal, const float *mask, dtype_t dt) {
    f32_only(dt);
    CHECK(out != k && out != v);
    emu_in(q, (size_t)batch * tq * heads * hd * 4);
    emu_in(k, (size_t)batch * tk * heads * hd * 4);
    emu_in(v, (size_t)batch * tk * heads * hd * 4);
    attention_forward(F(out), CF(q), CF(k), CF(v), batch, heads, tq, tk, hd, scale, causal, mask);
}
static void silu_forward_cuda(void *out, const void *inp, size_t n, dtype_t dt) {
    f32_only(dt);
    emu_in(out, n * 4);
    silu_forward(F(out), CF(inp), n);
}
static void geglu_forward_cuda(void *out, const void *inp, int rows, int ch, dtype_t dt) {
    f32_only(dt);
    CHECK(out != inp);
    emu_in(out, (size_t)rows * ch * 4);
    emu_in(inp, (size_t)rows * 2 * ch * 4);
    geglu_forward(F(out), CF(inp), rows, ch);
}
static void eltwise_add_cuda(void *out, const void *a, const void *b, size_t n, dtype_t dt) {
    f32_only(dt);
    emu_in(out, n * 4), emu_in(a, n * 4), emu_in(b, n * 4);
    eltwise_add(F(out), CF(a), CF(b), n);
}
static void eltwise_scale_cuda(void *out, const void *a, float s, size_t n, dtype_t dt) {
    f32_only(dt);
    emu_in(out, n * 4);
    eltwise_scale(F(out), CF(a), s, n);
}
static void eltwise_add_batch_channels_cuda(void *x, const void *v, int batch, int ch, int hw, dtype_t dt) {
    f32_only(dt);
    emu_in(x, (size_t)batch * ch * hw * 4);
    emu_in(v, (size_t)batch * ch * 4);
    eltwise_add_batch_channels(F(x), CF(v), batch, ch, hw);
}
static void eltwise_concat_channels_cuda(void *out, const void *a, int ca, const void *b, int cb, int batch, int hw,
                                         dtype_t dt) {
    f32_only(dt);
    CHECK(out != a && out != b);
    emu_in(out, (size_t)batch * (ca + cb) * hw * 4);
    emu_in(a, (size_t)batch * ca * hw * 4);
    emu_in(b, (size_t)batch * cb * hw * 4);
    eltwise_concat_channels(F(out), CF(a), ca, CF(b), cb, batch, hw);
}
static void eltwise_transpose_cuda(void *out, const void *inp, int batch, int m, int n, dtype_t dt) {
    f32_only(dt);
    CHECK(out != inp);
    emu_in(out, (size_t)batch * m * n * 4), emu_in(inp, (size_t)batch * m * n * 4);
    eltwise_transpose(F(out), CF(inp), batch, m, n);
}
static void upsample_nearest2x_forward_cuda(void *out, const void *inp, int batch, int ch, int h, int w,
                                            dtype_t dt) {
    f32_only(dt);
    emu_in(out, (size_t)batch * ch * 4 * h * w * 4);
    emu_in(inp, (size_t)batch * ch * h * w * 4);
    upsample_nearest2x_forward(F(out), CF(inp), batch, ch, h, w);
}

#include "../../libcommon/unet_cuda.c"

/* ---- the tests ------------------------------------------------------------------------ */

static st_file *ref;

static void check_config(const char *cfg, const char *dir, const char *const *cases, int n_cases) {
    unet_model *m = unet_load_dir(fixture_path(dir));
    const unet_info *in = unet_get_info(m);
    unet_cuda *g = unet_cuda_new(m, DTYPE_F32);
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
        printf("# %s.%s (B=%d %dx%d T=%d): walk vs unet_forward max abs err %.2e (scale %.3g); arena %zu bytes\n",
               cfg, cases[i], B, H, W, T, err, scale, unet_cuda_arena_bytes(m, DTYPE_F32, B, H, W, T));
        char what[128];
        snprintf(what, sizeof what, "%s.%s", cfg, cases[i]);
        expect_close(what, got, want, n, 1e-6);
        free(want), free(got);
        tensor_free(x), tensor_free(t), tensor_free(e);
    }
    unet_cuda_free(g);
    unet_free(m);
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
    ref = st_open(fixture_path("unet_ref.safetensors"));
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_deep);
    RUN(test_misc);
    RUN(test_reserve);
    RUN(test_graphs);
    st_close(ref);
    return unit_done();
}
