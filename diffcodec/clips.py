"""Clips: frames coded by an image codec into one `.ddc` file, streamed; with ``gop`` > 1 (codecs that
``predict``) a keyframe every ``gop`` frames and P-frames predicted from the frame before in between.

    encode: VideoReader --frame--> YUV -> RGB (the clip's matrix and range) --> Codec.compress_keyframe
                                                           or Codec.compress_predicted(reference) --> ClipWriter
            (or, where Codec.clip_stream_layouts says so: YUV planes or RGB --> Codec.open_clip_encoder: push /
             flush, coded frames out some frames later --> ClipWriter)
    decode: StreamReader --payload--> Codec.decompress_keyframe / decompress_predicted(reference)
                                                           --> RGB -> YUV (the clip's chroma) --> VideoWriter

A codec whose ``planar_layouts`` hold the clip's chroma layout gets the YCbCr planes themselves
(:class:`diffcodec.yuv.PlanarFrame`) and gives planes back: no RGB round trip (pixel formats 2 and 3).

Frame 0 chooses the coding parameters (its preset, or what ``bpp`` / ``kbps`` pick for it); every later frame
is coded with the same ones (:meth:`Codec.clip_params`), because a clip has one header. Memory holds one frame,
its payload and the codec's reference; coded payloads wait on disk until the header (which counts the frames)
can be written. Intra clips are format 1.1, clips with P-frames format 2.0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from diffcodec import container, yuv
from diffcodec.errors import UsageError
from diffcodec.methods import Codec, Encoded, available, check_decode_cost, decode_limits, get_codec

FRAME_OVERHEAD = 16     # bytes a frame adds besides its payload at most: D framing (<= 10) and its index entry
MAX_PASSES = 4          # --kbps: encodes of the whole clip at most
UNDERSHOOT = 0.8        # --kbps with P-frames: a clip under this fraction of the target is coded again, higher


@dataclass
class ClipSummary:
    frames: int = 0
    file_bytes: int = 0
    payload_bytes: list[int] = field(default_factory=list)
    fps: tuple[int, int] = (25, 1)
    encode_s: float = 0.0
    psnr_y: list[float] = field(default_factory=list)       # per frame, where the encoder knows its output
    psnr_yuv: list[float] = field(default_factory=list)
    attempts: int = 1

    @property
    def kbps(self) -> float:
        return self.file_bytes * 8 * self.fps[0] / self.fps[1] / max(self.frames, 1) / 1000

    def as_dict(self) -> dict[str, Any]:
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        return {"frames": self.frames, "file_bytes": self.file_bytes, "kbps": round(self.kbps, 3),
                "fps": list(self.fps), "encode_s": round(self.encode_s, 3),
                "encode_fps": round(self.frames / self.encode_s, 3) if self.encode_s else None,
                "bytes_per_frame": {"min": min(self.payload_bytes, default=0),
                                    "mean": mean(self.payload_bytes), "max": max(self.payload_bytes, default=0)},
                "psnr_y": mean(self.psnr_y), "psnr_yuv": mean(self.psnr_yuv), "attempts": self.attempts}


def video_chunk(info, gop: int = 1, planar: bool = False) -> dict[str, Any]:
    """The container's 'v' map for a clip described by a :class:`diffcodec.video.VideoInfo`."""
    return {"fps": list(info.fps), "chroma": info.chroma, "matrix": info.matrix, "range": info.range,
            "coded": "yuv" if planar else "rgb", **({"gop": gop} if gop > 1 else {})}


def codes_planes(codec: Codec, chroma: str, planar: bool | None = None) -> bool:
    """Whether a ``chroma`` clip reaches ``codec`` as YCbCr planes (``planar`` None: wherever the codec can)."""
    able = chroma in codec.planar_layouts
    if planar and not able:
        raise UsageError(f"{codec.name} does not code {chroma} clips as YCbCr planes"
                         + (f" (it does: {', '.join(codec.planar_layouts)})" if codec.planar_layouts else ""))
    return able if planar is None else planar


def frame_budget_bpp(kbps: float, info) -> float:
    """Bits per pixel one frame may spend so that the clip lands at ``kbps``."""
    frame_bits = kbps * 1000 * info.fps[1] / info.fps[0]
    return (frame_bits - 8 * FRAME_OVERHEAD) / (info.width * info.height)


