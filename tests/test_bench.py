"""Tests for diffcodec.bench with a fake diffcodec codec (JPEG behind a 5-byte header)."""

import contextlib
import csv
import io
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import diffcodec
from diffcodec import bench
from diffcodec.errors import DiffcodecError, UsageError
from diffcodec.methods import Codec

QUALITY = {"lo": 20, "mid": 50, None: 50}


def fake_encode(image, method, preset=None, **params):
    assert method == "fake"
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=QUALITY[preset])
    return b"FAKE" + bytes([QUALITY[preset]]) + buf.getvalue()


def fake_decode(data, **options):
    assert data[:4] == b"FAKE"
    img = np.asarray(Image.open(io.BytesIO(data[5:])).convert("RGB")).copy()
    if options.get("refine"):
        img = np.clip(img.astype(int) + 1, 0, 255).astype(np.uint8)
    return img


def fake_info(data):
    return {"payload_bytes": len(data) - 5, "header_bytes": 5}


class FakeCodec(Codec):
    name = "fake"
    presets = {"lo": "low rate", "mid": "medium rate"}
    decode_options = {"refine": "add one to every pixel"}


def _install_fake_api(monkeypatch, codec_cls, encode=fake_encode, decode=fake_decode):
    """diffcodec.api -> the fake codec functions; diffcodec.methods.get_codec -> `codec_cls`."""
    fake_api = types.ModuleType("diffcodec.api")
    fake_api.encode, fake_api.decode, fake_api.info = encode, decode, fake_info
    monkeypatch.setitem(sys.modules, "diffcodec.api", fake_api)
    monkeypatch.setattr(diffcodec, "api", fake_api, raising=False)
    import diffcodec.methods as methods

    monkeypatch.setattr(methods, "get_codec", lambda name, for_decoding=False: codec_cls())


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("imgs")
    a = np.asarray(Image.fromarray(data.astronaut()).resize((176, 168), Image.Resampling.BICUBIC))
    Image.fromarray(a).save(d / "b_astronaut.png")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:150]
    g = np.stack([x * 1.7, y * 2.0, (x + y) * 0.9], -1) + rng.normal(0, 8, (120, 150, 3))
    Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)).save(d / "a_gradient.png")
    (d / "notes.txt").write_text("not an image")
    return d


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_bench_injected(image_dir, tmp_path):
    images = bench.collect_images([str(image_dir)])
    assert [p.name for p in images] == ["a_gradient.png", "b_astronaut.png"]
    out = tmp_path / "out"
    config = bench.BenchConfig(images, "fake", out, presets=["mid"], baselines=["jpeg", "webp"], quiet=True,
                               crop_size=64, command=["diffcodec", "bench", "x"])
    summary = bench.run_bench(config, encode_fn=fake_encode, decode_fn=fake_decode, info_fn=fake_info)
    for f in ("results.csv", "summary.json", "summary.md", "rd_psnr.png", "rd_msssim.png", "report.html"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    rows = _read_csv(out / "results.csv")
    with open(out / "results.csv") as f:
        header = f.readline().strip().split(",")
    required = ("image,codec,setting,bytes,bpp,payload_bpp,psnr,psnr_y,ssim,ms_ssim,encode_s,decode_s,"
                "compression_ratio,matched_to,over_target,peak_rss_mb").split(",")
    assert header[:len(required)] == required
    assert len(rows) == 2 * (1 + 2)
    assert sorted((r["image"], r["codec"]) for r in rows) == sorted(
        (i, c) for i in ("a_gradient.png", "b_astronaut.png") for c in ("diffcodec", "jpeg", "webp"))

    for img_name in ("a_gradient.png", "b_astronaut.png"):
        d = next(r for r in rows if r["image"] == img_name and r["codec"] == "diffcodec")
        assert d["setting"] == "mid" and d["matched_to"] == "" and d["over_target"] == ""
        h, w = (120, 150) if img_name.startswith("a") else (168, 176)
        assert float(d["bpp"]) == pytest.approx(8 * int(d["bytes"]) / (h * w), rel=1e-5)
        assert float(d["payload_bpp"]) == pytest.approx(8 * (int(d["bytes"]) - 5) / (h * w), rel=1e-5)
        assert float(d["compression_ratio"]) == pytest.approx(h * w * 3 / int(d["bytes"]), rel=1e-5)
        assert float(d["peak_rss_mb"]) > 10
        assert float(d["psnr"]) > 20 and float(d["encode_s"]) >= 0
        for b in (r for r in rows if r["image"] == img_name and r["codec"] != "diffcodec"):
            assert b["matched_to"] == "mid" and b["setting"].startswith("q=")
            assert b["over_target"] in ("true", "false")
            if b["over_target"] == "false":
                assert int(b["bytes"]) <= int(d["bytes"])
            assert float(b["psnr"]) > 20
    # MS-SSIM: NaN (empty) for the 120-px image, a value for the 168-px one
    assert next(r for r in rows if r["image"] == "a_gradient.png")["ms_ssim"] == ""
    assert 0 < float(next(r for r in rows if r["image"] == "b_astronaut.png")["ms_ssim"]) <= 1

    js = json.loads((out / "summary.json").read_text())
    assert js["settings"] == summary["settings"]
    assert [(e["codec"], e["setting"]) for e in js["settings"]] == [
        ("diffcodec", "mid"), ("jpeg", "@mid"), ("webp", "@mid")]
    for e in js["settings"]:
        assert e["n_images"] == 2 and e["mean_bpp"] > 0 and e["mean_psnr"] > 20
        assert e["mean_ms_ssim"] is not None        # mean over the one image that has it
    dc = js["settings"][0]
    assert dc["mean_bpp"] == pytest.approx(np.mean([float(r["bpp"]) for r in rows if r["codec"] == "diffcodec"]))
    for k in ("platform", "cpu_count", "torch_threads", "python", "numpy", "torch", "pillow"):
        assert k in js["machine"]
    assert js["command"] == "diffcodec bench x" and js["wall_s"] > 0 and js["date_utc"].endswith("+00:00")

    md = (out / "summary.md").read_text()
    assert md == bench.format_markdown_table(js)
    assert md.count("\n") == 2 + 3 and "| jpeg | @mid (q=" in md

    report = (out / "report.html").read_text()
    assert "rd_psnr.png" in report and "rd_msssim.png" in report
    crops = sorted((out / "crops").glob("*.png"))
    assert len(crops) == 2 * (1 + 1 + 2)            # original + diffcodec + 2 baselines per image
    for c in crops:
        assert f"crops/{c.name}" in report
        assert Image.open(c).size == (64, 64)
    assert Image.open(out / "rd_psnr.png").size[0] > 300


def test_run_bench_through_api_module(image_dir, tmp_path, monkeypatch):
    """The default path: lazily imported diffcodec.api + preset check through diffcodec.methods.get_codec."""
    _install_fake_api(monkeypatch, FakeCodec)

    images = bench.collect_images([str(image_dir / "a_gradient.png")])
    out = tmp_path / "out2"
    summary = bench.run_bench(bench.BenchConfig(
        images, "fake", out, baselines=["jpeg"], quiet=True, crop_size=32, report_images=0,
        extra_settings=[{"label": "refine", "decode_options": {"refine": True}}]))
    rows = _read_csv(out / "results.csv")
    # every preset (none named), each with its +refine variant and a jpeg match
    assert [(r["codec"], r["setting"]) for r in rows] == [
        ("diffcodec", "lo"), ("diffcodec", "lo+refine"), ("jpeg", rows[2]["setting"]),
        ("diffcodec", "mid"), ("diffcodec", "mid+refine"), ("jpeg", rows[5]["setting"])]
    assert rows[0]["bytes"] == rows[1]["bytes"] and rows[0]["psnr"] != rows[1]["psnr"]
    assert int(rows[0]["bytes"]) < int(rows[3]["bytes"])
    assert [e["setting"] for e in summary["settings"]] == ["lo", "mid", "lo+refine", "mid+refine", "@lo", "@mid"]
    assert not list((out / "crops").glob("*.png"))

    with pytest.raises(UsageError, match="unknown preset"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "out3", ["nope"], ["jpeg"], quiet=True))


