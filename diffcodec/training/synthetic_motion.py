"""Synthetic motion made from still images (issue #16, item 4): the clips of ../shared/data/video are few, short
and kept for evaluation, so temporal models train on short sequences made by moving a still photo: a random pan
(sub-pixel), zoom and small rotation per frame, and a brightness drift. Each sequence ends at the still itself
(the training target keeps its full sharpness); the frames before it are resampled (bilinear, edges reflected)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Motion:
    """The change from one frame to the next: content moves by (dy, dx) pixels, scales by ``zoom`` and turns by
    ``angle`` degrees about the centre; brightness is multiplied by ``gain``."""

    dy: float = 0.0
    dx: float = 0.0
    zoom: float = 1.0
    angle: float = 0.0
    gain: float = 1.0


# Ranges per frame: a pan of up to 6 px, 3 % zoom and 1.5 degrees covers the motion of the test clips at CIF
# (bus: a pan of ~4 px per frame) and stays within the +-16 px reach of the block motion search.
MAX_PAN, MAX_ZOOM, MAX_ANGLE, MAX_GAIN = 6.0, 0.03, 1.5, 0.03


def random_motion(rng: np.random.Generator, still_fraction: float = 0.1) -> Motion:
    """A random frame-to-frame motion; ``still_fraction`` of them are no motion at all (static shots)."""
    if rng.random() < still_fraction:
        return Motion()
    u = rng.uniform(-1.0, 1.0, size=5)
    return Motion(dy=float(u[0] * MAX_PAN), dx=float(u[1] * MAX_PAN), zoom=float(1.0 + u[2] * MAX_ZOOM),
                  angle=float(u[3] * MAX_ANGLE), gain=float(1.0 + u[4] * MAX_GAIN))


def undo(frame: np.ndarray, motion: Motion) -> np.ndarray:
    """The frame before ``frame`` (uint8 (H, W, 3)) under ``motion``: each pixel p of the result is ``frame`` at the
    point that p moves to, divided by the gain."""
    import torch
    import torch.nn.functional as F

    h, w = frame.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    a = math.radians(motion.angle)
    cos, sin = math.cos(a) * motion.zoom, math.sin(a) * motion.zoom
    # normalised coordinates (align_corners=False): the point p moves to is A p + t
    theta = torch.tensor([[cos, -sin * h / w, 2.0 * motion.dx / w],
                          [sin * w / h, cos, 2.0 * motion.dy / h]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False) / motion.gain
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def sequence(still: np.ndarray, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` frames uint8 (H, W, 3) in time order that end at ``still``, each moved from the one before by a
    random motion."""
    out = [np.ascontiguousarray(still)]
    for _ in range(frames - 1):
        out.append(undo(out[-1], random_motion(rng)))
    return out[::-1]
