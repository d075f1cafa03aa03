"""Tests of the .ddc container (diffcodec/container.py, specified in formats/ddc-v1.md).

Files are also built by hand here, with an encoder written independently from the module's, so that the
tests check the byte layout of the spec and not only that writer and reader agree with each other.
"""

from __future__ import annotations

import random
import re
import zlib
from pathlib import Path

import msgpack
import pytest

from diffcodec.container import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    MAGIC,
    PIXEL_FORMATS,
    SIGNATURE,
    Chunk,
    Container,
    Header,
    PixelFormat,
    pixel_format_code,
    read_container,
    write_container,
)
from diffcodec.errors import CorruptInputError, UnsupportedError, UsageError

SPEC = Path(__file__).resolve().parents[1] / "formats" / "ddc-v1.md"
READ_ERRORS = (CorruptInputError, UnsupportedError)


# ---------------------------------------------------------------------------------------------------
# Independent encoder (straight from the spec)
# ---------------------------------------------------------------------------------------------------


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def chunk(ctype: bytes | str, data: bytes, length: bytes | None = None, crc: int | None = None) -> bytes:
    t = ctype.encode() if isinstance(ctype, str) else ctype
    if crc is None:
        crc = zlib.crc32(t + data)
    return t + (leb128(len(data)) if length is None else length) + data + crc.to_bytes(4, "big")


def sig(major: int = 1, minor: int = 0) -> bytes:
    return b"DDC" + bytes([major, minor])


def hchunk(arr) -> bytes:
    return chunk("H", msgpack.packb(arr, use_bin_type=True))


BASE_ARR = ["opq", "32-8-8", 0xDEADBEEF, 4, 2, 1]


def small_file(**kw) -> bytes:
    """A small valid file: H, m, two D chunks (one empty)."""
    h = Header("opq", "32-8-8", 0xDEADBEEF, 4, 2, 0, frames=2, params={"q": 3})
    return write_container(h, [b"\x01\x02\x03\x04\x05", b""], {"software": "t"})


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "\r" not in msg and "Traceback" not in msg, repr(msg)
    assert len(msg) < 300, msg
    return msg


def raises(exc_type, data: bytes, match: str | None = None) -> str:
    with pytest.raises(exc_type) as ei:
        read_container(data)
    msg = one_line(ei)
    if match is not None:
        assert re.search(match, msg), msg
    return msg


# ---------------------------------------------------------------------------------------------------
# API basics
# ---------------------------------------------------------------------------------------------------


def test_constants_and_pixel_formats():
    assert MAGIC == b"DDC" and (FORMAT_MAJOR, FORMAT_MINOR) == (2, 0)   # reads 2.0 and 1.1; images are written as 1.0
    assert SIGNATURE == b"DDC\x01\x00"
    assert PIXEL_FORMATS[0] == PixelFormat(channels=3, bit_depth=8, colour_space="srgb")
    assert PIXEL_FORMATS[1] == PixelFormat(channels=1, bit_depth=8, colour_space="gray")
    assert pixel_format_code(3) == 0 and pixel_format_code(1) == 1
    for bad in (0, 2, 4):
        with pytest.raises(UsageError) as ei:
            pixel_format_code(bad)
        one_line(ei)


def test_signature_bytes():
    data = write_container(Header("opq", "m", 0, 1, 1, 0), [b""])
    assert data[:5] == b"DDC\x01\x00"
    assert data[5:6] == b"H"


# ---------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------


def test_round_trip_defaults_omitted():
    h = Header("opq", "32-8-8", 0xDEADBEEF, 768, 512, 0)
    data = write_container(h, [b"payload"])
    # RGB with all defaults: the header array has 5 elements (pixel_format 0 is a trailing default).
    assert data == sig() + hchunk(["opq", "32-8-8", 0xDEADBEEF, 768, 512]) + chunk("D", b"payload")
    c = read_container(data)
    assert isinstance(c, Container)
    assert c.header == h and c.payloads == [b"payload"] and c.version == (1, 0)
    assert c.chunks == [Chunk("D", b"payload")] and c.metadata == {}
    # Grayscale: 6 elements.
    g = Header("opq", "32-8-8", 0xDEADBEEF, 768, 512, 1)
    assert write_container(g, [b"x"]) == sig() + hchunk(["opq", "32-8-8", 0xDEADBEEF, 768, 512, 1]) + chunk("D", b"x")
    assert read_container(write_container(g, [b"x"])).header == g