def test_run_bench_errors(image_dir, tmp_path):
    images = bench.collect_images([str(image_dir)])
    with pytest.raises(UsageError, match="available"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "o", ["mid"], ["bpg"], quiet=True),
                        encode_fn=fake_encode, decode_fn=fake_decode)
    assert not (tmp_path / "o").exists()
    with pytest.raises(DiffcodecError, match="decoded image"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "o", ["mid"], quiet=True),
                        encode_fn=fake_encode, decode_fn=lambda d, **k: fake_decode(d)[:-1])


def test_collect_and_load(image_dir, tmp_path):
    with pytest.raises(UsageError):
        bench.collect_images([str(tmp_path / "missing")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no images"):
        bench.collect_images([str(empty)])
    files = bench.collect_images([str(image_dir / "b_astronaut.png"), str(image_dir)])
    assert len(files) == 2     # de-duplicated
    # other modes become RGB
    Image.fromarray(np.full((10, 12), 77, np.uint8)).save(tmp_path / "g.png")
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    g = bench.load_rgb(tmp_path / "g.png")
    assert g.shape == (10, 12, 3) and g.dtype == np.uint8 and (g == 77).all()
    with pytest.warns(UserWarning, match="alpha"):
        c = bench.load_rgb(tmp_path / "rgba.png")
    assert c.shape == (10, 12, 3) and (c[..., 0] == 200).all()
    # the same pixels `encode` codes: alpha dropped (not composited), 16-bit to the high byte, EXIF orientation
    from diffcodec import images

    rgba[:, :6, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray((np.arange(120).reshape(10, 12) * 500).astype(np.uint16)).save(tmp_path / "g16.png")
    turned = Image.fromarray(rgba[..., :3].copy())
    exif = Image.Exif()
    exif[0x0112] = 6
    turned.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    for name in ("rgba.png", "g16.png", "turned.jpg"):
        with pytest.warns() if name != "turned.jpg" else contextlib.nullcontext():
            coded = images.image_from_bytes((tmp_path / name).read_bytes())
        with pytest.warns() if name != "turned.jpg" else contextlib.nullcontext():
            got = bench.load_rgb(tmp_path / name)
        assert np.array_equal(got, np.repeat(coded, 3, axis=2) if coded.shape[2] == 1 else coded), name
    assert bench.load_rgb(tmp_path / "turned.jpg").shape == (12, 10, 3)
    with pytest.raises(UsageError):
        bench.load_rgb(image_dir / "notes.txt")


def test_default_image_dir():
    d = bench.default_image_dir()
    expected = (Path(bench.__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak").resolve()
    assert d == (expected if expected.is_dir() else None)


def test_center_crop_box_and_table():
    assert bench.center_crop_box(512, 768, 256) == (128, 256, 256, 256)
    assert bench.center_crop_box(100, 300, 256) == (0, 22, 100, 256)
    md = bench.format_markdown_table([{"codec": "jpeg", "setting": "@x", "quality_min": 3, "quality_max": 3,
                                       "mean_bpp": 0.25, "mean_psnr": math.inf, "mean_psnr_y": None,
                                       "mean_ms_ssim": 0.9, "n_images": 1, "over_target": 1}])
    assert "| jpeg | @x (q=3) | 0.2500 | inf | n/a | 0.9000 |" in md


def test_device_passed_only_to_functions_that_take_it(image_dir, tmp_path):
    images = bench.collect_images([str(image_dir / "a_gradient.png")])
    seen = []

    def enc_dev(image, method, preset=None, device="cpu"):
        seen.append(("enc", device))
        return fake_encode(image, method, preset)

    def dec_kwargs(data, **options):          # a **kwargs catch-all does not count as taking a device
        seen.append(("dec", options.get("device")))
        return fake_decode(data)

    bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "d", ["lo"], quiet=True, device="cuda"),
                    encode_fn=enc_dev, decode_fn=dec_kwargs)
    assert seen == [("enc", "cuda"), ("dec", None)]
    seen.clear()
    s = bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "d", ["lo"], quiet=True, device="auto",
                                          force=True), encode_fn=enc_dev, decode_fn=dec_kwargs)
    assert seen == [("enc", "cpu"), ("dec", None)] and s["device"] == "auto"
    assert s["rss_start_mb"] > 0


def test_run_bench_passes_encode_params(image_dir, tmp_path):
    seen = []

    def encode(image, method, preset=None, **params):
        seen.append(params)
        return fake_encode(image, method, preset)

    images = bench.collect_images([str(image_dir / "a_gradient.png")])
    config = bench.BenchConfig(images, "fake", tmp_path / "o", ["mid"], quiet=True, report_images=0,
                               encode_params={"space": "latent", "k": 16})
    summary = bench.run_bench(config, encode_fn=encode, decode_fn=fake_decode)
    assert seen == [{"space": "latent", "k": 16}]
    assert summary["encode_params"] == {"space": "latent", "k": 16}


def test_setting_label():
    assert bench.setting_label("mid", {}) == "mid"
    assert bench.setting_label(None, {}) == "default"
    assert bench.setting_label("mid", {"space": "latent", "k": 16}) == "mid space=latent k=16"
    assert bench.setting_label(None, {"bpp": 0.1, "k": 4096}, preset_overridden=True) == "bpp=0.1 k=4096"


class RateCodec(FakeCodec):
    """A codec whose `bpp` parameter replaces the preset (as ddcm's and diffae's do)."""

    encode_options = {"bpp": "target rate", "space": "where to code"}

    def params_override_preset(self, params):
        return params.get("bpp") is not None


def test_params_label_rows_and_replace_presets(image_dir, tmp_path, monkeypatch):
    """--param values are in the setting labels; when they replace the preset, the method runs once (at its
    default preset) instead of once per preset with identical files."""
    calls = []

    def encode(image, method, preset=None, **params):
        calls.append((preset, params))
        return fake_encode(image, method, preset)

    _install_fake_api(monkeypatch, RateCodec, encode=encode)
    images = bench.collect_images([str(image_dir)])
    out = tmp_path / "bpp"
    summary = bench.run_bench(bench.BenchConfig(images, "fake", out, baselines=["jpeg"], quiet=True,
                                                report_images=1, encode_params={"bpp": 0.1}))
    assert calls == [(None, {"bpp": 0.1})] * 2          # one encode per image, not one per preset
    rows = _read_csv(out / "results.csv")
    assert [(r["codec"], r["setting"] if r["codec"] == "diffcodec" else r["matched_to"]) for r in rows] == [
        ("diffcodec", "bpp=0.1"), ("jpeg", "bpp=0.1")] * 2
    assert summary["presets"] == ["bpp=0.1"] and summary["encode_params"] == {"bpp": 0.1}
    assert [e["setting"] for e in summary["settings"]] == ["bpp=0.1", "@bpp=0.1"]
    assert "| diffcodec | bpp=0.1 |" in (out / "summary.md").read_text()
    assert len(list((out / "crops").glob("*.png"))) == 3   # original, diffcodec, jpeg of the first image

    # parameters that leave the preset in charge: every preset, each labelled with them
    calls.clear()
    out = tmp_path / "space"
    summary = bench.run_bench(bench.BenchConfig(images[:1], "fake", out, quiet=True, report_images=0,
                                                encode_params={"space": "x"}))
    assert calls == [("lo", {"space": "x"}), ("mid", {"space": "x"})]
    assert [r["setting"] for r in _read_csv(out / "results.csv")] == ["lo space=x", "mid space=x"]
    assert summary["presets"] == ["lo space=x", "mid space=x"]


def test_real_path_asks_the_codec(image_dir, tmp_path, monkeypatch):
    """With diffcodec.api: `device` goes to encode only when the codec takes it (Codec.takes_device) and to
    decode only when it is one of its decode_options; parameters and extra decode settings the codec refuses
    are usage errors before anything is written."""
    seen = []

    class DeviceCodec(FakeCodec):
        encode_options = {"device": "where the network runs"}

    def encode(image, method, preset=None, **params):
        seen.append(("enc", params.get("device")))
        return fake_encode(image, method, preset)

    def decode(data, **options):
        seen.append(("dec", options.get("device")))
        return fake_decode(data, **options)

    _install_fake_api(monkeypatch, DeviceCodec, encode=encode, decode=decode)
    images = bench.collect_images([str(image_dir / "a_gradient.png")])
    bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "d", ["lo"], quiet=True, device="cuda",
                                      report_images=0))
    assert seen == [("enc", "cuda"), ("dec", None)]
    with pytest.raises(UsageError, match="no parameter"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "e1", ["lo"], quiet=True,
                                          encode_params={"nope": 1}))
    with pytest.raises(UsageError, match="no option"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "e2", ["lo"], quiet=True, extra_settings=[
            {"label": "s2", "decode_options": {"steps": 2}}]))
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()


