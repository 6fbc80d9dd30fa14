"""Reference conversions for libcommon/tensor.c: float32 -> float16 / bfloat16
by torch's .to() on edge values (zeros, subnormals, rounding ties, overflow,
inf, nan payloads) and on random bit patterns, and float16 / bfloat16 -> float32
for every 16-bit pattern. Inputs are stored next to torch's outputs, as bits,
except the 16-bit patterns: element i of all_{f16,bf16}_to_f32 is pattern i
(0x0000 .. 0xffff), which the C test makes itself.
Torch's nan outputs depend on the code path (vector body, tail, tensor size:
bfloat16 nan comes out 0xffff, a 2-element half->float gives 0x7fffffff), so
the C test asks only that a nan stays a nan."""
import torch

from oracle_util import save

torch.manual_seed(0)


def from_bits(bits):
    """float32 tensor with these bit patterns (no trip through Python floats,
    which would quieten the signalling nans)."""
    b = torch.tensor(bits, dtype=torch.int64) & 0xffffffff
    return torch.where(b >= 2**31, b - 2**32, b).to(torch.int32).view(torch.float32)


edge_bits = [
    0x00000000, 0x80000000,                          # +0, -0
    0x7f800000, 0xff800000,                          # inf
    0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001,  # quiet / signalling nan
    0x7fffffff, 0x7fa00000, 0x7f802000, 0x7fbfffff, 0x7f8fffff, 0xffffffff,
    0x00000001, 0x80000001, 0x007fffff, 0x00800000,  # float subnormals, min normal
    0x7f7fffff, 0xff7fffff,                          # float max
]
edge_vals = [
    1.0, -1.0, 0.5, 2.0, 3.0, 0.1, -0.1, 1.0 / 3.0,
    65504.0, -65504.0, 65519.0, 65519.996, 65520.0, -65520.0, 65536.0, 1e5, 1e38,
    2.0**-14, 2.0**-14 * (1 - 2.0**-12), 2.0**-14 * (1 - 2.0**-11),  # min normal half and just below
    2.0**-24, -2.0**-24, 2.0**-25, -2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-25, 5 * 2.0**-25,
    2.0**-26, 2.0**-24 * 1.5, 2.0**-24 * 2.5, 2.0**-23 * 1023.5, 2.0**-15,
    1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-11 + 2.0**-23, 1 - 2.0**-12, 2048 + 1, 2048 + 3,
    1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-23, 255.5, 256.5, 257.5,
    3.3895314e38, 3.3961776e38, 3.4028235e38,        # bf16 max, the tie above it, float max
    2.0**-126, 2.0**-133, 2.0**-133 * 1.5, 2.0**-149,
]
vals = from_bits(edge_bits)
vals = torch.cat([vals, torch.tensor(edge_vals, dtype=torch.float64).to(torch.float32)])
# Every exponent of float32 with random mantissas and signs, then values near
# 16-bit rounding ties (low bits 0x1000 / 0x8000 exactly and one off).
rbits = torch.randint(0, 2**32, (4096,), dtype=torch.int64)
ties = torch.randint(0, 2**32, (512,), dtype=torch.int64)
ties16 = (ties & ~0xffff) | 0x8000
ties13 = (ties & ~0x1fff) | 0x1000
near = torch.cat([ties16, ties16 + 1, ties16 - 1, ties13, ties13 + 1, ties13 - 1])
vals = torch.cat([vals, from_bits(torch.cat([rbits, near]).tolist()), torch.randn(1000) * 1000,
                  torch.randn(1000) * 1e-5])

all16 = torch.arange(65536, dtype=torch.int32)
all16 = torch.where(all16 >= 2**15, all16 - 2**16, all16).to(torch.int16)

save("tensor_ref.safetensors", {
    "f32_in": vals,
    "f32_to_f16": vals.to(torch.float16),
    "f32_to_bf16": vals.to(torch.bfloat16),
    "all_f16_to_f32": all16.view(torch.float16).to(torch.float32),
    "all_bf16_to_f32": all16.view(torch.bfloat16).to(torch.float32),
})
