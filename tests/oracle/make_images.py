"""Image fixtures for the C PNG and JPEG readers (tests/unit/test_png.c,
test_jpeg.c): tiny 13x7 files written by Pillow (and, for what Pillow cannot
write — 16-bit RGB and Adam7-interlaced PNG — by a minimal encoder here,
cross-checked with Pillow's decoder), plus the pixels Pillow decodes from each
file, as safetensors (images.safetensors): u8 [H, W] or [H, W, 3]; 16-bit
files as i32. The text chunks each PNG carries are in the metadata as JSON."""
import io
import json
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image, PngImagePlugin, features

from oracle_util import FIXTURES, save

H, W = 7, 13
OUT = os.path.join(FIXTURES, "images")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261128)

# Smooth ramps plus noise: something like an image, with every value range used.
yy, xx = np.mgrid[0:H, 0:W]
grey8 = np.clip(xx * 19 + yy * 7 + rng.integers(-20, 21, (H, W)), 0, 255).astype(np.uint8)
grey8[0, 0], grey8[0, 1] = 0, 255
rgb8 = np.stack([grey8, (255 - grey8), rng.integers(0, 256, (H, W))], -1).astype(np.uint8)
alpha = rng.integers(0, 256, (H, W)).astype(np.uint8)
grey16 = (xx * 5000 + yy * 777 + rng.integers(0, 300, (H, W))).clip(0, 65535).astype(np.uint16)
grey16[0, 0], grey16[0, 1], grey16[0, 2] = 0, 65535, 256  # high and low bytes both matter
rgb16 = rng.integers(0, 65536, (H, W, 3)).astype(np.uint16)
palette = rng.integers(0, 256, (16, 3)).astype(np.uint8)
pidx = rng.integers(0, 16, (H, W)).astype(np.uint8)
bilevel = (rng.integers(0, 2, (H, W)) * 255).astype(np.uint8)

TEXT = [("report", "Small left pleural effusion. No pneumothorax."), ("seed", "1234"),
        ("Comment", "café")]  # Latin-1 in a tEXt chunk: the reader gives UTF-8


def pnginfo(with_text):
    info = PngImagePlugin.PngInfo()
    if with_text:
        for k, v in TEXT:
            info.add_text(k, v)
        info.add_text("zipped", "compressed " * 20, zip=True)          # zTXt
        info.add_itxt("utf8", "Pneumothorax \u2013 none \u2713")          # iTXt
    return info


def text_of(path):
    """The text chunks Pillow reads back, in file order."""
    im = Image.open(path)
    im.load()
    return [[k, v] for k, v in im.text.items()]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(path, arr, bit_depth, color_type, interlace=False):
    """A minimal PNG encoder (filter 0, optional Adam7) for what Pillow cannot write."""
    h, w = arr.shape[:2]
    a = arr.reshape(h, w, -1)
    be = a.astype(">u2") if bit_depth == 16 else a.astype(np.uint8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = be[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def p(name):
    return os.path.join(OUT, name)


tensors, meta = {}, {}


def record(name, pixels, source=None):
    """Pillow's decoded pixels for file `name`; for lossless files also the array we encoded."""
    if source is not None:
        assert np.array_equal(pixels, source), f"{name}: Pillow decodes other pixels than were written"
    t = torch.from_numpy(pixels.astype(np.int32) if pixels.dtype == np.uint16 else pixels.copy())
    tensors[name] = t


# ---- PNG, written by Pillow ----
Image.fromarray(grey8, "L").save(p("grey8.png"), pnginfo=pnginfo(True))
record("grey8.png", np.array(Image.open(p("grey8.png"))), grey8)
meta["grey8.png"] = json.dumps(text_of(p("grey8.png")))

Image.fromarray(grey16).save(p("grey16.png"))
g16 = np.array(Image.open(p("grey16.png")))
assert Image.open(p("grey16.png")).mode == "I;16"
record("grey16.png", g16.astype(np.uint16), grey16)

Image.fromarray(rgb8, "RGB").save(p("rgb8.png"), pnginfo=pnginfo(True))
record("rgb8.png", np.array(Image.open(p("rgb8.png"))), rgb8)
meta["rgb8.png"] = json.dumps(text_of(p("rgb8.png")))

Image.fromarray(np.dstack([rgb8, alpha]), "RGBA").save(p("rgba8.png"))
record("rgba8.png", np.array(Image.open(p("rgba8.png")).convert("RGB")), rgb8)       # alpha dropped

Image.fromarray(np.dstack([grey8, alpha]), "LA").save(p("la8.png"))
record("la8.png", np.array(Image.open(p("la8.png")).convert("L")), grey8)          # alpha dropped

pim = Image.fromarray(pidx, "P")
pim.putpalette(palette.flatten().tolist())
pim.save(p("palette.png"))
record("palette.png", np.array(Image.open(p("palette.png")).convert("RGB")), palette[pidx])
pim.save(p("palette_trns.png"), transparency=3)  # a tRNS chunk: ignored, not composited
record("palette_trns.png", np.array(Image.open(p("palette_trns.png")).convert("RGB")), palette[pidx])

Image.fromarray(bilevel, "L").convert("1").save(p("bilevel.png"))                  # 1-bit grey
record("bilevel.png", np.array(Image.open(p("bilevel.png")).convert("L")), bilevel)

# ---- PNG Pillow cannot write: 16-bit RGB, Adam7 interlace ----
raw_png(p("rgb16.png"), rgb16, 16, 2)
# Pillow reads 16-bit RGB only as 8-bit (the high bytes): that much checks the encoder.
assert np.array_equal(np.array(Image.open(p("rgb16.png"))), (rgb16 >> 8).astype(np.uint8))
record("rgb16.png", rgb16)
raw_png(p("grey8_adam7.png"), grey8, 8, 0, interlace=True)
record("grey8_adam7.png", np.array(Image.open(p("grey8_adam7.png"))), grey8)
raw_png(p("rgb8_adam7.png"), rgb8, 8, 2, interlace=True)
record("rgb8_adam7.png", np.array(Image.open(p("rgb8_adam7.png"))), rgb8)

# ---- JPEG, written and decoded by Pillow (libjpeg-turbo) ----
Image.fromarray(grey8, "L").save(p("grey.jpg"), quality=90)
Image.fromarray(rgb8, "RGB").save(p("rgb420.jpg"), quality=85)                     # 4:2:0 (Pillow's default)
Image.fromarray(rgb8, "RGB").save(p("rgb444.jpg"), quality=95, subsampling=0)
Image.fromarray(rgb8, "RGB").save(p("rgb_progressive.jpg"), quality=85, progressive=True)
Image.fromarray(grey8, "L").save(p("grey_progressive.jpg"), quality=75, progressive=True)
for name in ["grey.jpg", "rgb420.jpg", "rgb444.jpg", "rgb_progressive.jpg", "grey_progressive.jpg"]:
    im = Image.open(p(name))
    assert im.mode in ("L", "RGB"), name
    record(name, np.array(im))

# CMYK: the reader refuses it (no pixels recorded).
Image.fromarray(rgb8, "RGB").convert("CMYK").save(p("cmyk.jpg"), quality=90)

meta["pillow"] = Image.__version__
meta["libjpeg_turbo"] = str(features.version("libjpeg_turbo"))
meta["zlib"] = str(features.version("zlib"))
save("images/images.safetensors", tensors, meta)
for f in sorted(os.listdir(OUT)):
    print(f"  {f}: {os.path.getsize(p(f))} bytes")
