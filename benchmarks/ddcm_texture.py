"""ddcm's texture option (`--texture`: stochastic coded refinement steps) against the default free refiner step, at
equal --bpp: file size, PSNR, MS-SSIM and SSIMULACRA 2 per image, and crops (original | default | texture) into
an output folder.

    OMP_NUM_THREADS=1 python benchmarks/ddcm_texture.py --bpp 0.2,0.5 --out docs/texture \
        ../shared/data/kodak/kodim05.png ../shared/data/kodak/kodim13.png ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from diffcodec import api, artifacts, metrics, perceptual


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--bpp", default="0.2,0.5")
    ap.add_argument("--out", default="docs/texture")
    ap.add_argument("--crop", type=int, default=192, help="side of the centre crop written per image")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sha = artifacts.load_artifact("models/codec-refiner")[2]
    print(f"codec-refiner sha256 {sha[:12]}")
    print("| image | bpp target | mode | bytes | base | PSNR | MS-SSIM | SSIMULACRA 2 |")
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for path in args.images:
        img = np.asarray(Image.open(path).convert("RGB"))
        name = Path(path).stem
        for bpp in (float(b) for b in args.bpp.split(",")):
            crops = [img]
            for mode, extra in (("default", {}), ("texture", {"texture": True})):
                data = api.encode(img, method="ddcm", bpp=bpp, device="cpu", **extra)
                dec = api.decode(data, device="cpu")
                params = api.info(data)["params"]
                print(f"| {name} | {bpp:g} | {mode} | {len(data)} | {params.get('b')} | {metrics.psnr(img, dec):.2f} | "
                      f"{metrics.ms_ssim(img, dec):.4f} | {perceptual.ssimulacra2(img, dec):.2f} |", flush=True)
                crops.append(dec)
            h, w = img.shape[:2]
            s = args.crop
            y, x = (h - s) // 2, (w - s) // 2
            strip = np.concatenate([c[y:y + s, x:x + s] for c in crops], axis=1)
            Image.fromarray(strip).save(out / f"{name}_bpp{bpp:g}.png")


if __name__ == "__main__":
    main()
