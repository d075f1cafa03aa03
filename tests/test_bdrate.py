"""diffcodec.bdrate: Bjontegaard deltas with PCHIP, checked against the bjontegaard package (FAU-LMS, which matches
the JCT-VC / JVET common-test-conditions Excel sheets) and scipy's PchipInterpolator."""

from __future__ import annotations

import numpy as np
import pytest

from diffcodec import bdrate

# The bjontegaard package's README example (x265 presets); the values bjontegaard 1.3.0 prints for method="pchip":
# bd.bd_rate(...) = -4.417485350589045 %, bd.bd_psnr(...) = 0.11969278542479489 dB.
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


def test_matches_the_bjontegaard_package_on_its_example():
    assert bdrate.bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T) == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bdrate.bd_quality(RATE_A, PSNR_A, RATE_T, PSNR_T) == pytest.approx(0.11969278542479489, abs=1e-11)


def test_matches_the_package_and_scipy_on_random_curves():
    scipy_interp = pytest.importorskip("scipy.interpolate")
    bd = None
    try:
        import bjontegaard as bd
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(2, 7))
        x = np.sort(rng.uniform(0, 3, n)) + np.arange(n) * 1e-3
        y = rng.uniform(-2, 2, n).cumsum()
        lo, hi = sorted(rng.uniform(x[0], x[-1], 2))
        assert bdrate.pchip_integral(x, y, lo, hi) == pytest.approx(
            scipy_interp.PchipInterpolator(x, y).integrate(lo, hi), abs=1e-9)
        if bd is not None:
            r1, r2 = np.sort(rng.uniform(0.05, 2, n)), np.sort(rng.uniform(0.05, 2, n))
            q1, q2 = np.sort(rng.uniform(20, 40, n)), np.sort(rng.uniform(20, 40, n))
            ours = bdrate.bd_quality(r1, q1, r2, q2)
            if ours is not None:
                theirs = bd.bd_psnr(r1, q1, r2, q2, method="pchip", require_matching_points=False, min_overlap=0)
                assert ours == pytest.approx(theirs, abs=1e-9)


def test_meaning_of_the_signs():
    rates = [0.1, 0.2, 0.4, 0.8]
    psnr = [26.0, 28.0, 30.0, 32.0]
    assert bdrate.bd_rate(rates, psnr, rates, psnr) == pytest.approx(0.0, abs=1e-12)
    half = [r / 2 for r in rates]                       # the same quality at half the rate
    assert bdrate.bd_rate(rates, psnr, half, psnr) == pytest.approx(-50.0, abs=1e-9)
    assert bdrate.bd_quality(rates, psnr, rates, [p + 1 for p in psnr]) == pytest.approx(1.0, abs=1e-12)
    dist = [4.0, 3.0, 2.0, 1.0]                          # a distance: lower is better
    assert bdrate.bd_rate(rates, dist, half, dist, higher_is_better=False) == pytest.approx(-50.0, abs=1e-9)
    assert bdrate.bd_quality(rates, dist, rates, [d - 0.5 for d in dist],
                             higher_is_better=False) == pytest.approx(0.5, abs=1e-12)
    assert bdrate.bd_rate(rates[::-1], psnr[::-1], half, psnr) == pytest.approx(-50.0, abs=1e-9)    # any order


def test_undefined_cases_are_none_never_extrapolated():
    assert bdrate.bd_rate([0.1], [30.0], [0.1, 0.2], [30.0, 31.0]) is None                  # one point
    assert bdrate.bd_rate([0.1, 0.2], [30.0, 31.0], [1.0, 2.0], [40.0, 41.0]) is None        # no overlap
    assert bdrate.bd_quality([0.1, 0.2], [30.0, 31.0], [1.0, 2.0], [40.0, 41.0]) is None
    assert bdrate.bd_rate([0.1, 0.2, 0.3], [30.0, 29.0, 31.0], [0.1, 0.3], [30.0, 31.0]) is None   # not monotone
    assert bdrate.bd_rate([0.1, 0.1], [30.0, 31.0], [0.1, 0.2], [30.0, 31.0]) is None        # one rate, two qualities
    assert bdrate.bd_rate([0.1, 0.2], [30.0, float("nan")], [0.1, 0.2], [30.0, 31.0]) is None
    same = bdrate.bd_rate([0.1, 0.1, 0.2], [30.0, 30.0, 31.0], [0.1, 0.2], [30.0, 31.0])    # a repeated file
    assert same == pytest.approx(0.0, abs=1e-12)


def test_per_image_then_mean():
    anchor = {"a": [(0.1, 30.0), (0.2, 32.0)], "b": [(0.1, 20.0), (0.2, 22.0)], "c": [(0.1, 25.0)]}
    test = {"a": [(0.05, 30.0), (0.1, 32.0)], "b": [(0.1, 21.0), (0.2, 23.0)], "c": [(0.1, 25.0), (0.2, 26.0)],
            "z": [(0.1, 1.0), (0.2, 2.0)]}
    res = bdrate.per_image_bd(anchor, test)
    ra = bdrate.bd_rate([0.1, 0.2], [30.0, 32.0], [0.05, 0.1], [30.0, 32.0])
    rb = bdrate.bd_rate([0.1, 0.2], [20.0, 22.0], [0.1, 0.2], [21.0, 23.0])
    assert res["n_images"] == 3 and res["n_rate"] == 2                         # c: one anchor point; z: no anchor
    assert res["bd_rate"] == pytest.approx((ra + rb) / 2)
    assert ra == pytest.approx(-50.0) and res["n_quality"] == 1       # a: the rate ranges only touch
