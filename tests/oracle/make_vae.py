"""Reference data for the VAE decoder (libcommon/vae.c) and lat2png.

Builds two tiny random diffusers AutoencoderKL models, seeded, with every
weight re-initialised (GroupNorm scales and all biases included, which
diffusers initialises to ones and zeros, so a mixed-up scale or bias shows):
  tiny-sd1: block_out_channels (16, 32, 32, 32), layers_per_block 1, 8 groups (scale 8, as SD)
  tiny-sd2: block_out_channels (16, 16, 32, 32), layers_per_block 2, 8 groups (scale 8, as SD)
both latent_channels 4, scaling_factor 0.18215 (as SD 1.x and SD 2.x).
Each is saved with save_pretrained into tests/fixtures/models/<name>/vae/
(the other parts of those folders come from other oracle scripts), without
the encoder's weights (encoder.*, quant_conv.*): the C code only decodes, and
they would be half the file. The encoder is still built and randomised here
first, so the decoder's weights are what they were with it; diffusers loads
the folder with a warning that the encoder is uninitialised (make_e2e.py only
decodes). The weights are stored as float16 (half the bytes; the C loader
widens them to f32): they are rounded to float16 values, after the conv_out
rescale below, before any reference output is computed in float32.
conv_out is rescaled so that decoded images are mostly inside [-1, 1], so
that the PNG comparison tests rounding rather than clamping.

tests/fixtures/vae_ref.safetensors holds, for each model m in sd1, sd2:
  m.lat1 [1,4,8,8], m.lat2 [2,4,6,10]        latents as denoise writes them
  m.out1, m.out2                             vae.decode(lat / scaling_factor).sample
for tiled decoding (vae.enable_tiling(), 64-pixel tiles = 16 latents, tiny-sd2):
  tile.lat [2,4,20,30], tile.out                 vae.tiled_decode(lat / scaling_factor)
  tile.rgb8.{0,1} u8 [80,120,3]                  the pipeline's pixels of those
and for the PNG check (tiny-sd2, latents [1,4,8,8] -> a 64x64 image):
  png.lat [1,4,8,8]                          latents
  png.rgb8  u8  [64,64,3]   the pipeline's image: image_processor.postprocess
                            (x/2+0.5 clamped) -> numpy -> (x*255).round().astype(uint8)
  png.gray8 u8  [64,64]     PIL Image.fromarray(rgb8).convert("L")
  png.rgb16 i32 [64,64,3]   (x*65535).round() of the same numpy image
  png.gray16 i32 [64,64]    (19595 R + 38470 G + 7471 B + 32768) >> 16 on rgb16,
                            the fixed-point BT.601 luma lat2png documents (PIL's
                            weights, applied to 16-bit samples)
"""
import json
import os

import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.image_processor import VaeImageProcessor
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from oracle_util import FIXTURES, save

torch.manual_seed(20261128)

CONFIGS = {
    "sd1": dict(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8),
    "sd2": dict(block_out_channels=(16, 16, 32, 32), layers_per_block=2, norm_num_groups=8),
}


def build(name, cfg):
    n = len(cfg["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=64, scaling_factor=0.18215,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n, **cfg)
    with torch.no_grad():
        for pname, p in vae.named_parameters():
            if p.ndim == 1 and "norm" in pname and pname.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))           # GroupNorm scale
            elif p.ndim == 1:
                p.copy_(0.2 * torch.randn_like(p))                 # every bias
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) * (1.5 / fan_in) ** 0.5)
        for pname, p in vae.named_parameters():                 # nothing left constant (ones, zeros)
            assert (p != p.flatten()[0]).any(), pname
        # keep decoded values mostly inside [-1, 1]
        probe = vae.decode(torch.randn(1, 4, 8, 8) / 0.18215).sample
        s = 0.6 / probe.std().item()
        vae.decoder.conv_out.weight.mul_(s)
        vae.decoder.conv_out.bias.mul_(s)
        for p in vae.parameters():                              # float16 values, stored as float16
            p.copy_(p.half().float())
    vae.eval()
    out = os.path.join(FIXTURES, "models", f"tiny-{name}", "vae")
    vae.half().save_pretrained(out, safe_serialization=True)
    vae.float()
    path = os.path.join(out, "diffusion_pytorch_model.safetensors")
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        keep = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(("encoder.", "quant_conv."))}
    save_file(keep, path, metadata=meta)
    print(f"wrote {os.path.relpath(out)} ({os.path.getsize(os.path.join(out, 'diffusion_pytorch_model.safetensors'))} bytes)")
    return vae


