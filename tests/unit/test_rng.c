/* test_rng.c — libcommon/rng.c against torch.randn / torch.rand drawn with a
 * seeded CPU torch.Generator (tests/oracle/make_rng.py -> rng.safetensors).
 * Every comparison is of bit patterns: 0 mismatching elements allowed. */
#include "unit.h"
#include "rng.h"

static st_file *fx;

static const uint64_t seeds[] = {0, 1, 42, (UINT64_C(1) << 32) + 5, UINT64_C(9223372036854775783)};
#define NSEEDS (sizeof seeds / sizeof seeds[0])

/* Compares n elements of elem bytes each (2, 4 or 8) with fixture tensor
 * `name`, bit for bit; reports the count of mismatches and the first one. */
static int expect_bits(const char *name, const void *got, int64_t n, size_t elem) {
    const st_entry *e = st_get(fx, name);
    if (e->elem_size != elem || e->nbytes != (size_t)n * elem) {
        unit_fail("%s: fixture has %zu bytes of %zu-byte elements, computed %lld of %zu bytes", name,
                  e->nbytes, e->elem_size, (long long)n, elem);
        return 0;
    }
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp((const char *)got + i * elem, (const char *)e->data + i * elem, elem)) {
            if (first < 0) first = i;
            bad++;
        }
    }
    if (bad) {
        uint64_t g = 0, w = 0;
        memcpy(&g, (const char *)got + first * elem, elem);
        memcpy(&w, (const char *)e->data + first * elem, elem);
        unit_fail("%s: %lld of %lld elements differ; first at %lld: got 0x%llx, want 0x%llx", name,
                  (long long)bad, (long long)n, (long long)first, (unsigned long long)g, (unsigned long long)w);
        return 0;
    }
    return 1;
}

/* expect_bits against the first n elements of a longer fixture tensor. */
static int expect_bits_head(const char *name, const void *got, int64_t n, size_t elem) {
    const st_entry *e = st_get(fx, name);
    if (e->elem_size != elem || e->nbytes < (size_t)n * elem) {
        unit_fail("%s: fixture has %zu bytes of %zu-byte elements, computed %lld of %zu bytes", name, e->nbytes,
                  e->elem_size, (long long)n, elem);
        return 0;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += memcmp((const char *)got + i * elem, (const char *)e->data + i * elem, elem) != 0;
    if (bad) unit_fail("%s (first %lld): %lld elements differ", name, (long long)n, (long long)bad);
    return !bad;
}

static void test_engine_words(void) {
    torch_gen g;
    int64_t w[8];
    torch_gen_seed(&g, 42);
    for (int i = 0; i < 8; i++) w[i] = (int64_t)(torch_gen_random64(&g) % (UINT64_C(1) << 31));
    expect_bits("randint31_s42_n8", w, 8, 8);
    torch_gen_seed(&g, 42);
    for (int i = 0; i < 8; i++) w[i] = (int64_t)(torch_gen_random64(&g) % (UINT64_C(1) << 62));
    expect_bits("randint62_s42_n8", w, 8, 8);
    /* The reference mt19937 check value: the 10000th word for seed 5489. */
    torch_gen_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = torch_gen_random(&g);
    EXPECT(v == 4123659995u, "10000th mt19937 word for seed 5489 is %u, want 4123659995", v);
}

static const int small_n[] = {1, 3, 15, 16, 17, 100};

static void test_randn_f32(void) {
    float out[100];
    char name[96];
    for (size_t s = 0; s < NSEEDS; s++)
        for (size_t k = 0; k < sizeof small_n / sizeof small_n[0]; k++) {
            torch_gen g;
            torch_gen_seed(&g, seeds[s]);
            torch_randn_f32(&g, out, small_n[k]);
            snprintf(name, sizeof name, "randn_f32_s%llu_n%d", (unsigned long long)seeds[s], small_n[k]);
            expect_bits(name, out, small_n[k], 4);
        }
}

static void test_randn_16bit(void) {
    uint16_t out[100];
    char name[96];
    for (int bf = 0; bf < 2; bf++)
        for (size_t s = 0; s < NSEEDS; s++)
            for (size_t k = 0; k < sizeof small_n / sizeof small_n[0]; k++) {
                torch_gen g;
                torch_gen_seed(&g, seeds[s]);
                (bf ? torch_randn_bf16 : torch_randn_f16)(&g, out, small_n[k]);
                snprintf(name, sizeof name, "randn_%s_s%llu_n%d", bf ? "bf16" : "f16",
                         (unsigned long long)seeds[s], small_n[k]);
                expect_bits(name, out, small_n[k], 2);
            }
}

static void test_rand(void) {
    const int ns[] = {1, 17, 100};
    float f[100];
    uint16_t h[100];
    char name[96];
    for (size_t s = 0; s < NSEEDS; s++)
        for (size_t k = 0; k < 3; k++) {
            torch_gen g;
            const char *kinds[] = {"f32", "f16", "bf16"};
            for (int t = 0; t < 3; t++) {
                torch_gen_seed(&g, seeds[s]);
                snprintf(name, sizeof name, "rand_%s_s%llu_n%d", kinds[t], (unsigned long long)seeds[s], ns[k]);
                if (t == 0) { torch_rand_f32(&g, f, ns[k]); expect_bits(name, f, ns[k], 4); }
                if (t == 1) { torch_rand_f16(&g, h, ns[k]); expect_bits(name, h, ns[k], 2); }
                if (t == 2) { torch_rand_bf16(&g, h, ns[k]); expect_bits(name, h, ns[k], 2); }
            }
        }
}

/* tensor.normal_(mean, std) on float32, both paths. */
static void test_normal_mean_std(void) {
    const struct { double mean, std; const char *tag; } ms[] = {{0.5, 2.5, "m0.5_sd2.5"}, {-3.0, 0.1, "m-3_sd0.1"}};
    const int ns[] = {5, 100};
    float out[100];
    char name[64];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            torch_gen g;
            torch_gen_seed(&g, 42);
            torch_normal_f32(&g, out, ns[k], ms[i].mean, ms[i].std);
            snprintf(name, sizeof name, "normal_s42_n%d_%s", ns[k], ms[i].tag);
            expect_bits(name, out, ns[k], 4);
        }
}

