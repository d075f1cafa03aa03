"""Full-reference image quality metrics and rate measures.

All metrics take two uint8 arrays of the same shape, either (H, W, 3) RGB or (H, W) / (H, W, 1) grayscale,
the reference first. Grayscale images are treated as one channel.

- :func:`psnr`: PSNR over all channels, peak 255; ``inf`` for identical images.
- :func:`psnr_y`: PSNR of the BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B (full range, float64, not rounded);
  for grayscale input the gray values are the luma.
- :func:`ssim`, :func:`ms_ssim`: from ``pytorch_msssim`` (data_range=255, Gaussian window 11 / sigma 1.5,
  float32 CPU tensors in NCHW layout: faster than float64 on the CPU, and within 1e-6 of it).
  MS-SSIM with its default 5 scales needs the smaller image side to be larger than 160 px; for smaller images
  :func:`ms_ssim` returns ``float('nan')`` instead of failing.
"""

from __future__ import annotations

import math

import numpy as np

from diffcodec.errors import UsageError

MS_SSIM_MIN_SIDE = 161   # pytorch_msssim asserts min(H, W) > (win_size - 1) * 2 ** 4 = 160

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise UsageError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise UsageError(f"expected an (H, W, 3) or (H, W) image, got shape {a.shape}")
    if a.size == 0:
        raise UsageError("empty image")
    return a, b


def _psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    if mse == 0:
        return math.inf
    return float(10.0 * math.log10(peak * peak / mse))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels (peak 255); ``inf`` when the images are identical."""
    a, b = _check_pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return _psnr_from_mse(float(np.mean(d * d)))


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma as float64 (H, W); grayscale input is returned as float64 unchanged."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    return img.astype(np.float64) @ _LUMA


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of the BT.601 luma (computed in float64, not rounded to integers)."""
    a, b = _check_pair(a, b)
    d = luma(a) - luma(b)
    return _psnr_from_mse(float(np.mean(d * d)))


def _to_tensor(img: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(img).astype(np.float32))
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    return x.permute(2, 0, 1).unsqueeze(0)   # NCHW


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (pytorch_msssim, data_range=255, 11x11 Gaussian window)."""
    a, b = _check_pair(a, b)
    import torch
    from pytorch_msssim import ssim as _ssim

    with torch.no_grad():
        return float(_ssim(_to_tensor(a), _to_tensor(b), data_range=255, size_average=True).item())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM with the default 5 scales (pytorch_msssim, data_range=255).

    Returns ``float('nan')`` when the smaller image side is <= 160 px, which the 5-scale pyramid needs.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[0], a.shape[1]) < MS_SSIM_MIN_SIDE:
        return float("nan")
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    with torch.no_grad():
        return float(_ms_ssim(_to_tensor(a), _to_tensor(b), data_range=255, size_average=True).item())


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel: 8 * num_bytes / (height * width)."""
    if height <= 0 or width <= 0:
        raise UsageError(f"bad image size {height}x{width}")
    return 8.0 * num_bytes / (height * width)


def compression_ratio(num_bytes: int, height: int, width: int, channels: int = 3) -> float:
    """Raw 8-bit size (height * width * channels bytes) divided by the file size; ``inf`` for 0 bytes."""
    if height <= 0 or width <= 0 or channels <= 0:
        raise UsageError(f"bad image size {height}x{width}x{channels}")
    if num_bytes <= 0:
        return math.inf
    return height * width * channels / num_bytes


def compare(original: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """All metrics of `decoded` against `original`: psnr, psnr_y, ssim, ms_ssim (nan when too small)."""
    return {
        "psnr": psnr(original, decoded),
        "psnr_y": psnr_y(original, decoded),
        "ssim": ssim(original, decoded),
        "ms_ssim": ms_ssim(original, decoded),
    }
