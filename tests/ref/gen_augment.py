"""gen_augment.py: the torchvision reference for the augmentation tests: writes
tests/ref/augment.bin (format: fixture.py), read by tests/test_augment.c.

Each case is one pipeline spec (stored as the case's model_text), one input image
and one (seed, key). The script re-implements cnnlab's random streams (src/data/augment.c:
splitmix64 over a counter, started from a hash of seed, key and the transform's
index) and its draws, in the same order and in double precision, then computes the
pixels with torchvision's own functions on uint8 tensors: F.pad + slicing (crop),
F.hflip, F.rotate(BILINEAR, fill=0), F.affine(BILINEAR, no fill) for
shift-scale-rotate, F.adjust_brightness/contrast/saturation/hue, F.erase; cutout
(which torchvision lacks) is plain numpy. So the C test checks the pixel arithmetic
against torchvision, given the same random parameters.

Tensors per case: x, out [H, W, C] (uint8 values as float32), seed, key (small
integers), tol [atol, largest fraction of values allowed to differ by up to atol].
The bilinear warps get [1, 0.02]: PyTorch forms the sampling grid with a matrix
product whose float32 rounding can move a value across a .5 boundary. Everything
else must match exactly.

Run: /usr/bin/python3 tests/ref/gen_augment.py (deterministic, byte-identical reruns).
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402

torch.set_num_threads(1)

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def f32(x):
    """The value a C float field holds, as a Python float."""
    return float(np.float32(x))


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    """src/data/augment.c's aug_rng: rng_for, rng_next, rng_uniform, rng_range, rng_below."""

    def __init__(self, seed, key, index):
        h = mix64((seed + GOLDEN) & M64)
        h = mix64(h ^ key)
        self.s = mix64((h + GOLDEN * (index + 1)) & M64)

    def next(self):
        self.s = (self.s + GOLDEN) & M64
        return mix64(self.s)

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def range(self, lo, hi):
        return lo + (hi - lo) * self.uniform()

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32


# ---- transforms: img is a uint8 tensor [C, H, W] -------------------------------------

def crop(t, img, r):
    pad = t["pad"]
    if pad == 0:
        return img
    dy = r.below(2 * pad + 1) - pad
    dx = r.below(2 * pad + 1) - pad
    _, h, w = img.shape
    mode = "reflect" if t.get("reflect") else "constant"
    padded = F.pad(img, [pad, pad, pad, pad], fill=0, padding_mode=mode)
    return F.crop(padded, dy + pad, dx + pad, h, w)


def rotate(t, img, r):
    d = f32(t["degrees"])
    angle = r.range(-d, d)
    if angle == 0.0:
        return img
    return F.rotate(img, angle, InterpolationMode.BILINEAR, fill=[0.0] * img.shape[0])


def ssr(t, img, r):
    d, s, sh = f32(t["degrees"]), f32(t["scale"]), f32(t["shift"])
    angle = r.range(-d, d)
    scale = r.range(1.0 - s, 1.0 + s)
    dx = r.range(-sh, sh)
    dy = r.range(-sh, sh)
    _, h, w = img.shape
    # Counter-clockwise as albumentations/cv2; F.affine counts clockwise.
    return F.affine(img, -angle, [dx * w, dy * h], scale, [0.0, 0.0],
                    InterpolationMode.BILINEAR, fill=None)


def jitter(t, img, r):
    order = [0, 1, 2, 3]
    for i in (3, 2, 1):
        j = r.below(i + 1)
        order[i], order[j] = order[j], order[i]
    lim = [f32(t.get(k, 0.0)) for k in ("brightness", "contrast", "saturation", "hue")]
    f = [1.0, 1.0, 1.0, 0.0]
    for k in range(4):
        if lim[k] > 0:
            f[k] = r.range(-lim[k], lim[k]) if k == 3 else r.range(max(0.0, 1.0 - lim[k]), 1.0 + lim[k])
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    for k in order:
        if lim[k] > 0:
            img = fns[k](img, f[k])
    return img


