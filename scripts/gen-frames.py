#!/usr/bin/env python3
"""Generate synthetic camera frames of GS1 DataMatrix codes for the vision stage.

Symbols come from Debian `zint` (``zint -b DATAMATRIX --gs1 --dump``), so the code words
(true FNC1 separators, rectangular and DMRE sizes) are what a real coding printer makes.
Each symbol is drawn at 4x supersampling as ink coverage (squares, or discs for dotted
inkjet prints), rotated, box-downsampled and composited onto a grey carton background
(illumination gradient, low-frequency texture, print clutter), then blurred / noised.

Usage:
  scripts/gen-frames.py --set ci    --out tests/data/frames   # small checked-in set
  scripts/gen-frames.py --set bench --out bench-corpus        # larger bench corpus

The CI set has noise only in a window around the code (small PNGs).
Writes <out>/<subset>/<name>.png (8-bit grey, 1280x960) and <out>/manifest.csv with the
expected content (element string with GS = 0x1D written as \\x1d) per frame.
Deterministic: a fixed seed per frame. Needs numpy and Pillow (scripts/requirements.txt).
"""

import argparse
import csv
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageFilter

W, H = 1280, 960
SS = 4  # supersampling factor for the ink coverage

SETS = {
    "ci": {"clean": 6, "rotated": 8, "inverted": 6, "dmre": 6, "degraded": 6, "dotted": 8},
    "bench": {"clean": 30, "rotated": 30, "inverted": 30, "dmre": 20, "degraded": 40, "dotted": 20},
}

# zint --vers numbers: 25-30 rectangular (ISO 16022), 31-48 DMRE (ISO 21471).
RECT_VERS = [25, 26, 27, 28, 29, 30] + list(range(31, 49))

ALNUM = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def gtin_check(digits13):
    total = 0
    for i, ch in enumerate(reversed(digits13)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - total % 10) % 10)


def random_code(rng):
    body = "0" + "".join(rng.choice("0123456789") for _ in range(12))
    gtin = body + gtin_check(body)
    yy = rng.randint(26, 35)
    mm = rng.randint(1, 12)
    dd = rng.randint(1, 28)
    expiry = f"{yy:02d}{mm:02d}{dd:02d}"
    batch = "".join(rng.choice(ALNUM) for _ in range(rng.randint(4, 10)))
    serial = "".join(rng.choice(ALNUM) for _ in range(rng.randint(8, 20)))
    bracketed = f"[01]{gtin}[17]{expiry}[10]{batch}[21]{serial}"
    # 01 and 17 are predefined fixed-length: no separator; 10 is variable and not last.
    content = f"01{gtin}17{expiry}10{batch}\x1d21{serial}"
    hri = f"(01){gtin}(17){expiry}(10){batch}(21){serial}"
    return bracketed, content, hri


