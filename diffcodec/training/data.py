"""Training data: every image of some folders held in memory as uint8, served as random crops, and fixed
validation crops.

Images are float tensors in [-1, 1], NCHW, RGB (read by :func:`diffcodec.data.load_image_rgb`: grey images are
repeated to 3 channels, alpha is dropped, 16-bit images are reduced to 8 bits).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from diffcodec.data import IMAGE_EXTENSIONS, list_images, load_image_rgb, to_tensor
from diffcodec.errors import UsageError


def _fit_to_crop(img: np.ndarray, crop: int) -> np.ndarray:
    """Upscale (bicubic) an image whose short side is below ``crop`` so that it equals ``crop``."""
    h, w = img.shape[:2]
    if min(h, w) >= crop:
        return img
    from PIL import Image

    s = crop / min(h, w)
    size = (max(crop, math.ceil(w * s)), max(crop, math.ceil(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))


class ImageFolderCrops:
    """All images of ``folders`` in memory (uint8), served as random ``crop`` x ``crop`` crops.

    ``batch(n, rng)`` draws ``n`` crops: the image is picked with probability proportional to its area (so every
    pixel is about equally likely), the position uniformly, then (``flips``) a horizontal and a vertical flip
    each with probability 1/2 and (``rot90``) a random multiple of 90 degrees. Images smaller than the crop are
    upscaled (bicubic) so their short side equals the crop. Also usable as an endless iterator of batches.
    """

    def __init__(
        self,
        folders: Sequence[Path | str] | Path | str,
        crop: int = 64,
        flips: bool = True,
        *,
        rot90: bool = False,
        recursive: bool = False,
        max_images: int | None = None,
        batch_size: int = 16,
        seed: int | None = None,
    ):
        self.crop = int(crop)
        self.flips = bool(flips)
        self.rot90 = bool(rot90)
        self.batch_size = int(batch_size)
        self.files = list_images(folders, recursive)
        if max_images is not None:
            self.files = self.files[: int(max_images)]
        if not self.files:
            raise UsageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folders}")
        self.images: list[np.ndarray] = [_fit_to_crop(load_image_rgb(p), self.crop) for p in self.files]
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.probs = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_pixels(self) -> int:
        return int(sum(im.shape[0] * im.shape[1] for im in self.images))

    def batch_uint8(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = self.rng if rng is None else rng
        c = self.crop
        out = np.empty((n, c, c, 3), dtype=np.uint8)
        idx = rng.choice(len(self.images), size=n, p=self.probs)
        for k, i in enumerate(idx):
            img = self.images[i]
            h, w = img.shape[:2]
            y = int(rng.integers(0, h - c + 1))
            x = int(rng.integers(0, w - c + 1))
            patch = img[y:y + c, x:x + c]
            if self.flips:
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                if rng.random() < 0.5:
                    patch = patch[::-1]
            if self.rot90:
                patch = np.rot90(patch, int(rng.integers(0, 4)))
            out[k] = patch
        return out

    def batch(self, n: int | None = None, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(n, 3, crop, crop) float32 in [-1, 1]."""
        return to_tensor(self.batch_uint8(self.batch_size if n is None else n, rng))

    def __iter__(self):
        while True:
            yield self.batch()


def _crop_positions(h: int, w: int, c: int, count: int) -> list[tuple[int, int]]:
    """Fixed, well spread crop positions: the centre first, then the R2 low-discrepancy sequence."""
    g = 1.32471795724474602596  # plastic number
    a1, a2 = 1.0 / g, 1.0 / (g * g)
    out = []
    for r in range(count):
        if r == 0:
            fy = fx = 0.5
        else:
            fy, fx = (0.5 + a1 * r) % 1.0, (0.5 + a2 * r) % 1.0
        out.append((int(round(fy * (h - c))), int(round(fx * (w - c)))))
    return out


def validation_crops(folder: Path | str | Sequence[Path | str], crop: int, n: int) -> torch.Tensor:
    """``n`` deterministic crops (n, 3, crop, crop) in [-1, 1] from the images in ``folder`` (sorted by name):
    crop k comes from image ``k % num_images``; an image's r-th crop is its centre for r = 0, then positions
    from the R2 low-discrepancy sequence. No flips. Same files -> same crops, on any machine."""
    files = list_images(folder)
    if not files:
        raise UsageError(f"no validation images found in {folder}")
    crop, n = int(crop), int(n)
    counts = [len(range(j, n, len(files))) for j in range(len(files))]
    per_image: dict[int, list[np.ndarray]] = {}
    for j, path in enumerate(files):
        if counts[j] == 0:
            break
        img = _fit_to_crop(load_image_rgb(path), crop)
        h, w = img.shape[:2]
        per_image[j] = [img[y:y + crop, x:x + crop] for y, x in _crop_positions(h, w, crop, counts[j])]
    if not n:
        return to_tensor(np.zeros((0, crop, crop, 3), np.uint8))
    out = np.stack([per_image[k % len(files)][k // len(files)] for k in range(n)])
    return to_tensor(out)
