"""Training of the OPQ codebooks shipped in codebooks/opq/ (`diffcodec train opq`): faiss, no training loop.

For each channel (Y, Cb, Cr) and bit budget: sample overlapping 8x8 patches from the training images and
their vertical flips (as in Scribano et al.), train faiss OPQMatrix + ProductQuantizer (8-bit
sub-quantizers), sort every sub-codebook along its first principal component, precompute the decode
tables, then fit the context model's frequency tables on the index grids of the whole training images.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from diffcodec import artifacts, color
from diffcodec.data import list_images
from diffcodec.entropy import quantize_table
from diffcodec.methods.opq import (
    CHANNEL_NAMES,
    KSUB,
    N_CONTEXTS,
    PATCH,
    PRESETS,
    ChannelCodebook,
    all_context_ids,
)

# The terms of the training data of every shipped codebook and model (recorded in each manifest).
LICENSE_NOTE = (
    "Trained on BSDS500 (UC Berkeley; free for non-commercial research and educational purposes only) "
    "and McMaster (Zhang et al. 2011, research benchmark, no explicit licence). Use accordingly."
)


def load_planes(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return color.rgb_to_ycbcr_centered(np.asarray(im.convert("RGB")))


def random_patches(plane: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    h, w = plane.shape
    ys = rng.integers(0, h - PATCH + 1, n)
    xs = rng.integers(0, w - PATCH + 1, n)
    offs = np.arange(PATCH)
    idx = (ys[:, None, None] + offs[None, :, None]) * w + xs[:, None, None] + offs[None, None, :]
    return plane.reshape(-1)[idx.reshape(n, PATCH * PATCH)]


def sort_by_first_pc(centroids: np.ndarray) -> np.ndarray:
    """Permutation sorting codewords by their projection on the codebook's top principal component
    (sign fixed so the projection's third moment is positive: a deterministic orientation)."""
    c = centroids.astype(np.float64)
    c = c - c.mean(axis=0)
    if c.shape[1] == 1:
        proj = c[:, 0]
    else:
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        proj = c @ vt[0]
    if np.sum(proj ** 3) < 0:
        proj = -proj
    return np.argsort(proj, kind="stable")


def train_channel_opq(patches: np.ndarray, m: int, niter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> rotation (64, 64), centroids (M, 256, 64/M) sorted by first PC, decode tables (M, 256, 64)."""
    import faiss

    d = PATCH * PATCH
    x = np.ascontiguousarray(patches, dtype=np.float32)
    opq = faiss.OPQMatrix(d, m)
    opq.niter = niter
    opq.verbose = False
    pq = faiss.ProductQuantizer(d, m, 8)
    opq.train(x)
    pq.train(opq.apply(x))
    rotation = faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)  # rotated = x @ rotation.T
    centroids = faiss.vector_to_array(pq.centroids).reshape(m, KSUB, d // m)
    for i in range(m):
        centroids[i] = centroids[i][sort_by_first_pc(centroids[i])]
    dsub = d // m
    tables = np.stack([centroids[i] @ rotation[i * dsub:(i + 1) * dsub] for i in range(m)])
    # The codec decodes with fp16 tables: store everything in fp16 and encode against what decodes.
    return rotation.astype(np.float16), centroids.astype(np.float16), tables.astype(np.float16)


def index_grids(book: ChannelCodebook, planes: list[np.ndarray]) -> list[np.ndarray]:
    grids = []
    for plane in planes:
        p = color.to_patches(plane, PATCH)
        grids.append(book.assign(p.reshape(-1, PATCH * PATCH)).reshape(p.shape[0], p.shape[1], -1))
    return grids


def fit_context_tables(grids: list[np.ndarray], m: int) -> np.ndarray:
    counts = np.zeros((m, N_CONTEXTS, KSUB), dtype=np.float64)
    for g in grids:
        for i in range(m):
            np.add.at(counts[i], (all_context_ids(g[..., i]).ravel(), g[..., i].ravel()), 1.0)
    # Additive smoothing toward the sub-quantizer's own marginal keeps rare contexts sensible.
    marginal = counts.sum(axis=1, keepdims=True) + 1.0
    marginal /= marginal.sum(axis=-1, keepdims=True)
    probs = counts + 4.0 * marginal
    return quantize_table(probs)


def evaluate(books: list[ChannelCodebook], val_planes: list[np.ndarray]) -> dict:
    """Mean RGB PSNR of the reconstruction and measured coded bits per index (range coder) on val."""
    from diffcodec.entropy import Encoder
    from diffcodec.methods.opq import encode_indices

    psnrs, bits, n_idx, pixels = [], 0, 0, 0
    for planes in val_planes:
        h, w = planes.shape[1:]
        rec = np.empty_like(planes)
        enc = Encoder()
        for c, book in enumerate(books):
            g = index_grids(book, [planes[c]])[0]
            encode_indices(enc, g, book.ctx_tables)
            n_idx += g.size
            rec[c] = color.from_patches(book.reconstruct(g), h, w, PATCH)
        bits += len(enc.finish()) * 8
        pixels += h * w
        a = color.ycbcr_centered_to_rgb(planes).astype(np.float64)
        b = color.ycbcr_centered_to_rgb(rec).astype(np.float64)
        psnrs.append(10 * np.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-12)))
    return {
        "val_psnr_rgb": round(float(np.mean(psnrs)), 3),
        "val_bits_per_index": round(bits / n_idx, 4),
        "val_fixed_bits_per_index": 8,
        "val_entropy_coding_saving": round(1 - bits / n_idx / 8, 4),
        "val_bpp": round(bits / pixels, 4),
        "val_bpp_fixed_length": round(n_idx * 8 / pixels, 4),
        "val_images": len(val_planes),
    }


def train_opq(
    data: list[Path],
    presets: list[str],
    *,
    val: Path | None,
    patches_per_image: int = 2000,
    niter: int = 50,
    seed: int = 0,
    command: str = "",
    progress=None,
) -> list[dict]:
    """Train the given presets and write codebooks/opq/<preset>.safetensors + .json. Returns manifests."""
    t_start = time.time()
    files = list_images(data)
    if not files:
        raise ValueError("no training images found")
    rng = np.random.default_rng(seed)
    planes = []
    for f in files:
        p = load_planes(f)
        planes += [p, np.ascontiguousarray(p[:, ::-1])]  # vertical flip, as in the paper
    samples = [np.concatenate([random_patches(p[c], patches_per_image, rng) for p in planes]) for c in range(3)]
    val_planes = [load_planes(f) for f in list_images([val])] if val else []

    trained: dict[tuple[int, int], tuple] = {}
    manifests = []
    for preset in presets:
        t0 = time.time()
        books, tensors = [], {}
        for c, (name, bits) in enumerate(zip(CHANNEL_NAMES, PRESETS[preset])):
            key = (c, bits)
            if key not in trained:
                if progress:
                    progress(f"training {name} OPQ with {bits} bits per patch")
                rotation, centroids, tables = train_channel_opq(samples[c], bits // 8, niter)
                book = ChannelCodebook(rotation, centroids, tables, np.ones((bits // 8, N_CONTEXTS, KSUB), np.int32))
                ctx = fit_context_tables(index_grids(book, [p[c] for p in planes]), bits // 8)
                trained[key] = (rotation, centroids, tables, ctx)
            rotation, centroids, tables, ctx = trained[key]
            books.append(ChannelCodebook(rotation, centroids, tables, ctx))
            tensors.update({f"{name}.rotation": rotation, f"{name}.centroids": centroids,
                            f"{name}.tables": tables, f"{name}.ctx_freq": ctx})
        figures = evaluate(books, val_planes) if val_planes else {}
        manifest = {
            "name": f"opq/{preset}",
            "kind": "opq-codebook",
            "preset": preset,
            "bits_per_patch": dict(zip(CHANNEL_NAMES, PRESETS[preset])),
            "command": command,
            "data": [str(d) for d in data],
            "training_images": len(files),
            "training_patches_per_channel": int(samples[0].shape[0]),
            "augmentation": "vertical flip of every image (doubles the set)",
            "faiss_niter": niter,
            "seed": seed,
            "validation": str(val) if val else None,
            "validation_figures": figures,
            "wall_time_s": round(time.time() - t0, 1),
            "total_wall_time_s": round(time.time() - t_start, 1),
            "device": f"cpu ({platform.machine()})",
            "license": LICENSE_NOTE,
            "format": "fp16 tensors {y,cb,cr}.{rotation,centroids,tables}; int32 {y,cb,cr}.ctx_freq",
        }
        artifacts.save_artifact(f"opq/{preset}", tensors, manifest)
        manifests.append(artifacts.read_manifest(f"opq/{preset}"))
        if progress:
            progress(f"{preset}: {figures}")
    return manifests
