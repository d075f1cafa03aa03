"""Reading and writing video clips as planar 8-bit YUV frames, one frame at a time.

Frames are tuples of uint8 planes (``(Y,)`` or ``(Y, U, V)``, see :mod:`diffcodec.yuv`); a reader holds one
frame in memory, never the clip.

Inputs (:func:`open_video`):

- **Y4M** (``*.y4m``, ``'-'`` for standard input, or any binary file object): ``C420jpeg``, ``C420paldv``,
  ``C420mpeg2``, ``C420`` and a missing ``C`` tag are 4:2:0, ``C444`` and ``Cmono`` as named. 9..16-bit
  samples (``C420p10``, ``C444p12``, ``Cmono16``, ...) are converted to 8 bits with a warning by a rounded
  shift, ``(v + 2) >> 2`` for 10-bit (:func:`diffcodec.yuv.reduce_depth`). Interlaced clips (``It``, ``Ib``,
  ``Im``) are read with a warning that the frames are coded as progressive pictures. Other layouts (4:2:2,
  4:1:1, with alpha) in a *file* are read through ffmpeg and converted to 4:2:0 (warning); on standard
  input they are refused (UnsupportedError). ``XCOLORRANGE=FULL`` marks full range.
- **raw** ``*.yuv``: planar 8-bit frames back to back; needs ``size=(W, H)`` and ``fps``; ``chroma``
  names the layout (default 4:2:0).
- **anything else ffmpeg reads** (mp4, mkv, webm, mov, avi, image sequences ``img_%04d.png``) through the
  ffmpeg binary of imageio-ffmpeg, piped one frame at a time:

  - YUV sources keep their samples: 4:2:0 and 4:4:4 stay as they are, mono (``gray``) stays mono, other
    chroma layouts (4:2:2, 4:1:1, 4:4:0) are converted to 4:2:0 by ffmpeg (warning), 9..16-bit sources are
    piped at their depth and reduced as for Y4M (warning). The colour matrix is taken from the stream
    (BT.709 and BT.2020 tags are kept; anything else is BT.601) and the range from the stream.
  - RGB sources (PNG and other image sequences, RGB codecs) are converted by :func:`yuv.rgb_to_planes`
    (BT.601 limited range, 2x2 mean chroma) to the ``chroma`` layout asked for (default 4:2:0); 16-bit RGB
    is reduced to 8 bits by ffmpeg first (warning).
  - Audio, subtitle and data streams are dropped (one warning for audio); only the first video stream is
    read (cover art is skipped).
  - Variable frame rate: the frames are resampled to a constant rate (ffmpeg's ``-fps_mode cfr`` at the
    stream's frame rate: frames are duplicated or dropped to keep the timing), with a warning when the
    stream's average rate differs from that rate (the sign of variable timing ffmpeg reports). ``fps=``
    relabels the rate of any input (and sets the rate of an image sequence, 25 by default); it never drops
    or duplicates frames.
  - A file ffmpeg cannot open is a CorruptInputError (a missing file a UsageError); one that ends early
    (ffmpeg's "partial file" / "ended prematurely") is a CorruptInputError when the reader reaches the end.

Outputs (:func:`open_writer`): ``*.y4m`` (or ``'-'``, standard output), raw ``*.yuv``, ``*.mp4`` (lossless
H.264: libx264 ``-qp 0``, 4:2:0 / 4:4:4 / gray as the clip; odd-sized 4:2:0 is refused, H.264 cannot hold
it; ffmpeg's H.264 decoder gives mono back as 4:2:0 with flat chroma), ``*.mkv`` (FFV1 level 3, every frame
a keyframe; any layout, any size), and PNG sequences ``out_%04d.png`` (numbered from 1 like ffmpeg; RGB
PNGs from :func:`yuv.planes_to_rgb` -- BT.601 or the clip's matrix, sample-repeated chroma --; mono clips
give gray PNGs). Every file output is written beside its destination under a temporary name and renamed at
``close()``; a writer left by an exception (or ``abort()``) removes its temporary file, so no half-written
output is ever seen under the destination name. A PNG sequence is written into a temporary folder and each
file renamed into place at ``close()``.

Errors are :mod:`diffcodec.errors` classes with one-line messages naming the input: UsageError (missing
file, bad arguments, seeking where the source cannot), CorruptInputError (not a video, truncated, no
frames, a pipe that closes mid-frame), UnsupportedError (a layout or output this module cannot handle).
"""

from __future__ import annotations

import errno
import io
import operator
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import IO, Any

import numpy as np

from diffcodec import yuv
from diffcodec.atomic import AtomicFile, fsync_dir, mode_for, publish, remove_quietly
from diffcodec.errors import CorruptInputError, FileAccessError, UnsupportedError, UsageError, write_failure

VIDEO_EXTENSIONS = (".y4m", ".yuv", ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts",
                    ".ogv", ".flv", ".wmv", ".3gp")
Y4M_MAGIC = b"YUV4MPEG2 "
MAX_PIXELS = 1 << 28            # per frame; larger headers are taken as garbage
_MAX_HEADER = 1 << 16           # longest Y4M stream header we accept
_MAX_FRAME_HEADER = 1 << 12
_PATTERN = re.compile(r"%0?\d*d")


class VideoWarning(UserWarning):
    pass


