"""Training of the first-stage autoencoder (`diffcodec train autoencoder`), resumable, exported as an artifact.

Loss per batch of random crops x in [-1, 1]::

    L1(x_hat, x) + ms_ssim_weight * (1 - MS-SSIM(x_hat, x)) + kl_weight * mean KL(q(z|x) || N(0, I))

MS-SSIM is pytorch-msssim's with a 7-tap window (the 11-tap default needs crops over 160 px); the KL term is
small: it keeps the latent bounded and smooth (and the posterior noise teaches the decoder to tolerate small
latent errors, which is what a diffusion prior or a quantizer will make). Validation: PSNR and MS-SSIM of the
EMA model's reconstructions of fixed ``bsds500/val`` crops. At export the latent is calibrated to zero mean
and unit variance per channel on training crops (:meth:`Autoencoder.calibrate`).

Runs in the shared loop (:mod:`diffcodec.training.loop`: ``checkpoint.pt``, ``train_log.jsonl``, EMA, LR
schedule, resume); log records ``{"step", "loss", "l1", "ms_ssim", "kl", ...}`` (``ms_ssim`` is the loss term
1 - MS-SSIM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from diffcodec.autoencoder import Autoencoder, export_autoencoder
from diffcodec.data import to_tensor, to_uint8
from diffcodec.training import loop
from diffcodec.training.data import ImageFolderCrops, validation_crops
from diffcodec.training.denoiser import psnr

CHECKPOINT_FORMAT = "diffcodec-ae-checkpoint-v1"


@dataclass(kw_only=True)
class AETrainConfig(loop.LoopConfig):
    """The autoencoder's options; the loop's (data, out_dir, seed, ...) are :class:`~.loop.LoopConfig`'s."""

    model: dict = field(default_factory=dict)     # Autoencoder kwargs (factor, latent_channels, channels, ...)
    crop: int = 112
    batch: int = 8
    lr: float = 4e-4
    steps: Optional[int] = 20_000
    ms_ssim_weight: float = 0.2
    kl_weight: float = 1e-5
    val_crop: int = 256
    calibrate_crops: int = 256


def ms_ssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (5 scales, 7-tap window) of images in [-1, 1]."""
    from pytorch_msssim import ms_ssim

    a = ((x_hat.float() + 1) * 0.5).clamp(0, 1)
    b = (x.float() + 1) * 0.5
    return 1.0 - ms_ssim(a, b, data_range=1.0, win_size=7)


@torch.no_grad()
def evaluate_reconstruction(model: Autoencoder, images: torch.Tensor, batch: int = 8) -> dict[str, float]:
    """Mean PSNR (dB, 8-bit rounding as a codec would see it) and MS-SSIM of reconstructions of ``images``."""
    from diffcodec.metrics import ms_ssim

    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    ps, ms = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(dev)
        rec = to_tensor(to_uint8(model.decode_raw(model.encode_moments(x)[0])[..., : x.shape[-2], : x.shape[-1]]))
        ps.append(psnr(rec, x.cpu()))
        a, b = to_uint8(rec), to_uint8(x)
        ms.extend(ms_ssim(a[j], b[j]) for j in range(len(a)))
    model.train(was)
    ms = [v for v in ms if np.isfinite(v)]  # NaN: crop too small for MS-SSIM's 5 scales
    return {"psnr": round(float(torch.cat(ps).mean()), 3),
            "ms_ssim": round(float(np.mean(ms)), 5) if ms else None}


def train_autoencoder(cfg: AETrainConfig) -> dict[str, Any]:
    """Train (or resume) the autoencoder; returns a summary (steps, wall time, losses, validation, export path)."""
    return loop.train(cfg, AutoencoderTrainer)


class AutoencoderTrainer(loop.Trainer):
    desc = "train autoencoder"
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: AETrainConfig, device: torch.device):
        torch.manual_seed(cfg.seed)
        super().__init__(cfg, device, Autoencoder.from_config(dict(cfg.model)).to(device))
        self.data = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=True)
        if cfg.val_folder is not None and cfg.val_crops > 0:
            self.val_images = validation_crops(cfg.val_folder, cfg.val_crop, cfg.val_crops)
        self.acc = {"loss": 0.0, "l1": 0.0, "ms_ssim": 0.0, "kl": 0.0}
        self.acc_n = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model_config": self.model.config}

    def step(self) -> torch.Tensor:
        cfg = self.cfg
        x = self.data.batch(cfg.batch, self.np_rng).to(self.device)
        rec, mean, logvar = self.model(x)                     # posterior sample: torch's global RNG
        l1 = (rec - x).abs().mean()
        msl = ms_ssim_loss(rec, x) if cfg.ms_ssim_weight else torch.zeros((), device=self.device)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = l1 + cfg.ms_ssim_weight * msl + cfg.kl_weight * kl
        for k, v in (("loss", loss), ("l1", l1), ("ms_ssim", msl), ("kl", kl)):
            self.acc[k] += float(v.detach())
        self.acc_n += 1
        return loss

    def validate(self) -> dict[str, Any]:
        return evaluate_reconstruction(self.ema.model, self.val_images)

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        cfg = self.cfg
        final = self.ema.model
        calib = self.data.batch(cfg.calibrate_crops, np.random.default_rng(cfg.seed + 7)).to(self.device)
        final.calibrate(calib)
        manifest = {
            **loop.command_fields(cfg, summary), "data": [str(p) for p in cfg.data],
            **loop.run_manifest(cfg, summary["steps"], wall, summary["device"]),
            "ms_ssim_weight": cfg.ms_ssim_weight, "kl_weight": cfg.kl_weight,
            "validation": summary["validation"], "license": cfg.license_note,
            "calibration": f"{cfg.calibrate_crops} random {cfg.crop}px training crops (seed {cfg.seed + 7})",
        }
        return {"export": str(export_autoencoder(cfg.export_name, final, manifest))}
