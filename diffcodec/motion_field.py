"""Per-region motion of a diffae temporal group's frames (issue #16 item 1): a field of quarter-pixel vectors.

A field is a grid of node vectors (ny, nx, 2), (vy, vx) in quarter pixels, the nodes every B = 2^k pixels from the
frame's top-left pixel (node (i, j) at pixel (i B, j B); ny = ceil((H - 1) / B) + 1 rows of them, so that the last
one reaches the frame's last row; columns alike). Every pixel's vector is the bilinear interpolation of its four
nodes, rounded to quarter pixels, and the frame moves by it with the bilinear rule of a global quarter-pixel motion
(:func:`diffcodec.methods.diffae_temporal.shift_subpel`): all in exact integer arithmetic, so that encoder and
decoder build the same pixels on any machine. A field whose nodes are all equal is that global motion. The rule
and the P-chunk coding are part of the bitstream (formats/ddc-v1.md, "diffae clips with temporal compression").

The coding: the nodes in raster order, each as its difference from a prediction from the nodes before it (planar
inside the grid, linear along its first row and column, the chunk's origin vector for node (0, 0)), so a field
that is affine in the frame's coordinates (a pan with a zoom) costs a few bits; the differences are signed
exp-Golomb codes after run lengths of zero differences.

The encoder's side (:func:`estimate`, :func:`align`) is informative: block matching around the global motion with
a rate term, and a numerical inverse of the decoder's warp.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from diffcodec.errors import CorruptInputError

FIELD_TAG = 0x80            # a P payload's first byte: the tag plus log2 of the node spacing
MIN_LOG2_BLOCK, MAX_LOG2_BLOCK = 4, 7
LOG2_BLOCK = 6              # the encoder's node spacing: 64 pixels
SEARCH = 8                  # the encoder's block search around the global motion, whole pixels
LAMBDA = 2000.0             # the encoder's price of a bit, in tent-weighted squared error (8-bit units)
MAX_ZEROS = 20              # longest exp-Golomb prefix a reader accepts
MAX_NODE = 1 << 14          # a node's components are below this in magnitude (keeps the warp's sums in 32 bits)
UNIT = 4                    # quarter pixels


@dataclass(frozen=True, eq=False)
class Field:
    """A frame's motion field: ``nodes`` (ny, nx, 2) int64 quarter pixels, spacing 2^``log2b``, and the origin
    vector (the prediction of node (0, 0), the frame's global motion) that the chunk codes them against."""
    nodes: np.ndarray
    origin: tuple[int, int]
    log2b: int

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Field) and self.origin == other.origin and self.log2b == other.log2b
                and np.array_equal(self.nodes, other.nodes))


