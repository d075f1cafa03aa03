"""Fewer strided steps with more atoms (Turbo-DDCM's trade) at equal bits, per ddcm mode.

For each image (Kodak, evaluation only), each rate and each step count N, ddcm encodes with `--steps N --bpp R`
(K = 4096): `--bpp` then picks the largest atoms M that fits (up to --max-atoms), so every N spends about the
same bits. The encoder's own reconstruction is scored (decoding reproduces it exactly on the same machine: see
tests/test_ddcm.py), so only encode time is measured; a decode costs about the same denoiser passes.

Rates: in `latent` / `pixel` mode R is the whole file's bpp; in `base` mode (conditional ddcm on an opq base
layer) R is the bpp *added* to each image's own base layer, so every image gets the same refinement budget.

    python benchmarks/ddcm_steps.py [KODAK_DIR] --mode base --steps 2,3,5,10,20 --rates 0.03,0.1 --limit 6 \
        --out benchmarks/results/ddcm-steps-base
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffcodec.data import list_images, load_image_rgb
from diffcodec.methods import ddcm
from diffcodec.metrics import ms_ssim, psnr

BASE_PRESET = "opq-16-8-8"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--mode", default="latent", choices=["latent", "pixel", "base"])
    ap.add_argument("--steps", default="5,10,20", help="step counts N to compare")
    ap.add_argument("--rates", default="0.02,0.05", help="bpp (base mode: bpp on top of the base layer)")
    ap.add_argument("--limit", type=int, default=6, help="first N images (sorted)")
    ap.add_argument("--every", type=int, default=4, help="take every n-th image (spread over the set)")
    ap.add_argument("--max-atoms", type=int, default=ddcm.MAX_AUTO_ATOMS, help="cap on the atoms --bpp picks")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench-out/ddcm-steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ddcm.MAX_AUTO_ATOMS = args.max_atoms       # what choose_params may pick (the format allows up to MAX_ATOMS)
    paths = list_images(args.images)[::args.every][:args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    codec = ddcm.DDCMCodec()
    extra = {"base": BASE_PRESET} if args.mode == "base" else {"space": args.mode}
    rows, per_image = [], []
    for rate in (float(r) for r in args.rates.split(",")):
        for n in (int(s) for s in args.steps.split(",")):
            ims = []
            for path in paths:
                img = load_image_rgb(path)
                h, w, _ = img.shape
                target = rate
                if args.mode == "base":
                    target += len(ddcm.code_base(img, BASE_PRESET).data) * 8 / (h * w)
                t0 = time.perf_counter()
                enc, rec = codec.compress_with_reconstruction(img, steps=n, bpp=target, k=4096, device="cpu",
                                                              precision=args.precision, **extra)
                t_enc = time.perf_counter() - t0
                bits = sum(len(c) for c in enc.chunks) * 8
                r = {"image": Path(path).name, "rate": rate, "steps": n, "atoms": enc.params["m"],
                     "target_bpp": target, "payload_bpp": bits / (h * w), "psnr": psnr(img, rec),
                     "ms_ssim": float(ms_ssim(img, rec)), "encode_s": t_enc}
                ims.append(r)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
            per_image += ims
            rows.append({"rate": rate, "steps": n, "atoms": f"{min(r['atoms'] for r in ims)}-"
                                                             f"{max(r['atoms'] for r in ims)}",
                         **{key: float(np.mean([r[key] for r in ims]))
                            for key in ("payload_bpp", "psnr", "ms_ssim", "encode_s")}})
    (out / "images.json").write_text(json.dumps(per_image, indent=1))
    (out / "summary.json").write_text(json.dumps({"args": vars(args), "images": [Path(p).name for p in paths],
                                                  "rows": rows}, indent=1))
    print(f"\n{args.mode}, {len(paths)} images ({', '.join(Path(p).name for p in paths)})")
    print("| rate | N | M | payload bpp | PSNR | MS-SSIM | encode s |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['rate']:g} | {r['steps']} | {r['atoms']} | {r['payload_bpp']:.4f} | {r['psnr']:.2f} | "
              f"{r['ms_ssim']:.4f} | {r['encode_s']:.1f} |")


if __name__ == "__main__":
    main()
