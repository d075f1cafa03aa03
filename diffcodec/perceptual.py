"""Perceptual full-reference metrics that need no downloaded weights, and optional learned ones.

Every function takes two uint8 images of the same shape, (H, W, 3) RGB or (H, W) / (H, W, 1) grayscale (a gray
image is compared as RGB with three equal channels), the reference first.

- :func:`ssimulacra2` (SSIMULACRA 2.1, Sneyers 2023; higher is better, 100 = identical, about 90 = visually
  lossless at 1:1, 70 high, 50 medium, 30 low quality). A numpy port of libjxl's ``tools/ssimulacra2.cc``
  (libjxl 0.11.2) that repeats its float32 arithmetic: the sRGB decoding by libjxl's rational polynomial, the XYB
  transform with its Newton cube root, the recursive (IIR) Gaussian of ``tools/gauss_blur.cc`` with its zero
  padding and four-lane unrolling, fused multiply-adds where libjxl's SIMD code has them. Checked against the
  authors' own ``ssimulacra2`` tool (Debian's libjxl-devtools 0.11.2): the same scores to 1e-6 on Kodak images
  under JPEG, blur and noise, and on small, odd-sized and flat images (``tests/test_perceptual.py`` holds
  reference scores the tool printed). Pure numpy; about 1 s for a 768x512 image on one core.
- :func:`butteraugli` (libjxl's Butteraugli, lower is better: max norm and 3-norm). No trustworthy Python port
  exists, so this runs libjxl's own ``butteraugli_main`` (Debian/Ubuntu package ``libjxl-devtools``, or a libjxl
  build): the ``DIFFCODEC_BUTTERAUGLI`` environment variable names the program, else ``butteraugli_main`` is looked
  up on PATH. Both images go to it as lossless PNG; when it is absent the metric is unavailable (one-line message),
  never estimated.
- :func:`lpips`, :func:`dists` (optional): the ``lpips`` and ``DISTS_pytorch`` packages, only when the torchvision
  backbone weights they need are already in the torch hub cache. They are never downloaded: the model is built with
  downloads switched off, and a missing file is a one-line message saying which file to put where.

:data:`METRICS` lists them (columns written, direction); :func:`unavailable` says why one cannot run here, and
:func:`measure` computes a list of them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from diffcodec.errors import UnsupportedError, UsageError

_F32 = np.float32


@dataclass(frozen=True)
class Metric:
    """One perceptual metric: the result columns it fills and whether larger values mean better quality."""

    name: str
    columns: tuple[str, ...]
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {
    "ssimulacra2": Metric("ssimulacra2", ("ssimulacra2",), True,
                          "SSIMULACRA 2.1 (libjxl 0.11 port, numpy): 100 = identical, 90 visually lossless, 50 medium"),
    "butteraugli": Metric("butteraugli", ("butteraugli", "butteraugli_3norm"), False,
                          "Butteraugli max and 3-norm (libjxl's butteraugli_main; 0 = identical, 1 ~ just noticeable)"),
    "lpips": Metric("lpips", ("lpips",), False, "LPIPS v0.1, AlexNet (lpips package; cached torchvision weights only)"),
    "dists": Metric("dists", ("dists",), False, "DISTS (DISTS_pytorch package; cached torchvision VGG16 weights only)"),
}
COLUMN_HIGHER_IS_BETTER = {c: m.higher_is_better for m in METRICS.values() for c in m.columns}


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise UsageError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise UsageError(f"perceptual metrics need uint8 images, got {a.dtype} and {b.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    if a.ndim == 2:
        a, b = np.repeat(a[:, :, None], 3, axis=2), np.repeat(b[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UsageError(f"expected an (H, W, 3) or (H, W) image, got shape {a.shape}")
    return a, b


# ----------------------------------------------------------------------------------------------- SSIMULACRA 2

def _fma(a, b, c) -> np.ndarray:
    """float32 fused multiply-add: the product of two float32 values is exact in float64, so one rounding of the
    float64 sum to float32 gives the fused result (barring a double-rounding tie, which never mattered here)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(_F32)


