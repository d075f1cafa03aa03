"""Method registry: stable method names -> codec classes (the CompressAI `models` registry idea).

A codec turns a uint8 image into an :class:`Encoded` (model id, coding parameters, payload chunks);
:mod:`diffcodec.api` wraps that in the `.ddc` container. Method names and model ids are part of the
file format: never rename one, add a new one instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from diffcodec.errors import UnsupportedError, UsageError


@dataclass
class Encoded:
    """What a codec produces for one image, before container framing."""

    model: str                      # stable model id within the method, e.g. "32-8-8"
    model_sha: int                  # first 4 bytes of the model file's sha256, big-endian (0: none)
    params: dict[str, Any] = field(default_factory=dict)  # everything else the decoder needs
    rng: dict[str, Any] | None = None                     # seeded-generator spec (header `rng` map)
    chunks: list[bytes] = field(default_factory=list)     # payload bitstreams ('D' chunks)


class Codec:
    """Base class: `compress()` / `decompress()` over uint8 arrays of shape (H, W, C), C in {1, 3}."""

    name: ClassVar[str]
    presets: ClassVar[dict[str, str]]   # preset name -> one-line description
    default_preset: ClassVar[str]

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        raise NotImplementedError

    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        raise NotImplementedError


_REGISTRY: dict[str, type[Codec]] = {}


def register(cls: type[Codec]) -> type[Codec]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Imported lazily so that `diffcodec info` on a file does not pay for torch/faiss imports.
    from diffcodec.methods import opq  # noqa: F401
    from diffcodec.methods import ddcm  # noqa: F401
    from diffcodec.methods import diffae  # noqa: F401


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
