"""The base layer of conditional DDCM (``--base``): an opq bitstream (``opq-16-8-8`` ...), decoded exactly as
`opq` decodes it, or a standard codec's file (``jpeg``, ``webp``, ``avif``, optionally with a quality:
``avif:q40``) stored verbatim and decoded by Pillow; the decoded image is the condition of the refiner prior.
Clips also take an H.264 base (``x264``, ``x264:crf28``: ddcm/h264_base.py), coded over the whole clip.

The header's ``b`` names the base: an opq preset, or ``<codec>:q<quality>`` (the quality is always written,
also when ``--bpp`` chose it, because the refiner is conditioned on it). A standard-codec base of a big image is
coded in stripes of ``bh`` rows, one file per stripe at the same quality (:func:`stripe_rows`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from diffcodec.container import Encoded
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods.ddcm.payload import join_stripes, split_stripes

CODEC_BASES = ("jpeg", "webp", "avif")
DEFAULT_CODEC_QUALITY = 40          # a standard-codec base without --bpp or :qN
# Standard-codec bases of images over STRIPE_ABOVE_PIXELS are coded in stripes of about STRIPE_PIXELS (whole
# multiples of STRIPE_UNIT rows): the codec's encoder and decoder then hold one stripe, not the image (libavif's
# encoder is the largest buffer of a big photo's encode otherwise). Below it the refiner's tiles set the peak and
# stripes would only cost rate (each stripe is coded without its neighbours).
STRIPE_ABOVE_PIXELS = 1 << 24
STRIPE_PIXELS = 1 << 23
STRIPE_UNIT = 64
MAX_STRIPE = 1 << 15
_CODEC_SPEC = re.compile(r"^(jpeg|webp|avif)(?::q(\d{1,3}))?$")


@dataclass(frozen=True)
class BaseSpec:
    kind: str                       # "opq", "codec" (one of CODEC_BASES) or "x264" (clips only)
    name: str                       # the opq preset, or the codec
    quality: int | None = None      # a codec's quality (None: to be chosen)
    crf: float | None = None        # an x264 base's CRF (None: to be chosen)

    @property
    def header(self) -> str:
        """The header's ``b`` value."""
        if self.kind == "opq":
            return self.name
        if self.kind == "x264":
            from diffcodec.methods.ddcm.h264_base import header_name

            if self.crf is None:
                raise ValueError("an H.264 base is written with its CRF")
            return header_name(self.crf)
        if self.quality is None:
            raise ValueError("a standard-codec base is written with its quality")
        return f"{self.name}:q{self.quality}"


@dataclass
class BaseLayer:
    spec: BaseSpec          # what the base is (with the quality a codec base was coded at)
    sha: int                # first 4 bytes of the opq codebook file's sha256 (0 for a standard codec)
    data: bytes             # opq's payload (its one D chunk), or the standard codec's whole file
    image: np.ndarray       # the decoded base image, uint8 (H, W, C)

    @property
    def preset(self) -> str:
        return self.spec.header


def parse_base(base, err=UsageError) -> BaseSpec:
    """``opq-16-8-8`` / ``jpeg`` / ``avif:q40`` -> BaseSpec (``err`` for anything else)."""
    from diffcodec.methods.opq import PRESETS as OPQ_PRESETS

    if isinstance(base, str) and base in OPQ_PRESETS:
        return BaseSpec("opq", base)
    from diffcodec.methods.ddcm import h264_base

    if h264_base.is_h264_base(base):
        return BaseSpec("x264", "x264", crf=h264_base.parse_crf(base, err=err))
    m = _CODEC_SPEC.match(base) if isinstance(base, str) else None
    if m is None:
        raise err(f"unknown --base {base!r}: an opq preset ({', '.join(OPQ_PRESETS)}) or a standard codec "
                  f"({', '.join(CODEC_BASES)}, optionally with a quality, e.g. avif:q40); clips also take x264 "
                  f"(optionally with a CRF, e.g. x264:crf28)")
    quality = None if m.group(2) is None else int(m.group(2))
    if quality is not None:
        from diffcodec import baselines

        b = baselines.get_baseline(m.group(1))
        if not b.qmin <= quality <= b.qmax:
            raise err(f"{m.group(1)} base quality must be in {b.qmin}..{b.qmax}, got {quality}")
    return BaseSpec("codec", m.group(1), quality)


def check_base(base) -> str:
    parse_base(base)
    return base


