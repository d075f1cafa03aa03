"""Device-independent seeded Gaussian codebooks for codebook codecs (DDCM, ``methods/ddcm/``).

Every random number a decoder must re-create comes from a counter-based generator on the CPU, keyed by
``(seed, kind, step, index)``, and is only then moved to the model's device. So a file encoded on a GPU
decodes on a CPU (and with any thread count) with the very same noise vectors; only the network's own
float rounding can differ between devices.

**Generator** (id ``"philox-np"``, recorded in the file): numpy's ``Generator(Philox(key=KEY))``
(Philox4x64-10, counter 0) and its ``standard_normal`` (the 256-layer ziggurat of numpy >= 1.17), in float64.
``KEY`` is the 128-bit integer

    KEY = seed << 64 | kind << 56 | step << 32 | index      (seed < 2**64, kind < 2**8, step < 2**24, index < 2**32)

with ``kind`` one of :data:`KIND_XT` (the initial x_T), :data:`KIND_IID` (codeword ``index`` of an i.i.d.
codebook), :data:`KIND_SHIFT` (field ``index`` of a shift or mshift codebook), :data:`KIND_CHOICE` (the random
index choices of compressed generation; encoder side only) or :data:`KIND_SIGNS` (the +-1 mask of an mshift
codebook, from the raw Philox words). ``tests/test_ddcm.py`` pins the first values of these streams, so a numpy
release that changed the ziggurat would be caught.

**Codebooks** of ``K`` unit-variance Gaussian vectors of shape ``(C, H, W)`` for coding step ``step``:

* :class:`IIDCodebook` (``"iid"``, the paper's): codeword ``k`` is ``standard_normal(C*H*W)`` of key
  ``(seed, KIND_IID, step, k)`` reshaped in C order. The encoder scores all K in chunks (never K x d at once);
  a decoder generates only the codewords it was told.
* :class:`ShiftCodebook` (``"shift"``): circular 2-D shifts of a few seeded fields. The offsets form the grid
  ``oy in 0, 4, 8, .. < H`` x ``ox in 0, 4, 8, .. < W`` in raster order (``S = ceil(H/4) * ceil(W/4)`` of them);
  codeword ``k`` is field ``f = k // S`` (``standard_normal(C*H*W)`` of key ``(seed, KIND_SHIFT, step, f)``,
  shape (C, H, W)) rolled by offset ``s = k % S``: ``z_k[c, y, x] = g_f[c, (y - oy_s) mod H, (x - ox_s) mod W]``.
  Every codeword is exactly N(0, I); two distinct shifts of one white field are uncorrelated; and the scores
  of all shifts of a field come from one FFT cross-correlation. But every shift has the same per-channel sum,
  and for smooth residuals the scores of neighbouring shifts are strongly correlated, so it is kept for
  comparison only (see :class:`ModShiftCodebook`).
* :class:`ModShiftCodebook` (``"mshift"``, the default): ``z_k = D * roll(g_f, (oy, ox))`` over all offsets
  (stride 1: ``oy, ox = divmod(k mod (H*W), W)``, ``f = k div (H*W)``), with ``g_f`` as for ``shift`` and one
  +-1 mask ``D`` per step (:func:`random_signs` of key ``(seed, KIND_SIGNS, step, 0)``). Scores are one FFT
  cross-correlation of the field with ``D r``, which is white whatever ``r`` is, so they behave like those of
  i.i.d. codewords, at the cost of ``shift`` (end to end against ``iid``: benchmarks/RESULTS.md, "Codebook kinds
  end to end at equal bits").
"""

from __future__ import annotations

import math

import numpy as np

GENERATOR_ID = "philox-np"
KIND_XT, KIND_IID, KIND_SHIFT, KIND_CHOICE, KIND_SIGNS = 0, 1, 2, 3, 4
MAX_SEED = 2**64 - 1
MAX_STEP = 2**24 - 1
MAX_INDEX = 2**32 - 1
SHIFT_STRIDE = 4
TILE_FLOATS = 1 << 16           # shift/mshift combining: rows per tile = TILE_FLOATS // (C W) (512 KiB float64)
CHUNK_FLOATS = 1 << 22          # i.i.d. scoring: codewords per chunk = max(1, CHUNK_FLOATS // d) (32 MiB float64)


