"""diffcodec.perceptual: SSIMULACRA 2 against scores printed by libjxl's own tool, Butteraugli through libjxl's tool
(a stand-in program here; the real one when it is installed), LPIPS / DISTS with stand-in networks and the paths
where their packages or weights are missing. Needs neither ../shared nor any optional package."""

from __future__ import annotations

import os
import stat
import sys
import types

import numpy as np
import pytest

from diffcodec import perceptual
from diffcodec.errors import UnsupportedError, UsageError


def reference_cases():
    """(name, reference, distorted): scikit-image sample images and integer-only distortions (bit-exact anywhere).
    benchmarks/perceptual_reference.py runs libjxl's tools on exactly these."""
    from skimage import data

    astro, coffee, chelsea, camera = data.astronaut(), data.coffee(), data.chelsea(), data.camera()

    def blocks(img, n):
        h, w = (img.shape[0] // n) * n, (img.shape[1] // n) * n
        a = img[:h, :w].astype(np.int64).reshape(h // n, n, w // n, n, -1)
        m = (a.sum(axis=(1, 3)) + n * n // 2) // (n * n)
        return np.repeat(np.repeat(m, n, 0), n, 1).astype(np.uint8).reshape(img[:h, :w].shape), img[:h, :w]

    def box3(img):
        p = np.pad(img.astype(np.int64), ((1, 1), (1, 1), (0, 0)), mode="edge")
        s = sum(p[i:i + img.shape[0], j:j + img.shape[1]] for i in range(3) for j in range(3))
        return ((s + 4) // 9).astype(np.uint8)

    def hashed_noise(img, amp):
        y, x, c = np.indices(img.shape)
        n = ((x * 73 + y * 151 + c * 29) * 2654435761 % 4294967296) % (2 * amp + 1) - amp
        return np.clip(img.astype(np.int64) + n, 0, 255).astype(np.uint8)

    blk, astro_c = blocks(astro, 8)
    gray_d = blocks(camera[:, :, None], 4)[0][:, :, 0]
    return [
        ("astronaut 8x8 block means", astro_c, blk),
        ("coffee quantized to 32 levels", coffee, (coffee // 8 * 8 + 4).astype(np.uint8)),
        ("coffee quantized to 8 levels", coffee, (coffee // 32 * 32 + 16).astype(np.uint8)),
        ("chelsea 3x3 box blur", chelsea, box3(chelsea)),
        ("astronaut 97x131 crop, hashed noise", astro[200:297, 150:281], hashed_noise(astro[200:297, 150:281], 12)),
        ("camera (gray) 4x4 block means", camera, gray_d),
        ("flat gray 128 vs 131, 24x40", np.full((24, 40, 3), 128, np.uint8), np.full((24, 40, 3), 131, np.uint8)),
        ("chelsea 8x8 corner, blurred", chelsea[:8, :8], box3(chelsea)[:8, :8]),
        ("coffee channel swap", coffee[100:164, 200:300], coffee[100:164, 200:300][:, :, ::-1].copy()),
    ]


# Printed by libjxl 0.11.2's own tools (Debian trixie libjxl-devtools 0.11.2-0.1~deb13u3, x86-64 with AVX2/FMA) on
# the PNGs of reference_cases(): `ssimulacra2 ref.png dist.png` (8 decimals) and
# `butteraugli_main ref.png dist.png --pnorm 3` (max norm, 3-norm). benchmarks/perceptual_reference.py reprints them.
LIBJXL_0_11_2 = {
    "astronaut 8x8 block means": (-43.52425133, 48.6225013733, 17.306923),
    "coffee quantized to 32 levels": (84.73790048, 2.5320072174, 0.965879),
    "coffee quantized to 8 levels": (23.52096115, 10.3750295639, 4.697496),
    "chelsea 3x3 box blur": (64.51199123, 5.4781398773, 1.893283),
    "astronaut 97x131 crop, hashed noise": (41.04576921, 1.8869909048, 1.087943),
    "camera (gray) 4x4 block means": (39.03354422, 18.9070777893, 6.492412),
    "flat gray 128 vs 131, 24x40": (98.16822360, 6.4311771393, 6.430937),
    "chelsea 8x8 corner, blurred": (98.11493580, 0.3040383160, 0.222159),
    "coffee channel swap": (-11.62103237, 92.0174179077, 78.694096),
}


@pytest.fixture(scope="module")
def cases():
    return {name: (a, b) for name, a, b in reference_cases()}


def test_the_cases_are_the_ones_the_reference_scores_were_printed_for(cases):
    assert list(cases) == list(LIBJXL_0_11_2)
    a, b = cases["astronaut 8x8 block means"]
    assert a.shape == b.shape == (512, 512, 3) and int(np.abs(a.astype(int) - b).sum()) == 10_632_156


@pytest.mark.parametrize("name", list(LIBJXL_0_11_2))
def test_ssimulacra2_reproduces_libjxl_ssimulacra2_tool(cases, name):
    """The port agrees with the authors' tool to 1e-8 on this machine (the tool prints 8 decimals); 1e-6 leaves room
    for last-bit differences of other CPUs and numpy builds."""
    a, b = cases[name]
    assert perceptual.ssimulacra2(a, b) == pytest.approx(LIBJXL_0_11_2[name][0], abs=1e-6)


def test_ssimulacra2_properties(cases):
    a, b = (x[:64, :96] for x in cases["chelsea 3x3 box blur"])
    assert perceptual.ssimulacra2(a, a) == 100.0
    assert perceptual.ssimulacra2(b, a) != pytest.approx(perceptual.ssimulacra2(a, b), abs=1e-3)   # not symmetric
    g = a[:, :, 1]
    assert perceptual.ssimulacra2(g, g[::-1]) == perceptual.ssimulacra2(np.repeat(g[:, :, None], 3, 2),
                                                                         np.repeat(g[::-1, :, None], 3, 2))
    with pytest.raises(UsageError, match="8x8"):
        perceptual.ssimulacra2(a[:7, :20], b[:7, :20])
    with pytest.raises(UsageError, match="shape"):
        perceptual.ssimulacra2(a, b[:-1])
    with pytest.raises(UsageError, match="uint8"):
        perceptual.ssimulacra2(a.astype(np.float32), b)


def test_the_recursive_gaussian_is_libjxls_nine_tap_kernel():
    """Run on an impulse, the blur is the symmetric 9-tap kernel (sum 1) of libjxl's sigma-1.5 recursive Gaussian,
    with zero padding: a constant plane is darkened at its borders."""
    x = np.zeros((1, 1, 41), np.float32)
    x[0, 0, 20] = 1
    k = perceptual._blur_rows(x[0])[0]
    assert np.allclose(k[:16], 0, atol=1e-6) and np.allclose(k[25:], 0, atol=1e-6)
    assert k[16:25] == pytest.approx(k[16:25][::-1], abs=1e-7) and k.sum() == pytest.approx(1.0, abs=1e-6)
    assert k[20] == pytest.approx(0.264621, abs=1e-6)
    flat = perceptual._gauss_blur(np.ones((1, 20, 20), np.float32))[0]
    assert flat[10, 10] == pytest.approx(1.0, abs=1e-5) and flat[0, 0] < 0.6


# ----------------------------------------------------------------------------------------------- Butteraugli

def _stub_tool(tmp_path, output="1.2500000000\n3-norm: 0.750000\n", code=0):
    """A stand-in butteraugli_main: records its arguments and the two images, prints `output`."""
    log = tmp_path / "calls.txt"
    tool = tmp_path / "butteraugli_main"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import sys, shutil\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"shutil.copy(sys.argv[1], {str(tmp_path / 'seen_ref.png')!r})\n"
        f"shutil.copy(sys.argv[2], {str(tmp_path / 'seen_dist.png')!r})\n"
        f"sys.stdout.write({output!r})\n"
        f"sys.exit({code})\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool, log


def test_butteraugli_runs_the_tool_on_lossless_pngs_reference_first(tmp_path, monkeypatch, cases):
    from PIL import Image

    tool, log = _stub_tool(tmp_path)
    monkeypatch.setenv(perceptual.BUTTERAUGLI_ENV, str(tool))
    a, b = cases["chelsea 8x8 corner, blurred"]
    assert perceptual.butteraugli(a, b) == (1.25, 0.75)
    args = log.read_text().split()
    assert args[0].endswith("reference.png") and args[1].endswith("distorted.png") and args[2:] == ["--pnorm", "3"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seen_ref.png")), a)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seen_dist.png")), b)
    assert perceptual.unavailable("butteraugli") is None and "butteraugli" in perceptual.default_metrics()
    assert perceptual.measure(a, b, ["butteraugli"]) == {"butteraugli": 1.25, "butteraugli_3norm": 0.75}


def test_butteraugli_tool_failures_are_one_line_errors(tmp_path, monkeypatch, cases):
    a, b = cases["chelsea 8x8 corner, blurred"]
    tool, _ = _stub_tool(tmp_path, output="garbage\n")
    monkeypatch.setenv(perceptual.BUTTERAUGLI_ENV, str(tool))
    with pytest.raises(UnsupportedError, match="unexpected butteraugli_main output"):
        perceptual.butteraugli(a, b)
    tool, _ = _stub_tool(tmp_path, output="", code=3)
    with pytest.raises(UnsupportedError, match=r"failed \(3\)"):
        perceptual.butteraugli(a, b)


def test_butteraugli_absent_is_unavailable_never_estimated(tmp_path, monkeypatch, cases):
    monkeypatch.delenv(perceptual.BUTTERAUGLI_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))           # nothing called butteraugli_main here
    a, b = cases["chelsea 8x8 corner, blurred"]
    why = perceptual.unavailable("butteraugli")
    assert why is not None and "libjxl-devtools" in why and perceptual.BUTTERAUGLI_ENV in why
    assert perceptual.default_metrics() == ["ssimulacra2"]
    with pytest.raises(UnsupportedError, match="butteraugli_main"):
        perceptual.butteraugli(a, b)
    with pytest.raises(UnsupportedError, match="--metric butteraugli"):
        perceptual.check_metrics(["ssimulacra2", "butteraugli"])
    monkeypatch.setenv(perceptual.BUTTERAUGLI_ENV, str(tmp_path / "no-such-program"))
    assert perceptual.butteraugli_tool() is None


@pytest.mark.skipif(perceptual.butteraugli_tool() is None, reason="libjxl's butteraugli_main is not installed")
@pytest.mark.parametrize("name", ["coffee quantized to 32 levels", "astronaut 97x131 crop, hashed noise",
                                  "camera (gray) 4x4 block means"])
def test_installed_butteraugli_gives_libjxl_0_11_2_scores(cases, name):
    a, b = cases[name]
    score, pnorm = perceptual.butteraugli(a, b)
    assert score == pytest.approx(LIBJXL_0_11_2[name][1], abs=1e-6)
    assert pnorm == pytest.approx(LIBJXL_0_11_2[name][2], abs=2e-6)


# ----------------------------------------------------------------------------------------------- LPIPS, DISTS

def test_learned_distance_feeds_the_network_the_range_it_expects(cases):
    import torch

    a, b = cases["chelsea 8x8 corner, blurred"]
    seen = []

    def net(x, y):
        seen.append((x.shape, x.dtype, float(x.min()), float(x.max())))
        return ((x - y) ** 2).mean().reshape(1, 1, 1, 1)

    lp = perceptual.learned_distance(net, a, b, (-1.0, 1.0))
    expected = np.mean(((a.astype(np.float64) - b) / 127.5) ** 2)
    assert lp == pytest.approx(expected, rel=1e-5)
    assert seen[0][:2] == ((1, 3, 8, 8), torch.float32) and -1.0 <= seen[0][2] and seen[0][3] <= 1.0
    white, black = np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8, 3), np.uint8)
    assert perceptual.learned_distance(net, white, black, (-1.0, 1.0)) == pytest.approx(4.0)
    assert perceptual.learned_distance(net, white, black, (0.0, 1.0)) == pytest.approx(1.0)


def _hide_module(monkeypatch, name):
    import builtins

    real = builtins.__import__

    def fake(mod, *args, **kwargs):
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"No module named {name!r}")
        return real(mod, *args, **kwargs)

    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib

    real_import_module = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda mod, *a: (_ for _ in ()).throw(ImportError(mod)) if mod == name
                        else real_import_module(mod, *a))


@pytest.mark.parametrize("metric, module, extra", [("lpips", "lpips", "lpips"), ("dists", "DISTS_pytorch", "dists")])
def test_learned_metrics_without_their_package_say_what_to_install(monkeypatch, cases, metric, module, extra):
    _hide_module(monkeypatch, module)
    perceptual._lpips_model.cache_clear()
    perceptual._dists_model.cache_clear()
    why = perceptual.unavailable(metric)
    assert why is not None and f"pip install 'diffcodec[{extra}]'" in why and "\n" not in why
    a, b = cases["chelsea 8x8 corner, blurred"]
    with pytest.raises(UnsupportedError, match=rf"diffcodec\[{extra}\]"):
        getattr(perceptual, metric)(a, b)


class _TinyNet:
    """Stands in for lpips.LPIPS / DISTS_pytorch.DISTS: a fixed 1x1 convolution, mean absolute feature difference."""

    def __init__(self, *args, **kwargs):
        import torch

        self.conv = torch.nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[1.0]], [[0.0]], [[0.0]]], [[[0.0]], [[0.5]], [[0.5]]]]))
        self.built_with = kwargs

    def eval(self):
        return self

    def __call__(self, x, y, **kwargs):
        return (self.conv(x) - self.conv(y)).abs().mean().reshape(1, 1, 1, 1)


