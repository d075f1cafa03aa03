"""Training loop of the first-stage autoencoder (`diffcodec train autoencoder`), resumable, exported as an artifact.

Loss per batch of random crops x in [-1, 1]::

    L1(x_hat, x) + ms_ssim_weight * (1 - MS-SSIM(x_hat, x)) + kl_weight * mean KL(q(z|x) || N(0, I))

MS-SSIM is pytorch-msssim's with a 7-tap window (the 11-tap default needs crops over 160 px); the KL term is
small: it keeps the latent bounded and smooth (and the posterior noise teaches the decoder to tolerate small
latent errors, which is what a diffusion prior or a quantizer will make). Validation: PSNR and MS-SSIM of the
EMA model's reconstructions of fixed ``bsds500/val`` crops. At export the latent is calibrated to zero mean
and unit variance per channel on training crops (:meth:`Autoencoder.calibrate`).

Writes ``checkpoint.pt`` (atomic) and ``train_log.jsonl`` in ``out_dir`` as the denoiser training does.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from diffcodec.autoencoder import Autoencoder, export_autoencoder
from diffcodec.data import ImageFolderCrops, validation_crops
from diffcodec.diffusion.ema import EMA
from diffcodec.diffusion.train import (
    _atomic_torch_save,
    _device_description,
    _lr_at,
    _truncate_log,
    config_dict,
    load_checkpoint,
    psnr,
    resolve_device,
    run_paths,
    with_threads,
)
from diffcodec.errors import UsageError

CHECKPOINT_FORMAT = "diffcodec-ae-checkpoint-v1"


@dataclass
class AETrainConfig:
    data: list[Path]
    out_dir: Path
    model: dict = field(default_factory=dict)     # Autoencoder kwargs (factor, latent_channels, channels, ...)
    crop: int = 112
    batch: int = 8
    lr: float = 4e-4
    warmup_steps: int = 200
    lr_decay: str = "cosine"
    steps: Optional[int] = 20_000
    max_minutes: Optional[float] = None
    grad_clip: Optional[float] = 1.0
    ms_ssim_weight: float = 0.2
    kl_weight: float = 1e-5
    ema_decay: float = 0.999
    ema_warmup: bool = True
    device: str = "auto"
    seed: int = 0
    checkpoint_minutes: Optional[float] = 5.0
    resume: bool = False
    val_folder: Optional[Path] = None
    val_crops: int = 16
    val_crop: int = 256
    val_every: Optional[int] = 500
    log_every: int = 10
    calibrate_crops: int = 256
    export_name: Optional[str] = None
    command: str = ""
    license_note: str = ""
    progress: Optional[bool] = None
    num_threads: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)


def ms_ssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (5 scales, 7-tap window) of images in [-1, 1]."""
    from pytorch_msssim import ms_ssim

    a = ((x_hat.float() + 1) * 0.5).clamp(0, 1)
    b = (x.float() + 1) * 0.5
    return 1.0 - ms_ssim(a, b, data_range=1.0, win_size=7)


@torch.no_grad()
def evaluate_reconstruction(model: Autoencoder, images: torch.Tensor, batch: int = 8) -> dict[str, float]:
    """Mean PSNR (dB, 8-bit rounding as a codec would see it) and MS-SSIM of reconstructions of ``images``."""
    from diffcodec.data import to_tensor, to_uint8
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
    if cfg.steps is None and cfg.max_minutes is None:
        raise UsageError("give steps or max_minutes (or both)")
    return with_threads(cfg.num_threads, lambda: _train(cfg))


