"""Reader and writer of the `.ddc` container, format version 1.0.

The normative description is ``formats/ddc-v1.md``; this module implements exactly that document.

A file is a 5-byte signature (``b"DDC"``, major, minor) followed by chunks. A chunk is a type byte (an
ASCII letter: uppercase = critical, lowercase = optional), the data length as an unsigned LEB128 varint
(at most 5 bytes, value < 2**31), the data, and a big-endian CRC-32 of the type byte plus the data.
``H`` (header, a positional msgpack array) comes first and exactly once, ``m`` (metadata, msgpack map
str -> str) is optional, and there are exactly ``header.frames`` ``D`` (payload) chunks.

Every problem with the input is reported as :class:`CorruptInputError` (damaged or not a .ddc file) or
:class:`UnsupportedError` (valid, but needs a newer diffcodec), with a one-line message. Sizes read from
the file are checked before anything is sliced or allocated from them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack

from diffcodec.errors import CorruptInputError, UnsupportedError, UsageError

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "SIGNATURE",
    "PixelFormat",
    "PIXEL_FORMATS",
    "pixel_format_code",
    "Header",
    "Chunk",
    "Container",
    "Encoded",
    "frame",
    "framed_size",
    "encode_varint",
    "write_container",
    "read_container",
    "MAX_DIMENSION",
    "MAX_FRAMES",
    "MAX_PIXELS",
    "MAX_CHUNK_LENGTH",
]

MAGIC = b"DDC"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
SIGNATURE = MAGIC + bytes([FORMAT_MAJOR, FORMAT_MINOR])

# Limits (formats/ddc-v1.md, "Limits").
MAX_DIMENSION = 65535            # width and height are 1..MAX_DIMENSION
MAX_FRAMES = 2**20               # frames is 1..MAX_FRAMES
MAX_PIXELS = 2**30               # width * height * frames <= MAX_PIXELS
MAX_CHUNK_LENGTH = 2**31 - 1     # chunk data length (varint value) <= MAX_CHUNK_LENGTH
MAX_VARINT_BYTES = 5
MAX_NAME_LENGTH = 64             # method and model ids: printable ASCII without space
MAX_NESTING = 32                 # nesting depth of lists/maps inside params and rng

HEADER_FIELDS = ("method", "model", "model_sha", "width", "height", "pixel_format", "frames", "params", "rng")
MIN_HEADER_FIELDS = 5            # pixel_format (index 5) onwards have defaults
_NAME_RE = re.compile(r"[!-~]*")

CHUNK_HEADER = "H"
CHUNK_DATA = "D"
CHUNK_METADATA = "m"


@dataclass(frozen=True)
class PixelFormat:
    channels: int
    bit_depth: int
    colour_space: str


PIXEL_FORMATS: dict[int, PixelFormat] = {
    0: PixelFormat(channels=3, bit_depth=8, colour_space="srgb"),
    1: PixelFormat(channels=1, bit_depth=8, colour_space="gray"),
}


def pixel_format_code(channels: int) -> int:
    """The pixel_format code for an 8-bit image with `channels` channels (3 -> 0, 1 -> 1)."""
    for code, fmt in PIXEL_FORMATS.items():
        if fmt.channels == channels and fmt.bit_depth == 8:
            return code
    raise UsageError(f"unsupported number of channels: {channels!r} (diffcodec handles 1 = grayscale or 3 = RGB)")


@dataclass
class Header:
    method: str
    model: str
    model_sha: int
    width: int
    height: int
    pixel_format: int
    frames: int = 1
    params: dict = field(default_factory=dict)
    rng: dict | None = None

    @property
    def pixel(self) -> PixelFormat:
        return PIXEL_FORMATS[self.pixel_format]


@dataclass
class Encoded:
    """What a codec produces for one image: the method-specific header fields and the payload chunks.
    :func:`frame` turns it into a file; :attr:`Container.encoded` gives it back."""

    model: str                      # stable model id within the method, e.g. "32-8-8"
    model_sha: int                  # first 4 bytes of the model file's sha256, big-endian (0: none)
    params: dict[str, Any] = field(default_factory=dict)  # everything else the decoder needs
    rng: dict[str, Any] | None = None                     # seeded-generator spec (header `rng` map)
    chunks: list[bytes] = field(default_factory=list)     # payload bitstreams ('D' chunks)


@dataclass
class Chunk:
    type: str
    data: bytes


@dataclass
class Container:
    header: Header
    chunks: list[Chunk]          # D chunks and known optional chunks (m), in file order
    version: tuple[int, int]     # (major, minor) read from the file
    header_bytes: int            # signature + the H chunk, all framing included
    payload_bytes: int           # sum of D chunk data lengths
    framing_bytes: int           # everything that is not D chunk data

    @property
    def payloads(self) -> list[bytes]:
        return [c.data for c in self.chunks if c.type == CHUNK_DATA]

    @property
    def encoded(self) -> Encoded:
        """The codec's view of this file (what :func:`frame` was given)."""
        h = self.header
        return Encoded(model=h.model, model_sha=h.model_sha, params=h.params, rng=h.rng, chunks=self.payloads)

    @property
    def metadata(self) -> dict[str, str]:
        """The `m` chunk's map ({} when the file has none)."""
        for c in self.chunks:
            if c.type == CHUNK_METADATA:
                return _decode_metadata(c.data)
        return {}

    @property
    def total_bytes(self) -> int:
        return self.payload_bytes + self.framing_bytes