def test_round_trip_all_fields():
    params = {"bits": 8, "lam": 0.125, "name": "x", "flag": True, "off": False, "list": [1, [2, "3"], -4],
              "blob": b"\x00\xff", "none": None, "nested": {"a": {"b": [1.5]}}, "big": 2**64 - 1, "neg": -(2**63)}
    rng = {"kind": "pcg64", "seed": 12345, "shape": [4096, 16]}
    h = Header("ddcm", "sd-2.1-k4096", 0x01020304, 65535, 16, 1, frames=3, params=params, rng=rng)
    payloads = [b"a" * 200, b"", bytes(range(256)) * 70]
    data = write_container(h, payloads, {"software": "diffcodec 0.1.0", "note": "héllo"})
    c = read_container(data)
    assert c.header == h
    assert c.payloads == payloads
    assert c.metadata == {"software": "diffcodec 0.1.0", "note": "héllo"}
    assert [ch.type for ch in c.chunks] == ["m", "D", "D", "D"]
    assert c.payload_bytes == sum(map(len, payloads))
    assert c.framing_bytes == len(data) - c.payload_bytes
    assert c.total_bytes == len(data)
    # the header array carries all 9 positional fields
    assert data[6] & 0x80 and not data[7] & 0x80  # a 2-byte length
    hlen = (data[6] & 0x7F) | data[7] << 7
    assert msgpack.unpackb(data[8:8 + hlen]) == ["ddcm", "sd-2.1-k4096", 0x01020304, 65535, 16, 1, 3, params, rng]
    assert c.header_bytes == 5 + 1 + 2 + hlen + 4


def test_round_trip_rng_with_default_middle_fields():
    h = Header("opq", "", 0, 3, 5, 0, rng={"seed": 1})
    data = write_container(h, [b"z"])
    assert data == sig() + hchunk(["opq", "", 0, 3, 5, 0, 1, {}, {"seed": 1}]) + chunk("D", b"z")
    assert read_container(data).header == h
    h2 = Header("opq", "", 0, 3, 5, 0, params={"k": 1})
    assert read_container(write_container(h2, [b""])).header == h2


def test_empty_payload_and_empty_metadata():
    h = Header("opq", "32-8-8", 0, 1, 1, 0)
    data = write_container(h, [b""], metadata={})
    assert data == sig() + hchunk(["opq", "32-8-8", 0, 1, 1]) + chunk("D", b"")
    c = read_container(data)
    assert c.payloads == [b""] and c.payload_bytes == 0 and c.framing_bytes == len(data)


def test_metadata_chunk_is_written_before_payloads():
    data = write_container(Header("opq", "m", 0, 1, 1, 0), [b"p"], {"software": "v"})
    m = chunk("m", msgpack.packb({"software": "v"}))
    assert data == sig() + hchunk(["opq", "m", 0, 1, 1]) + m + chunk("D", b"p")


def test_accepts_bytes_like_and_numpy_scalars():
    np = pytest.importorskip("numpy")
    h = Header("opq", "m", np.uint32(7), np.int64(10), np.int64(20), 0,
               params={"a": np.float32(0.5), "b": (np.int16(1), 2), "c": np.bool_(True)})
    data = write_container(h, [bytearray(b"ab")])
    c = read_container(memoryview(data))
    assert c.header == Header("opq", "m", 7, 10, 20, 0, params={"a": 0.5, "b": [1, 2], "c": True})
    assert c.payloads == [b"ab"]
    with pytest.raises(TypeError):
        read_container("DDC")


