"""Reference safetensors file for the C reader: one 4x6 tensor per dtype the
format has, written by the safetensors package, with the float32 values torch
gives for each (expected_<dtype>)."""
import torch

from oracle_util import save

base = torch.arange(24, dtype=torch.float64).reshape(4, 6) * 0.75 - 6.3
t = {}
for name, dt in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16),
                 ("f64", torch.float64)]:
    t[name] = base.to(dt)
for name, dt in [("i32", torch.int32), ("i64", torch.int64), ("i8", torch.int8), ("i16", torch.int16)]:
    t[name] = (base * 3).round().to(dt)
t["u8"] = (base * 5 + 40).round().clamp(0, 255).to(torch.uint8)
t["bool"] = base > 0
for k in list(t):
    t["expected_" + k] = t[k].to(torch.float32)
save("safetensors_ref.safetensors", t)
