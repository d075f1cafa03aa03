"""The ``D`` chunk: the choices of all coded steps as one mixed-radix integer coded with uniform symbols, and,
in conditional files, the base layer in front of it (:func:`join_layers`; a base in stripes: :func:`join_stripes`)."""

from __future__ import annotations

import math

import numpy as np

from diffcodec.container import encode_varint
from diffcodec.entropy import Decoder, Encoder
from diffcodec.errors import CorruptInputError, UsageError

DIGIT_BITS = 16
MAX_BASE_BYTES = (1 << 31) - 1


def payload_bits(alphabets) -> int:
    """Exact bits of the payload's content: the bit length of prod(A_t) - 1 (0 when nothing is coded)."""
    return (math.prod(alphabets) - 1).bit_length()


def payload_bytes(alphabets) -> int:
    """Bytes of the D chunk: constriction's range coder emits L // 32 + 1 words of 4 bytes for L > 0 bits."""
    bits = payload_bits(alphabets)
    return 0 if bits == 0 else 4 * (bits // 32 + 1)


def encode_payload(symbols, alphabets) -> bytes:
    """V = sum_t v_t prod_{s < t} A_s (first coded step least significant), written as L bits: 16-bit digits
    least significant first, each coded with Uniform(2^16), the last (L mod 16 bits, if any) with
    Uniform(2^(L mod 16))."""
    value = 0
    for v, a in zip(reversed(symbols), reversed(alphabets)):
        if not 0 <= v < a:
            raise ValueError(f"symbol {v} outside 0..{a - 1}")
        value = value * a + v
    bits = payload_bits(alphabets)
    q, r = divmod(bits, DIGIT_BITS)
    raw = np.frombuffer(value.to_bytes(2 * (q + (r > 0)), "little"), dtype="<u2").astype(np.int64)
    enc = Encoder()
    enc.uniform(raw[:q], 1 << DIGIT_BITS)
    if r:
        enc.uniform(raw[q:], 1 << r)
    return enc.finish()


def decode_payload(data: bytes, alphabets) -> list[int]:
    bits = payload_bits(alphabets)
    if len(data) != (0 if bits == 0 else 4 * (bits // 32 + 1)):
        raise CorruptInputError(f"corrupt ddcm payload: {len(data)} bytes, the parameters need "
                                f"{payload_bytes(alphabets)} ({bits} bits)")
    q, r = divmod(bits, DIGIT_BITS)
    dec = Decoder(data)
    digits = [dec.uniform(q, 1 << DIGIT_BITS)]
    if r:
        digits.append(dec.uniform(1, 1 << r))
    value = int.from_bytes(np.concatenate(digits).astype("<u2").tobytes(), "little")
    if value >= math.prod(alphabets):
        raise CorruptInputError("corrupt ddcm payload: coded value out of range")
    out = []
    for a in alphabets:
        value, v = divmod(value, a)
        out.append(v)
    return out


def join_layers(base: bytes, indices: bytes) -> bytes:
    """The ``D`` chunk of a conditional (``--base``) file: ``LEB128(len(base)) || base || indices``."""
    if len(base) > MAX_BASE_BYTES:
        raise UsageError(f"base layer of {len(base)} bytes is too large")
    return encode_varint(len(base)) + bytes(base) + bytes(indices)


def split_layers(data: bytes) -> tuple[bytes, bytes]:
    """Inverse of :func:`join_layers`: (base layer bytes, index payload). The length prefix must be a minimal
    LEB128 of at most 5 bytes, < 2^31 and within the chunk, else the file is corrupt."""
    begin, end = _prefixed(data, 0)
    return bytes(data[begin:end]), bytes(data[end:])


def _prefixed(data: bytes, start: int) -> tuple[int, int]:
    """(first, end) offsets of the length-prefixed bytes at ``start`` (the checks of :func:`split_layers`)."""
    n, shift, pos = 0, 0, start
    while True:
        if pos >= len(data) or pos - start >= 5:
            raise CorruptInputError("corrupt ddcm payload: truncated or overlong base-layer length")
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            break
    if (pos - start > 1 and data[pos - 1] == 0) or n > MAX_BASE_BYTES:
        raise CorruptInputError("corrupt ddcm payload: invalid base-layer length")
    if n > len(data) - pos:
        raise CorruptInputError(f"corrupt ddcm payload: base layer declares {n} bytes but only "
                                f"{len(data) - pos} remain")
    return pos, pos + n


def join_stripes(files: list[bytes]) -> bytes:
    """A base layer in stripes (header ``bh``): ``LEB128(len(file)) || file`` for each stripe, top to bottom."""
    return b"".join(join_layers(f, b"") for f in files)


def split_stripes(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`join_stripes` for ``count`` stripes: each prefix as :func:`split_layers` checks it, and
    nothing may follow the last stripe."""
    files, pos = [], 0
    for _ in range(count):      # by offsets: the rest of the chunk is not copied once per stripe
        begin, pos = _prefixed(data, pos)
        files.append(bytes(data[begin:pos]))
    if pos != len(data):
        raise CorruptInputError(f"corrupt ddcm base layer: {len(data) - pos} bytes after its {count} stripes")
    return files