@functools.lru_cache(maxsize=None)
def _recursive_gaussian(sigma: float = 1.5):
    """libjxl's CreateRecursiveGaussian (Charalampidis 2016, truncated cosines): radius N and, per cosine term,
    n2, d1 and the 4-lane expansions mul_in / mul_prev / mul_prev2, rounded to float32 as libjxl stores them."""
    radius = float(round(3.2795 * sigma + 0.2546))
    w = [math.pi / (2.0 * radius) * k for k in (1, 3, 5)]
    p = [1.0 / math.tan(0.5 * w[0]), -1.0 / math.tan(0.5 * w[1]), 1.0 / math.tan(0.5 * w[2])]
    r = [p[0] * p[0] / math.sin(w[0]), -p[1] * p[1] / math.sin(w[1]), p[2] * p[2] / math.sin(w[2])]
    rho = [math.exp(-0.5 * sigma * sigma * x * x) / radius for x in w]
    d13, d35, d51 = p[0] * r[1] - r[0] * p[1], p[1] * r[2] - r[1] * p[2], p[2] * r[0] - r[2] * p[0]
    z15, z35 = d35 / d13, d51 / d13
    beta = np.linalg.solve(np.array([p, r, [z15, z35, 1.0]]),
                           np.array([1.0, radius * radius - sigma * sigma, z15 * rho[0] + z35 * rho[1] + rho[2]]))
    n2 = [-beta[i] * math.cos(w[i] * (radius + 1.0)) for i in range(3)]
    d1 = [-2.0 * math.cos(w[i]) for i in range(3)]
    mul_in, mul_prev, mul_prev2 = [], [], []
    for d, n in zip(d1, n2):
        d2 = d * d
        mul_prev.append([-d, d2 - 1.0, -d2 * d + 2.0 * d, d2 * d2 - 3.0 * d2 + 1.0])
        mul_prev2.append([-1.0, d, -d2 + 1.0, d2 * d - 2.0 * d])
        mul_in.append([n, -d * n, d2 * n - n, -d2 * d * n + 2.0 * d * n])
    f = lambda v: np.array(v, _F32)  # noqa: E731
    return int(radius), f(n2), f(d1), f(mul_in), f(mul_prev), f(mul_prev2)