/* 16-bit rand: uniforms that round up to 1.0 come out as 0 (the fixture's
 * draws contain some, which make_rng.py asserts). */
static void test_rand_16bit_clamp(void) {
    enum { NH = 8192, NB = 2048 };
    uint16_t *h = xmalloc(NH * sizeof *h);
    float *u = xmalloc(NH * sizeof *u);
    torch_gen g;
    torch_gen_seed(&g, 3);
    torch_rand_f16(&g, h, NH);
    expect_bits("rand_f16_s3_n8192", h, NH, 2);
    torch_gen_seed(&g, 3);
    torch_rand_f32(&g, u, NH);
    int clamped = 0;
    for (int i = 0; i < NH; i++) clamped += f32_to_f16(u[i]) == 0x3c00 && h[i] == 0;
    EXPECT(clamped > 0, "no clamped value in the f16 draw");
    torch_gen_seed(&g, 3);
    torch_rand_bf16(&g, h, NB);
    expect_bits("rand_bf16_s3_n2048", h, NB, 2);
    free(u);
    free(h);
}

/* The initial latents of Stable Diffusion (diffusers randn_tensor on the CPU). */
static void test_latents(void) {
    struct { const char *name; uint64_t seed; dtype_t dt; int64_t shape[4]; } cases[] = {
        {"randn_f32_s42_latent768", 42, DTYPE_F32, {1, 4, 96, 96}},
        {"randn_f32_s0_n16384", 0, DTYPE_F32, {1, 1, 1, 16384}},
        {"randn_f16_s42_latent512", 42, DTYPE_F16, {1, 4, 64, 64}},
        {"randn_bf16_s42_n1000", 42, DTYPE_BF16, {1, 1, 1, 1000}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        torch_gen g;
        torch_gen_seed(&g, cases[i].seed);
        tensor *t = tensor_new(cases[i].dt, 4, cases[i].shape);
        torch_randn_tensor(&g, t);
        expect_bits(cases[i].name, t->data, tensor_numel(t), dtype_size(t->dtype));
        tensor_free(t);
    }
    /* 512x512: torch's (1, 4, 64, 64) draw is the first half of batch_s42_at_once
     * (make_rng.py asserts it). */
    torch_gen g;
    torch_gen_seed(&g, 42);
    tensor *t = tensor_new(DTYPE_F32, 4, (int64_t[]){1, 4, 64, 64});
    torch_randn_tensor(&g, t);
    expect_bits_head("batch_s42_at_once", t->data, tensor_numel(t), 4);
    tensor_free(t);
}

/* Successive calls on one generator continue the stream as torch does,
 * including the cached second value of the n < 16 path. */
static void test_sequence(void) {
    torch_gen g;
    torch_gen_seed(&g, 7);
    float f[64];
    uint16_t h[64];
    const int n[] = {3, 16, 1, 5, 20, 4, 1, 33, 2, 2};
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "seq_s7_%d", i);
        if (i == 5) {
            torch_rand_f32(&g, f, n[i]);
            expect_bits(name, f, n[i], 4);
        } else if (i == 7 || i == 8) {
            torch_randn_f16(&g, h, n[i]);
            expect_bits(name, h, n[i], 2);
        } else {
            torch_randn_f32(&g, f, n[i]);
            expect_bits(name, f, n[i], 4);
        }
    }
}

