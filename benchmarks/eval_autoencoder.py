"""Reconstruction quality and speed of the first-stage autoencoder(s) on Kodak24 (the bound on every latent
method's quality): PSNR (RGB, 8-bit), MS-SSIM, encode/decode seconds per image, parameters, latent size.

    python benchmarks/eval_autoencoder.py [KODAK_DIR] --models models/latent-ae [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffcodec import metrics
from diffcodec.bench import collect_images, load_rgb
from diffcodec.latent import load_latent_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--models", nargs="+", default=["models/latent-ae"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--out", default="benchmarks/results/latent-ae/kodak24.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = collect_images([args.images])[: args.limit]
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {args.device}, "
              f"{torch.get_num_threads()} torch threads", "images": len(files), "models": []}
    for name in args.models:
        space = load_latent_space(name, args.device)
        p, m, enc, dec = [], [], [], []
        for f in files:
            img = load_rgb(f)
            h, w = img.shape[:2]
            t0 = time.perf_counter()
            z = space.encode_image(img)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            out = space.decode_latent(z, h, w)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
            p.append(metrics.psnr(img, out))
            m.append(metrics.ms_ssim(img, out))
        c, lh, lw = space.latent_shape(768, 512)
        row = {"model": name, "config": space.autoencoder.config, "params": space.autoencoder.num_parameters(),
               "sha256": space.sha256[:16], "latent_768x512": [c, lh, lw],
               "psnr": round(float(np.mean(p)), 3), "ms_ssim": round(float(np.mean(m)), 4),
               "psnr_min": round(float(np.min(p)), 2), "psnr_max": round(float(np.max(p)), 2),
               "encode_s": round(float(np.mean(enc)), 3), "decode_s": round(float(np.mean(dec)), 3),
               "per_image": {f.name: [round(a, 3), round(b, 4)] for f, a, b in zip(files, p, m)}}
        report["models"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_image"}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
