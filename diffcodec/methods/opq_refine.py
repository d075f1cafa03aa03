"""Diffusion refinement of OPQ-decoded images (`diffcodec decode --refine`).

The refiner is a conditional denoiser (the engine's UNet with 3 extra input channels): its condition is the
OPQ-decoded image, its target the original. Decoding samples it with deterministic DDIM (eta = 0) from a
seeded CPU Gaussian, so a refined decode is repeatable on the same machine:

    OPQ decode --> cond (3ch, [-1, 1]) --+
    x_T ~ N(0, I) (seeded) --> UNet(x_t, t, cond) x N strided DDIM steps --> refined image

Training pairs are made on the fly by :class:`OPQDegrade`: every crop is quantized with a randomly chosen
opq preset, so one refiner serves several rates.
"""

from __future__ import annotations

import numpy as np

from diffcodec.data import gray_to_rgb, rgb_to_channels, to_tensor, to_uint8
from diffcodec.errors import UsageError

REFINER_NAME = "models/opq-refiner"
TRAIN_PRESETS = ("opq-16-8-8", "opq-32-8-8", "opq-64-16-16")
DEFAULT_STEPS = 1
MAX_STEPS = 50


class OPQDegrade:
    """`make_condition` for training: OPQ round trip (no entropy coding) of each crop of a batch."""

    def __init__(self, presets=TRAIN_PRESETS, seed: int = 0):
        from diffcodec.methods.opq import OPQCodec

        self.presets = tuple(presets)
        self.codec = OPQCodec()
        self.rng = np.random.default_rng(seed)

    def __call__(self, x0):
        images = to_uint8(x0)
        recon = np.stack([self.codec.quantize(img, str(self.rng.choice(self.presets)))[1] for img in images])
        return to_tensor(recon).to(x0.device)


def refine(image: np.ndarray, steps: int | None = None, device: str = "cpu", seed: int = 0) -> np.ndarray:
    """Refine an OPQ-decoded uint8 (H, W, 3) or (H, W, 1) image (steps None: DEFAULT_STEPS); returns the
    same shape and dtype."""
    import torch

    from diffcodec.diffusion.samplers import randn_cpu, sample_ddim, strided_timesteps, x0_predictor
    from diffcodec.diffusion.models import load_denoiser
    from diffcodec.progress import bar

    steps = DEFAULT_STEPS if steps is None else steps
    if not 1 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps must be in 1..{MAX_STEPS}, got {steps}")
    rgb = gray_to_rgb(image)
    model, schedule, parameterization, _ = load_denoiser(REFINER_NAME, device)
    cond = to_tensor(rgb[None]).to(device)
    generator = torch.Generator().manual_seed(seed)
    x_T = randn_cpu(cond.shape, generator, device)
    timesteps = strided_timesteps(schedule.T, steps)
    steps_bar = bar(total=len(timesteps), desc="refine", unit="step")
    with torch.inference_mode(), steps_bar:
        out = sample_ddim(x0_predictor(model, schedule, parameterization), x_T, timesteps, schedule, None,
                          eta=0.0, cond=cond, callback=lambda *_: steps_bar.update())
    return rgb_to_channels(to_uint8(out)[0], image.shape[2])