def zint_matrix(bracketed, vers=None):
    cmd = ["zint", "-b", "DATAMATRIX", "--gs1", "--dump", "-d", bracketed]
    if vers is not None:
        cmd += [f"--vers={vers}"]
        if vers >= 31:
            cmd += ["--dmre"]
    else:
        cmd += ["--square"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.strip().splitlines():
        # each token is 2 hex digits, the last one of a row may be 1 (a nibble)
        bits = "".join(f"{int(b, 16):0{4 * len(b)}b}" for b in line.split())
        rows.append(bits)
    # The bottom row is the solid L side: its run of ones is the symbol width.
    width = len(rows[-1]) - len(rows[-1].lstrip("1"))
    return np.array([[c == "1" for c in r[:width]] for r in rows], dtype=bool)


def coverage(matrix, module, angle, dotted, rng):
    """Ink coverage in [0,1] at frame resolution, rotated by `angle` degrees."""
    rows, cols = matrix.shape
    m = module * SS
    quiet = 2
    hh, ww = int((rows + 2 * quiet) * m), int((cols + 2 * quiet) * m)
    hi = np.zeros((hh, ww), dtype=np.uint8)
    if dotted:
        diam = rng.uniform(0.62, 0.8) * m
        r = diam / 2
        yy, xx = np.mgrid[0 : int(m) + 1, 0 : int(m) + 1]
    for y in range(rows):
        for x in range(cols):
            if not matrix[y, x]:
                continue
            x0 = (x + quiet) * m
            y0 = (y + quiet) * m
            if dotted:
                cx = m / 2 + rng.uniform(-0.08, 0.08) * m
                cy = m / 2 + rng.uniform(-0.08, 0.08) * m
                disc = ((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r
                ys, xs = int(y0), int(x0)
                tile = hi[ys : ys + disc.shape[0], xs : xs + disc.shape[1]]
                tile |= (disc[: tile.shape[0], : tile.shape[1]] * 255).astype(np.uint8)
            else:
                hi[int(y0) : int(y0 + m), int(x0) : int(x0 + m)] = 255
    img = Image.fromarray(hi, "L")
    if angle:
        img = img.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=0)
    lo = img.resize((max(1, img.width // SS), max(1, img.height // SS)), Image.BOX)
    return np.asarray(lo, dtype=np.float32) / 255.0


def background(rng, dark):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if dark:
        base = rng.uniform(40, 70)
        amp = rng.uniform(10, 25)
    else:
        base = rng.uniform(160, 205)
        amp = rng.uniform(20, 45)
    ang = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * (xx / W - 0.5) + np.sin(ang) * (yy / H - 0.5)) * amp
    # low-frequency texture: upsampled coarse noise (compresses well, looks like board)
    coarse = np.asarray(
        Image.fromarray(
            (np.random.default_rng(rng.randint(0, 2**31)).normal(128, 40, (24, 32))).clip(0, 255).astype(np.uint8)
        ).resize((W, H), Image.BICUBIC),
        dtype=np.float32,
    )
    tex = (coarse - 128) * (0.12 if not dark else 0.06)
    return base + grad + tex


def clutter(img, rng, keep_out, dark):
    """Print clutter (text-like bars, lines, boxes) outside the code's keep-out box."""
    x0, y0, x1, y1 = keep_out
    for _ in range(rng.randint(6, 14)):
        for _attempt in range(20):
            w = rng.randint(20, 260)
            h = rng.randint(4, 40) if rng.random() < 0.7 else rng.randint(40, 160)
            x = rng.randint(0, W - w)
            y = rng.randint(0, H - h)
            if x + w < x0 or x > x1 or y + h < y0 or y > y1:
                break
        else:
            continue
        ink = rng.uniform(150, 220) if dark else rng.uniform(30, 110)
        if rng.random() < 0.5:
            img[y : y + h, x : x + w] = ink
        else:  # outline box / rule
            t = rng.randint(2, 4)
            img[y : y + t, x : x + w] = ink
            img[y + h - t : y + h, x : x + w] = ink
            img[y : y + h, x : x + t] = ink
            img[y : y + h, x + w - t : x + w] = ink


def make_frame(subset, idx, seed, local_noise=False):
    rng = random.Random(seed)
    bracketed, content, hri = random_code(rng)
    if subset == "dmre":
        start = rng.randrange(len(RECT_VERS))
        # the first rectangular / DMRE size (from a random start) that holds the data
        for vers in RECT_VERS[start:] + RECT_VERS[:start]:
            try:
                matrix = zint_matrix(bracketed, vers)
                break
            except subprocess.CalledProcessError:
                continue
        else:
            raise RuntimeError(f"no rectangular size holds {bracketed}")
    else:
        matrix = zint_matrix(bracketed, None)
    module = rng.uniform(4.0, 6.0)
    dotted = subset == "dotted"
    dark = subset == "inverted"
    if subset == "rotated":
        angle = rng.uniform(0, 360)
    elif subset in ("clean", "dmre", "inverted", "dotted"):
        angle = rng.uniform(-4, 4)
    else:
        angle = rng.uniform(0, 360)
    cov = coverage(matrix, module, angle, dotted, rng)
    bg = background(rng, dark)
    ch, cw = cov.shape
    px = rng.randint(60, W - cw - 60)
    py = rng.randint(60, H - ch - 60)
    clutter(bg, rng, (px - 20, py - 20, px + cw + 20, py + ch + 20), dark)
    ink = rng.uniform(190, 235) if dark else rng.uniform(25, 70)
    region = bg[py : py + ch, px : px + cw]
    bg[py : py + ch, px : px + cw] = region * (1 - cov) + ink * cov
    img = Image.fromarray(bg.clip(0, 255).astype(np.uint8), "L")
    if subset == "degraded":
        blur = rng.uniform(1.0, 1.6)
        sigma = rng.uniform(8, 12)
    elif subset == "rotated":
        blur, sigma = rng.uniform(0.4, 0.8), 0.0
    else:
        blur, sigma = rng.uniform(0.3, 0.6), 0.0
    img = img.filter(ImageFilter.GaussianBlur(blur))
    if sigma:
        arr = np.asarray(img, dtype=np.float32)
        noise = np.random.default_rng(seed).normal(0, sigma, arr.shape)
        if local_noise:
            # the checked-in CI set keeps the noise to a window around the code so
            # that the PNGs stay small; the bench corpus is noisy over the whole frame
            win = np.zeros(arr.shape, dtype=bool)
            win[max(0, py - 120) : py + ch + 120, max(0, px - 120) : px + cw + 120] = True
            noise = noise * win
        arr = arr + noise
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
    name = f"{subset}-{idx:03d}"
    return name, img, bracketed, content, hri, matrix.shape


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=sorted(SETS), default="ci")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()
    rows = []
    for s_i, (subset, count) in enumerate(SETS[args.set].items()):
        os.makedirs(os.path.join(args.out, subset), exist_ok=True)
        for i in range(count):
            seed = args.seed * 1000 + s_i * 100 + i + (0 if args.set == "ci" else 7919)
            name, img, bracketed, content, hri, shape = make_frame(subset, i, seed, args.set == "ci")
            rel = f"{subset}/{name}.png"
            img.save(os.path.join(args.out, rel), optimize=True, compress_level=9)
            rows.append(
                {
                    "file": rel,
                    "subset": subset,
                    "symbol": f"{shape[0]}x{shape[1]}",
                    "bracketed": bracketed,
                    "hri": hri,
                    "content": content.replace("\x1d", "\\x1d"),
                }
            )
            print(rel, file=sys.stderr)
    with open(os.path.join(args.out, "manifest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