def _encode_pass(reader, codec: Codec, method: str, preset: str | None, params: dict, device_params: dict,
                 on_frame: Callable[[int], None] | None, gop: int, planar: bool,
                 stream_layouts: tuple[str, ...] | None = None) -> tuple[container.ClipWriter, ClipSummary]:
    info = reader.info
    channels = 1 if info.chroma == "mono" else 3
    writer = container.ClipWriter(method, info.width, info.height, channels, video_chunk(info, gop, planar),
                                  container.PLANAR_PIXEL_FORMATS[info.chroma] if planar else None)
    summary = ClipSummary(fps=info.fps)

    def coded(payload_bytes: int, planes, recon) -> None:
        summary.payload_bytes.append(payload_bytes)
        if recon is not None:
            _track_quality(summary, planes, recon, info)
        summary.frames += 1
        if on_frame is not None:
            on_frame(summary.frames)

    t0 = time.perf_counter()
    try:
        if stream_layouts is not None:
            _code_stream(reader, codec, writer, preset, params, device_params, gop, planar, coded)
        else:
            _code_frames(reader, codec, writer, preset, params, device_params, gop, planar, coded)
    except BaseException:
        writer.close()
        raise
    summary.encode_s = time.perf_counter() - t0
    if summary.frames == 0:
        writer.close()
        raise UsageError("the clip has no frames")
    return writer, summary


def _code_frames(reader, codec: Codec, writer: container.ClipWriter, preset: str | None, params: dict,
                 device_params: dict, gop: int, planar: bool, coded: Callable) -> None:
    """Frame by frame: a keyframe every ``gop`` frames (frame 0 fixes the parameters), P-frames between."""
    info = reader.info
    fixed: tuple[str | None, dict] | None = None
    key: Encoded | None = None
    reference = None
    for n, frame in enumerate(reader):
        image = (yuv.PlanarFrame(frame.planes, info.chroma, info.range) if planar
                 else yuv.planes_to_rgb(frame.planes, info))
        if key is not None and n % gop:
            payload, recon, reference = codec.compress_predicted(image, reference, key, **device_params)
            coded(writer.add_predicted(payload), frame.planes, recon)
        else:
            frame_preset, frame_params = (preset, params) if fixed is None else fixed
            encoded, recon, reference = codec.compress_keyframe(image, frame_preset, predicted=gop > 1,
                                                                **frame_params, **device_params)
            if fixed is None:
                fixed, key = codec.clip_params(encoded), encoded
            coded(writer.add(encoded), frame.planes, recon)


def _code_stream(reader, codec: Codec, writer: container.ClipWriter, preset: str | None, params: dict,
                 device_params: dict, gop: int, planar: bool, coded: Callable) -> None:
    """A codec that codes the clip as one stream (:meth:`Codec.open_clip_encoder`): frames come out some frames
    after they go in; the source planes wait for them in a queue."""
    from collections import deque

    info = reader.info
    sources: deque = deque()

    def take(frames) -> None:
        for keyframe, data, recon in frames:
            coded(writer.add(data) if keyframe else writer.add_predicted(data), sources.popleft(), recon)

    encoder = codec.open_clip_encoder(info, gop, preset, dict(params), **device_params)
    for frame in reader:
        sources.append(frame.planes)
        take(encoder.push(yuv.PlanarFrame(frame.planes, info.chroma, info.range) if planar
                          else yuv.planes_to_rgb(frame.planes, info)))
    take(encoder.flush())


def _track_quality(summary: ClipSummary, planes, recon: np.ndarray, info) -> None:
    from diffcodec import metrics

    out = recon if isinstance(recon, tuple) else yuv.rgb_to_planes(recon, info.chroma, matrix=info.matrix,
                                                                    color_range=info.range)
    psnr = metrics.psnr_planes(planes, out)
    summary.psnr_y.append(psnr["y"])
    summary.psnr_yuv.append(psnr["yuv"])