# ----------------------------------------------------------------------------------------------------
# Low-level encoding
# ----------------------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 of ``value`` in 0..MAX_CHUNK_LENGTH (7 bits per byte, least significant group first,
    minimal): the chunk lengths, and what methods use for lengths inside their payloads."""
    if not 0 <= value <= MAX_CHUNK_LENGTH:
        raise UsageError(f"chunk of {value} bytes is too large for the .ddc format (limit {MAX_CHUNK_LENGTH})")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


_encode_varint = encode_varint


def _chunk_crc(type_byte: int, data) -> int:
    return zlib.crc32(data, zlib.crc32(bytes((type_byte,))))


def _encode_chunk(ctype: str, data: bytes) -> bytes:
    tb = ord(ctype)
    return bytes((tb,)) + _encode_varint(len(data)) + data + _chunk_crc(tb, data).to_bytes(4, "big")


def _is_letter(b: int) -> bool:
    return 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


# ----------------------------------------------------------------------------------------------------
# Header validation (shared by writer and reader; `err` is the exception class to raise)
# ----------------------------------------------------------------------------------------------------


def _typename(v: Any) -> str:
    if v is None:
        return "nil"
    return {bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes", list: "array",
            dict: "map"}.get(type(v), type(v).__name__)


def _check_int(name: str, v: Any, lo: int, hi: int, err: Callable[[str], Exception]) -> None:
    if type(v) is not int:
        raise err(f"header field {name!r} must be an integer, got {_typename(v)}")
    if not lo <= v <= hi:
        raise err(f"header field {name!r} is {v}, must be in {lo}..{hi}")


def _check_name(name: str, v: Any, min_len: int, err: Callable[[str], Exception]) -> None:
    if type(v) is not str:
        raise err(f"header field {name!r} must be a string, got {_typename(v)}")
    if not (min_len <= len(v) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(v)):
        raise err(f"header field {name!r} must be {min_len}..{MAX_NAME_LENGTH} printable ASCII characters "
                  f"without spaces, got {ascii(v)[:80]}")


def _check_value(where: str, v: Any, depth: int, err: Callable[[str], Exception]) -> None:
    """Values allowed inside params/rng: nil, bool, int, float, str, bytes, arrays, maps with str keys."""
    t = type(v)
    if v is None or t in (bool, int, float, str, bytes):
        if t is int and not -(2**63) <= v < 2**64:
            raise err(f"{where}: integer {v} does not fit in 64 bits")
        return
    if depth >= MAX_NESTING:
        raise err(f"{where}: nested deeper than {MAX_NESTING} levels")
    if t is list:
        for i, x in enumerate(v):
            _check_value(f"{where}[{i}]", x, depth + 1, err)
        return
    if t is dict:
        for k, x in v.items():
            if type(k) is not str:
                raise err(f"{where}: map keys must be strings, got {_typename(k)}")
            _check_value(f"{where}[{ascii(k)[:40]}]", x, depth + 1, err)
        return
    raise err(f"{where}: values of type {_typename(v)} are not allowed")


def _check_header(h: Header, err: Callable[[str], Exception], unsupported: Callable[[str], Exception]) -> None:
    _check_name("method", h.method, 1, err)
    _check_name("model", h.model, 0, err)
    _check_int("model_sha", h.model_sha, 0, 2**32 - 1, err)
    _check_int("width", h.width, 1, MAX_DIMENSION, err)
    _check_int("height", h.height, 1, MAX_DIMENSION, err)
    _check_int("pixel_format", h.pixel_format, 0, 2**32 - 1, err)
    _check_int("frames", h.frames, 1, MAX_FRAMES, err)
    pixels = h.width * h.height * h.frames
    if pixels > MAX_PIXELS:
        raise err(f"image too large: {h.width}x{h.height} x {h.frames} frame(s) = {pixels} pixels "
                  f"(limit {MAX_PIXELS})")
    if type(h.params) is not dict:
        raise err(f"header field 'params' must be a map, got {_typename(h.params)}")
    _check_value("header field 'params'", h.params, 0, err)
    if h.rng is not None:
        if type(h.rng) is not dict:
            raise err(f"header field 'rng' must be a map or nil, got {_typename(h.rng)}")
        _check_value("header field 'rng'", h.rng, 0, err)
    if h.pixel_format not in PIXEL_FORMATS:
        raise unsupported(f"pixel format {h.pixel_format} is not supported by this diffcodec "
                          f"(known: {', '.join(str(k) for k in sorted(PIXEL_FORMATS))})")


def _plain(v: Any, depth: int = 0) -> Any:
    """Writer convenience: numpy scalars -> Python scalars, tuples -> lists, bytearray -> bytes."""
    if depth > MAX_NESTING + 1:
        return v  # _check_value reports the nesting
    if type(v).__module__ == "numpy" and hasattr(v, "item") and getattr(v, "shape", None) == ():
        return v.item()
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x, depth + 1) for k, x in v.items()}
    return v


# ----------------------------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------------------------

_HEADER_DEFAULTS: tuple[Any, ...] = (0, 1, {}, None)   # pixel_format, frames, params, rng


def _encode_header(h: Header) -> bytes:
    arr: list[Any] = [h.method, h.model, h.model_sha, h.width, h.height, h.pixel_format, h.frames,
                      h.params, h.rng]
    while len(arr) > MIN_HEADER_FIELDS and arr[-1] == _HEADER_DEFAULTS[len(arr) - 1 - MIN_HEADER_FIELDS]:
        arr.pop()
    return msgpack.packb(arr, use_bin_type=True)


def _plain_header(header: Header) -> Header:
    return Header(header.method, header.model, _plain(header.model_sha), _plain(header.width),
                  _plain(header.height), _plain(header.pixel_format), _plain(header.frames),
                  _plain(header.params), _plain(header.rng))


def write_container(header: Header, payloads: list[bytes], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise one `.ddc` file: signature, H, m (if metadata is non-empty), then one D chunk per payload.

    Raises UsageError when the header breaks the format's limits (e.g. an image larger than 65535 px),
    ValueError when len(payloads) != header.frames, TypeError when a payload is not bytes-like.
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    h = _plain_header(header)
    _check_header(h, UsageError, UsageError)
    payloads = list(payloads)
    if len(payloads) != h.frames:
        raise ValueError(f"header declares {h.frames} frame(s) but {len(payloads)} payload(s) were given")
    parts = [SIGNATURE, _encode_chunk(CHUNK_HEADER, _encode_header(h))]
    if metadata:
        if type(metadata) is not dict or not all(type(k) is str and type(v) is str for k, v in metadata.items()):
            raise UsageError("metadata must be a map of str -> str")
        parts.append(_encode_chunk(CHUNK_METADATA, msgpack.packb(metadata, use_bin_type=True)))
    for i, p in enumerate(payloads):
        if not isinstance(p, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload {i} must be bytes, got {type(p).__name__}")
        parts.append(_encode_chunk(CHUNK_DATA, bytes(p)))
    return b"".join(parts)


def _image_header(method: str, encoded: Encoded, width: int, height: int, channels: int) -> Header:
    return Header(method=method, model=encoded.model, model_sha=encoded.model_sha, width=width, height=height,
                  pixel_format=pixel_format_code(channels), frames=max(1, len(encoded.chunks)),
                  params=encoded.params, rng=encoded.rng)


def frame(method: str, encoded: Encoded, width: int, height: int, channels: int,
          metadata: dict[str, str] | None = None) -> bytes:
    """The one place a codec's output becomes a `.ddc` file: header from ``encoded``'s fields and the image
    geometry, one D chunk per payload."""
    return write_container(_image_header(method, encoded, width, height, channels), encoded.chunks, metadata)


def framed_size(method: str, encoded: Encoded, width: int, height: int, channels: int,
                payload_sizes: list[int] | None = None) -> int:
    """Exact size of :func:`frame`'s file without building it; ``payload_sizes`` (default: the lengths of
    ``encoded.chunks``) lets a rate search price payloads it has not coded. The overhead is this minus the
    payload bytes."""
    sizes = [len(c) for c in encoded.chunks] if payload_sizes is None else list(payload_sizes)
    enc = Encoded(encoded.model, encoded.model_sha, encoded.params, encoded.rng, [b""] * len(sizes))
    h = _plain_header(_image_header(method, enc, width, height, channels))
    _check_header(h, UsageError, UsageError)
    header = _encode_header(h)
    return (len(SIGNATURE) + len(_encode_chunk(CHUNK_HEADER, header))
            + sum(1 + len(_encode_varint(n)) + n + 4 for n in sizes))


# ----------------------------------------------------------------------------------------------------
# Reader
# ----------------------------------------------------------------------------------------------------

_OTHER_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"PK\x03\x04", "a zip archive"),
)


def _check_signature(data: bytes) -> tuple[int, int]:
    n = len(data)
    if n == 0:
        raise CorruptInputError("empty input: not a .ddc file")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise CorruptInputError("input looks like a WebP image, not a .ddc file")
    if data[4:12] == b"ftypavif":
        raise CorruptInputError("input looks like an AVIF image, not a .ddc file")
    for magic, what in _OTHER_FORMATS:
        if data.startswith(magic):
            raise CorruptInputError(f"input looks like {what}, not a .ddc file")
    if data[:3] != MAGIC[:min(n, 3)]:
        raise CorruptInputError("not a .ddc file (bad signature)")
    if n < len(SIGNATURE):
        raise CorruptInputError(f"truncated file: only {n} byte(s), shorter than the {len(SIGNATURE)}-byte signature")
    major, minor = data[3], data[4]
    if major > FORMAT_MAJOR:
        raise UnsupportedError(f"file uses .ddc format version {major}.{minor}: format version {major}.x is newer "
                               f"than this diffcodec supports ({FORMAT_MAJOR}.x); upgrade diffcodec")
    if major < 1:
        raise CorruptInputError(f"not a valid .ddc file: format version {major}.{minor} does not exist")
    return major, minor


def _read_varint(data: bytes, pos: int, ctype: str, start: int) -> tuple[int, int]:
    n = len(data)
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos >= n:
            raise CorruptInputError(f"truncated file: length field of chunk '{ctype}' at offset {start} is cut short")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if b == 0 and i > 0:
                raise CorruptInputError(f"corrupt file: length field of chunk '{ctype}' at offset {start} "
                                        f"is not minimally encoded")
            if value > MAX_CHUNK_LENGTH:
                raise CorruptInputError(f"corrupt file: chunk '{ctype}' at offset {start} declares {value} bytes, "
                                        f"more than the format allows ({MAX_CHUNK_LENGTH})")
            return value, pos
    raise CorruptInputError(f"corrupt file: length field of chunk '{ctype}' at offset {start} "
                            f"is longer than {MAX_VARINT_BYTES} bytes")


def _unpack(raw: bytes, what: str) -> Any:
    limit = len(raw)
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, max_str_len=limit,
                               max_bin_len=limit, max_array_len=limit, max_map_len=limit, max_ext_len=limit)
    except Exception as e:  # any failure of msgpack on hostile bytes is a damaged file
        raise CorruptInputError(f"corrupt file: {what} is not valid msgpack ({type(e).__name__})") from None


def _corrupt_header(message: str) -> CorruptInputError:
    return CorruptInputError(f"corrupt file: {message}")


def _decode_header(raw: bytes, file_minor: int) -> Header:
    arr = _unpack(raw, "header chunk 'H'")
    if type(arr) is not list:
        raise CorruptInputError(f"corrupt file: header chunk 'H' must hold a msgpack array, got {_typename(arr)}")
    n = len(arr)
    if n < MIN_HEADER_FIELDS:
        raise CorruptInputError(f"corrupt file: header has {n} field(s), at least {MIN_HEADER_FIELDS} are required")
    if n > len(HEADER_FIELDS):
        if file_minor > FORMAT_MINOR:   # fields added by a newer minor version: ignore them
            arr = arr[:len(HEADER_FIELDS)]
        else:
            raise CorruptInputError(f"corrupt file: header has {n} fields, format {FORMAT_MAJOR}.{file_minor} "
                                    f"has at most {len(HEADER_FIELDS)}")
    full = list(arr) + list(_HEADER_DEFAULTS[len(arr) - MIN_HEADER_FIELDS:])
    if type(full[7]) is dict:
        full[7] = dict(full[7])  # never share the default
    h = Header(*full)
    _check_header(h, _corrupt_header, UnsupportedError)
    return h


def _decode_metadata(raw: bytes) -> dict[str, str]:
    m = _unpack(raw, "metadata chunk 'm'")
    if type(m) is not dict or not all(type(k) is str and type(v) is str for k, v in m.items()):
        raise CorruptInputError("corrupt file: metadata chunk 'm' must hold a msgpack map of str -> str")
    return m


def read_container(data: bytes) -> Container:
    """Parse and validate a `.ddc` file. Raises CorruptInputError or UnsupportedError (one-line messages)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_container needs bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    major, minor = _check_signature(data)
    pos = len(SIGNATURE)
    if pos == n:
        raise CorruptInputError("truncated file: nothing after the signature (no header chunk)")

    header: Header | None = None
    chunks: list[Chunk] = []
    header_bytes = 0
    payload_bytes = 0
    n_data = 0
    seen_metadata = False
    while pos < n:
        start = pos
        tb = data[pos]
        if not _is_letter(tb):
            raise CorruptInputError(f"corrupt file: byte 0x{tb:02x} at offset {start} is not a chunk type "
                                    f"(chunk types are ASCII letters)")
        ctype = chr(tb)
        length, pos = _read_varint(data, pos + 1, ctype, start)
        remaining = n - pos
        if length > remaining:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' declares {length} bytes but only "
                                    f"{remaining} remain")
        if length + 4 > remaining:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' at offset {start} is missing its CRC")
        body = data[pos:pos + length]
        pos += length
        stored = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        if _chunk_crc(tb, body) != stored:
            raise CorruptInputError(f"corrupt file: CRC mismatch in chunk '{ctype}' at offset {start}")

        if header is None:
            if ctype != CHUNK_HEADER:
                raise CorruptInputError(f"corrupt file: first chunk is '{ctype}', expected the header chunk 'H'")
            header = _decode_header(body, minor)
            header_bytes = pos
        elif ctype == CHUNK_HEADER:
            raise CorruptInputError(f"corrupt file: second header chunk 'H' at offset {start}")
        elif ctype == CHUNK_DATA:
            if n_data >= header.frames:
                raise CorruptInputError(f"corrupt file: more 'D' chunks than the {header.frames} the header declares")
            n_data += 1
            payload_bytes += length
            chunks.append(Chunk(ctype, body))
        elif ctype == CHUNK_METADATA:
            if seen_metadata:
                raise CorruptInputError(f"corrupt file: second metadata chunk 'm' at offset {start}")
            _decode_metadata(body)
            seen_metadata = True
            chunks.append(Chunk(ctype, body))
        elif tb <= 0x5A:  # unknown uppercase = critical
            raise UnsupportedError(f"file contains critical chunk '{ctype}', which this diffcodec "
                                   f"(format {FORMAT_MAJOR}.{FORMAT_MINOR}) does not understand; upgrade diffcodec")
        # unknown lowercase = optional: skipped (its CRC was checked above)

    assert header is not None
    if n_data < header.frames:
        raise CorruptInputError(f"truncated file: header declares {header.frames} 'D' chunk(s) but only "
                                f"{n_data} present")
    return Container(header=header, chunks=chunks, version=(major, minor), header_bytes=header_bytes,
                     payload_bytes=payload_bytes, framing_bytes=n - payload_bytes)
