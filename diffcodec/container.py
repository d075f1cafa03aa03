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

import io
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

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
    "PLANAR_PIXEL_FORMATS",
    "planar_chroma",
    "Header",
    "Chunk",
    "Container",
    "Encoded",
    "ClipWriter",
    "StreamReader",
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
FORMAT_MAJOR = 2
FORMAT_MINOR = 0                 # the version this module reads (and every 1.x); see the writers below
KNOWN_MINOR = {1: 1, 2: 0}       # per major version, the newest minor version this module knows
SIGNATURE = MAGIC + bytes([1, 0])               # what image files start with (format 1.0)
SIGNATURE_VIDEO = MAGIC + bytes([1, 1])         # clips of keyframes only (format 1.1)
SIGNATURE_INTER = MAGIC + bytes([2, 0])         # clips with P-frames (format 2.0)
CLIP_SIGNATURES = (SIGNATURE_VIDEO, SIGNATURE_INTER)
_SNIFF_BYTES = 12                                       # enough to recognise other formats' signatures

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
CHUNK_VIDEO = "v"                # format 1.1: frame rate and chroma layout of a clip
CHUNK_INDEX = "i"                # format 1.1: keyframe index (frame -> offset of its D chunk)
CHUNK_PREDICTED = "P"            # format 2.0: payload of a P-frame (decoded from the frame before it)
FRAME_CHUNKS = (CHUNK_DATA, CHUNK_PREDICTED)
_CHUNK_NAMES = {CHUNK_METADATA: "metadata", CHUNK_VIDEO: "video", CHUNK_INDEX: "index"}
CHROMA_LAYOUTS = ("420", "444", "mono")
MATRICES = ("bt601", "bt709", "bt2020")
RANGES = ("limited", "full")


@dataclass(frozen=True)
class PixelFormat:
    channels: int
    bit_depth: int
    colour_space: str


PIXEL_FORMATS: dict[int, PixelFormat] = {
    0: PixelFormat(channels=3, bit_depth=8, colour_space="srgb"),
    1: PixelFormat(channels=1, bit_depth=8, colour_space="gray"),
    2: PixelFormat(channels=3, bit_depth=8, colour_space="yuv420"),    # clips only: planes in the 'v' colour
    3: PixelFormat(channels=3, bit_depth=8, colour_space="yuv444"),
}
PLANAR_PIXEL_FORMATS = {"420": 2, "444": 3}     # a clip's chroma layout -> the pixel format of frames coded as planes


def planar_chroma(pixel_format: int) -> str | None:
    """The chroma layout of a planar pixel format (2 -> "420", 3 -> "444"); None for RGB and gray."""
    return next((c for c, code in PLANAR_PIXEL_FORMATS.items() if code == pixel_format), None)


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
    payload_bytes: int           # sum of D (and P) chunk data lengths
    framing_bytes: int           # everything that is not D chunk data
    video: dict[str, Any] | None = None      # the 'v' chunk of a clip (format 1.1), None for an image
    index: list[list[int]] | None = None     # the 'i' chunk: [frame, offset from the first D chunk] pairs

    @property
    def payloads(self) -> list[bytes]:
        """Every frame's payload in frame order (D and, in a 2.0 clip, P chunks)."""
        return [c.data for c in self.chunks if c.type in FRAME_CHUNKS]

    @property
    def keyframe_payloads(self) -> list[bytes]:
        return [c.data for c in self.chunks if c.type == CHUNK_DATA]

    @property
    def predicted_frames(self) -> int:
        return sum(c.type == CHUNK_PREDICTED for c in self.chunks)

    @property
    def encoded(self) -> Encoded:
        """The codec's view of this file (what :func:`frame` was given; a clip's keyframe payloads)."""
        h = self.header
        return Encoded(model=h.model, model_sha=h.model_sha, params=h.params, rng=h.rng,
                       chunks=self.keyframe_payloads)

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