# ----------------------------------------------------------------------------------------------- issue 22

class ResolvingCodec(FakeCodec):
    """A codec whose parameter `q` replaces the quality of both presets (so lo and mid code alike with it), that
    reads its own files back, and that has a quality scale."""

    encode_options = {"q": "JPEG quality for every preset"}
    quality_points = ((0, "lo", {}), (40, "mid", {}), (80, None, {"q": 90}))

    def params_override_preset(self, params):
        return False

    def encode_setting(self, preset, params):
        if params.get("q") is not None:
            return {"q": params["q"]}
        return {"preset": preset or "mid"}

    def coded_setting(self, model, params):
        return f"jpeg q{params['jq']}"


def _resolving_api(monkeypatch, calls):
    def encode(image, method, preset=None, **params):
        calls.append((preset, params))
        q = params.get("q", QUALITY[preset])
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=q)
        return b"FAKE" + bytes([q]) + buf.getvalue()

    _install_fake_api(monkeypatch, ResolvingCodec, encode=encode)
    import diffcodec.api as fake_api

    fake_api.info = lambda data: {**fake_info(data), "model": "fake", "params": {"jq": data[4]}}


def test_identical_settings_run_once_and_rows_say_what_ran(image_dir, tmp_path, monkeypatch):
    """Issue 22 item 2: presets the codec resolves alike (here: `q` overrides what lo and mid set) run once, and
    the rows are labelled by the parameters read back from the files, not by a preset name."""
    calls = []
    _resolving_api(monkeypatch, calls)
    images = bench.collect_images([str(image_dir)])
    out = tmp_path / "once"
    summary = bench.run_bench(bench.BenchConfig(images, "fake", out, baselines=["jpeg"], quiet=True, report_images=1,
                                                encode_params={"q": 30}))
    assert calls == [("lo", {"q": 30})] * 2                  # one encode per image, not one per preset
    rows = _read_csv(out / "results.csv")
    ours = [r for r in rows if r["codec"] == "diffcodec"]
    assert [r["setting"] for r in ours] == ["jpeg q30"] * 2 and {r["coded"] for r in ours} == {"jpeg q30"}
    assert ours[0]["asked"] == "lo, mid"
    assert {r["matched_to"] for r in rows if r["codec"] == "jpeg"} == {"jpeg q30"}
    assert summary["presets"] == ["jpeg q30"]
    assert "| diffcodec | jpeg q30 (lo, mid) |" in (out / "summary.md").read_text()
    report = (out / "report.html").read_text()
    assert "diffcodec jpeg q30<br>" in report and " @jpeg q30<br>" in report     # crop captions relabelled too
    assert "diffcodec q=30" not in report

    # without q: two different settings, each labelled by what its files read back
    calls.clear()
    summary = bench.run_bench(bench.BenchConfig(images[:1], "fake", tmp_path / "two", quiet=True, report_images=0))
    assert [c[0] for c in calls] == ["lo", "mid"] and summary["presets"] == ["jpeg q20", "jpeg q50"]


