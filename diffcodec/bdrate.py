"""Bjontegaard deltas (VCEG-M33) with piecewise cubic Hermite interpolation (PCHIP), as in the JCT-VC / JVET
common-test-conditions sheets and the ``bjontegaard`` package (method ``"pchip"``).

- :func:`bd_rate`: the average rate difference of a test curve against an anchor at equal quality, in percent
  (negative = the test needs fewer bits). log10(rate) is interpolated as a function of quality over the quality
  range both curves cover, and the mean log-rate difference d gives (10**d - 1) * 100.
- :func:`bd_quality`: the average quality difference at equal rate (BD-PSNR when the quality is PSNR), over the
  log10-rate range both cover.
- :func:`per_image_bd`: the learned-compression convention: BD per image (each image's own curves), then the mean
  over the images where it is defined.

Quality is "larger is better"; pass ``higher_is_better=False`` for distances (Butteraugli, LPIPS), which are
negated first (so a BD-quality of a distance is how much lower it is). A curve needs two or more points with
distinct rates, sorted by rate its quality must rise strictly (BD-rate) and the two curves must overlap; otherwise
the delta is undefined (None), never extrapolated. PCHIP is implemented here (Fritsch-Carlson slopes as in
scipy.interpolate.PchipInterpolator) and integrated exactly, so numpy is all it needs.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives at the knots of the monotone PCHIP interpolant (scipy's PchipInterpolator rule)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    if n == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros(n)
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0: float, h1: float, m0: float, m1: float) -> float:
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Exact integral from lo to hi (inside [x[0], x[-1]]) of the PCHIP interpolant through (x, y), x increasing."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    return _pchip_integral(xs, ys, lo, hi)


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        # cubic Hermite on [x_k, x_k+1] in t = (s - x_k) / h: y_k h00 + h d_k h10 + y_k1 h01 + h d_k1 h11
        c0, c1 = y[k], h * d[k]
        c2 = 3 * (y[k + 1] - y[k]) - h * (2 * d[k] + d[k + 1])
        c3 = 2 * (y[k] - y[k + 1]) + h * (d[k] + d[k + 1])
        t1, t0 = (b - x[k]) / h, (a - x[k]) / h
        total += h * sum(c * (t1 ** (j + 1) - t0 ** (j + 1)) / (j + 1) for j, c in enumerate((c0, c1, c2, c3)))
    return float(total)


def _curve(rates: Iterable[float], quality: Iterable[float], higher_is_better: bool):
    pts = [(float(r), float(q) if higher_is_better else -float(q)) for r, q in zip(rates, quality)
           if r is not None and q is not None and math.isfinite(float(r)) and float(r) > 0 and math.isfinite(float(q))]
    pts = sorted(set(pts))          # the same file twice (a codec at its lowest quality for two targets) is one point
    if len(pts) < 2 or any(pts[i][0] == pts[i + 1][0] for i in range(len(pts) - 1)):
        return None
    return np.log10([p[0] for p in pts]), np.array([p[1] for p in pts])


def bd_rate(rate_anchor: Sequence[float], q_anchor: Sequence[float], rate_test: Sequence[float],
            q_test: Sequence[float], higher_is_better: bool = True) -> float | None:
    """BD-rate of the test curve against the anchor, percent; None where it is undefined (see the module doc)."""
    ca, ct = _curve(rate_anchor, q_anchor, higher_is_better), _curve(rate_test, q_test, higher_is_better)
    if ca is None or ct is None:
        return None
    if np.any(np.diff(ca[1]) <= 0) or np.any(np.diff(ct[1]) <= 0):
        return None                   # quality must rise with rate to be inverted
    lo, hi = max(ca[1][0], ct[1][0]), min(ca[1][-1], ct[1][-1])
    if hi <= lo:
        return None
    ia = pchip_integral(ca[1], ca[0], lo, hi)
    it = pchip_integral(ct[1], ct[0], lo, hi)
    return float((10 ** ((it - ia) / (hi - lo)) - 1) * 100)


def bd_quality(rate_anchor: Sequence[float], q_anchor: Sequence[float], rate_test: Sequence[float],
               q_test: Sequence[float], higher_is_better: bool = True) -> float | None:
    """BD-quality (BD-PSNR for PSNR) of the test curve against the anchor, in the metric's units (for a distance:
    how much lower the test's is); None where undefined."""
    ca, ct = _curve(rate_anchor, q_anchor, higher_is_better), _curve(rate_test, q_test, higher_is_better)
    if ca is None or ct is None:
        return None
    lo, hi = max(ca[0][0], ct[0][0]), min(ca[0][-1], ct[0][-1])
    if hi <= lo:
        return None
    ia = pchip_integral(ca[0], ca[1], lo, hi)
    it = pchip_integral(ct[0], ct[1], lo, hi)
    return float((it - ia) / (hi - lo))


def per_image_bd(anchor: dict[str, list[tuple[float, float]]], test: dict[str, list[tuple[float, float]]],
                 higher_is_better: bool = True) -> dict[str, float | int | None]:
    """BD-rate and BD-quality per image (``{image: [(bpp, quality), ...]}`` for each codec), then their means over
    the images where each is defined: ``{"bd_rate", "bd_quality", "n_rate", "n_quality", "n_images"}``."""
    rates, quals = [], []
    images = [im for im in test if im in anchor]
    for im in images:
        ra, qa = zip(*anchor[im]) if anchor[im] else ((), ())
        rt, qt = zip(*test[im]) if test[im] else ((), ())
        r = bd_rate(ra, qa, rt, qt, higher_is_better)
        q = bd_quality(ra, qa, rt, qt, higher_is_better)
        if r is not None:
            rates.append(r)
        if q is not None:
            quals.append(q)
    return {"bd_rate": float(np.mean(rates)) if rates else None, "bd_quality": float(np.mean(quals)) if quals else None,
            "n_rate": len(rates), "n_quality": len(quals), "n_images": len(images)}