/* A batch drawn at once vs record by record: torch gives the same numbers
 * when the record size is a multiple of 16 (each SD latent) and different
 * ones otherwise (the recomputed tail); both ways must match torch. */
static void test_batch(void) {
    enum { N = 4 * 64 * 64 };
    float *all = xmalloc(2 * N * sizeof *all), *rec = xmalloc(2 * N * sizeof *rec);
    torch_gen g;
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, all, 2 * N);
    expect_bits("batch_s42_at_once", all, 2 * N, 4);
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, rec, N);
    torch_randn_f32(&g, rec + N, N);
    /* torch's records are the halves of its batch (make_rng.py asserts it) */
    expect_bits("batch_s42_at_once", rec, 2 * N, 4);
    EXPECT(!memcmp(all, rec, 2 * N * sizeof *all), "a batch of latents differs from its records");
    float b34[34], r17[34];
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, b34, 34);
    expect_bits("batch17_s42_at_once", b34, 34, 4);
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, r17, 17);
    torch_randn_f32(&g, r17 + 17, 17);
    expect_bits("batch17_s42_rec0", r17, 17, 4);
    expect_bits("batch17_s42_rec1", r17 + 17, 17, 4);
    EXPECT(memcmp(b34, r17, sizeof b34) != 0, "records of 17 drawn one by one equal the batch of 34");
    float s6[6], s3[6];
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, s6, 6);
    expect_bits("small_s42_at_once", s6, 6, 4);
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, s3, 3);
    torch_randn_f32(&g, s3 + 3, 3);
    expect_bits("small_s42_rec0", s3, 3, 4);
    expect_bits("small_s42_rec1", s3 + 3, 3, 4);
    free(all);
    free(rec);
}

/* Reseeding restarts the stream and drops the cached value. */
static void test_reseed(void) {
    torch_gen g;
    float a[3], b[3];
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, a, 3);            /* leaves a cached value */
    torch_gen_seed(&g, 42);
    torch_randn_f32(&g, b, 3);
    EXPECT(!memcmp(a, b, sizeof a), "reseeding does not restart the stream");
}

static void randn_i32(void *arg) {
    (void)arg;
    torch_gen g;
    torch_gen_seed(&g, 1);
    int32_t buf[4];
    tensor t = {.dtype = DTYPE_I32, .mem = MEM_CPU, .ndim = 1, .shape = {4}, .data = buf};
    torch_randn_tensor(&g, &t);   /* on the stack: the child dies, nothing to leak */
}

static void test_bad_dtype(void) {
    expect_dies("randn into i32", randn_i32, NULL, 2, "dtype i32 is not a floating type");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("rng.safetensors"));
    RUN(test_engine_words);
    RUN(test_randn_f32);
    RUN(test_randn_16bit);
    RUN(test_rand);
    RUN(test_normal_mean_std);
    RUN(test_rand_16bit_clamp);
    RUN(test_latents);
    RUN(test_sequence);
    RUN(test_batch);
    RUN(test_reseed);
    RUN(test_bad_dtype);
    st_close(fx);
    return unit_done();
}