def cutout(t, img, r):
    _, h, w = img.shape
    out = img.clone()
    size = t["size"]
    for _ in range(t.get("count", 1)):
        cy, cx = r.below(h), r.below(w)
        y0, x0 = cy - size // 2, cx - size // 2
        y1, x1 = y0 + size, x0 + size
        out[:, max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = t.get("fill", 0)
    return out


def erase(t, img, r):
    _, h, w = img.shape
    area = float(h) * float(w)
    amin, amax = f32(t.get("area_min", 0.02)), f32(t.get("area_max", 0.33))
    lr0, lr1 = math.log(f32(t.get("ratio_min", 0.3))), math.log(f32(t.get("ratio_max", 3.3)))
    for _ in range(10):
        erase_area = area * r.range(amin, amax)
        ratio = math.exp(r.range(lr0, lr1))
        eh = int(round(math.sqrt(erase_area * ratio)))
        ew = int(round(math.sqrt(erase_area / ratio)))
        if not (eh < h and ew < w):
            continue
        i, j = r.below(h - eh + 1), r.below(w - ew + 1)
        return F.erase(img, i, j, eh, ew, torch.tensor(t.get("fill", 0), dtype=torch.uint8))
    return img


APPLY = {"crop": crop, "hflip": lambda t, img, r: F.hflip(img), "rotate": rotate, "ssr": ssr,
         "jitter": jitter, "cutout": cutout, "erase": erase}
DEFAULT_P = {"hflip": 0.5}


def run_pipeline(pipeline, img_hwc, seed, key):
    img = torch.from_numpy(img_hwc).permute(2, 0, 1).contiguous()
    for index, t in enumerate(pipeline):
        r = Rng(seed, key, index)
        p = f32(t.get("p", DEFAULT_P.get(t["kind"], 0.0)))
        if p > 0 and not (r.uniform() < p):
            continue
        img = APPLY[t["kind"]](t, img, r)
        assert img.dtype == torch.uint8
    return img.permute(1, 2, 0).contiguous().numpy()


# ---- cases -------------------------------------------------------------------------------

def make_image(h, w, c, seed):
    """Random colours with some grey pixels (hue's max == min branch) and saturated ones."""
    g = np.random.default_rng(seed)
    img = g.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    if c == 3:
        grey = g.random((h, w)) < 0.15
        img[grey] = img[grey][:, :1]
    img[g.random((h, w)) < 0.05] = 255
    img[g.random((h, w)) < 0.05] = 0
    return img


WARP = [1.0, 0.02]
EXACT = [0.0, 0.0]

# (spec as cnnlab parses it, the same pipeline spelled out, tolerance, images)
SPECS = [
    ("crop:4:reflect", [dict(kind="crop", pad=4, reflect=True)], EXACT, "rgb32 rgb grey"),
    ("crop:3", [dict(kind="crop", pad=3)], EXACT, "rgb grey"),
    ("crop:pad=5:mode=reflect", [dict(kind="crop", pad=5, reflect=True)], EXACT, "rgb grey"),
    ("hflip", [dict(kind="hflip")], EXACT, "rgb grey"),
    ("hflip:1", [dict(kind="hflip", p=1.0)], EXACT, "rgb grey"),
    ("rotate:30", [dict(kind="rotate", degrees=30)], WARP, "rgb grey"),
    ("rotate:180:p=0.7", [dict(kind="rotate", degrees=180, p=0.7)], WARP, "rgb32 grey"),
    ("ssr:0.1:0.2:30:1", [dict(kind="ssr", shift=0.1, scale=0.2, degrees=30, p=1.0)], WARP,
     "rgb grey"),
    ("ssr", [dict(kind="ssr", shift=0.0625, scale=0.1, degrees=45, p=0.5)], WARP, "rgb"),
    ("jitter:0.4:0.4:0.4:0.1",
     [dict(kind="jitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)], EXACT,
     "rgb32 rgb grey"),
    ("jitter:0.8", [dict(kind="jitter", brightness=0.8)], EXACT, "rgb grey"),
    ("jitter:contrast=0.7", [dict(kind="jitter", contrast=0.7)], EXACT, "rgb grey"),
    ("jitter:saturation=0.9", [dict(kind="jitter", saturation=0.9)], EXACT, "rgb"),
    ("jitter:hue=0.5", [dict(kind="jitter", hue=0.5)], EXACT, "rgb grey"),
    ("cutout:6", [dict(kind="cutout", size=6)], EXACT, "rgb grey"),
    ("cutout:4:3:128:p=0.9", [dict(kind="cutout", size=4, count=3, fill=128, p=0.9)], EXACT,
     "rgb grey"),
    ("erase:1", [dict(kind="erase", p=1.0)], EXACT, "rgb grey"),
    ("erase:1:0.1-0.5:0.5-2:77",
     [dict(kind="erase", p=1.0, area_min=0.1, area_max=0.5, ratio_min=0.5, ratio_max=2.0,
           fill=77)], EXACT, "rgb grey"),
    ("crop:4:reflect, hflip, jitter:0.3:0.3:0.3:0.05, rotate:10, cutout:5, erase:0.5",
     [dict(kind="crop", pad=4, reflect=True), dict(kind="hflip"),
      dict(kind="jitter", brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
      dict(kind="rotate", degrees=10), dict(kind="cutout", size=5), dict(kind="erase", p=0.5)],
     WARP, "rgb32 grey"),
]

IMAGES = {"rgb32": make_image(32, 32, 3, 1), "rgb": make_image(13, 16, 3, 2),
          "grey": make_image(11, 9, 1, 3)}
SEED_KEYS = [(1, 0), (1234567, 4711)]  # exact in float32


def main():
    cases = []
    for spec, pipeline, tol, images in SPECS:
        for iname in images.split():
            x = IMAGES[iname]
            # The 32x32 image (the CIFAR size) once; the small ones under both seeds.
            for seed, key in SEED_KEYS[:1] if iname == "rgb32" else SEED_KEYS:
                out = run_pipeline(pipeline, x, seed, key)
                c = fixture.Case("%s|%s|%d|%d" % (spec, iname, seed, key), spec)
                c.add("x", x).add("out", out)
                c.add("seed", np.array([seed], dtype=np.float64))
                c.add("key", np.array([key], dtype=np.float64))
                c.add("tol", np.array(tol))
                cases.append(c)
    path = os.path.join(HERE, "augment.bin")
    n = fixture.write(path, cases)
    print("%s: %d cases, %d bytes" % (path, len(cases), n))


if __name__ == "__main__":
    main()
