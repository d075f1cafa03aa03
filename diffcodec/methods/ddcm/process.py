"""The coded reverse process, shared by the encoder, the decoder and compressed generation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffcodec import codebooks_rng, tiling
from diffcodec.methods.ddcm.combinatorics import symbol_to_atoms
from diffcodec.methods.ddcm.params import DDCMParams, _coded_steps
from diffcodec.methods.ddcm.priors import Prior


@dataclass
class RunStats:
    steps: int = 0
    coded_steps: int = 0
    model_s: float = 0.0        # denoiser forward passes (+ the step arithmetic)
    codebook_s: float = 0.0     # codebook generation, scoring, selection and noise assembly
    total_s: float = 0.0
    symbols: list = field(default_factory=list)


def _precision(prior: Prior, p: DDCMParams):
    """The autocast context of the header's precision (``pr``) on the prior's device."""
    import torch

    dtype = torch.float16 if p.precision == "fp16" else torch.bfloat16
    return torch.autocast(torch.device(prior.device).type, dtype=dtype, enabled=p.precision != "fp32")


def run_process(prior: Prior, p: DDCMParams, shape, choose, cond=None) -> tuple[Any, RunStats]:
    """Run the coded reverse process; ``choose(step_index, codebook, x0_hat) -> symbol`` makes each coded
    step's choice; ``cond`` (1, 3, H, W) is the condition of a conditional prior (the decoded base layer).
    Returns the final sample (1, C, h, w) and the stats (with the symbols, in step order)."""
    import torch

    from diffcodec.diffusion.samplers import ddpm_step

    t_start = time.perf_counter()
    stats = RunStats()
    ts, _ = _coded_steps(prior.schedule, p.steps)
    x = torch.from_numpy(codebooks_rng.initial_noise(p.seed, shape))[None].to(prior.device)

    def sampler(i, t, x_t, x0_hat, mean, std):
        t0 = time.perf_counter()
        cb = codebooks_rng.make_codebook(p.codebook, p.seed, i, p.k, shape)
        v = choose(i, cb, x0_hat)
        idx, signs = symbol_to_atoms(v, p.k, p.atoms)
        stats.symbols.append(v)
        noise = torch.from_numpy(cb.combine(idx, signs))[None].to(prior.device)
        stats.codebook_s += time.perf_counter() - t0
        return noise

    from diffcodec.progress import bar

    with torch.inference_mode(), _precision(prior, p):
        for i, t in enumerate(bar(ts, desc="ddcm", unit="step")):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddpm_step(prior.model_fn, x, t, t_prev, prior.schedule, sampler, cond=cond, step_index=i).x_prev
    stats.steps, stats.coded_steps = len(ts), len(stats.symbols)
    stats.total_s = time.perf_counter() - t_start
    stats.model_s = stats.total_s - stats.codebook_s
    return x, stats


# The free step's ensemble (header `en`): the refiner runs on E dihedral views of x_T and the condition (as is,
# flipped left-right, flipped top-bottom, transposed: the first E of ENSEMBLE_VIEWS), each output is turned back
# and the E outputs are averaged before rounding. The network is not equivariant to these views, so their errors
# partly cancel; the encoder tries every E and keeps the best (benchmarks/RESULTS.md, 'Free-step ensemble').
ENSEMBLE_VIEWS = ("identity", "flip-lr", "flip-tb", "transpose")


def dihedral_view(x, view: int):
    """View ``view`` (an index of ENSEMBLE_VIEWS) of a (B, C, H, W) tensor; each view is its own inverse."""
    if view == 0:
        return x
    if view == 1:
        return x.flip(-1)
    if view == 2:
        return x.flip(-2)
    return x.transpose(-1, -2)


def free_step_views(prior: Prior, p: DDCMParams, cond, shape, views: int) -> list:
    """The one free refiner step (N = 1: no symbol) of a conditional file on the first ``views`` views of x_T and
    ``cond``, each output turned back: float32 tensors (1, C, h, w). View 0 is :func:`run_process`'s step."""
    import torch

    from diffcodec.diffusion.samplers import ddpm_step

    ts, coded = _coded_steps(prior.schedule, 1)
    if len(ts) != 1 or any(coded):
        raise ValueError("the free step is one uncoded step")
    x_T = torch.from_numpy(codebooks_rng.initial_noise(p.seed, shape))[None].to(prior.device)
    out = []
    with torch.inference_mode(), _precision(prior, p):
        for v in range(views):
            x = ddpm_step(prior.model_fn, dihedral_view(x_T, v), ts[0], -1, prior.schedule, None,
                          cond=dihedral_view(cond, v)).x_prev
            out.append(dihedral_view(x, v).float())
    return out