def philox_key(seed: int, kind: int, step: int, index: int) -> int:
    """The 128-bit Philox key of one stream (see the module docstring)."""
    if not (0 <= seed <= MAX_SEED and 0 <= kind < 256 and 0 <= step <= MAX_STEP and 0 <= index <= MAX_INDEX):
        raise ValueError(f"rng key out of range: seed={seed}, kind={kind}, step={step}, index={index}")
    return (int(seed) << 64) | (int(kind) << 56) | (int(step) << 32) | int(index)


def generator(seed: int, kind: int, step: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=philox_key(seed, kind, step, index)))


def random_signs(seed: int, kind: int, step: int, index: int, shape) -> np.ndarray:
    """``prod(shape)`` signs +-1.0 (float64, C order) of stream ``(seed, kind, step, index)``: element j is -1 when
    bit j mod 64 (least significant first) of raw 64-bit Philox output word j div 64 is set."""
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    words = generator(seed, kind, step, index).bit_generator.random_raw(-(-n // 64))
    bits = np.unpackbits(np.asarray(words, dtype="<u8").view(np.uint8), bitorder="little")[:n]
    return (1.0 - 2.0 * bits).reshape(shape)


def gaussian(seed: int, kind: int, step: int, index: int, shape) -> np.ndarray:
    """``prod(shape)`` standard normals (float64, C order) of stream ``(seed, kind, step, index)``."""
    shape = tuple(int(s) for s in shape)
    return generator(seed, kind, step, index).standard_normal(math.prod(shape)).reshape(shape)


class Codebook:
    """K codewords of shape ``(C, H, W)`` for one coding step; regenerated, never stored."""

    kind: str

    def __init__(self, seed: int, step: int, size: int, shape):
        self.seed, self.step, self.size = int(seed), int(step), int(size)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"codebook shape must be (C, H, W), got {self.shape}")
        if not 1 <= self.size <= MAX_INDEX:
            raise ValueError(f"codebook size must be in 1..{MAX_INDEX}, got {self.size}")
        self.dim = math.prod(self.shape)

    def vector(self, k: int) -> np.ndarray:
        """Codeword k, float64 (C, H, W)."""
        raise NotImplementedError

    def scores(self, r: np.ndarray) -> np.ndarray:
        """``<z_k, r>`` for every k (float64, shape (K,)); ``r`` has the codebook's shape."""
        raise NotImplementedError

    def combine(self, indices, signs, *, per_codeword: bool = False) -> np.ndarray:
        """``sum_j signs[j] * z_{indices[j]} / sqrt(M)`` as float32 (C, H, W).

        Normative order: float64, accumulated over j in the given order (ascending indices) starting from
        the first term, each term's sign applied by negation, then divided by ``sqrt(M)`` (one correctly
        rounded float64 division), then rounded to float32. For M = 1 this is the codeword itself (times its
        sign). Every operation is element-wise IEEE arithmetic, identical on every machine. Kinds may sum faster
        with the same bits; ``per_codeword`` forces the literal per-codeword sum (the reference they are tested
        against)."""
        indices, signs = list(indices), list(signs)
        if not indices or len(indices) != len(signs):
            raise ValueError("need one sign per index and at least one index")
        acc = (Codebook._accumulate if per_codeword else type(self)._accumulate)(self, indices, signs)
        if len(indices) > 1:
            acc = acc / math.sqrt(len(indices))
        return acc.astype(np.float32)

    def _accumulate(self, indices: list, signs: list) -> np.ndarray:
        """The float64 sum ``sum_j signs[j] z_{indices[j]}`` in the normative order, codeword by codeword."""
        acc = None
        for k, s in zip(indices, signs):
            z = self.vector(int(k))
            z = -z if s < 0 else z
            acc = z.copy() if acc is None else acc + z
        return acc


class IIDCodebook(Codebook):
    kind = "iid"

    def vector(self, k: int) -> np.ndarray:
        if not 0 <= k < self.size:
            raise IndexError(f"codeword {k} outside 0..{self.size - 1}")
        return gaussian(self.seed, KIND_IID, self.step, k, self.shape)

    def scores(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        chunk = max(1, CHUNK_FLOATS // self.dim)
        out = np.empty(self.size, dtype=np.float64)
        block = np.empty((min(chunk, self.size), self.dim), dtype=np.float64)
        for start in range(0, self.size, chunk):
            n = min(chunk, self.size - start)
            for j in range(n):
                generator(self.seed, KIND_IID, self.step, start + j).standard_normal(out=block[j])
            out[start:start + n] = block[:n] @ r
        return out


class ShiftCodebook(Codebook):
    kind = "shift"
    stride = SHIFT_STRIDE

    def __init__(self, seed: int, step: int, size: int, shape):
        super().__init__(seed, step, size, shape)
        _, h, w = self.shape
        self.oy = np.arange(0, h, self.stride)
        self.ox = np.arange(0, w, self.stride)
        self.shifts = len(self.oy) * len(self.ox)          # S: codewords per field
        self.fields = -(-self.size // self.shifts)          # F = ceil(K / S)
        self._cache: dict[int, np.ndarray] = {}

    def offset(self, k: int) -> tuple[int, int, int]:
        """(field, oy, ox) of codeword k."""
        if not 0 <= k < self.size:
            raise IndexError(f"codeword {k} outside 0..{self.size - 1}")
        f, s = divmod(int(k), self.shifts)
        return f, int(self.oy[s // len(self.ox)]), int(self.ox[s % len(self.ox)])

    def field(self, f: int) -> np.ndarray:
        g = self._cache.get(f)
        if g is None:
            g = self._cache[f] = gaussian(self.seed, KIND_SHIFT, self.step, f, self.shape)
        return g

    def vector(self, k: int) -> np.ndarray:
        f, oy, ox = self.offset(k)
        return np.roll(self.field(f), (oy, ox), axis=(1, 2))

    def _accumulate(self, indices: list, signs: list) -> np.ndarray:
        """The same sum bit for bit, faster (RESULTS.md, "Speed work"): each field is extended periodically
        to (C, 2H, 2W), so a rolled codeword is one plain slice of it, and the sum runs over row tiles that stay
        in cache, every element still accumulating its terms in the normative order (a - z == a + (-z)
        exactly)."""
        if len(indices) == 1:          # one roll: cheaper than extending the field
            return Codebook._accumulate(self, indices, signs)
        terms = [(self.offset(int(k)), s < 0) for k, s in zip(indices, signs)]
        periodic = {f: np.tile(self.field(f), (1, 2, 2)) for f in sorted({t[0][0] for t in terms})}
        c, h, w = self.shape
        acc = np.empty(self.shape, dtype=np.float64)
        rows = max(1, TILE_FLOATS // (c * w))
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            tile = acc[:, y0:y1]
            for j, ((f, oy, ox), negative) in enumerate(terms):
                src = periodic[f][:, h + y0 - oy:h + y1 - oy, w - ox:2 * w - ox]
                if j == 0:
                    np.negative(src, out=tile) if negative else np.copyto(tile, src)
                else:
                    (np.subtract if negative else np.add)(tile, src, out=tile)
        return self._modulate(acc)

    def _modulate(self, acc: np.ndarray) -> np.ndarray:
        return acc

    def scores(self, r: np.ndarray) -> np.ndarray:
        """score(f, o) = sum_u g_f[u] r[u + o] (circular), for all o at once: irfft2(conj(G_f) R) summed over
        channels, sampled on the offset grid."""
        r = np.asarray(r, dtype=np.float64).reshape(self.shape)
        _, h, w = self.shape
        R = np.fft.rfft2(r)
        out = np.empty(self.size, dtype=np.float64)
        for f in range(self.fields):
            G = np.fft.rfft2(self.field(f))
            corr = np.fft.irfft2((np.conj(G) * R).sum(axis=0), s=(h, w))
            grid = corr[np.ix_(self.oy, self.ox)].reshape(-1)
            start = f * self.shifts
            n = min(self.shifts, self.size - start)
            out[start:start + n] = grid[:n]
            if self.fields > 1:
                self._cache.pop(f, None)      # only the chosen codewords' fields are needed again
        return out


class ModShiftCodebook(ShiftCodebook):
    """Sign-modulated circular shifts: ``z_k = D * roll(g_f, (oy, ox))`` with one seeded +-1 mask D per step,
    over ALL offsets (stride 1, S = H * W per field). Scores ``<z_k, r> = <roll(g_f, o), D r>``: one FFT
    cross-correlation of the field with the modulated residual D r, which is white whatever r is (the random
    signs remove its mean and its spatial correlation), so the K scores are nearly independent even for
    smooth, image-like residuals, where plain shifts' scores are strongly correlated."""

    kind = "mshift"
    stride = 1

    def __init__(self, seed: int, step: int, size: int, shape):
        super().__init__(seed, step, size, shape)
        self._signs: np.ndarray | None = None

    @property
    def signs(self) -> np.ndarray:
        if self._signs is None:
            self._signs = random_signs(self.seed, KIND_SIGNS, self.step, 0, self.shape)
        return self._signs

    def vector(self, k: int) -> np.ndarray:
        return self.signs * super().vector(k)

    def scores(self, r: np.ndarray) -> np.ndarray:
        return super().scores(np.asarray(r, dtype=np.float64).reshape(self.shape) * self.signs)

    def _modulate(self, acc: np.ndarray) -> np.ndarray:
        # sum_j s_j (D * z_j) == D * sum_j s_j z_j exactly: D is +-1 and rounding is symmetric under negation
        return np.multiply(acc, self.signs, out=acc)


CODEBOOKS: dict[str, type[Codebook]] = {"iid": IIDCodebook, "shift": ShiftCodebook, "mshift": ModShiftCodebook}


def make_codebook(kind: str, seed: int, step: int, size: int, shape) -> Codebook:
    try:
        cls = CODEBOOKS[kind]
    except KeyError:
        raise ValueError(f"unknown codebook kind {kind!r} (known: {', '.join(CODEBOOKS)})") from None
    return cls(seed, step, size, shape)


def initial_noise(seed: int, shape) -> np.ndarray:
    """x_T: float32 standard normals of stream ``(seed, KIND_XT, 0, 0)``."""
    return gaussian(seed, KIND_XT, 0, 0, shape).astype(np.float32)


class InitialNoiseRows:
    """:func:`initial_noise` of shape (C, H, W) handed out by rows, in increasing order, without holding it whole:
    one stream per channel plane, advanced to that plane by drawing and dropping (``standard_normal`` draws are
    sequential, so the rows are bit-identical to the whole draw's)."""

    CHUNK = 1 << 20

    def __init__(self, seed: int, shape):
        self.channels, self.height, self.width = (int(s) for s in shape)
        self.gens = []
        for c in range(self.channels):
            g = generator(seed, KIND_XT, 0, 0)
            left = c * self.height * self.width
            while left:
                n = min(left, self.CHUNK)
                g.standard_normal(n)
                left -= n
            self.gens.append(g)
        self.start = 0                                         # the first row held
        self.held = np.empty((self.channels, 0, self.width), np.float32)

    def rows(self, first: int, stop: int) -> np.ndarray:
        """Rows ``first .. stop-1`` (float32, (C, stop - first, W)); ``first`` never below an earlier call's."""
        if not self.start <= first <= stop <= self.height:
            raise ValueError(f"rows {first}..{stop} after {self.start} of {self.height}")
        need = stop - (self.start + self.held.shape[1])
        if need > 0:            # drawn in chunks of float64 straight into float32 rows: no (C, rows, W) float64
            keep_from = min(first, self.start + self.held.shape[1])
            keep = self.held[:, keep_from - self.start:]
            held = np.empty((self.channels, keep.shape[1] + need, self.width), np.float32)
            held[:, :keep.shape[1]] = keep
            for c, g in enumerate(self.gens):
                flat = held[c, keep.shape[1]:].reshape(-1)
                for i in range(0, flat.size, self.CHUNK):
                    flat[i:i + self.CHUNK] = g.standard_normal(min(self.CHUNK, flat.size - i))
            self.held, self.start = held, keep_from
        self.held = self.held[:, first - self.start:]
        self.start = first
        return self.held[:, :stop - first]
