"""Discrete variance-preserving noise schedules and the maths around them.

Conventions (DDPM / improved-DDPM, diffusers):

* integer timesteps ``t = 0 .. T-1``; ``alpha_bar[t]`` is strictly decreasing in (0, 1);
* ``x_t = alpha_t * x0 + sigma_t * eps`` with ``alpha_t = sqrt(alpha_bar[t])`` and
  ``sigma_t = sqrt(1 - alpha_bar[t])``; ``SNR(t) = alpha_t**2 / sigma_t**2``, ``log_snr = log SNR``;
* parameterizations of the network output: ``"eps"`` (the noise), ``"x0"`` (the clean image) and ``"v"``
  (Salimans & Ho 2022: ``v = alpha_t * eps - sigma_t * x0``);
* the network itself is fed the normalised time ``t / T`` (see :meth:`NoiseSchedule.model_time`).

All tables are float64 numpy arrays of length ``T``; the tensor methods gather from them and return values in
the dtype/device of the tensor they are combined with, shaped to broadcast over ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

PARAMETERIZATIONS = ("eps", "x0", "v")
LOSS_WEIGHTINGS = ("const", "min_snr", "p2")
SCHEDULES = ("linear", "cosine")


def _check_param(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {parameterization!r} (expected one of {PARAMETERIZATIONS})")


# (src, dst) -> the dst prediction from the src one, ``f(model_out, x_t, alpha_t, sigma_t)``; from
# x_t = a x0 + s eps and v = a eps - s x0 (a^2 + s^2 = 1).
_CONVERSIONS: dict[tuple[str, str], Callable[..., torch.Tensor]] = {
    ("eps", "x0"): lambda out, x_t, a, s: (x_t - s * out) / a,
    ("v", "x0"): lambda out, x_t, a, s: a * x_t - s * out,
    ("x0", "eps"): lambda out, x_t, a, s: (x_t - a * out) / s,
    ("v", "eps"): lambda out, x_t, a, s: s * x_t + a * out,
    # v = a eps - s x0, x0 = (x_t - s eps) / a  =>  v = (eps - s x_t) / a
    ("eps", "v"): lambda out, x_t, a, s: (out - s * x_t) / a,
    # eps = (x_t - a x0) / s  =>  v = (a x_t - x0) / s
    ("x0", "v"): lambda out, x_t, a, s: (a * x_t - out) / s,
}


class NoiseSchedule:
    """A discrete VP schedule: ``NoiseSchedule("linear")`` (DDPM, betas 1e-4..0.02) or ``NoiseSchedule("cosine")``
    (Nichol & Dhariwal 2021, s = 0.008, betas clipped at 0.999), ``T = 1000`` steps by default."""

    def __init__(
        self,
        name: str = "cosine",
        T: int = 1000,
        *,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        cosine_s: float = 0.008,
        max_beta: float = 0.999,
    ):
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r} (expected one of {SCHEDULES})")
        if T < 2:
            raise ValueError("a schedule needs T >= 2 steps")
        self.name = name
        self.T = int(T)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.cosine_s = float(cosine_s)
        self.max_beta = float(max_beta)
        if name == "linear":
            # DDPM (Ho et al. 2020); betas scaled with T as in improved-DDPM's get_named_beta_schedule.
            scale = 1000.0 / self.T
            betas = np.linspace(scale * self.beta_start, scale * self.beta_end, self.T, dtype=np.float64)
        else:
            # improved-DDPM betas_for_alpha_bar: beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta).
            s = self.cosine_s

            def f(u: np.ndarray) -> np.ndarray:
                return np.cos((u + s) / (1 + s) * math.pi / 2) ** 2

            i = np.arange(self.T, dtype=np.float64)
            betas = np.minimum(1.0 - f((i + 1) / self.T) / f(i / self.T), self.max_beta)
        self.betas = betas
        self.alpha_bar = np.cumprod(1.0 - betas)
        self.alpha = np.sqrt(self.alpha_bar)
        self.sigma = np.sqrt(1.0 - self.alpha_bar)
        self.snr = self.alpha_bar / (1.0 - self.alpha_bar)
        self.log_snr = np.log(self.alpha_bar) - np.log1p(-self.alpha_bar)
        self._tables: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "T": self.T}
        if self.name == "linear":
            cfg.update(beta_start=self.beta_start, beta_end=self.beta_end)
        else:
            cfg.update(cosine_s=self.cosine_s, max_beta=self.max_beta)
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | str) -> "NoiseSchedule":
        if isinstance(cfg, str):
            return cls(cfg)
        cfg = dict(cfg)
        name = cfg.pop("name")
        return cls(name, **cfg)

    def __repr__(self) -> str:
        return f"NoiseSchedule({', '.join(f'{k}={v!r}' for k, v in self.config.items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseSchedule) and self.config == other.config

    # ------------------------------------------------------------------ gathering
    def _table(self, name: str) -> torch.Tensor:
        if name not in self._tables:
            self._tables[name] = torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
        return self._tables[name]

    def take(self, name: str, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``getattr(self, name)[t]`` as a tensor: for ``like`` of shape (B, ...), shaped (B, 1, ..., 1) (or (1, ...)
        for a scalar t) in ``like``'s dtype/device; without ``like``, float64 on CPU with t's shape."""
        table = self._table(name)
        if isinstance(t, torch.Tensor):
            idx = t.detach().to("cpu", torch.long)
        else:
            idx = torch.tensor(int(t), dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.T):
            raise IndexError(f"timestep out of range [0, {self.T - 1}]")
        vals = table[idx]
        if like is None:
            return vals
        vals = vals.reshape(-1, *([1] * (like.ndim - 1))) if vals.ndim else vals.reshape([1] * like.ndim)
        return vals.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)

    def model_time(self, t: torch.Tensor | int) -> torch.Tensor:
        """What the network is fed for integer timestep(s) t: the float ``t / T`` in [0, 1)."""
        if not isinstance(t, torch.Tensor):
            t = torch.tensor([int(t)])
        return t.to(torch.float32) / self.T

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t ~ q(x_t | x0) = N(alpha_t x0, sigma_t^2 I)`` with the given standard-normal ``noise``."""
        return self.take("alpha", t, x0) * x0 + self.take("sigma", t, x0) * noise

    # ------------------------------------------------------------------ parameterizations
    def predict_x0(self, model_out: torch.Tensor, x_t: torch.Tensor, t, parameterization: str) -> torch.Tensor:
        return self.convert(model_out, x_t, t, parameterization, "x0")

    def predict_eps(self, model_out: torch.Tensor, x_t: torch.Tensor, t, parameterization: str) -> torch.Tensor:
        return self.convert(model_out, x_t, t, parameterization, "eps")

    def predict_v(self, model_out: torch.Tensor, x_t: torch.Tensor, t, parameterization: str) -> torch.Tensor:
        return self.convert(model_out, x_t, t, parameterization, "v")

    def convert(self, model_out: torch.Tensor, x_t: torch.Tensor, t, src: str, dst: str) -> torch.Tensor:
        """Convert a prediction between parameterizations ``src`` -> ``dst`` given x_t and t."""
        _check_param(dst)
        _check_param(src)
        if src == dst:
            return model_out
        a, s = self.take("alpha", t, x_t), self.take("sigma", t, x_t)
        return _CONVERSIONS[src, dst](model_out, x_t, a, s)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t, parameterization: str) -> torch.Tensor:
        """The regression target of the network for ``x_t = q_sample(x0, t, noise)``."""
        _check_param(parameterization)
        if parameterization == "eps":
            return noise
        if parameterization == "x0":
            return x0
        return self.take("alpha", t, x0) * noise - self.take("sigma", t, x0) * x0

    # ------------------------------------------------------------------ loss weights
    def loss_weight(
        self,
        t: torch.Tensor | int,
        parameterization: str,
        weighting: str = "const",
        *,
        gamma: float = 5.0,
        p2_k: float = 1.0,
        p2_gamma: float = 1.0,
    ) -> torch.Tensor:
        """Per-sample weight (float64 CPU tensor shaped like t) of the MSE **in the given parameterization's space**.

        Since ``|eps - eps_hat|^2 = SNR |x0 - x0_hat|^2`` and ``|v - v_hat|^2 = (SNR + 1) |x0 - x0_hat|^2``, a
        weighting defined on the x0 error, ``w_x0(SNR)``, is ``w_x0 / SNR`` on the eps loss and
        ``w_x0 / (SNR + 1)`` on the v loss.

        * ``const``: 1 in the parameterization's own space (the usual "simple" loss).
        * ``min_snr`` (Hang et al. 2023): ``w_x0 = min(SNR, gamma)``, i.e. ``min(SNR, gamma)`` for x0,
          ``min(SNR, gamma) / SNR`` for eps and ``min(SNR, gamma) / (SNR + 1)`` for v.
        * ``p2`` (Choi et al. 2022): defined on the eps loss as ``1 / (k + SNR)^gamma``; i.e.
          ``w_x0 = SNR / (k + SNR)^gamma``, so x0: ``SNR / (k + SNR)^gamma`` and
          v: ``SNR / ((k + SNR)^gamma (SNR + 1))``.
        """
        _check_param(parameterization)
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {weighting!r} (expected one of {LOSS_WEIGHTINGS})")
        snr = self.take("snr", t)
        if weighting == "const":
            return torch.ones_like(snr)
        if weighting == "min_snr":
            w_x0 = torch.clamp(snr, max=gamma)
        else:
            w_x0 = snr / (p2_k + snr) ** p2_gamma
        if parameterization == "x0":
            return w_x0
        if parameterization == "eps":
            return w_x0 / snr
        return w_x0 / (snr + 1.0)

    # ------------------------------------------------------------------ reverse process
    def _alpha_bar_prev(self, t_prev: int) -> float:
        return 1.0 if t_prev < 0 else float(self.alpha_bar[t_prev])

    def posterior(self, t: int, t_prev: int) -> tuple[float, float, float]:
        """Coefficients of ``q(x_{t_prev} | x_t, x0) = N(c_x0 x0 + c_xt x_t, var)`` for a (possibly respaced) step
        ``t -> t_prev`` (``t_prev < t``; ``t_prev = -1`` means "to the clean image": var = 0, mean = x0).

        Respacing as in improved-DDPM: the step's beta is recomputed from alpha_bar,
        ``beta' = 1 - alpha_bar[t] / alpha_bar[t_prev]``; var is the posterior variance
        ``beta' (1 - alpha_bar[t_prev]) / (1 - alpha_bar[t])``. Returns python floats ``(c_x0, c_xt, var)``.
        """
        t, t_prev = int(t), int(t_prev)
        if not (0 <= t < self.T) or not (-1 <= t_prev < t):
            raise ValueError(f"bad step {t} -> {t_prev} for T={self.T}")
        ab_t = float(self.alpha_bar[t])
        ab_s = self._alpha_bar_prev(t_prev)
        beta = 1.0 - ab_t / ab_s
        c_x0 = math.sqrt(ab_s) * beta / (1.0 - ab_t)
        c_xt = math.sqrt(1.0 - beta) * (1.0 - ab_s) / (1.0 - ab_t)
        var = beta * (1.0 - ab_s) / (1.0 - ab_t)
        return c_x0, c_xt, var

    def respaced_betas(self, timesteps) -> np.ndarray:
        """Betas of the schedule restricted to ``timesteps`` (any order), in ascending-t order:
        ``beta'_i = 1 - alpha_bar[t_i] / alpha_bar[t_{i-1}]`` (``alpha_bar[t_{-1}] = 1``)."""
        ts = np.sort(np.asarray(list(timesteps), dtype=np.int64))
        ab = self.alpha_bar[ts]
        prev = np.concatenate([[1.0], ab[:-1]])
        return 1.0 - ab / prev