def _blur_rows(x: np.ndarray) -> np.ndarray:
    """libjxl FastGaussian1D on every row of x (R, W) float32: out-of-range inputs are zero; a scalar recursion at
    the edges and the 4-lane unrolled form (its expanded coefficients, fused multiply-adds) in between. Computed
    column by column over all rows at once (x transposed), products and sums in float64, rounded to float32 where
    libjxl rounds."""
    n_rad, _, _, mul_in, mul_prev, mul_prev2 = _recursive_gaussian()
    f64 = np.float64
    rows, width = x.shape
    xt = np.ascontiguousarray(x.T)
    out = np.empty((width, rows), _F32)
    zero = np.zeros(rows, _F32)
    prev = [zero] * 3
    prev2 = [zero] * 3
    col = lambda i: xt[i] if 0 <= i < width else zero  # noqa: E731
    lanes_in = [mul_in[k][:, None] for k in range(3)]
    lanes_prev = [mul_prev[k].astype(f64)[:, None] for k in range(3)]
    lanes_prev2 = [mul_prev2[k].astype(f64)[:, None] for k in range(3)]
    shifted = [[np.concatenate([np.zeros(j), mul_in[k][:4 - j].astype(f64)])[:, None] for j in range(4)]
               for k in range(3)]
    first = [(float(mul_in[k, 0]), float(mul_prev[k, 0]), float(mul_prev2[k, 0])) for k in range(3)]

    def scalar(n: int) -> None:
        s = col(n - n_rad - 1) + col(n + n_rad - 1)
        o = []
        for k in range(3):
            m_in, m_prev, m_prev2 = first[k]
            v = (m_prev2 * prev2[k].astype(f64) + s * _F32(m_in)).astype(_F32)
            prev2[k] = prev[k]
            v = (m_prev * prev[k].astype(f64) + v).astype(_F32)
            prev[k] = v
            o.append(v)
        if n >= 0:
            out[n] = o[0] + (o[1] + o[2])

    n = -n_rad + 1
    first_aligned = -(-(n_rad + 1) // 4) * 4
    while n < min(first_aligned, width):
        scalar(n)
        n += 1
    while n < width - n_rad + 1 - 3:
        s = xt[n - n_rad - 1:n - n_rad + 3] + xt[n + n_rad - 1:n + n_rad + 3]        # (4, rows)
        s64 = s.astype(f64)
        o = []
        for k in range(3):
            v = (s[0][None, :] * lanes_in[k]).astype(f64)
            for j in (1, 2, 3):
                v = (shifted[k][j] * s64[j][None, :] + v).astype(_F32).astype(f64)
            v = (lanes_prev2[k] * prev2[k][None, :] + v).astype(_F32)
            v = (lanes_prev[k] * prev[k][None, :] + v).astype(_F32)
            prev2[k], prev[k] = v[2].copy(), v[3].copy()
            o.append(v)
        out[n:n + 4] = o[0] + (o[1] + o[2])
        n += 4
    while n < width:
        scalar(n)
        n += 1
    return np.ascontiguousarray(out.T)


def _blur_columns(x: np.ndarray) -> np.ndarray:
    """libjxl FastGaussianVertical on x (H, C) float32: each column one lane, zero padding above and below."""
    n_rad, n2, d1, _, _, _ = _recursive_gaussian()
    height, cols = x.shape
    zero = np.zeros(cols, _F32)
    y1 = [zero] * 3
    y2 = [zero] * 3
    out = np.empty((height, cols), _F32)
    d1_64 = d1.astype(np.float64)
    for n in range(-n_rad + 1, height):
        top, bottom = n - n_rad - 1, n + n_rad - 1
        s = x[bottom] if bottom < height else zero
        if top >= 0:
            s = x[top] + s
        o = []
        for k in range(3):
            prev_terms = (-(d1_64[k] * y1[k]) - y2[k]).astype(_F32)        # NegMulSub(d1, y[n-1], y[n-2])
            v = _fma(n2[k], s, prev_terms)
            y2[k], y1[k] = y1[k], v
            o.append(v)
        if n >= 0:
            out[n] = o[0] + (o[1] + o[2])
    return out


def _gauss_blur(planes: np.ndarray) -> np.ndarray:
    """libjxl's recursive Gaussian (sigma 1.5) of every plane of (P, H, W) float32: rows first, then columns."""
    p, h, w = planes.shape
    t = _blur_rows(planes.reshape(p * h, w)).reshape(p, h, w)
    return _blur_columns(t.transpose(1, 0, 2).reshape(h, p * w)).reshape(h, p, w).transpose(1, 0, 2)


_TF_P = np.array([2.200248328e-04, 1.043637593e-02, 1.624820318e-01, 7.961564959e-01, 8.210152774e-01], _F32)
_TF_Q = np.array([2.631846970e-01, 1.076976492e+00, 4.987528350e-01, -5.512498495e-02, 6.521209011e-03], _F32)


def _linear_from_srgb(u8: np.ndarray) -> np.ndarray:
    """8-bit sRGB to linear light as libjxl computes it: value * (1/255) in float32, then TF_SRGB's rational
    polynomial (Horner with fused multiply-adds) above 0.04045, x / 12.92 below."""
    x = u8.astype(_F32) * (_F32(1.0) / _F32(255))
    yp = np.full_like(x, _TF_P[4])
    yq = np.full_like(x, _TF_Q[4])
    for i in (3, 2, 1, 0):
        yp = _fma(yp, x, _TF_P[i])
        yq = _fma(yq, x, _TF_Q[i])
    return np.where(x > _F32(0.04045), yp / yq, x * (_F32(1.0) / _F32(12.92))).astype(_F32)


def _opsin_matrix() -> np.ndarray:
    one = _F32(1.0)
    m00, m02, m10, m12 = _F32(0.30), _F32(0.078), _F32(0.23), _F32(0.078)
    m20, m21 = _F32(0.24342268924547819), _F32(0.20476744424496821)
    return np.array([[m00, (one - m02) - m00, m02], [m10, (one - m12) - m10, m12], [m20, m21, (one - m20) - m21]],
                    _F32)


_OPSIN = _opsin_matrix()
_OPSIN_BIAS = _F32(0.0037930732552754493)
_NEG_CBRT_BIAS = _F32(-np.cbrt(np.float64(_OPSIN_BIAS)))


def _cube_root_and_add(x: np.ndarray, add: np.float32) -> np.ndarray:
    """libjxl's CubeRootAndAdd (fast_math-inl.h): an exponent-trick start and four Newton steps, float32."""
    k1_3, k4_3 = _F32(1.0 / 3), _F32(4.0 / 3)
    xa_3 = k1_3 * x
    bits = x.view(np.int32)
    r = np.where(bits == 0, 0, np.int32(0x54800000) - (bits >> 23) * np.int32(0x002AAAAA)).astype(np.int32).view(_F32)
    for _ in range(3):
        r2 = r * r
        r = _fma(-xa_3, r2 * r2, k4_3 * r)
    r2 = r * r
    r = _fma(k1_3, _fma(-x, r2 * r2, r), r)
    return _fma(r * r, x, add)


def _positive_xyb(lin: np.ndarray) -> np.ndarray:
    """Linear sRGB (3, H, W) float32 to libjxl's XYB, then SSIMULACRA 2's MakePositiveXYB."""
    r, g, b = lin
    mixed = [_cube_root_and_add(np.maximum(_fma(m[0], r, _fma(m[1], g, _fma(m[2], b, _OPSIN_BIAS))), _F32(0)),
                                _NEG_CBRT_BIAS) for m in _OPSIN]
    x = _F32(0.5) * (mixed[0] - mixed[1])
    y = _F32(0.5) * (mixed[0] + mixed[1])
    return np.stack([x * _F32(14.0) + _F32(0.42), y + _F32(0.01), (mixed[2] - y) + _F32(0.55)])


def _downsample2(lin: np.ndarray) -> np.ndarray:
    """2x2 box average in linear light, the last row/column repeated at odd sizes (libjxl's Downsample)."""
    _, h, w = lin.shape
    oh, ow = (h + 1) // 2, (w + 1) // 2
    p = np.pad(lin, ((0, 0), (0, 2 * oh - h), (0, 2 * ow - w)), mode="edge")
    s = p[:, 0::2, 0::2] + p[:, 0::2, 1::2]
    s = s + p[:, 1::2, 0::2]
    s = s + p[:, 1::2, 1::2]
    return s * _F32(0.25)


_SSIMULACRA2_WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379, 0.0,
    1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0,
    1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
    0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0,
    0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
    0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
    225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0, 0.0,
    34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0, 8.826982764996862,
    23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353, 0.0012286405048278493,
    171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
])


