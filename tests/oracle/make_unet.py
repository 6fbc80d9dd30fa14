"""Reference data for the UNet (libcommon/unet.c): tiny random diffusers
UNet2DConditionModels in three configs, saved with save_pretrained, and their
forward outputs for seeded inputs at several timesteps.
  sd1   SD 1.x-like: conv proj_in/out, attention_head_dim a number (= head count),
        CrossAttnDownBlock2D + DownBlock2D, cross_attention_dim 32.
        Saved as tests/fixtures/models/tiny-sd1/unet/.
  sd2   SD 2.x-like: use_linear_projection, attention_head_dim a list,
        upcast_attention, cross_attention_dim 16 (the tiny SD 2 text width). tests/fixtures/models/tiny-sd2/unet/.
  deep  three resolution levels, layers_per_block 2,
        CrossAttn/CrossAttn/Down, flip_sin_to_cos False and freq_shift 1 (the
        non-SD branches of the timestep embedding). tests/fixtures/unet-deep/unet/.
  misc  the rarer keys: in/out channels 9/8, center_input_sample, per-block lists
        for layers_per_block / attention_head_dim / transformer_layers_per_block,
        mid_block_scale_factor, conv_in/out kernels 5/1, norm_eps; saved in
        shards (a shard index). tests/fixtures/unet-misc/unet/.
diffusers zero-initialises nothing in this UNet by default, but its inits leave
norms at 1/0 and biases at 0; every parameter is redrawn here (weights ~
N(0, 1/fan_in), biases and norm offsets ~ N(0, 0.1^2), norm scales 1 + N(0, 0.1^2))
so that each one reaches the output and a wrong name or layout shows.
All four store their weights as float16 (half the bytes; the C loader widens
them to f32 as for an fp16 checkpoint): the weights are rounded to float16
values before the reference outputs are computed in float32, so the reference
is exact for the stored weights (and diffusers, loading them into a float32
model, gets the same values).
Writes tests/fixtures/unet_ref.safetensors: <cfg>.<case>.{sample,t,enc,out}."""
import json
import os

import torch
from diffusers import UNet2DConditionModel

from oracle_util import FIXTURES, save

CONFIGS = {
    "sd1": dict(
        sample_size=8, in_channels=4, out_channels=4,
        block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=4, cross_attention_dim=32, norm_num_groups=8,
    ),
    "sd2": dict(
        sample_size=8, in_channels=4, out_channels=4,
        block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=[2, 4], cross_attention_dim=16, norm_num_groups=8,
        use_linear_projection=True, upcast_attention=True,
    ),
    "deep": dict(
        sample_size=16, in_channels=4, out_channels=4,
        block_out_channels=(16, 16, 24), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=2, cross_attention_dim=32, norm_num_groups=8,
        flip_sin_to_cos=False, freq_shift=1,
    ),
    "misc": dict(
        sample_size=8, in_channels=9, out_channels=8, center_input_sample=True,
        block_out_channels=(8, 16), layers_per_block=[1, 2],
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=[1, 2], transformer_layers_per_block=[2, 1], cross_attention_dim=16,
        norm_num_groups=4, norm_eps=1e-6, mid_block_scale_factor=1.414, conv_in_kernel=5,
        conv_out_kernel=1, use_linear_projection=True,
    ),
}
HALF = ("sd1", "sd2", "deep", "misc")  # stored as float16 (see the module comment)
FOLDERS = {
    "sd1": "models/tiny-sd1/unet",
    "sd2": "models/tiny-sd2/unet",
    "deep": "unet-deep/unet",
    "misc": "unet-misc/unet",
}
# (case name, batch, H, W, timesteps): integer t as the PNDM/DDIM pipelines
# pass them, fractional ones as Euler-type schedulers do.
CASES = {
    "sd1": [("t999", 1, 8, 8, [999.0]), ("t500", 1, 8, 8, [500.0]), ("t1", 1, 8, 8, [1.0]),
            ("b2", 2, 8, 8, [999.0, 37.25]), ("wide", 1, 8, 16, [250.0])],
    "sd2": [("t999", 1, 8, 8, [999.0]), ("t500", 1, 8, 8, [500.0]), ("t1", 1, 8, 8, [1.0]),
            ("b2", 2, 8, 8, [981.0, 0.5]), ("big", 1, 16, 16, [750.0])],
    "deep": [("t999", 1, 16, 16, [999.0]), ("t1", 1, 16, 16, [1.0]),
             ("b2", 2, 16, 16, [500.0, 120.75]), ("tall", 1, 16, 8, [333.0])],
    "misc": [("b2", 2, 8, 12, [999.0, 3.0])],
}


def reinit(model, gen):
    """Redraw every parameter (see the module comment)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            assert (p != 0).all(), name


def main():
    torch.manual_seed(20261128)
    gen = torch.Generator().manual_seed(4)
    t = {}
    total = 0
    for cfg, kw in CONFIGS.items():
        model = UNet2DConditionModel(**kw).eval()
        reinit(model, gen)
        folder = os.path.join(FIXTURES, FOLDERS[cfg])
        half = cfg in HALF
        if half:
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.half().float())
            model.half()
        # misc is written in shards (three), to exercise the shard index
        model.save_pretrained(folder, safe_serialization=True,
                              max_shard_size=("75KB" if half else "150KB") if cfg == "misc" else "10GB")
        model.float()
        for f in os.listdir(folder):
            total += os.path.getsize(os.path.join(folder, f))
        with open(os.path.join(folder, "config.json")) as f:
            assert json.load(f)["cross_attention_dim"] == kw["cross_attention_dim"]
        dctx = kw["cross_attention_dim"]
        for case, b, h, w, ts in CASES[cfg]:
            sample = torch.randn(b, kw["in_channels"], h, w, generator=gen)
            enc = torch.randn(b, 77, dctx, generator=gen)
            tt = torch.tensor(ts, dtype=torch.float32)
            with torch.no_grad():
                out = model(sample, tt, encoder_hidden_states=enc).sample
            key = f"{cfg}.{case}"
            t[key + ".sample"], t[key + ".t"], t[key + ".enc"], t[key + ".out"] = sample, tt, enc, out
            print(f"  {key}: out {tuple(out.shape)} max |out| {out.abs().max().item():.3g}")
        print(f"  {cfg}: {sum(p.numel() for p in model.parameters())} parameters -> {FOLDERS[cfg]}")
    save("unet_ref.safetensors", t)
    print(f"  model folders: {total} bytes")


if __name__ == "__main__":
    main()