def test_exact_compactness():
    """The reference figure recorded in formats/ddc-v1.md ("Overhead")."""
    h = Header("opq", "32-8-8", 0xDEADBEEF, 768, 512, pixel_format_code(3))
    data = write_container(h, [bytes(24000)])
    c = read_container(data)
    assert c.payload_bytes == 24000
    assert c.framing_bytes == len(data) - 24000 == 42
    assert c.framing_bytes <= 42
    # signature 5 + H chunk (1 type + 1 length + 23 msgpack + 4 CRC) = 34; D framing: 1 + 3 + 4 = 8
    assert c.header_bytes == 34
    assert c.framing_bytes - c.header_bytes == 8
    # metadata costs extra, and is optional
    with_meta = write_container(h, [bytes(24000)], {"software": "diffcodec 0.1.0"})
    assert len(with_meta) - 24000 == 42 + 1 + 1 + 26 + 4


def test_spec_example_matches_writer():
    """The hex dump in the spec is exactly what write_container produces and read_container reads."""
    text = SPEC.read_text(encoding="utf-8")
    m = re.search(r"<!-- example-1-start -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, "example block missing from formats/ddc-v1.md"
    hexdigits = "".join(line.split("  ")[0].split(":", 1)[1] for line in m.group(1).strip().splitlines())
    spec_bytes = bytes.fromhex(hexdigits.replace(" ", ""))
    h = Header("opq", "32-8-8", 0xDEADBEEF, 4, 2, 1)
    assert spec_bytes == write_container(h, [b"\x01\x02\x03"], {"software": "diffcodec 0.1.0"})
    c = read_container(spec_bytes)
    assert c.header == h and c.payloads == [b"\x01\x02\x03"]
    # the measured overhead of test_exact_compactness is recorded in the spec
    assert "**42 bytes**" in text


# ---------------------------------------------------------------------------------------------------
# Writer validation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(width=0), dict(width=70000), dict(height=0), dict(height=-1), dict(width=1.5),
        dict(width=True), dict(frames=0), dict(frames=2**20 + 1), dict(method=""), dict(method="a b"),
        dict(method="x" * 65), dict(model="mod\nel"), dict(model_sha=-1), dict(model_sha=2**32),
        dict(pixel_format=7), dict(params=[1]), dict(params={1: 2}), dict(params={"a": object()}),
        dict(params={"a": 2**64}), dict(rng=[1]), dict(width=65535, height=65535),
    ],
)
def test_writer_rejects_bad_headers(kw):
    base = dict(method="opq", model="m", model_sha=0, width=8, height=8, pixel_format=0)
    base.update(kw)
    frames = base.get("frames", 1)
    payloads = [b""] * frames if isinstance(frames, int) and 0 < frames < 10 else [b""]
    with pytest.raises(UsageError) as ei:
        write_container(Header(**base), payloads)
    one_line(ei)


def test_writer_checks_pixel_count_and_payloads():
    with pytest.raises(UsageError, match="too large"):
        write_container(Header("opq", "m", 0, 32768, 32768, 0, frames=2), [b"", b""])
    write_container(Header("opq", "m", 0, 32768, 32768, 0), [b""])  # exactly 2**30 pixels is allowed
    with pytest.raises(ValueError):
        write_container(Header("opq", "m", 0, 8, 8, 0, frames=2), [b""])
    with pytest.raises(ValueError):
        write_container(Header("opq", "m", 0, 8, 8, 0), [])
    with pytest.raises(TypeError):
        write_container(Header("opq", "m", 0, 8, 8, 0), ["text"])
    with pytest.raises(UsageError):
        write_container(Header("opq", "m", 0, 8, 8, 0), [b""], {"k": 1})


# ---------------------------------------------------------------------------------------------------
# Not a .ddc file / versions
# ---------------------------------------------------------------------------------------------------


def test_empty_input():
    assert raises(CorruptInputError, b"") == "empty input: not a .ddc file"


@pytest.mark.parametrize("data", [b"hello world", b"DDX\x01\x00", b"\x00\x00\x00\x00\x00", b"ddc\x01\x00", b"X"])
def test_wrong_magic(data):
    assert raises(CorruptInputError, data) == "not a .ddc file (bad signature)"


@pytest.mark.parametrize(
    "data, what",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG"),
        (b"GIF89a\x01\x00", "GIF"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
    ],
)
def test_other_image_formats_are_named(data, what):
    assert raises(CorruptInputError, data) == f"input looks like a {what} image, not a .ddc file"


def test_truncated_signature():
    for n in range(1, 5):
        raises(CorruptInputError, sig()[:n], "^truncated file")


