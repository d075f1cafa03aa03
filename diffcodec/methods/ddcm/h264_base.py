"""The H.264 base layer of ddcm clips (``--base x264`` / ``x264:crf28``): x264 codes the whole clip (4:2:0 planes,
a keyframe every ``gop`` frames, P-frames only), each frame's access unit is stored in that frame's chunk, and the
codec refiner's free step runs over each decoded frame where the encoder found it better (one flag byte).

    frame payload = u8 refined (0 | 1) || H.264 access unit (Annex B NAL units; no SEI, no delimiter)

Any conforming H.264 decoder gives the same base frames (the standard fixes the decoder's output bit for bit), so
the prediction chain is exact on every machine: the refined frames are output only, never predicted from. Encoding
and decoding run in-process through PyAV (libavcodec's decoder, libx264 for encoding), the optional ``x264`` extra.

x264 sees the whole clip before it gives the first access unit out (its rate lookahead), so a clip over this base
is encoded as a stream (:class:`H264BaseClipEncoder`): frames go in, coded frames come out some frames later, and
the source frames wait in a queue meanwhile (memory: the lookahead's frames, not the clip). Normative description:
formats/ddc-v1.md, "ddcm clips on an H.264 base".
"""

from __future__ import annotations

import fractions
import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffcodec.errors import CorruptInputError, UnsupportedError, UsageError

# x264's settings (informative: the decoder needs none of them). Every keyframe is an IDR access unit with its own
# SPS and PPS (repeat-headers), so decoding can start at any keyframe. The chunks delimit the access units, and
# x264's one SEI message (its version and settings as text, ~600 bytes) is dropped: decoders do not need it.
X264_PRESET = "medium"
X264_THREADS = 1                # one thread: the same bytes on every machine for the same input
CRF_STEP = 0.25                 # the header's CRF is a multiple of this, 0..51
CRF_MAX = 51.0
DEFAULT_CRF = 30.0              # --base x264 without a CRF or a rate
# --kbps / --bpp choose the first pass's CRF from the rate (then the clip's passes correct it): x264 medium's CRF
# halves the rate about every 7 steps; 0.125 bits per pixel at CRF 28 (carphone_qcif, gop 12: a tuning clip)
CRF_AT_REF_BPP = 28.0
REF_BPP = 0.125
CRF_PER_HALVING = 7.0
_SPEC = re.compile(r"^x264(?::crf(\d{1,2}(?:\.\d{1,2})?))?$")

# The refiner was trained on JPEG, WebP, AVIF and opq bases, not on H.264: its condition names the AVIF kind at a
# quality that falls with the CRF. Chosen on the tuning clips carphone_qcif and bus_qcif (30 frames, gop 12, CRF
# 28-43, benchmarks/refine_over_x264.py; AVIF and WebP at several qualities: benchmarks/RESULTS.md, "ddcm on an
# H.264 base"), never on the reported clips.
CONDITION_KIND = "avif"


def condition_quality(crf: float) -> int:
    """The AVIF quality the refiner is told for an H.264 base at ``crf``: 35 at CRF 28, 5 less per 3 CRF steps,
    in 5..50."""
    return int(min(50, max(5, round(35 - (crf - 28) * 5 / 3))))


def parse_crf(text: str | None, err=UsageError) -> float | None:
    """The CRF of ``x264`` / ``x264:crf28.5`` (None: not given), checked (0..51 in steps of CRF_STEP)."""
    m = _SPEC.match(text) if isinstance(text, str) else None
    if m is None:
        raise err(f"not an H.264 base: {text!r} (x264 or x264:crfN, N in 0..51 in steps of {CRF_STEP:g})")
    if m.group(1) is None:
        return None
    crf = float(m.group(1))
    if not (0 <= crf <= CRF_MAX and (crf / CRF_STEP).is_integer()):
        raise err(f"x264 base CRF must be in 0..{CRF_MAX:g} in steps of {CRF_STEP:g}, got {m.group(1)}")
    return crf


def is_h264_base(base) -> bool:
    return isinstance(base, str) and (base == "x264" or base.startswith("x264:"))


def header_name(crf: float) -> str:
    return f"x264:crf{crf:g}"


def crf_for_bpp(bpp: float) -> float:
    """The first pass's CRF for a mean rate of ``bpp`` bits per pixel per frame (rounded to CRF_STEP)."""
    crf = CRF_AT_REF_BPP - CRF_PER_HALVING * math.log2(bpp / REF_BPP)
    return min(CRF_MAX, max(0.0, round(crf / CRF_STEP) * CRF_STEP))


