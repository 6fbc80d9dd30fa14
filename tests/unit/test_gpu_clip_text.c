/* test_gpu_clip_text.c — the GPU text encoder (clip_text_cuda.h) against the
 * CPU one (clip_text.h, itself tested against transformers in
 * test_clip_text.c) on the tiny SD 1 and SD 2 text encoders and the token ids
 * of clip_text_ref.safetensors, clip skip 0, 1 and 2, the CPU model holding
 * the same (rounded) weights as the GPU. Bounds on max|gpu - cpu| / max|cpu|:
 *  - fp32 1e-5: the walk is bit for bit the CPU's when the ops are the CPU
 *    twins (test_clip_text_walk.c), so only the kernels' summation order and
 *    float library calls differ; another order, PyTorch's, puts the CPU
 *    within 1.7e-6 of transformers at a scale of 4 (4e-7, test_clip_text.c),
 *    and 1e-5 leaves 25x that;
 *  - fp16 7e-3 and bf16 7e-2: 4x the storage error test_clip_text_walk.c
 *    measures on the CPU with every op rounding its result to the storage
 *    type as the CUDA ops do (f16 1.7e-3, bf16 1.7e-2), for the GPU's own
 *    summation order and the attention kernels' rounding of probabilities.
 * Not yet run on a GPU: the measured errors are printed. Also: a second pass
 * gives the same bytes; a batch equals its prompts one at a time (fp32 1e-5,
 * fp16 7e-3: cuBLAS may pick other kernels for other shapes); fp32 states
 * within 1e-4 of transformers'; an arena the device cannot hold is refused
 * without dying, and the batch the planner says fits then reserves.
 * Without a GPU (or CUDA) every test says "# SKIP no GPU". */
#include "unit.h"
#include "clip_text.h"
#include "clip_text_cuda.h"
#include "device.h"

#ifdef SYNTHCXR_CUDA
#include "gpu_test.h"

static st_file *ref;

static double clip_tol(dtype_t dt) { return dt == DTYPE_F32 ? 1e-5 : dt == DTYPE_F16 ? 7e-3 : 7e-2; }

typedef struct tiny {
    diffusers_model *dm;
    clip_text_model *m;
    tensor *ids;
    int B;
} tiny;

static tiny tiny_open(const char *key, const char *folder, dtype_t round_to) {
    tiny t;
    t.dm = diffusers_open(fixture_path(folder), DIFFUSERS_PREFER_FP32);
    t.m = clip_text_load(diffusers_part_get(t.dm, "text_encoder"), round_to);
    char name[64];
    snprintf(name, sizeof name, "%s.ids", key);
    t.ids = st_load(ref, name);
    CHECK(t.ids->dtype == DTYPE_I32 && t.ids->ndim == 2 && t.ids->shape[1] == 77);
    t.B = (int)t.ids->shape[0];
    return t;
}
static void tiny_close(tiny *t) {
    tensor_free(t->ids);
    clip_text_free(t->m);
    diffusers_close(t->dm);
}