def test_newer_major_is_unsupported():
    body = hchunk(BASE_ARR) + chunk("D", b"")
    msg = raises(UnsupportedError, sig(3, 0) + body)
    assert "3.x is newer than this diffcodec supports (2.x); upgrade diffcodec" in msg
    raises(UnsupportedError, sig(255, 3) + b"anything at all", "255.x is newer")
    raises(UnsupportedError, sig(3, 0))  # the version is judged before anything else


def test_major_zero_is_corrupt():
    raises(CorruptInputError, sig(0, 0) + hchunk(BASE_ARR) + chunk("D", b""), "version 0.0")


def test_newer_minor_reads_with_extensions():
    arr = BASE_ARR + [1, {"q": 2}, None, "field added in 1.3", {"x": [1, 2]}]
    data = sig(1, 3) + hchunk(arr) + chunk("z", b"future optional") + chunk("D", b"abc") + chunk("q", b"")
    c = read_container(data)
    assert c.version == (1, 3)
    assert c.header == Header("opq", "32-8-8", 0xDEADBEEF, 4, 2, 1, 1, {"q": 2}, None)
    assert c.payloads == [b"abc"]
    assert [ch.type for ch in c.chunks] == ["D"]  # unknown optional chunks are not kept
    assert c.framing_bytes == len(data) - 3


def test_extra_header_fields_with_same_minor_are_corrupt():
    arr = BASE_ARR + [1, {}, None, "extra"]
    raises(CorruptInputError, sig(1, 0) + hchunk(arr) + chunk("D", b""), "10 fields")


def test_unknown_critical_chunk_is_unsupported():
    data = sig() + hchunk(BASE_ARR) + chunk("X", b"new critical thing") + chunk("D", b"")
    msg = raises(UnsupportedError, data)
    assert "'X'" in msg and "upgrade diffcodec" in msg
    # ...even after the payload
    raises(UnsupportedError, sig() + hchunk(BASE_ARR) + chunk("D", b"") + chunk("Q", b""), "'Q'")


def test_unknown_optional_chunk_is_skipped_but_crc_checked():
    good = sig() + hchunk(BASE_ARR) + chunk("x", b"ignore me") + chunk("D", b"p") + chunk("y", b"")
    c = read_container(good)
    assert c.payloads == [b"p"] and [ch.type for ch in c.chunks] == ["D"]
    bad = sig() + hchunk(BASE_ARR) + chunk("x", b"ignore me", crc=0) + chunk("D", b"p")
    raises(CorruptInputError, bad, "CRC mismatch in chunk 'x'")


# ---------------------------------------------------------------------------------------------------
# Damage
# ---------------------------------------------------------------------------------------------------


def test_truncation_at_every_offset():
    data = small_file()
    assert read_container(data).payloads == [b"\x01\x02\x03\x04\x05", b""]
    for n in range(len(data)):
        with pytest.raises(CorruptInputError) as ei:
            read_container(data[:n])
        one_line(ei)
    # and for a file whose last chunk is large
    big = write_container(Header("opq", "m", 0, 8, 8, 0), [bytes(300)])
    for n in range(len(big)):
        with pytest.raises(CorruptInputError):
            read_container(big[:n])


def test_single_bit_flip_everywhere():
    data = small_file()
    ref = read_container(data)
    accepted = []
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            try:
                c = read_container(bytes(bad))
            except READ_ERRORS as e:
                assert str(e) and "\n" not in str(e)
                continue
            # Only the minor-version byte is unprotected: a newer minor reads the same content.
            assert i == 4, (i, bit)
            assert c.header == ref.header and c.payloads == ref.payloads and c.metadata == ref.metadata
            accepted.append(bit)
    assert accepted == list(range(8))


def test_bit_flips_in_version_major():
    data = bytearray(small_file())
    data[3] = 0
    raises(CorruptInputError, bytes(data))
    data[3] = 3
    raises(UnsupportedError, bytes(data))