t = {}
with torch.no_grad():
    for name, cfg in CONFIGS.items():
        vae = build(name, cfg)
        sf = vae.config.scaling_factor
        for k, shape in (("1", (1, 4, 8, 8)), ("2", (2, 4, 6, 10))):
            lat = torch.randn(*shape)
            y = vae.decode(lat / sf).sample
            # the float64 model agrees with float32 torch (the reference is float32 torch)
            y64 = vae.double().decode(lat.double() / sf).sample
            vae.float()
            err = (y.double() - y64).abs().max().item()
            print(f"  {name} lat{k} {list(shape)} -> {list(y.shape)}: |y| max {y.abs().max():.3f}, "
                  f"std {y.std():.3f}, float32 vs float64 {err:.2e}")
            assert err < 1e-5 * max(1.0, y64.abs().max().item())
            t[f"{name}.lat{k}"] = lat
            t[f"{name}.out{k}"] = y
        if name == "sd2":
            lat = torch.randn(1, 4, 8, 8)
            y = vae.decode(lat / sf).sample
            proc = VaeImageProcessor(vae_scale_factor=2 ** (len(cfg["block_out_channels"]) - 1))
            img = proc.postprocess(y, output_type="np")[0]              # float32 [H, W, 3] in [0, 1]
            assert img.dtype == np.float32
            rgb8 = (img * 255).round().astype("uint8")
            pil = proc.numpy_to_pil(img[None])[0]
            assert np.array_equal(np.asarray(pil), rgb8)
            gray8 = np.asarray(pil.convert("L"))
            rgb16 = (img * 65535).round().astype(np.int64)
            gray16 = (rgb16[..., 0] * 19595 + rgb16[..., 1] * 38470 + rgb16[..., 2] * 7471 + 32768) >> 16
            clamped = ((y < -1) | (y > 1)).float().mean().item()
            print(f"  png: {img.shape}, {100 * clamped:.1f} % of values clamped")
            t["png.lat"] = lat
            t["png.out"] = y
            t["png.rgb8"] = torch.from_numpy(rgb8.copy())
            t["png.gray8"] = torch.from_numpy(gray8.copy())
            t["png.rgb16"] = torch.from_numpy(rgb16.astype(np.int32))
            t["png.gray16"] = torch.from_numpy(gray16.astype(np.int32))
            # tiled decoding (AutoencoderKL.tiled_decode) with 64-pixel tiles (8 latents)
            vae.enable_tiling()
            vae.tile_sample_min_size = 64
            vae.tile_latent_min_size = 8
            lat = torch.randn(2, 4, 10, 15)
            yt = vae.decode(lat / sf).sample
            vae.disable_tiling()
            yw = vae.decode(lat / sf).sample
            print(f"  tiled [2,4,10,15] -> {list(yt.shape)}: differs from whole decoding by {(yt - yw).abs().max():.3f}")
            t["tile.lat"] = lat
            t["tile.out"] = yt
            imgs = proc.postprocess(yt, output_type="np")
            for b in range(2):
                t[f"tile.rgb8.{b}"] = torch.from_numpy((imgs[b] * 255).round().astype("uint8").copy())

save("vae_ref.safetensors", t, {"configs": json.dumps(CONFIGS)})
