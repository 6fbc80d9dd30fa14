"""bench/gpu_diffusers.py — the diffusers side of the GPU benchmark that
`make gpu-check` runs (tools/gpu-check.sh): the UNet of SD 2.1-base and of
SD 1.5 at their real shapes with random weights, fp16, PyTorch's SDPA
attention (diffusers' default processor), classifier-free guidance batches
([uncond, cond] per image), 512x512 images (64x64 latents).

  gpu_diffusers.py [--kinds sd21,sd15] [--steps1 N] [--steps16 N] [--save-dir DIR]

For each model: the seconds per CFG step (one UNet call on 2 x batch latents)
at batch 1 and batch 16, medians over timed calls after warm-up, with
torch.cuda.synchronize around each call; from them it/s at batch 1, images/s
at batch 16 over 50 steps, and the achieved TFLOP/s counting a UNet forward
at 512^2 as 0.80 TFLOP (STUDY.md). The scheduler's own step (a few element-wise
ops) is left out on both sides. One JSON object per line on stdout; messages on
stderr. Benchmarks are the one place besides tests/oracle/ where Python runs.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_bench import unet_kwargs  # noqa: E402

UNET_TFLOP = 0.80  # one UNet forward at 512x512 (64x64 latents)


def log(msg):
    print(f"gpu_diffusers: {msg}", file=sys.stderr, flush=True)


def time_calls(unet, batch, cross, warm, reps):
    import torch
    x = torch.randn(2 * batch, 4, 64, 64, device="cuda", dtype=torch.float16)
    ctx = torch.randn(2 * batch, 77, cross, device="cuda", dtype=torch.float16)
    t = torch.tensor(500, device="cuda")
    times = []
    with torch.inference_mode():
        for i in range(warm + reps):
            torch.cuda.synchronize()
            s = time.perf_counter()
            unet(x, t, encoder_hidden_states=ctx).sample
            torch.cuda.synchronize()
            if i >= warm:
                times.append(time.perf_counter() - s)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="sd21,sd15")
    ap.add_argument("--steps1", type=int, default=20, help="timed CFG steps at batch 1")
    ap.add_argument("--steps16", type=int, default=6, help="timed CFG steps at batch 16")
    ap.add_argument("--save-dir", help="write each timed UNet (fp16 safetensors, diffusers layout) to "
                    "SAVE_DIR/<kind>/ so synthcxr's side (bench_gpu_unet) runs the same weights")
    a = ap.parse_args()
    import torch
    import diffusers
    from diffusers import UNet2DConditionModel
    if not torch.cuda.is_available():
        print(json.dumps({"side": "diffusers", "skipped": "torch sees no GPU"}))
        return
    torch.backends.cuda.matmul.allow_tf32 = True  # what diffusers users run
    for kind in a.kinds.split(","):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        kw = unet_kwargs(kind)
        with torch.device("cuda"):
            unet = UNet2DConditionModel(**kw)
        unet = unet.to(torch.float16).eval()
        log(f"{kind}: UNet built on the GPU in {time.perf_counter() - t0:.1f} s "
            f"({sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M parameters)")
        torch.cuda.reset_peak_memory_stats()
        s1 = time_calls(unet, 1, kw["cross_attention_dim"], 3, a.steps1)
        log(f"{kind}: batch 1: {s1 * 1e3:.1f} ms per CFG step")
        s16 = time_calls(unet, 16, kw["cross_attention_dim"], 2, a.steps16)
        log(f"{kind}: batch 16: {s16 * 1e3:.1f} ms per CFG step")
        print(json.dumps({
            "side": "diffusers", "model": kind, "precision": "fp16", "attention": "sdpa",
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "device": torch.cuda.get_device_name(0),
            "b1_s_per_step": s1, "b1_it_per_s": 1.0 / s1,
            "b16_s_per_step": s16, "b16_images_per_s_50steps": 16.0 / (50 * s16),
            "b1_tflops": 2 * UNET_TFLOP / s1, "b16_tflops": 32 * UNET_TFLOP / s16,
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)
        if a.save_dir:
            t0 = time.perf_counter()
            unet.save_pretrained(os.path.join(a.save_dir, kind), safe_serialization=True)
            log(f"{kind}: saved to {a.save_dir}/{kind} in {time.perf_counter() - t0:.1f} s")
        del unet
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
