"""Tests for diffcodec.baselines (Pillow JPEG / WebP / AVIF)."""

import numpy as np
import pytest

from diffcodec import baselines, metrics
from diffcodec.errors import UsageError


@pytest.fixture(scope="module")
def img():
    from PIL import Image
    from skimage import data

    a = data.astronaut()
    return np.asarray(Image.fromarray(a).resize((192, 176), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("name", ["jpeg", "jpeg444", "webp", "avif"])
def test_round_trip(name, img):
    b = baselines.get_baseline(name)
    data = b.encode(img, 50)
    assert isinstance(data, bytes) and 100 < len(data) < img.size
    dec = b.decode(data)
    assert dec.shape == img.shape and dec.dtype == np.uint8
    assert metrics.psnr(img, dec) > 25
    assert b.setting(37) == "q=37"
    # grayscale keeps 1 channel (WebP stores RGB; channels=1 brings it back)
    g = img[:, :, 1]
    gdec = b.decode(b.encode(g, 50), channels=1)
    assert gdec.shape == g.shape and metrics.psnr(g, gdec) > 25


def test_quality_ranges():
    assert (baselines.get_baseline("jpeg").qmin, baselines.get_baseline("jpeg").qmax) == (1, 95)
    assert (baselines.get_baseline("webp").qmin, baselines.get_baseline("webp").qmax) == (0, 100)
    assert (baselines.get_baseline("avif").qmin, baselines.get_baseline("avif").qmax) == (0, 100)
    with pytest.raises(UsageError):
        baselines.get_baseline("jpeg").encode(np.zeros((8, 8, 3), np.uint8), 0)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_encode_at_size(name, img):
    big = baselines.encode_at_size(name, img, 6000)
    small = baselines.encode_at_size(name, img, 3000)
    for r, target in ((big, 6000), (small, 3000)):
        assert not r.over_target
        assert r.bytes == len(r.data) <= target
        assert r.setting == f"q={r.quality}"
    assert big.bytes > small.bytes and big.quality > small.quality
    # it is the largest file <= target among the neighbours of the chosen quality
    b = baselines.get_baseline(name)
    for q in (big.quality + 1, big.quality + 2):
        if q <= b.qmax:
            n = len(b.encode(img, q))
            assert n > 6000 or n <= big.bytes


def test_encode_at_size_over_target(img):
    r = baselines.encode_at_size("jpeg", img, 50)
    assert r.over_target and r.quality == 1 and r.bytes > 50
    assert r.data == baselines.get_baseline("jpeg").encode(img, 1)


def test_encode_at_size_search_is_cheap_and_handles_non_monotonic(img):
    calls = []
    sizes = {q: 100 * q for q in range(1, 96)}

    def fake(image, q):
        calls.append(q)
        return b"x" * sizes[q]

    r = baselines.encode_at_size("jpeg", img, 4000, encode=fake)     # exactly on target is allowed
    assert (r.bytes, r.quality, r.over_target) == (4000, 40, False)
    assert len(calls) <= 11 and len(set(calls)) == len(calls)        # ~log2(95) + neighbours, no repeats
    sizes[40] = 4100     # non-monotonic: q=40 overshoots, q=41 dips back below the target
    sizes[41] = 3980
    calls.clear()
    r = baselines.encode_at_size("jpeg", img, 4000, encode=fake)
    assert (r.bytes, r.quality, r.over_target) == (3980, 41, False)   # found by the neighbour check
    # target above the largest file: highest quality
    assert baselines.encode_at_size("jpeg", img, 10**6, encode=fake).quality == 95


def test_jpeg_vs_jpeg444_differ(img):
    a = baselines.encode_at_quality("jpeg", img, 60)
    b = baselines.encode_at_quality("jpeg444", img, 60)
    assert a.data != b.data and b.bytes > a.bytes      # full-resolution chroma costs more bytes
    assert a.setting == "q=60" and not a.over_target


def test_unknown_baseline():
    with pytest.raises(UsageError) as e:
        baselines.get_baseline("bpg")
    for n in ("jpeg", "jpeg444", "webp", "avif"):
        assert n in str(e.value)
    with pytest.raises(UsageError):
        baselines.encode_at_size("h264", np.zeros((8, 8, 3), np.uint8), 100)
    assert baselines.registered_baselines() == ["jpeg", "jpeg444", "webp", "avif", "jxl", "heic"]
    assert baselines.available_baselines()[:4] == ["jpeg", "jpeg444", "webp", "avif"]


@pytest.mark.parametrize("name, module", [("jxl", "pillow_jxl"), ("heic", "pillow_heif")])
def test_optional_peers_round_trip_when_installed(name, module, img):
    pytest.importorskip(module)
    b = baselines.get_baseline(name)
    assert baselines.baseline_status()[name] is None and name in baselines.available_baselines()
    data = b.encode(img, 50)
    dec = b.decode(data)
    assert dec.shape == img.shape and metrics.psnr(img, dec) > 25 and len(data) < img.size // 4
    r = baselines.encode_at_size(name, img, len(data) // 2)
    assert not r.over_target and r.bytes <= len(data) // 2 and r.quality < 50
    g = img[:, :, 1]
    assert b.decode(b.encode(g, 50), channels=1).shape == g.shape


@pytest.mark.parametrize("name, extra", [("jxl", "jxl"), ("heic", "heic")])
def test_optional_peers_absent_say_what_to_install(name, extra, img, monkeypatch):
    import dataclasses

    from diffcodec.errors import UnsupportedError

    missing = dataclasses.replace(baselines.BASELINES[name], plugin="no_such_module_for_tests")
    monkeypatch.setitem(baselines.BASELINES, name, missing)
    why = baselines.baseline_status()[name]
    assert why is not None and f"pip install 'diffcodec[{extra}]'" in why
    assert name not in baselines.available_baselines()
    with pytest.raises(UnsupportedError, match=rf"diffcodec\[{extra}\]"):
        baselines.encode_at_size(name, img, 5000)


def test_bad_input():
    with pytest.raises(UsageError):
        baselines.get_baseline("jpeg").encode(np.zeros((8, 8, 3), np.float32), 50)
    with pytest.raises(UsageError):
        baselines.get_baseline("jpeg").encode(np.zeros((8, 8, 4), np.uint8), 50)