def test_quality_settings_ask_the_codec_and_merge(image_dir, tmp_path, monkeypatch):
    calls = []
    _resolving_api(monkeypatch, calls)
    images = bench.collect_images([str(image_dir / "a_gradient.png")])
    summary = bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "q", quiet=True, report_images=0,
                                                qualities=[10, 30, 50, 85]))
    # 10 and 30 -> lo, 50 -> mid, 85 -> q=90 (no preset): three encodes, four qualities
    assert calls == [("lo", {}), ("mid", {}), (None, {"q": 90})]
    assert summary["presets"] == ["jpeg q20", "jpeg q50", "jpeg q90"]
    assert list(summary["asked"].values()) == ["q=10, q=30", "q=50", "q=85"]

    class Fixed(ResolvingCodec):
        def params_override_preset(self, params):
            return "q" in params

    _install_fake_api(monkeypatch, Fixed)
    with pytest.raises(UsageError, match="--quality chooses the rate"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "q2", quiet=True, qualities=[10],
                                          encode_params={"q": 5}))
    with pytest.raises(UsageError, match="quality settings"):
        bench.run_bench(bench.BenchConfig(images, "fake", tmp_path / "q3", quiet=True, qualities=[10]),
                        encode_fn=fake_encode, decode_fn=fake_decode)