@pytest.mark.parametrize("metric, module, cls, backbone, lo", [
    ("lpips", "lpips", "LPIPS", "alexnet", -1.0), ("dists", "DISTS_pytorch", "DISTS", "vgg16", 0.0)])
def test_learned_metrics_use_cached_weights_only(monkeypatch, tmp_path, cases, metric, module, cls, backbone, lo):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{cls: _TinyNet}))
    perceptual._lpips_model.cache_clear()
    perceptual._dists_model.cache_clear()
    a, b = cases["chelsea 8x8 corner, blurred"]
    why = perceptual.unavailable(metric)                       # the package is there, the weights are not
    assert why is not None and perceptual.TORCHVISION_WEIGHTS[backbone] in why and "never downloads" in why
    with pytest.raises(UnsupportedError, match=perceptual.TORCHVISION_WEIGHTS[backbone]):
        getattr(perceptual, metric)(a, b)
    ckpt = perceptual.torch_hub_checkpoints()
    os.makedirs(ckpt)
    (ckpt / perceptual.TORCHVISION_WEIGHTS[backbone]).write_bytes(b"stand-in")
    assert perceptual.unavailable(metric) is None
    value = getattr(perceptual, metric)(a, b)
    scale = (1.0 - lo) / 255.0
    fa, fb = a.astype(np.float64) * scale, b.astype(np.float64) * scale
    feat = lambda f: np.stack([f[:, :, 0], 0.5 * f[:, :, 1] + 0.5 * f[:, :, 2]])  # noqa: E731 (offsets cancel)
    assert value == pytest.approx(np.abs(feat(fa) - feat(fb)).mean(), rel=1e-5)
    assert perceptual.measure(a, b, [metric]) == {metric: pytest.approx(value)}
    perceptual._lpips_model.cache_clear()
    perceptual._dists_model.cache_clear()


def test_no_downloads_refuses_any_hub_download():
    import torch.hub

    with perceptual.no_downloads():
        with pytest.raises(UnsupportedError, match="never downloads"):
            torch.hub.download_url_to_file("https://example.invalid/w.pth", "/tmp/never")
    assert torch.hub.download_url_to_file.__name__ != "refuse"


def test_registry_and_unknown_names():
    assert set(perceptual.METRICS) == {"ssimulacra2", "butteraugli", "lpips", "dists"}
    assert perceptual.COLUMN_HIGHER_IS_BETTER == {"ssimulacra2": True, "butteraugli": False,
                                                  "butteraugli_3norm": False, "lpips": False, "dists": False}
    assert perceptual.unavailable("ssimulacra2") is None
    assert perceptual.check_metrics(["ssimulacra2", "ssimulacra2"]) == ["ssimulacra2"]
    with pytest.raises(UsageError, match="unknown metric 'vmaf'"):
        perceptual.unavailable("vmaf")
    with pytest.raises(UsageError, match="unknown metric"):
        perceptual.measure(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), ["vmaf"])
