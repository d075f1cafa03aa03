"""The refiner over standard-codec base layers (`models/codec-refiner`): a conditional denoiser whose condition
is a decoded base image plus what kind of base it is and how coarse.

Condition layout (``CONDITION_CHANNELS`` = 8, all in [-1, 1] or [0, 1], at the image's size):

    0..2   the decoded base image, RGB in [-1, 1] (the UNet's residual adds its output to these)
    3..6   one-hot base kind, in BASE_KINDS order: opq, jpeg, webp, avif
    7      coarseness: quality / 100 for jpeg, webp and avif; Y bits per 8x8 patch / 128 for opq

Training (``diffcodec train codec-refiner``) and decoding build the condition with the same
:func:`condition`, so the layout is defined once, here.
"""

from __future__ import annotations

import numpy as np

from diffcodec.errors import UsageError

REFINER_NAME = "models/codec-refiner"
BASE_KINDS = ("opq", "jpeg", "webp", "avif")
CONDITION_CHANNELS = 3 + len(BASE_KINDS) + 1


def coarseness(kind: str, quality: int | str) -> float:
    """The condition's coarseness value: quality / 100 for standard codecs; for opq (``quality`` = the preset,
    e.g. "opq-32-8-8") its Y bits per patch / 128."""
    if kind not in BASE_KINDS:
        raise UsageError(f"unknown base kind {kind!r} (one of {', '.join(BASE_KINDS)})")
    if kind == "opq":
        from diffcodec.methods.opq import PRESETS

        if quality not in PRESETS:
            raise UsageError(f"unknown opq preset {quality!r}")
        return PRESETS[str(quality)][0] / 128.0
    q = int(quality)
    if not 0 <= q <= 100:
        raise UsageError(f"{kind} quality must be in 0..100, got {q}")
    return q / 100.0


def condition_planes(kind: str, quality: int | str, height: int, width: int) -> np.ndarray:
    """Channels 3..7 of the condition, float32 (5, height, width)."""
    planes = np.zeros((len(BASE_KINDS) + 1, height, width), dtype=np.float32)
    planes[BASE_KINDS.index(kind)] = 1.0
    planes[-1] = coarseness(kind, quality)
    return planes


def condition(base_rgb: np.ndarray, kind: str, quality: int | str):
    """The refiner's condition for a batch of decoded base images uint8 (B, H, W, 3): torch (B, 8, H, W)."""
    import torch

    from diffcodec.data import to_tensor

    b, h, w, _ = base_rgb.shape
    planes = torch.from_numpy(condition_planes(kind, quality, h, w))[None].expand(b, -1, -1, -1)
    return torch.cat([to_tensor(base_rgb), planes], dim=1)


def refine(base: np.ndarray, kind: str, quality: int | str, steps: int | None = None, device: str = "cpu",
           seed: int = 0) -> np.ndarray:
    """Refine a decoded base image uint8 (H, W, 3) or (H, W, 1) of ``kind`` at ``quality`` (deterministic DDIM
    from seeded CPU noise, as the opq refiner); returns the same shape."""
    from diffcodec.data import gray_to_rgb, rgb_to_channels
    from diffcodec.methods.opq_refine import run_refiner

    rgb = gray_to_rgb(base)
    return rgb_to_channels(run_refiner(REFINER_NAME, condition(rgb[None], kind, quality), steps, device, seed),
                           base.shape[2])
