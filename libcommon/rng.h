/* rng.h — a seeded generator that reproduces PyTorch's CPU torch.Generator bit
 * for bit: torch.Generator("cpu").manual_seed(seed), then torch.randn /
 * torch.rand on contiguous tensors, successive calls continuing the stream as
 * torch does. `rep2lat --seed 42` thus draws the same initial latents as
 * diffusers' prepare_latents with torch.Generator("cpu").manual_seed(42).
 *
 * What torch does (ATen: CPUGeneratorImpl, MT19937RNGEngine.h,
 * DistributionsHelper.h, native/cpu/DistributionTemplates.h), checked against
 * the torch 2.15 binary and the fixtures of tests/oracle/make_rng.py:
 *   - the engine is mt19937 seeded with the low 32 bits of the seed; random()
 *     is one 32-bit word, random64() two words, the first one high;
 *   - float uniforms take the low 24 bits of one word times 2^-24 (double
 *     uniforms: the low 53 bits of random64() times 2^-53);
 *   - randn with n >= 16 (contiguous): float32 draws one uniform per element,
 *     then Box-Muller on blocks of 16 (element j with j+8, j < 8); if n is not
 *     a multiple of 16 it draws 16 more uniforms and recomputes the last 16
 *     outputs from them. float16/bfloat16 draw 16 float uniforms per block
 *     into a buffer (no uniforms for the partial tail except the 16 fresh
 *     ones), compute in float and round each result to the output type;
 *   - randn with n < 16 uses normal_distribution<double>: two double uniforms
 *     per pair, r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, returns r cos(theta)
 *     and keeps r sin(theta) in the generator for the next value (also across
 *     calls and across n >= 16 calls, which neither use nor clear it);
 *     float16/bfloat16 round the double to float first, then to 16 bits.
 *   - torch.rand: one float uniform per element (float16/bfloat16: rounded
 *     from that float, 1.0 replaced by 0).
 *
 * WHICH KERNEL: the Box-Muller of the n >= 16 path is torch's AVX2 kernel
 * (NormalFill16<float> with avx_mathfun.h's log256_ps / sincos256_ps cephes
 * polynomials, as GCC compiled them: with the multiply-adds fused into FMA).
 * Torch runs that kernel on every x86 CPU with AVX2, AVX-512 ones included
 * (normal_stub is not dispatched to AVX-512). On a CPU without AVX2, or on
 * aarch64, torch runs a scalar kernel (libm logf/cosf/sinf) whose results
 * differ in the last bits; this file does not reproduce that one. The n < 16
 * path calls libm's log1p and sincos as torch does, so it matches torch
 * running against the same C library (glibc) on the same machine.
 * The results do not depend on the CPU running this code: every fused
 * multiply-add is an explicit fma()/fmaf() call and the file is compiled
 * without contraction. */
#ifndef SYNTHCXR_RNG_H
#define SYNTHCXR_RNG_H

#include <stdint.h>

#include "tensor.h"

#define TORCH_MT_N 624

typedef struct torch_gen {
    uint32_t state[TORCH_MT_N];   /* mt19937 state */
    int next;                     /* index of the next word in state */
    int left;                     /* words left before the next twist, plus one */
    uint64_t seed;                /* as given to torch_gen_seed */
    int has_normal;               /* a cached second Box-Muller value is pending */
    double next_normal;           /* that value (normal_distribution<double>) */
} torch_gen;

/* = torch.Generator("cpu").manual_seed(seed): any 64-bit seed; only the low
 * 32 bits reach mt19937 (as in torch); clears the cached normal value. */
void torch_gen_seed(torch_gen *g, uint64_t seed);

/* The engine words torch's distributions use. */
uint32_t torch_gen_random(torch_gen *g);     /* CPUGeneratorImpl::random() */
uint64_t torch_gen_random64(torch_gen *g);   /* CPUGeneratorImpl::random64() */

/* = torch.randn(n, generator=g, dtype=float32) of a contiguous tensor. */
void torch_randn_f32(torch_gen *g, float *out, int64_t n);
/* = tensor.normal_(mean, std, generator=g) on a contiguous float32 tensor. */
void torch_normal_f32(torch_gen *g, float *out, int64_t n, double mean, double std);
/* = torch.randn(n, generator=g, dtype=float16 / bfloat16): raw 16-bit values. */
void torch_randn_f16(torch_gen *g, uint16_t *out, int64_t n);
void torch_randn_bf16(torch_gen *g, uint16_t *out, int64_t n);

/* = torch.rand(n, generator=g, dtype=float32 / float16 / bfloat16). */
void torch_rand_f32(torch_gen *g, float *out, int64_t n);
void torch_rand_f16(torch_gen *g, uint16_t *out, int64_t n);
void torch_rand_bf16(torch_gen *g, uint16_t *out, int64_t n);

/* torch.randn(t.shape, generator=g, dtype=t.dtype) into a contiguous CPU
 * tensor of dtype f32, f16 or bf16; dies for another dtype. */
void torch_randn_tensor(torch_gen *g, tensor *t);

#endif