def encode_clip(reader, out: BinaryIO | Callable[[Callable[[BinaryIO], Any]], Any], method: str = "opq",
                preset: str | None = None, *, kbps: float | None = None, gop: int | None = None,
                planar: bool | None = None, on_frame: Callable[[int], None] | None = None,
                **params) -> dict[str, Any]:
    """Code every frame of ``reader`` (a :class:`diffcodec.video.VideoReader`) and write one `.ddc` clip.

    ``out`` is a binary file object, or a function that takes a writer callback (e.g.
    ``lambda w: atomic.write_with(path, w)``), so the file appears only when complete. ``kbps`` is the target
    rate of the whole clip: frame 0 is coded at the matching ``bpp`` and sets the parameters; when the clip
    lands over the target (or, with P-frames, under ``UNDERSHOOT`` of it) and the reader can seek back, it is
    coded again at a proportionally other rate (at most ``MAX_PASSES`` passes; the largest pass at or under the
    target is written), else a UsageError says what it reached. ``gop``: a keyframe every ``gop`` frames, P-frames
    between (1: every frame a keyframe; above 1 only for codecs that ``predict``; None: the codec's
    ``default_gop``). ``planar``: code the frames as YCbCr planes (None: where the codec can, see
    :func:`codes_planes`; False: through RGB, as format 1.1 writers did). Returns the summary (frames,
    kbps, bytes per frame, encode time and, where the codec knows its output, PSNR-Y / PSNR-YUV)."""
    codec = get_codec(method)
    gop = codec.default_gop if gop is None else gop
    if not (type(gop) is int and 1 <= gop <= container.MAX_FRAMES):
        raise UsageError(f"--gop must be a whole number of frames from 1, got {gop!r}")
    if gop > 1 and not codec.predicts:
        raise UsageError(f"{method} codes every frame alone: use --gop 1 (methods with P-frames: "
                         f"{', '.join(sorted(n for n, c in available().items() if c.predicts))})")
    if preset is not None and preset not in codec.presets:
        raise UsageError(f"unknown {method} preset {preset!r} (available: {', '.join(codec.presets)})")
    device_params = {k: params.pop(k) for k in ("device",) if k in params}
    codec.check_encode_options({**params, **device_params})
    if kbps is not None:
        if not (isinstance(kbps, (int, float)) and kbps > 0):
            raise UsageError(f"--kbps must be a positive number, got {kbps!r}")
        if preset is not None or params.get("bpp") is not None:
            raise UsageError("give --kbps or a preset / --bpp, not both")
        if "bpp" not in codec.encode_options:
            raise UsageError(f"{method} has no rate control (--bpp), so it cannot aim at --kbps")
    info = reader.info
    stream_layouts = codec.clip_stream_layouts(params, gop)
    if stream_layouts is None:
        planar = codes_planes(codec, info.chroma, planar)
    elif info.chroma in stream_layouts and planar is not False:
        planar = True
    elif "rgb" in stream_layouts and not planar:
        planar = False
    else:
        layouts = [x for x in stream_layouts if x != "rgb"]
        raise UsageError(f"{method} with these options codes {' or '.join(layouts)} clips as YCbCr planes; "
                         f"this one is {info.chroma}" + (" (and --planar is off)" if planar is False else ""))
    attempts, scale = 0, 1.0
    best: tuple[container.ClipWriter, ClipSummary] | None = None       # the largest pass at or under --kbps
    sizes: set[int] = set()
    try:
        while True:
            attempts += 1
            pass_params = dict(params)
            if kbps is not None:
                bpp = frame_budget_bpp(kbps, info) * scale
                if bpp <= 0:
                    raise UsageError(f"--kbps {kbps:g} leaves no bits for a {info.width}x{info.height} frame at "
                                     f"{info.fps[0]}/{info.fps[1]} fps")
                pass_params["bpp"] = bpp
            writer, summary = _encode_pass(reader, codec, method, preset, pass_params, device_params, on_frame, gop,
                                           planar, stream_layouts)
            summary.file_bytes, summary.attempts = writer.size(), attempts
            if kbps is None:
                best = (writer, summary)
                break
            repeated = summary.file_bytes in sizes
            sizes.add(summary.file_bytes)
            if summary.kbps <= kbps:
                if best is None or summary.file_bytes > best[1].file_bytes:
                    if best is not None:
                        best[0].close()
                    best = (writer, summary)
                else:
                    writer.close()
                # frame 0's budget assumes every frame costs alike; P-frames cost less, so a clip with them
                # lands under the target and is coded again at a higher rate (an intra clip is done here)
                if gop == 1 or summary.kbps >= UNDERSHOOT * kbps or repeated:
                    break
            else:
                writer.close()
            if attempts >= MAX_PASSES or repeated or not _rewind(reader):
                if best is not None:
                    break
                why = "; the input cannot be read again" if attempts < MAX_PASSES and not repeated else ""
                raise UsageError(f"--kbps {kbps:g}: the clip landed at {summary.kbps:.1f} kbps after {attempts} "
                                 f"pass(es) ({method} cannot go lower with fixed parameters per clip{why})")
            scale *= kbps / summary.kbps * 0.97
        writer, summary = best
        summary.attempts = attempts
        if hasattr(out, "write"):
            writer.write(out)
        else:
            out(writer.write)
        return summary.as_dict()
    finally:
        if best is not None:
            best[0].close()


