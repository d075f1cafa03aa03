"""OPQ codec: a model-based latent of Optimized Product Quantization indices.

Scribano, Franchini, Pezzotti, Rossi, "Denoising Diffusion Models on Model-Based Latent Space",
Algorithms 16(11), 2023. The image is converted to YCbCr, each channel is cut into 8x8 patches, and each
patch (a 64-vector) is rotated by the channel's learned OPQ matrix R and split into M sub-vectors, each
replaced by the index of its nearest codeword (256 per sub-quantizer, 8 bits). The bit budget per patch is
written OPQ-{Y}-{Cb}-{Cr}, e.g. OPQ-32-8-8 = 4 luma and 1+1 chroma indices per 8x8 block.

    RGB --> YCbCr --> 8x8 patches x --> y = R x --> [y_1 | ... | y_M] --> k_m = argmin |y_m - C_m[k]|
                                                                            |
      .ddc <-- range coder <-- context model p(k | MED(left, top, top-left), activity) <--+

Decoding sums precomputed per-codeword patch contributions T_m[k] = C_m[k] R_m (stored in fp16 in the
codebook file) in a fixed order with element-wise float32 adds, so every machine rebuilds the same pixels,
and the encoder's reconstruction is exactly the decoder's. Codewords are sorted along the first principal
component of each codebook, as in the paper, so nearby indices mean similar patches; the context model
exploits that ordering and the spatial correlation of neighbouring patches.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from diffcodec import artifacts, color, yuv
from diffcodec.entropy import Decoder, Encoder, TableSet
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods import Codec, Encoded, opq_inter, register

PATCH = 8
KSUB = 256                      # codewords per sub-quantizer (8-bit indices)
STRIPE_PIXELS = 1 << 20         # images are quantized and reconstructed about this many pixels at a time (memory)


def stripe_rows(width: int) -> int:
    """Rows per stripe of a ``width``-wide image: a whole number of patch rows, at least one."""
    return max(PATCH, STRIPE_PIXELS // max(width, 1) // PATCH * PATCH)
CHANNEL_NAMES = ("y", "cb", "cr")

# Bits per 8x8 patch for Y, Cb, Cr. Each 8 bits is one sub-quantizer.
PRESETS: dict[str, tuple[int, int, int]] = {
    "opq-16-8-8": (16, 8, 8),
    "opq-32-8-8": (32, 8, 8),
    "opq-64-16-16": (64, 16, 16),
    "opq-128-32-32": (128, 32, 32),
}

# Context = (MED prediction // 8) * N_ACTIVITY + activity bucket; activity = |left-tl| + |top-tl|.
ACTIVITY_EDGES = np.array([2, 5, 10, 20, 40, 80])
N_ACTIVITY = len(ACTIVITY_EDGES) + 1
N_CONTEXTS = (KSUB // 8) * N_ACTIVITY
_ACTIVITY_BUCKET = np.searchsorted(ACTIVITY_EDGES, np.arange(2 * KSUB), side="right")   # activity -> bucket


def causal_neighbours(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """left, top and top-left index of each (row, col), from already-coded positions only.

    Missing neighbours: on the first row top = top-left = left; in the first column left = top-left = top;
    at (0, 0) all are KSUB // 2. The rule is part of the bitstream format.
    """
    has_top, has_left = rows > 0, cols > 0
    r1, c1 = np.maximum(rows - 1, 0), np.maximum(cols - 1, 0)
    left = grid[rows, c1]
    top = grid[r1, cols]
    tl = grid[r1, c1]
    mid = np.full_like(left, KSUB // 2)
    left_ = np.where(has_left, left, np.where(has_top, top, mid))
    top_ = np.where(has_top, top, left_)
    tl_ = np.where(has_top & has_left, tl, np.where(has_top, top_, left_))
    return left_, top_, tl_


def context_ids(left: np.ndarray, top: np.ndarray, tl: np.ndarray) -> np.ndarray:
    # LOCO-I's median predictor as a clip: left + top - tl clipped to [min(left, top), max(left, top)] is lo
    # when tl >= hi and hi when tl <= lo (fewer array operations: the decoder calls this per anti-diagonal)
    med = np.minimum(np.maximum(left + top - tl, np.minimum(left, top)), np.maximum(left, top))
    activity = _ACTIVITY_BUCKET[np.abs(left - tl) + np.abs(top - tl)]
    return (med >> 3) * N_ACTIVITY + activity


def all_context_ids(grid: np.ndarray) -> np.ndarray:
    """Context of every position of an index grid (the encoder's view: everything is known)."""
    gh, gw = grid.shape
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    return context_ids(*causal_neighbours(grid, rows, cols))


def diagonals(gh: int, gw: int):
    """Anti-diagonals of the grid in coding order: each position's causal neighbours lie on earlier ones."""
    for d in range(gh + gw - 1):
        rows = np.arange(max(0, d - gw + 1), min(d, gh - 1) + 1)
        yield rows, d - rows


PLAN_CACHE_PATCHES = 1 << 16   # decode plans of grids up to this many patches (a 4-megapixel image) are kept


def _decode_plan(gh: int, gw: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_build_plan`, kept for small grids (a clip decodes every frame with the same plan); a big one is
    rebuilt each time (kept, 16 plans of big fuzzed headers held gigabytes in a long-lived process)."""
    return _cached_plan(gh, gw) if gh * gw <= PLAN_CACHE_PATCHES else _build_plan(gh, gw)


@functools.lru_cache(maxsize=16)
def _cached_plan(gh: int, gw: int):
    return _build_plan(gh, gw)


def _build_plan(gh: int, gw: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per diagonal: flat positions and the flat positions of their left / top / top-left neighbours under the
    rules of :func:`causal_neighbours`, in a grid flattened with one extra cell (index gh * gw) that holds
    KSUB // 2 (the value of every neighbour of (0, 0))."""
    flat = np.arange(gh * gw).reshape(gh, gw)
    mid = gh * gw
    plan = []
    for rows, cols in diagonals(gh, gw):
        has_top, has_left = rows > 0, cols > 0
        r1, c1 = np.maximum(rows - 1, 0), np.maximum(cols - 1, 0)
        left = np.where(has_left, flat[rows, c1], np.where(has_top, flat[r1, cols], mid))
        top = np.where(has_top, flat[r1, cols], left)
        tl = np.where(has_top & has_left, flat[r1, c1], np.where(has_top, top, left))
        plan.append((flat[rows, cols], left, top, tl))
    return plan


class ChannelCodebook:
    """One channel's OPQ: rotation R (64x64), centroids (M, 256, 64/M), decode tables (M, 256, 64)
    and context frequency tables (M, N_CONTEXTS, 256)."""

    def __init__(self, rotation, centroids, tables, ctx_freq):
        self.rotation = rotation.astype(np.float32)
        self.centroids = centroids.astype(np.float32)
        self.tables = tables.astype(np.float32)
        self.ctx_freq = ctx_freq.astype(np.int32)
        self.ctx_tables = [TableSet(t) for t in self.ctx_freq]      # checked once per load
        self.m = centroids.shape[0]
        self.dsub = centroids.shape[2]
        self._norms = (self.centroids ** 2).sum(-1)

    def assign(self, patches: np.ndarray) -> np.ndarray:
        """(n, 64) float32 -> (n, M) nearest-codeword indices in the rotated space."""
        rotated = patches @ self.rotation.T
        codes = np.empty((patches.shape[0], self.m), dtype=np.int64)
        for m in range(self.m):
            sub = rotated[:, m * self.dsub:(m + 1) * self.dsub]
            codes[:, m] = np.argmin(self._norms[m][None] - 2 * sub @ self.centroids[m].T, axis=1)
        return codes

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """(..., M) indices -> (..., 64) patches; fixed-order element-wise float32 adds (deterministic)."""
        out = self.tables[0][codes[..., 0]].copy()
        for m in range(1, self.m):
            out += self.tables[m][codes[..., m]]
        return out


def _quantize_planes(planes, books: list[ChannelCodebook]):
    """Index grids (one (gh, gw, M) array per channel) and decoded planes of centred planes: a (C, H, W) array,
    or a list of planes of different sizes (4:2:0), given back in the same form."""
    grids, recon = [], []
    for c, plane in enumerate(planes):
        height, width = plane.shape
        patches = color.to_patches(plane, PATCH)
        gh, gw, _ = patches.shape
        grid = books[c].assign(patches.reshape(-1, PATCH * PATCH)).reshape(gh, gw, -1)
        grids.append(grid)
        recon.append(color.from_patches(books[c].reconstruct(grid), height, width, PATCH))
    return grids, (np.stack(recon) if isinstance(planes, np.ndarray) else recon)


def _stack_if_alike(planes: list[np.ndarray]):
    return np.stack(planes) if len({p.shape for p in planes}) == 1 else planes


def _preset_artifact(preset: str) -> str:
    return f"opq/{preset}"


def preset_bits(preset: str) -> tuple[int, int, int]:
    if preset not in PRESETS:
        raise UsageError(f"unknown opq preset {preset!r} (available: {', '.join(PRESETS)})")
    return PRESETS[preset]


_BOOKS: dict[tuple[str, str], list[ChannelCodebook]] = {}      # (preset, sha256) -> its books, built once


def load_codebooks(preset: str) -> tuple[list[ChannelCodebook], str]:
    """The preset's three channel codebooks (built once per file content: a clip decodes every frame with the
    same objects) and the file's sha256."""
    tensors, _, sha = artifacts.load_artifact(_preset_artifact(preset))
    if (preset, sha) in _BOOKS:
        return _BOOKS[(preset, sha)], sha
    books = []
    for name, bits in zip(CHANNEL_NAMES, PRESETS[preset]):
        try:
            book = ChannelCodebook(*(tensors[f"{name}.{k}"] for k in ("rotation", "centroids", "tables", "ctx_freq")))
        except KeyError as e:
            raise ModelError(f"codebook file for {preset} lacks tensor {e}") from None
        if book.m * 8 != bits:
            raise ModelError(f"codebook file for {preset}: channel {name} has {book.m * 8} bits, expected {bits}")
        books.append(book)
    _BOOKS[(preset, sha)] = books
    return books, sha


def encode_indices(enc: Encoder, grid: np.ndarray, tables: list[TableSet]) -> None:
    """Code an (gh, gw, M) index grid, sub-quantizer by sub-quantizer, in diagonal order; ``tables[m]`` holds
    sub-quantizer m's context tables."""
    gh, gw, m_count = grid.shape
    order = [(r, c) for r, c in diagonals(gh, gw)]
    rows = np.concatenate([r for r, _ in order])
    cols = np.concatenate([c for _, c in order])
    for m in range(m_count):
        ctx = all_context_ids(grid[..., m])[rows, cols]
        enc.categorical_in_context(grid[rows, cols, m], tables[m], ctx)


def encode_grids(grids: list[np.ndarray], books: list[ChannelCodebook]) -> bytes:
    """The payload: every channel's index grid in channel order, in one range coder."""
    enc = Encoder()
    for grid, book in zip(grids, books):
        encode_indices(enc, grid, book.ctx_tables)
    return enc.finish()


def decode_indices(dec: Decoder, gh: int, gw: int, tables: list[TableSet],
                   coded: list[tuple[TableSet, np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Inverse of :func:`encode_indices`: the contexts of each anti-diagonal come from the decoded ones before.
    ``coded`` (optional) receives, per sub-quantizer, its table set and the symbols and contexts in coding order
    (what :func:`encode_indices` would code: the decoder's payload check re-encodes them)."""
    plan = _decode_plan(gh, gw)
    grid = np.zeros((gh, gw, len(tables)), dtype=np.int64)
    for m, table in enumerate(tables):
        g = np.full(gh * gw + 1, KSUB // 2, dtype=np.int64)      # the last cell: the missing-neighbour value
        contexts = []
        for pos, left, top, tl in plan:
            ctx = context_ids(g[left], g[top], g[tl])
            g[pos] = dec.categorical_in_context(table, ctx)
            contexts.append(ctx)
        grid[..., m] = g[:-1].reshape(gh, gw)
        if coded is not None:
            order = np.concatenate([pos for pos, *_ in plan])
            coded.append((table, g[order], np.concatenate(contexts)))
    return grid


@register
class OPQCodec(Codec):
    name = "opq"
    presets = {
        "opq-16-8-8": "16+8+8 bits per 8x8 patch (0.5 bpp before entropy coding)",
        "opq-32-8-8": "32+8+8 bits per patch, the paper's choice (0.75 bpp before entropy coding)",
        "opq-64-16-16": "64+16+16 bits per patch (1.5 bpp before entropy coding)",
        "opq-128-32-32": "128+32+32 bits per patch (3 bpp before entropy coding)",
    }
    default_preset = "opq-32-8-8"
    predicts = True
    default_gop = 12
    planar_layouts = ("420", "444")
    encode_options = {"bpp": "the largest preset whose file lands at or under this many bits per pixel "
                              "(instead of a preset)"}
    decode_options = {
        "refine": "run the diffusion refiner (opq-refiner) over the decoded image",
        "steps": "refiner sampling steps (with refine; default 1)",
        "seed": "refiner noise seed (with refine; default 0)",
        "device": "where the refiner runs: auto | cpu | cuda (with refine)",
    }

    def decode_steps(self, encoded: Encoded, **options) -> int:
        """The refiner's steps with refine (none without: the plain decode runs no network)."""
        return (options.get("steps") or 1) if options.get("refine") else 0

    def check_decode_options(self, options: dict) -> None:
        super().check_decode_options(options)
        alone = sorted(k for k in ("steps", "seed") if options.get(k) is not None)
        if alone and not options.get("refine"):
            raise UsageError(f"opq decoding: {', '.join('--' + k for k in alone)} only applies with --refine")

    def _planes(self, image):
        """Centred planes of an RGB / gray image ((C, H, W) array) or of a yuv.PlanarFrame (an array for 4:4:4,
        a list for 4:2:0, whose chroma planes are smaller)."""
        if isinstance(image, yuv.PlanarFrame):
            if image.chroma not in self.planar_layouts:
                raise UsageError(f"opq codes YCbCr planes of {', '.join(self.planar_layouts)} clips, not "
                                 f"{image.chroma!r}")
            return _stack_if_alike(color.planes_to_centered(image.planes, image.color_range))
        if image.shape[2] == 3:
            return color.rgb_to_ycbcr_centered(image)
        return color.gray_to_centered(image[..., 0])

    @staticmethod
    def _image(planes, planar: tuple[str, str] | None = None):
        """The output of decoded centred planes: RGB / gray, or with ``planar`` = (chroma, range) the uint8
        planes."""
        if planar is not None:
            return color.centered_to_planes(planes, planar[1])
        if len(planes) == 3:
            return color.ycbcr_centered_to_rgb(planes)
        return color.centered_to_gray(planes)[..., None]

    def quantize(self, image: np.ndarray, preset: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Index grids (one (gh, gw, M) array per channel) and the exact decoded image, without coding."""
        preset_bits(preset)
        return self._quantize(image, load_codebooks(preset)[0])

    def _quantize(self, image: np.ndarray, books: list[ChannelCodebook]) -> tuple[list[np.ndarray], np.ndarray]:
        grids, recon = _quantize_planes(self._planes(image), books)
        return grids, self._image(recon)

    def compress_with_reconstruction(self, image: np.ndarray, preset: str | None = None,
                                     **params) -> tuple[Encoded, np.ndarray]:
        return self._compress(image, preset, params, reference=False)[:2]

    def _code(self, image, preset: str, reference: bool = True) -> tuple[Encoded, Any, opq_inter.Reference | None]:
        """One quantization at ``preset``: the encoding, the decoded image (planes for a yuv.PlanarFrame) and the
        reference it leaves (``reference`` False: none, and an image is quantized in stripes of
        :func:`stripe_rows` rows, so memory follows the stripe, not the image)."""
        preset_bits(preset)
        books, sha = load_codebooks(preset)
        if reference or isinstance(image, yuv.PlanarFrame):
            grids, planes = _quantize_planes(self._planes(image), books)
            out, ref = self._image(planes, _planar_of(image)), opq_inter.Reference(planes, grids)
        else:
            grids, out = self._quantize_striped(image, books)
            ref = None
        encoded = Encoded(model=preset.removeprefix("opq-"), model_sha=artifacts.sha_prefix32(sha),
                          chunks=[encode_grids(grids, books)])
        return encoded, out, ref

    def _quantize_striped(self, image: np.ndarray, books: list[ChannelCodebook]) -> tuple[list[np.ndarray], np.ndarray]:
        """Index grids and decoded image of an RGB / gray image, a stripe at a time (the same indices as
        quantizing it whole: patches are quantized alone, and a stripe's last patch row is padded as the image's)."""
        height, width, channels = image.shape
        step = stripe_rows(width)
        gh, gw = -(-height // PATCH), -(-width // PATCH)
        grids = [np.empty((gh, gw, books[c].m), dtype=np.int64) for c in range(channels)]
        out = np.empty_like(image)
        for top in range(0, height, step):
            stripe_grids, recon = _quantize_planes(self._planes(image[top:top + step]), books)
            for grid, part in zip(grids, stripe_grids):
                grid[top // PATCH:top // PATCH + part.shape[0]] = part
            out[top:top + step] = self._image(recon)
        return grids, out

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        return self.compress_with_reconstruction(image, preset, **params)[0]

    def _at_bpp(self, image: np.ndarray, bpp, reference: bool = True) -> tuple[Encoded, np.ndarray, Any]:
        """The largest preset (by bits per patch) whose whole file is at or under ``bpp``."""
        from diffcodec.container import framed_size

        if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
            raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
        height, width, channels = image.shape
        smallest = None
        for preset in sorted(PRESETS, key=lambda p: sum(PRESETS[p]), reverse=True):
            coded = self._code(image, preset, reference)
            size = framed_size(self.name, coded[0], width, height, channels)
            if size * 8 <= bpp * height * width:
                return coded
            smallest = size
        raise UsageError(f"--bpp {bpp:g} is below what opq reaches for this {width}x{height} image (smallest file "
                         f"{smallest} bytes = {smallest * 8 / (height * width):.4f} bpp, preset opq-16-8-8)")

    def params_override_preset(self, params: dict) -> bool:
        return params.get("bpp") is not None

    # -q/--quality (methods.QUALITY_SCALE): the smallest preset whose Kodak24 MS-SSIM reaches JPEG's at that
    # quality; from 76 on no preset does (benchmarks/quality_scale.py)
    quality_points = ((0, "opq-16-8-8", {}), (13, "opq-32-8-8", {}), (20, "opq-64-16-16", {}),
                      (39, "opq-128-32-32", {}))
    quality_ceiling = 76

    def coded_setting(self, model: str, params: dict) -> str:
        return "opq-" + model

    def clip_params(self, encoded: Encoded) -> tuple[str | None, dict]:
        return "opq-" + encoded.model, {}

    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        """Options (:attr:`decode_options`): refine=True runs the diffusion refiner (steps, seed, device).
        Reconstructed a stripe at a time (no full-size float planes)."""
        self.check_decode_options(options)
        books = self._books_of(encoded)
        grids = self._decode_grids(encoded, books, _plane_shapes(height, width, channels, None))
        image = np.empty((height, width, channels), dtype=np.uint8)
        step = stripe_rows(width)
        rows = step // PATCH
        for top in range(0, height, step):
            h = min(step, height - top)
            planes = np.stack([color.from_patches(books[c].reconstruct(grid[top // PATCH:top // PATCH + rows]), h,
                                                  width, PATCH) for c, grid in enumerate(grids)])
            image[top:top + h] = self._image(planes)
        return self._refined(image, options) if options.get("refine") else image

    def _books_of(self, encoded: Encoded) -> list[ChannelCodebook]:
        preset = "opq-" + encoded.model
        if preset not in PRESETS:
            raise CorruptInputError(f"opq file names an unknown codebook set {encoded.model!r}")
        books, sha = load_codebooks(preset)
        if artifacts.sha_prefix32(sha) != encoded.model_sha:
            raise ModelError(
                f"file was encoded with a different {preset} codebook (sha256 prefix {encoded.model_sha:08x}, "
                f"installed {sha[:8]}); decode it with the diffcodec release that wrote it"
            )
        return books

    def decompress_keyframe(self, encoded: Encoded, height: int, width: int, channels: int, *,
                            planar: tuple[str, str] | None = None, **options) -> tuple[Any, Any]:
        self.check_decode_options(options)
        books = self._books_of(encoded)
        shapes = _plane_shapes(height, width, channels, planar)
        grids = self._decode_grids(encoded, books, shapes)
        planes = _stack_if_alike([color.from_patches(books[c].reconstruct(grid), h, w, PATCH)
                                  for c, (grid, (h, w)) in enumerate(zip(grids, shapes))])
        return self._output(planes, options, planar), opq_inter.Reference(planes, grids)

    @staticmethod
    def _decode_grids(encoded: Encoded, books: list[ChannelCodebook], shapes) -> list[np.ndarray]:
        if len(encoded.chunks) != 1:
            raise CorruptInputError("opq file must hold exactly one payload chunk")
        dec = Decoder(encoded.chunks[0])
        coded: list[tuple[TableSet, np.ndarray, np.ndarray]] = []
        grids = [decode_indices(dec, -(-h // PATCH), -(-w // PATCH), books[c].ctx_tables, coded)
                 for c, (h, w) in enumerate(shapes)]
        # A range decoder reads garbage as some symbols: the payload must be exactly the coding of what it
        # decodes to (catches trailing and altered words; the symbols are re-encoded as encode_grids codes them).
        enc = Encoder()
        for table, symbols, contexts in coded:
            enc.categorical_in_context(symbols, table, contexts)
        if enc.finish() != bytes(encoded.chunks[0]):
            raise CorruptInputError("corrupt opq payload: it is not the exact coding of the indices it decodes to "
                                    "(altered, truncated or trailing data)")
        return grids

    def _output(self, planes, options: dict, planar: tuple[str, str] | None = None):
        if not options.get("refine"):
            return self._image(planes, planar)
        # the refiner is an RGB network: planar frames visit RGB (chroma repeated 2x2 for 4:2:0) and come back
        full = planes if isinstance(planes, np.ndarray) else np.stack(
            [planes[0]] + [yuv.upsample_chroma(c, *planes[0].shape).astype(np.float32) for c in planes[1:]])
        image = self._refined(self._image(full), options)
        if planar is None:
            return image
        back = color.rgb_to_ycbcr_centered(image)
        if planar[0] == "420":
            back = [back[0]] + [yuv.downsample_chroma(c).astype(np.float32) for c in back[1:]]
        return self._image(back, planar)

    @staticmethod
    def _refined(image: np.ndarray, options: dict) -> np.ndarray:
        from diffcodec.device import resolve_device
        from diffcodec.methods.opq_refine import refine

        return refine(image, steps=options.get("steps"), device=resolve_device(options.get("device")),
                      seed=options.get("seed") or 0)

    # ---------------------------------------------------------------- P-frames (methods/opq_inter.py)
    def compress_keyframe(self, image: np.ndarray, preset: str | None = None, *, predicted: bool = False,
                          **params) -> tuple[Encoded, np.ndarray, Any]:
        return self._compress(image, preset, params, reference=True)

    def _compress(self, image, preset: str | None, params: dict, reference: bool):
        self.check_encode_options(params)
        bpp = params.get("bpp")
        if bpp is not None:
            if preset is not None:
                raise UsageError("give an opq preset or a target --bpp, not both")
            return self._at_bpp(image, bpp, reference)
        return self._code(image, preset or self.default_preset, reference)

    def compress_predicted(self, image, reference: Any, key: Encoded, **params) -> tuple[bytes, Any, Any]:
        self.check_encode_options({k: v for k, v in params.items() if k != "lam_scale"})
        books = self._books_of(key)
        lam = params.get("lam_scale", opq_inter.INTRA_LAMBDA)
        payload, ref = opq_inter.encode(self._planes(image), reference, books,
                                        lambda planes: _quantize_planes(planes, books), lam)
        return payload, self._image(ref.planes, _planar_of(image)), ref

    def decompress_predicted(self, payload: bytes, reference: Any, key: Encoded, height: int, width: int,
                             channels: int, *, planar: tuple[str, str] | None = None,
                             **options) -> tuple[Any, Any]:
        self.check_decode_options(options)
        books = self._books_of(key)[:channels]
        ref = opq_inter.decode(payload, reference, books, _plane_shapes(height, width, channels, planar))
        return self._output(ref.planes, options, planar), ref

    # ---------------------------------------------------------------- generation (methods/opq_generate.py)
    can_generate = True
    generate_options = {
        "categorical": "use the categorical model (logits over the 256 codewords) instead of the continuous one",
        "temperature": "categorical sampling temperature gamma (default 1; 0 = argmax at every step)",
        "steps": "strided sampling steps N (default 50)",
        "seed": "seed of the sampler's noise and of the categorical draws (default 0)",
        "refine": "run the opq refiner (1 step, seed 0) over the decoded sample, as `decode --refine` does",
        "device": "where the refiner runs: auto (default), cpu or cuda (the latent sampler always runs on the CPU)",
    }

    def generate_steps(self, **options) -> int:
        """The latent sampler's steps, plus the refiner's one with refine."""
        steps = options.get("steps")
        return (50 if steps is None else steps) + (1 if options.get("refine") else 0)

    def generate(self, height: int, width: int, **options) -> tuple[Encoded, np.ndarray]:
        """A sample of the OPQ-latent generator (options: :attr:`generate_options`) and its opq-32-8-8 encoding:
        decoding it gives the sample (with refine: ``decode --refine`` gives it)."""
        from diffcodec.methods import opq_generate

        return opq_generate.generate(height, width, **options)


def _planar_of(image) -> tuple[str, str] | None:
    return (image.chroma, image.color_range) if isinstance(image, yuv.PlanarFrame) else None


def _plane_shapes(height: int, width: int, channels: int, planar: tuple[str, str] | None) -> list[tuple[int, int]]:
    if planar is None:
        return [(height, width)] * channels
    if channels != 3 or planar[0] not in OPQCodec.planar_layouts:
        raise CorruptInputError(f"corrupt opq clip: YCbCr {planar[0]} planes of {channels} channel(s)")
    return list(yuv.plane_shapes(width, height, planar[0]))