def test_huge_declared_length_fails_fast():
    # varint 2**31 - 1 followed by a few bytes
    data = sig() + b"H" + leb128(2**31 - 1) + b"abc"
    assert raises(CorruptInputError, data) == "truncated file: chunk 'H' declares 2147483647 bytes but only 3 remain"
    data = sig() + hchunk(BASE_ARR) + b"D" + leb128(2**31 - 1) + bytes(10)
    assert raises(CorruptInputError, data) == "truncated file: chunk 'D' declares 2147483647 bytes but only 10 remain"


def test_length_present_but_crc_missing():
    data = sig() + hchunk(BASE_ARR) + b"D" + leb128(3) + b"abc" + b"\x00\x00"
    raises(CorruptInputError, data, "missing its CRC")


@pytest.mark.parametrize(
    "length",
    [
        b"\x80\x80\x80\x80\x80\x01",  # 6 bytes
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x80\x80\x80\x80\x08",  # 2**31: exceeds the limit
        b"\xff\xff\xff\xff\x0f",
        b"\x83\x00",  # not minimal
        b"\x80\x80\x00",
    ],
)
def test_bad_varints(length):
    data = sig() + hchunk(BASE_ARR) + b"D" + length + bytes(40)
    raises(CorruptInputError, data, "^corrupt file: length field|more than the format allows")


def test_varint_boundaries():
    # a 5-byte varint at the maximum value is well-formed (it only fails the remaining-bytes check)
    assert leb128(2**31 - 1) == b"\xff\xff\xff\xff\x07"
    assert leb128(127) == b"\x7f" and leb128(128) == b"\x80\x01" and leb128(24000) == b"\xc0\xbb\x01"
    payload = bytes(range(256)) * 1  # 2-byte varint
    data = write_container(Header("opq", "m", 0, 1, 1, 0), [payload])
    assert data.endswith(b"D\x80\x02" + payload + zlib.crc32(b"D" + payload).to_bytes(4, "big"))


def test_crc_mismatch():
    good = sig() + hchunk(BASE_ARR) + chunk("D", b"abc")
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    raises(CorruptInputError, bad, "CRC mismatch in chunk 'D'")


def test_non_letter_chunk_type():
    for tb in (b"\x00", b"1", b"@", b"[", b"\x7f", b"\xc8"):
        raises(CorruptInputError, sig() + hchunk(BASE_ARR) + chunk(tb, b"x") + chunk("D", b""), "not a chunk type")


def test_no_chunks_after_signature():
    raises(CorruptInputError, sig(), "^truncated file")


def test_header_not_first():
    raises(CorruptInputError, sig() + chunk("D", b"") + hchunk(BASE_ARR), "expected the header chunk")
    raises(CorruptInputError, sig() + chunk("m", msgpack.packb({})) + hchunk(BASE_ARR) + chunk("D", b""),
           "expected the header chunk")


def test_duplicate_header_and_metadata():
    raises(CorruptInputError, sig() + hchunk(BASE_ARR) + hchunk(BASE_ARR) + chunk("D", b""), "second header")
    m = chunk("m", msgpack.packb({"a": "b"}))
    raises(CorruptInputError, sig() + hchunk(BASE_ARR) + m + m + chunk("D", b""), "second metadata")


@pytest.mark.parametrize("content", [msgpack.packb([1]), msgpack.packb({"a": 1}), b"\xc1",
                                     msgpack.packb({"a": "b"}) + b"x"])
def test_bad_metadata(content):
    raises(CorruptInputError, sig() + hchunk(BASE_ARR) + chunk("m", content) + chunk("D", b""), "metadata")


def test_missing_and_extra_payload_chunks():
    arr = BASE_ARR + [3]
    full = sig() + hchunk(arr) + chunk("D", b"a") + chunk("D", b"b") + chunk("D", b"c")
    assert read_container(full).payloads == [b"a", b"b", b"c"]
    for cut in (sig() + hchunk(arr), sig() + hchunk(arr) + chunk("D", b"a") + chunk("D", b"b")):
        raises(CorruptInputError, cut, r"^truncated file: header declares 3 frame chunk\(s\) but only \d present$")
    raises(CorruptInputError, full + chunk("D", b"d"), "more frame chunks")


