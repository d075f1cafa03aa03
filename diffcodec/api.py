"""The Python API: image in, `.ddc` bytes out, and back. The CLI is a thin layer over these functions.

    data = encode(image, method="opq", preset="opq-32-8-8")   # image: uint8 array, PIL image, path or bytes
    pixels = decode(data)                                      # uint8 (H, W, 3), or (H, W) for grayscale
    meta = info(data)                                          # sizes, bpp, method, parameters
"""

from __future__ import annotations

import numpy as np

from diffcodec import container, images
from diffcodec.clips import decode_frames, encode_clip  # noqa: F401  (part of the API: video)
from diffcodec.device import DEVICES, resolve_device  # noqa: F401  (part of the API)
from diffcodec.errors import CorruptInputError, UsageError
from diffcodec.methods import Codec, available, get_codec


def _encode_array(arr: np.ndarray, method: str, preset: str | None, params: dict) -> tuple[bytes, np.ndarray | None]:
    codec = get_codec(method)
    if preset is not None and preset not in codec.presets:
        raise UsageError(f"unknown {method} preset {preset!r} (available: {', '.join(codec.presets)})")
    codec.check_encode_options(params)
    encoded, recon = codec.compress_with_reconstruction(arr, preset, **params)
    height, width, channels = arr.shape
    return container.frame(method, encoded, width, height, channels), recon


def encode(image, method: str = "opq", preset: str | None = None, **params) -> bytes:
    """Encode an image into `.ddc` bytes. `preset` picks a rate point of the method (see `methods()`)."""
    arr = images.as_image_array(image)
    return _encode_array(arr, method, preset, params)[0]


def encode_with_reconstruction(image, method: str = "opq", preset: str | None = None, **params):
    """Like :func:`encode`, also returning the encoder's own reconstruction (uint8, shaped like decode())
    when the method can produce it without decoding; else None."""
    arr = images.as_image_array(image)
    data, recon = _encode_array(arr, method, preset, params)
    return data, (None if recon is None else _user_shape(recon))


def _user_shape(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] if arr.shape[2] == 1 else arr


def read(data: bytes) -> container.Container:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"decode() takes the bytes of a .ddc file, got {type(data).__name__}")
    return container.read_container(bytes(data))


def decode(data: bytes, **options) -> np.ndarray:
    """Decode `.ddc` bytes to uint8 pixels: (H, W, 3) for colour, (H, W) for grayscale."""
    c = read(data)
    h = c.header
    codec = get_codec(h.method, for_decoding=True)
    codec.check_decode_options(options)
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
        meta["video"] = {**c.video, "keyframes": len(c.index or []), "duration_s": h.frames / fps,
                         "kbps": total * 8 * fps / h.frames / 1000,
                         "bytes_per_frame": {"min": min(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}}
    codec = available().get(h.method)
    details = codec().describe(h.params, c.payloads) if codec is not None else {}
    if details:         # e.g. ddcm: the mode and the payload's split into base-layer and index bytes
        meta[h.method] = details
    return meta


def extract_base(data: bytes) -> tuple[str, bytes]:
    """(suffix, bytes) of the base layer of a layered file (ddcm ``--base``): a JPEG / WebP / AVIF file as stored,
    or an opq `.ddc`. Decoding it gives exactly the image the refinement started from."""
    c = read(data)
    h = c.header
    codec = get_codec(h.method, for_decoding=True)
    return codec.base_layer(c.encoded, h.height, h.width, h.pixel.channels)


def codec_of(data: bytes) -> Codec:
    """The codec that decodes these `.ddc` bytes (ask it what it takes: ``decode_options``)."""
    return get_codec(read(data).header.method, for_decoding=True)


def generate(method: str, height: int, width: int, **options) -> tuple[bytes, np.ndarray]:
    """Compressed generation (methods whose codec ``can_generate``): the `.ddc` bytes of a sample and the sample
    (uint8 (height, width, 3)); decoding the bytes reproduces it."""
    codec = get_codec(method)
    if not codec.can_generate:
        able = [name for name, cls in sorted(available().items()) if cls.can_generate]
        raise UsageError(f"{method} cannot generate (methods that can: {', '.join(able) or 'none'})")
    encoded, sample = codec.generate(height, width, **options)
    return container.frame(method, encoded, width, height, 3), sample


def methods() -> dict[str, dict]:
    """Every method with its presets, default preset and the options it takes."""
    return {
        name: {"presets": dict(cls.presets), "default_preset": cls.default_preset, "doc": (cls.__doc__ or "").strip(),
               "encode_options": dict(cls.encode_options), "decode_options": dict(cls.decode_options),
               "can_generate": cls.can_generate}
        for name, cls in sorted(available().items())
    }
