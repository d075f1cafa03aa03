"""The codec contract and the method registry (stable method names -> codec classes, the CompressAI `models`
registry idea).

A codec turns a uint8 image into an :class:`Encoded` (model id, coding parameters, payload chunks);
:func:`diffcodec.container.frame` wraps that in the `.ddc` container. Callers never name a method to decide
what to do: they ask the codec (:attr:`Codec.encode_options`, :attr:`Codec.decode_options`,
:attr:`Codec.can_generate`, :meth:`Codec.describe`). Method names and model ids are part of the file format:
never rename one, add a new one instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from diffcodec.container import Encoded
from diffcodec.errors import LimitError, UnsupportedError, UsageError

__all__ = ["Codec", "DecodeLimits", "Encoded", "available", "check_cost", "check_decode_cost", "decode_limits",
           "get_codec", "register"]


# What the common quality knob (-q/--quality 0..100, higher = better) means for every method: quality Q asks for
# about the MS-SSIM that Pillow's JPEG (4:2:0, optimised Huffman) reaches at quality Q, as a mean over Kodak24.
# Each codec maps Q to the smallest of its settings whose Kodak24 mean MS-SSIM reaches that (Codec.quality_points;
# measured: benchmarks/quality_scale.py, benchmarks/RESULTS.md "One quality scale"); where even its best setting
# is below, it gives its best setting (Codec.quality_ceiling).
QUALITY_SCALE = "about the MS-SSIM of Pillow's JPEG (4:2:0) at the same quality, as Kodak24 means"


class Codec:
    """Base class: `compress()` / `decompress()` over uint8 arrays of shape (H, W, C), C in {1, 3}.

    A subclass declares what it accepts; the CLI and the API pass exactly those options and nothing else."""

    name: ClassVar[str]
    presets: ClassVar[dict[str, str]]        # preset name -> one-line description
    default_preset: ClassVar[str]
    default_options: ClassVar[dict[str, Any]] = {}  # options an encode that names no rate gets (instead of the
                                                    # default preset)
    encode_options: ClassVar[dict[str, str]] = {}   # option -> one-line description (besides the preset)
    decode_options: ClassVar[dict[str, str]] = {}
    header_keys: ClassVar[dict[str, str]] = {}      # the header `params` / `rng` keys it writes -> meaning
    can_generate: ClassVar[bool] = False            # whether :meth:`generate` exists (compressed generation)
    generate_options: ClassVar[dict[str, str]] = {}  # option -> one-line description, for :meth:`generate`
    predicts: ClassVar[bool] = False                # whether it codes P-frames of clips (``gop`` > 1)
    default_gop: ClassVar[int] = 1                  # keyframe interval of clips when the caller gives none
    predicts_with: ClassVar[str] = ""               # the modes that code P-frames, where not all of them do
    planar_layouts: ClassVar[tuple[str, ...]] = ()  # YCbCr layouts ("420", "444") whose clip frames it codes as
                                                    # planes (yuv.PlanarFrame), skipping the RGB round trip

    # ---------------------------------------------------------------- what a codec accepts
    @classmethod
    def takes_device(cls) -> bool:
        """Whether the codec runs a network (and so takes ``device`` when encoding)."""
        return "device" in cls.encode_options

    def check_encode_options(self, params: dict[str, Any]) -> None:
        unknown = set(params) - set(self.encode_options)
        if unknown:
            raise UsageError(f"{self.name} takes no parameter(s) {', '.join(sorted(unknown))}"
                             + (f" (known: {', '.join(self.encode_options)})" if self.encode_options else ""))

    def check_decode_options(self, options: dict[str, Any]) -> None:
        """Raise UsageError for options this codec does not decode with (also for combinations it refuses)."""
        unknown = set(options) - set(self.decode_options)
        if unknown:
            raise UsageError(f"{self.name} decoding takes no option(s) {', '.join(sorted(unknown))}")

    def params_override_preset(self, params: dict[str, Any]) -> bool:
        """Whether these encode parameters fix everything a preset would set (a benchmark then runs them once,
        at the default preset, instead of once per preset)."""
        return False

    # ---------------------------------------------------------------- the common quality and size knobs
    # quality_points: rows (lowest quality, preset, encode options) in increasing quality; quality Q takes the
    # last row whose lowest quality is <= Q (:data:`QUALITY_SCALE`). From quality_ceiling up the method cannot
    # reach the scale any more and gives its best setting.
    quality_points: ClassVar[tuple[tuple[int, str | None, dict[str, Any]], ...]] = ()
    quality_ceiling: ClassVar[int] = 101            # 101: reaches the whole scale

    def quality_params(self, quality: int) -> tuple[str | None, dict[str, Any]]:
        """(preset, encode options) for the common quality knob (0..100, higher = better; :data:`QUALITY_SCALE`),
        the same for every image."""
        if type(quality) is not int or not 0 <= quality <= 100:
            raise UsageError(f"quality must be an integer in 0..100, got {quality!r}")
        if not self.quality_points:
            raise UsageError(f"{self.name} has no quality scale: give one of its presets ({', '.join(self.presets)})")
        row = [r for r in self.quality_points if r[0] <= quality][-1]
        return row[1], dict(row[2])

    def size_params(self, max_bytes: int, height: int, width: int, channels: int) -> dict[str, Any]:
        """Encode options that make the whole file land at or under ``max_bytes`` bytes. Default: a codec with a
        ``bpp`` option gets that bpp (its search keeps the whole file at or under it)."""
        if type(max_bytes) is not int or max_bytes < 1:
            raise UsageError(f"the size target must be a positive number of bytes, got {max_bytes!r}")
        if "bpp" not in self.encode_options:
            raise UsageError(f"{self.name} has no rate control, so it cannot aim at a file size")
        return {"bpp": max_bytes * 8 / (height * width)}

    def encode_setting(self, preset: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """What an encode with (preset, params) is fixed to before it sees the image; equal answers code every
        image alike (``bench`` runs such settings once). Default: the preset (the default one for None) and the
        options, or the options alone when they replace the preset (:meth:`params_override_preset`)."""
        given = {k: v for k, v in params.items() if v is not None and k != "device"}
        if self.params_override_preset(given):
            return given
        return {"preset": preset or self.default_preset, **given}

    def coded_setting(self, model: str, params: dict[str, Any]) -> str:
        """A short label of what a file was coded with, from its header's model and params (equal for files
        coded alike): tables label their rows with it. Default: the model and the params as key=value."""
        items = " ".join(f"{k}={v}" for k, v in sorted(params.items(), key=lambda kv: str(kv[0]))
                         if not isinstance(v, (bytes, bytearray)))
        return f"{model} {items}".strip()

    def clip_params(self, encoded: Encoded) -> tuple[str | None, dict[str, Any]]:
        """(preset, encode options) that code another frame with exactly ``encoded``'s header (a clip has one
        header: frame 0 chooses, every later frame is coded with these)."""
        raise UnsupportedError(f"{self.name} cannot code clips")

    # ---------------------------------------------------------------- coding
    def rgb_input(self, image: np.ndarray) -> np.ndarray:
        """``image`` checked to be uint8 (H, W, 1) or (H, W, 3), as (H, W, 3) RGB (grey repeated): the input of
        a codec whose networks take RGB."""
        if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
            raise UsageError(f"{self.name} codes uint8 images of shape (H, W, 1) or (H, W, 3)")
        from diffcodec.data import gray_to_rgb

        return gray_to_rgb(image)

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        raise NotImplementedError

    def compress_with_reconstruction(self, image: np.ndarray, preset: str | None = None,
                                     **params) -> tuple[Encoded, np.ndarray | None]:
        """The encoding and the encoder's own reconstruction (uint8, shaped like the input) when the method
        knows it without decoding; None otherwise."""
        return self.compress(image, preset, **params), None

    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        raise NotImplementedError

    def decode_steps(self, encoded: Encoded, **options) -> int:
        """How many diffusion-network passes over the image decoding ``encoded`` with ``options`` runs (0: none),
        from the header alone: the decode limits (:func:`check_decode_cost`) weigh a decode as pixels x these
        steps. Must not load models or allocate for the image; may raise the one-line errors :meth:`decompress`
        raises for a malformed header."""
        return 0

    # ---------------------------------------------------------------- clips with P-frames (``predicts`` codecs)
    # A *reference* is the codec's own state after a decoded frame (opaque to callers): what the next P-frame
    # is predicted from. Encoder and decoder derive the same reference from the same frames, so they stay in
    # step; decode options that only change the output (e.g. opq's --refine) never change the reference.
    # A codec with ``planar_layouts`` also takes a yuv.PlanarFrame as ``image`` in the four methods below and then
    # gives back the decoded planes (a tuple of uint8 arrays) instead of an RGB image; its decoders are told so by
    # ``planar`` = (chroma, range) of the clip (pixel formats 2 and 3, formats/ddc-v1.md section 5).
    def compress_keyframe(self, image: np.ndarray, preset: str | None = None, *, predicted: bool = False,
                          **params) -> tuple[Encoded, np.ndarray | None, Any]:
        """:meth:`compress_with_reconstruction` plus the reference it leaves (None for codecs that do not
        predict). ``predicted``: P-frames will follow (a codec that predicts only in some modes picks or
        demands one of those)."""
        encoded, recon = self.compress_with_reconstruction(image, preset, **params)
        return encoded, recon, None

    def compress_predicted(self, image: np.ndarray, reference: Any, key: Encoded,
                           **params) -> tuple[bytes, np.ndarray, Any]:
        """A P-frame of a clip whose header is ``key``'s: (payload, reconstruction, the new reference)."""
        raise UnsupportedError(f"{self.name} codes every frame alone (no P-frames)")

    def clip_stream_layouts(self, params: dict[str, Any], gop: int) -> tuple[str, ...] | None:
        """Where these encode options and keyframe interval code a clip as one stream (:meth:`open_clip_encoder`:
        e.g. over a video codec's base layer, or a latent per group of frames, whose frames come out later than
        they go in), what its frames come in as: the YCbCr layouts it takes as planes, or ``("rgb",)``; None:
        frame by frame (:meth:`compress_keyframe`, :meth:`compress_predicted`)."""
        return None

    def open_clip_encoder(self, info: Any, gop: int, preset: str | None, params: dict[str, Any],
                          **device_params) -> Any:
        """The stream encoder of a clip (``info``: its :class:`diffcodec.video.VideoInfo`): ``push(frame)`` (a
        PlanarFrame, or an RGB array where the stream takes ``"rgb"``) and ``flush()`` each give a list of coded
        frames ``(keyframe, Encoded or P-frame payload, reconstruction or None)`` in order (the reconstruction
        shaped as the frame pushed); every frame pushed comes out exactly once."""
        raise UnsupportedError(f"{self.name} codes clips frame by frame")

    def decompress_keyframe(self, encoded: Encoded, height: int, width: int, channels: int, *,
                            planar: tuple[str, str] | None = None, **options) -> tuple[Any, Any]:
        """:meth:`decompress` plus the reference it leaves."""
        if planar is not None:
            from diffcodec.errors import CorruptInputError

            raise CorruptInputError(f"corrupt file: {self.name} clips are not coded as YCbCr planes")
        return self.decompress(encoded, height, width, channels, **options), None

    def decompress_predicted(self, payload: bytes, reference: Any, key: Encoded, height: int, width: int,
                             channels: int, *, planar: tuple[str, str] | None = None,
                             **options) -> tuple[Any, Any]:
        """Decode a P-frame's payload given the previous frame's reference: (image, the new reference)."""
        from diffcodec.errors import CorruptInputError

        raise CorruptInputError(f"corrupt file: {self.name} clips have no P-frames")

    def generate(self, height: int, width: int, **options) -> tuple[Encoded, np.ndarray]:
        """Compressed generation: a sample and the encoding that decodes to it (``can_generate`` codecs)."""
        raise UsageError(f"{self.name} cannot generate")

    def generate_steps(self, **options) -> int:
        """The diffusion steps :meth:`generate` with ``options`` runs (for the limits, as :meth:`decode_steps`)."""
        return 0

    def base_layer(self, encoded: Encoded, height: int, width: int, channels: int) -> tuple[str, list[bytes]]:
        """(file suffix, files) of the standalone file a layered encoding is built on (``extract-base``): one,
        or one per stripe of rows where the base is coded in stripes."""
        raise UsageError(f"{self.name} files have no base layer")

    def describe(self, params: dict, payloads: list[bytes]) -> dict[str, Any]:
        """What `diffcodec info` adds about a file of this method without decoding it (``summary``: one line for
        people); {} when there is nothing to add. Must not raise on malformed values."""
        return {}


