"""Clips end to end: every method codes a small generated clip intra, streamed, into one format-1.1 file; the CLI
encodes and decodes them (files, pipes, frame ranges) and aims at --kbps."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from diffcodec import api, clips, container, metrics, video, yuv
from diffcodec.errors import UsageError

from conftest import synthetic_image

CLI = [sys.executable, "-m", "diffcodec"]


def make_clip(path, frames=4, height=32, width=48, chroma="420", fps=(25, 1)):
    """A moving test picture as a Y4M file; returns the frames' planes."""
    info = video.VideoInfo(width, height, fps, chroma)
    base = synthetic_image(height, width + 8 * frames, seed=1)
    planes = []
    with video.open_writer(str(path), info) as w:
        for i in range(frames):
            p = yuv.rgb_to_planes(np.ascontiguousarray(base[:, 8 * i:8 * i + width]), chroma)
            w.write(p)
            planes.append(p)
    return planes


def make_still_clip(path, frames, height=48, width=64):
    """A clip of one picture repeated (4:2:0 Y4M)."""
    info = video.VideoInfo(width, height, (25, 1), "420")
    still = yuv.rgb_to_planes(synthetic_image(height, width, seed=3), "420")
    with video.open_writer(str(path), info) as w:
        for _ in range(frames):
            w.write(still)


def encode(path, method, **params):
    out = io.BytesIO()
    with video.open_video(str(path)) as r:
        summary = clips.encode_clip(r, out, method, **params)
    return out.getvalue(), summary


@pytest.mark.parametrize("method, params", [
    ("opq", {"preset": "opq-32-8-8", "gop": 1}),
    ("ddcm", {"steps": 3, "k": 64, "space": "latent", "device": "cpu"}),
    ("diffae", {"device": "cpu"}),
])
def test_every_method_codes_a_clip_intra(tmp_path, method, params, one_thread):
    src = tmp_path / "in.y4m"
    planes = make_clip(src)
    data, summary = encode(src, method, **params)
    c = container.read_container(data)
    assert c.version == (1, 1) and c.header.frames == 4 and len(c.payloads) == 4
    assert c.video["fps"] == [25, 1] and c.video["chroma"] == "420" and len(c.index) == 4
    assert summary["frames"] == 4 and summary["file_bytes"] == len(data)
    # each frame decodes alone, to what the whole-clip decode gives
    options = {"device": "cpu"} if method != "opq" else {}
    whole = [p for _, p in clips.decode_frames(container.StreamReader(io.BytesIO(data)), **options)]
    third = list(clips.decode_frames(container.StreamReader(io.BytesIO(data)), 2, 3, **options))
    assert [i for i, _ in third] == [2] and all(np.array_equal(a, b) for a, b in zip(third[0][1], whole[2]))
    assert len(whole) == 4 and whole[0][0].shape == (32, 48) and whole[0][1].shape == (16, 24)
    psnr = np.mean([metrics.psnr_planes(a, b)["y"] for a, b in zip(planes, whole)])
    assert psnr > 15
    if summary["psnr_y"] is not None:        # the encoder's own figure is the decoder's
        assert summary["psnr_y"] == pytest.approx(psnr, abs=1e-6)


def test_frame_one_sets_the_parameters_of_every_frame(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=3)
    data, _ = encode(src, "ddcm", bpp=1.0, space="latent", device="cpu")
    c = container.read_container(data)
    assert len({len(p) for p in c.payloads}) == 1          # ddcm: same parameters -> same payload size


def test_kbps_lands_at_or_under_the_target(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=4)
    for kbps in (60, 150, 400):
        data, summary = encode(src, "opq", kbps=kbps)
        real = len(data) * 8 * 25 / 4 / 1000
        assert real <= kbps and summary["kbps"] == pytest.approx(real)
    with pytest.raises(UsageError, match="landed at|below what opq"):
        encode(src, "opq", kbps=20)       # under opq-16-8-8 for this clip
    with pytest.raises(UsageError, match="not both"):
        encode(src, "opq", kbps=20, preset="opq-16-8-8")


def run(*args, stdin=None):
    return subprocess.run(CLI + list(args), input=stdin, capture_output=True, timeout=300)


