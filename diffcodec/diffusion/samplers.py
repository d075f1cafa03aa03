"""Samplers as plain functions (k-diffusion style) with the noise injected by the caller.

A sampler sees the model only through ``model_fn(x_t, t_batch, cond) -> x0_hat`` (build one with
:func:`x0_predictor`), where ``t_batch`` is a long tensor (B,) of integer timesteps on ``x_t``'s device.

**Injected noise.** Every step whose noise std is > 0 calls, exactly once and *after* the model,

    ``noise = noise_sampler(step_index, t, x_t, x0_hat, mean, std)``

with ``step_index`` the position of ``t`` in ``timesteps`` (0 = first, noisiest step), ``t`` the integer
timestep, ``x_t`` the current sample, ``x0_hat`` the model's prediction, ``mean`` the mean of
``p(x_{t_prev} | x_t)`` and ``std`` its standard deviation (a python float, the same for the whole batch). It
returns a tensor shaped like ``mean`` (ideally standard normal) and the step computes
``x_prev = mean + std * noise``. This is where a codebook codec picks the noise among K candidates, e.g.
``argmax_k <z_k, x0 - x0_hat>``. Steps with std == 0 (the last step, and every DDIM step with eta = 0) never
call it.

The step functions :func:`ddpm_step` / :func:`ddim_step` return a :class:`StepOutput` so a codec can drive the
loop itself. :func:`strided_timesteps` gives the respaced subsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from diffcodec.diffusion.schedules import NoiseSchedule, _check_param

ModelFn = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
NoiseSampler = Callable[[int, int, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass
class StepOutput:
    """Result of one reverse step ``t -> t_prev``: ``x_prev = mean + std * noise``."""

    x_prev: torch.Tensor
    x0_hat: torch.Tensor
    mean: torch.Tensor
    std: float
    noise: Optional[torch.Tensor] = None  # the noise that was used (None when std == 0)


def strided_timesteps(T: int, n: int) -> list[int]:
    """``n`` timesteps out of ``0 .. T-1``, evenly spaced, descending, always containing ``T-1`` and ``0``:
    ``floor(i * (T-1) / (n-1) + 0.5)`` for ``i = n-1 .. 0`` (``n = 1`` gives ``[T-1]``; ``n = T`` gives all steps).
    Unlike DDIM's "leading" spacing this starts at the noisiest step (Lin et al. 2024, "trailing")."""
    T, n = int(T), int(n)
    if not 1 <= n <= T:
        raise ValueError(f"need 1 <= n <= T, got n={n}, T={T}")
    if n == 1:
        return [T - 1]
    ts = [int(math.floor(i * (T - 1) / (n - 1) + 0.5)) for i in range(n - 1, -1, -1)]
    assert len(set(ts)) == n and ts[0] == T - 1 and ts[-1] == 0
    return ts


def _check_timesteps(timesteps: Sequence[int], schedule: NoiseSchedule) -> list[int]:
    ts = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, (torch.Tensor, np.ndarray)) else timesteps)]
    if not ts:
        raise ValueError("empty timestep list")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError("timesteps must be strictly descending")
    if ts[0] >= schedule.T or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {schedule.T - 1}]")
    return ts


