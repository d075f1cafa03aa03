"""The Python API: image in, `.ddc` bytes out, and back. The CLI is a thin layer over these functions.

    data = encode(image, method="opq", preset="opq-32-8-8")   # image: uint8 array, PIL image, path or bytes
    pixels = decode(data)                                      # uint8 (H, W, 3), or (H, W) for grayscale
    meta = info(data)                                          # sizes, bpp, method, parameters
"""

from __future__ import annotations

import warnings

import numpy as np

from diffcodec import container, images
from diffcodec.clips import decode_frames, encode_clip  # noqa: F401  (part of the API: video)
from diffcodec.device import DEVICES, resolve_device  # noqa: F401  (part of the API)
from diffcodec.errors import CorruptInputError, LimitError, UsageError
from diffcodec.methods import (
    Codec,
    DecodeLimits,
    available,
    check_cost,
    check_decode_cost,
    decode_limits,
    get_codec,
)


def _encode_array(arr: np.ndarray, method: str, preset: str | None, params: dict) -> tuple[bytes, np.ndarray | None]:
    codec = get_codec(method)
    if preset is not None and preset not in codec.presets:
        raise UsageError(f"unknown {method} preset {preset!r} (available: {', '.join(codec.presets)})")
    codec.check_encode_options(params)
    encoded, recon = codec.compress_with_reconstruction(arr, preset, **params)
    height, width, channels = arr.shape
    try:        # say so when a decoder with the default limits will refuse what we just wrote
        check_decode_cost(codec, encoded, height, width, {}, DecodeLimits())
    except LimitError as e:
        warnings.warn(f"the file is over the default decode limits, decoders will need them raised: {e}",
                      stacklevel=3)
    return container.frame(method, encoded, width, height, channels), recon


def rate_request(method: str, preset: str | None, params: dict, quality: int | None = None,
                 max_bytes: int | None = None, shape: tuple[int, ...] | None = None) -> tuple[str | None, dict]:
    """(preset, encode options) of an encode asked for by ``quality`` (0..100, the common scale every codec maps
    to its own settings: ``Codec.quality_params``) or ``max_bytes`` (the whole file at or under it:
    ``Codec.size_params``, for an image of ``shape`` (H, W, C)) instead of a preset or the method's own rate
    options; as given when both are None. Options that do not set the rate (e.g. ddcm's space) are kept."""
    if quality is None and max_bytes is None:
        return preset, params
    codec = get_codec(method)
    asked = "--quality" if quality is not None else "--size"
    if quality is not None and max_bytes is not None:
        raise UsageError("give --quality or --size, not both")
    if preset is not None:
        raise UsageError(f"give a preset or {asked}, not both")
    if params.get("bpp") is not None or codec.params_override_preset(params):
        fixed = ", ".join(f"{k}={v}" for k, v in params.items() if k != "device")
        raise UsageError(f"{asked} chooses the rate, which {method} options {fixed} already fix: give one or the "
                         f"other")
    if quality is not None:
        q_preset, q_params = codec.quality_params(quality)
        return q_preset, {**params, **q_params}
    if shape is None or max_bytes is None:
        raise UsageError("--size needs the image's size")
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) > 2 else 1
    return None, {**params, **codec.size_params(max_bytes, height, width, channels)}


def _encode_rated(arr: np.ndarray, method: str, preset: str | None, params: dict, quality: int | None,
                  max_bytes: int | None) -> tuple[bytes, np.ndarray | None]:
    preset, params = rate_request(method, preset, params, quality, max_bytes, arr.shape)
    try:
        data, recon = _encode_array(arr, method, preset, params)
    except UsageError as e:
        if max_bytes is None:
            raise
        raise UsageError(f"--size {max_bytes} bytes: {e}") from None    # the codec speaks of the bpp it was given
    if max_bytes is not None and len(data) > max_bytes:      # each codec's search keeps to it; never ship over
        raise UsageError(f"{method} landed at {len(data)} bytes, over the --size target of {max_bytes}")
    return data, recon


def encode(image, method: str = "opq", preset: str | None = None, *, quality: int | None = None,
           max_bytes: int | None = None, **params) -> bytes:
    """Encode an image into `.ddc` bytes. `preset` picks a rate point of the method (see `methods()`); or
    `quality` (0..100, higher = better, the same scale for every method: :data:`diffcodec.methods.QUALITY_SCALE`)
    or `max_bytes` (the whole file at or under that many bytes) instead."""
    arr = images.as_image_array(image)
    return _encode_rated(arr, method, preset, params, quality, max_bytes)[0]


