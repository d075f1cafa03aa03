"""Images for the networks: finding and reading image files, and converting between uint8 arrays and tensors.

Images are float tensors in [-1, 1], NCHW, RGB. Grey images are repeated to 3 channels, alpha is dropped,
16-bit images are reduced to 8 bits. Training crops (random and fixed validation ones) are in
:mod:`diffcodec.training.data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from diffcodec.errors import UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")


def list_images(folders: Path | str | Iterable[Path | str], recursive: bool = False) -> list[Path]:
    """Image files in the folders (sorted by path within each folder; a file path is taken as is)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise UsageError(f"image folder {folder} does not exist")
        it = folder.rglob("*") if recursive else folder.iterdir()
        files.extend(sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
    return files


def load_image_rgb(path: Path | str) -> np.ndarray:
    """uint8 (H, W, 3) RGB array of an image file."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(img)
                a = (a.astype(np.int64) >> 8).clip(0, 255).astype(np.uint8) if a.dtype != np.uint8 else a
                arr = np.repeat(a[..., None], 3, axis=2)
            else:
                arr = np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read image {path}: {e}") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)


def gray_to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 1) -> (H, W, 3) by replication; (H, W, 3) unchanged. For RGB networks serving grayscale."""
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def rgb_to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Back from :func:`gray_to_rgb`: (H, W, 3) unchanged for 3 channels, else the channel mean rounded
    half up in exact integer arithmetic, (H, W, 1) uint8."""
    if channels == 3:
        return rgb
    s = rgb.astype(np.int32).sum(axis=2, keepdims=True)
    return ((2 * s + 3) // 6).astype(np.uint8)


def to_tensor(batch_hwc: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.require(batch_hwc, requirements=["C", "W"])).permute(0, 3, 1, 2).to(torch.float32)
    return t.div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
