"""Planar YUV layouts and the YUV <-> RGB conversions of the video path.

A frame is a tuple of uint8 planes: ``(Y,)`` for ``"mono"``, ``(Y, U, V)`` for ``"420"`` (U and V are
ceil(W/2) x ceil(H/2)) and ``"444"``. The conversions are written out element by element in float64 (no BLAS,
so every machine rounds alike) and round half to even once, at the end.

- :func:`planes_to_rgb`: Y'CbCr -> R'G'B' with the matrix and range of the clip (BT.601 limited by default,
  the Y4M/ffmpeg convention for SD clips; BT.709 and BT.2020 non-constant luminance also). 4:2:0 chroma is
  upsampled by sample repetition (each chroma sample covers its 2x2 luma block), which is what ffmpeg's
  default yuv420p -> rgb24 conversion does; ``upsample="bilinear"`` interpolates instead, centre-sited
  (the JPEG/Y4M ``420jpeg`` siting), which is ffmpeg's ``-sws_flags bilinear+accurate_rnd+full_chroma_int``.
  Measured against that ffmpeg (tests/test_video_io.py, 64x48 with random chroma): with the default the
  largest difference is 3 levels and the mean 0.8 (ffmpeg's fast path truncates where we round, so its
  pictures are about 1 level darker); with bilinear the largest difference is 1 level (under 2% of samples).
  At an odd height ffmpeg leaves its fast path for its filtering scaler: up to 5 levels on a 15x9 frame.
- :func:`rgb_to_planes`: the inverse; 4:2:0 chroma is the mean of each 2x2 block of full-resolution chroma
  (fewer samples at an odd edge), rounded once. ``rgb_to_planes(planes_to_rgb(p))`` returns ``p`` to within
  a level or two except where RGB clipping lost information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffcodec.errors import UsageError

CHROMAS = ("420", "444", "mono")
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}   # (Kr, Kb)
RANGES = ("limited", "full")
UPSAMPLERS = ("nearest", "bilinear")


@dataclass(frozen=True)
class PlanarFrame:
    """A frame handed to a codec as its YCbCr planes (codecs with ``planar_layouts``: no RGB round trip).

    ``planes``: uint8 (Y, Cb, Cr) of ``chroma`` ``"420"`` or ``"444"``; ``color_range``: ``"limited"`` or
    ``"full"`` (the matrix does not matter to a codec that never leaves YCbCr)."""
    planes: tuple[np.ndarray, ...]
    chroma: str
    color_range: str = "limited"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), like the RGB frame it stands for."""
        h, w = np.shape(self.planes[0])
        return h, w, 3


def plane_shapes(width: int, height: int, chroma: str) -> tuple[tuple[int, int], ...]:
    """(rows, columns) of each plane of a ``width`` x ``height`` frame."""
    if chroma == "mono":
        return ((height, width),)
    if chroma == "444":
        return ((height, width),) * 3
    if chroma == "420":
        c = ((height + 1) // 2, (width + 1) // 2)
        return ((height, width), c, c)
    raise UsageError(f"unknown chroma layout {chroma!r}; use one of {', '.join(CHROMAS)}")


def frame_bytes(width: int, height: int, chroma: str) -> int:
    """Bytes of one 8-bit planar frame."""
    return sum(h * w for h, w in plane_shapes(width, height, chroma))


def chroma_of(planes) -> str:
    """The layout of a tuple of planes, from their number and shapes."""
    if len(planes) == 1:
        return "mono"
    if len(planes) != 3:
        raise UsageError(f"a frame has 1 or 3 planes, got {len(planes)}")
    h, w = np.shape(planes[0])
    if np.shape(planes[1]) == (h, w):
        return "444"
    return "420"


def check_planes(planes, width: int, height: int, chroma: str) -> tuple[np.ndarray, ...]:
    """The planes as uint8 arrays, or a UsageError saying how they differ from the expected layout."""
    shapes = plane_shapes(width, height, chroma)
    if len(planes) != len(shapes):
        raise UsageError(f"a {chroma} frame has {len(shapes)} planes, got {len(planes)}")
    out = []
    for i, (p, shape) in enumerate(zip(planes, shapes)):
        p = np.asarray(p)
        if p.dtype != np.uint8:
            raise UsageError(f"plane {i} must be uint8, got {p.dtype}")
        if p.shape != shape:
            raise UsageError(f"plane {i} of a {width}x{height} {chroma} frame must be {shape[0]}x{shape[1]} "
                             f"(rows x columns), got {p.shape}")
        out.append(p)
    return tuple(out)


def _coefficients(matrix: str, color_range: str):
    if matrix not in MATRICES:
        raise UsageError(f"unknown colour matrix {matrix!r}; use one of {', '.join(MATRICES)}")
    if color_range not in RANGES:
        raise UsageError(f"unknown colour range {color_range!r}; use one of {', '.join(RANGES)}")
    kr, kb = MATRICES[matrix]
    if color_range == "limited":
        return kr, kb, 16.0, 219.0, 224.0
    return kr, kb, 0.0, 255.0, 255.0


def _info_colour(info) -> tuple[str, str]:
    return getattr(info, "matrix", "bt601"), getattr(info, "range", "limited")


def upsample_chroma(c: np.ndarray, height: int, width: int, how: str = "nearest") -> np.ndarray:
    """A 4:2:0 chroma plane brought to ``height`` x ``width`` (float64)."""
    c = c.astype(np.float64)
    if how == "nearest":
        return np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:height, :width]
    if how != "bilinear":
        raise UsageError(f"unknown chroma upsampling {how!r}; use one of {', '.join(UPSAMPLERS)}")

    def along(a: np.ndarray, n: int, axis: int) -> np.ndarray:
        pos = (np.arange(n) + 0.5) / 2 - 0.5          # centre-sited: sample k sits between luma 2k and 2k+1
        i0 = np.floor(pos).astype(np.int64)
        f = pos - i0
        last = a.shape[axis] - 1
        a0 = np.take(a, np.clip(i0, 0, last), axis=axis)
        a1 = np.take(a, np.clip(i0 + 1, 0, last), axis=axis)
        shape = [1, 1]
        shape[axis] = n
        f = f.reshape(shape)
        return a0 * (1.0 - f) + a1 * f

    return along(along(c, height, 0), width, 1)