def _train(cfg: AETrainConfig) -> dict[str, Any]:
    ckpt_path, log_path = run_paths(cfg.out_dir, cfg.resume)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Autoencoder.from_config(dict(cfg.model)).to(device)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    data = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=True)
    np_rng = np.random.default_rng(cfg.seed)

    step, prior_wall, last_val = 0, 0.0, None
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, CHECKPOINT_FORMAT, {"model_config": model.config})
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        ema.to(device)
        opt.load_state_dict(ck["optimizer"])
        step, prior_wall, last_val = int(ck["step"]), float(ck["wall_time_s"]), ck.get("last_val")
        torch.set_rng_state(ck["rng"]["torch"])
        np_rng.bit_generator.state = json.loads(ck["rng"]["numpy"])
        _truncate_log(log_path, step)
    else:
        log_path.write_text("")

    val_images = None
    if cfg.val_folder is not None and cfg.val_crops > 0:
        val_images = validation_crops(cfg.val_folder, cfg.val_crop, cfg.val_crops)

    t_start = time.time()

    def save_checkpoint() -> None:
        _atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "step": step, "wall_time_s": prior_wall + time.time() - t_start,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": json.dumps(np_rng.bit_generator.state)},
            "model_config": model.config, "train_config": json.dumps(cfg.to_dict()), "last_val": last_val,
        }, ckpt_path)

    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, file=sys.stderr, dynamic_ncols=True, desc="train autoencoder")
    last_ckpt = last_log = t_start
    acc = {"loss": 0.0, "l1": 0.0, "ms_ssim": 0.0, "kl": 0.0}
    acc_n, first_loss, last_loss, start_step = 0, None, None, step
    log_f = open(log_path, "a")
    model.train()
    try:
        while not (cfg.steps is not None and step >= cfg.steps) and not (
                cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60):
            lr = _lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            x = data.batch(cfg.batch, np_rng).to(device)
            rec, mean, logvar = model(x)
            l1 = (rec - x).abs().mean()
            msl = ms_ssim_loss(rec, x) if cfg.ms_ssim_weight else torch.zeros((), device=device)
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
            loss = l1 + cfg.ms_ssim_weight * msl + cfg.kl_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model)
            step += 1
            for k, v in (("loss", loss), ("l1", l1), ("ms_ssim", msl), ("kl", kl)):
                acc[k] += float(v.detach())
            acc_n += 1
            if bar is not None:
                bar.update(1)
            if step % cfg.log_every == 0:
                now = time.time()
                rec_log = {"step": step, **{k: v / acc_n for k, v in acc.items()}, "lr": lr,
                           "elapsed_s": round(prior_wall + now - t_start, 2),
                           "img_per_s": round(acc_n * cfg.batch / max(now - last_log, 1e-9), 2)}
                log_f.write(json.dumps(rec_log) + "\n")
                log_f.flush()
                last_loss = rec_log["loss"]
                first_loss = last_loss if first_loss is None else first_loss
                if bar is not None:
                    bar.set_postfix(loss=f"{last_loss:.4f}", refresh=False)
                acc = dict.fromkeys(acc, 0.0)
                acc_n, last_log = 0, now
            if val_images is not None and cfg.val_every and step % cfg.val_every == 0:
                last_val = {"step": step, **evaluate_reconstruction(ema.model, val_images)}
                log_f.write(json.dumps({"step": step, "val": last_val}) + "\n")
                log_f.flush()
            if cfg.checkpoint_minutes and time.time() - last_ckpt >= cfg.checkpoint_minutes * 60:
                save_checkpoint()
                last_ckpt = time.time()
    except KeyboardInterrupt:
        save_checkpoint()
        log_f.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    if val_images is not None and (last_val is None or last_val["step"] != step):
        last_val = {"step": step, **evaluate_reconstruction(ema.model, val_images)}
        log_f.write(json.dumps({"step": step, "val": last_val}) + "\n")
    log_f.close()
    save_checkpoint()
    wall = prior_wall + time.time() - t_start
    summary: dict[str, Any] = {
        "steps": step, "steps_this_run": step - start_step, "wall_time_s": round(wall, 2),
        "first_loss": first_loss, "final_loss": last_loss, "validation": last_val,
        "checkpoint": str(ckpt_path), "log": str(log_path), "device": _device_description(device),
        "params": ema.model.num_parameters(), "export": None,
    }
    if cfg.export_name:
        final = ema.model
        calib = data.batch(cfg.calibrate_crops, np.random.default_rng(cfg.seed + 7)).to(device)
        final.calibrate(calib)
        manifest = {
            "command": cfg.command, "data": [str(p) for p in cfg.data], "steps": step, "batch": cfg.batch,
            "crop": cfg.crop, "lr": cfg.lr, "ms_ssim_weight": cfg.ms_ssim_weight, "kl_weight": cfg.kl_weight,
            "ema_decay": cfg.ema_decay, "seed": cfg.seed, "wall_time_s": round(wall, 1),
            "device": summary["device"], "validation": last_val, "license": cfg.license_note,
            "calibration": f"{cfg.calibrate_crops} random {cfg.crop}px training crops (seed {cfg.seed + 7})",
        }
        summary["export"] = str(export_autoencoder(cfg.export_name, final, manifest))
    return summary
