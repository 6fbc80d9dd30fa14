"""Fixtures for libcommon/image_prep.c (tests/unit/test_image_prep.c): small
radiograph-like images of odd shapes written as PNG (8-bit grey, 16-bit grey,
RGB) and JPEG (grey, colour) under tests/fixtures/image_prep/, and what the
MGCA recipe makes of each (mgca/datasets/utils.py): the file read to grey with
OpenCV (cv2.imread IMREAD_GRAYSCALE for grey files; RGB decoded and converted
with cv2.cvtColor, as image_prep.h defines it), the longer side resized to
SIZE with cv2.INTER_AREA and the other to int(side * SIZE / longer), zero
padding split floor (top/left) and ceil. Saved as image_prep.safetensors:
"<file>" u8 [SIZE, SIZE] and "<file>.grey" u8 [h, w]; the size of each case
is in the metadata ("sizes", JSON)."""
import json
import os

import cv2
import numpy as np
import torch
from PIL import Image

from oracle_util import FIXTURES, save

OUT = os.path.join(FIXTURES, "image_prep")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261128)


def phantom(h, w):
    """Smooth structure plus noise over the whole 0..255 range."""
    yy, xx = np.mgrid[0:h, 0:w]
    v = 128 + 90 * np.sin(xx / 6.3 + 0.4) * np.cos(yy / 4.7) + 30 * (yy / max(h - 1, 1) - 0.5)
    v = v + rng.normal(0, 18, (h, w))
    return np.clip(v, 0, 255)


def mgca_resize(img, scale):
    """MGCA's resize_img, restated: the longer side (height on a tie) to scale."""
    h, w = img.shape
    if h >= w:
        nh, nw = scale, int(float(w) * float(scale / float(h)))
    else:
        nh, nw = int(float(h) * float(scale / float(w))), scale
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    ph, pw = scale - nh, scale - nw
    return np.pad(r, [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)], "constant", constant_values=0)


# (file, height, width, size): shrink by odd factors, wide and tall; exact 2x
# and 3x (OpenCV's fast path); enlarging (its bilinear "area mode"); a square;
# one at the real 256.
CASES = [
    ("grey8_wide.png", 61, 97, 32),
    ("grey8_tall.png", 97, 61, 32),
    ("grey8_x2.png", 64, 128, 64),
    ("grey8_small.png", 13, 20, 32),
    ("grey8_square.png", 50, 50, 32),
    ("grey8_sliver.png", 3, 50, 64),
    ("grey16.png", 88, 130, 64),
    ("rgb8.png", 50, 75, 32),
    ("grey_x3.jpg", 81, 120, 40),
    ("grey.jpg", 77, 59, 48),
    ("colour.jpg", 70, 90, 32),
    ("grey8_256.png", 300, 217, 256),
]

refs, sizes = {}, {}
for name, h, w, size in CASES:
    path = os.path.join(OUT, name)
    g = phantom(h, w)
    if name.startswith("grey16"):
        a = np.clip(g * 257 + rng.integers(0, 257, (h, w)), 0, 65535).astype(np.uint16)
        cv2.imwrite(path, a)  # 16-bit grey PNG
        grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(grey, (a >> 8).astype(np.uint8))  # what image_prep.h states
    elif name.startswith("rgb") or name.startswith("colour"):
        rgb = np.stack([g, np.clip(g * 0.8 + 40, 0, 255), phantom(h, w)], -1).astype(np.uint8)
        if name.endswith(".png"):
            Image.fromarray(rgb, "RGB").save(path)
        else:
            Image.fromarray(rgb, "RGB").save(path, quality=90)
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        a = g.astype(np.uint8)
        if name.endswith(".png"):
            Image.fromarray(a, "L").save(path)
        else:
            Image.fromarray(a, "L").save(path, quality=90)
        grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    assert grey.shape == (h, w)
    refs[name + ".grey"] = torch.from_numpy(grey.copy())
    refs[name] = torch.from_numpy(mgca_resize(grey, size))
    sizes[name] = size

# cv2.resize(INTER_AREA) alone on random arrays of random shapes, shrinking,
# enlarging and mixed (one axis each way): case k is "resize.<k>.in" u8 [h, w]
# and "resize.<k>.out" u8 [oh, ow].
shapes = []
for _ in range(30):
    h, w = (int(x) for x in rng.integers(1, 65, 2))
    oh, ow = (int(x) for x in rng.integers(1, 49, 2))
    shapes.append((h, w, oh, ow))
shapes += [(64, 32, 32, 16), (63, 45, 21, 15), (5, 7, 40, 44), (40, 3, 20, 48), (1, 1, 7, 5), (48, 48, 48, 48)]
for k, (h, w, oh, ow) in enumerate(shapes):
    a = rng.integers(0, 256, (h, w)).astype(np.uint8)
    refs[f"resize.{k}.in"] = torch.from_numpy(a)
    refs[f"resize.{k}.out"] = torch.from_numpy(cv2.resize(a, (ow, oh), interpolation=cv2.INTER_AREA))

save("image_prep.safetensors", refs, {"sizes": json.dumps(sizes), "resize_cases": str(len(shapes)),
                                     "opencv": cv2.__version__})