def grid_shape(height: int, width: int, log2b: int) -> tuple[int, int]:
    b = 1 << log2b
    return -(-(height - 1) // b) + 1, -(-(width - 1) // b) + 1


def pixel_vectors(nodes: np.ndarray, height: int, width: int, log2b: int,
                  rows: tuple[int, int] | None = None) -> np.ndarray:
    """Every pixel's vector (H, W, 2) int64 (with ``rows`` (first, end): those rows' only): with i = y >> k,
    ry = y - i B (columns alike, j, rx), the nodes n00 = (i, j), n01 = (i, j + 1), n10 = (i + 1, j),
    n11 = (i + 1, j + 1) (an index past the grid only ever has weight 0: take the last),
    v = ((B - ry) ((B - rx) n00 + rx n01) + ry ((B - rx) n10 + rx n11) + B^2 / 2) >> 2k, per component (an
    arithmetic shift: the floor)."""
    b = 1 << log2b
    f = np.asarray(nodes, dtype=np.int64)
    ny, nx = f.shape[:2]
    y, x = np.arange(*(rows or (0, height))), np.arange(width)
    iy, ix = y >> log2b, x >> log2b
    ry, rx = (y - (iy << log2b))[:, None, None], (x - (ix << log2b))[None, :, None]
    iy1, ix1 = np.minimum(iy + 1, ny - 1), np.minimum(ix + 1, nx - 1)
    top, bottom = f[iy], f[iy1]
    top = top[:, ix] * (b - rx) + top[:, ix1] * rx
    bottom = bottom[:, ix] * (b - rx) + bottom[:, ix1] * rx
    return (top * (b - ry) + bottom * ry + (1 << (2 * log2b - 1))) >> (2 * log2b)


def warp(img: np.ndarray, nodes: np.ndarray, log2b: int, rows: int = 64) -> np.ndarray:
    """``img`` (H, W[, C]) uint8 with its content moved by the field: output pixel (y, x) with vector (vy, vx)
    (:func:`pixel_vectors`) reads source position sy = 4 y - vy, sx = 4 x - vx quarter pixels, bilinear with the
    edge repeated, exactly as a global motion's shift but with fy, fx per pixel. Made ``rows`` output rows at a
    time (integers per pixel: the same result, without full-size temporaries)."""
    h, w = img.shape[:2]
    out = np.empty_like(img)
    for top in range(0, h, rows):
        end = min(h, top + rows)
        v = pixel_vectors(nodes, h, w, log2b, (top, end))
        sy = np.arange(top, end)[:, None] * UNIT - v[..., 0]
        sx = np.arange(w)[None, :] * UNIT - v[..., 1]
        y0, x0 = sy >> 2, sx >> 2
        fy, fx = sy & 3, sx & 3
        r0, r1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
        c0, c1 = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
        if img.ndim == 3:
            fy, fx = fy[..., None], fx[..., None]
        a, b, c, d = (img[r, cc].astype(np.int32) for r, cc in ((r0, c0), (r0, c1), (r1, c0), (r1, c1)))
        out[top:end] = blend(a, b, c, d, fy, fx)
    return out


def blend(a, b, c, d, fy, fx):
    """The format's quarter-pixel bilinear value of the four neighbours a, b (upper row), c, d (lower row) at
    offsets fy, fx in 0..3 (integers, arrays or scalars): ((a (4 - fx) + b fx) (4 - fy) + (c (4 - fx) + d fx) fy
    + 8) >> 4, exact; a global motion's shift and a field's warp both end here."""
    return ((a * (4 - fx) + b * fx) * (4 - fy) + (c * (4 - fx) + d * fx) * fy + 8) >> 4


# ------------------------------------------------------------------------------------------------ coding
def predict(nodes: np.ndarray, i: int, j: int, origin: tuple[int, int]) -> np.ndarray:
    """The prediction of node (i, j) from the nodes before it in raster order: the origin for (0, 0); along the
    first row n[0, j-1] for j = 1, else 2 n[0, j-1] - n[0, j-2]; down the first column alike; inside,
    n[i, j-1] + n[i-1, j] - n[i-1, j-1]."""
    v = nodes
    if i == 0 and j == 0:
        return np.array(origin, dtype=np.int64)
    if i == 0:
        return v[0, j - 1] if j == 1 else 2 * v[0, j - 1] - v[0, j - 2]
    if j == 0:
        return v[i - 1, 0] if i == 1 else 2 * v[i - 1, 0] - v[i - 2, 0]
    return v[i, j - 1] + v[i - 1, j] - v[i - 1, j - 1]


def _se(n: int) -> str:
    """A signed exp-Golomb code (0, 1, -1, 2, -2, ... -> ue 0, 1, 2, 3, 4, ...)."""
    u = 2 * n - 1 if n > 0 else -2 * n
    code = bin(u + 1)[2:]
    return "0" * (len(code) - 1) + code


def _ue(n: int) -> str:
    code = bin(n + 1)[2:]
    return "0" * (len(code) - 1) + code


def field_payload(field: Field) -> bytes:
    """The P payload of a field: FIELD_TAG | k, the origin (qy, qx) as big-endian int16, then the residuals'
    bits (most significant bit first, zero bits to the byte): per node in raster order, run lengths of
    zero residuals and the others: ue(run), se(ry), se(rx), ...; a last ue(run) reaches the grid's end."""
    nodes = np.asarray(field.nodes, dtype=np.int64)
    ny, nx = nodes.shape[:2]
    bits, run = [], 0
    for i in range(ny):
        for j in range(nx):
            ry, rx = (int(r) for r in nodes[i, j] - predict(nodes, i, j, field.origin))
            if ry == 0 and rx == 0:
                run += 1
                continue
            bits += [_ue(run), _se(ry), _se(rx)]
            run = 0
    bits.append(_ue(run))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    body = int(s, 2).to_bytes(len(s) // 8, "big")
    return struct.pack(">Bhh", FIELD_TAG | field.log2b, *field.origin) + body


def is_field_payload(payload: bytes) -> bool:
    return len(payload) > 5 and payload[0] & 0xF0 == FIELD_TAG


def parse_field(payload: bytes, height: int, width: int) -> Field:
    """A field P payload (:func:`field_payload`) for a frame of height x width, or CorruptInputError: a bad
    tag or spacing, an origin beyond the frame (abs(qy) < 4 H, abs(qx) < 4 W, as a global motion), a node
    component of MAX_NODE or more in magnitude, a code past the end or too long, a run past the grid, a coded
    residual (0, 0), bits left over, nonzero padding, or nodes all equal (a global motion takes the 0-, 4- or
    5-byte form)."""
    corrupt = lambda msg: CorruptInputError(f"corrupt diffae clip: P-frame motion field: {msg}")  # noqa: E731
    if not is_field_payload(payload):
        raise corrupt(f"{len(payload)} bytes starting {payload[:1].hex()!r}")
    tag, oy, ox = struct.unpack(">Bhh", payload[:5])
    log2b = tag & 0x0F
    if not MIN_LOG2_BLOCK <= log2b <= MAX_LOG2_BLOCK:
        raise corrupt(f"node spacing 2^{log2b} pixels (only 2^{MIN_LOG2_BLOCK}..2^{MAX_LOG2_BLOCK})")

    if abs(oy) >= UNIT * height or abs(ox) >= UNIT * width:
        raise corrupt(f"origin ({oy}, {ox}) quarter pixels for a {width}x{height} frame")
    bits = "".join(f"{b:08b}" for b in payload[5:])
    pos = 0

    def ue() -> int:
        nonlocal pos
        one = bits.find("1", pos, pos + MAX_ZEROS + 1)
        if one < 0:
            raise corrupt("a code runs past the end or is too long")
        zeros = one - pos
        if one + zeros + 1 > len(bits):
            raise corrupt("a code runs past the end")
        value = int(bits[one:one + zeros + 1], 2) - 1
        pos = one + zeros + 1
        return value

    def se() -> int:
        u = ue()
        return (u + 1) // 2 if u & 1 else -(u // 2)

    ny, nx = grid_shape(height, width, log2b)
    count = ny * nx
    residual = np.zeros((count, 2), dtype=np.int64)
    n = 0
    while True:
        n += ue()
        if n == count:
            break
        if n > count:
            raise corrupt(f"a run past the grid's {count} nodes")
        residual[n] = se(), se()
        if not residual[n].any():
            raise corrupt("a coded residual (0, 0)")
        n += 1
    if len(bits) - pos >= 8 or "1" in bits[pos:]:
        raise corrupt("bits after the last node")
    nodes = np.zeros((ny, nx, 2), dtype=np.int64)
    r = residual.reshape(ny, nx, 2)
    for i in range(ny):
        for j in range(nx):
            nodes[i, j] = predict(nodes, i, j, (oy, ox)) + r[i, j]
            if np.abs(nodes[i, j]).max() >= MAX_NODE:
                raise corrupt(f"node ({i}, {j}) vector {tuple(int(c) for c in nodes[i, j])} quarter pixels (each "
                              f"component below {MAX_NODE} in magnitude)")
    if (nodes == nodes[0, 0]).all():
        raise corrupt("all nodes equal (a global motion has the 0-, 4- or 5-byte form)")
    return Field(nodes, (oy, ox), log2b)


# ------------------------------------------------------------------------------------------------ encoder
def _gray(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64).mean(axis=2) if img.ndim == 3 else img.astype(np.float64)


def _sample(img: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """``img`` (h, w[, c]) float at float pixel positions, bilinear, edge clamped."""
    h, w = img.shape[:2]
    py, px = np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)
    y0, x0 = np.floor(py).astype(np.int64), np.floor(px).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = py - y0, px - x0
    if img.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    return ((img[y0, x0] * (1 - wx) + img[y0, x1] * wx) * (1 - wy)
            + (img[y1, x0] * (1 - wx) + img[y1, x1] * wx) * wy)


def _bits(ry: int, rx: int) -> int:
    """About what a residual costs (1 bit of run length for a zero one)."""
    return 1 if ry == 0 and rx == 0 else 2 + len(_se(ry)) + len(_se(rx))


def _node_vector(phases: list[list[np.ndarray]], o: int, window: tuple[int, int, int, int], target: np.ndarray,
                 weight: np.ndarray, centre: tuple[int, int], radius: int, pred: tuple[int, int],
                 lam: float) -> tuple[int, int]:
    """One node's vector (:func:`estimate`): ``window`` (y0, y1, x0, x1), ``centre`` whole pixels; ``phases`` hold
    the padded rows from y0 on (:func:`_phase_band`)."""
    y0, y1, x0, x1 = window
    errors: dict[tuple[int, int], float] = {}

    def error(q: tuple[int, int]) -> float:
        if q not in errors:
            my, mx = (-q[0]) >> 2, (-q[1]) >> 2
            if not (-o <= my < o and -o <= mx < o):
                errors[q] = np.inf
            else:
                s = phases[(-q[0]) & 3][(-q[1]) & 3][o + my:o + y1 - y0 + my, o + x0 + mx:o + x1 + mx]
                errors[q] = float(np.sum(weight * (s - target) ** 2))
        return errors[q]

    cy, cx = centre
    whole = min((((cy + dy) * UNIT, (cx + dx) * UNIT) for dy in range(-radius, radius + 1)
                 for dx in range(-radius, radius + 1)), key=error)
    py, px = pred
    candidates = {(py + dy, px + dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    candidates |= {(whole[0] + dy, whole[1] + dx) for dy in range(-3, 4) for dx in range(-3, 4)}
    return min(sorted(candidates), key=lambda q: error(q) + lam * _bits(q[0] - py, q[1] - px))


def estimate(first: np.ndarray, frame: np.ndarray, origin: tuple[int, int], log2b: int = LOG2_BLOCK,
             radius: int = SEARCH, lam: float = LAMBDA) -> Field:
    """The field (decoder direction: ``first`` warped by it ~ ``frame``, uint8 (H, W, 3)) found per node in
    raster order: the whole-pixel translation of ``first`` within +-radius pixels of ``origin`` (quarter
    pixels, the frame's global motion) that best matches ``frame`` over the node's window (2B x 2B, weighted by
    the node's bilinear weights, mean of R, G, B), then among its quarter-pixel neighbours (+-3) and the node's
    prediction's (+-2) the one with the least error + ``lam`` x its residual's bits."""
    h, w = first.shape[:2]
    b = 1 << log2b
    ny, nx = grid_shape(h, w, log2b)
    a, t = _gray(first), _gray(frame)
    # the 16 quarter-pixel phases of ``first``, padded by ``pad`` + 1 (the edge repeated): phase (fy, fx) at
    # (Y, X) is ``first`` sampled at (Y - pad - 1 + fy / 4, X - pad - 1 + fx / 4), so a vector (qy, qx) at pixel
    # (y, x) reads phase ((-qy) & 3, (-qx) & 3) at (y + pad + 1 + ((-qy) >> 2), x + pad + 1 + ((-qx) >> 2)); made
    # per row of nodes, over the rows its windows can read (memory: a band, not 16 copies of the frame)
    pad = radius + 2 + max(abs(origin[0]), abs(origin[1])) // UNIT + 2
    ap = np.pad(a, pad + 1, mode="edge")
    o = pad + 1
    nodes = np.zeros((ny, nx, 2), dtype=np.int64)
    centre = (int(round(origin[0] / UNIT)), int(round(origin[1] / UNIT)))
    for i in range(ny):
        y0, y1 = max(0, (i - 1) * b + 1), min(h, (i + 1) * b)
        band = ap[y0:y1 + 2 * o]
        phases = [[(band[:-1, :-1] * (4 - fx) * (4 - fy) + band[:-1, 1:] * fx * (4 - fy)
                    + band[1:, :-1] * (4 - fx) * fy + band[1:, 1:] * fx * fy) / 16.0 for fx in range(4)]
                  for fy in range(4)]
        wy = (b - np.abs(np.arange(y0, y1) - i * b))[:, None] / b
        for j in range(nx):
            x0, x1 = max(0, (j - 1) * b + 1), min(w, (j + 1) * b)
            weight = wy * ((b - np.abs(np.arange(x0, x1) - j * b))[None, :] / b)
            p = predict(nodes, i, j, origin)
            nodes[i, j] = _node_vector(phases, o, (y0, y1, x0, x1), t[y0:y1, x0:x1], weight, centre, radius,
                                       (int(p[0]), int(p[1])), lam)
    return Field(nodes, origin, log2b)


def align(frame: np.ndarray, field: Field, iterations: int = 4, rows: int = 64) -> np.ndarray:
    """The encoder's approximate inverse of the decoder's warp: A (uint8, the shape of ``frame``) with
    warp(A, field) ~ ``frame``: A(q) = frame(q + g(q)), g = f(q + g) by fixed-point iteration, f the field's
    bilinear interpolation in floats; ``rows`` of A at a time (each pixel's g is its own: the same numbers)."""
    h, w = frame.shape[:2]
    f = np.asarray(field.nodes, dtype=np.float64) / UNIT
    ny, nx = f.shape[:2]
    b = float(1 << field.log2b)

    def at(py: np.ndarray, px: np.ndarray) -> np.ndarray:
        return _sample(f, np.clip(py / b, 0, ny - 1), np.clip(px / b, 0, nx - 1))

    out = np.empty_like(frame)
    for top in range(0, h, rows):
        qy, qx = np.mgrid[top:min(h, top + rows), 0:w].astype(np.float64)
        g = at(qy, qx)
        for _ in range(iterations):
            g = at(qy + g[..., 0], qx + g[..., 1])
        out[top:top + rows] = np.clip(np.rint(_sample(frame, qy + g[..., 0], qx + g[..., 1])), 0, 255)
    return out
