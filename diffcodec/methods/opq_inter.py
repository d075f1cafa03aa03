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
from typing import Any

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
    planes: Any                   # (C, H, W) float32: the decoded frame's centred YCbCr (or luma) planes; a list
                                  # of planes for 4:2:0 (chroma planes half the size)
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


def plane_groups(planes) -> list[list[int]]:
    """Channels that share patch flags: all of them when the planes have one size (RGB-coded, 4:4:4, gray),
    else luma and the two 4:2:0 chroma planes (whose 8x8 patch is one macroblock)."""
    if len({np.shape(p) for p in planes}) == 1:
        return [list(range(len(planes)))]
    return [[0], list(range(1, len(planes)))]


def _mb_skip_mask(flags: list[np.ndarray], groups: list[list[int]], mb_shape: tuple[int, int]) -> np.ndarray:
    """Macroblocks holding at least one skipped patch of any group (those code a vector)."""
    has = np.zeros(mb_shape, dtype=bool)
    for intra, group in zip(flags, groups):
        has |= _mb_has_skip(intra) if group[0] == 0 else ~intra
    return has


def write_payload(flags: list[np.ndarray], levels: list[np.ndarray], scale: int, mvs: np.ndarray,
                  grids: list[np.ndarray], books, groups: list[list[int]]) -> bytes:
    """The P-frame payload: per group of channels (:func:`plane_groups`) patch flags ``flags[g]`` (gh, gw) and
    flag model ``levels[g]`` (3 values 0..254); vector table ``scale``; vectors ``mvs`` (MBH, MBW, 2; those of
    macroblocks without a skipped patch must equal their predictor); final index grids (intra positions coded,
    the others taken as context only)."""
    from diffcodec.methods.opq import all_context_ids, diagonals

    enc = Encoder()
    for lv in levels:
        enc.uniform(lv, FLAG_LEVELS)
    for intra, lv in zip(flags, levels):
        rows, cols = _diagonal_order(*intra.shape)
        enc.categorical_in_context(intra[rows, cols].astype(np.int64), _flag_table(lv),
                                   _flag_contexts(intra, rows, cols))
    enc.uniform(np.array([scale]), len(MV_SCALES))
    has_skip = _mb_skip_mask(flags, groups, mvs.shape[:2])
    tables = mv_tables()
    for r in range(mvs.shape[0]):
        d = (mvs[r] - motion.predictors(mvs, r))[has_skip[r]]
        if d.size:
            if np.abs(d).max() > MV_SUPPORT:
                raise ValueError("motion vector difference out of range")
            enc.categorical_in_context((d + MV_SUPPORT).ravel(), tables, np.full(d.size, scale))
    # intra indices, group by group: diagonal by diagonal; within one, sub-quantizer by sub-quantizer
    symbols, contexts = [], []
    for intra, group in zip(flags, groups):
        stacked = np.concatenate([grids[c].transpose(2, 0, 1) for c in group])            # (K, gh, gw)
        itables, offsets = index_tables([books[c] for c in group])
        ctx = np.stack([all_context_ids(g) for g in stacked]) + offsets[:, None, None]
        for r, c in diagonals(*intra.shape):
            sel = intra[r, c]
            if sel.any():
                symbols.append(stacked[:, r[sel], c[sel]].ravel())
                contexts.append(ctx[:, r[sel], c[sel]].ravel())
        if symbols:
            enc.categorical_in_context(np.concatenate(symbols), itables, np.concatenate(contexts))
            symbols, contexts = [], []
    return enc.finish()


def _block_sse(a, b, weights) -> np.ndarray:
    """Weighted squared error per 8x8 patch position (gh, gw) of same-sized planes."""
    total = None
    for c in range(len(a)):
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


def _predict(ref_planes, mvs: np.ndarray, groups: list[list[int]]) -> list[np.ndarray]:
    """Motion-compensated prediction of every plane: full-size groups at half-pel, 4:2:0 chroma at quarter-pel."""
    pred: list[np.ndarray] = [np.empty(0, np.float32)] * len(ref_planes)
    for group in groups:
        stack = np.stack([ref_planes[c] for c in group])
        out = motion.compensate(stack, mvs) if group[0] == 0 else motion.compensate_subsampled(stack, mvs)
        for c, p in zip(group, out):
            pred[c] = p
    return pred


def _as_planes(planes: list[np.ndarray], like):
    return np.stack(planes) if isinstance(like, np.ndarray) else planes