def _av(missing=UsageError):
    try:
        import av
    except ImportError:
        raise missing("ddcm clips on an H.264 base need PyAV: pip install 'diffcodec[x264]'") from None
    import av.logging

    av.logging.set_level(None)       # libav's own messages stay off stderr: failures become one-line errors
    return av


def check_frame_size(width: int, height: int, chroma: str) -> None:
    if chroma != "420":
        raise UsageError(f"an H.264 base codes 4:2:0 clips; this clip is {chroma}")
    if width % 2 or height % 2:
        raise UsageError(f"an H.264 base codes 4:2:0 frames of even width and height, not {width}x{height}")


class H264Encoder:
    """libx264 over 4:2:0 frames: :meth:`push` a frame's planes, get the access units that came out (in order,
    some frames later); :meth:`flush` at the end."""

    def __init__(self, width: int, height: int, fps: tuple[int, int], crf: float, gop: int):
        av = _av()
        check_frame_size(width, height, "420")
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(fps[1], fps[0])
        ctx.framerate = fractions.Fraction(fps[0], fps[1])
        ctx.thread_count = X264_THREADS
        ctx.options = {"preset": X264_PRESET, "crf": f"{crf:g}",
                       "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
                                      f"threads={X264_THREADS}"}
        self._av, self._ctx, self._n = av, ctx, 0
        self.width, self.height = width, height

    def push(self, planes: tuple[np.ndarray, ...]) -> list[bytes]:
        y, u, v = planes
        frame = self._av.VideoFrame.from_ndarray(np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
                                                 .reshape(self.height * 3 // 2, self.width), format="yuv420p")
        frame.pts = self._n
        self._n += 1
        return [strip_sei(bytes(p)) for p in self._ctx.encode(frame)]

    def flush(self) -> list[bytes]:
        return [strip_sei(bytes(p)) for p in self._ctx.encode(None)]


# NAL unit types (H.264 Table 7-1) the access units of this base may hold
_NAL_IDR, _NAL_SEI, _NAL_SPS, _NAL_PPS, _NAL_AUD = 5, 6, 7, 8, 9


def nal_units(au: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit of an Annex B access unit, start codes included (00 00 01, or 00 00 00 01:
    emulation prevention keeps 00 00 01 out of the units themselves)."""
    starts, i = [], 0
    while True:
        i = au.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i - 1 if i > 0 and au[i - 1] == 0 else i)
        i += 3
    return [(a, b) for a, b in zip(starts, starts[1:] + [len(au)])]


def _type(au: bytes, start: int) -> int:
    head = au.find(b"\x00\x00\x01", start) + 3
    return au[head] & 0x1F if head < len(au) else -1


def nal_types(au: bytes) -> list[int]:
    """The NAL unit types of an Annex B access unit, in order."""
    return [_type(au, a) for a, _ in nal_units(au)]


def strip_sei(au: bytes) -> bytes:
    """``au`` without its SEI and access unit delimiter NAL units."""
    return b"".join(au[a:b] for a, b in nal_units(au) if _type(au, a) not in (_NAL_SEI, _NAL_AUD))


class H264Decoder:
    """libavcodec's H.264 decoder from one keyframe on: :meth:`decode` takes a frame's access unit and gives that
    frame's planes (exactly one frame per access unit; anything else is a corrupt file)."""

    def __init__(self, width: int, height: int, keyframe: bytes):
        av = _av(missing=UnsupportedError)
        types = nal_types(keyframe)
        if _NAL_IDR not in types or _NAL_SPS not in types or _NAL_PPS not in types:
            raise CorruptInputError("corrupt ddcm clip: an H.264 base keyframe must be an IDR access unit with its "
                                    "SPS and PPS")
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_count = 1                  # frame threads would hold frames back
        # refuse damage instead of concealing it; and no picture much larger than the header's frame (libavcodec
        # checks its padded, macroblock-aligned size; the exact size is checked after decoding)
        ctx.options = {"err_detect": "explode", "max_pixels": str(4 * width * height + 65536)}
        self._av, self._ctx, self.width, self.height = av, ctx, width, height
        self._first: bytes | None = keyframe

    def decode(self, au: bytes | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The planes of the next frame: the keyframe's at the first call (``au`` None), then ``au``'s."""
        if au is None:
            au, self._first = self._first, None
            if au is None:
                raise ValueError("the keyframe was decoded already")
        elif _NAL_IDR in nal_types(au):
            raise CorruptInputError("corrupt ddcm clip: an H.264 P-frame holds an IDR picture")
        try:
            frames = self._ctx.decode(self._av.Packet(au))
        except (self._av.error.FFmpegError, ValueError, MemoryError) as e:
            raise CorruptInputError(f"corrupt ddcm clip: the H.264 base does not decode ({e})") from None
        if len(frames) != 1 or getattr(frames[0], "is_corrupt", False):
            raise CorruptInputError(f"corrupt ddcm clip: an H.264 access unit decoded to {len(frames)} frames, "
                                    f"not one")
        f = frames[0]
        if (f.width, f.height) != (self.width, self.height) or f.format.name != "yuv420p":
            raise CorruptInputError(f"corrupt ddcm clip: the H.264 base is {f.width}x{f.height} {f.format.name}, "
                                    f"the header says {self.width}x{self.height} 4:2:0")
        w, h = self.width, self.height
        flat = f.to_ndarray().reshape(-1)
        y = flat[:w * h].reshape(h, w)
        u = flat[w * h:w * h + w * h // 4].reshape(h // 2, w // 2)
        v = flat[w * h + w * h // 4:].reshape(h // 2, w // 2)
        return y.copy(), u.copy(), v.copy()


# ------------------------------------------------------------------------------------------- the refinement


@dataclass(frozen=True)
class _Colour:
    """What :func:`diffcodec.yuv.planes_to_rgb` needs: the refiner sees frames through BT.601 at the clip's range
    whatever the clip's matrix (a fixed view, the same at both ends)."""
    range: str
    matrix: str = "bt601"
    chroma: str = "420"


def to_rgb(planes, color_range: str) -> np.ndarray:
    from diffcodec import yuv

    return yuv.planes_to_rgb(planes, _Colour(color_range))


def from_rgb(rgb: np.ndarray, color_range: str) -> tuple[np.ndarray, ...]:
    from diffcodec import yuv

    return yuv.rgb_to_planes(rgb, "420", matrix="bt601", color_range=color_range)


class H264BaseClipEncoder:
    """A ddcm clip over an H.264 base, as a stream: :meth:`push` a frame (yuv.PlanarFrame), get back the coded
    frames that are ready, each ``(keyframe, payload, reconstruction planes)``; :meth:`flush` at the end.
    ``refine(rgb) -> rgb`` is the free refiner step of the clip's header (None: no frame is refined; ``always``:
    every frame is); ``key_of(payload)`` makes a keyframe's Encoded (the clip's header)."""

    def __init__(self, width: int, height: int, fps: tuple[int, int], color_range: str, crf: float, gop: int,
                 refine, key_of, always: bool = False):
        self.encoder = H264Encoder(width, height, fps, crf, gop)
        self.decoder: H264Decoder | None = None
        self.pending: deque = deque()
        self.width, self.height, self.range, self.gop = width, height, color_range, gop
        self.refine, self.key_of, self.always = refine, key_of, always
        self.index = 0

    def push(self, frame) -> list[tuple[bool, Any, tuple[np.ndarray, ...]]]:
        self.pending.append(tuple(frame.planes))
        return [self._code(au) for au in self.encoder.push(tuple(frame.planes))]

    def flush(self) -> list[tuple[bool, Any, tuple[np.ndarray, ...]]]:
        out = [self._code(au) for au in self.encoder.flush()]
        if self.pending:
            raise UsageError(f"x264 gave {self.index} frames for {self.index + len(self.pending)}")
        return out

    def _code(self, au: bytes):
        from diffcodec import metrics

        source = self.pending.popleft()
        keyframe = self.decoder is None or _NAL_IDR in nal_types(au)      # x264 puts one every gop frames
        if keyframe:
            self.decoder = H264Decoder(self.width, self.height, au)
            base = self.decoder.decode()
        else:
            assert self.decoder is not None
            base = self.decoder.decode(au)
        self.index += 1
        out: tuple[np.ndarray, ...] = base
        better = False
        if self.refine is not None:
            refined = from_rgb(self.refine(to_rgb(base, self.range)), self.range)
            better = self.always or \
                metrics.psnr_planes(source, refined)["yuv"] > metrics.psnr_planes(source, base)["yuv"]
            out = refined if better else base
        payload = join_frame(better, au)
        return keyframe, (self.key_of(payload) if keyframe else payload), out


def join_frame(refined: bool, au: bytes) -> bytes:
    return bytes([int(refined)]) + au


def split_frame(payload: bytes) -> tuple[bool, bytes]:
    """(refined, access unit) of a frame payload over an H.264 base."""
    if len(payload) < 2 or payload[0] > 1:
        raise CorruptInputError("corrupt ddcm clip: a frame on an H.264 base starts with 0 (base) or 1 (refined) "
                                "and holds an access unit")
    return bool(payload[0]), payload[1:]
