"""Block motion: search (encoder only) and half-pel compensation (encoder and decoder) on float32 planes.

One motion vector per 16x16 macroblock, in half-pel units, (dy, dx). A predicted sample at (y, x) of a macroblock
with vector (vy, vx) reads the reference at (y + vy / 2, x + vx / 2): integer positions are copied, half-pel
positions average 2 or 4 neighbours (``(a + b) * 0.5``, ``((a + b) + (c + d)) * 0.25`` in float32, in that order)
and positions outside the frame clamp to its edge. Every step is element-wise IEEE float32, so encoder and
decoder build identical predictions on any machine. The rule is part of the bitstream (formats/ddc-v1.md,
"opq P-frames").
"""

from __future__ import annotations

import numpy as np

MB = 16                 # macroblock size (pixels)
_F = np.float32


def grid_shape(height: int, width: int) -> tuple[int, int]:
    return -(-height // MB), -(-width // MB)


def _vectors_per_pixel(mvs: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    per = np.repeat(np.repeat(mvs, MB, axis=0), MB, axis=1)[:height, :width]     # (H, W, 2)
    return per[..., 0], per[..., 1]


def compensate(reference: np.ndarray, mvs: np.ndarray) -> np.ndarray:
    """The prediction (C, H, W) float32 of every plane of ``reference`` (C, H, W) under ``mvs`` (MBH, MBW, 2)
    int half-pel vectors."""
    ref = np.asarray(reference, dtype=np.float32)
    _, height, width = ref.shape
    vy, vx = _vectors_per_pixel(np.asarray(mvs, dtype=np.int32), height, width)
    y = np.arange(height, dtype=np.int32)[:, None] * 2 + vy      # half-pel source position
    x = np.arange(width, dtype=np.int32)[None, :] * 2 + vx
    y0, x0 = y >> 1, x >> 1                                       # floor
    ya = np.clip(y0, 0, height - 1)
    xa = np.clip(x0, 0, width - 1)
    flat = ref.reshape(ref.shape[0], -1)
    ia = ya * width + xa
    fy, fx = (y & 1).astype(bool), (x & 1).astype(bool)
    if not (fy.any() or fx.any()):              # whole-pel vectors only: a plain copy
        return flat[:, ia]
    yb = np.minimum(y0 + 1, height - 1).clip(0)
    xb = np.minimum(x0 + 1, width - 1).clip(0)
    ib, ic, id_ = ya * width + xb, yb * width + xa, yb * width + xb
    out = np.empty_like(ref)
    for c in range(ref.shape[0]):
        a, b, cc, d = flat[c][ia], flat[c][ib], flat[c][ic], flat[c][id_]
        both = ((a + b) + (cc + d)) * _F(0.25)
        out[c] = np.where(fy & fx, both, np.where(fx, (a + b) * _F(0.5), np.where(fy, (a + cc) * _F(0.5), a)))
    return out


def compensate_subsampled(reference: np.ndarray, mvs: np.ndarray) -> np.ndarray:
    """The prediction (C, h, w) float32 of 2x-subsampled planes (4:2:0 chroma; an 8x8 block per macroblock)
    under the luma vectors ``mvs``: a half-pel luma vector is a quarter-pel chroma one, interpolated bilinearly
    with integer weights, ``((a (4 - fx) + b fx) (4 - fy) + (c (4 - fx) + d fx) fy) / 16`` in float32 in that
    order (exact copies at whole positions)."""
    ref = np.asarray(reference, dtype=np.float32)
    _, height, width = ref.shape
    half = MB // 2
    per = np.repeat(np.repeat(np.asarray(mvs, dtype=np.int32), half, axis=0), half, axis=1)[:height, :width]
    y = np.arange(height, dtype=np.int32)[:, None] * 4 + per[..., 0]        # quarter-pel source position
    x = np.arange(width, dtype=np.int32)[None, :] * 4 + per[..., 1]
    y0, x0 = y >> 2, x >> 2
    fy, fx = (y & 3).astype(np.float32), (x & 3).astype(np.float32)
    ya, xa = np.clip(y0, 0, height - 1), np.clip(x0, 0, width - 1)
    yb, xb = np.clip(y0 + 1, 0, height - 1), np.clip(x0 + 1, 0, width - 1)
    flat = ref.reshape(ref.shape[0], -1)
    ia, ib, ic, id_ = ya * width + xa, ya * width + xb, yb * width + xa, yb * width + xb
    gx, gy = _F(4) - fx, _F(4) - fy
    out = np.empty_like(ref)
    for c in range(ref.shape[0]):
        a, b, cc, d = flat[c][ia], flat[c][ib], flat[c][ic], flat[c][id_]
        out[c] = ((a * gx + b * fx) * gy + (cc * gx + d * fx) * fy) * _F(0.0625)
    return out


def _mb_sad(cur: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Sum of absolute differences per macroblock (MBH, MBW) of two (H, W) planes."""
    height, width = cur.shape
    mbh, mbw = grid_shape(height, width)
    diff = np.abs(cur - pred)
    diff = np.pad(diff, ((0, mbh * MB - height), (0, mbw * MB - width)))
    return diff.reshape(mbh, MB, mbw, MB).sum(axis=(1, 3))


def _downsample4(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    p = np.pad(plane, ((0, -h % 4), (0, -w % 4)), mode="edge")
    return p.reshape(p.shape[0] // 4, 4, p.shape[1] // 4, 4).mean(axis=(1, 3), dtype=np.float32)


def search(cur: np.ndarray, reference: np.ndarray, radius: int = 16, mv_cost: float = 4.0) -> np.ndarray:
    """Motion vectors (MBH, MBW, 2) in half-pel units that predict luma plane ``cur`` (H, W) from ``reference``:
    a full search of +-radius/4 on 4x4-averaged planes, then at full resolution the 2-pixel neighbours of the
    best coarse vector and of the zero vector, the 1-pixel neighbours of the best so far, and its 8 half-pel
    neighbours. Cost: SAD + ``mv_cost`` per half-pel of vector length (a small pull towards still blocks, whose
    vectors are cheapest to code)."""
    height, width = cur.shape
    mbh, mbw = grid_shape(height, width)
    cur = np.asarray(cur, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)[None]

    def cost(mvs: np.ndarray) -> np.ndarray:
        pred = compensate(ref, mvs)[0]
        return _mb_sad(cur, pred) + mv_cost * np.abs(mvs).sum(-1)

    # coarse: 4x4-averaged planes, a 4x4 block per macroblock, integer vectors of the coarse grid
    cc, rc = _downsample4(cur), _downsample4(ref[0])
    r4 = max(1, radius // 4)
    best_c = np.full((mbh, mbw), np.inf, dtype=np.float32)
    best_v = np.zeros((mbh, mbw, 2), dtype=np.int64)
    hc, wc = cc.shape
    padded = np.pad(rc, r4, mode="edge")
    for dy in range(-r4, r4 + 1):
        for dx in range(-r4, r4 + 1):
            shifted = padded[r4 + dy:r4 + dy + hc, r4 + dx:r4 + dx + wc]
            d = np.abs(cc - shifted)
            d = np.pad(d, ((0, mbh * 4 - hc), (0, mbw * 4 - wc)))
            c = d.reshape(mbh, 4, mbw, 4).sum(axis=(1, 3)) * 16 + mv_cost * 8 * (abs(dy) + abs(dx))
            better = c < best_c
            best_c = np.where(better, c, best_c)
            best_v[better] = (dy * 8, dx * 8)                  # coarse pixel = 4 pixels = 8 half-pels
    # full resolution: a 2-pixel step around the coarse vector and around zero, then a 1-pixel step
    best_v_full = np.zeros_like(best_v)
    best_cost = cost(best_v_full)

    def try_around(centre: np.ndarray, step: int, with_centre: bool = False) -> None:
        nonlocal best_cost
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if not (dy or dx or with_centre):
                    continue
                cand = centre + np.array([dy, dx])
                c = cost(cand)
                better = c < best_cost
                best_cost = np.where(better, c, best_cost)
                best_v_full[better] = cand[better]

    try_around(best_v, 4, with_centre=True)
    try_around(np.zeros_like(best_v), 4)
    try_around(best_v_full.copy(), 2)
    # half-pel refinement
    try_around(best_v_full.copy(), 1)
    return best_v_full


def predictors(mvs: np.ndarray, row: int) -> np.ndarray:
    """The vector predictor (MBW, 2) of every macroblock of ``row``: the component-wise median of the top-left,
    top and top-right vectors of the row above (edges replicated), zero on row 0. Depends only on the row
    above, so a whole row is coded at once."""
    if row == 0:
        return np.zeros((mvs.shape[1], 2), dtype=np.int64)
    above = mvs[row - 1]
    left = np.concatenate([above[:1], above[:-1]])
    right = np.concatenate([above[1:], above[-1:]])
    return np.median(np.stack([left, above, right]), axis=0).astype(np.int64)
