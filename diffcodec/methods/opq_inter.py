"""opq P-frames: the previous decoded frame, motion-compensated, predicts the current one; each 8x8 patch
position either keeps the prediction (*skip*) or is coded with the keyframe's opq codebooks (*intra*), chosen
by rate-distortion; everything goes into one range coder.

    payload = flag model | patch flags (anti-diagonal order) | vector table | vector differences (row by row)
              | intra indices (channel, sub-quantizer, anti-diagonal order, intra positions only)

The entropy context of an intra index uses the grid in which skipped positions hold the last index coded
there (by the keyframe or a later P-frame): the co-located index of an earlier frame. The reference a frame
leaves is its decoded centred YCbCr planes (float32, before the RGB conversion) and those index grids; both
are exact on every machine, so encoder and decoder never drift apart. Normative description:
formats/ddc-v1.md, "opq P-frames".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffcodec import color, motion
from diffcodec.entropy import Decoder, Encoder, TableSet, discretized_laplace_table
from diffcodec.errors import CorruptInputError

PATCH = 8
KSUB = 256
FLAG_CONTEXTS = 3                               # intra patches among the left and top neighbours
FLAG_LEVELS = 255                               # a context's P(intra) is coded as 1..255 / 256
MV_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)     # Laplace scales (half-pels) the encoder picks one of
MV_SUPPORT = 255                                # vector differences -255..255 half-pels
CHANNEL_WEIGHTS = (1.0, 0.25, 0.25)             # distortion weights of Y, Cb, Cr in the skip/intra choice
INTRA_LAMBDA = 4.0                              # rate weight, relative to the frame's intra distortion per bit


@dataclass
class Reference:
    planes: np.ndarray            # (C, H, W) float32: the decoded frame's centred YCbCr (or luma) planes
    grids: list[np.ndarray]       # per channel (gh, gw, M) int64: the last index coded at each patch position


def _mv_tables() -> TableSet:
    return TableSet(np.stack([discretized_laplace_table(s, MV_SUPPORT) for s in MV_SCALES]))


_MV_TABLES: TableSet | None = None


def mv_tables() -> TableSet:
    global _MV_TABLES
    if _MV_TABLES is None:
        _MV_TABLES = _mv_tables()
    return _MV_TABLES


def _flag_table(levels: np.ndarray) -> TableSet:
    p = np.asarray(levels, dtype=np.int64) + 1           # 1..255
    return TableSet(np.stack([256 - p, p], axis=1).astype(np.int32))


def _flag_contexts(flags: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    left = np.where(cols > 0, flags[rows, np.maximum(cols - 1, 0)], False)
    top = np.where(rows > 0, flags[np.maximum(rows - 1, 0), cols], False)
    return left.astype(np.int64) + top.astype(np.int64)


def _mb_has_skip(intra: np.ndarray) -> np.ndarray:
    gh, gw = intra.shape
    skip = np.pad(~intra, ((0, gh % 2), (0, gw % 2)))
    return skip.reshape(-(-gh // 2), 2, -(-gw // 2), 2).any(axis=(1, 3))


def index_tables(books) -> tuple[TableSet, np.ndarray]:
    """Every sub-quantizer's context tables of ``books`` (a preset's first 1 or 3 channel codebooks) in one table
    set (channel by channel, sub-quantizer by sub-quantizer) and each one's first row: a whole anti-diagonal of
    every sub-quantizer is one coder call. Kept on the first codebook (the books live as long as their preset's)."""
    cache = books[0].__dict__.setdefault("_index_tables", {})
    if len(books) not in cache:
        freqs = [book.ctx_freq[m] for book in books for m in range(book.m)]
        offsets = np.cumsum([0] + [len(f) for f in freqs[:-1]])
        cache[len(books)] = (TableSet(np.concatenate(freqs)), offsets)
    return cache[len(books)]


def _diagonal_order(gh: int, gw: int) -> tuple[np.ndarray, np.ndarray]:
    from diffcodec.methods.opq import diagonals

    parts = list(diagonals(gh, gw))
    return np.concatenate([r for r, _ in parts]), np.concatenate([c for _, c in parts])


def write_payload(intra: np.ndarray, levels: np.ndarray, scale: int, mvs: np.ndarray, grids: list[np.ndarray],
                  books) -> bytes:
    """The P-frame payload of patch flags ``intra`` (gh, gw), flag model ``levels`` (3 values 0..254), vector
    table ``scale``, vectors ``mvs`` (MBH, MBW, 2; those of macroblocks without a skipped patch must equal
    their predictor) and final index grids (intra positions coded, the others taken as context only)."""
    from diffcodec.methods.opq import all_context_ids

    enc = Encoder()
    gh, gw = intra.shape
    rows, cols = _diagonal_order(gh, gw)
    enc.uniform(levels, FLAG_LEVELS)
    enc.categorical_in_context(intra[rows, cols].astype(np.int64), _flag_table(levels),
                               _flag_contexts(intra, rows, cols))
    enc.uniform(np.array([scale]), len(MV_SCALES))
    has_skip = _mb_has_skip(intra)
    tables = mv_tables()
    for r in range(mvs.shape[0]):
        d = (mvs[r] - motion.predictors(mvs, r))[has_skip[r]]
        if d.size:
            if np.abs(d).max() > MV_SUPPORT:
                raise ValueError("motion vector difference out of range")
            enc.categorical_in_context((d + MV_SUPPORT).ravel(), tables, np.full(d.size, scale))
    # intra indices: diagonal by diagonal; within one, sub-quantizer by sub-quantizer (channel-major)
    stacked = np.concatenate([g.transpose(2, 0, 1) for g in grids])                  # (K, gh, gw)
    tables, offsets = index_tables(books[:len(grids)])
    ctx = np.stack([all_context_ids(g) for g in stacked]) + offsets[:, None, None]
    from diffcodec.methods.opq import diagonals

    symbols, contexts = [], []
    for r, c in diagonals(gh, gw):
        sel = intra[r, c]
        if sel.any():
            symbols.append(stacked[:, r[sel], c[sel]].ravel())
            contexts.append(ctx[:, r[sel], c[sel]].ravel())
    if symbols:
        enc.categorical_in_context(np.concatenate(symbols), tables, np.concatenate(contexts))
    return enc.finish()


def _block_sse(a: np.ndarray, b: np.ndarray, weights) -> np.ndarray:
    """Weighted squared error per 8x8 patch position (gh, gw) of (C, H, W) planes."""
    total = None
    for c in range(a.shape[0]):
        e = color.to_patches((a[c] - b[c]) ** 2, PATCH).sum(-1) * weights[c]
        total = e if total is None else total + e
    assert total is not None
    return total


def _index_bits(grid: np.ndarray, book) -> np.ndarray:
    """Estimated bits (gh, gw) of every position's indices of one channel under its contexts."""
    from diffcodec.methods.opq import all_context_ids

    bits = np.zeros(grid.shape[:2])
    for m in range(grid.shape[2]):
        freq = book.ctx_freq[m]
        ctx = all_context_ids(grid[..., m])
        f = freq[ctx, grid[..., m]]
        bits += np.log2(freq.sum(-1)[ctx] / f)
    return bits


def encode(planes: np.ndarray, ref: Reference, books, quantize, lam_scale: float = INTRA_LAMBDA
           ) -> tuple[bytes, Reference]:
    """P-frame of the centred planes ``planes`` (C, H, W) predicted from ``ref``; ``quantize(planes)`` gives
    the intra index grids and reconstruction. Returns (payload, the reference this frame leaves)."""
    channels, height, width = planes.shape
    mvs = motion.search(planes[0], ref.planes[0])
    pred = motion.compensate(ref.planes, mvs)
    grids_i, recon_i = quantize(planes)
    weights = CHANNEL_WEIGHTS[:channels]
    d_skip = _block_sse(pred, planes, weights)
    d_intra = _block_sse(recon_i, planes, weights)
    r_intra = sum(_index_bits(g, b) for g, b in zip(grids_i, books))
    lam = lam_scale * float(d_intra.mean()) / max(float(np.mean(r_intra)), 1e-9)
    intra = d_skip > d_intra + lam * r_intra
    # vectors of macroblocks without a skipped patch are never used: give them their predictor (costs nothing)
    has_skip = _mb_has_skip(intra)
    for r in range(mvs.shape[0]):
        mvs[r] = np.where(has_skip[r][:, None], mvs[r], motion.predictors(mvs, r))
    gh, gw = intra.shape
    rows, cols = _diagonal_order(gh, gw)
    levels = _choose_levels(intra, rows, cols)
    scale = _choose_scale(mvs, has_skip)
    grids = [np.where(intra[..., None], gi, gr) for gi, gr in zip(grids_i, ref.grids)]
    payload = write_payload(intra, levels, scale, mvs, grids, books)
    recon = _reconstruct(intra, pred, grids, books, height, width)
    return payload, Reference(recon, grids)


def _choose_levels(intra: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    ctx = _flag_contexts(intra, rows, cols)
    flags = intra[rows, cols]
    levels = np.empty(FLAG_CONTEXTS, dtype=np.int64)
    for k in range(FLAG_CONTEXTS):
        n = int((ctx == k).sum())
        p = (int(flags[ctx == k].sum()) + 0.5) / (n + 1.0)
        levels[k] = int(np.clip(round(p * 256), 1, 255)) - 1
    return levels


def _choose_scale(mvs: np.ndarray, has_skip: np.ndarray) -> int:
    diffs = [(mvs[r] - motion.predictors(mvs, r))[has_skip[r]].ravel() for r in range(mvs.shape[0])]
    d = np.concatenate(diffs) if diffs else np.zeros(0, np.int64)
    if not d.size:
        return 0
    probs = mv_tables().probs
    bits = [-np.log2(probs[s][d + MV_SUPPORT] / probs[s].sum()).sum() for s in range(len(MV_SCALES))]
    return int(np.argmin(bits))


def _reconstruct(intra: np.ndarray, pred: np.ndarray, grids: list[np.ndarray], books, height: int,
                 width: int) -> np.ndarray:
    mask = np.repeat(np.repeat(intra, PATCH, axis=0), PATCH, axis=1)[:height, :width]
    out = np.empty_like(pred)
    for c, (grid, book) in enumerate(zip(grids, books)):
        coded = color.from_patches(book.reconstruct(grid), height, width, PATCH)
        out[c] = np.where(mask, coded, pred[c])
    return out


def decode(payload: bytes, ref: Reference, books, height: int, width: int) -> Reference:
    """Inverse of :func:`encode`: the reference (decoded planes and grids) of the P-frame ``payload``."""
    from diffcodec.methods.opq import _decode_plan, context_ids

    channels = len(books)
    if ref.planes.shape != (channels, height, width):
        raise CorruptInputError("corrupt clip: a P-frame's reference does not match the clip")
    dec = Decoder(payload)
    gh, gw = -(-height // PATCH), -(-width // PATCH)
    levels = dec.uniform(FLAG_CONTEXTS, FLAG_LEVELS)
    flag_table = _flag_table(levels)
    intra = np.zeros((gh, gw), dtype=bool)
    from diffcodec.methods.opq import diagonals

    for rows, cols in diagonals(gh, gw):
        intra[rows, cols] = dec.categorical_in_context(flag_table, _flag_contexts(intra, rows, cols)) == 1
    scale = int(dec.uniform(1, len(MV_SCALES))[0])
    if scale >= len(MV_SCALES):
        raise CorruptInputError("corrupt opq P-frame: vector table out of range")
    has_skip = _mb_has_skip(intra)
    mbh, mbw = motion.grid_shape(height, width)
    mvs = np.zeros((mbh, mbw, 2), dtype=np.int64)
    tables = mv_tables()
    for r in range(mbh):
        pred_r = motion.predictors(mvs, r)
        n = int(has_skip[r].sum())
        d = dec.categorical_in_context(tables, np.full(2 * n, scale)).reshape(n, 2) - MV_SUPPORT
        row = pred_r.copy()
        row[has_skip[r]] += d
        mvs[r] = row
    plan = _decode_plan(gh, gw)
    flat_intra = intra.ravel()
    tables, offsets = index_tables(books)
    state = np.concatenate([g.transpose(2, 0, 1).reshape(g.shape[2], -1) for g in ref.grids[:channels]])
    g = np.concatenate([state, np.full((len(state), 1), KSUB // 2, dtype=state.dtype)], axis=1)
    for pos, left, top, tl in plan:
        sel = flat_intra[pos]
        if sel.any():
            p = pos[sel]
            ctx = context_ids(g[:, left[sel]], g[:, top[sel]], g[:, tl[sel]]) + offsets[:, None]
            g[:, p] = dec.categorical_in_context(tables, ctx.ravel()).reshape(len(g), len(p))
    grids, k = [], 0
    for book in books:
        grids.append(g[k:k + book.m, :-1].reshape(book.m, gh, gw).transpose(1, 2, 0).copy())
        k += book.m
    if write_payload(intra, levels, scale, mvs, grids, books) != bytes(payload):
        raise CorruptInputError("corrupt opq P-frame: it is not the exact coding of what it decodes to "
                                "(altered, truncated or trailing data)")
    pred = motion.compensate(ref.planes, mvs)
    return Reference(_reconstruct(intra, pred, grids, books, height, width), grids)
