"""Evaluate the shipped pixel-space denoiser (`models/pixel-ddpm`) on Kodak24 centre crops.

For sigma = 15, 25, 50 (8-bit units): PSNR of the noisy input, of the model's one-shot x0 prediction, of the
best Gaussian filter (oracle-tuned blur width), and of BM3D (the `bm3d` package, if installed). Also writes a
grid of unconditional samples (ancestral DDPM, strided steps) to docs/pixel-ddpm-samples.png. Kodak is
evaluation-only: never trained on.

    python benchmarks/eval_denoiser.py [KODAK_DIR] --out benchmarks/results/pixel-ddpm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffcodec.data import list_images, load_image_rgb, to_uint8
from diffcodec.diffusion.models import load_denoiser
from diffcodec.diffusion.samplers import gaussian_noise_sampler, sample_ddpm, strided_timesteps, x0_predictor
from diffcodec.metrics import psnr

SIGMAS = (15, 25, 50)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y:y + size, x:x + size]


def gaussian_filter_best(noisy: np.ndarray, clean: np.ndarray) -> float:
    from scipy.ndimage import gaussian_filter

    best = -np.inf
    for s in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
        out = np.stack([gaussian_filter(noisy[..., c], s) for c in range(3)], -1)
        best = max(best, psnr(clean, np.clip(np.rint(out), 0, 255).astype(np.uint8)))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--out", default="benchmarks/results/pixel-ddpm")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--bm3d-images", type=int, default=24, help="BM3D is slow: run it on the first N crops")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--sample-size", type=int, default=64)
    ap.add_argument("--sample-steps", type=int, default=250)
    ap.add_argument("--samples-png", default="docs/pixel-ddpm-samples.png", help="where the sample grid goes")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    model, schedule, param, manifest = load_denoiser("models/pixel-ddpm")
    model_fn = x0_predictor(model, schedule, param)
    ratio = schedule.sigma / schedule.alpha
    crops = [centre_crop(load_image_rgb(p), args.crop) for p in list_images(Path(args.images))]
    try:
        import bm3d
    except ImportError:
        bm3d = None
    rng = np.random.default_rng(0)
    results = {}
    for sigma in SIGMAS:
        t = int(np.argmin(np.abs(127.5 * ratio - sigma)))
        rows = {"noisy": [], "model": [], "gaussian_best": [], "bm3d": []}
        t0 = time.perf_counter()
        for i, clean in enumerate(crops):
            noise = rng.standard_normal(clean.shape) * sigma
            noisy_f = clean.astype(np.float64) + noise
            noisy_u8 = np.clip(np.rint(noisy_f), 0, 255).astype(np.uint8)
            rows["noisy"].append(psnr(clean, noisy_u8))
            # x_t = alpha_t * y with y the noisy image in [-1, 1]: noise std alpha_t * sigma/127.5 ~= sigma_t
            y = torch.from_numpy(noisy_f / 127.5 - 1.0).float().permute(2, 0, 1)[None]
            x_t = float(schedule.alpha[t]) * y
            x0 = model_fn(x_t, torch.full((1,), t, dtype=torch.long), None)
            rows["model"].append(psnr(clean, to_uint8(x0)[0]))
            rows["gaussian_best"].append(gaussian_filter_best(noisy_f, clean))
            if bm3d is not None and i < args.bm3d_images:
                den = bm3d.bm3d_rgb(noisy_f / 255.0, sigma / 255.0)
                rows["bm3d"].append(psnr(clean, np.clip(np.rint(den * 255), 0, 255).astype(np.uint8)))
        results[f"sigma{sigma}"] = {
            "t": t, "sigma_8bit_at_t": round(float(127.5 * ratio[t]), 3),
            **{k: round(float(np.mean(v)), 3) for k, v in rows.items() if v},
            "n": len(crops), "n_bm3d": len(rows["bm3d"]), "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"sigma {sigma}: {results[f'sigma{sigma}']}", flush=True)
    # unconditional samples
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(args.samples, 3, args.sample_size, args.sample_size, generator=gen)
    t0 = time.perf_counter()
    samples = sample_ddpm(model_fn, x_T, strided_timesteps(schedule.T, args.sample_steps), schedule,
                          gaussian_noise_sampler(gen))
    sample_s = time.perf_counter() - t0
    imgs = to_uint8(samples)
    n = int(np.ceil(np.sqrt(args.samples)))
    grid = np.full((n * (args.sample_size + 2), n * (args.sample_size + 2), 3), 255, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, n)
        grid[r * (args.sample_size + 2):r * (args.sample_size + 2) + args.sample_size,
             c * (args.sample_size + 2):c * (args.sample_size + 2) + args.sample_size] = im
    from PIL import Image

    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.samples_png)
    results["samples"] = {"png": args.samples_png, "n": args.samples, "size": args.sample_size,
                          "steps": args.sample_steps,
                          "sampler": "ancestral DDPM, strided", "seconds": round(sample_s, 1)}
    results["model"] = {"sha256": manifest.get("sha256"), "steps": manifest.get("steps"),
                        "parameterization": param, "crop": args.crop, "images": args.images}
    (out / "denoise.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