def test_non_empty_outdir_is_refused_and_force_replaces_the_old_run(image_dir, tmp_path):
    """Issue 22 item 3: a second run into the same folder would mix its crops with stale ones."""
    images = bench.collect_images([str(image_dir)])
    out = tmp_path / "out"
    config = lambda **kw: bench.BenchConfig(images, "fake", out, ["lo"], ["jpeg"], quiet=True, crop_size=32, **kw)
    bench.run_bench(config(), encode_fn=fake_encode, decode_fn=fake_decode)
    first = sorted(p.name for p in (out / "crops").iterdir())
    stale = out / "crops" / "000_old_run_diffcodec_zzz.png"
    stale.write_bytes((out / "crops" / first[0]).read_bytes())
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty.*--force"):
        bench.run_bench(config(), encode_fn=fake_encode, decode_fn=fake_decode)
    assert stale.exists()                                    # refused before anything was touched
    bench.run_bench(config(force=True, report_images=1), encode_fn=fake_encode, decode_fn=fake_decode)
    crops = sorted(p.name for p in (out / "crops").iterdir())
    report = (out / "report.html").read_text()
    assert not stale.exists() and len(crops) == 3 and all(f"crops/{c}" in report for c in crops)
    assert (out / "notes.txt").read_text() == "mine"         # not ours: left alone
    with pytest.raises(UsageError, match="not empty"):
        bench.BenchConfig(images, "fake", out).check()
    bench.BenchConfig(images, "fake", tmp_path / "fresh").check()       # absent: fine