def _norms(err: np.ndarray) -> list[tuple[float, float]]:
    """Per plane of (3, H, W) float64: the mean (1-norm) and the 4-norm."""
    q = err * err
    q = q * q
    return [(float(err[c].mean()), float(q[c].mean()) ** 0.25) for c in range(3)]


def ssimulacra2(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SSIMULACRA 2.1 score of `distorted` against `reference` (uint8, at least 8x8): 100 for identical images,
    lower is worse (it goes below 0 for very poor images). Matches libjxl 0.11's ``ssimulacra2`` tool."""
    a, b = _pair(reference, distorted)
    if min(a.shape[:2]) < 8:
        raise UsageError(f"SSIMULACRA 2 needs images of at least 8x8 pixels, got {a.shape[1]}x{a.shape[0]}")
    lin1 = _linear_from_srgb(a).transpose(2, 0, 1).copy()
    lin2 = _linear_from_srgb(b).transpose(2, 0, 1).copy()
    subscores: list[tuple[list, list]] = []
    for scale in range(6):
        if min(lin1.shape[1:]) < 8:      # as libjxl: the size before this scale's downsampling is what is checked
            break
        if scale:
            lin1, lin2 = _downsample2(lin1), _downsample2(lin2)
        x1, x2 = _positive_xyb(lin1), _positive_xyb(lin2)
        blurred = _gauss_blur(np.concatenate([x1 * x1, x2 * x2, x1 * x2, x1, x2]))
        s11, s22, s12, m1, m2 = blurred[0:3], blurred[3:6], blurred[6:9], blurred[9:12], blurred[12:15]
        dm = m1 - m2
        num_m = (1.0 - dm * dm).astype(_F32)
        num_s = _F32(2) * (s12 - m1 * m2) + _F32(0.0009)
        den_s = (s11 - m1 * m1) + (s22 - m2 * m2) + _F32(0.0009)
        ssim_err = np.maximum(1.0 - ((num_m * num_s) / den_s).astype(np.float64), 0.0)
        e1 = np.abs(x1 - m1).astype(np.float64)
        e2 = np.abs(x2 - m2).astype(np.float64)
        d = (1.0 + e2) / (1.0 + e1) - 1.0
        artifact, detail_lost = _norms(np.maximum(d, 0.0)), _norms(np.maximum(-d, 0.0))
        subscores.append((_norms(ssim_err), [(*artifact[c], *detail_lost[c]) for c in range(3)]))
    values = []
    for c in range(3):
        for ssim, edge in subscores:
            for n in range(2):
                values += [ssim[c][n], edge[c][n], edge[c][n + 2]]
    s = float(np.dot(_SSIMULACRA2_WEIGHTS[:len(values)], np.abs(values))) * 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s * s * s
    return 100.0 - 10.0 * s ** 0.6276336467831387 if s > 0 else 100.0


# ----------------------------------------------------------------------------------------------- Butteraugli

BUTTERAUGLI_ENV = "DIFFCODEC_BUTTERAUGLI"
_BUTTERAUGLI_HINT = ("Butteraugli needs libjxl's butteraugli_main (Debian/Ubuntu: apt install libjxl-devtools; or a "
                     f"libjxl build): put it on PATH or set {BUTTERAUGLI_ENV}=/path/to/butteraugli_main")


def butteraugli_tool() -> str | None:
    """The butteraugli_main program to run: $DIFFCODEC_BUTTERAUGLI if set (a path or a name on PATH), else
    ``butteraugli_main`` on PATH; None when there is none."""
    named = os.environ.get(BUTTERAUGLI_ENV)
    if named:
        return named if Path(named).is_file() and os.access(named, os.X_OK) else shutil.which(named)
    return shutil.which("butteraugli_main")


def parse_butteraugli_output(text: str) -> tuple[float, float]:
    """(max norm, 3-norm) from butteraugli_main's output: the score on the first line, then ``3-norm: X``."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    try:
        score = float(lines[0])
        pnorm = next(float(ln.split(":", 1)[1]) for ln in lines[1:] if ln.startswith("3-norm:"))
    except (IndexError, ValueError, StopIteration):
        raise UnsupportedError(f"unexpected butteraugli_main output: {text.strip()[:200]!r}") from None
    return score, pnorm


def butteraugli(reference: np.ndarray, distorted: np.ndarray) -> tuple[float, float]:
    """Butteraugli (max norm, 3-norm) of `distorted` against `reference`, from libjxl's butteraugli_main (sRGB
    input, default intensity target 80 nits). UnsupportedError with how to get the tool when it is absent."""
    from PIL import Image

    a, b = _pair(reference, distorted)
    tool = butteraugli_tool()
    if tool is None:
        raise UnsupportedError(_BUTTERAUGLI_HINT)
    with tempfile.TemporaryDirectory(prefix="diffcodec-butteraugli-") as tmp:
        paths = [os.path.join(tmp, "reference.png"), os.path.join(tmp, "distorted.png")]
        for arr, path in zip((a, b), paths):
            Image.fromarray(np.ascontiguousarray(arr)).save(path, format="PNG")
        try:
            run = subprocess.run([tool, *paths, "--pnorm", "3"], capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise UnsupportedError(f"{tool}: {e}") from None
    if run.returncode != 0:
        raise UnsupportedError(f"{tool} failed ({run.returncode}): {(run.stderr or run.stdout).strip()[:200]}")
    return parse_butteraugli_output(run.stdout)


# ----------------------------------------------------------------------------------------------- LPIPS, DISTS

# torchvision checkpoints the two packages build their backbones from (torchvision's own file names).
TORCHVISION_WEIGHTS = {"alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth"}


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _need(module: str, extra: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnsupportedError(f"{what} needs the {module} package: pip install 'diffcodec[{extra}]'") from None


def _need_weights(backbone: str, what: str) -> None:
    path = torch_hub_checkpoints() / TORCHVISION_WEIGHTS[backbone]
    if not path.is_file():
        raise UnsupportedError(f"{what} needs the torchvision {backbone} weights, which diffcodec never downloads: "
                               f"copy {TORCHVISION_WEIGHTS[backbone]} into {path.parent} (or set TORCH_HOME)")


@contextlib.contextmanager
def no_downloads():
    """Make any torch hub download raise instead of fetching (the cached file is used when present)."""
    import torch.hub

    def refuse(url, *args, **kwargs):
        raise UnsupportedError(f"refusing to download {url} (diffcodec never downloads weights)")

    saved = torch.hub.download_url_to_file
    torch.hub.download_url_to_file = refuse
    try:
        yield
    finally:
        torch.hub.download_url_to_file = saved


def _tensor(img: np.ndarray, lo: float, hi: float):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32).permute(2, 0, 1).unsqueeze(0)
    return x * ((hi - lo) / 255.0) + lo


def learned_distance(model: Callable, reference: np.ndarray, distorted: np.ndarray, value_range: tuple[float, float]):
    """``model(ref, dist)`` on the images as 1x3xHxW float32 tensors scaled to `value_range` (LPIPS: (-1, 1), DISTS:
    (0, 1)), as a float."""
    import torch

    a, b = _pair(reference, distorted)
    with torch.no_grad():
        return float(model(_tensor(a, *value_range), _tensor(b, *value_range)).reshape(-1)[0])


@functools.lru_cache(maxsize=2)
def _lpips_model(net: str = "alex"):
    lpips_pkg = _need("lpips", "lpips", "LPIPS")
    _need_weights("alexnet" if net == "alex" else "vgg16", "LPIPS")
    with no_downloads():
        return lpips_pkg.LPIPS(net=net, verbose=False).eval()


@functools.lru_cache(maxsize=1)
def _dists_model():
    dists_pkg = _need("DISTS_pytorch", "dists", "DISTS")
    _need_weights("vgg16", "DISTS")
    with no_downloads():
        return dists_pkg.DISTS().eval()


def lpips(reference: np.ndarray, distorted: np.ndarray) -> float:
    """LPIPS v0.1 (AlexNet) distance, lower is better; needs the lpips package and cached torchvision weights."""
    return learned_distance(_lpips_model(), reference, distorted, (-1.0, 1.0))


def dists(reference: np.ndarray, distorted: np.ndarray) -> float:
    """DISTS distance, lower is better; needs the DISTS_pytorch package and cached torchvision VGG16 weights."""
    return learned_distance(lambda x, y: _dists_model()(x, y, batch_average=True), reference, distorted, (0.0, 1.0))


# ----------------------------------------------------------------------------------------------- registry

def unavailable(name: str) -> str | None:
    """None when metric `name` can run here, else the one-line reason (and how to get what it needs)."""
    if name not in METRICS:
        raise UsageError(f"unknown metric {name!r} (available: {', '.join(METRICS)})")
    try:
        if name == "butteraugli" and butteraugli_tool() is None:
            return _BUTTERAUGLI_HINT
        if name == "lpips":
            _need("lpips", "lpips", "LPIPS")
            _need_weights("alexnet", "LPIPS")
        if name == "dists":
            _need("DISTS_pytorch", "dists", "DISTS")
            _need_weights("vgg16", "DISTS")
    except UnsupportedError as e:
        return str(e)
    return None


def check_metrics(names: Sequence[str]) -> list[str]:
    """The names, deduplicated in order; UnsupportedError (exit 4) naming what is missing for any that cannot run."""
    names = list(dict.fromkeys(names))
    for n in names:
        why = unavailable(n)
        if why is not None:
            raise UnsupportedError(f"--metric {n}: {why}")
    return names


def default_metrics() -> list[str]:
    """What ``bench`` and ``compare`` compute unless told: SSIMULACRA 2, and Butteraugli when its tool is here."""
    return ["ssimulacra2"] + (["butteraugli"] if unavailable("butteraugli") is None else [])


def measure(reference: np.ndarray, distorted: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The columns of every metric in `names` (see :data:`METRICS`)."""
    out: dict[str, float] = {}
    for n in names:
        if n == "ssimulacra2":
            out["ssimulacra2"] = ssimulacra2(reference, distorted)
        elif n == "butteraugli":
            out["butteraugli"], out["butteraugli_3norm"] = butteraugli(reference, distorted)
        elif n == "lpips":
            out["lpips"] = lpips(reference, distorted)
        elif n == "dists":
            out["dists"] = dists(reference, distorted)
        else:
            raise UsageError(f"unknown metric {n!r} (available: {', '.join(METRICS)})")
    return out