def randn_cpu(shape, generator: torch.Generator | None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (so CPU and GPU runs see identical noise), then
    moved to ``device``."""
    z = torch.randn(tuple(shape), generator=generator, dtype=torch.float32, device="cpu")
    return z.to(device=device or "cpu", dtype=dtype)


def gaussian_noise_sampler(generator: torch.Generator | None = None) -> NoiseSampler:
    """The ordinary ancestral sampler: fresh N(0, I) noise from a CPU ``torch.Generator`` (seed it with
    ``torch.Generator().manual_seed(s)``) each call, moved to the step's device/dtype."""
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("use a CPU torch.Generator so CPU and GPU runs draw identical noise")

    def sample(step_index: int, t: int, x_t: torch.Tensor, x0_hat: torch.Tensor, mean: torch.Tensor, std: float):
        return randn_cpu(mean.shape, generator, mean.device, mean.dtype)

    return sample


def x0_predictor(
    model: torch.nn.Module | Callable,
    schedule: NoiseSchedule,
    parameterization: str,
    *,
    clip: float | None = 1.0,
) -> ModelFn:
    """Wrap a network ``model(x_t, t/T, cond) -> output`` trained with ``parameterization`` ('eps' | 'x0' | 'v')
    into ``model_fn(x_t, t_batch, cond) -> x0_hat`` (clamped to ``[-clip, clip]`` unless ``clip`` is None: use
    None for latent-space models). The output is float32 even if the model runs under autocast."""
    _check_param(parameterization)

    def model_fn(x_t: torch.Tensor, t_batch: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = model(x_t, schedule.model_time(t_batch).to(x_t.device), cond).to(x_t.dtype)
        x0 = schedule.predict_x0(out, x_t, t_batch, parameterization)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        return x0

    model_fn.model = model  # type: ignore[attr-defined]
    model_fn.schedule = schedule  # type: ignore[attr-defined]
    model_fn.parameterization = parameterization  # type: ignore[attr-defined]
    return model_fn


def _t_batch(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)


def _finish(mean, std, x0_hat, t, step_index, x_t, noise, noise_sampler) -> StepOutput:
    if std <= 0.0:
        return StepOutput(mean, x0_hat, mean, 0.0, None)
    if noise is None:
        if noise_sampler is None:
            raise ValueError(f"step at t={t} is stochastic (std={std:.4g}) but no noise or noise_sampler was given")
        noise = noise_sampler(step_index, t, x_t, x0_hat, mean, std)
    noise = noise.to(device=mean.device, dtype=mean.dtype)
    if noise.shape != mean.shape:
        raise ValueError(f"noise sampler returned shape {tuple(noise.shape)}, expected {tuple(mean.shape)}")
    return StepOutput(mean + std * noise, x0_hat, mean, std, noise)


@torch.no_grad()
def ddpm_step(model_fn: ModelFn, x_t: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
              noise_sampler: NoiseSampler | None = None, *, cond: torch.Tensor | None = None, step_index: int = 0,
              noise: torch.Tensor | None = None, x0_hat: torch.Tensor | None = None) -> StepOutput:
    """One ancestral DDPM step ``t -> t_prev`` (``t_prev = -1``: the final, noise-free step) with the respaced
    posterior ``q(x_{t_prev} | x_t, x0_hat)`` (:meth:`NoiseSchedule.posterior`). The noise is ``noise`` if given,
    else ``noise_sampler(step_index, t, x_t, x0_hat, mean, std)``. Pass ``x0_hat`` to skip the model call."""
    if x0_hat is None:
        x0_hat = model_fn(x_t, _t_batch(x_t, t), cond)
    c_x0, c_xt, var = schedule.posterior(t, t_prev)
    mean = c_x0 * x0_hat + c_xt * x_t
    return _finish(mean, math.sqrt(max(var, 0.0)), x0_hat, int(t), step_index, x_t, noise, noise_sampler)


@torch.no_grad()
def ddim_step(model_fn: ModelFn, x_t: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
              noise_sampler: NoiseSampler | None = None, *, eta: float = 0.0, cond: torch.Tensor | None = None,
              step_index: int = 0, noise: torch.Tensor | None = None,
              x0_hat: torch.Tensor | None = None) -> StepOutput:
    """One DDIM step (Song et al. 2021, eq. 12): ``mean = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - s^2) eps_hat``,
    ``s^2 = eta^2 (1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev)``, with ``eps_hat`` recomputed from the (possibly
    clipped) ``x0_hat``. ``eta = 1`` gives exactly the DDPM posterior mean and variance; ``eta = 0`` is
    deterministic and never calls the noise sampler."""
    if x0_hat is None:
        x0_hat = model_fn(x_t, _t_batch(x_t, t), cond)
    t, t_prev = int(t), int(t_prev)
    if not (0 <= t < schedule.T) or not (-1 <= t_prev < t):
        raise ValueError(f"bad step {t} -> {t_prev} for T={schedule.T}")
    ab_t = float(schedule.alpha_bar[t])
    ab_s = 1.0 if t_prev < 0 else float(schedule.alpha_bar[t_prev])
    var = (eta ** 2) * (1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s)
    eps_hat = (x_t - math.sqrt(ab_t) * x0_hat) / math.sqrt(1.0 - ab_t)
    mean = math.sqrt(ab_s) * x0_hat + math.sqrt(max(1.0 - ab_s - var, 0.0)) * eps_hat
    return _finish(mean, math.sqrt(max(var, 0.0)), x0_hat, t, step_index, x_t, noise, noise_sampler)


def _loop(step, model_fn, x_T, timesteps, schedule, noise_sampler, cond, callback, **kw) -> torch.Tensor:
    ts = _check_timesteps(timesteps, schedule)
    x = x_T
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        out = step(model_fn, x, t, t_prev, schedule, noise_sampler, cond=cond, step_index=i, **kw)
        if callback is not None:
            callback(i, t, out)
        x = out.x_prev
    return x


@torch.no_grad()
def sample_ddpm(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    timesteps: Sequence[int],
    schedule: NoiseSchedule,
    noise_sampler: NoiseSampler | None,
    *,
    cond: torch.Tensor | None = None,
    callback: Callable[[int, int, StepOutput], None] | None = None,
) -> torch.Tensor:
    """Ancestral DDPM over the descending ``timesteps`` (any strided subset, e.g. :func:`strided_timesteps`), one
    model call per timestep; the step after the last timestep goes to t = -1 (the clean image, no noise).
    ``callback(step_index, t, StepOutput)`` after each step. Returns the final sample (= the last x0_hat)."""
    return _loop(ddpm_step, model_fn, x_T, timesteps, schedule, noise_sampler, cond, callback)


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    timesteps: Sequence[int],
    schedule: NoiseSchedule,
    noise_sampler: NoiseSampler | None = None,
    *,
    eta: float = 0.0,
    cond: torch.Tensor | None = None,
    callback: Callable[[int, int, StepOutput], None] | None = None,
) -> torch.Tensor:
    """DDIM over the descending ``timesteps`` with stochasticity ``eta`` (0: deterministic, ``noise_sampler`` may
    be None; 1: the DDPM posterior variance). Same callback and return value as :func:`sample_ddpm`."""
    return _loop(ddim_step, model_fn, x_T, timesteps, schedule, noise_sampler, cond, callback, eta=eta)
