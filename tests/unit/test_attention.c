/* test_attention.c — attention_forward against torch's
 * F.scaled_dot_product_attention (tests/oracle/make_kernels2.py): self,
 * cross (SD's text conditioning), causal (CLIP), key padding (BERT), causal
 * with padding and tq != tk, and T = 1024 with head dim 64 and a peaked
 * softmax. At T = 4096 (inputs made here: the memory check needs no reference
 * output) the peak memory is measured in a child process, and the timing is
 * printed. A naive reference that holds the whole score matrix is printed
 * beside each case as a debugging aid only, and gives the timing baseline;
 * pass/fail is against the fixture. */
#include "attention.h"
#include "softmax.h"
#include "unit.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static st_file *fx;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The whole [tq, tk] score matrix per (batch, head): sgemm, mask, softmax, sgemm.
 *   out, q [B, tq, H, D];  k, v [B, tk, H, D];  mask [B, tk] or NULL */
static void naive_attention(float *out, const float *q, const float *k, const float *v, int B, int H, int tq,
                            int tk, int D, float scale, int causal, const float *mask) {
    float *S = xmalloc((size_t)tq * tk * sizeof(float));
    int ld = H * D;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, D, scale, q + (size_t)b * tq * ld + h * D,
                        ld, k + (size_t)b * tk * ld + h * D, ld, 0.0f, S, tk);
            for (int i = 0; i < tq; i++)
                for (int j = 0; j < tk; j++) {
                    if (mask) S[(size_t)i * tk + j] += mask[(size_t)b * tk + j];
                    if (causal && j > i) S[(size_t)i * tk + j] = -INFINITY;
                }
            softmax_forward(S, S, tq, tk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, D, tk, 1.0f, S, tk,
                        v + (size_t)b * tk * ld + h * D, ld, 0.0f, out + (size_t)b * tq * ld + h * D, ld);
        }
    free(S);
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return e / (s > 0 ? s : 1);
}

typedef struct {
    int B, H, tq, tk, D, causal, has_mask;
    tensor *q, *k, *v, *mask, *want;
} acase;

static acase load_case(const char *name) {
    acase c = {0};
    char key[128];
    snprintf(key, sizeof key, "%s.dims", name);
    tensor *dims = st_load_f32(fx, key, 1, (int64_t[]){7});
    float *d = dims->data;
    c.B = (int)d[0], c.H = (int)d[1], c.tq = (int)d[2], c.tk = (int)d[3], c.D = (int)d[4];
    c.causal = (int)d[5], c.has_mask = (int)d[6];
    tensor_free(dims);
    int64_t qs[4] = {c.B, c.tq, c.H, c.D}, ks[4] = {c.B, c.tk, c.H, c.D};
    snprintf(key, sizeof key, "%s.q", name), c.q = st_load_f32(fx, key, 4, qs);
    snprintf(key, sizeof key, "%s.k", name), c.k = st_load_f32(fx, key, 4, ks);
    snprintf(key, sizeof key, "%s.v", name), c.v = st_load_f32(fx, key, 4, ks);
    snprintf(key, sizeof key, "%s.out", name), c.want = st_load_f32(fx, key, 4, qs);
    if (c.has_mask) snprintf(key, sizeof key, "%s.mask", name), c.mask = st_load_f32(fx, key, 2, (int64_t[]){c.B, c.tk});
    return c;
}

static void free_case(acase *c) {
    tensor_free(c->q), tensor_free(c->k), tensor_free(c->v), tensor_free(c->want);
    if (c->mask) tensor_free(c->mask);
}

/* Fixture case `name`: the kernel against torch, and in place (out == q). */
static void run_case(const char *name, double tol) {
    acase c = load_case(name);
    size_t n = (size_t)c.B * c.tq * c.H * c.D;
    float scale = 1.0f / sqrtf((float)c.D);
    const float *mask = c.mask ? c.mask->data : NULL;
    float *out = xmalloc(n * sizeof(float));
    attention_forward(out, c.q->data, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, scale, c.causal, mask);
    double err = max_rel_diff(out, c.want->data, n);
    expect_close(name, out, c.want->data, n, tol);
    /* Debugging aid only: the naive full-matrix reference. */
    float *nv = xmalloc(n * sizeof(float));
    naive_attention(nv, c.q->data, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, scale, c.causal, mask);
    printf("# %s: B %d H %d tq %d tk %d D %d%s%s: max err vs torch %.2e of scale, vs naive %.2e\n", name, c.B,
           c.H, c.tq, c.tk, c.D, c.causal ? " causal" : "", mask ? " key-mask" : "", err,
           max_rel_diff(out, nv, n));
    /* In place: out == q. */
    float *qo = xmalloc(n * sizeof(float));
    memcpy(qo, c.q->data, n * sizeof(float));
    attention_forward(qo, qo, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, scale, c.causal, mask);
    EXPECT(!memcmp(qo, out, n * sizeof(float)), "%s: in place (out == q) differs from out of place", name);
    free(qo), free(nv), free(out);
    free_case(&c);
}