def encode_with_reconstruction(image, method: str = "opq", preset: str | None = None, *, quality: int | None = None,
                               max_bytes: int | None = None, **params):
    """Like :func:`encode`, also returning the encoder's own reconstruction (uint8, shaped like decode())
    when the method can produce it without decoding; else None."""
    arr = images.as_image_array(image)
    data, recon = _encode_rated(arr, method, preset, params, quality, max_bytes)
    return data, (None if recon is None else _user_shape(recon))


def clip_kbps_for_size(max_bytes: int, info) -> float:
    """The ``encode_clip`` kbps target whose clip lands at or under ``max_bytes`` bytes (``info``: the clip's
    :class:`diffcodec.video.VideoInfo`, which must know its frame count)."""
    if type(max_bytes) is not int or max_bytes < 1:
        raise UsageError(f"the size target must be a positive number of bytes, got {max_bytes!r}")
    if not info.frames:
        raise UsageError("--size on a clip needs its frame count, which this input does not tell (a pipe or an "
                         "ffmpeg source): give --kbps instead")
    return max_bytes * 8 * info.fps[0] / info.fps[1] / info.frames / 1000


def _user_shape(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] if arr.shape[2] == 1 else arr


def read(data: bytes) -> container.Container:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"decode() takes the bytes of a .ddc file, got {type(data).__name__}")
    return container.read_container(bytes(data))


def decode(data: bytes, *, max_pixels: int | None = None, max_work: int | None = None, **options) -> np.ndarray:
    """Decode `.ddc` bytes to uint8 pixels: (H, W, 3) for colour, (H, W) for grayscale.

    A file whose header asks for more than ``max_pixels`` pixels or ``max_work`` pixels x diffusion steps is
    refused (LimitError) before anything is allocated; None: DIFFCODEC_MAX_PIXELS / DIFFCODEC_MAX_WORK, else the
    defaults (:data:`diffcodec.methods.DEFAULT_MAX_PIXELS`, Pillow's; 0 = no limit)."""
    c = read(data)
    h = c.header
    if c.video is not None and (h.frames > 1 or container.planar_chroma(h.pixel_format) is not None):
        raise UsageError("this is a clip: decode it with clips.decode_frames (the CLI: decode to .y4m, .mp4, "
                         "out_%04d.png ...)")
    codec = get_codec(h.method, for_decoding=True)
    codec.check_decode_options(options)
    check_decode_cost(codec, c.encoded, h.height, h.width, options, decode_limits(max_pixels, max_work))
    out = codec.decompress(c.encoded, h.height, h.width, h.pixel.channels, **options)
    if out.shape != (h.height, h.width, h.pixel.channels):
        raise CorruptInputError(f"decoded image has shape {out.shape}, header says {h.height}x{h.width}")
    return _user_shape(out)


