"""The coded reverse process, shared by the encoder, the decoder and compressed generation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from diffcodec import codebooks_rng
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

    dev = torch.device(prior.device)
    dtype = torch.float16 if p.precision == "fp16" else torch.bfloat16
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=p.precision != "fp32"):
        for i, t in enumerate(bar(ts, desc="ddcm", unit="step")):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddpm_step(prior.model_fn, x, t, t_prev, prior.schedule, sampler, cond=cond, step_index=i).x_prev
    stats.steps, stats.coded_steps = len(ts), len(stats.symbols)
    stats.total_s = time.perf_counter() - t_start
    stats.model_s = stats.total_s - stats.codebook_s
    return x, stats