def test_trailing_garbage():
    good = write_container(Header("opq", "m", 0, 8, 8, 0), [b"payload"])
    for junk in (b"\x00", b"\n", b"garbage!", b"x", b"x\x05abc", b"x\x00\x00\x00\x00\x00", bytes(100)):
        with pytest.raises(CorruptInputError) as ei:
            read_container(good + junk)
        one_line(ei)
    # ...unless it is a well-formed optional chunk
    assert read_container(good + chunk("x", b"abc")).payloads == [b"payload"]


# ---------------------------------------------------------------------------------------------------
# Header contents
# ---------------------------------------------------------------------------------------------------


def with_header(arr) -> bytes:
    frames = arr[6] if len(arr) > 6 and type(arr[6]) is int and 0 < arr[6] < 5 else 1
    return sig() + hchunk(arr) + chunk("D", b"") * frames


@pytest.mark.parametrize(
    "arr, match",
    [
        (["opq", "m", 0, 0, 2], "'width' is 0"),
        (["opq", "m", 0, 70000, 2], "'width' is 70000"),
        (["opq", "m", 0, 4, 70000], "'height' is 70000"),
        (["opq", "m", 0, 4, -2], "'height' is -2"),
        (["opq", "m", 0, 65535, 65535], "too large"),
        (["opq", "m", 0, 1024, 1024, 0, 1025], "too large"),
        (["opq", "m", 0, 4, 4, 0, 0], "'frames' is 0"),
        (["opq", "m", 0, 1, 1, 0, 2**20 + 1], "'frames'"),
        (["opq", "m", 0, "4", 2], "'width' must be an integer"),
        (["opq", "m", 0, True, 2], "'width' must be an integer"),
        (["opq", "m", 0, 4.0, 2], "'width' must be an integer"),
        ([7, "m", 0, 4, 2], "'method' must be a string"),
        (["", "m", 0, 4, 2], "'method'"),
        (["op q", "m", 0, 4, 2], "'method'"),
        (["opq", b"m", 0, 4, 2], "'model' must be a string"),
        (["opq", "m\n", 0, 4, 2], "'model'"),
        (["opq", "m", -1, 4, 2], "'model_sha'"),
        (["opq", "m", 2**32, 4, 2], "'model_sha'"),
        (["opq", "m", None, 4, 2], "'model_sha'"),
        (["opq", "m", 0, 4, 2, "rgb"], "'pixel_format'"),
        (["opq", "m", 0, 4, 2, -1], "'pixel_format'"),
        (["opq", "m", 0, 4, 2, 0, 1, [1, 2]], "'params' must be a map"),
        (["opq", "m", 0, 4, 2, 0, 1, None], "'params' must be a map"),
        (["opq", "m", 0, 4, 2, 0, 1, {}, 5], "'rng' must be a map or nil"),
        (["opq", "m", 0, 4, 2, 0, 1, {"a": msgpack.ExtType(5, b"xx")}], "not allowed"),
        (["opq", "m", 0, 4, 2, 0, 1, {"a": {"b": {}}}, {"k": msgpack.ExtType(1, b"")}], "not allowed"),
        (["opq", "m", 0, 4], "4 field"),
        ([], "0 field"),
    ],
)
def test_bad_header_fields(arr, match):
    raises(CorruptInputError, with_header(arr), match)


def test_header_deep_nesting_is_corrupt():
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    raises(CorruptInputError, with_header(["opq", "m", 0, 4, 2, 0, 1, {"d": deep}]), "nested")


@pytest.mark.parametrize(
    "raw",
    [
        msgpack.packb({"method": "opq"}),  # map, not array
        msgpack.packb("opq"),
        msgpack.packb(None),
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x95\xa3opq",  # array cut short
        msgpack.packb(BASE_ARR) + b"\x00",  # extra bytes after the array
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4G elements
        b"\x95\xa3op\xff\xa1m\x00\x04\x02",  # invalid UTF-8 in a str
        b"\x98" + b"\x91" * 5000,  # absurd nesting
        msgpack.packb(["opq", "m", 0, 4, 2, 0, 1, {1: 2}]),  # int map key (strict_map_key)
        msgpack.packb(["opq", "m", 0, 4, 2, 0, 1, {b"k": 2}], use_bin_type=True),  # bytes map key
    ],
)
def test_header_not_valid_msgpack_array(raw):
    raises(CorruptInputError, sig() + chunk("H", raw) + chunk("D", b""), "^corrupt file: ")