@pytest.mark.slow
def test_cli_files_pipes_ranges_and_info(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=5)
    ddc = tmp_path / "in.ddc"
    p = run("encode", str(src), "-o", str(ddc), "--quiet", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["frames"] == 5 and summary["file_bytes"] == ddc.stat().st_size
    info = json.loads(run("info", str(ddc), "--json").stdout)
    assert info["frames"] == 5 and info["video"]["keyframes"] == 1 and info["format_version"] == "2.0"
    assert b"video" in run("info", str(ddc)).stdout
    # whole clip, a range, lossless mkv, PNG frames
    assert run("decode", str(ddc), "-o", str(tmp_path / "out.y4m"), "--quiet").returncode == 0
    assert run("decode", str(ddc), "-o", str(tmp_path / "part.y4m"), "--frames", "3:", "--quiet").returncode == 0
    with video.open_video(str(tmp_path / "out.y4m")) as a, video.open_video(str(tmp_path / "part.y4m")) as b:
        whole, part = list(a), list(b)
    assert len(whole) == 5 and len(part) == 2
    assert all(np.array_equal(x, y) for x, y in zip(whole[3].planes, part[0].planes))
    assert run("decode", str(ddc), "-o", str(tmp_path / "out.mkv"), "--quiet").returncode == 0
    with video.open_video(str(tmp_path / "out.mkv")) as m:
        assert all(np.array_equal(x, y) for f, g in zip(m, whole) for x, y in zip(f.planes, g.planes))
    assert run("decode", str(ddc), "-o", str(tmp_path / "f_%03d.png"), "--quiet").returncode == 0
    assert sorted(q.name for q in tmp_path.glob("f_*.png")) == [f"f_{i:03d}.png" for i in range(1, 6)]
    # stdin -> stdout -> stdin -> stdout
    enc = run("encode", "-", "-o", "-", "--quiet", stdin=src.read_bytes())
    assert enc.returncode == 0 and enc.stdout.startswith(container.SIGNATURE_INTER), enc.stderr
    dec = run("decode", "-", "-o", "-", "--quiet", stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout == (tmp_path / "out.y4m").read_bytes()


@pytest.mark.slow
def test_cli_mistakes_are_one_line_errors(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2)
    ddc = tmp_path / "in.ddc"
    assert run("encode", str(src), "-o", str(ddc), "--quiet").returncode == 0
    img = tmp_path / "img.ddc"
    img.write_bytes(api.encode(synthetic_image(16, 16)))
    cases = [
        (("decode", str(ddc), "-o", str(tmp_path / "x.png")), 2, "decodes to a video"),
        (("decode", str(ddc), "-o", str(tmp_path / "x.y4m"), "--frames", "5:9"), 2, "selects no frame"),
        (("decode", str(ddc), "-o", str(tmp_path / "x.y4m"), "--frames", "x"), 2, "A:B"),
        (("decode", str(img), "-o", str(tmp_path / "x.png"), "--frames", "0:1"), 2, "applies to clips"),
        (("encode", str(tmp_path / "missing.y4m"), "-o", str(tmp_path / "m.ddc")), 2, "missing.y4m"),
        (("encode", str(src), "-o", str(tmp_path / "k.ddc"), "--kbps", "20", "-p", "opq-16-8-8"), 2, "not both"),
    ]
    trunc = tmp_path / "cut.y4m"
    trunc.write_bytes(src.read_bytes()[:-100])
    cases.append((("encode", str(trunc), "-o", str(tmp_path / "t.ddc")), 3, "truncated"))
    for args, code, words in cases:
        p = run(*args, "--quiet")
        err = p.stderr.decode()
        assert p.returncode == code, (args, err)
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "t.ddc").exists() and not (tmp_path / "x.y4m").exists()


@pytest.mark.parametrize("version", [bytes([1, 0]), bytes([1, 7]), bytes([2, 255])])
def test_the_cli_decodes_a_clip_as_a_clip_whatever_minor_version_its_signature_says(tmp_path, capsys, version):
    # found by benchmarks/fuzz.py: the CLI took only the exact 1.1 / 2.0 signatures for clips, so a clip whose
    # signature said 1.0 (a 1.0 reader reads it frame by frame) or a newer minor version went to the image path,
    # whose "this is a clip" is a usage error (exit 2) for what is the file's own doing
    from conftest import run_main

    src = tmp_path / "in.y4m"
    make_clip(src, frames=3)
    data, _ = encode(src, "opq", gop=3 if version[0] == 2 else 1)
    path = tmp_path / "c.ddc"
    path.write_bytes(container.MAGIC + version + data[len(container.MAGIC) + 2:])
    code, err = run_main(["decode", str(path), "-o", str(tmp_path / "out.y4m"), "--quiet"], capsys)
    assert code == 0, err
    with video.open_video(str(tmp_path / "out.y4m")) as r:
        assert sum(1 for _ in r) == 3
