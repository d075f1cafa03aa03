"""Clips coded as YCbCr planes (pixel formats 2 and 3): opq codes a 4:2:0 or 4:4:4 clip's planes without the RGB
round trip (4:2:0 chroma on its own smaller grid), the decoder gives back exactly the encoder's planes, and the
container refuses planar pixel formats where the spec does."""

from __future__ import annotations

import io

import msgpack
import numpy as np
import pytest
from test_clips import encode, make_clip
from test_clips_inter import _chunks, _rebuild, decode_all

from diffcodec import clips, container, metrics, video
from diffcodec.errors import CorruptInputError, UsageError


@pytest.mark.parametrize("chroma, pixel_format", [("420", 2), ("444", 3)])
@pytest.mark.parametrize("gop", [1, 3])
def test_planar_clips_decode_to_the_encoders_planes(tmp_path, chroma, pixel_format, gop):
    src = tmp_path / "in.y4m"
    planes = make_clip(src, frames=5, height=35, width=45, chroma=chroma)
    data, summary = encode(src, "opq", preset="opq-32-8-8", gop=gop)
    c = container.read_container(data)
    assert c.header.pixel_format == pixel_format and c.video["coded"] == "yuv"
    whole = decode_all(data)
    assert [p.shape for p in whole[0][1]] == [p.shape for p in planes[0]]
    psnr = [metrics.psnr_planes(a, b) for a, (_, b) in zip(planes, whole)]
    assert summary["psnr_yuv"] == pytest.approx(np.mean([p["yuv"] for p in psnr]), abs=1e-9)
    assert min(p["y"] for p in psnr) > 20
    part = decode_all(data, 4, 5)          # from the keyframe before frame 4
    assert all(np.array_equal(x, y) for x, y in zip(part[0][1], whole[4][1]))


def test_planar_coding_keeps_colours_rgb_cannot_hold(tmp_path):
    """Y = 40 with strong chroma lies outside the RGB cube: the RGB round trip clips it, the planes do not."""
    info = video.VideoInfo(48, 32, (25, 1), "420")
    frame = (np.full((32, 48), 40, np.uint8), np.full((16, 24), 200, np.uint8), np.full((16, 24), 60, np.uint8))
    src = tmp_path / "gamut.y4m"
    with video.open_writer(str(src), info) as w:
        for _ in range(2):
            w.write(frame)
    _, rgb = encode(src, "opq", preset="opq-64-16-16", gop=1, planar=False)
    data, planar = encode(src, "opq", preset="opq-64-16-16", gop=1)
    assert planar["psnr_y"] > rgb["psnr_y"] + 10 and planar["psnr_yuv"] > rgb["psnr_yuv"] + 10
    assert container.read_container(data).header.pixel_format == 2


def test_planar_is_the_codecs_choice_and_refused_where_it_cannot(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=1)
    mono = tmp_path / "mono.y4m"
    make_clip(mono, frames=1, chroma="mono")
    assert clips.codes_planes(clips.get_codec("opq"), "420") and not clips.codes_planes(clips.get_codec("ddcm"), "420")
    with pytest.raises(UsageError, match="does not code 420 clips as YCbCr planes"):
        encode(src, "diffae", planar=True, device="cpu")
    with pytest.raises(UsageError, match="does not code mono"):
        encode(mono, "opq", planar=True)
    data, _ = encode(src, "opq", planar=False)
    c = container.read_container(data)
    assert c.header.pixel_format == 0 and c.video["coded"] == "rgb"


def test_the_container_refuses_planar_pixel_formats_where_the_spec_does(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2)
    data, _ = encode(src, "opq", gop=2)
    chunks = _chunks(data)
    assert [t for t, _ in chunks] == ["H", "v", "i", "D", "P"]
    signature = data[:5]
    # without the video chunk (an image header with pixel format 2)
    image = [chunks[0], chunks[3]]
    header = msgpack.unpackb(chunks[0][1])
    header[6] = 1
    with pytest.raises(CorruptInputError, match="needs a video chunk 'v' with chroma '420'"):
        container.read_container(_rebuild(container.SIGNATURE, [("H", msgpack.packb(header))] + image[1:]))
    # a video chunk of another chroma layout
    v = msgpack.unpackb(chunks[1][1])
    v["chroma"] = "444"
    with pytest.raises(CorruptInputError, match="with chroma '420'"):
        container.read_container(_rebuild(signature, [chunks[0], ("v", msgpack.packb(v))] + chunks[2:]))
    # a method that does not code planes
    header = msgpack.unpackb(chunks[0][1])
    header[0] = "diffae"
    bad = _rebuild(signature, [("H", msgpack.packb(header))] + chunks[1:])
    with pytest.raises(CorruptInputError):
        decode_all(bad)


def test_refine_works_on_planar_clips(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    planes = make_clip(src, frames=2, height=24, width=40)
    data, _ = encode(src, "opq", preset="opq-32-8-8", gop=2)
    plain = decode_all(data)
    refined = list(clips.decode_frames(container.StreamReader(io.BytesIO(data)), refine=True, device="cpu"))
    for (_, a), (_, b), src_planes in zip(plain, refined, planes):
        assert [x.shape for x in a] == [x.shape for x in b] == [x.shape for x in src_planes]
        assert not all(np.array_equal(x, y) for x, y in zip(a, b))
