"""Reference draws for libcommon/rng.c: torch.randn / torch.rand from a CPU
torch.Generator seeded with manual_seed, for several seeds and sizes (both
sides of the 16-element switch between torch's two normal paths), in float32,
float16 and bfloat16, plus sequences of successive draws from one generator
(the mt19937 stream and the cached second Box-Muller value carry over).

The float32 path for n >= 16 depends on the CPU kernel torch dispatches to:
on x86 with AVX2 or AVX-512 it is the AVX2 kernel (avx_mathfun polynomials),
which is what rng.c reproduces, so this script refuses to run elsewhere."""
import torch

from oracle_util import save

cap = torch.backends.cpu.get_cpu_capability()
if cap not in ("AVX2", "AVX512"):
    raise SystemExit(f"make_rng.py: torch runs the {cap} kernels here; the fixture needs AVX2 or AVX512")

SEEDS = [0, 1, 42, 2**32 + 5, 9223372036854775783]
SMALL = [1, 3, 15, 16, 17, 100]
t = {}


def gen(seed):
    return torch.Generator("cpu").manual_seed(seed)


for s in SEEDS:
    for n in SMALL:
        t[f"randn_f32_s{s}_n{n}"] = torch.randn(n, generator=gen(s), dtype=torch.float32)
        t[f"randn_f16_s{s}_n{n}"] = torch.randn(n, generator=gen(s), dtype=torch.float16)
        t[f"randn_bf16_s{s}_n{n}"] = torch.randn(n, generator=gen(s), dtype=torch.bfloat16)
    for n in [1, 17, 100]:
        t[f"rand_f32_s{s}_n{n}"] = torch.rand(n, generator=gen(s), dtype=torch.float32)
        t[f"rand_f16_s{s}_n{n}"] = torch.rand(n, generator=gen(s), dtype=torch.float16)
        t[f"rand_bf16_s{s}_n{n}"] = torch.rand(n, generator=gen(s), dtype=torch.bfloat16)

# torch.rand in 16 bits replaces a uniform that rounds up to 1.0 by 0: draw
# enough that this happens (asserted), so the test covers it.
for name, dt, n in [("f16", torch.float16, 8192), ("bf16", torch.bfloat16, 2048)]:
    u = torch.rand(n, generator=gen(3), dtype=torch.float32)
    assert (u.to(dt) == 1).any(), f"rand {name}: no uniform rounds to 1 with seed 3, n {n}"
    t[f"rand_{name}_s3_n{n}"] = torch.rand(n, generator=gen(3), dtype=dt)
    assert ((t[f"rand_{name}_s3_n{n}"] == 0) == ((u.to(dt) == 1) | (u == 0))).all()

# tensor.normal_(mean, std) on float32, both paths (mean and std enter the
# n >= 16 path as floats with a fused multiply-add, the n < 16 one as doubles).
for n in [5, 100]:
    t[f"normal_s42_n{n}_m0.5_sd2.5"] = torch.empty(n).normal_(0.5, 2.5, generator=gen(42))
    t[f"normal_s42_n{n}_m-3_sd0.1"] = torch.empty(n).normal_(-3.0, 0.1, generator=gen(42))

# The latent shapes of Stable Diffusion at 512x512 (1,4,64,64) and 768x768
# (1,4,96,96), as diffusers' randn_tensor draws them on the CPU. The 512 one is
# not stored: it is the first half of batch_s42_at_once below (asserted there).
latent512 = torch.randn((1, 4, 64, 64), generator=gen(42), dtype=torch.float32)
t["randn_f32_s42_latent768"] = torch.randn((1, 4, 96, 96), generator=gen(42), dtype=torch.float32)
t["randn_f32_s0_n16384"] = torch.randn(16384, generator=gen(0), dtype=torch.float32)
t["randn_f16_s42_latent512"] = torch.randn((1, 4, 64, 64), generator=gen(42), dtype=torch.float16)
t["randn_bf16_s42_n1000"] = torch.randn(1000, generator=gen(42), dtype=torch.bfloat16)

# Successive draws from one generator: small (cached pair) and large (fill)
# calls interleaved, then rand, then a small draw that must use the value
# cached by the first small call across the fill.
g = gen(7)
seq = [torch.randn(3, generator=g), torch.randn(16, generator=g), torch.randn(1, generator=g),
       torch.randn(5, generator=g), torch.randn(20, generator=g), torch.rand(4, generator=g),
       torch.randn(1, generator=g), torch.randn(33, generator=g, dtype=torch.float16),
       torch.randn(2, generator=g, dtype=torch.float16), torch.randn(2, generator=g)]
for i, v in enumerate(seq):
    t[f"seq_s7_{i}"] = v

# A batch drawn at once vs record by record. Each call draws its uniforms
# and transforms blocks of 16, so for sizes that are multiples of 16 (every
# SD latent) the two agree; for other sizes the tail recomputation differs.
# The records of 4x64x64 are not stored: torch's are bit for bit the two halves
# of batch_s42_at_once (asserted here), which the C test compares its records with.
t["batch_s42_at_once"] = torch.randn((2, 4, 64, 64), generator=gen(42))
g = gen(42)
rec0 = torch.randn((1, 4, 64, 64), generator=g)
rec1 = torch.randn((1, 4, 64, 64), generator=g)
bits = lambda x: x.view(torch.int32)  # noqa: E731
assert bits(rec0).equal(bits(t["batch_s42_at_once"][0:1])) and bits(rec1).equal(bits(t["batch_s42_at_once"][1:2]))
assert bits(latent512).equal(bits(rec0))
t["batch17_s42_at_once"] = torch.randn((2, 17), generator=gen(42))
g = gen(42)
t["batch17_s42_rec0"] = torch.randn((1, 17), generator=g)
t["batch17_s42_rec1"] = torch.randn((1, 17), generator=g)
# Six small values at once vs two calls of three: the same stream.
t["small_s42_at_once"] = torch.randn(6, generator=gen(42))
g = gen(42)
t["small_s42_rec0"] = torch.randn(3, generator=g)
t["small_s42_rec1"] = torch.randn(3, generator=g)

# The raw engine words: torch 2.15's randint draws random64() (two mt19937
# words, the first one high) whatever the range, so randint(0, 2**31) is its
# low word mod 2**31 and randint(0, 2**62) shows the high word too. (Single
# words, random(), are what the float uniforms above use.)
t["randint31_s42_n8"] = torch.randint(0, 2**31, (8,), generator=gen(42), dtype=torch.int64)
t["randint62_s42_n8"] = torch.randint(0, 2**62, (8,), generator=gen(42), dtype=torch.int64)

save("rng.safetensors", t, {"cpu_capability": cap})