def _warn(msg: str) -> None:
    warnings.warn(msg, VideoWarning, stacklevel=3)


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is. ``fps`` is exact (num, den); ``frames`` is None when the source cannot tell (a pipe,
    ffmpeg). ``matrix`` (bt601 | bt709 | bt2020) and ``range`` (limited | full) describe the YUV samples; a
    mono clip's plane holds gray values."""

    width: int
    height: int
    fps: tuple[int, int]
    chroma: str
    frames: int | None = None
    matrix: str = "bt601"
    range: str = "limited"

    def __post_init__(self):
        try:
            w, h = operator.index(self.width), operator.index(self.height)
            num, den = (operator.index(v) for v in self.fps)
        except (TypeError, ValueError):
            raise UsageError(f"bad video size or rate {self.width}x{self.height} @ {self.fps!r}") from None
        if w < 1 or h < 1:
            raise UsageError(f"bad video size {w}x{h}")
        if num < 1 or den < 1:
            raise UsageError(f"bad frame rate {num}/{den}")
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "height", h)
        object.__setattr__(self, "fps", (num, den))
        yuv.plane_shapes(1, 1, self.chroma)
        if self.matrix not in yuv.MATRICES:
            raise UsageError(f"unknown colour matrix {self.matrix!r}")
        if self.range not in yuv.RANGES:
            raise UsageError(f"unknown colour range {self.range!r}")
        if self.frames is not None and self.frames < 0:
            raise UsageError(f"bad frame count {self.frames}")

    @property
    def plane_shapes(self) -> tuple[tuple[int, int], ...]:
        return yuv.plane_shapes(self.width, self.height, self.chroma)

    @property
    def frame_bytes(self) -> int:
        return yuv.frame_bytes(self.width, self.height, self.chroma)

    @property
    def fps_float(self) -> float:
        return self.fps[0] / self.fps[1]


@dataclass
class Frame:
    index: int
    planes: tuple[np.ndarray, ...] = field(repr=False)


# --------------------------------------------------------------------------------------------------- helpers


def is_video_path(path: str) -> bool:
    """Whether ``path`` names a video (by extension, or an image-sequence pattern with %d / %04d)."""
    p = os.fspath(path)
    return p.lower().endswith(VIDEO_EXTENSIONS) or bool(_PATTERN.search(os.path.basename(p)))


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:   # pragma: no cover - a dependency
        raise UnsupportedError("reading this video needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:   # pragma: no cover
        raise UnsupportedError(f"no ffmpeg binary: {e}") from None


def _read_into(f, buf: bytearray) -> int:
    """Fill ``buf`` from ``f``; the number of bytes read (fewer only at the end of the stream)."""
    view = memoryview(buf)
    got = 0
    n = len(buf)
    readinto = getattr(f, "readinto", None)
    while got < n:
        if readinto is not None:
            k = readinto(view[got:])
        else:
            chunk = f.read(n - got)
            k = len(chunk) if chunk else 0
            view[got:got + k] = chunk or b""
        if not k:
            break
        got += k
    return got


def _read_bytes(f, n: int) -> bytes:
    """``n`` bytes (fewer only at the end of the stream), however few each read of a pipe returns."""
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _read_line(f, limit: int, first: bytes = b"") -> bytes:
    """Bytes up to and including the next newline (or the end of the stream, or ``limit`` bytes)."""
    out = bytearray(first)
    if out.endswith(b"\n"):
        return bytes(out)
    while len(out) < limit:
        b = f.read(1)
        if not b:
            break
        out += b
        if b == b"\n":
            break
    return bytes(out)


def _stream_size(f) -> int | None:
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
        return end
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------------ Y4M header

_C_TAGS = {"420jpeg": "420", "420paldv": "420", "420mpeg2": "420", "420": "420", "444": "444", "mono": "mono"}
_C_DEEP = re.compile(r"(420p|444p|mono)(9|1[0-6])")


class _NeedsConversion(UnsupportedError):
    """A valid Y4M layout this reader does not take itself (4:2:2, ...); a file is read through ffmpeg."""


def _parse_y4m_header(line: bytes, name: str, fps: tuple[int, int] | None):
    """(VideoInfo without frames, bits per sample) from a stream header line."""
    if not line.startswith(Y4M_MAGIC):
        raise CorruptInputError(f"{name}: not a Y4M stream (no YUV4MPEG2 header)")
    if not line.endswith(b"\n"):
        raise CorruptInputError(f"{name}: truncated or damaged Y4M header")
    try:
        text = line[len(Y4M_MAGIC):-1].decode("ascii")
    except UnicodeDecodeError:
        raise CorruptInputError(f"{name}: damaged Y4M header (not ASCII)") from None
    width = height = None
    rate = None
    chroma, bits, color_range = "420", 8, "limited"
    for tag in text.split():
        key, value = tag[0], tag[1:]
        try:
            if key == "W":
                width = int(value)
            elif key == "H":
                height = int(value)
            elif key == "F":
                num, den = (int(v) for v in value.split(":"))
                rate = (num, den) if num > 0 and den > 0 else None
            elif key == "I":
                if value in ("t", "b", "m"):
                    kind = {"t": "top field first", "b": "bottom field first", "m": "mixed fields"}[value]
                    _warn(f"{name}: interlaced ({kind}); frames are coded as progressive pictures")
            elif key == "C":
                if value in _C_TAGS:
                    chroma = _C_TAGS[value]
                else:
                    m = _C_DEEP.fullmatch(value)
                    if m is None:
                        raise _NeedsConversion(f"{name}: Y4M colour space C{value} is not supported (4:2:0, "
                                               "4:4:4 and mono are); convert it with ffmpeg -pix_fmt yuv420p")
                    chroma, bits = m.group(1).rstrip("p"), int(m.group(2))
            elif key == "X" and value.upper().startswith("COLORRANGE="):
                color_range = "full" if value.split("=", 1)[1].upper() == "FULL" else "limited"
        except ValueError:
            raise CorruptInputError(f"{name}: damaged Y4M header tag {tag!r}") from None
    if width is None or height is None or width < 1 or height < 1:
        raise CorruptInputError(f"{name}: Y4M header has no valid W and H")
    if width * height > MAX_PIXELS or width > 1 << 16 or height > 1 << 16:
        raise CorruptInputError(f"{name}: implausible frame size {width}x{height} in the Y4M header")
    if fps is not None:
        rate = fps
    if rate is None:
        raise CorruptInputError(f"{name}: Y4M header has no valid frame rate (F); give one (--fps)")
    if chroma == "mono" and bits == 8 and b"XCOLORRANGE" not in line:
        color_range = "full"          # ffmpeg's gray is full range, and writes Cmono for it
    if bits > 8:
        half = 1 << (bits - 9)
        _warn(f"{name}: {bits}-bit samples converted to 8 bits ((v + {half}) >> {bits - 8})")
    return VideoInfo(width, height, rate, chroma, None, "bt601", color_range), bits


def _unpacker(info: VideoInfo, bits: int) -> tuple[int, Callable[[bytearray], tuple[np.ndarray, ...]]]:
    """(payload bytes per frame, bytes -> planes)."""
    shapes = info.plane_shapes
    sample = 1 if bits == 8 else 2
    nbytes = sum(h * w for h, w in shapes) * sample

    def unpack(buf: bytearray) -> tuple[np.ndarray, ...]:
        planes = []
        offset = 0
        for h, w in shapes:
            if bits == 8:
                planes.append(np.frombuffer(buf, np.uint8, h * w, offset).reshape(h, w))
            else:
                deep = np.frombuffer(buf, "<u2", h * w, offset).reshape(h, w)
                planes.append(yuv.reduce_depth(deep, bits))
            offset += h * w * sample
        return tuple(planes)

    return nbytes, unpack


# ---------------------------------------------------------------------------------------------------- readers


class VideoReader:
    """A clip, read one frame at a time: iterate for :class:`Frame` objects (from the current position to the
    end), :meth:`read` for one, :meth:`seek` to move. Use as a context manager (or call :meth:`close`)."""

    info: VideoInfo
    name: str

    def __init__(self, name: str, info: VideoInfo):
        self.name = name
        self.info = info
        self._pos = 0
        self._closed = False

    @property
    def position(self) -> int:
        """Index of the frame the next :meth:`read` returns."""
        return self._pos

    def read(self) -> Frame | None:   # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def seek(self, index: int) -> None:
        raise UsageError(f"{self.name}: this source cannot seek")

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise UsageError(f"{self.name}: bad frame index {index!r}")
        if self.info.frames is not None and index >= self.info.frames:
            raise UsageError(f"{self.name}: frame {index} is past the end ({self.info.frames} frames)")
        return int(index)


def _spawn_ffmpeg(args: list[str], name: str, *, stdin, stdout):
    """(process, stderr file) of an ffmpeg child; stderr goes to a temporary file (no pipe to fill up)."""
    stderr = tempfile.TemporaryFile()
    try:
        return subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr), stderr
    except OSError as e:
        stderr.close()
        raise UnsupportedError(f"{name}: cannot run ffmpeg ({e.strerror or e})") from None


