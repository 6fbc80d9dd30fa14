/* rng.c — PyTorch's CPU generator (mt19937) and its randn / rand, reproduced
 * bit for bit; see rng.h for the algorithm and which torch kernel it follows.
 *
 * Every rounding point matters here. The Box-Muller of 16 values follows the
 * instruction sequence GCC produced for torch's AVX2 NormalFill16<float>
 * (avx_mathfun.h): the same operations in the same order, with fmaf() exactly
 * where that code has a fused multiply-add. Nothing else may be contracted or
 * reassociated, hence the pragmas below (-std=c11 already implies
 * -ffp-contract=off in GCC; this keeps it so whatever the flags). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "no-fast-math")
#endif

#include "rng.h"
#include "common.h"

#include <math.h>
#include <string.h>

/* ---- mt19937 ---------------------------------------------------------------- */

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void torch_gen_seed(torch_gen *g, uint64_t seed) {
    g->seed = seed;
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t i = 1; i < TORCH_MT_N; i++)
        g->state[i] = 1812433253u * (g->state[i - 1] ^ (g->state[i - 1] >> 30)) + i;
    g->left = 1;   /* the first draw twists */
    g->next = 0;
    g->has_normal = 0;
    g->next_normal = 0;
}

static uint32_t mt_twist(uint32_t u, uint32_t v) {
    uint32_t y = (u & MT_UPPER) | (v & MT_LOWER);
    return (y >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_next_state(torch_gen *g) {
    uint32_t *s = g->state;
    int i = 0;
    for (; i < TORCH_MT_N - MT_M; i++) s[i] = s[i + MT_M] ^ mt_twist(s[i], s[i + 1]);
    for (; i < TORCH_MT_N - 1; i++) s[i] = s[i + MT_M - TORCH_MT_N] ^ mt_twist(s[i], s[i + 1]);
    s[TORCH_MT_N - 1] = s[MT_M - 1] ^ mt_twist(s[TORCH_MT_N - 1], s[0]);
    g->left = TORCH_MT_N;
    g->next = 0;
}

uint32_t torch_gen_random(torch_gen *g) {
    if (--g->left == 0) mt_next_state(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t torch_gen_random64(torch_gen *g) {
    uint32_t hi = torch_gen_random(g);
    uint32_t lo = torch_gen_random(g);
    return ((uint64_t)hi << 32) | lo;
}

/* uniform_real_distribution<float>(0, 1): 24 bits, exact in float. */
static float uniform_f32(torch_gen *g) {
    return (float)(torch_gen_random(g) & 0xffffffu) * 0x1p-24f;
}

/* uniform_real_distribution<double>(0, 1): 53 bits, exact in double. */
static double uniform_f64(torch_gen *g) {
    return (double)(torch_gen_random64(g) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

/* ---- the n < 16 path: normal_distribution<double> ------------------------------ */

/* One value of at::normal_distribution<double>(mean, std): the cached second
 * value of the last pair if there is one, else a new pair. */
static double normal_f64(torch_gen *g, double mean, double std) {
    if (g->has_normal) {
        g->has_normal = 0;
        return fma(g->next_normal, std, mean);
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * M_PI * u1;
    double s, c;
    sincos(theta, &s, &c);   /* torch's compiled code calls sincos too */
    g->next_normal = r * s;
    g->has_normal = 1;
    return fma(r * c, std, mean);
}

/* ---- the n >= 16 path: torch's AVX2 Box-Muller, one lane at a time ------------- */

static inline uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The float constants of avx_mathfun.h, by bit pattern (as in the binary). */
#define C_ONE        0x3f800000u   /* 1.0f */
#define C_MIN_NORM   0x00800000u   /* smallest normal float */
#define C_INV_MANT   0x807fffffu   /* ~0x7f800000 */
#define C_HALF       0x3f000000u   /* 0.5f */
#define C_SQRTHF     0x3f3504f3u   /* 0.707106781186547524 */
#define C_LOG_P0     0x3d9021bbu   /* 7.0376836292E-2 */
#define C_LOG_P1     0xbdebd1b8u   /* -1.1514610310E-1 */
#define C_LOG_P2     0x3def251au   /* 1.1676998740E-1 */
#define C_LOG_P3     0xbdfe5d4fu   /* -1.2420140846E-1 */
#define C_LOG_P4     0x3e11e9bfu   /* 1.4249322787E-1 */
#define C_LOG_P5     0xbe2aae50u   /* -1.6668057665E-1 */
#define C_LOG_P6     0x3e4cceacu   /* 2.0000714765E-1 */
#define C_LOG_P7     0xbe7ffffcu   /* -2.4999993993E-1 */
#define C_LOG_P8     0x3eaaaaaau   /* 3.3333331174E-1 */
#define C_LOG_Q1     0xb95e8083u   /* -2.12194440e-4 */
#define C_LOG_Q2     0x3f318000u   /* 0.693359375 */
#define C_FOPI       0x3fa2f983u   /* 4 / pi */
#define C_DP1        0xbf490000u   /* -0.78515625 */
#define C_DP2        0xb97da000u   /* -2.4187564849853515625e-4 */
#define C_DP3        0xb3222169u   /* -3.77489497744594108e-8 */
#define C_COS_P0     0x37ccf5ceu   /* 2.443315711809948E-005 */
#define C_COS_P1     0xbab6061au   /* -1.388731625493765E-003 */
#define C_COS_P2     0x3d2aaaa5u   /* 4.166664568298827E-002 */
#define C_SIN_P0     0xb94ca1f9u   /* -1.9515295891E-4 */
#define C_SIN_P1     0x3c08839eu   /* 8.3321608736E-3 */
#define C_SIN_P2     0xbe2aaaa3u   /* -1.6666654611E-1 */
#define C_TWO_PI     0x40c90fdbu   /* (float)(2 * pi) */

/* log256_ps for one lane (cephes logf). x is in (0, 1] here. */
static float cephes_log(float x0) {
    uint32_t invalid = x0 <= 0.0f ? 0xffffffffu : 0;
    float x = x0 > bitsf(C_MIN_NORM) ? x0 : bitsf(C_MIN_NORM);
    int32_t ex = (int32_t)(fbits(x) >> 23) - 0x7f;
    x = bitsf((fbits(x) & C_INV_MANT) | C_HALF);   /* mantissa in [0.5, 1) */
    float e = (float)ex + 1.0f;
    uint32_t mask = x < bitsf(C_SQRTHF) ? 0xffffffffu : 0;
    float tmp = bitsf(fbits(x) & mask);
    x = x - 1.0f;
    e = e - bitsf(C_ONE & mask);
    x = x + tmp;
    float z = x * x;
    float y = fmaf(bitsf(C_LOG_P0), x, bitsf(C_LOG_P1));
    y = fmaf(y, x, bitsf(C_LOG_P2));
    y = fmaf(y, x, bitsf(C_LOG_P3));
    y = fmaf(y, x, bitsf(C_LOG_P4));
    y = fmaf(y, x, bitsf(C_LOG_P5));
    y = fmaf(y, x, bitsf(C_LOG_P6));
    y = fmaf(y, x, bitsf(C_LOG_P7));
    y = fmaf(y, x, bitsf(C_LOG_P8));
    y = y * x;
    y = fmaf(y, z, e * bitsf(C_LOG_Q1));
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, bitsf(C_LOG_Q2), x);
    return bitsf(fbits(x) | invalid);
}

/* sincos256_ps for one lane (cephes sinf/cosf with the 4/pi reduction). */
static void cephes_sincos(float x0, float *s, float *c) {
    uint32_t sign_sin = fbits(x0) & 0x80000000u;
    float x = bitsf(fbits(x0) & 0x7fffffffu);
    float y = x * bitsf(C_FOPI);
    int32_t j = (int32_t)y;           /* truncation, as cvttps2dq */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    uint32_t poly_mask = (j & 2) == 0 ? 0xffffffffu : 0;
    /* extended precision reduction x - y * pi/4, in three fused steps */
    x = fmaf(y, bitsf(C_DP1), x);
    x = fmaf(y, bitsf(C_DP2), x);
    x = fmaf(y, bitsf(C_DP3), x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float half_z = z * 0.5f;
    float yc = fmaf(bitsf(C_COS_P0), z, bitsf(C_COS_P1));
    yc = fmaf(yc, z, bitsf(C_COS_P2));
    yc = yc * z;
    yc = fmaf(z, yc, -half_z);
    yc = yc + 1.0f;
    float ys = fmaf(bitsf(C_SIN_P0), z, bitsf(C_SIN_P1));
    ys = fmaf(ys, z, bitsf(C_SIN_P2));
    ys = ys * z;
    ys = fmaf(x, ys, x);
    /* the select: each result is one polynomial plus the other masked to 0 */
    float ysin2 = bitsf(fbits(ys) & poly_mask);
    float ysin1 = bitsf(fbits(yc) & ~poly_mask);
    float rs = ys - ysin2;
    float rc = yc - ysin1;
    *s = bitsf(fbits(ysin1 + ysin2) ^ sign_sin);
    *c = bitsf(fbits(rs + rc) ^ sign_cos);
}

/* NormalFill16<float> on d[0..15] (uniforms in [0, 1)), in place: lane j uses
 * u1 = 1 - d[j] and u2 = d[j + 8]; cos goes to d[j], sin to d[j + 8]. */
static void normal_fill_16(float *d, float mean, float std) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(cephes_log(u1) * -2.0f);
        float theta = bitsf(C_TWO_PI) * u2;
        float s, c;
        cephes_sincos(theta, &s, &c);
        d[j] = fmaf(radius * c, std, mean);
        d[j + 8] = fmaf(radius * s, std, mean);
    }
}

/* ---- randn ------------------------------------------------------------------------ */

void torch_normal_f32(torch_gen *g, float *out, int64_t n, double mean, double std) {
    if (n <= 0) return;
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) out[i] = (float)normal_f64(g, mean, std);
        return;
    }
    float m = (float)mean, s = (float)std;
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
    for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i, m, s);
    if (n % 16) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        normal_fill_16(tail, m, s);
    }
}

void torch_randn_f32(torch_gen *g, float *out, int64_t n) { torch_normal_f32(g, out, n, 0.0, 1.0); }

/* float16 / bfloat16: the same maths in float, 16 uniforms per block into a
 * buffer, each result rounded to 16 bits (round to nearest even). */
static void randn_16bit(torch_gen *g, uint16_t *out, int64_t n, uint16_t (*round16)(float)) {
    if (n <= 0) return;
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) out[i] = round16((float)normal_f64(g, 0.0, 1.0));
        return;
    }
    float buf[16];
    for (int64_t i = 0; i + 16 <= n; i += 16) {
        for (int k = 0; k < 16; k++) buf[k] = uniform_f32(g);
        normal_fill_16(buf, 0.0f, 1.0f);
        for (int k = 0; k < 16; k++) out[i + k] = round16(buf[k]);
    }
    if (n % 16) {
        for (int k = 0; k < 16; k++) buf[k] = uniform_f32(g);
        normal_fill_16(buf, 0.0f, 1.0f);
        for (int k = 0; k < 16; k++) out[n - 16 + k] = round16(buf[k]);
    }
}

