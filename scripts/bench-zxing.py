#!/usr/bin/env python3
"""Decode a frame corpus with zxing-cpp (PyPI `zxing-cpp`, DataMatrix only) for comparison
with `linectl decode --bench DIR`: read rate against manifest.csv, median / p99 ms per
sub-folder, decode time only (the image is loaded and converted before the clock starts),
one thread. Not run in CI.

Usage: scripts/bench-zxing.py bench-corpus
"""

import csv
import json
import os
import sys
import time

import numpy as np
import zxingcpp
from PIL import Image


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[round((len(v) - 1) * p)]


def main():
    root = sys.argv[1]
    expected = {}
    with open(os.path.join(root, "manifest.csv"), newline="") as f:
        for row in csv.DictReader(f):
            expected[row["file"]] = row["content"].replace("\\x1d", "\x1d")
    subsets = {}
    for rel, want in sorted(expected.items()):
        img = np.asarray(Image.open(os.path.join(root, rel)).convert("L"))
        t0 = time.perf_counter()
        res = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.DataMatrix)
        ms = (time.perf_counter() - t0) * 1000
        s = subsets.setdefault(rel.split("/")[0], {"times": [], "read": 0, "wrong": 0})
        s["times"].append(ms)
        if res:
            # zxing-cpp's text is the HRI for GS1; its bytes are the raw content with GS
            got = res[0].bytes.decode("latin-1")
            if got == want:
                s["read"] += 1
            else:
                s["wrong"] += 1
                print(f"{rel}: WRONG {got!r}", file=sys.stderr)
    every = {"times": [], "read": 0, "wrong": 0}
    for name, s in list(subsets.items()) + [("all", every)]:
        if name != "all":
            every["times"] += s["times"]
            every["read"] += s["read"]
            every["wrong"] += s["wrong"]
        n = len(s["times"])
        print(json.dumps({
            "decoder": f"zxing-cpp {zxingcpp.__version__ if hasattr(zxingcpp, '__version__') else ''}".strip(),
            "subset": name, "frames": n, "read": s["read"], "wrong": s["wrong"],
            "read_rate": round(s["read"] / n, 4) if n else 0,
            "median_ms": round(pct(s["times"], 0.5), 2), "p99_ms": round(pct(s["times"], 0.99), 2),
        }))


if __name__ == "__main__":
    main()
