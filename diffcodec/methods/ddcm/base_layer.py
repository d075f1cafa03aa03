"""The base layer of conditional DDCM (``--base PRESET``): an opq bitstream, decoded exactly as `opq` decodes
it; the decoded image is the condition of the refiner prior."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffcodec.container import Encoded
from diffcodec.errors import ModelError, UsageError


@dataclass
class BaseLayer:
    preset: str             # opq preset, e.g. "opq-16-8-8"
    sha: int                # first 4 bytes of the opq codebook file's sha256
    data: bytes             # opq's payload (its one D chunk)
    image: np.ndarray       # the decoded base image, uint8 (H, W, C) as opq decodes it


def check_base(base) -> str:
    from diffcodec.methods.opq import PRESETS as OPQ_PRESETS

    if not isinstance(base, str) or base not in OPQ_PRESETS:
        raise UsageError(f"unknown --base {base!r}: the base layer is an opq preset "
                         f"({', '.join(OPQ_PRESETS)})")
    return base


def code_base(image: np.ndarray, preset: str) -> BaseLayer:
    """Code ``image`` (H, W, 1 or 3) with opq ``preset``; the base image is opq's own decode of those bytes."""
    from diffcodec.methods.opq import OPQCodec

    enc = OPQCodec().compress(image, check_base(preset))
    if len(enc.chunks) != 1:
        raise ModelError("opq produced more than one payload chunk")
    h, w, c = image.shape
    return BaseLayer(preset, enc.model_sha, enc.chunks[0], decode_base(enc.chunks[0], preset, enc.model_sha, h, w, c))


def decode_base(data: bytes, preset: str, sha: int, height: int, width: int, channels: int) -> np.ndarray:
    from diffcodec.methods.opq import OPQCodec

    enc = Encoded(model=preset.removeprefix("opq-"), model_sha=sha, chunks=[data])
    return OPQCodec().decompress(enc, height, width, channels)
