"""Format 1.1: clips in one container (video chunk 'v', keyframe index 'i'), written without holding the frames and
read frame by frame (formats/ddc-v1.md, section 15)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from diffcodec.container import (
    CHUNK_INDEX,
    CHUNK_VIDEO,
    SIGNATURE,
    SIGNATURE_VIDEO,
    ClipWriter,
    Encoded,
    Header,
    StreamReader,
    _encode_chunk,
    frame,
    read_container,
    write_container,
)
from diffcodec.errors import CorruptInputError, UsageError

ROOT = Path(__file__).resolve().parents[1]
VIDEO = {"fps": [30000, 1001], "chroma": "420", "matrix": "bt601", "range": "limited", "coded": "rgb"}
PAYLOADS = [b"frame zero", b"", b"f2" * 100, b"\x00" * 300, b"last"]


def clip(payloads=PAYLOADS, video=VIDEO) -> bytes:
    h = Header("opq", "32-8-8", 0xDEADBEEF, 16, 8, 0, frames=len(payloads), params={"q": 1})
    return write_container(h, payloads, video=video)


class Pipe(io.RawIOBase):
    """A non-seekable stream that returns few bytes per read (like a pipe)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), 7, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_clip_layout_and_whole_file_reading():
    data = clip()
    assert data.startswith(SIGNATURE_VIDEO) and SIGNATURE_VIDEO == b"DDC\x01\x01"
    c = read_container(data)
    assert c.version == (1, 1) and c.payloads == PAYLOADS and c.header.frames == 5
    assert c.video == VIDEO
    assert [e[0] for e in c.index] == [0, 1, 2, 3, 4] and c.index[0] == [0, 0]
    assert [ch.type for ch in c.chunks] == [CHUNK_VIDEO, CHUNK_INDEX] + ["D"] * 5
    # images are unchanged: version 1.0, no v / i chunk
    img = frame("opq", Encoded("32-8-8", 1, {}, None, [b"x"]), 4, 4, 3)
    assert img.startswith(SIGNATURE) and read_container(img).video is None


def test_streaming_reader_on_a_pipe_reads_frame_by_frame():
    data = clip()
    r = StreamReader(io.BufferedReader(Pipe(data), buffer_size=8))
    assert r.video == VIDEO and r.header.frames == 5
    got = []
    for p in r.payloads():
        got.append(p)
        assert r.frames_read == len(got)      # one frame at a time
    assert got == PAYLOADS


def test_seek_to_a_keyframe_reads_only_the_rest():
    data = clip()
    r = StreamReader(io.BytesIO(data))
    assert r.seek_frame(3) == 3
    assert list(r.payloads()) == PAYLOADS[3:]
    r = StreamReader(io.BufferedReader(Pipe(data)))     # cannot seek: starts at frame 0
    assert r.seek_frame(3) == 0


def test_clip_writer_matches_write_container_and_spools_frames(tmp_path):
    w = ClipWriter("opq", 16, 8, 3, VIDEO)
    for p in PAYLOADS:
        w.add(Encoded("32-8-8", 0xDEADBEEF, {"q": 1}, None, [p]))
    out = io.BytesIO()
    size = w.write(out)
    w.close()
    assert out.getvalue() == clip() and size == len(clip())
    w = ClipWriter("opq", 16, 8, 3, VIDEO)
    w.add(Encoded("32-8-8", 0xDEADBEEF, {"q": 1}, None, [b"a"]))
    with pytest.raises(UsageError, match="other parameters"):
        w.add(Encoded("32-8-8", 0xDEADBEEF, {"q": 2}, None, [b"b"]))
    with pytest.raises(UsageError, match="at least one frame"):
        ClipWriter("opq", 16, 8, 3, VIDEO).write(io.BytesIO())


def _rebuild(data: bytes, chunk_type: str, body: bytes) -> bytes:
    """The clip with the data of its `chunk_type` chunk replaced (CRC recomputed)."""
    c = read_container(data)
    h = c.header
    parts = [data[:c.header_bytes]]
    for ch in c.chunks:
        parts.append(_encode_chunk(ch.type, body if ch.type == chunk_type else ch.data))
    assert h.frames == len(c.payloads)
    return b"".join(parts)


@pytest.mark.parametrize("video, message", [
    ({**VIDEO, "fps": [30, 0]}, "'fps'"),
    ({**VIDEO, "fps": 30}, "'fps'"),
    ({**VIDEO, "chroma": "422"}, "'chroma'"),
    ({k: v for k, v in VIDEO.items() if k != "matrix"}, "'matrix'"),
    ([1, 2], "map"),
])
def test_bad_video_chunk_is_corrupt(video, message):
    bad = _rebuild(clip(), CHUNK_VIDEO, msgpack.packb(video))
    with pytest.raises(CorruptInputError, match=message):
        read_container(bad)
    if isinstance(video, dict):         # a writer refuses what a reader would call corrupt
        with pytest.raises(UsageError):
            write_container(Header("opq", "m", 0, 4, 4, 0), [b""], video=video)


@pytest.mark.parametrize("index, message", [
    ([[0, 0], [1, 5]], "puts keyframe 1"),          # wrong offset
    ([[1, 0]], "first entry"),
    ([[0, 0], [0, 20]], "out of order"),
    ([[0, 0], [9, 100]], "past the"),
    ([], "non-empty"),
    ([[0, 0, 1]], "pairs"),
])
def test_bad_index_is_corrupt(index, message):
    bad = _rebuild(clip(), CHUNK_INDEX, msgpack.packb(index))
    with pytest.raises(CorruptInputError, match=message):
        read_container(bad)


def test_second_video_chunk_and_late_index_are_corrupt():
    data = clip()
    c = read_container(data)
    v = _encode_chunk(CHUNK_VIDEO, msgpack.packb(VIDEO))
    with pytest.raises(CorruptInputError, match="second video chunk"):
        read_container(data[:c.header_bytes] + v + data[c.header_bytes:])
    one = Header("opq", "32-8-8", 0xDEADBEEF, 16, 8, 0, frames=1, params={"q": 1})
    head = write_container(one, [b"a"])
    late = head + _encode_chunk(CHUNK_INDEX, msgpack.packb([[0, 0]]))
    with pytest.raises(CorruptInputError, match="after a 'D' chunk"):
        read_container(late)


def test_truncated_clip_is_corrupt_when_read_to_the_end():
    data = clip()
    cut = data[:-(4 + 1 + 1 + len(b"last"))]      # drop the last D chunk
    with pytest.raises(CorruptInputError, match="header declares 5"):
        read_container(cut)
    r = StreamReader(io.BytesIO(cut))
    with pytest.raises(CorruptInputError, match="header declares 5"):
        list(r.payloads())


def _reader_of_format_1_0():
    """diffcodec's container module as released with format 1.0 (from git history), or None."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", "857830a:diffcodec/container.py"],
                             capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    spec = importlib.util.spec_from_loader("container_1_0", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["container_1_0"] = module
    exec(compile(src, "container_1_0.py", "exec"), module.__dict__)
    return module


def test_a_format_1_0_reader_reads_a_clip_frame_by_frame():
    old = _reader_of_format_1_0()
    if old is None:
        pytest.skip("git history with the 1.0 reader is not available")
    assert (old.FORMAT_MAJOR, old.FORMAT_MINOR) == (1, 0)
    c = old.read_container(clip())
    assert c.payloads == PAYLOADS and c.header.frames == 5 and c.version == (1, 1)