def stripe_rows(height: int, width: int) -> int:
    """The stripe height (header ``bh``) the encoder gives a standard-codec base of this size; 0: one file."""
    if height * width <= STRIPE_ABOVE_PIXELS:
        return 0
    rows = max(STRIPE_UNIT, STRIPE_PIXELS // width // STRIPE_UNIT * STRIPE_UNIT)
    return rows if rows < height else 0


def stripe_bounds(height: int, rows: int) -> list[tuple[int, int]]:
    """The (first, end) rows of each stripe, top to bottom (the last one cut at the image's edge)."""
    return [(r, min(r + rows, height)) for r in range(0, height, rows)]


def code_base(image: np.ndarray, base: str, budget_bytes: int | None = None, stripe: int = 0) -> BaseLayer:
    """Code ``image`` (H, W, 1 or 3) as the base layer ``base``; the base image is the decoder's own decode of
    the bytes. A standard-codec base without a quality gets the highest quality whose file is at most
    ``budget_bytes`` (when given; else DEFAULT_CODEC_QUALITY); with ``stripe`` it is one file per stripe of that
    many rows, all at one quality, and the budget is their total with the length prefixes."""
    spec = parse_base(base)
    h, w, c = image.shape
    if spec.kind == "x264":
        raise UsageError("an x264 base layer codes clips (a video input), not single images: use jpeg, webp, avif "
                         "or an opq preset")
    if spec.kind == "opq":
        from diffcodec.methods.opq import OPQCodec

        enc = OPQCodec().compress(image, spec.name)
        if len(enc.chunks) != 1:
            raise ModelError("opq produced more than one payload chunk")
        return BaseLayer(spec, enc.model_sha, enc.chunks[0], decode_base(enc.chunks[0], spec.header, enc.model_sha,
                                                                          h, w, c))
    from diffcodec import baselines

    if stripe and spec.kind != "codec":
        raise UsageError(f"only a standard-codec base is coded in stripes, not {base}")
    pixels = image[..., 0] if c == 1 else image
    codec = baselines.get_baseline(spec.name)

    def encode(pixels: np.ndarray, quality: int) -> bytes:
        if not stripe:
            return codec.encode(pixels, quality)
        return join_stripes([codec.encode(pixels[r0:r1], quality) for r0, r1 in stripe_bounds(h, stripe)])

    if spec.quality is not None:
        data = encode(pixels, spec.quality)
        quality = spec.quality
    elif budget_bytes is not None:
        result = baselines.encode_at_size(spec.name, pixels, max(budget_bytes, 0), encode=encode)
        if result.over_target:
            from diffcodec.methods.ddcm.params import BelowBaseLayerError

            raise BelowBaseLayerError(f"--bpp is below the smallest {spec.name} base layer: {result.bytes} bytes at "
                                      f"quality {result.quality} for this {w}x{h} image")
        data, quality = result.data, result.quality
    else:
        quality = DEFAULT_CODEC_QUALITY
        data = encode(pixels, quality)
    coded = BaseSpec("codec", spec.name, quality)
    return BaseLayer(coded, 0, data, decode_base(data, coded.header, 0, h, w, c, stripe))


def opq_base_encoded(preset: str, sha: int, data: bytes | None = None) -> Encoded:
    """The opq encoding an opq base layer ``preset`` (codebook sha prefix ``sha``) is: its payload ``data``, or
    with None only the header a clip's opq frames share."""
    return Encoded(model=preset.removeprefix("opq-"), model_sha=sha, chunks=[] if data is None else [data])


def decode_base(data: bytes, base: str, sha: int, height: int, width: int, channels: int,
                stripe: int = 0) -> np.ndarray:
    """The decoded base image uint8 (height, width, channels), from one file or, with ``stripe`` (header ``bh``),
    one file per stripe of that many rows, decoded into its rows; a base that does not decode to that shape is a
    corrupt file."""
    spec = parse_base(base, err=lambda m: CorruptInputError(f"corrupt ddcm header: {m}"))
    if stripe:
        if spec.kind != "codec" or stripe >= height:
            raise CorruptInputError(f"corrupt ddcm header: base stripes of {stripe} rows on a {base} base of "
                                    f"{height} rows")
        bounds = stripe_bounds(height, stripe)
        out = np.empty((height, width, channels), np.uint8)
        for i, ((r0, r1), part) in enumerate(zip(bounds, split_stripes(data, len(bounds)))):
            out[r0:r1] = _decode_codec_file(part, spec.name, r1 - r0, width, channels, f"stripe {i}: ")
        return out
    if spec.kind == "x264":
        raise CorruptInputError("corrupt ddcm file: an H.264 base layer outside a clip's frames")
    if spec.kind == "opq":
        from diffcodec.methods.opq import OPQCodec

        return OPQCodec().decompress(opq_base_encoded(spec.name, sha, data), height, width, channels)
    return _decode_codec_file(data, spec.name, height, width, channels)


def _decode_codec_file(data: bytes, name: str, height: int, width: int, channels: int, where: str = "") -> np.ndarray:
    from diffcodec import baselines

    try:
        img = baselines.get_baseline(name).decode(bytes(data), channels=channels, size=(width, height))
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptInputError(f"corrupt ddcm base layer: {where}the {name} file does not decode ({e})") from None
    if img.ndim == 2:
        img = img[..., None]
    if img.shape != (height, width, channels):
        raise CorruptInputError(f"corrupt ddcm base layer: {where}the {name} file is {img.shape[1]}x{img.shape[0]}, "
                                f"the header says {width}x{height}")
    return img
