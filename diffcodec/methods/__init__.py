"""The codec contract and the method registry (stable method names -> codec classes, the CompressAI `models`
registry idea).

A codec turns a uint8 image into an :class:`Encoded` (model id, coding parameters, payload chunks);
:func:`diffcodec.container.frame` wraps that in the `.ddc` container. Callers never name a method to decide
what to do: they ask the codec (:attr:`Codec.encode_options`, :attr:`Codec.decode_options`,
:attr:`Codec.can_generate`, :meth:`Codec.describe`). Method names and model ids are part of the file format:
never rename one, add a new one instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from diffcodec.container import Encoded
from diffcodec.errors import UnsupportedError, UsageError

__all__ = ["Codec", "Encoded", "available", "get_codec", "register"]


class Codec:
    """Base class: `compress()` / `decompress()` over uint8 arrays of shape (H, W, C), C in {1, 3}.

    A subclass declares what it accepts; the CLI and the API pass exactly those options and nothing else."""

    name: ClassVar[str]
    presets: ClassVar[dict[str, str]]        # preset name -> one-line description
    default_preset: ClassVar[str]
    encode_options: ClassVar[dict[str, str]] = {}   # option -> one-line description (besides the preset)
    decode_options: ClassVar[dict[str, str]] = {}
    header_keys: ClassVar[dict[str, str]] = {}      # the header `params` / `rng` keys it writes -> meaning
    can_generate: ClassVar[bool] = False            # whether :meth:`generate` exists (compressed generation)

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

    def generate(self, height: int, width: int, **options) -> tuple[Encoded, np.ndarray]:
        """Compressed generation: a sample and the encoding that decodes to it (``can_generate`` codecs)."""
        raise UsageError(f"{self.name} cannot generate")

    def base_layer(self, encoded: Encoded, height: int, width: int, channels: int) -> tuple[str, bytes]:
        """(file suffix, bytes) of the standalone file a layered encoding is built on (``extract-base``)."""
        raise UsageError(f"{self.name} files have no base layer")

    def describe(self, params: dict, payloads: list[bytes]) -> dict[str, Any]:
        """What `diffcodec info` adds about a file of this method without decoding it (``summary``: one line for
        people); {} when there is nothing to add. Must not raise on malformed values."""
        return {}


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
