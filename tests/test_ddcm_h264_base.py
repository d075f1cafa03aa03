"""ddcm clips on an H.264 base (formats/ddc-v1.md, "ddcm clips on an H.264 base"): x264 codes the clip, each frame's
chunk holds its access unit, and the free refiner step runs over the decoded frame where the encoder found it
better. The base frames are what any H.264 decoder gives (checked against the ffmpeg binary's own decoder)."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from test_clips import encode, make_clip
from test_clips_inter import _chunks, _rebuild

from diffcodec import clips, container, metrics, video
from diffcodec.errors import CorruptInputError, UnsupportedError, UsageError
from diffcodec.methods.ddcm import h264_base

pytest.importorskip("av", reason="PyAV (the x264 extra) is not installed")

CPU = {"device": "cpu"}


def decode_all(data: bytes, first: int = 0, stop: int | None = None):
    return list(clips.decode_frames(container.StreamReader(io.BytesIO(data)), first, stop, device="cpu"))


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_clip_on_an_h264_base_decodes_to_the_encoders_frames_from_the_start_and_from_any_keyframe(tmp_path,
                                                                                                    one_thread):
    src = tmp_path / "in.y4m"
    planes = make_clip(src, frames=5, height=32, width=48)
    data, summary = encode(src, "ddcm", base="x264:crf30", gop=3, **CPU)
    c = container.read_container(data)
    assert c.version == (2, 0) and [ch.type for ch in c.chunks if ch.type in "DP"] == list("DPPDP")
    assert c.video["coded"] == "yuv" and c.header.params["b"] == "x264:crf30" and c.header.params["n"] == 1
    from diffcodec.methods.ddcm.priors import REFINERS

    assert c.header.model in REFINERS["x264"]
    for payload in c.payloads:
        refined, au = h264_base.split_frame(payload)
        types = h264_base.nal_types(au)
        assert h264_base._NAL_SEI not in types and h264_base._NAL_AUD not in types
    assert [h264_base._NAL_IDR in h264_base.nal_types(p[1:]) for p in c.payloads] == [True, False, False, True,
                                                                                      False]
    whole = decode_all(data)
    psnr = [metrics.psnr_planes(a, b)["y"] for a, (_, b) in zip(planes, whole)]
    assert summary["psnr_y"] == pytest.approx(np.mean(psnr), abs=1e-9)      # encoder and decoder agree
    part = decode_all(data, 3, 5)
    assert [i for i, _ in part] == [3, 4]
    for (_, a), (_, b) in zip(part, whole[3:5]):
        assert _same(a, b)


def _ffmpeg_decode(aus: list[bytes], width: int, height: int, tmp_path) -> list[tuple[np.ndarray, ...]]:
    """The frames of the access units through the ffmpeg binary (imageio-ffmpeg's build: another libavcodec)."""
    stream = tmp_path / "base.264"
    stream.write_bytes(b"".join(aus))
    raw = subprocess.run([video.ffmpeg_exe(), "-v", "error", "-i", str(stream), "-f", "rawvideo", "-pix_fmt",
                          "yuv420p", "-"], check=True, capture_output=True).stdout
    n = width * height
    frames = []
    for i in range(len(raw) // (n * 3 // 2)):
        f = np.frombuffer(raw, np.uint8, n * 3 // 2, i * n * 3 // 2)
        frames.append((f[:n].reshape(height, width), f[n:n + n // 4].reshape(height // 2, width // 2),
                       f[n + n // 4:].reshape(height // 2, width // 2)))
    return frames


def test_an_unrefined_frame_is_exactly_what_another_h264_decoder_gives(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=4, height=32, width=48)
    data, _ = encode(src, "ddcm", base="x264:crf35", gop=4, refine=False, **CPU)
    c = container.read_container(data)
    assert c.header.params["n"] == 0 and all(p[0] == 0 for p in c.payloads)
    theirs = _ffmpeg_decode([p[1:] for p in c.payloads], 48, 32, tmp_path)
    ours = [planes for _, planes in decode_all(data)]
    assert len(theirs) == len(ours) == 4
    assert all(_same(a, b) for a, b in zip(ours, theirs))
    # refine=True refines every frame: each differs from its base
    data, _ = encode(src, "ddcm", base="x264:crf35", gop=4, refine=True, **CPU)
    c = container.read_container(data)
    assert all(p[0] == 1 for p in c.payloads)
    refined = [planes for _, planes in decode_all(data)]
    assert not any(_same(a, b) for a, b in zip(refined, theirs))


def test_a_rate_chooses_the_crf_and_the_passes_correct_it(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=4, height=32, width=48)
    data, summary = encode(src, "ddcm", base="x264", kbps=60, gop=4, refine=False, **CPU)
    assert summary["kbps"] <= 60
    crf = h264_base.parse_crf(container.read_container(data).header.params["b"])
    assert crf is not None and (crf / h264_base.CRF_STEP).is_integer()
    assert h264_base.crf_for_bpp(0.5) < h264_base.crf_for_bpp(0.05)


def test_what_an_h264_base_refuses(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2, height=32, width=48)
    with pytest.raises(UsageError, match="steps"):
        encode(src, "ddcm", base="x264:crf30", steps=3, gop=2, **CPU)
    for bad in ("x264:crf52", "x264:crf30.1", "x264:q30"):
        with pytest.raises(UsageError, match="x264|H.264"):
            encode(src, "ddcm", base=bad, gop=2, **CPU)
    with pytest.raises(UsageError, match="not both"):
        encode(src, "ddcm", base="x264:crf30", bpp=0.3, gop=2, **CPU)
    with pytest.raises(UsageError, match="one view"):
        encode(src, "ddcm", base="x264", ensemble=4, gop=2, **CPU)
    src444 = tmp_path / "in444.y4m"
    make_clip(src444, frames=2, height=32, width=48, chroma="444")
    with pytest.raises(UsageError, match="420"):
        encode(src444, "ddcm", base="x264", gop=2, **CPU)
    mono = tmp_path / "mono.y4m"
    make_clip(mono, frames=2, height=32, width=48, chroma="mono")
    with pytest.raises(UsageError, match="420"):
        encode(mono, "ddcm", base="x264", gop=2, **CPU)
    odd = tmp_path / "odd.y4m"
    make_clip(odd, frames=2, height=31, width=47)
    with pytest.raises(UsageError, match="even width and height"):
        encode(odd, "ddcm", base="x264", gop=2, **CPU)
    from diffcodec.methods import get_codec

    with pytest.raises(UsageError, match="clips"):
        get_codec("ddcm").compress(np.zeros((32, 48, 3), np.uint8), base="x264:crf30", **CPU)


def test_a_damaged_frame_on_an_h264_base_is_corrupt(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=3, height=32, width=48)
    data, _ = encode(src, "ddcm", base="x264:crf30", gop=3, refine=False, **CPU)
    chunks = _chunks(data)
    kinds = [t for t, _ in chunks]
    d, p1 = kinds.index("D"), kinds.index("P")
    key_body, p_body = chunks[d][1], chunks[p1][1]

    def with_body(i: int, body: bytes):
        return decode_all(_rebuild(container.SIGNATURE_INTER, chunks[:i] + [(chunks[i][0], body)] + chunks[i + 1:]))

    cases = [
        (p1, bytes([2]) + p_body[1:], "starts with 0"),              # a flag other than 0 or 1
        (p1, p_body[:1], "starts with 0"),                          # no access unit
        (p1, key_body, "IDR"),                                      # a keyframe where a P-frame belongs
        (d, p_body, "IDR access unit"),                             # a keyframe without IDR, SPS, PPS
        (p1, p_body[:1] + b"\x00\x00\x01\x41" + bytes(range(40)), "H.264"),       # garbage slice data
        (p1, bytes([1]) + p_body[1:], "no refinement"),             # refined, in a clip coded without refinement
    ]
    for i, body, match in cases:
        with pytest.raises(CorruptInputError, match=match):
            with_body(i, body)
    # an access unit of another frame size
    other = tmp_path / "other.y4m"
    make_clip(other, frames=1, height=48, width=64)
    odata, _ = encode(other, "ddcm", base="x264:crf30", refine=False, **CPU)
    with pytest.raises(CorruptInputError, match="header says|does not decode"):
        with_body(d, container.read_container(odata).payloads[0])


def test_without_pyav_an_h264_base_is_a_one_line_error(tmp_path, monkeypatch):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2, height=32, width=48)
    data, _ = encode(src, "ddcm", base="x264:crf30", gop=2, refine=False, **CPU)
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(UsageError, match=r"pip install 'diffcodec\[x264\]'"):
        encode(src, "ddcm", base="x264:crf30", gop=2, **CPU)
    with pytest.raises(UnsupportedError, match="PyAV"):
        decode_all(data)