def ensemble_mean(views: list, n: int):
    """The mean of the first ``n`` view outputs, summed in view order (the decoder's arithmetic)."""
    x = views[0]
    for v in views[1:n]:
        x = x + v
    return x if n == 1 else x / n


# Free-step files (N = 1: one refiner step on a base layer, no index bits) of big images run the refiner tile by
# tile (header `tl`), since the network's memory grows with the pixels it sees. Cores of TILE x TILE on a grid from
# the top-left corner, each run with HALO pixels of context on every side (cut at the image edge), only the core
# kept; HALO and TILE are multiples of 64 so that the refiner's attention windows (16 at stride 4) fall on the
# image's own grid. GroupNorm statistics are then per tile, so a tiled file decodes to (slightly) other pixels
# than an untiled one: the header says which (formats/ddc-v1.md, ddcm `tl`).
TILE = 384
HALO = 64


def run_free_step_tiled(prior: Prior, p: DDCMParams, base_rgb: np.ndarray, spec, tile: int,
                        in_place: bool = False) -> np.ndarray:
    """The one free refiner step of a conditional file with ``p.steps`` = 1, tile by tile over ``base_rgb`` (the
    decoded base, uint8 (H, W, 3)): uint8 (H, W, 3). Memory: the base, the output and one tile's network; with
    ``in_place`` (a base the caller no longer needs, writable) the output overwrites the base row of tiles by
    row of tiles, so one full-size image instead of two (the same pixels: each window still reads the base)."""
    import torch

    from diffcodec.diffusion.samplers import ddpm_step
    from diffcodec.progress import bar

    ts, coded = _coded_steps(prior.schedule, p.steps)
    if len(ts) != 1 or any(coded):
        raise ValueError("tiled refinement is for free-step files (N = 1) only")
    h, w = base_rgb.shape[:2]
    noise = codebooks_rng.InitialNoiseRows(p.seed, (3, h, w))
    in_place = in_place and base_rgb.flags.writeable
    out = base_rgb if in_place else np.empty((h, w, 3), np.uint8)
    # The base rows the current row of windows reads: the rows above its cores are the base's own until that
    # row of tiles is written, the halo rows above it are kept from the row of tiles before (``kept``).
    kept, kept_from = base_rgb[:0], 0           # base rows [kept_from, y0) saved before the output covered them
    band: tuple[int, int] | None = None
    band_out = band_src = None
    src_from = 0

    def flush() -> None:
        nonlocal kept, kept_from
        assert band is not None and band_out is not None and band_src is not None
        y0, y1 = band
        if in_place:                 # the next row of windows reads up to HALO base rows above its cores
            kept_from = max(0, y1 - HALO)
            kept = band_src[kept_from - src_from:y1 - src_from].copy()
        out[y0:y1] = band_out

    with torch.inference_mode(), _precision(prior, p):
        for t in bar(tiling.plan(h, w, tile, HALO), desc="ddcm tiles", unit="tile"):
            if band != (t.y0, t.y1):                 # a new row of tiles (tiling.plan: row-major)
                if band is not None:
                    flush()
                band = (t.y0, t.y1)
                band_out = np.empty((t.y1 - t.y0, w, 3), np.uint8)
                src_from = t.ya
                if in_place and t.ya < t.y0:
                    assert kept_from == t.ya and len(kept) == t.y0 - t.ya
                    band_src = np.concatenate([kept, base_rgb[t.y0:t.yb]])
                else:
                    band_src = base_rgb[t.ya:t.yb]
            assert band_out is not None and band_src is not None
            xs = slice(t.xa, t.xb)
            x_t = torch.from_numpy(np.ascontiguousarray(noise.rows(t.ya, t.yb)[:, :, xs]))[None].to(prior.device)
            cond = prior.condition(np.ascontiguousarray(band_src[t.ya - src_from:t.yb - src_from, xs]), spec)
            x = ddpm_step(prior.model_fn, x_t, ts[0], -1, prior.schedule, None, cond=cond).x_prev
            band_out[:, t.x0:t.x1] = prior.to_image(x)[t.core_in_window]
            del x_t, cond, x
            tiling.trim_heap()
        if band is not None:
            flush()
    return out