def _rewind(reader) -> bool:
    try:
        reader.seek(0)
        return True
    except (UsageError, OSError, AttributeError):
        return False


def is_clip(stream: container.StreamReader) -> bool:
    return stream.video is not None or (stream.header is not None and stream.header.frames > 1)


def clip_video_info(stream: container.StreamReader):
    """The :class:`diffcodec.video.VideoInfo` a decoded clip is written with (a file without a 'v' chunk: 25 fps,
    4:4:4 or mono, BT.601 limited)."""
    from diffcodec.video import VideoInfo

    h = stream.header
    assert h is not None
    v = stream.video or {"fps": [25, 1], "chroma": "mono" if h.pixel.channels == 1 else "444",
                         "matrix": "bt601", "range": "limited"}
    return VideoInfo(h.width, h.height, tuple(v["fps"]), v["chroma"], frames=h.frames, matrix=v["matrix"],
                     range=v["range"])


def decode_frames(stream: container.StreamReader, first: int = 0, stop: int | None = None, *,
                  max_pixels: int | None = None, max_work: int | None = None,
                  **options) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """(frame number, YUV planes) of frames ``first`` .. ``stop - 1`` of a clip, decoded one at a time from the
    nearest keyframe at or before ``first`` (every frame of an intra clip is one); P-frames before ``first``
    are decoded (they are what the next frame is predicted from) but not returned."""
    h = stream.header
    assert h is not None
    codec = get_codec(h.method, for_decoding=True)
    codec.check_decode_options(options)
    # the decode limits (max_pixels, max_work: as api.decode) per frame, from the header, before any frame
    check_decode_cost(codec, Encoded(model=h.model, model_sha=h.model_sha, params=h.params, rng=h.rng), h.height,
                      h.width, options, decode_limits(max_pixels, max_work))
    stop = h.frames if stop is None else min(stop, h.frames)
    if not 0 <= first < stop:
        raise UsageError(f"--frames {first}:{stop} selects no frame of this {h.frames}-frame clip")
    info = clip_video_info(stream)
    chroma = container.planar_chroma(h.pixel_format)
    planar = None if chroma is None else (chroma, info.range)
    index = stream.seek_frame(first)
    key = Encoded(model=h.model, model_sha=h.model_sha, params=h.params, rng=h.rng)
    reference = None
    for ctype, payload in stream.frames():
        if index >= stop:
            break
        # frames before `first` only build the reference: decode them without output-only options
        opts = options if index >= first else {k: v for k, v in options.items() if k == "device"}
        if ctype == container.CHUNK_DATA:
            keyframe = Encoded(model=h.model, model_sha=h.model_sha, params=h.params, rng=h.rng, chunks=[payload])
            if index < first and not codec.predicts:
                index += 1
                continue
            out, reference = codec.decompress_keyframe(keyframe, h.height, h.width, h.pixel.channels,
                                                       planar=planar, **opts)
        else:
            out, reference = codec.decompress_predicted(payload, reference, key, h.height, h.width,
                                                        h.pixel.channels, planar=planar, **opts)
        if index >= first:
            yield index, (out if planar is not None
                          else yuv.rgb_to_planes(out, info.chroma, matrix=info.matrix, color_range=info.range))
        index += 1