static void test_self(void) { run_case("attn_self", 1e-5); }

/* Called from inside a parallel region (a caller threading over something
 * else), it runs on one thread and gives the same bits. */
static void test_nested(void) {
    acase c = load_case("attn_cross");
    size_t n = (size_t)c.B * c.tq * c.H * c.D;
    float *a = xmalloc(n * sizeof(float)), *b = xmalloc(2 * n * sizeof(float));
    attention_forward(a, c.q->data, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, 0.158f, 0, NULL);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; t++)
        attention_forward(b + t * n, c.q->data, c.k->data, c.v->data, c.B, c.H, c.tq, c.tk, c.D, 0.158f, 0, NULL);
    EXPECT(!memcmp(a, b, n * sizeof(float)) && !memcmp(a, b + n, n * sizeof(float)),
           "nested calls differ from the top-level call");
    free(a), free(b);
    free_case(&c);
}
static void test_cross(void) { run_case("attn_cross", 1e-5); }
static void test_causal(void) { run_case("attn_causal", 1e-5); }
static void test_key_padding(void) { run_case("attn_pad", 1e-5); }
static void test_causal_padding_blocks(void) { run_case("attn_causal_cross", 1e-5); }
static void test_long(void) { run_case("attn_1024", 1e-5); }

/* T = 4096, H = 1, D = 64 self-attention inputs, made here (seeded xorshift,
 * uniform in [-1, 1), q times 4 for a peaked softmax like attn_1024's). */
enum { LT = 4096, LD = 64 };
static float *long_input(uint32_t seed, float mul) {
    float *x = xmalloc((size_t)LT * LD * sizeof(float));
    uint32_t s = seed;
    for (size_t i = 0; i < (size_t)LT * LD; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        x[i] = mul * ((float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f);
    }
    return x;
}

/* T = 4096, D = 64: the peak memory of the call measured in a child process
 * (fork), whose high-water mark starts at what it inherits, so nothing the
 * parent allocated earlier hides the growth. The full score matrix would be
 * 4096 x 4096 x 4 B = 64 MB. The result equals the out-of-place call made
 * afterwards in the parent (and test_4096_timing prints it against the naive
 * version); correctness against torch at length is attn_1024's. Runs first in
 * main: libgomp cannot start a thread team in a child forked after the parent
 * has used one. */
static void test_4096_memory(void) {
    float *q = long_input(1, 4.0f), *k = long_input(2, 1.0f), *v = long_input(3, 1.0f);
    size_t n = (size_t)LT * LD;
    float scale = 1.0f / sqrtf((float)LD);
    float *out = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(out != MAP_FAILED);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        memset(out, 0, n * sizeof(float)); /* touch the output before the baseline */
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = now();
        attention_forward(out, q, k, v, 1, 1, LT, LT, LD, scale, 0, NULL);
        double t1 = now();
        getrusage(RUSAGE_SELF, &r1);
        double res[2] = {(double)(r1.ru_maxrss - r0.ru_maxrss), t1 - t0};
        CHECK(write(pfd[1], res, sizeof res) == (ssize_t)sizeof res);
        _exit(0);
    }
    close(pfd[1]);
    double res[2] = {-1, 0};
    ssize_t got = read(pfd[0], res, sizeof res);
    close(pfd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && got == (ssize_t)sizeof res, "child failed (status %d)", ws);
    double grew_mb = res[0] / 1024.0;
    size_t scratch = attention_scratch_bytes(1, 1, LT, LT, LD);
    printf("# attn_4096: peak RSS grew by %.2f MB during the call (scratch bound %.3f MB; score matrix 64 MB)\n",
           grew_mb, scratch / 1048576.0);
    EXPECT(grew_mb >= 0 && grew_mb < 16.0, "peak RSS grew by %.2f MB (limit 16 MB)", grew_mb);
    EXPECT(scratch < 4u << 20, "scratch bound %zu bytes", scratch);
    /* The child's result is a full one: the same bits as a call made here. */
    float *again = xmalloc(n * sizeof(float));
    attention_forward(again, q, k, v, 1, 1, LT, LT, LD, scale, 0, NULL);
    EXPECT(!memcmp(again, out, n * sizeof(float)), "attn_4096: the child's result differs from the parent's");
    munmap(out, n * sizeof(float));
    free(again), free(q), free(k), free(v);
}

