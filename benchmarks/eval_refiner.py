"""Quality/speed trade-off of `decode --refine` on Kodak24: plain opq decode vs refined at several step
counts, per preset (PSNR, MS-SSIM, decode seconds). The full 24-image comparison with crops and baselines is
`diffcodec bench --preset P --refine-steps N`; this script sweeps N on a subset.

    python benchmarks/eval_refiner.py [KODAK_DIR] --images 6 --steps 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from diffcodec import api, metrics
from diffcodec.bench import collect_images, load_rgb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--images-n", "--images", dest="n", type=int, default=6)
    ap.add_argument("--presets", nargs="+", default=["opq-16-8-8", "opq-32-8-8"])
    ap.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--out", default="benchmarks/results/opq-refiner/steps.json")
    args = ap.parse_args()
    files = collect_images([args.images])[: args.n]
    table = []
    for preset in args.presets:
        for steps in [0] + args.steps:
            p, m, secs = [], [], []
            for f in files:
                img = load_rgb(f)
                data = api.encode(img, method="opq", preset=preset)
                t0 = time.perf_counter()
                out = api.decode(data, refine=True, steps=steps) if steps else api.decode(data)
                secs.append(time.perf_counter() - t0)
                p.append(metrics.psnr(img, out))
                m.append(metrics.ms_ssim(img, out))
            row = {"preset": preset, "refine_steps": steps, "psnr": round(float(np.mean(p)), 3),
                   "ms_ssim": round(float(np.mean(m)), 4), "decode_s": round(float(np.mean(secs)), 2),
                   "images": [f.name for f in files]}
            table.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