def write_container(header: Header, payloads: list[bytes], metadata: dict[str, str] | None = None,
                    video: dict[str, Any] | None = None) -> bytes:
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
    sizes = []
    for i, p in enumerate(payloads):
        if not isinstance(p, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload {i} must be bytes, got {type(p).__name__}")
        sizes.append(len(p))
    parts = [_file_head(h, video, sizes)]
    if metadata:
        if type(metadata) is not dict or not all(type(k) is str and type(v) is str for k, v in metadata.items()):
            raise UsageError("metadata must be a map of str -> str")
        parts.append(_encode_chunk(CHUNK_METADATA, msgpack.packb(metadata, use_bin_type=True)))
    parts += [_encode_chunk(CHUNK_DATA, bytes(p)) for p in payloads]
    return b"".join(parts)


def _file_head(h: Header, video: dict[str, Any] | None, payload_sizes: list[int],
               keyframes: list[bool] | None = None) -> bytes:
    """Signature and H chunk; for a clip (``video``: the 'v' map) also the v chunk and the i index of its
    keyframes (``keyframes``: per frame; default all, intra coding, format 1.1; any P-frame makes it 2.0)."""
    keys = [True] * len(payload_sizes) if keyframes is None else keyframes
    signature = SIGNATURE if video is None else SIGNATURE_VIDEO if all(keys) else SIGNATURE_INTER
    head = [signature, _encode_chunk(CHUNK_HEADER, _encode_header(h))]
    if video is not None:
        v = _plain(dict(video))
        try:                                                    # the reader's checks, as a writer error
            _decode_video(msgpack.packb(v, use_bin_type=True))
        except CorruptInputError as e:
            raise UsageError(str(e).removeprefix("corrupt file: ")) from None
        head.append(_encode_chunk(CHUNK_VIDEO, msgpack.packb(v, use_bin_type=True)))
        offsets, pos = [], 0
        for i, (n, key) in enumerate(zip(payload_sizes, keys)):
            if key:
                offsets.append([i, pos])
            pos += 1 + len(_encode_varint(n)) + n + 4
        head.append(_encode_chunk(CHUNK_INDEX, msgpack.packb(offsets, use_bin_type=True)))
    return b"".join(head)


class ClipWriter:
    """Writes a clip as one `.ddc` file (format 1.1) without holding its frames: each frame's payload goes to a
    temporary file as it is coded, and :meth:`write` emits signature, header (which must state the frame count),
    video chunk, index and the payloads. Every frame must share the first one's model, parameters and rng (a clip
    has one header)."""

    def __init__(self, method: str, width: int, height: int, channels: int, video: dict[str, Any],
                 pixel_format: int | None = None):
        self.method, self.width, self.height, self.channels = method, width, height, channels
        self.pixel_format = pixel_format
        self.video = dict(video)
        self.first: Encoded | None = None
        self.sizes: list[int] = []
        self.keyframes: list[bool] = []
        self._spool = tempfile.TemporaryFile()

    def add(self, encoded: Encoded) -> int:
        """Append one frame (one payload chunk); returns the frame's payload bytes."""
        if len(encoded.chunks) != 1:
            raise UsageError("a clip frame must be one payload chunk")
        if self.first is None:
            self.first = encoded
        elif (encoded.model, encoded.model_sha, encoded.params, encoded.rng) != \
                (self.first.model, self.first.model_sha, self.first.params, self.first.rng):
            raise UsageError(f"frame {len(self.sizes)} was coded with other parameters than frame 0 "
                             f"({encoded.params} vs {self.first.params}); a clip has one header")
        return self._append(CHUNK_DATA, bytes(encoded.chunks[0]))

    def add_predicted(self, payload: bytes) -> int:
        """Append a P-frame (a 'P' chunk, format 2.0); returns its payload bytes."""
        if self.first is None:
            raise UsageError("a clip starts with a keyframe")
        return self._append(CHUNK_PREDICTED, bytes(payload))

    def _append(self, ctype: str, data: bytes) -> int:
        self._spool.write(_encode_chunk(ctype, data))
        self.sizes.append(len(data))
        self.keyframes.append(ctype == CHUNK_DATA)
        return len(data)

    def header(self) -> Header:
        if self.first is None:
            raise UsageError("a clip needs at least one frame")
        h = _image_header(self.method, self.first, self.width, self.height, self.channels)
        h.frames = len(self.sizes)
        if self.pixel_format is not None:
            h.pixel_format = self.pixel_format
        return _plain_header(h)

    def size(self) -> int:
        """The size :meth:`write` will write."""
        h = self.header()
        return (len(_file_head(h, self.video, self.sizes, self.keyframes))
                + sum(1 + len(_encode_varint(n)) + n + 4 for n in self.sizes))

    def write(self, out: BinaryIO) -> int:
        """Write the whole file to ``out``; returns its size."""
        h = self.header()
        _check_header(h, UsageError, UsageError)
        head = _file_head(h, self.video, self.sizes, self.keyframes)
        out.write(head)
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, out, 1 << 20)
        return len(head) + self._spool.tell()

    def close(self) -> None:
        try:
            self._spool.close()
        except OSError:     # flushing what is left of a discarded temporary file (e.g. the disk is full): no matter
            pass


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