/* Timing at T = 4096, D = 64, H = 1 (a figure): the kernel and the naive
 * full-matrix version, best of 3 after a warm-up. Checked: every call gives the
 * same bits, and they agree with the naive version (sgemm + softmax_forward,
 * both tested against torch) to 1e-5 of the scale. */
static void test_4096_timing(void) {
    float *q = long_input(1, 4.0f), *k = long_input(2, 1.0f), *v = long_input(3, 1.0f);
    size_t n = (size_t)LT * LD;
    float scale = 1.0f / sqrtf((float)LD);
    float *out = xmalloc(n * sizeof(float)), *nv = xmalloc(n * sizeof(float));
    float *first = xmalloc(n * sizeof(float));
    double best[2] = {1e30, 1e30};
    for (int it = 0; it < 4; it++) {
        double t0 = now();
        attention_forward(out, q, k, v, 1, 1, LT, LT, LD, scale, 0, NULL);
        if (!it) memcpy(first, out, n * sizeof(float));
        double t1 = now();
        naive_attention(nv, q, k, v, 1, 1, LT, LT, LD, scale, 0, NULL);
        double t2 = now();
        if (it) best[0] = fmin(best[0], t1 - t0), best[1] = fmin(best[1], t2 - t1);
    }
    double flop = 4.0 * LT * LT * LD;
    printf("# attn_4096 timing (%d threads): blocked %.1f ms (%.1f GFLOP/s), naive full matrix %.1f ms "
           "(%.1f GFLOP/s); blocked vs naive %.2e of scale\n",
           omp_get_max_threads(), best[0] * 1e3, flop / best[0] * 1e-9, best[1] * 1e3, flop / best[1] * 1e-9,
           max_rel_diff(out, nv, n));
    EXPECT(!memcmp(first, out, n * sizeof(float)), "attn_4096: repeated calls differ");
    expect_close("attn_4096 vs naive", out, nv, n, 1e-5);
    free(out), free(nv), free(first), free(q), free(k), free(v);
}

/* A fully masked query row gives zeros (torch: NaN); a row with one visible key copies its value. */
static void test_fully_masked(void) {
    enum { T = 5, D = 4 };
    float q[T * D], k[T * D], v[T * D], out[T * D], mask[T];
    for (int i = 0; i < T * D; i++) q[i] = sinf(i), k[i] = cosf(i), v[i] = (float)i;
    for (int j = 0; j < T; j++) mask[j] = -INFINITY;
    attention_forward(out, q, k, v, 1, 1, T, T, D, 0.5f, 0, mask);
    for (int i = 0; i < T * D; i++) EXPECT(out[i] == 0.0f, "out[%d] = %g, want 0", i, out[i]);
    mask[2] = 0.0f;
    attention_forward(out, q, k, v, 1, 1, T, T, D, 0.5f, 0, mask);
    for (int i = 0; i < T * D; i++) EXPECT(out[i] == v[2 * D + i % D], "out[%d] = %g", i, out[i]);
}

static void bad_dims(void *arg) {
    (void)arg;
    float x[16] = {0};
    attention_forward(x, x, x, x, 1, 1, 0, 4, 4, 1.0f, 0, NULL);
}
static void bad_alias(void *arg) {
    (void)arg;
    float x[16] = {0}, y[16] = {0};
    attention_forward(x, y, x, y, 1, 1, 4, 4, 1, 1.0f, 0, NULL);
}
static void test_bad_arguments(void) {
    expect_dies("tq 0", bad_dims, NULL, 2, "attention_forward: bad dimensions");
    expect_dies("out aliases k", bad_alias, NULL, 2, "must not alias k or v");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("kernels2.safetensors"));
    RUN(test_4096_memory); /* first: see its comment */
    RUN(test_self);
    RUN(test_nested);
    RUN(test_cross);
    RUN(test_causal);
    RUN(test_key_padding);
    RUN(test_causal_padding_blocks);
    RUN(test_long);
    RUN(test_4096_timing);
    RUN(test_fully_masked);
    RUN(test_bad_arguments);
    st_close(fx);
    return unit_done();
}
