"""Compressed generation with ddcm: unconditional pixel-ddpm samples whose codebook choices are their own
bitstream, for several codebook sizes K (the DDCM paper's figure: small K limits diversity). Each sample's
.ddc is decoded again and checked to reproduce it. Writes a grid PNG (rows: seeds, columns: K) and a JSON.

    python benchmarks/ddcm_generate_grid.py --out docs/ddcm-generate.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diffcodec import api
from diffcodec.methods import ddcm

SETTINGS = [("K=2", 2, "mshift"), ("K=16", 16, "mshift"), ("K=4096", 4096, "mshift"), ("K=4096 iid", 4096, "iid")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/ddcm-generate.png")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    pad, s = 2, args.size
    grid = np.full((len(args.seeds) * (s + pad), len(SETTINGS) * (s + pad), 3), 255, np.uint8)
    rows = []
    for c, (label, k, kind) in enumerate(SETTINGS):
        for r, seed in enumerate(args.seeds):
            t0 = time.perf_counter()
            data, sample = ddcm.generate(s, s, k=k, steps=args.steps, codebook=kind, seed=seed, device="cpu")
            secs = time.perf_counter() - t0
            assert np.array_equal(api.decode(data), sample), "decoding the bitstream must reproduce the sample"
            grid[r * (s + pad):r * (s + pad) + s, c * (s + pad):c * (s + pad) + s] = sample
            rows.append({"setting": label, "seed": seed, "bytes": len(data), "seconds": round(secs, 2)})
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(out)
    out.with_suffix(".json").write_text(json.dumps({"columns": [x[0] for x in SETTINGS], "steps": args.steps,
                                                    "size": s, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
