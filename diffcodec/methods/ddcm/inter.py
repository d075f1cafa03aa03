"""ddcm P-frames: clips of conditional ddcm on an opq base layer with ``gop`` > 1. A P-frame's base layer is an opq
P-frame (methods/opq_inter.py: the previous frame's opq base, motion-compensated, then skip or intra per patch)
and its refinement is the one the clip's header fixes, run over that base; the payload says whether the
encoder kept it (only where it beats the base).

    payload = u8 refined (0 | 1) || LEB128(len(opq P-frame)) || opq P-frame || refinement index payload

The reference a frame leaves is its opq base layer's (decoded base planes and index grids, exact on every
machine), not the refined output: the refiner's float sums differ across devices and thread counts, and a
prediction loop closed over them would let encoder and decoder drift apart. Normative description:
formats/ddc-v1.md, "ddcm P-frames".
"""

from __future__ import annotations

from typing import Any

from diffcodec.container import Encoded
from diffcodec.errors import CorruptInputError
from diffcodec.methods.ddcm.base_layer import opq_base_encoded, parse_base
from diffcodec.methods.ddcm.params import DDCMParams
from diffcodec.methods.ddcm.payload import join_layers, split_layers


def predicts_over(base: str | None) -> bool:
    """Whether a clip with this header base can have P-frames (an opq base)."""
    return base is not None and parse_base(base, err=CorruptInputError).kind == "opq"


def opq_key(p: DDCMParams) -> Encoded:
    """The opq keyframe header that the base layers of a clip with header ``p`` share (no payload)."""
    assert p.base is not None
    return opq_base_encoded(p.base, p.base_sha)


def keyframe_reference(p: DDCMParams, encoded: Encoded, height: int, width: int, channels: int) -> Any:
    """The reference a keyframe ``encoded`` (header ``p``, an opq base) leaves: its base layer's, as opq decodes
    it."""
    base_data, _ = split_layers(encoded.chunks[0])
    return decode_keyframe_base(p, base_data, height, width, channels)[1]


def decode_keyframe_base(p: DDCMParams, base_data: bytes, height: int, width: int, channels: int) -> tuple[Any, Any]:
    """(the decoded opq base layer ``base_data`` of a keyframe with header ``p``, the reference it leaves)."""
    from diffcodec.methods.opq import OPQCodec

    assert p.base is not None
    return OPQCodec().decompress_keyframe(opq_base_encoded(p.base, p.base_sha, base_data), height, width, channels)


def join(refined: bool, base: bytes, indices: bytes) -> bytes:
    return bytes([int(refined)]) + join_layers(base, indices)


def split(payload: bytes) -> tuple[bool, bytes, bytes]:
    """(refined, opq P-frame, index payload) of a P-frame payload; a flag other than 0 or 1, or index bytes after
    an unrefined base, is corruption."""
    if not payload or payload[0] > 1:
        raise CorruptInputError("corrupt ddcm P-frame: its first byte must be 0 (base) or 1 (refined)")
    base, indices = split_layers(payload[1:])
    if payload[0] == 0 and indices:
        raise CorruptInputError("corrupt ddcm P-frame: index bytes after a base layer decoded as is")
    return bool(payload[0]), base, indices
