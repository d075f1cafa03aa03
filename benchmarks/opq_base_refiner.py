"""Which refiner for an opq base layer: `ddcm --base opq-P` with `--param refiner=opq-refiner` (the opq bases'
refiner until session 11) against `opq-clip-refiner` (today's default where installed), same base, same steps,
per image: file bpp, PSNR and MS-SSIM of the decoded image (the encoder's reconstruction, which the decoder
reproduces: tests/test_ddcm_inter.py).

    python benchmarks/opq_base_refiner.py ../shared/data/kodak --base opq-16-8-8 opq-32-8-8 opq-64-16-16 \
        --out benchmarks/results/opq-base-refiner/kodak24.json
    python benchmarks/opq_base_refiner.py DIR --base opq-32-8-8 --steps 4 --k 64 --atoms 1   # coded steps
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from diffcodec import atomic, container, metrics
from diffcodec.bench import collect_images, load_rgb
from diffcodec.methods import get_codec
from diffcodec.methods.ddcm.priors import BASE_MODEL, CLIP_MODEL

REFINERS = (BASE_MODEL, CLIP_MODEL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images")
    ap.add_argument("--base", nargs="+", default=["opq-32-8-8"])
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--k", type=int)
    ap.add_argument("--atoms", type=int)
    ap.add_argument("--out")
    args = ap.parse_args()
    codec = get_codec("ddcm")
    coded = {k: v for k, v in (("k", args.k), ("atoms", args.atoms)) if v is not None}
    report: dict = {"command": "python benchmarks/opq_base_refiner.py " + " ".join(
        [args.images, "--base", *args.base, "--steps", str(args.steps)]
        + [f"--{k} {v}" for k, v in coded.items()]), "date": time.strftime("%Y-%m-%d"), "bases": {}}
    paths = collect_images([args.images])
    for base in args.base:
        rows = []
        for path in paths:
            img = load_rgb(path)
            h, w = img.shape[:2]
            row: dict = {"image": path.name}
            for refiner in REFINERS:
                params = {"base": base, "steps": args.steps, "refine": True, "refiner": refiner, "device": "cpu",
                          **coded}
                encoded, recon = codec.compress_with_reconstruction(img, **params)
                size = container.framed_size("ddcm", encoded, w, h, img.shape[2])
                row[refiner] = {"bpp": size * 8 / (h * w), "psnr": metrics.psnr(img, recon),
                                "ms_ssim": metrics.ms_ssim(img, recon)}
            rows.append(row)
            print(base, path.name, " ".join(f"{r}: {row[r]['psnr']:.3f} dB {row[r]['bpp']:.4f} bpp"
                                            for r in REFINERS), flush=True)
        gain = np.array([r[CLIP_MODEL]["psnr"] - r[BASE_MODEL]["psnr"] for r in rows])
        mean = {r: {m: float(np.mean([row[r][m] for row in rows])) for m in ("bpp", "psnr", "ms_ssim")}
                for r in REFINERS}
        report["bases"][base] = {"images": rows, "mean": mean, "psnr_gain_mean": float(gain.mean()),
                                 "psnr_gain_min": float(gain.min()), "images_gaining": int((gain > 0).sum())}
        print(f"{base}: " + "  ".join(f"{r} {mean[r]['bpp']:.4f} bpp {mean[r]['psnr']:.3f} dB "
                                      f"{mean[r]['ms_ssim']:.4f}" for r in REFINERS)
              + f"  gain {gain.mean():+.3f} dB (min {gain.min():+.3f}, {(gain > 0).sum()}/{len(gain)} images)")
    if args.out:
        atomic.write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
