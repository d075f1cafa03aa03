"""A procedurally generated photo-like test image, so demos and docs need no data files."""

from __future__ import annotations

import numpy as np


def synthetic_image(height: int = 384, width: int = 512, seed: int = 0) -> np.ndarray:
    """Sky gradient, hills, a sun, textured ground and a few sharp edges: uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = yy / height, xx / width
    img = np.empty((height, width, 3))
    img[..., 0] = 110 + 90 * v
    img[..., 1] = 160 + 60 * v
    img[..., 2] = 235 - 40 * v
    sun = (u - 0.75) ** 2 + (v - 0.22) ** 2 < 0.006
    img[sun] = (255, 235, 160)
    hill = v > 0.55 + 0.08 * np.sin(u * 9) + 0.04 * np.sin(u * 23 + 1)
    grass = rng.normal(0, 1, (height, width))
    for _ in range(6):  # cheap blur for a natural-looking texture
        grass = (grass + np.roll(grass, 1, 0) + np.roll(grass, 1, 1) + np.roll(grass, -1, 1)) / 4
    grass = grass / grass.std()
    img[hill, 0] = 70 + 12 * grass[hill] + 30 * v[hill]
    img[hill, 1] = 125 + 18 * grass[hill] + 20 * v[hill]
    img[hill, 2] = 50 + 8 * grass[hill]
    house = (np.abs(u - 0.3) < 0.08) & (v > 0.5) & (v < 0.7)
    img[house] = (180, 60, 50)
    window = (np.abs(u - 0.3) < 0.025) & (v > 0.56) & (v < 0.62)
    img[window] = (250, 240, 200)
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