def test_unknown_pixel_format_is_unsupported():
    raises(UnsupportedError, with_header(["opq", "m", 0, 4, 2, 4]), "pixel format 4")
    raises(UnsupportedError, with_header(["opq", "m", 0, 4, 2, 2**32 - 1]), "pixel format")


def test_non_canonical_header_is_accepted():
    # defaults written out explicitly are still valid (writers omit them, readers do not insist)
    c = read_container(with_header(["opq", "m", 0, 4, 2, 0, 1, {}, None]))
    assert c.header == Header("opq", "m", 0, 4, 2, 0)


# ---------------------------------------------------------------------------------------------------
# Fuzz (fixed seed, no hypothesis)
# ---------------------------------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0):
    k = rng.randrange(9 if depth < 3 else 6)
    if k == 0:
        return None
    if k == 1:
        return rng.random() < 0.5
    if k == 2:
        return rng.randrange(-(2**40), 2**40)
    if k == 3:
        return rng.random()
    if k == 4:
        return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(5)))
    if k == 5:
        return rng.randbytes(rng.randrange(4))
    if k == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if k == 7:
        return {str(rng.randrange(9)): _random_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    return msgpack.ExtType(rng.randrange(128), b"e")


def _check(data: bytes) -> None:
    try:
        c = read_container(data)
    except READ_ERRORS as e:
        msg = str(e)
        assert msg and "\n" not in msg and len(msg) < 300, repr(msg)
        return
    # a successful read must be self-consistent
    assert len(c.payloads) == c.header.frames
    assert c.payload_bytes + c.framing_bytes == len(data)
    assert c.header.pixel_format in PIXEL_FORMATS


def test_fuzz_random_inputs_and_mutations():
    rng = random.Random(20240611)
    seeds = [
        small_file(),
        write_container(Header("opq", "32-8-8", 0xDEADBEEF, 768, 512, 0), [rng.randbytes(300)]),
        sig(1, 2) + hchunk(BASE_ARR + [2, {"a": 1}, None, 9]) + chunk("D", b"x") + chunk("k", b"opt") + chunk("D", b""),
    ]
    for s in seeds:
        read_container(s)
    for _ in range(800):  # random bytes, with and without a valid signature
        blob = rng.randbytes(rng.randrange(0, 60))
        _check(blob)
        _check(sig(1, rng.randrange(3)) + blob)
        _check(sig() + bytes([rng.choice(b"HDmxX")]) + blob)
    for _ in range(2500):  # random mutations of valid files
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(6)
            p = rng.randrange(len(data) + 1)
            if op == 0 and p < len(data):
                data[p] = rng.randrange(256)
            elif op == 1 and p < len(data):
                data[p] ^= 1 << rng.randrange(8)
            elif op == 2:
                data[p:p] = rng.randbytes(rng.randrange(1, 6))
            elif op == 3:
                del data[p:p + rng.randrange(1, 6)]
            elif op == 4:
                data = data[:p]
            else:
                q = rng.randrange(len(data) + 1)
                data[p:p] = data[q:q + rng.randrange(1, 20)]  # duplicate a slice
        _check(bytes(data))
    for _ in range(1500):  # well-framed chunks with random contents (valid CRCs reach the decoders)
        arr = [_random_value(rng) if rng.random() < 0.15 else v
               for v in ["opq", "m", rng.randrange(2**32), rng.randrange(0, 9), rng.randrange(0, 9),
                         rng.randrange(0, 3), rng.randrange(0, 4), {"p": 1}, None, 1][: rng.randrange(3, 11)]]
        if rng.random() < 0.1:
            raw = rng.randbytes(rng.randrange(12))
        else:
            raw = msgpack.packb(arr, use_bin_type=True)
        body = chunk("H", raw)
        for _ in range(rng.randrange(5)):
            t = rng.choice("DDDmmxX")
            content = msgpack.packb(_random_value(rng)) if t == "m" else rng.randbytes(rng.randrange(5))
            body += chunk(t, content)
        _check(sig(1, rng.randrange(2)) + body)
