"""Tests for diffcodec.metrics."""

import math

import numpy as np
import pytest

from diffcodec import metrics
from diffcodec.errors import UsageError


def _image(h=192, w=200, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / w, y * 255.0 / h, (x + y) * 127.0 / (h + w) + 60], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_psnr_identical_is_inf():
    a = _image()
    assert metrics.psnr(a, a) == math.inf
    assert metrics.psnr_y(a, a) == math.inf


def test_psnr_uniform_offset():
    a = np.full((32, 40, 3), 100, np.uint8)
    b = a + 5
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    # grayscale arrays, both 2-D and (H, W, 1)
    assert metrics.psnr(a[:, :, 0], b[:, :, 0]) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    assert metrics.psnr(a[:, :, :1], b[:, :, :1]) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)


def test_psnr_known_mse():
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 30           # MSE = 900 / 300 = 3
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3.0), abs=1e-9)


def test_psnr_y_on_constructed_case():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 10           # only red changes: delta Y = 0.299 * 10 everywhere
    assert metrics.psnr_y(a, b) == pytest.approx(20 * math.log10(255 / 2.99), abs=1e-9)
    c = a.copy()
    c[..., 2] += 10           # blue: delta Y = 1.14, so a higher PSNR-Y than for red
    assert metrics.psnr_y(a, c) == pytest.approx(20 * math.log10(255 / 1.14), abs=1e-9)
    # equal RGB PSNR, different luma PSNR
    assert metrics.psnr(a, b) == pytest.approx(metrics.psnr(a, c))
    assert metrics.luma(a)[0, 0] == pytest.approx(100.0)


def test_ssim_and_ms_ssim_identical_and_noise():
    a = _image()
    rng = np.random.default_rng(1)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    prev_s, prev_m = 1.0, 1.0
    for sigma in (5, 15, 40):
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        s, m = metrics.ssim(a, noisy), metrics.ms_ssim(a, noisy)
        assert 0 < m <= 1 and 0 < s <= 1
        assert s < prev_s and m < prev_m
        prev_s, prev_m = s, m


def test_ms_ssim_nan_for_small_images():
    a = _image(160, 200)
    assert math.isnan(metrics.ms_ssim(a, a))
    assert not math.isnan(metrics.ms_ssim(_image(161, 170), _image(161, 170)))
    # ssim still works
    assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_grayscale_ssim():
    a = _image()[:, :, 1]
    b = np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8)
    assert 0 < metrics.ssim(a, b) < 1
    assert 0 < metrics.ms_ssim(a, b) < 1


def test_shape_mismatch_raises():
    with pytest.raises(UsageError):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_bpp_and_ratio():
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)
    assert metrics.compression_ratio(1000, 100, 80) == pytest.approx(24.0)
    assert metrics.compression_ratio(1000, 100, 80, channels=1) == pytest.approx(8.0)
    with pytest.raises(UsageError):
        metrics.bpp(10, 0, 5)


def test_compare_keys():
    a = _image(64, 64)
    r = metrics.compare(a, a)
    assert set(r) == {"psnr", "psnr_y", "ssim", "ms_ssim"}
    assert r["psnr"] == math.inf and math.isnan(r["ms_ssim"])


def test_flicker_is_the_extra_frame_to_frame_change_of_the_decoded_clip():
    from diffcodec.metrics import flicker

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 16, 16)).astype(np.uint8)
    assert flicker(a, b, a, b) == 0.0                      # decoded = source
    assert flicker(a, b, a, a) < -10                       # frozen decoder output
    noisy = np.clip(b.astype(int) + rng.integers(-8, 9, b.shape), 0, 255).astype(np.uint8)
    assert flicker(b, b, b, noisy) > 2                     # a still source that the decoder makes shimmer