void torch_randn_f16(torch_gen *g, uint16_t *out, int64_t n) { randn_16bit(g, out, n, f32_to_f16); }
void torch_randn_bf16(torch_gen *g, uint16_t *out, int64_t n) { randn_16bit(g, out, n, f32_to_bf16); }

/* ---- rand ------------------------------------------------------------------------- */

void torch_rand_f32(torch_gen *g, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}

/* The float uniform rounded to 16 bits; a value that rounds up to 1.0 (the
 * excluded upper bound) becomes 0, as torch's uniform_kernel does. */
static void rand_16bit(torch_gen *g, uint16_t *out, int64_t n, uint16_t (*round16)(float)) {
    uint16_t one = round16(1.0f), zero = round16(0.0f);
    for (int64_t i = 0; i < n; i++) {
        uint16_t v = round16(uniform_f32(g));
        out[i] = v == one ? zero : v;
    }
}

void torch_rand_f16(torch_gen *g, uint16_t *out, int64_t n) { rand_16bit(g, out, n, f32_to_f16); }
void torch_rand_bf16(torch_gen *g, uint16_t *out, int64_t n) { rand_16bit(g, out, n, f32_to_bf16); }

void torch_randn_tensor(torch_gen *g, tensor *t) {
    CHECKF(t->mem == MEM_CPU, "torch_randn_tensor: the tensor must be in CPU memory");
    int64_t n = tensor_numel(t);
    switch (t->dtype) {
    case DTYPE_F32: torch_randn_f32(g, t->data, n); break;
    case DTYPE_F16: torch_randn_f16(g, t->data, n); break;
    case DTYPE_BF16: torch_randn_bf16(g, t->data, n); break;
    default: die("torch_randn_tensor: dtype %s is not a floating type (f32, f16, bf16)", dtype_name(t->dtype));
    }
}