def test_each_codec_keeps_its_plot_style_whatever_else_is_plotted():
    """Issue 22 item 4: JPEG must not be green in one plot and orange in the next."""
    from diffcodec import bench_report

    def styles(codecs):
        settings = [{"codec": c, "setting": "x", "mean_bpp": 0.1 * (i + 1), "mean_psnr": 30.0 + i}
                    for i, c in enumerate(codecs)]
        fig = bench_report.rd_figure(settings, "mean_psnr", "PSNR", "t")
        return {line.get_label(): (line.get_color(), line.get_marker()) for line in fig.axes[0].get_lines()}

    a = styles(["diffcodec", "jpeg", "webp", "avif"])
    b = styles(["avif", "jpeg"])
    c = styles(["jpeg", "x264-medium", "mystery"])
    assert a["jpeg"] == b["jpeg"] == c["jpeg"] and a["avif"] == b["avif"]
    assert len({v for v in a.values()}) == 4                  # distinct codecs look distinct
    assert bench_report.codec_style("mystery") == bench_report.codec_style("mystery")
    variant = bench_report.codec_style("diffcodec +refine1")
    assert variant["color"] == bench_report.codec_style("diffcodec")["color"] and variant["linestyle"] != "-"


# ----------------------------------------------------------------------------------------------- issue 18

