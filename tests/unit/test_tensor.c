/* test_tensor.c — the f32 <-> f16 / bf16 conversions of libcommon/tensor.c
 * against torch's .to() (tests/oracle/make_tensor_ref.py -> tensor_ref.safetensors):
 * bit for bit on edge values (zeros, subnormals, ties, overflow, inf) and on
 * random bit patterns, and on every 16-bit pattern the other way. A nan must
 * stay a nan; its payload and sign are not compared, because torch's own nan
 * bits depend on its code path (see the oracle script). */
#include "unit.h"

static st_file *fx;

static const void *fixture_data(const char *name, size_t elem, size_t *n) {
    const st_entry *e = st_get(fx, name);
    CHECKF(e->elem_size == elem, "%s: %zu-byte elements, expected %zu", name, e->elem_size, elem);
    *n = e->nbytes / elem;
    return e->data;
}

static uint32_t rd32(const void *p, size_t i) { uint32_t v; memcpy(&v, (const char *)p + 4 * i, 4); return v; }
static uint16_t rd16(const void *p, size_t i) { uint16_t v; memcpy(&v, (const char *)p + 2 * i, 2); return v; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static int f16_isnan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static int bf16_isnan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

/* f32 -> 16 bits: counts mismatches (nan: only nan-ness), prints the first few. */
static void check_from_f32(const char *out_name, uint16_t (*conv)(float), int (*isnan16)(uint16_t)) {
    size_t n, m;
    const void *in = fixture_data("f32_in", 4, &n);
    const void *want = fixture_data(out_name, 2, &m);
    CHECK(n == m);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = rd32(in, i);
        uint16_t got = conv(bits_f32(x)), w = rd16(want, i);
        int ok = isnan(bits_f32(x)) ? isnan16(got) && isnan16(w) : got == w;
        if (!ok && bad++ < 5)
            unit_fail("%s: input 0x%08x (%.9g): got 0x%04x, torch 0x%04x", out_name, x, (double)bits_f32(x), got, w);
    }
    EXPECT(bad == 0, "%s: %zu of %zu values differ from torch", out_name, bad, n);
}

static void test_f32_to_f16(void) { check_from_f32("f32_to_f16", f32_to_f16, f16_isnan); }
static void test_f32_to_bf16(void) { check_from_f32("f32_to_bf16", f32_to_bf16, bf16_isnan); }

/* 16 bits -> f32 for all 65536 patterns: element i of the fixture is torch's
 * conversion of pattern i (the oracle's input is arange(65536)). */
static void check_to_f32(const char *out_name, float (*conv)(uint16_t), int (*isnan16)(uint16_t)) {
    size_t n;
    const void *want = fixture_data(out_name, 4, &n);
    CHECK(n == 65536);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)i;
        uint32_t got = f32_bits(conv(h)), w = rd32(want, i);
        int ok = isnan16(h) ? isnan(bits_f32(got)) && isnan(bits_f32(w)) : got == w;
        if (!ok && bad++ < 5) unit_fail("%s: 0x%04x: got 0x%08x, torch 0x%08x", out_name, h, got, w);
    }
    EXPECT(bad == 0, "%s: %zu of %zu values differ from torch", out_name, bad, n);
}

static void test_f16_to_f32(void) { check_to_f32("all_f16_to_f32", f16_to_f32, f16_isnan); }
static void test_bf16_to_f32(void) { check_to_f32("all_bf16_to_f32", bf16_to_f32, bf16_isnan); }

/* The array forms and the tensor copies use the same scalar conversions. */
static void test_convert_arrays(void) {
    size_t n, m;
    const void *in = fixture_data("f32_in", 4, &n);
    const void *want = fixture_data("f32_to_f16", 2, &m);
    float *x = xmalloc(n * sizeof *x);
    memcpy(x, in, n * 4);
    tensor *t = tensor_view(DTYPE_F32, 1, (int64_t[]){(int64_t)n}, x);
    tensor *h = tensor_from_f32(t, DTYPE_F16);
    tensor *back = tensor_to_f32(h);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t g = ((uint16_t *)h->data)[i], w = rd16(want, i);
        if (isnan(x[i]) ? !f16_isnan(g) : g != w) bad++;
        float b = ((float *)back->data)[i];
        if (!isnan(x[i]) && f32_bits(b) != f32_bits(f16_to_f32(g))) bad++;
    }
    EXPECT(bad == 0, "tensor_from_f32 / tensor_to_f32 (f16): %zu mismatches", bad);
    tensor_free(back);
    tensor_free(h);
    tensor_free(t);
    free(x);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("tensor_ref.safetensors"));
    RUN(test_f32_to_f16);
    RUN(test_f32_to_bf16);
    RUN(test_f16_to_f32);
    RUN(test_bf16_to_f32);
    RUN(test_convert_arrays);
    st_close(fx);
    return unit_done();
}
