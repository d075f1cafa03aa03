"""Diffusion refinement of OPQ-decoded images (`diffcodec decode --refine`).

The refiner is a conditional denoiser (the engine's UNet with 3 extra input channels): its condition is the
OPQ-decoded image, its target the original. Decoding samples it with deterministic DDIM (eta = 0) from a
seeded CPU Gaussian, so a refined decode is repeatable on the same machine:

    OPQ decode --> cond (3ch, [-1, 1]) --+
    x_T ~ N(0, I) (seeded) --> UNet(x_t, t, cond) x N strided DDIM steps --> refined image

Training (:mod:`diffcodec.training.degrade`) makes its pairs on the fly: every crop is quantized with a randomly
chosen opq preset, so one refiner serves several rates.
"""

from __future__ import annotations

import numpy as np

from diffcodec.data import gray_to_rgb, rgb_to_channels, to_tensor, to_uint8
from diffcodec.errors import UsageError

REFINER_NAME = "models/opq-refiner"
DEFAULT_STEPS = 1
MAX_STEPS = 50


def refine(image: np.ndarray, steps: int | None = None, device: str = "cpu", seed: int = 0) -> np.ndarray:
    """Refine an OPQ-decoded uint8 (H, W, 3) or (H, W, 1) image (steps None: DEFAULT_STEPS); returns the
    same shape and dtype."""
    rgb = gray_to_rgb(image)
    out = run_refiner(REFINER_NAME, to_tensor(rgb[None]), steps, device, seed)
    return rgb_to_channels(out, image.shape[2])


def run_refiner(name: str, cond, steps: int | None, device: str, seed: int) -> np.ndarray:
    """Sample refiner ``name`` (a conditional x0 denoiser whose first three condition channels are the image it
    corrects) on condition ``cond`` (1, C, H, W): deterministic DDIM (eta 0) over ``steps`` strided steps from
    seeded CPU noise. Returns uint8 (H, W, 3)."""
    import torch

    from diffcodec.diffusion.models import load_denoiser
    from diffcodec.diffusion.samplers import randn_cpu, sample_ddim, strided_timesteps, x0_predictor
    from diffcodec.progress import bar

    steps = DEFAULT_STEPS if steps is None else steps
    if not 1 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps must be in 1..{MAX_STEPS}, got {steps}")
    model, schedule, parameterization, _ = load_denoiser(name, device)
    cond = cond.to(device)
    generator = torch.Generator().manual_seed(seed)
    x_T = randn_cpu((cond.shape[0], 3, *cond.shape[2:]), generator, device)
    timesteps = strided_timesteps(schedule.T, steps)
    steps_bar = bar(total=len(timesteps), desc="refine", unit="step")
    with torch.inference_mode(), steps_bar:
        out = sample_ddim(x0_predictor(model, schedule, parameterization), x_T, timesteps, schedule, None,
                          eta=0.0, cond=cond, callback=lambda *_: steps_bar.update())
    return to_uint8(out)[0]