def encode(planes, ref: Reference, books, quantize, lam_scale: float = INTRA_LAMBDA) -> tuple[bytes, Reference]:
    """P-frame of the centred planes ``planes`` ((C, H, W), or a list with smaller 4:2:0 chroma planes)
    predicted from ``ref``; ``quantize(planes)`` gives the intra index grids and reconstruction. Returns (payload,
    the reference this frame leaves)."""
    groups = plane_groups(planes)
    mvs = motion.search(planes[0], ref.planes[0])
    pred = _predict(ref.planes, mvs, groups)
    grids_i, recon_i = quantize(planes)
    flags = []
    for group in groups:
        weights = [CHANNEL_WEIGHTS[c] for c in group] if len(groups) == 1 else [1.0] * len(group)
        d_skip = _block_sse([pred[c] for c in group], [planes[c] for c in group], weights)
        d_intra = _block_sse([recon_i[c] for c in group], [planes[c] for c in group], weights)
        r_intra = sum(_index_bits(grids_i[c], books[c]) for c in group)
        lam = lam_scale * float(d_intra.mean()) / max(float(np.mean(r_intra)), 1e-9)
        flags.append(d_skip > d_intra + lam * r_intra)
    # vectors of macroblocks without a skipped patch are never used: give them their predictor (costs nothing)
    has_skip = _mb_skip_mask(flags, groups, mvs.shape[:2])
    for r in range(mvs.shape[0]):
        mvs[r] = np.where(has_skip[r][:, None], mvs[r], motion.predictors(mvs, r))
    levels = [_choose_levels(intra, *_diagonal_order(*intra.shape)) for intra in flags]
    scale = _choose_scale(mvs, has_skip)
    group_of = {c: g for g, group in enumerate(groups) for c in group}
    grids = [np.where(flags[group_of[c]][..., None], gi, gr) for c, (gi, gr) in enumerate(zip(grids_i, ref.grids))]
    payload = write_payload(flags, levels, scale, mvs, grids, books, groups)
    recon = _reconstruct(flags, groups, pred, grids, books)
    return payload, Reference(_as_planes(recon, planes), grids)


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


def _reconstruct(flags: list[np.ndarray], groups: list[list[int]], pred: list[np.ndarray],
                 grids: list[np.ndarray], books) -> list[np.ndarray]:
    out: list[np.ndarray] = [np.empty(0, np.float32)] * len(pred)
    for intra, group in zip(flags, groups):
        height, width = pred[group[0]].shape
        mask = np.repeat(np.repeat(intra, PATCH, axis=0), PATCH, axis=1)[:height, :width]
        for c in group:
            coded = color.from_patches(books[c].reconstruct(grids[c]), height, width, PATCH)
            out[c] = np.where(mask, coded, pred[c])
    return out


def decode(payload: bytes, ref: Reference, books, shapes: list[tuple[int, int]]) -> Reference:
    """Inverse of :func:`encode`: the reference (decoded planes and grids) of the P-frame ``payload``; ``shapes``:
    (rows, columns) of every plane."""
    from diffcodec.methods.opq import _decode_plan, context_ids, diagonals

    if len(ref.planes) != len(books) or [np.shape(p) for p in ref.planes] != [tuple(s) for s in shapes]:
        raise CorruptInputError("corrupt clip: a P-frame's reference does not match the clip")
    groups = plane_groups(ref.planes)
    height, width = shapes[0]
    dec = Decoder(payload)
    levels = [dec.uniform(FLAG_CONTEXTS, FLAG_LEVELS) for _ in groups]
    flags = []
    for group, lv in zip(groups, levels):
        gh, gw = (-(-n // PATCH) for n in shapes[group[0]])
        flag_table = _flag_table(lv)
        intra = np.zeros((gh, gw), dtype=bool)
        for rows, cols in diagonals(gh, gw):
            intra[rows, cols] = dec.categorical_in_context(flag_table, _flag_contexts(intra, rows, cols)) == 1
        flags.append(intra)
    scale = int(dec.uniform(1, len(MV_SCALES))[0])
    if scale >= len(MV_SCALES):
        raise CorruptInputError("corrupt opq P-frame: vector table out of range")
    mbh, mbw = motion.grid_shape(height, width)
    has_skip = _mb_skip_mask(flags, groups, (mbh, mbw))
    mvs = np.zeros((mbh, mbw, 2), dtype=np.int64)
    tables = mv_tables()
    for r in range(mbh):
        pred_r = motion.predictors(mvs, r)
        n = int(has_skip[r].sum())
        d = dec.categorical_in_context(tables, np.full(2 * n, scale)).reshape(n, 2) - MV_SUPPORT
        row = pred_r.copy()
        row[has_skip[r]] += d
        mvs[r] = row
    grids: list[np.ndarray] = [np.empty(0, np.int64)] * len(books)
    for intra, group in zip(flags, groups):
        gh, gw = intra.shape
        plan = _decode_plan(gh, gw)
        flat_intra = intra.ravel()
        group_books = [books[c] for c in group]
        itables, offsets = index_tables(group_books)
        state = np.concatenate([ref.grids[c].transpose(2, 0, 1).reshape(ref.grids[c].shape[2], -1) for c in group])
        g = np.concatenate([state, np.full((len(state), 1), KSUB // 2, dtype=state.dtype)], axis=1)
        for pos, left, top, tl in plan:
            sel = flat_intra[pos]
            if sel.any():
                p = pos[sel]
                ctx = context_ids(g[:, left[sel]], g[:, top[sel]], g[:, tl[sel]]) + offsets[:, None]
                g[:, p] = dec.categorical_in_context(itables, ctx.ravel()).reshape(len(g), len(p))
        k = 0
        for c, book in zip(group, group_books):
            grids[c] = g[k:k + book.m, :-1].reshape(book.m, gh, gw).transpose(1, 2, 0).copy()
            k += book.m
    if write_payload(flags, levels, scale, mvs, grids, books, groups) != bytes(payload):
        raise CorruptInputError("corrupt opq P-frame: it is not the exact coding of what it decodes to "
                                "(altered, truncated or trailing data)")
    pred = _predict(ref.planes, mvs, groups)
    return Reference(_as_planes(_reconstruct(flags, groups, pred, grids, books), ref.planes), grids)