static void check_model(const char *key, const char *folder) {
    for (int d = 0; d < 3; d++) {
        dtype_t dt = gt_dtypes[d];
        tiny t = tiny_open(key, folder, dt);
        const int T = 77, D = t.m->cfg.hidden;
        const size_t n = (size_t)t.B * T * D, row = (size_t)T * D;
        clip_text_cuda *g = clip_text_cuda_new(t.m, dt);
        float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got), *again = xmalloc(n * sizeof *again);
        for (int skip = 0; skip <= 2; skip++) {
            clip_text_forward(t.m, want, t.ids->data, t.B, T, skip);
            clip_text_cuda_forward(g, got, t.ids->data, t.B, T, skip);
            char what[160];
            snprintf(what, sizeof what, "%s clip skip %d (B=%d) gpu vs cpu", key, skip, t.B);
            gt_compare(what, dt, got, want, n, clip_tol(dt));
            clip_text_cuda_forward(g, again, t.ids->data, t.B, T, skip);
            EXPECT(!memcmp(again, got, n * sizeof *got), "%s %s: a second pass differs", what, dtype_name(dt));
            /* each prompt alone */
            for (int b = 0; b < t.B; b++)
                clip_text_cuda_forward(g, again + b * row, (int32_t *)t.ids->data + (size_t)b * T, 1, T, skip);
            snprintf(what, sizeof what, "%s clip skip %d batch %d vs 1 at a time", key, skip, t.B);
            gt_compare(what, dt, again, got, n, dt == DTYPE_F32 ? 1e-5 : clip_tol(dt));
        }
        if (dt == DTYPE_F32) {
            char name[64];
            snprintf(name, sizeof name, "%s.hidden", key);
            clip_text_cuda_forward(g, got, t.ids->data, t.B, T, 0);
            expect_close_fixture(ref, name, got, n, 1e-4);
        }
        free(want), free(got), free(again);
        clip_text_cuda_free(g);
        tiny_close(&t);
    }
}

static void test_sd1(void) {
    if (!have_gpu()) return;
    check_model("sd1", "models/tiny-sd1");
}
static void test_sd2(void) {
    if (!have_gpu()) return;
    check_model("sd2", "models/tiny-sd2");
}

/* With all but some 64 MiB of the device taken, a batch of
 * CLIP_TEXT_CUDA_MAX_BATCH prompts (80 MB of arena for tiny sd2 in f16) is
 * refused with the sizes, the process goes on, and the batch the planner
 * names reserves. */
static void test_oom(void) {
    if (!have_gpu()) return;
    tiny t = tiny_open("sd2", "models/tiny-sd2", DTYPE_F16);
    const clip_text_config *c = &t.m->cfg;
    clip_text_cuda *g = clip_text_cuda_new(t.m, DTYPE_F16);
    size_t fr = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &total));
    size_t keep = CLIP_TEXT_CUDA_RESERVE + ((size_t)64 << 20);
    void *hog = fr > keep ? cuda_malloc(fr - keep) : NULL;
    clip_text_cuda_oom oom = {0};
    int ok = clip_text_cuda_reserve(g, CLIP_TEXT_CUDA_MAX_BATCH, 77, &oom);
    printf("# tiny sd2 f16, %d prompts: need %zu, avail %zu, free %zu, total %zu\n", CLIP_TEXT_CUDA_MAX_BATCH,
           oom.need, oom.avail, oom.free, oom.total);
    EXPECT(!ok && oom.need > oom.avail && oom.free <= oom.total && oom.total > 0, "%d prompts reserved?",
           CLIP_TEXT_CUDA_MAX_BATCH);
    int fit = clip_text_cuda_max_batch(c, DTYPE_F16, 77, oom.avail);
    printf("# the largest batch that fits: %d\n", fit);
    EXPECT(fit >= 1 && fit < CLIP_TEXT_CUDA_MAX_BATCH, "fit %d", fit);
    if (fit >= 1) {
        EXPECT(clip_text_cuda_reserve(g, fit, 77, &oom), "batch %d does not reserve", fit);
        /* and runs */
        float *out = xmalloc((size_t)77 * c->hidden * sizeof *out);
        clip_text_cuda_forward(g, out, t.ids->data, 1, 77, 0);
        free(out);
    }
    cuda_free(hog);
    clip_text_cuda_free(g);
    tiny_close(&t);
}

#else /* CPU-only build */

static void no_cuda(void) { unit_skip("no GPU (built without CUDA)"); }
#define test_sd1 no_cuda
#define test_sd2 no_cuda
#define test_oom no_cuda

#endif

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
#ifdef SYNTHCXR_CUDA
    ref = st_open(fixture_path("clip_text_ref.safetensors"));
#endif
    RUN(test_sd1);
    RUN(test_sd2);
    RUN(test_oom);
#ifdef SYNTHCXR_CUDA
    st_close(ref);
#endif
    return unit_done();
}