def downsample_chroma(c: np.ndarray) -> np.ndarray:
    """Mean of each 2x2 block of a full-resolution float plane (1 or 2 samples at an odd edge), float64."""
    h, w = c.shape
    ph, pw = h % 2, w % 2
    padded = np.pad(c, ((0, ph), (0, pw)))
    counts = np.pad(np.ones((h, w)), ((0, ph), (0, pw)))
    hh, ww = padded.shape[0] // 2, padded.shape[1] // 2
    s = padded.reshape(hh, 2, ww, 2).sum(axis=(1, 3))
    n = counts.reshape(hh, 2, ww, 2).sum(axis=(1, 3))
    return s / n


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def planes_to_rgb(planes, info=None, *, upsample: str = "nearest") -> np.ndarray:
    """uint8 (H, W, 3) RGB from ``(Y, U, V)`` planes, or (H, W, 1) gray from ``(Y,)`` (the Y plane as is:
    a mono plane holds gray values, as ffmpeg's ``gray`` format does).

    ``info`` (a :class:`diffcodec.video.VideoInfo`, or anything with ``matrix`` and ``range``) names the
    colour matrix and range; without it, BT.601 limited range."""
    planes = tuple(np.asarray(p) for p in planes)
    if len(planes) == 1:
        return planes[0].astype(np.uint8)[..., None]
    chroma = chroma_of(planes)
    y = planes[0].astype(np.float64)
    h, w = y.shape
    check_planes(planes, w, h, chroma)
    kr, kb, y0, ys, cs = _coefficients(*_info_colour(info))
    if chroma == "420":
        u = upsample_chroma(planes[1], h, w, upsample)
        v = upsample_chroma(planes[2], h, w, upsample)
    else:
        u = planes[1].astype(np.float64)
        v = planes[2].astype(np.float64)
    kg = 1.0 - kr - kb
    yy = (y - y0) * (255.0 / ys)
    cb = (u - 128.0) * (255.0 / cs)
    cr = (v - 128.0) * (255.0 / cs)
    r = yy + (2.0 * (1.0 - kr)) * cr
    g = yy - (2.0 * kb * (1.0 - kb) / kg) * cb - (2.0 * kr * (1.0 - kr) / kg) * cr
    b = yy + (2.0 * (1.0 - kb)) * cb
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = _to_uint8(r)
    out[..., 1] = _to_uint8(g)
    out[..., 2] = _to_uint8(b)
    return out


def rgb_to_planes(rgb: np.ndarray, chroma: str = "420", *, matrix: str = "bt601",
                  color_range: str = "limited") -> tuple[np.ndarray, ...]:
    """uint8 (H, W, 3) RGB (or (H, W) / (H, W, 1) gray) -> planes of ``chroma`` (the inverse of
    :func:`planes_to_rgb`). For ``"mono"``, gray input is the Y plane as is (as :func:`planes_to_rgb` gives
    it back) and RGB input gives its luma on 0..255 (ffmpeg's rgb24 -> gray); for ``"420"``/``"444"`` gray input is
    taken as R = G = B."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise UsageError(f"RGB frames must be uint8, got {rgb.dtype}")
    if rgb.ndim == 3 and rgb.shape[2] == 1:
        rgb = rgb[..., 0]
    plane_shapes(1, 1, chroma)   # validates chroma
    if rgb.ndim == 2:
        if chroma == "mono":
            return (np.ascontiguousarray(rgb),)
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
    kr, kb, y0, ys, cs = _coefficients(matrix, color_range)
    kg = 1.0 - kr - kb
    r = rgb[..., 0].astype(np.float64)
    g = rgb[..., 1].astype(np.float64)
    b = rgb[..., 2].astype(np.float64)
    yl = kr * r + kg * g + kb * b                      # luma on 0..255
    if chroma == "mono":
        return (_to_uint8(yl),)
    y = _to_uint8(y0 + yl * (ys / 255.0))
    cb = (b - yl) * (cs / 255.0 / (2.0 * (1.0 - kb)))
    cr = (r - yl) * (cs / 255.0 / (2.0 * (1.0 - kr)))
    if chroma == "420":
        cb, cr = downsample_chroma(cb), downsample_chroma(cr)
    return y, _to_uint8(128.0 + cb), _to_uint8(128.0 + cr)


def reduce_depth(samples: np.ndarray, bits: int) -> np.ndarray:
    """High-bit-depth samples (9..16 bits, in uint16) -> uint8 by a rounded right shift, clipped at 255:
    ``(v + 2 ** (bits - 9)) >> (bits - 8)``, so 10-bit 940 (white) -> 235 and 64 (black) -> 16."""
    if not 8 < bits <= 16:
        raise UsageError(f"bit depth {bits} is not 9..16")
    shift = bits - 8
    v = (samples.astype(np.uint32) + (1 << (shift - 1))) >> shift
    return np.minimum(v, 255).astype(np.uint8)