class _FFmpegProcess:
    """An ffmpeg child writing frames to its stdout; stderr goes to a temporary file (no pipe to fill up)."""

    _TRUNCATED = ("partial file", "ended prematurely", "truncat", "premature end")

    def __init__(self, args: list[str], name: str):
        self.name = name
        self.args = args
        self.proc, self.stderr = _spawn_ffmpeg(args, name, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self.stdout = self.proc.stdout

    def messages(self) -> list[str]:
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace")
        return [ln.strip() for ln in text.splitlines() if ln.strip()]

    def finish(self) -> None:
        """Wait for a process whose output has ended; a one-line error if it failed or its input was cut."""
        rc = self.proc.wait()
        lines = self.messages()
        self._cleanup()
        if rc != 0:
            raise CorruptInputError(f"{self.name}: ffmpeg could not read it ({_last_reason(lines)})")
        cut = [ln for ln in lines if any(t in ln.lower() for t in self._TRUNCATED)]
        if cut:
            raise CorruptInputError(f"{self.name}: truncated ({_strip_ffmpeg_prefix(cut[0])})")
        if lines:
            _warn(f"{self.name}: ffmpeg reported: {_strip_ffmpeg_prefix(lines[0])}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.stdout is not None:
            self.stdout.close()
        self.stderr.close()


def _strip_ffmpeg_prefix(line: str) -> str:
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()


def _last_reason(lines: list[str]) -> str:
    for ln in reversed(lines):
        ln = _strip_ffmpeg_prefix(ln)
        if ln and not ln.startswith(("Conversion failed", "Exiting")):
            return ln.rstrip(".")
    return "no message"


class _StreamReader(VideoReader):
    """Frames of a known byte size from a binary stream: Y4M (``framed``: each frame starts with a FRAME
    line) or raw. Seekable streams seek by offset; pipes skip forward, ffmpeg sources restart to go back."""

    def __init__(self, stream, name: str, info: VideoInfo, bits: int = 8, *, framed: bool, owns_stream: bool,
                 process: _FFmpegProcess | None = None, restart: Callable[[], Any] | None = None,
                 unpack: tuple[int, Callable[[bytearray], tuple[np.ndarray, ...]]] | None = None):
        super().__init__(name, info)
        self._stream = stream
        self._framed = framed
        self._owns = owns_stream
        self._process = process
        self._restart = restart
        self._nbytes, self._unpack = unpack or _unpacker(info, bits)
        self._offsets: list[int] | None = None
        self._data_start = 0
        self._size = None if process is not None else _stream_size(stream)
        self._ended = False
        if self._size is not None:
            self._data_start = stream.tell()
            try:
                self.info = replace(info, frames=self._count_frames())
            except BaseException:
                self._close_stream()
                raise
            if self.info.frames == 0:
                self._close_stream()
                raise CorruptInputError(f"{name}: no frames")

    def _count_frames(self) -> int:
        """Frames in a seekable stream; a CorruptInputError if the last one is cut short."""
        size, start, n = self._size, self._data_start, self._nbytes
        if not self._framed:
            whole, rest = divmod(size - start, n)
            if rest:
                raise CorruptInputError(f"{self.name}: truncated: {size - start} bytes is not a whole number of "
                                        f"{n}-byte frames ({whole} frames and {rest} bytes)")
            return whole
        first = _read_line(self._stream, 7)
        self._stream.seek(start)
        if first == b"FRAME\n" and (size - start) % (6 + n) == 0:
            return (size - start) // (6 + n)     # plain FRAME lines: offsets by arithmetic
        offsets = []                              # frame parameters (or damage): walk the frame headers
        pos = start
        while pos < size:
            self._stream.seek(pos)
            head = _read_line(self._stream, _MAX_FRAME_HEADER)
            self._check_frame_header(head, len(offsets), at_end=pos + len(head) >= size)
            if pos + len(head) + n > size:
                got = size - pos - len(head)
                raise CorruptInputError(f"{self.name}: truncated: frame {len(offsets)} has {got} of {n} bytes")
            offsets.append(pos)
            pos += len(head) + n
        self._offsets = offsets
        self._stream.seek(start)
        return len(offsets)

    def _check_frame_header(self, head: bytes, i: int, at_end: bool) -> None:
        if head.startswith(b"FRAME") and head.endswith(b"\n") and head[5:6] in (b"\n", b" "):
            return
        if at_end and not head.endswith(b"\n") and b"FRAME".startswith(head[:5]):
            raise CorruptInputError(f"{self.name}: truncated: frame {i} has no complete header")
        raise CorruptInputError(f"{self.name}: damaged: no FRAME header at frame {i}")

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the clip."""
        if self._closed:
            raise UsageError(f"{self.name}: reader is closed")
        if self._ended:
            return None
        i = self._pos
        try:
            if self._framed:
                head = _read_bytes(self._stream, 6)
                if not head:
                    return self._end(i)
                if head[5:6] != b"\n":
                    head = _read_line(self._stream, _MAX_FRAME_HEADER, head)
                self._check_frame_header(head, i, at_end=not head.endswith(b"\n"))
            buf = bytearray(self._nbytes)
            got = _read_into(self._stream, buf)
            if got == 0 and not self._framed:
                return self._end(i)
            if got < self._nbytes:
                raise CorruptInputError(f"{self.name}: truncated: frame {i} has {got} of {self._nbytes} bytes")
        except CorruptInputError:
            self._ended = True
            if self._process is not None and self._process.proc.poll() is None:
                self._process.kill()   # still writing: nothing better to say than our own error
                self._process = None
            self._finish_process()     # if ffmpeg failed, its reason is the better message
            raise
        self._pos = i + 1
        return Frame(i, self._unpack(buf))

    def _end(self, i: int) -> None:
        self._ended = True
        self._finish_process()
        if i == 0 and self.info.frames is None:
            raise CorruptInputError(f"{self.name}: no frames")
        return None

    def _finish_process(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            process.finish()

    def seek(self, index: int) -> None:
        """Move to frame ``index``: by offset in files; forward by reading in pipes; back by restarting ffmpeg
        for files read through it; a UsageError in a pipe (behind the position) or past the end."""
        if self._closed:
            raise UsageError(f"{self.name}: reader is closed")
        index = self._check_index(index)
        if self._size is not None:
            if self._offsets is not None:
                offset = self._offsets[index]
            else:
                offset = self._data_start + index * (self._nbytes + (6 if self._framed else 0))
            self._stream.seek(offset)
            self._pos = index
            self._ended = False
            return
        if self._ended and index >= self._pos:
            raise UsageError(f"{self.name}: frame {index} is past the end ({self._pos} frames)")
        if index < self._pos:
            if self._restart is None:
                raise UsageError(f"{self.name}: cannot seek back in a pipe (at frame {self._pos}, asked for "
                                 f"frame {index})")
            self._reopen()
        while self._pos < index:
            if self.read() is None:
                raise UsageError(f"{self.name}: frame {index} is past the end ({self._pos} frames)")

    def _reopen(self) -> None:
        if self._process is not None:
            self._process.kill()
        self._stream, self._process = self._restart()
        if self._framed:
            _read_line(self._stream, _MAX_HEADER)
        self._pos = 0
        self._ended = False

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        if self._process is not None:
            process, self._process = self._process, None
            process.kill()
        self._close_stream()

    def _close_stream(self) -> None:
        if self._owns:
            try:
                self._stream.close()
            except OSError:   # pragma: no cover
                pass


def _open_y4m_stream(stream, name: str, fps, size, *, owns: bool, process=None, restart=None,
                     matrix: str = "bt601") -> _StreamReader:
    try:
        first = _read_bytes(stream, len(Y4M_MAGIC))
    except OSError as e:
        raise UsageError(f"{name}: cannot read ({e.strerror or e})") from None
    if not first:
        raise CorruptInputError(f"{name}: empty input (no Y4M header)")
    if first != Y4M_MAGIC:
        raise CorruptInputError(f"{name}: not a Y4M stream (no YUV4MPEG2 header)")
    line = _read_line(stream, _MAX_HEADER, first)
    info, bits = _parse_y4m_header(line, name, fps)
    if matrix != info.matrix:
        info = replace(info, matrix=matrix)
    if size is not None and tuple(size) != (info.width, info.height):
        raise UsageError(f"{name}: the clip is {info.width}x{info.height}, not {size[0]}x{size[1]} (--video-size is "
                         "for raw .yuv input)")
    return _StreamReader(stream, name, info, bits, framed=True, owns_stream=owns, process=process, restart=restart)


def _open_file(path: str):
    from diffcodec.images import open_input

    return open_input(path)


def _open_raw(path: str, size, fps, chroma: str) -> _StreamReader:
    if size is None or fps is None:
        raise UsageError(f"{path}: raw .yuv input needs its size and frame rate (--video-size WxH --fps N)")
    w, h = (int(v) for v in size)
    info = VideoInfo(w, h, _rate_arg(fps), chroma)
    f = _open_file(path)
    return _StreamReader(f, path, info, framed=False, owns_stream=True)


def _rate_arg(fps) -> tuple[int, int]:
    """(num, den) from (num, den), an int, a float or a 'N/D' / 'N:D' / 'N' string; 23.976, 29.97 and 59.94
    (within 0.006) mean the NTSC rates N*1000/1001."""
    try:
        if isinstance(fps, str):
            parts = re.split(r"[/:]", fps.strip())
            if len(parts) == 2:
                fr = Fraction(int(parts[0]), int(parts[1]))
            elif re.fullmatch(r"\d+", parts[0]):
                fr = Fraction(int(parts[0]))
            else:
                fr = Fraction(*_rate_from_float(float(parts[0])))
        elif isinstance(fps, (tuple, list)):
            fr = Fraction(int(fps[0]), int(fps[1]))
        elif isinstance(fps, int):
            fr = Fraction(fps)
        else:
            fr = Fraction(*_rate_from_float(float(fps)))
    except (ValueError, ZeroDivisionError, IndexError, TypeError):
        raise UsageError(f"bad frame rate {fps!r}") from None
    if fr <= 0:
        raise UsageError(f"bad frame rate {fps!r}")
    return fr.numerator, fr.denominator


# ----------------------------------------------------------------------------------------- ffmpeg sources


@dataclass
class _Probe:
    pix_fmt: str = ""
    width: int = 0
    height: int = 0
    fps: float | None = None
    tbr: float | None = None
    color_range: str | None = None
    colorspace: str | None = None
    audio: int = 0
    videos: int = 0


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses and brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _parse_rate_text(seg: str, unit: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(k?) " + unit, seg)
    if not m:
        return None
    return float(m.group(1)) * (1000 if m.group(2) else 1)


def _probe(path: str, exe: str, pre_input: list[str]) -> _Probe:
    try:
        p = subprocess.run([exe, "-hide_banner", "-nostdin", *pre_input, "-i", path], capture_output=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CorruptInputError(f"{path}: ffmpeg took too long to open it") from None
    except OSError as e:
        raise UnsupportedError(f"{path}: cannot run ffmpeg ({e.strerror or e})") from None
    lines = p.stderr.decode("utf-8", "replace").splitlines()
    if not any(ln.startswith("Input #0") for ln in lines):
        reason = _last_reason([ln for ln in lines if "output file" not in ln])
        if "No such file" in reason:
            raise UsageError(f"{path}: no such file")
        raise CorruptInputError(f"{path}: not a video ffmpeg can read ({reason[:1].lower() + reason[1:]})")
    probe = _Probe()
    for ln in lines:
        m = re.match(r"\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", ln)
        if not m:
            continue
        if m.group(1) == "Audio":
            probe.audio += 1
            continue
        if "(attached pic)" in ln:
            continue
        probe.videos += 1
        if probe.videos > 1:
            continue
        segs = _split_top(m.group(2))
        for seg in segs[1:]:
            size = re.match(r"(\d+)x(\d+)", seg)
            if size and not probe.width:
                probe.width, probe.height = int(size.group(1)), int(size.group(2))
                continue
            pf = re.fullmatch(r"([a-z0-9_]+)(?:\((.*)\))?", seg)
            if pf and not probe.pix_fmt and not probe.width:
                probe.pix_fmt = pf.group(1)
                for item in (pf.group(2) or "").split(","):
                    item = item.strip()
                    if item in ("tv", "pc"):
                        probe.color_range = "limited" if item == "tv" else "full"
                    elif "/" in item or item.startswith(("bt", "smpte", "fcc", "ycgco", "gbr")):
                        probe.colorspace = item.split("/")[0]
                continue
            probe.fps = probe.fps or _parse_rate_text(seg, "fps")
            probe.tbr = probe.tbr or _parse_rate_text(seg, "tbr")
    if probe.videos == 0:
        raise UnsupportedError(f"{path}: has no video stream")
    return probe


_SEMI_PLANAR = {"nv12": ("420", 8), "nv21": ("420", 8), "p010": ("420", 10), "p012": ("420", 12),
                "p016": ("420", 16), "nv16": ("422", 8), "nv20": ("422", 10), "yuyv422": ("422", 8),
                "uyvy422": ("422", 8), "yvyu422": ("422", 8), "y210": ("422", 10), "y212": ("422", 12),
                "p210": ("422", 10), "p216": ("422", 16), "v210": ("422", 10), "nv24": ("444", 8),
                "nv42": ("444", 8), "p410": ("444", 10), "p416": ("444", 16), "vuya": ("444", 8),
                "vuyx": ("444", 8), "ayuv": ("444", 8), "xv30": ("444", 10), "xv36": ("444", 12),
                "uyyvyy411": ("411", 8)}
_RGB_ALPHA = re.compile(r"(rgba|bgra|argb|abgr|gbrap|ya)")
_RGB_DEEP = re.compile(r"(48|64|p9|p1[0-6]|ap1[0-6]|f16|f32|x2rgb10|x2bgr10)")


def _plan(pix_fmt: str, name: str) -> tuple[str, str, int]:
    """(kind 'yuv' | 'rgb', chroma, bits) for a source pixel format; warns about what is converted."""
    pf = re.sub(r"(le|be)$", "", pix_fmt)
    sub = bits = None
    alpha = False
    m = re.fullmatch(r"(yuvj?|yuva)(4[1-4][0-4])p(\d+)?", pf)
    if m:
        sub, bits, alpha = m.group(2), int(m.group(3) or 8), m.group(1) == "yuva"
    elif pf in _SEMI_PLANAR:
        sub, bits = _SEMI_PLANAR[pf]
        alpha = pf in ("vuya", "ayuv")
    elif re.fullmatch(r"(gray|ya)(\d+)?", pf) or pf in ("monob", "monow"):
        g = re.fullmatch(r"(gray|ya)(\d+)?", pf)
        sub, bits = "mono", int(g.group(2) or 8) if g else 8
        alpha = pf.startswith("ya")
    if alpha or _RGB_ALPHA.match(pf):
        _warn(f"{name}: alpha channel dropped (diffcodec codes colour only)")
    if sub is None:
        if _RGB_DEEP.search(pf):
            _warn(f"{name}: {pix_fmt} samples reduced to 8 bits by ffmpeg")
        return "rgb", "", 8
    chroma = sub if sub in ("420", "444", "mono") else "420"
    if chroma != sub:
        _warn(f"{name}: {pix_fmt} chroma ({sub[0]}:{sub[1]}:{sub[2]}) converted to 4:2:0 by ffmpeg")
    return "yuv", chroma, bits if bits > 8 else 8


def _target_pix_fmt(chroma: str, bits: int) -> str:
    if bits == 8:
        return {"420": "yuv420p", "444": "yuv444p", "mono": "gray"}[chroma]
    if chroma == "mono":
        depth = bits if bits in (9, 10, 12, 16) else 16
        return f"gray{depth}le"
    depth = bits if bits in (9, 10, 12, 14, 16) else 16
    return f"yuv{chroma}p{depth}le"


def _rate_from_float(x: float) -> tuple[int, int]:
    if not 0.01 <= x < 1e6:
        raise ValueError(f"frame rate {x}")
    if abs(x - round(x)) < 0.005:
        return round(x), 1
    n = round(x * 1.001)
    if abs(n / 1.001 - x) < 0.006:
        return n * 1000, 1001
    fr = Fraction(x).limit_denominator(1000)
    return fr.numerator, fr.denominator


_MATRIX_OF = {"bt709": "bt709", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


def _open_ffmpeg(path: str, size, fps, chroma: str) -> _StreamReader:
    pattern = bool(_PATTERN.search(os.path.basename(path)))
    if not pattern:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file")
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{path}: cannot read (permission denied)")
    exe = ffmpeg_exe()
    pre = ["-framerate", "{}/{}".format(*_rate_arg(fps))] if pattern and fps is not None else []
    probe = _probe(path, exe, pre)
    if probe.audio:
        _warn(f"{path}: audio dropped ({probe.audio} stream{'s' if probe.audio > 1 else ''}; diffcodec codes "
              "the video only)")
    if probe.videos > 1:
        _warn(f"{path}: {probe.videos} video streams; only the first is read")
    kind, src_chroma, bits = _plan(probe.pix_fmt, path)
    if probe.fps and probe.tbr and abs(probe.fps - probe.tbr) > 0.01 * probe.tbr:
        _warn(f"{path}: variable frame rate (average {probe.fps:g} fps); resampled to a constant "
              f"{probe.tbr:g} fps (frames duplicated or dropped)")
    head = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *pre, "-i", path, "-map", "0:V:0", "-an",
            "-sn", "-dn", "-fps_mode", "cfr"]
    matrix = _MATRIX_OF.get(probe.colorspace or "", "bt601")
    if kind == "yuv":
        args = head + ["-pix_fmt", _target_pix_fmt(src_chroma, bits), "-strict", "-1", "-f", "yuv4mpegpipe",
                       "pipe:1"]

        def start():
            process = _FFmpegProcess(args, path)
            return process.stdout, process

        stream, process = start()
        override = _rate_arg(fps) if fps is not None and not pattern else None
        try:
            return _open_y4m_stream(stream, path, override, size, owns=False, process=process, restart=start,
                                    matrix=matrix)
        except CorruptInputError as e:
            if "empty input" in str(e):     # ffmpeg wrote nothing: its own reason, or no frames
                process.finish()
                raise CorruptInputError(f"{path}: no frames") from None
            process.kill()
            raise
        except BaseException:
            process.kill()
            raise
    # RGB sources: rgb24 frames, converted by our own rgb_to_planes
    if not probe.width:
        raise CorruptInputError(f"{path}: ffmpeg did not report the frame size")
    if size is not None and tuple(size) != (probe.width, probe.height):
        raise UsageError(f"{path}: the clip is {probe.width}x{probe.height}, not {size[0]}x{size[1]}")
    if fps is not None:
        rate = _rate_arg(fps)
    else:
        try:
            rate = _rate_from_float(probe.tbr or probe.fps or 25.0)
        except ValueError:
            rate = (25, 1)
    info = VideoInfo(probe.width, probe.height, rate, chroma)
    args = head + ["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    h, w = probe.height, probe.width

    def start_rgb():
        process = _FFmpegProcess(args, path)
        return process.stdout, process

    def unpack(buf: bytearray):
        return yuv.rgb_to_planes(np.frombuffer(buf, np.uint8).reshape(h, w, 3), chroma)

    stream, process = start_rgb()
    return _StreamReader(stream, path, info, framed=False, owns_stream=False, process=process, restart=start_rgb,
                         unpack=(h * w * 3, unpack))


# -------------------------------------------------------------------------------------------------- open_video


def open_video(path, *, size: tuple[int, int] | None = None, fps=None, chroma: str = "420") -> VideoReader:
    """A reader over the clip at ``path`` (see the module docstring for what is read and how).

    ``path``: a file path, ``'-'`` (standard input, Y4M) or a binary file object holding Y4M.
    ``size`` (W, H) and ``fps`` are required for raw ``.yuv`` (whose layout is ``chroma``); ``fps`` relabels
    any other input's rate (and sets an image sequence's); ``chroma`` is also the layout RGB sources are
    converted to. ``fps`` may be (num, den), a number or a 'N/D' string."""
    yuv.plane_shapes(1, 1, chroma)
    rate = _rate_arg(fps) if fps is not None else None
    if size is not None:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise UsageError(f"bad size {size!r}; expected (width, height)") from None
        if w < 1 or h < 1 or w * h > MAX_PIXELS:
            raise UsageError(f"bad size {w}x{h}")
        size = (w, h)
    if hasattr(path, "read"):
        return _open_y4m_stream(path, getattr(path, "name", None) or "input", rate, size, owns=False)
    path = os.fspath(path)
    if path == "-":
        return _open_y4m_stream(sys.stdin.buffer, "-", rate, size, owns=False)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".yuv":
        return _open_raw(path, size, rate, chroma)
    if ext == ".y4m":
        f = _open_file(path)
        try:
            return _open_y4m_stream(f, path, rate, size, owns=True)
        except _NeedsConversion:
            f.close()
            return _open_ffmpeg(path, size, rate, chroma)
        except BaseException:
            f.close()
            raise
    return _open_ffmpeg(path, size, rate, chroma)


def looks_like_y4m(head: bytes) -> bool:
    """Whether the first bytes of a stream are a Y4M header (for telling a piped clip from a piped image)."""
    return head.startswith(Y4M_MAGIC)


# ----------------------------------------------------------------------------------------------------- writers


class VideoWriter:
    """Writes frames (tuples of planes, or :class:`Frame`) of the clip ``info``; :meth:`close` publishes the
    output, :meth:`abort` (or leaving a ``with`` block by an exception) removes what was written."""

    def __init__(self, path: str, info: VideoInfo):
        self.path = path
        self.info = info
        self.frames_written = 0
        self._done = False

    def write(self, frame) -> None:
        if self._done:
            raise UsageError(f"{self.path}: writer is closed")
        planes = getattr(frame, "planes", frame)
        planes = yuv.check_planes(planes, self.info.width, self.info.height, self.info.chroma)
        self._write(planes)
        self.frames_written += 1

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        if self.frames_written == 0:
            self._abort()
            raise UsageError(f"{self.path}: no frames to write")
        self._close()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, planes) -> None:   # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:   # pragma: no cover
        raise NotImplementedError

    def _abort(self) -> None:   # pragma: no cover
        raise NotImplementedError


def y4m_header(info: VideoInfo) -> bytes:
    tag = {"420": "C420jpeg XYSCSS=420JPEG", "444": "C444 XYSCSS=444", "mono": "Cmono"}[info.chroma]
    rng = "FULL" if info.range == "full" else "LIMITED"
    return (f"YUV4MPEG2 W{info.width} H{info.height} F{info.fps[0]}:{info.fps[1]} Ip A1:1 {tag} "
            f"XCOLORRANGE={rng}\n").encode("ascii")


class _PlanarWriter(VideoWriter):
    """Y4M or raw planes, to a temporary file renamed at close, or to standard output."""

    def __init__(self, path: str, info: VideoInfo, framed: bool, stream: IO[bytes] | None = None,
                 overwrite: bool = True):
        super().__init__(path, info)
        self._framed = framed
        self._atomic = None if stream is not None else AtomicFile(path, overwrite)
        self._out = stream if stream is not None else self._atomic.file
        self._header_written = False

    def _write(self, planes) -> None:
        try:
            if self._framed:
                if not self._header_written:
                    self._out.write(y4m_header(self.info))
                    self._header_written = True
                self._out.write(b"FRAME\n")
            for p in planes:
                self._out.write(np.ascontiguousarray(p).data)
        except BrokenPipeError:
            raise
        except OSError as e:        # standard output (a file's errors are FileAccessError already)
            raise write_failure("standard output" if self.path == "-" else self.path, e) from None

    def _close(self) -> None:
        if self._atomic is not None:
            self._atomic.commit()
        else:
            try:
                self._out.flush()
            except BrokenPipeError:
                raise
            except OSError as e:
                raise write_failure("standard output", e) from None

    def _abort(self) -> None:
        if self._atomic is not None:
            self._atomic.discard()
        else:
            try:
                self._out.flush()
            except (OSError, ValueError):
                pass


_FFMPEG_CODECS = {
    ".mp4": ("mp4", ["-c:v", "libx264", "-qp", "0", "-preset", "medium"]),
    ".mkv": ("matroska", ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1"]),
}
_COLORSPACE_TAG = {"bt601": "smpte170m", "bt709": "bt709", "bt2020": "bt2020nc"}


# what ffmpeg says when the file system, not the stream, failed it: the OS's own words (exit 7, not 4)
_OS_WRITE_FAILURES = tuple(os.strerror(e) for e in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO, errno.EDQUOT,
                                                    errno.EFBIG, errno.EPERM))


def _ffmpeg_write_error(path: str, reason: str) -> Exception:
    if any(text in reason for text in _OS_WRITE_FAILURES):
        return FileAccessError(f"{path}: cannot write ({reason})")
    return UnsupportedError(f"{path}: ffmpeg could not write it ({reason})")


class _FFmpegWriter(VideoWriter):
    """Raw planes piped into ffmpeg, which writes a temporary file renamed at close."""

    def __init__(self, path: str, info: VideoInfo, overwrite: bool = True):
        super().__init__(path, info)
        self._overwrite = overwrite
        ext = os.path.splitext(path)[1].lower()
        fmt, codec = _FFMPEG_CODECS[ext]
        if ext == ".mp4" and info.chroma == "420" and (info.width % 2 or info.height % 2):
            raise UnsupportedError(f"{path}: H.264 cannot hold a {info.width}x{info.height} 4:2:0 clip (odd width "
                                   "or height); write .mkv (FFV1) or .y4m instead")
        pix = {"420": "yuv420p", "444": "yuv444p", "mono": "gray"}[info.chroma]
        rng = "tv" if info.range == "limited" else "pc"
        exe = ffmpeg_exe()
        parent = os.path.dirname(os.path.abspath(path))
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=".diffcodec-", suffix=".tmp", dir=parent)
        except OSError as e:
            raise write_failure(path, e) from None
        os.close(fd)
        args = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", pix, "-s", f"{info.width}x{info.height}",
                "-framerate", f"{info.fps[0]}/{info.fps[1]}", "-i", "pipe:0",
                # setparams labels the frames (no conversion); the encoder then tags the stream alike
                "-vf", f"setparams=range={rng}:colorspace={_COLORSPACE_TAG[info.matrix]}",
                *codec, "-pix_fmt", pix, "-color_range", rng, "-colorspace", _COLORSPACE_TAG[info.matrix],
                "-f", fmt, self._tmp]
        try:
            self._proc, self._stderr = _spawn_ffmpeg(args, path, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        except UnsupportedError:
            remove_quietly(self._tmp)
            raise

    def _ffmpeg_reason(self) -> str:
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return _last_reason(lines)

    def _write(self, planes) -> None:
        try:
            for p in planes:
                self._proc.stdin.write(np.ascontiguousarray(p).data)
        except (BrokenPipeError, OSError):
            self._proc.wait()
            reason = self._ffmpeg_reason()
            self._abort()
            self._done = True
            raise _ffmpeg_write_error(self.path, reason) from None

    def _close(self) -> None:
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self._proc.wait()
        if rc != 0:
            reason = self._ffmpeg_reason()
            self._abort()
            raise _ffmpeg_write_error(self.path, reason)
        self._stderr.close()
        try:
            os.chmod(self._tmp, mode_for(self.path))
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            publish(self._tmp, self.path, self._overwrite)
        except BaseException as e:
            remove_quietly(self._tmp)
            if isinstance(e, OSError):
                raise write_failure(self.path, e) from None
            raise
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def _abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        if not self._stderr.closed:
            self._stderr.close()
        remove_quietly(self._tmp)


class _PNGSequenceWriter(VideoWriter):
    """RGB (or gray, for mono) PNG files ``pattern % n`` from ``start``, written into a temporary folder beside
    them and renamed into place at close."""

    def __init__(self, pattern: str, info: VideoInfo, start: int, overwrite: bool = True):
        super().__init__(pattern, info)
        self._start = start
        self._overwrite = overwrite
        parent = os.path.dirname(os.path.abspath(pattern))
        try:
            self._tmpdir = tempfile.mkdtemp(prefix=".diffcodec-", suffix=".tmp", dir=parent)
        except OSError as e:
            raise write_failure(pattern, e) from None
        self._names: list[str] = []

    def _write(self, planes) -> None:
        from PIL import Image

        rgb = yuv.planes_to_rgb(planes, self.info)
        name = self.path % (self._start + self.frames_written)
        tmp = os.path.join(self._tmpdir, os.path.basename(name))
        try:
            Image.fromarray(rgb[..., 0] if rgb.shape[2] == 1 else rgb).save(tmp, format="PNG")
        except OSError as e:
            raise write_failure(name, e) from None
        self._names.append(name)

    def _close(self) -> None:
        published: list[str] = []
        try:
            for name in self._names:
                tmp = os.path.join(self._tmpdir, os.path.basename(name))
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            for name in self._names:
                publish(os.path.join(self._tmpdir, os.path.basename(name)), name, self._overwrite)
                published.append(name)
            os.rmdir(self._tmpdir)
        except BaseException as e:
            if not self._overwrite:         # the frames this writer added: the sequence appears whole or not at all
                for name in published:
                    remove_quietly(name)
            self._abort()
            if isinstance(e, OSError):
                raise write_failure(self.path, e) from None
            raise
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def _abort(self) -> None:
        for name in os.listdir(self._tmpdir):
            remove_quietly(os.path.join(self._tmpdir, name))
        try:
            os.rmdir(self._tmpdir)
        except OSError:
            pass


def _check_pattern_output(pattern: str, force: bool) -> None:
    base = os.path.basename(pattern)
    if len(_PATTERN.findall(base)) != 1 or "%" in _PATTERN.sub("", base) or _PATTERN.search(os.path.dirname(pattern)):
        raise UsageError(f"{pattern}: a frame pattern needs exactly one %d (or %04d) in the file name")
    parent = os.path.dirname(os.path.abspath(pattern))
    if not os.path.isdir(parent):
        raise UsageError(f"{pattern}: folder {parent} does not exist")
    if force:
        return
    m = _PATTERN.search(base)
    regex = re.compile(re.escape(base[:m.start()]) + r"\d+" + re.escape(base[m.end():]) + r"\Z")
    taken = sorted(n for n in os.listdir(parent) if regex.match(n))
    if taken:
        raise UsageError(f"{pattern}: {os.path.join(os.path.dirname(pattern), taken[0])} already exists (use --force "
                         "to overwrite)")


def open_writer(path: str, info: VideoInfo, *, force: bool = False, start_number: int = 1) -> VideoWriter:
    """A writer for ``path``: ``.y4m`` (or ``'-'``: Y4M on standard output), ``.yuv`` (raw planes), ``.mp4``
    (lossless H.264), ``.mkv`` (FFV1) or a PNG pattern like ``out_%04d.png`` (numbered from
    ``start_number``). An existing output is refused unless ``force``."""
    from diffcodec.images import check_output_path

    path = os.fspath(path)
    if not isinstance(info, VideoInfo):
        raise UsageError("open_writer needs a VideoInfo")
    if path == "-":
        return _PlanarWriter("-", info, framed=True, stream=sys.stdout.buffer)
    ext = os.path.splitext(path)[1].lower()
    if _PATTERN.search(os.path.basename(path)):
        if ext != ".png":
            raise UsageError(f"{path}: frame sequences are written as PNG (e.g. out_%04d.png)")
        _check_pattern_output(path, force)
        return _PNGSequenceWriter(path, info, start_number, overwrite=force)
    if ext not in (".y4m", ".yuv", *_FFMPEG_CODECS):
        raise UsageError(f"{path}: unknown video output type {ext or '(none)'}; use .y4m, .yuv, .mp4 (lossless "
                         "H.264), .mkv (FFV1) or a PNG pattern like out_%04d.png")
    check_output_path(path, [], force)
    if ext in (".y4m", ".yuv"):
        return _PlanarWriter(path, info, framed=ext == ".y4m", overwrite=force)
    return _FFmpegWriter(path, info, overwrite=force)
