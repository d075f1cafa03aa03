"""Diffusion engine: noise schedules, a small UNet, samplers with injected noise, EMA, and loading of shipped
denoisers (training lives in :mod:`diffcodec.training`).

    >>> from diffcodec.diffusion import UNet, NoiseSchedule, x0_predictor, sample_ddpm, strided_timesteps
    >>> model, schedule, param, manifest = load_denoiser("denoisers/NAME")
    >>> model_fn = x0_predictor(model, schedule, param)
    >>> gen = torch.Generator().manual_seed(0)
    >>> x_T = randn_cpu((1, 3, 256, 256), gen)
    >>> x0 = sample_ddpm(model_fn, x_T, strided_timesteps(schedule.T, 50), schedule, gaussian_noise_sampler(gen))
"""

from diffcodec.diffusion.ema import EMA
from diffcodec.diffusion.models import export_denoiser, load_denoiser
from diffcodec.diffusion.samplers import (
    StepOutput,
    ddim_step,
    ddpm_step,
    gaussian_noise_sampler,
    randn_cpu,
    sample_ddim,
    sample_ddpm,
    strided_timesteps,
    x0_predictor,
)
from diffcodec.diffusion.schedules import LOSS_WEIGHTINGS, PARAMETERIZATIONS, SCHEDULES, NoiseSchedule
from diffcodec.diffusion.unet import UNet, count_parameters, timestep_embedding

__all__ = [
    "EMA",
    "LOSS_WEIGHTINGS",
    "NoiseSchedule",
    "PARAMETERIZATIONS",
    "SCHEDULES",
    "StepOutput",
    "UNet",
    "count_parameters",
    "ddim_step",
    "ddpm_step",
    "export_denoiser",
    "gaussian_noise_sampler",
    "load_denoiser",
    "randn_cpu",
    "sample_ddim",
    "sample_ddpm",
    "strided_timesteps",
    "timestep_embedding",
    "x0_predictor",
]
