"""Full-reference image quality metrics and rate measures.

All metrics take two uint8 arrays of the same shape, either (H, W, 3) RGB or (H, W) / (H, W, 1) grayscale,
the reference first. Grayscale images are treated as one channel.

- :func:`psnr`: PSNR over all channels, peak 255; ``inf`` for identical images.
- :func:`psnr_y`: PSNR of the BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B (full range, float64, not rounded);
  for grayscale input the gray values are the luma. Given video frames (tuples of planes, see
  :mod:`diffcodec.yuv`) instead, it is the PSNR of the coded Y planes themselves.
- :func:`psnr_planes`, :func:`psnr_yuv`: per-frame PSNR of each plane of a video frame, and
  PSNR-YUV = (6 PSNR-Y + PSNR-U + PSNR-V) / 8, the convention of learned video coding papers (per frame,
  on the 8-bit planes, peak 255; a mono frame's PSNR-YUV is its PSNR-Y). A clip's figure is the mean of
  its per-frame values (:func:`sequence_psnr`), not the PSNR of the pooled error; a frame coded losslessly
  has an infinite PSNR and makes the mean infinite.
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


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    a, b = _check_pair(a, b)
    # in row blocks (a big photo would need three float64 copies of itself); sums of integer squares are exact
    # in float64, so the blocks change nothing
    rows = max(1, (1 << 20) // max(1, a[0].size))
    sse = 0.0
    for top in range(0, a.shape[0], rows):
        d = a[top:top + rows].astype(np.float64) - b[top:top + rows].astype(np.float64)
        sse += float(np.sum(d * d))
    return sse / a.size


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels (peak 255); ``inf`` when the images are identical."""
    return _psnr_from_mse(mse(a, b))


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma as float64 (H, W); grayscale input is returned as float64 unchanged."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    return img.astype(np.float64) @ _LUMA


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of the BT.601 luma (computed in float64, not rounded to integers); for video frames given as
    tuples (or lists) of planes, the PSNR of their Y planes."""
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return psnr_planes(a, b)["y"]
    a, b = _check_pair(a, b)
    d = luma(a) - luma(b)
    return _psnr_from_mse(float(np.mean(d * d)))


def _plane_psnr(a: np.ndarray, b: np.ndarray, which: str) -> float:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise UsageError(f"{which} planes differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise UsageError(f"empty {which} plane")
    d = a.astype(np.float64) - b.astype(np.float64)
    return _psnr_from_mse(float(np.mean(d * d)))


def psnr_planes(ref_planes, planes) -> dict[str, float]:
    """PSNR of each plane of one video frame (reference first): ``{"y", "u", "v", "yuv"}``, where
    yuv = (6 y + u + v) / 8; a mono frame gives only ``{"y", "yuv"}`` with yuv = y."""
    ref_planes, planes = tuple(ref_planes), tuple(planes)
    if len(ref_planes) != len(planes) or len(planes) not in (1, 3):
        raise UsageError(f"frames differ in planes: {len(ref_planes)} vs {len(planes)} (1 or 3 expected)")
    y = _plane_psnr(ref_planes[0], planes[0], "Y")
    if len(planes) == 1:
        return {"y": y, "yuv": y}
    u = _plane_psnr(ref_planes[1], planes[1], "U")
    v = _plane_psnr(ref_planes[2], planes[2], "V")
    return {"y": y, "u": u, "v": v, "yuv": (6.0 * y + u + v) / 8.0}


def flicker(ref_prev: np.ndarray, ref: np.ndarray, prev: np.ndarray, cur: np.ndarray) -> float:
    """Temporal flicker of a decoded frame: the mean absolute change from the frame before of the decoded
    plane minus the same for the reference (8-bit units; positive = the decoded clip changes more than the
    source, negative = it freezes what moves)."""
    change = lambda a, b: float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))  # noqa: E731
    return change(cur, prev) - change(ref, ref_prev)


def psnr_yuv(ref_planes, planes) -> float:
    """PSNR-YUV = (6 PSNR-Y + PSNR-U + PSNR-V) / 8 of one video frame (PSNR-Y for a mono frame)."""
    return psnr_planes(ref_planes, planes)["yuv"]


def sequence_psnr(pairs) -> dict[str, float]:
    """Mean of the per-frame :func:`psnr_planes` values over (reference planes, planes) pairs, plus
    ``"frames"``; an iterable, so clips are compared one frame at a time."""
    sums: dict[str, float] = {}
    n = 0
    for ref, dist in pairs:
        for k, v in psnr_planes(ref, dist).items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
    if n == 0:
        raise UsageError("no frames to compare")
    return {**{k: v / n for k, v in sums.items()}, "frames": n}


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