def info(data: bytes) -> dict:
    """Everything about a `.ddc` file that can be read without decoding it."""
    c = read(data)
    h = c.header
    pixels = h.width * h.height * h.frames
    total = c.total_bytes
    meta = {
        "format_version": f"{c.version[0]}.{c.version[1]}",
        "method": h.method,
        "model": h.model,
        "model_sha256_prefix": f"{h.model_sha:08x}",
        "params": h.params,
        "rng": h.rng,
        "width": h.width,
        "height": h.height,
        "channels": h.pixel.channels,
        "bit_depth": h.pixel.bit_depth,
        "colour_space": h.pixel.colour_space,
        "frames": h.frames,
        "header_bytes": c.header_bytes,
        "framing_bytes": c.framing_bytes,
        "payload_bytes": c.payload_bytes,
        "file_bytes": total,
        "bpp": total * 8 / pixels,
        "payload_bpp": c.payload_bytes * 8 / pixels,
        "compression_ratio": pixels * h.pixel.channels * h.pixel.bit_depth / 8 / total,
        "metadata": c.metadata,
    }
    if c.video is not None:
        sizes = [len(p) for p in c.payloads]
        fps = c.video["fps"][0] / c.video["fps"][1]
        meta["video"] = {**c.video, "keyframes": len(c.keyframe_payloads),
                         "p_frames": c.predicted_frames, "duration_s": h.frames / fps,
                         "kbps": total * 8 * fps / h.frames / 1000,
                         "bytes_per_frame": {"min": min(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}}
    codec = available().get(h.method)
    details = codec().describe(h.params, c.payloads) if codec is not None else {}
    if details:         # e.g. ddcm: the mode and the payload's split into base-layer and index bytes
        meta[h.method] = details
    return meta


def extract_base(data: bytes) -> tuple[str, bytes]:
    """(suffix, bytes) of the base layer of a layered file (ddcm ``--base``): a JPEG / WebP / AVIF file as stored,
    or an opq `.ddc`. Decoding it gives exactly the image the refinement started from. A base coded in stripes (a
    big image's) is several files: :func:`extract_base_stripes`."""
    suffix, files = extract_base_stripes(data)
    if len(files) != 1:
        raise UsageError(f"this file's base layer is {len(files)} files, one per stripe of rows: "
                         f"use extract_base_stripes")
    return suffix, files[0]


def extract_base_stripes(data: bytes) -> tuple[str, list[bytes]]:
    """(suffix, files) of the base layer of a layered file: as :func:`extract_base`, or for a standard-codec base
    coded in stripes (header ``bh``) one file per stripe, top to bottom; stacked, their images are the base."""
    c = read(data)
    h = c.header
    codec = get_codec(h.method, for_decoding=True)
    return codec.base_layer(c.encoded, h.height, h.width, h.pixel.channels)


def codec_of(data: bytes) -> Codec:
    """The codec that decodes these `.ddc` bytes (ask it what it takes: ``decode_options``)."""
    return get_codec(read(data).header.method, for_decoding=True)


def generate(method: str, height: int, width: int, *, max_pixels: int | None = None, max_work: int | None = None,
             **options) -> tuple[bytes, np.ndarray]:
    """Compressed generation (methods whose codec ``can_generate``): the `.ddc` bytes of a sample and the sample
    (uint8 (height, width, 3)); decoding the bytes reproduces it. The decode limits apply (as :func:`decode`)."""
    codec = get_codec(method)
    if not codec.can_generate:
        able = [name for name, cls in sorted(available().items()) if cls.can_generate]
        raise UsageError(f"{method} cannot generate (methods that can: {', '.join(able) or 'none'})")
    check_cost(f"generating this {method} sample", height, width, codec.generate_steps(**options),
               decode_limits(max_pixels, max_work))
    encoded, sample = codec.generate(height, width, **options)
    return container.frame(method, encoded, width, height, 3), sample


def methods() -> dict[str, dict]:
    """Every method with its presets, default preset (or the options an encode that names no rate gets) and the
    options it takes."""
    return {
        name: {"presets": dict(cls.presets), "default_preset": cls.default_preset,
               "default_options": dict(cls.default_options), "doc": (cls.__doc__ or "").strip(),
               "encode_options": dict(cls.encode_options), "decode_options": dict(cls.decode_options),
               "can_generate": cls.can_generate, "generate_options": dict(cls.generate_options),
               "planar_layouts": list(cls.planar_layouts), "predicts": cls.predicts, "predicts_with": cls.predicts_with,
               "default_gop": cls.default_gop,
               "quality": [{"from": q, "preset": preset, "options": dict(opts)}
                           for q, preset, opts in cls.quality_points],
               "quality_ceiling": cls.quality_ceiling}
        for name, cls in sorted(available().items())
    }


def compare(reference, distorted, metrics: list[str] | None = None) -> dict:
    """Every quality metric of `distorted` against `reference` (arrays, PIL images, paths or encoded image bytes of
    the same size): psnr, psnr_y, ssim, ms_ssim (:mod:`diffcodec.metrics`) and the perceptual `metrics`
    (:mod:`diffcodec.perceptual`; None: SSIMULACRA 2, and Butteraugli when libjxl's tool is found). A named metric
    that cannot run here is an UnsupportedError saying what it needs. A grayscale image compared with a colour one
    is taken as three equal channels."""
    from diffcodec import metrics as _metrics
    from diffcodec import perceptual

    a, b = images.as_image_array(reference), images.as_image_array(distorted)
    if a.shape[:2] != b.shape[:2]:
        raise UsageError(f"images differ in size: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")
    if a.shape[2] != b.shape[2]:
        a, b = (np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x for x in (a, b))
    names = perceptual.default_metrics() if metrics is None else perceptual.check_metrics(metrics)
    out: dict = {"width": int(a.shape[1]), "height": int(a.shape[0])}
    out.update(_metrics.compare(a, b))
    out.update(perceptual.measure(a, b, names))
    return out
