"""Evaluate the latent diffusion prior (`models/latent-ddpm` on `models/latent-ae` latents).

1. Denoising in latent space on Kodak24 centre crops (evaluation only, never trained on): for several
   timesteps t, the PSNR (peak-to-peak 2, unit-variance latents) of the noisy latent x_t / alpha_t and of the
   model's one-shot x0 prediction, and the pixel PSNR of the *decoded* x0 prediction against the decoded
   clean latent (what the prediction is worth as an image).
2. A grid of unconditional samples (ancestral DDPM, strided steps), decoded by the autoencoder, written to
   docs/latent-ddpm-samples.png.

    python benchmarks/eval_latent_prior.py [KODAK_DIR] --out benchmarks/results/latent-ddpm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffcodec.data import list_images, load_image_rgb, to_tensor, to_uint8
from diffcodec.diffusion.samplers import gaussian_noise_sampler, sample_ddpm, strided_timesteps, x0_predictor
from diffcodec.latent import load_latent_prior, load_latent_space
from diffcodec.metrics import psnr as psnr_u8
from diffcodec.training.denoiser import psnr

TIMESTEPS = (50, 150, 300, 500, 750)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y:y + size, x:x + size]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--sample-size", type=int, default=256)
    ap.add_argument("--sample-steps", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/results/latent-ddpm")
    ap.add_argument("--grid", default="docs/latent-ddpm-samples.png")
    args = ap.parse_args()
    space = load_latent_space()
    model, schedule, param, manifest = load_latent_prior()
    if manifest.get("autoencoder_sha256") != space.sha256:
        raise SystemExit("latent-ddpm was trained on another autoencoder")
    fn = x0_predictor(model, schedule, param, clip=None)
    crops = [centre_crop(load_image_rgb(p), args.crop) for p in list_images(args.images)]
    x_img = to_tensor(np.stack(crops))
    z0 = torch.cat([space.autoencoder.encode(x_img[i:i + 8]) for i in range(0, len(x_img), 8)])
    ref = to_uint8(space.autoencoder.decode(z0))
    gen = torch.Generator().manual_seed(1234)
    rows = []
    for t in TIMESTEPS:
        noise = torch.randn(z0.shape, generator=gen)
        tb = torch.full((len(z0),), t, dtype=torch.long)
        z_t = schedule.q_sample(z0, tb, noise)
        z_hat = torch.cat([fn(z_t[i:i + 8], tb[i:i + 8]) for i in range(0, len(z0), 8)])
        dec = to_uint8(space.autoencoder.decode(z_hat))
        rows.append({
            "t": t, "noise_std": round(float(schedule.sigma[t] / schedule.alpha[t]), 3),
            "latent_psnr_input": round(float(psnr((z_t / schedule.take("alpha", tb, z_t)), z0).mean()), 2),
            "latent_psnr_x0_pred": round(float(psnr(z_hat, z0).mean()), 2),
            "decoded_psnr_x0_pred": round(float(np.mean([psnr_u8(a, b) for a, b in zip(ref, dec)])), 2),
        })
        print(json.dumps(rows[-1]), flush=True)
    # samples
    from PIL import Image

    s = args.sample_size // space.factor
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    x_T = torch.randn((args.samples, space.channels, s, s), generator=gen)
    z = sample_ddpm(fn, x_T, strided_timesteps(schedule.T, args.sample_steps), schedule, gaussian_noise_sampler(gen))
    imgs = to_uint8(space.autoencoder.decode(z))
    secs = time.perf_counter() - t0
    cols = min(4, args.samples)
    rws = -(-args.samples // cols)
    grid = np.full((rws * args.sample_size, cols * args.sample_size, 3), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        grid[r * args.sample_size:(r + 1) * args.sample_size, c * args.sample_size:(c + 1) * args.sample_size] = im
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.grid)
    out = {"date": time.strftime("%Y-%m-%d"), "kodak_crops": len(crops), "crop": args.crop,
           "prior_sha256": manifest["sha256"][:16], "autoencoder_sha256": space.sha256[:16],
           "denoising": rows, "samples": {"n": args.samples, "size": args.sample_size, "steps": args.sample_steps,
                                          "seconds": round(secs, 1), "grid": args.grid}}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "eval.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
