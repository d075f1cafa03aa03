"""The video benchmark (diffcodec.bench_video, `diffcodec bench --video`): BD-rate maths, size matching, the CLI
end to end on a generated 3-frame 48x32 clip (opq + one baseline). No ../shared data; one thread."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from diffcodec import bench_video as bv
from diffcodec.errors import UsageError
from diffcodec.video import VideoInfo

W, H = 48, 32


def _frames(n: int, w: int = W, h: int = H):
    """Moving gradient + a moving square, 4:2:0."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    for t in range(n):
        y = 60 + 2 * xx + yy + 3 * t + rng.normal(0, 6, (h, w))
        y[(np.abs(xx - 10 - 4 * t) < 6) & (np.abs(yy - h // 2) < 6)] = 220
        c = (h // 2, w // 2)
        u = 128 + t + 20 * np.sin(xx[::2, ::2] / 3.0) + rng.normal(0, 4, c)
        v = 100 + xx[::2, ::2] + t + rng.normal(0, 4, c)
        yield tuple(np.clip(np.rint(p), 16, 240).astype(np.uint8) for p in (y, u, v))


@pytest.fixture
def clip(tmp_path):
    from diffcodec.video import open_writer

    path = tmp_path / "moving.y4m"
    with open_writer(str(path), VideoInfo(W, H, (25, 1), "420", frames=3)) as w:
        for planes in _frames(3):
            w.write(planes)
    return path


# ----------------------------------------------------------------------------------------------- BD-rate

RATES = [100.0, 200.0, 400.0, 800.0]
PSNR = [30.0, 33.0, 35.5, 37.0]


def test_bd_rate_identical_curves_is_zero():
    r = bv.bd_rate(RATES, PSNR, RATES, PSNR)
    assert r["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)
    assert r["quality_range"] == [30.0, 37.0]


@pytest.mark.parametrize("factor, expected", [(0.5, -50.0), (2.0, 100.0), (1.1, 10.0)])
def test_bd_rate_scaled_rate(factor, expected):
    r = bv.bd_rate(RATES, PSNR, [x * factor for x in RATES], PSNR)
    assert r["bd_rate_pct"] == pytest.approx(expected, abs=1e-9)


def test_bd_rate_no_overlap_and_too_few_points():
    assert bv.bd_rate(RATES, PSNR, RATES, [q + 20 for q in PSNR]) is None
    assert bv.bd_rate([100.0], [30.0], RATES, PSNR) is None


def test_bd_rate_partial_overlap_integrates_only_the_overlap():
    # test curve: same rates, 1 dB better -> fewer bits; only [31, 37] overlaps
    r = bv.bd_rate(RATES, PSNR, RATES, [q + 1 for q in PSNR])
    assert r["quality_range"] == [31.0, 37.0]
    assert r["bd_rate_pct"] < 0


def test_pchip_integral_of_a_line_and_against_scipy():
    x = [0.0, 1.0, 2.0, 4.0]
    assert bv.pchip_integral(x, [1.0, 3.0, 5.0, 9.0], 0.0, 4.0) == pytest.approx(4 + 16, abs=1e-12)
    interpolate = pytest.importorskip("scipy.interpolate")
    y = [0.0, 2.0, 2.5, 7.0]
    np.testing.assert_allclose(bv.pchip_slopes(x, y), interpolate.PchipInterpolator(x, y).derivative()(x),
                               atol=1e-12)
    ref = interpolate.PchipInterpolator(x, y).integrate(0.5, 3.3)
    assert bv.pchip_integral(x, y, 0.5, 3.3) == pytest.approx(ref, abs=1e-12)


def test_bd_rate_against_scipy_with_curved_data():
    interpolate = pytest.importorskip("scipy.interpolate")
    ar, aq = [120.0, 260.0, 500.0, 1100.0], [29.1, 32.4, 34.9, 37.8]
    tr, tq = [150.0, 330.0, 700.0, 1400.0], [28.7, 31.9, 34.6, 37.2]
    lo, hi = 29.1, 37.2
    ia = interpolate.PchipInterpolator(aq, np.log(ar)).integrate(lo, hi)
    it = interpolate.PchipInterpolator(tq, np.log(tr)).integrate(lo, hi)
    expected = (math.exp((it - ia) / (hi - lo)) - 1) * 100
    assert bv.bd_rate(ar, aq, tr, tq)["bd_rate_pct"] == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------------------------- baselines

def test_resolve_baselines_aliases():
    assert bv.resolve_baselines(["h264"]) == ["x264-medium", "x264-veryslow-psnr"]
    assert bv.resolve_baselines(["h265", "av1", "h264-gop"]) == ["x265-medium", "svtav1-p8", "x264-medium-gop"]
    with pytest.raises(UsageError, match="unknown video baseline"):
        bv.resolve_baselines(["vp9"])


def test_size_matching_lands_at_or_under_the_target(clip, tmp_path):
    info = VideoInfo(W, H, (25, 1), "420")
    work = tmp_path / "work"
    work.mkdir()
    (work / "ref.y4m").write_bytes(clip.read_bytes())
    runner = bv.BaselineRunner(bv.BASELINES["x264-medium"], work, "ref.y4m", info, threads=1)
    big = runner.probe(20.0).bytes
    target = (big + runner.probe(35.0).bytes) // 2
    probe, over = runner.search(lambda p: p.bytes <= target)
    assert not over and probe.bytes <= target
    # the next better grid point (lower CRF) is over the target: the highest quality that fits
    g = runner.b.grid
    better = g[g.index(probe.q) - 1]
    assert runner.probe(better).bytes > target
    # an impossible target: flagged, the lowest quality returned
    probe, over = runner.search(lambda p: p.bytes <= 10)
    assert over and probe.q == g[-1]
    dec, _ = runner.decode(probe)
    assert bv.psnr_only(work / "ref.y4m", dec) > 10


# ----------------------------------------------------------------------------------------------- end to end

def test_cli_video_bench_end_to_end(clip, tmp_path, monkeypatch):
    from diffcodec.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    argv = ["bench", "--video", str(clip), "-m", "opq", "--gop", "1", "-p", "opq-64-16-16", "-p", "opq-128-32-32",
            "--vs", "x264-medium", "--quiet", "-o", str(out)]
    main(argv)          # standalone_mode=False: returns on success, exits only on errors
    for name in ("results.csv", "frames.csv", "summary.json", "summary.md", "report.html",
                 "rd_moving_psnr_y.png", "rd_moving_vmaf.png", "perframe_moving.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not [p for p in out.iterdir() if p.name.startswith(".work")]       # work folder removed
    rows = list(csv.DictReader((out / "results.csv").open()))
    ours = [r for r in rows if r["codec"] == "diffcodec"]
    assert [r["coded"] for r in ours] == ["opq-64-16-16", "opq-128-32-32"]   # read back from each header
    assert [r["setting"] for r in ours] == ["opq-64-16-16", "opq-128-32-32"]
    matched = [r for r in rows if r["codec"] == "x264-medium" and r["role"] == "size-matched"]
    assert len(matched) == 2
    for r in matched:
        if r["over_target"] != "true":
            assert int(r["bytes"]) <= int(r["target_bytes"])
        assert int(r["target_bytes"]) == int(next(o for o in ours if o["setting"] == r["matched_to"])["bytes"])
    assert any(r["role"] == "quality-matched" for r in rows)
    for r in ours + matched:
        for k in ("kbps", "psnr_y", "psnr_yuv", "vmaf", "encode_fps", "decode_fps"):
            assert math.isfinite(float(r[k])), (k, r)
        assert r["ms_ssim_y"] == ""          # 32 px: too small for 5-scale MS-SSIM
    s = json.loads((out / "summary.json").read_text())
    assert s["rate_points"] == ["opq-64-16-16", "opq-128-32-32"]
    c = s["clips"][0]
    assert c["frames"] == 3 and c["reference"] == "source Y4M planes"
    assert c["rgb_ceiling"]["psnr_y"] > 30
    assert s["baseline_settings"]["x264-medium"]["ffmpeg_args"].startswith("-c:v libx264 -preset medium -g 1")
    frames = list(csv.DictReader((out / "frames.csv").open()))
    assert len(frames) == 3 * len(rows)
    html = (out / "report.html").read_text()
    strip = [p for p in (out / "frames").iterdir()]
    assert len(strip) == 3 and all(p.name in html for p in strip)      # source, ours, x264 at matched size


def test_cli_video_bench_usage_errors(clip, tmp_path):
    from click.testing import CliRunner

    from diffcodec.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--video", str(clip), str(clip), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "--video takes clips only" in str(r.exception)
    r = CliRunner().invoke(cli, ["bench", "--kbps", "100", "-o", str(tmp_path / "o")])
    assert "apply to --video" in str(r.exception)
    with pytest.raises(UsageError, match="--kbps takes numbers"):
        bv.parse_kbps("100,x")
    assert bv.parse_kbps("100, 250.5") == [100.0, 250.5]


def test_rate_points_ask_the_codec_and_the_output_folder_must_be_fresh(clip, tmp_path):
    """Issue 22: presets the codec resolves alike are one rate point labelled by what it resolves to; a folder with
    an earlier run's files is refused without force."""
    from diffcodec.methods import get_codec

    ddcm = get_codec("ddcm")
    cfg = bv.VideoBenchConfig([str(clip)], "ddcm", tmp_path / "o", encode_params={"steps": 3, "atoms": 8})
    assert [p.label for p in bv.rate_points(cfg, ddcm)] == ["steps=3 atoms=8 k=4096"]
    cfg = bv.VideoBenchConfig([str(clip)], "ddcm", tmp_path / "o", encode_params={"bpp": 0.2})
    assert [(p.label, p.preset) for p in bv.rate_points(cfg, ddcm)] == [("bpp=0.2", None)]     # not one per preset
    opq = bv.VideoBenchConfig([str(clip)], "opq", tmp_path / "o", presets=["opq-16-8-8", "opq-32-8-8"])
    assert [p.label for p in bv.rate_points(opq, get_codec("opq"))] == ["opq-16-8-8", "opq-32-8-8"]
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "rd_old_psnr_y.png").write_bytes(b"x")
    with pytest.raises(UsageError, match="not empty"):
        opq.check()
    bv.VideoBenchConfig([str(clip)], "opq", tmp_path / "o", force=True).check()