# ---------------------------------------------------------------- decode limits (formats/ddc-v1.md, section 11)
# A header can declare an image of up to 2^30 pixels and up to 1000 diffusion steps over it while the payload stays
# a few bytes, so the cost of a decode is bounded from the header, before anything is allocated: pixels, and
# "work" = pixels x the decoder's diffusion steps (at least 1). Raisable per call, or by the environment.
DEFAULT_MAX_PIXELS = 89_478_485                 # Pillow's Image.MAX_IMAGE_PIXELS (1024**3 // 4 // 3), same model
DEFAULT_MAX_WORK = 20 * DEFAULT_MAX_PIXELS      # a 20-step diffusion decode at the pixel limit: every preset of
                                                # every method on a 4K image (20 steps x 8.3 MP) and --bpp's up
                                                # to 200 latent steps there fit; the 32768x32768 bomb does not
MAX_PIXELS_ENV = "DIFFCODEC_MAX_PIXELS"
MAX_WORK_ENV = "DIFFCODEC_MAX_WORK"


@dataclass(frozen=True)
class DecodeLimits:
    """Largest decode allowed: ``max_pixels`` per image (or clip frame), ``max_work`` pixels x diffusion steps;
    0 means no limit."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_work: int = DEFAULT_MAX_WORK


def _limit(value: int | None, env: str, default: int, flag: str) -> int:
    if value is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{env} must be a whole number of pixels (0: no limit), got {text!r}") from None
        flag = env
    if type(value) is not int or value < 0:
        raise UsageError(f"{flag} must be a whole number >= 0 (0: no limit), got {value!r}")
    return value


def decode_limits(max_pixels: int | None = None, max_work: int | None = None) -> DecodeLimits:
    """The limits a decode runs under: each argument where given, else its environment variable
    (DIFFCODEC_MAX_PIXELS, DIFFCODEC_MAX_WORK), else the default."""
    return DecodeLimits(_limit(max_pixels, MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS, "--max-pixels"),
                        _limit(max_work, MAX_WORK_ENV, DEFAULT_MAX_WORK, "--max-work"))


def check_cost(what: str, height: int, width: int, steps: int, limits: DecodeLimits | None = None) -> None:
    """Raise LimitError (one line, naming the flag and variable that raise the limit) when ``what`` (a decode, a
    generation) of a ``width`` x ``height`` image with ``steps`` diffusion steps is over ``limits``."""
    limits = limits or decode_limits()
    pixels = height * width
    work = pixels * max(steps, 1)
    if limits.max_pixels and pixels > limits.max_pixels:
        raise LimitError(f"{what} is {width}x{height} = {pixels:,} pixels, over the limit of {limits.max_pixels:,} "
                         f"(raise it with --max-pixels or {MAX_PIXELS_ENV} if you trust the input)")
    if limits.max_work and work > limits.max_work:
        raise LimitError(f"{what} runs {steps} diffusion steps over {pixels:,} pixels = {work:,} pixel-steps, "
                         f"over the limit of {limits.max_work:,} (raise it with --max-work or {MAX_WORK_ENV} if "
                         f"you trust the input)")


def check_decode_cost(codec: Codec, encoded: Encoded, height: int, width: int, options: dict[str, Any],
                      limits: DecodeLimits | None = None) -> None:
    """The decode limits applied to one image (or one frame of a clip) of ``codec``, from its header: call before
    :meth:`Codec.decompress`, so that a header asking for too much is refused before anything is allocated."""
    check_cost(f"decoding this {codec.name} file", height, width, codec.decode_steps(encoded, **options), limits)


_REGISTRY: dict[str, type[Codec]] = {}


def register(cls: type[Codec]) -> type[Codec]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Imported lazily so that `import diffcodec` does not pay for the codecs; the codec modules themselves
    # import torch and faiss only inside functions.
    from diffcodec.methods import ddcm, diffae, opq  # noqa: F401


def available() -> dict[str, type[Codec]]:
    _load_builtin()
    return dict(_REGISTRY)


def get_codec(name: str, for_decoding: bool = False) -> Codec:
    _load_builtin()
    if name not in _REGISTRY:
        if for_decoding:
            raise UnsupportedError(f"file uses method {name!r}, which this diffcodec does not implement")
        raise UsageError(f"unknown method {name!r} (available: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()