def _unpack(raw: bytes, what: str) -> Any:
    limit = len(raw)
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, max_str_len=limit,
                               max_bin_len=limit, max_array_len=limit, max_map_len=limit, max_ext_len=limit)
    except Exception as e:  # any failure of msgpack on hostile bytes is a damaged file
        raise CorruptInputError(f"corrupt file: {what} is not valid msgpack ({type(e).__name__})") from None


def _corrupt_header(message: str) -> CorruptInputError:
    return CorruptInputError(f"corrupt file: {message}")


def _decode_header(raw: bytes, version: tuple[int, int]) -> Header:
    arr = _unpack(raw, "header chunk 'H'")
    if type(arr) is not list:
        raise CorruptInputError(f"corrupt file: header chunk 'H' must hold a msgpack array, got {_typename(arr)}")
    n = len(arr)
    if n < MIN_HEADER_FIELDS:
        raise CorruptInputError(f"corrupt file: header has {n} field(s), at least {MIN_HEADER_FIELDS} are required")
    if n > len(HEADER_FIELDS):
        if version[1] > KNOWN_MINOR[version[0]]:   # fields added by a newer minor version: ignore them
            arr = arr[:len(HEADER_FIELDS)]
        else:
            raise CorruptInputError(f"corrupt file: header has {n} fields, format {version[0]}.{version[1]} "
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


def _decode_video(raw: bytes) -> dict[str, Any]:
    v = _unpack(raw, "video chunk 'v'")
    bad = lambda what: CorruptInputError(f"corrupt file: video chunk 'v': {what}")  # noqa: E731
    if type(v) is not dict or not all(type(k) is str for k in v):
        raise bad("must hold a msgpack map with str keys")
    fps = v.get("fps")
    if type(fps) is not list or len(fps) != 2 or not all(type(x) is int and 1 <= x < 2**32 for x in fps):
        raise bad(f"'fps' must be [numerator, denominator], positive integers < 2^32, got {fps!r}")
    for key, allowed in (("chroma", CHROMA_LAYOUTS), ("matrix", MATRICES), ("range", RANGES)):
        if v.get(key) not in allowed:
            raise bad(f"{key!r} must be one of {', '.join(allowed)}, got {v.get(key)!r}")
    _check_value("video chunk 'v'", v, 0, lambda m: CorruptInputError(f"corrupt file: {m}"))
    return v


def _decode_index(raw: bytes, frames: int) -> list[list[int]]:
    x = _unpack(raw, "index chunk 'i'")
    bad = lambda what: CorruptInputError(f"corrupt file: index chunk 'i': {what}")  # noqa: E731
    if type(x) is not list or not x:
        raise bad("must hold a non-empty msgpack array")
    last = (-1, -1)
    for entry in x:
        if type(entry) is not list or len(entry) != 2 or not all(type(e) is int for e in entry):
            raise bad("entries must be [frame, offset] integer pairs")
        if not (entry[0] > last[0] and entry[1] > last[1] and entry[0] < frames):
            raise bad(f"entry {entry} is out of order or past the {frames} frames")
        last = (entry[0], entry[1])
    if x[0] != [0, 0]:
        raise bad("the first entry must be frame 0 at offset 0")
    return x


class _ChunkReader:
    """Reads and checks chunks one at a time from a binary file object (the whole-file reader and the streaming
    reader share it, so both apply exactly the same rules). ``total`` is the input's length when known;
    ``pushback`` holds bytes already read from ``f`` (after the signature)."""

    def __init__(self, f: BinaryIO, total: int | None, pos: int, pushback: bytes = b""):
        self.f, self.total, self.pos = f, total, pos
        self._buf = pushback

    def _read(self, n: int) -> bytes:
        data, self._buf = self._buf[:n], self._buf[n:]
        if len(data) < n:
            data += self.f.read(n - len(data))
        self.pos += len(data)
        return data

    def at_end(self) -> bool:
        if self.total is not None:
            return self.pos >= self.total
        if not self._buf:
            self._buf = self.f.read(1)
        return not self._buf

    def seek(self, offset: int) -> None:
        self.f.seek(offset)
        self.pos, self._buf = offset, b""

    def next(self) -> tuple[str, bytes, int]:
        """(type, data, offset of the chunk) of the next chunk, its CRC checked."""
        start = self.pos
        tb = self._read(1)[0]
        if not _is_letter(tb):
            raise CorruptInputError(f"corrupt file: byte 0x{tb:02x} at offset {start} is not a chunk type "
                                    f"(chunk types are ASCII letters)")
        ctype = chr(tb)
        length = self._varint(ctype, start)
        remaining = None if self.total is None else self.total - self.pos
        if remaining is not None and length > remaining:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' declares {length} bytes but only "
                                    f"{remaining} remain")
        if remaining is not None and length + 4 > remaining:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' at offset {start} is missing its CRC")
        body = self._read(length)
        if len(body) < length:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' declares {length} bytes but only "
                                    f"{len(body)} remain")
        crc = self._read(4)
        if len(crc) < 4:
            raise CorruptInputError(f"truncated file: chunk '{ctype}' at offset {start} is missing its CRC")
        if _chunk_crc(tb, body) != int.from_bytes(crc, "big"):
            raise CorruptInputError(f"corrupt file: CRC mismatch in chunk '{ctype}' at offset {start}")
        return ctype, body, start

    def _varint(self, ctype: str, start: int) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self._read(1)
            if not byte:
                raise CorruptInputError(f"truncated file: length field of chunk '{ctype}' at offset {start} is cut "
                                        f"short")
            b = byte[0]
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise CorruptInputError(f"corrupt file: length field of chunk '{ctype}' at offset {start} "
                                            f"is not minimally encoded")
                if value > MAX_CHUNK_LENGTH:
                    raise CorruptInputError(f"corrupt file: chunk '{ctype}' at offset {start} declares {value} "
                                            f"bytes, more than the format allows ({MAX_CHUNK_LENGTH})")
                return value
        raise CorruptInputError(f"corrupt file: length field of chunk '{ctype}' at offset {start} "
                                f"is longer than {MAX_VARINT_BYTES} bytes")


