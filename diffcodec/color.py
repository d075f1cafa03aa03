"""Colour conversion and 8x8 patch tiling, written with plain float32 element-wise numpy operations.

Element-wise IEEE operations round identically on every machine (no BLAS, no fused multiply-add in numpy),
so a decoder that uses only these functions reproduces the encoder's pixels bit for bit anywhere.
"""

from __future__ import annotations

import numpy as np

# JPEG / BT.601 full-range YCbCr, centred: Y - 128, Cb - 128, Cr - 128 all lie in [-128, 128).
_F = np.float32


def rgb_to_ycbcr_centered(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) planes Y-128, Cb-128, Cr-128."""
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = _F(0.299) * r + _F(0.587) * g + _F(0.114) * b - _F(128)
    cb = _F(-0.168736) * r + _F(-0.331264) * g + _F(0.5) * b
    cr = _F(0.5) * r + _F(-0.418688) * g + _F(-0.081312) * b
    return np.stack([y, cb, cr])


def ycbcr_centered_to_rgb(planes: np.ndarray) -> np.ndarray:
    """float32 (3, H, W) centred YCbCr -> uint8 (H, W, 3) RGB (round half to even, then clip)."""
    y = planes[0] + _F(128)
    cb, cr = planes[1], planes[2]
    r = y + _F(1.402) * cr
    g = y - _F(0.344136) * cb - _F(0.714136) * cr
    b = y + _F(1.772) * cb
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def gray_to_centered(gray: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> float32 (1, H, W) centred luma."""
    return (gray.astype(np.float32) - _F(128))[None]


def centered_to_gray(planes: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(planes[0] + _F(128)), 0, 255).astype(np.uint8)


def to_patches(plane: np.ndarray, p: int = 8) -> np.ndarray:
    """(H, W) -> (H'/p, W'/p, p*p) non-overlapping patches; edges padded by replication to a multiple of p."""
    h, w = plane.shape
    ph, pw = -h % p, -w % p
    if ph or pw:
        plane = np.pad(plane, ((0, ph), (0, pw)), mode="edge")
    gh, gw = plane.shape[0] // p, plane.shape[1] // p
    return plane.reshape(gh, p, gw, p).transpose(0, 2, 1, 3).reshape(gh, gw, p * p)


def from_patches(patches: np.ndarray, height: int, width: int, p: int = 8) -> np.ndarray:
    """Inverse of :func:`to_patches`, cropping the padding away."""
    gh, gw, _ = patches.shape
    plane = patches.reshape(gh, gw, p, p).transpose(0, 2, 1, 3).reshape(gh * p, gw * p)
    return plane[:height, :width]


# Clip frames coded as YCbCr planes (pixel formats 2 and 3): limited-range samples are stretched to full range
# first, so the planes look like those of rgb_to_ycbcr_centered (what the codebooks were trained on).
_Y_UP, _C_UP = _F(255 / 219), _F(255 / 224)
_Y_DOWN, _C_DOWN = _F(219 / 255), _F(224 / 255)


def planes_to_centered(planes, color_range: str) -> list[np.ndarray]:
    """uint8 (Y, Cb, Cr) planes (any chroma size) -> float32 centred full-range planes."""
    y = planes[0].astype(np.float32)
    chroma = [p.astype(np.float32) - _F(128) for p in planes[1:]]
    if color_range == "limited":
        return [(y - _F(16)) * _Y_UP - _F(128)] + [c * _C_UP for c in chroma]
    return [y - _F(128)] + chroma


def centered_to_planes(planes, color_range: str) -> tuple[np.ndarray, ...]:
    """Inverse of :func:`planes_to_centered`: uint8 planes (round half to even, then clip to 0..255)."""
    if color_range == "limited":
        y = (planes[0] + _F(128)) * _Y_DOWN + _F(16)
        chroma = [c * _C_DOWN + _F(128) for c in planes[1:]]
    else:
        y = planes[0] + _F(128)
        chroma = [c + _F(128) for c in planes[1:]]
    return tuple(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in [y] + chroma)