def test_perceptual_metrics_bd_table_and_published_curves(image_dir, tmp_path, monkeypatch):
    """Issue 18: SSIMULACRA 2 in every row, BD-rate / BD-quality per image against the anchor, published curves
    drawn and listed as "published, not re-measured"."""
    from diffcodec import bdrate, bench_report, perceptual

    monkeypatch.delenv(perceptual.BUTTERAUGLI_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))                 # no butteraugli_main: the default is ssimulacra2 only
    pub = tmp_path / "pub.json"
    pub.write_text(json.dumps({"dataset": "test", "curves": [
        {"codec": "paper-codec", "source": {"repository": "o/r", "path": "results/x.json", "commit": "abc"},
         "bpp": [0.5, 1.0, 2.0, 4.0], "psnr": [25.0, 30.0, 35.0, 40.0], "ms_ssim": [0.9, 0.95, 0.97, 0.99]}]}))
    images = bench.collect_images([str(image_dir)])
    out = tmp_path / "out"
    config = bench.BenchConfig(images, "fake", out, presets=["lo", "mid"], baselines=["jpeg", "webp"], quiet=True,
                               crop_size=32, report_images=1, published=[pub])
    assert config.metrics == ["ssimulacra2"] and config.anchor == "jpeg"
    summary = bench.run_bench(config, encode_fn=fake_encode, decode_fn=fake_decode, info_fn=fake_info)
    rows = _read_csv(out / "results.csv")
    assert all(float(r["ssimulacra2"]) < 100 for r in rows)
    img = np.asarray(Image.open(images[1]).convert("RGB"))
    r0 = next(r for r in rows if r["image"] == images[1].name and r["codec"] == "diffcodec" and r["setting"] == "lo")
    assert float(r0["ssimulacra2"]) == pytest.approx(
        perceptual.ssimulacra2(img, fake_decode(fake_encode(img, "fake", "lo"))), abs=1e-4)
    mid = next(e for e in summary["settings"] if e["setting"] == "mid")
    assert mid["mean_ssimulacra2"] == pytest.approx(np.mean(
        [float(r["ssimulacra2"]) for r in rows if r["codec"] == "diffcodec" and r["setting"] == "mid"]))
    assert summary["metrics"] == ["ssimulacra2"] and summary["anchor"] == "jpeg"

    bd = {(b["codec"], b["metric"]): b for b in summary["bd"]}
    assert set(bd) == {(c, m) for c in ("diffcodec", "webp") for m in ("psnr", "ms_ssim", "ssimulacra2")}
    curve = lambda codec, col: {im: [(float(r["bpp"]), float(r[col])) for r in rows if r["image"] == im  # noqa: E731
                                     and r["codec"] == codec and r[col] != ""] for im in {r["image"] for r in rows}}
    expect = bdrate.per_image_bd(curve("jpeg", "ssimulacra2"), curve("webp", "ssimulacra2"))
    assert bd[("webp", "ssimulacra2")]["bd_rate"] == pytest.approx(expect["bd_rate"], rel=1e-3)   # CSV: 6 digits
    assert bd[("webp", "ssimulacra2")]["n_images"] == 2
    expect = bdrate.per_image_bd(curve("jpeg", "psnr"), curve("diffcodec", "psnr"))
    assert bd[("diffcodec", "psnr")]["bd_quality"] == pytest.approx(expect["bd_quality"], rel=1e-3)
    assert bd[("diffcodec", "ms_ssim")]["n_images"] == 1       # MS-SSIM is NaN on the 120-px image: left out

    md = (out / "summary.md").read_text()
    assert md == bench.format_markdown_table(summary) and "| SSIMULACRA2 |" in md.splitlines()[0]
    assert "BD-rate and BD-quality against jpeg" in md and "| webp | SSIMULACRA2 |" in md
    assert "Reference curves on test, published" in md
    assert "paper-codec (published, not re-measured) | 0.5000 | 25.00 | 0.9000 | o/r results/x.json @abc |" in md
    report = (out / "report.html").read_text()
    assert "rd_ssimulacra2.png" in report and "published, not re-measured" in report and "BD-rate" in report
    assert (out / "rd_ssimulacra2.png").stat().st_size > 1000 and not (out / "rd_butteraugli.png").exists()
    fig = bench_report.rd_figure(summary["settings"], "mean_psnr", "PSNR", "t", published=summary["published"])
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert lines["paper-codec (published, not re-measured)"].get_linestyle() == "--"
    xs = [e["mean_bpp"] for e in summary["settings"]]
    assert fig.axes[0].get_xlim()[1] < 4.0 and fig.axes[0].get_xlim()[0] <= min(xs)   # measured range, not 0.5..4


def test_bench_refuses_unavailable_metrics_baselines_and_bad_anchor_before_running(image_dir, tmp_path, monkeypatch):
    from diffcodec import baselines, perceptual
    from diffcodec.errors import UnsupportedError

    monkeypatch.delenv(perceptual.BUTTERAUGLI_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    images = bench.collect_images([str(image_dir)])
    out = tmp_path / "o"
    run = lambda **kw: bench.run_bench(bench.BenchConfig(images, "fake", out, ["mid"], ["jpeg"], quiet=True,  # noqa
                                                         **kw), encode_fn=fake_encode, decode_fn=fake_decode)
    with pytest.raises(UnsupportedError, match="--metric butteraugli: .*butteraugli_main"):
        run(metrics=["butteraugli"])
    with pytest.raises(UsageError, match="--anchor 'avif' is not among"):
        run(anchor="avif")
    with pytest.raises(UsageError, match="published curves"):
        run(published=[tmp_path / "missing.json"])
    monkeypatch.setitem(baselines.BASELINES, "jxl", baselines.Baseline(
        "jxl", "test", 0, 99, "JXL", plugin="no_such_plugin_module", install="pillow-jxl-plugin: pip install x"))
    with pytest.raises(UnsupportedError, match="--vs jxl: .*pillow-jxl-plugin"):
        bench.run_bench(bench.BenchConfig(images, "fake", out, ["mid"], ["jxl"], quiet=True),
                        encode_fn=fake_encode, decode_fn=fake_decode)
    assert not out.exists()
    summary = run(metrics=[], anchor=None)
    assert summary["metrics"] == [] and summary["bd"] == [] and "ssimulacra2" not in _read_csv(out / "results.csv")[0]