class StreamReader:
    """A `.ddc` file read chunk by chunk from a binary file object: the header, video description, index and
    metadata up front (:meth:`open`), then the payloads one frame at a time (:meth:`payloads`), so decoding a clip
    needs memory for one frame's payload, not the file. Applies the same rules as :func:`read_container`."""

    def __init__(self, f: BinaryIO, total: int | None = None):
        self.file = f
        head = f.read(_SNIFF_BYTES)     # enough for the signature check to name another format
        self.version = _check_signature(head)
        self._chunks = _ChunkReader(f, total, len(SIGNATURE), head[len(SIGNATURE):])
        self.header: Header | None = None
        self.video: dict[str, Any] | None = None
        self.index: list[list[int]] | None = None
        self._offsets: dict[int, int] = {}     # the index as frame -> offset (checked for every D chunk read)
        self.chunks: list[Chunk] = []       # known optional chunks (m, v, i), in file order
        self._chunk_places: list[int] = []  # how many D chunks preceded each of them
        self.header_bytes = 0
        self.payload_bytes = 0
        self.frames_read = 0
        self._pending: tuple[str, bytes, int] | None = None
        self.first_payload_offset: int | None = None
        self._open()

    def _open(self) -> None:
        if self._chunks.at_end():
            raise CorruptInputError("truncated file: nothing after the signature (no header chunk)")
        ctype, body, _ = self._chunks.next()
        if ctype != CHUNK_HEADER:
            raise CorruptInputError(f"corrupt file: first chunk is '{ctype}', expected the header chunk 'H'")
        self.header = _decode_header(body, self.version)
        self.header_bytes = self._chunks.pos
        while not self._chunks.at_end():
            chunk = self._chunks.next()
            if chunk[0] == CHUNK_DATA or (chunk[0] == CHUNK_PREDICTED and self.version[0] >= 2):
                if chunk[0] == CHUNK_PREDICTED:
                    raise CorruptInputError(f"corrupt file: the first frame ('P' chunk at offset {chunk[2]}) is "
                                            f"a P-frame; a clip starts with a keyframe ('D')")
                self._pending = chunk
                self.first_payload_offset = chunk[2]
                break
            self._other(*chunk)
        if self.version[0] >= 2 and self.video is None:
            raise CorruptInputError("corrupt file: a format 2 file is a clip and needs a video chunk 'v' before "
                                    "its first frame")
        planar = planar_chroma(self.header.pixel_format)
        if planar is not None and (self.video is None or self.video["chroma"] != planar):
            raise CorruptInputError(f"corrupt file: pixel format {self.header.pixel_format} (YCbCr {planar} planes) "
                                    f"needs a video chunk 'v' with chroma {planar!r} before the first frame")

    def _other(self, ctype: str, body: bytes, start: int) -> None:
        """A chunk that is not a payload: checked, kept if known, skipped if optional and unknown."""
        if ctype == CHUNK_HEADER:
            raise CorruptInputError(f"corrupt file: second header chunk 'H' at offset {start}")
        if ctype in (CHUNK_METADATA, CHUNK_VIDEO, CHUNK_INDEX):
            if any(c.type == ctype for c in self.chunks):
                raise CorruptInputError(f"corrupt file: second {_CHUNK_NAMES[ctype]} chunk '{ctype}' at offset "
                                        f"{start}")
            if ctype == CHUNK_METADATA:
                _decode_metadata(body)
            elif ctype == CHUNK_VIDEO:
                self.video = _decode_video(body)
            else:
                assert self.header is not None
                if self.frames_read:
                    raise CorruptInputError(f"corrupt file: index chunk 'i' at offset {start} after a 'D' chunk")
                self.index = _decode_index(body, self.header.frames)
                self._offsets = dict((f, off) for f, off in self.index)
            self.chunks.append(Chunk(ctype, body))
            self._chunk_places.append(self.frames_read)
        elif ctype == CHUNK_PREDICTED:      # only reached in a 1.x file: format 1 has no P-frames
            raise CorruptInputError(f"corrupt file: P-frame chunk 'P' at offset {start} in a format "
                                    f"{self.version[0]}.{self.version[1]} file (P-frames need format 2)")
        elif ord(ctype) <= 0x5A:  # unknown uppercase = critical
            raise UnsupportedError(f"file contains critical chunk '{ctype}', which this diffcodec "
                                   f"(format {FORMAT_MAJOR}.{FORMAT_MINOR}) does not understand; upgrade diffcodec")
        # unknown lowercase = optional: skipped (its CRC was checked)

    def payloads(self) -> Iterator[bytes]:
        """Every frame's payload in frame order (see :meth:`frames`)."""
        for _, body in self.frames():
            yield body

    def frames(self) -> Iterator[tuple[str, bytes]]:
        """(chunk type, data) of every frame in frame order: 'D' for a keyframe, 'P' for a P-frame (format 2);
        after the last one, the rest of the file is checked (trailing chunks, the declared frame count)."""
        assert self.header is not None
        frame_types = FRAME_CHUNKS if self.version[0] >= 2 else (CHUNK_DATA,)
        while True:
            if self._pending is not None:
                chunk, self._pending = self._pending, None
            elif self._chunks.at_end():
                break
            else:
                chunk = self._chunks.next()
            ctype, body, start = chunk
            if ctype not in frame_types:
                self._other(ctype, body, start)
                continue
            if self.frames_read >= self.header.frames:
                raise CorruptInputError(f"corrupt file: more frame chunks than the {self.header.frames} the header "
                                        f"declares")
            if self.index is not None and self.first_payload_offset is not None:
                expected = self.index_offset(self.frames_read)
                if expected is not None and (expected != start or ctype != CHUNK_DATA):
                    raise CorruptInputError(f"corrupt file: index chunk 'i' puts keyframe {self.frames_read} at "
                                            f"offset {expected}, but its chunk is a '{ctype}' at {start}")
            self.frames_read += 1
            self.payload_bytes += len(body)
            yield ctype, body
        if self.frames_read < self.header.frames:
            raise CorruptInputError(f"truncated file: header declares {self.header.frames} frame chunk(s) but only "
                                    f"{self.frames_read} present")

    def index_offset(self, frame: int) -> int | None:
        """File offset of frame ``frame``'s D chunk according to the index (None: not a keyframe there)."""
        if self.index is None or self.first_payload_offset is None or frame not in self._offsets:
            return None
        return self.first_payload_offset + self._offsets[frame]

    def seek_frame(self, frame: int) -> int:
        """Position the reader at the nearest indexed keyframe at or before ``frame`` (the file object must be
        seekable); returns that keyframe's number. Without an index, or when the file cannot seek, returns 0 and
        reading starts at the first frame."""
        if self.index is None or self.first_payload_offset is None or frame <= 0 or self.frames_read:
            return 0
        keys = [k for k in self.index if k[0] <= frame]
        if not keys or keys[-1][0] == 0:
            return 0
        key, off = keys[-1]
        try:
            self._chunks.seek(self.first_payload_offset + off)
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            return 0
        self._pending = None
        self.frames_read = key
        return key


def read_container(data: bytes) -> Container:
    """Parse and validate a whole `.ddc` file in memory. Raises CorruptInputError or UnsupportedError (one-line
    messages)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_container needs bytes, got {type(data).__name__}")
    data = bytes(data)
    reader = StreamReader(io.BytesIO(data), total=len(data))
    frames = list(reader.frames())
    assert reader.header is not None
    chunks: list[Chunk] = []            # in file order
    optional = list(zip(reader._chunk_places, reader.chunks))
    for i, (ctype, p) in enumerate(frames):
        chunks += [c for place, c in optional if place == i]
        chunks.append(Chunk(ctype, p))
    chunks += [c for place, c in optional if place >= len(frames)]
    return Container(header=reader.header, chunks=chunks, version=reader.version, header_bytes=reader.header_bytes,
                     payload_bytes=reader.payload_bytes, framing_bytes=len(data) - reader.payload_bytes,
                     video=reader.video, index=reader.index)
