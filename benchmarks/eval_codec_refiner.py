"""The refiners over standard-codec base layers on Kodak24 (evaluation only: no model saw it): each image is
coded by JPEG / WebP / AVIF (diffcodec.baselines settings) at several qualities, and the decoded base is
refined in one step by `models/codec-refiner` (conditioned on the codec and quality) and, for comparison, by
`models/opq-refiner` (which only saw opq bases). Mean bpp (the base file), PSNR and MS-SSIM of base and refined.

    python benchmarks/eval_codec_refiner.py [KODAK_DIR] --images 12 --out benchmarks/results/codec-refiner/kodak.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from diffcodec import atomic, baselines, metrics
from diffcodec.bench import collect_images, load_rgb
from diffcodec.methods import codec_refiner, opq_refine

QUALITIES = {"jpeg": (5, 15, 30, 50), "webp": (5, 25, 50, 75), "avif": (10, 30, 50, 70)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--images", dest="n", type=int, default=12)
    ap.add_argument("--codecs", nargs="+", default=list(QUALITIES))
    ap.add_argument("--skip-opq-refiner", action="store_true")
    ap.add_argument("--quality", dest="qualities", action="append", metavar="CODEC:Q",
                    help="qualities to run instead of QUALITIES (repeat), e.g. jpeg:70")
    ap.add_argument("--out", default="benchmarks/results/codec-refiner/kodak.json")
    args = ap.parse_args()
    files = collect_images([args.images])[: args.n]
    rows = []
    chosen = {c: tuple(QUALITIES[c]) for c in args.codecs}
    if args.qualities:
        chosen = {}
        for item in args.qualities:
            codec, q = item.split(":")
            chosen[codec] = (*chosen.get(codec, ()), int(q))
    for codec, qualities in chosen.items():
        b = baselines.get_baseline(codec)
        for q in qualities:
            acc: dict[str, list[float]] = {}
            for f in files:
                img = load_rgb(f)
                data = b.encode(img, q)
                base = b.decode(data, channels=3)
                t0 = time.perf_counter()
                refined = codec_refiner.refine(base, codec, q)
                acc.setdefault("refine_s", []).append(time.perf_counter() - t0)
                outs = {"base": base, "codec_refiner": refined}
                if not args.skip_opq_refiner:
                    outs["opq_refiner"] = opq_refine.refine(base)
                acc.setdefault("bpp", []).append(len(data) * 8 / (img.shape[0] * img.shape[1]))
                for name, out in outs.items():
                    acc.setdefault(f"{name}_psnr", []).append(metrics.psnr(img, out))
                    acc.setdefault(f"{name}_ms_ssim", []).append(metrics.ms_ssim(img, out))
            row = {"codec": codec, "quality": q, "images": len(files),
                   **{k: round(float(np.mean(v)), 4) for k, v in acc.items()}}
            row["gain_db"] = round(row["codec_refiner_psnr"] - row["base_psnr"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out, json.dumps({"images": [f.name for f in files], "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
