"""Training of the denoisers (unconditional or conditional): `pixel-ddpm`, `opq-refiner`, `latent-ddpm`.

``train_denoiser(TrainConfig(...))`` trains a :class:`~diffcodec.diffusion.unet.UNet` on random crops of the
images in ``cfg.data`` (or batches of ``cfg.data_source``) in the shared loop (:mod:`diffcodec.training.loop`:
resumable checkpoint, JSONL log, EMA, LR schedule). Its log records are ``{"step", "loss", "mse",
"bucket_mse", ...}``: ``loss`` the weighted training loss, ``mse`` the unweighted MSE in the
parameterization's space, ``bucket_mse`` the unweighted MSE per noise-level bucket ``t * n_buckets // T``
(null where no sample fell in a bucket). With ``cfg.export_name`` the EMA weights are exported as fp16
safetensors plus manifest by :func:`diffcodec.diffusion.models.export_denoiser` (which
:func:`~diffcodec.diffusion.models.load_denoiser` reads back).

Step: stratified t (one uniform offset for the batch), Gaussian noise from the run's generator, ``x_t =
q_sample(x0, t, noise)``, loss ``mean_b w(t_b) |model(x_t, t, cond) - target|^2`` with the parameterization's
target and the configured loss weighting.

Validation: x0-prediction PSNR (dB, on [-1, 1] images, peak-to-peak 2) of the EMA model on fixed crops at the
fixed timesteps ``cfg.val_timesteps`` with fixed noise; the PSNR of the plain estimate ``x_t / alpha_t`` and the
noise std in 8-bit units (``127.5 sigma_t / alpha_t``) are reported beside it.

Conditional training: ``cfg.make_condition(x0_batch) -> cond`` (on the training device, under no_grad) makes
the network's extra input (e.g. a degraded copy of the image, for a refiner); set ``model["cond_channels"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from diffcodec.diffusion.models import export_denoiser
from diffcodec.diffusion.schedules import LOSS_WEIGHTINGS, PARAMETERIZATIONS, NoiseSchedule
from diffcodec.diffusion.unet import UNet
from diffcodec.errors import UsageError
from diffcodec.training import loop
from diffcodec.training.data import ImageFolderCrops, validation_crops

CHECKPOINT_FORMAT = "diffcodec-train-checkpoint-v1"


@dataclass(kw_only=True)
class TrainConfig(loop.LoopConfig):
    """A denoiser's options; the loop's (data, out_dir, seed, ...) are :class:`~.loop.LoopConfig`'s."""

    crop: int = 64
    batch: int = 16
    lr_decay: str = "constant"
    steps: Optional[int] = 10_000                  # total optimizer steps (including resumed ones)
    schedule: Any = "cosine"                       # "linear" | "cosine" | NoiseSchedule config dict
    parameterization: str = "eps"                  # eps | x0 | v
    loss_weighting: str = "const"                  # const | min_snr | p2
    min_snr_gamma: float = 5.0
    model: dict = field(default_factory=dict)      # UNet kwargs (defaults: UNet's)
    bf16: bool = True                              # bf16 autocast, on CUDA only
    checkpoint_every: Optional[int] = 500
    checkpoint_minutes: Optional[float] = 10.0
    val_crop: Optional[int] = None                 # default: crop
    val_timesteps: tuple = (50, 150, 300, 500, 750)
    log_every: int = 1
    n_buckets: int = 5
    flips: bool = True
    rot90: bool = False
    make_condition: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    data_source: Optional[Any] = None              # anything with .batch(n, rng) -> tensor; replaces image crops
    val_data: Optional[torch.Tensor] = None        # validation tensors; replaces crops of val_folder
    extra_manifest: dict = field(default_factory=dict)  # caller's extra manifest fields (e.g. the refiner's presets)
    channels_last: bool = True                     # NHWC weights/activations (~20% faster convs on the CPU)
    init_from: Optional[str] = None                # start from a shipped denoiser's weights (see init_weights_from)

    def to_dict(self) -> dict[str, Any]:
        name = lambda v: None if v is None else getattr(v, "description", None) or type(v).__qualname__  # noqa: E731
        return loop.config_dict(self, {"make_condition": name, "data_source": name,
                                       "val_data": lambda v: None if v is None else list(v.shape)})


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(4.0 / mse)


@torch.no_grad()
def evaluate_x0_psnr(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    parameterization: str,
    images: torch.Tensor,
    timesteps=(50, 150, 300, 500, 750),
    *,
    cond: torch.Tensor | None = None,
    seed: int = 1234,
    batch: int = 16,
    autocast_bf16: bool = False,
) -> dict[str, dict[str, float]]:
    """Mean x0-prediction PSNR over ``images`` (N, 3, H, W in [-1, 1]) at each timestep, with fixed noise
    (CPU generator seeded with ``seed``). Returns ``{str(t): {"psnr", "psnr_input", "sigma_8bit"}}``."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {}
    for t in timesteps:
        t = int(t)
        noise = torch.randn(images.shape, generator=gen)
        ps, ps_in = [], []
        for i in range(0, images.shape[0], batch):
            x0 = images[i:i + batch].to(dev)
            n = noise[i:i + batch].to(dev)
            tb = torch.full((x0.shape[0],), t, dtype=torch.long)
            x_t = schedule.q_sample(x0, tb, n)
            c = None if cond is None else cond[i:i + batch].to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_bf16 and dev.type == "cuda"):
                pred = model(x_t, schedule.model_time(tb).to(dev), c)
            x0_hat = schedule.predict_x0(pred.float(), x_t, tb, parameterization).clamp(-1, 1)
            ps.append(psnr(x0_hat, x0).cpu())
            ps_in.append(psnr((x_t / schedule.take("alpha", tb, x_t)).clamp(-1, 1), x0).cpu())
        out[str(t)] = {
            "psnr": round(float(torch.cat(ps).mean()), 3),
            "psnr_input": round(float(torch.cat(ps_in).mean()), 3),
            "sigma_8bit": round(127.5 * float(schedule.sigma[t] / schedule.alpha[t]), 3),
        }
    model.train(was_training)
    return out


def _check_config(cfg: TrainConfig) -> None:
    if cfg.parameterization not in PARAMETERIZATIONS:
        raise UsageError(f"unknown parameterization {cfg.parameterization!r} (one of {', '.join(PARAMETERIZATIONS)})")
    if cfg.loss_weighting not in LOSS_WEIGHTINGS:
        raise UsageError(f"unknown loss weighting {cfg.loss_weighting!r} (one of {', '.join(LOSS_WEIGHTINGS)})")
    if cfg.crop < 8 or cfg.n_buckets < 1:
        raise UsageError("crop >= 8 and n_buckets >= 1 are required")


def _schedule_from(cfg_schedule: Any) -> NoiseSchedule:
    if isinstance(cfg_schedule, NoiseSchedule):
        return cfg_schedule
    return NoiseSchedule.from_config(cfg_schedule)


def init_weights_from(model: UNet, name: str) -> None:
    """Copy shipped denoiser ``name``'s weights into ``model``. Every tensor must match in shape, except that the
    input convolution may take more condition channels than the source: those extra input channels start at zero,
    so the new model begins exactly as the old one (extra condition planes are ignored until training uses them)."""
    from diffcodec.diffusion.models import load_denoiser

    source = load_denoiser(name, "cpu", channels_last=False)[0].state_dict()
    target = model.state_dict()
    if set(source) != set(target):
        raise UsageError(f"--init {name}: its layers differ from this model's ({len(source)} vs {len(target)} tensors)")
    with torch.no_grad():
        for key, dst in target.items():
            src = source[key].to(dst.dtype)
            if src.shape == dst.shape:
                dst.copy_(src)
            elif key == "conv_in.weight" and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:] \
                    and src.shape[1] < dst.shape[1]:
                dst.zero_()
                dst[:, :src.shape[1]].copy_(src)
            else:
                raise UsageError(f"--init {name}: tensor {key} has shape {tuple(src.shape)}, this model needs "
                                 f"{tuple(dst.shape)}")


def train_denoiser(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a denoiser; returns a summary dict (steps, wall time, losses, validation, paths)."""
    _check_config(cfg)
    return loop.train(cfg, DenoiserTrainer)


class DenoiserTrainer(loop.Trainer):
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.use_bf16 = bool(cfg.bf16 and device.type == "cuda")
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.schedule = _schedule_from(cfg.schedule)
        torch.manual_seed(cfg.seed)
        model = UNet.from_config(dict(cfg.model)).to(device)
        if cfg.init_from and not cfg.resume:
            init_weights_from(model, cfg.init_from)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        super().__init__(cfg, device, model)
        if cfg.data_source is not None:
            self.data = cfg.data_source
        else:
            self.data = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=cfg.flips, rot90=cfg.rot90)

        self.val_cond = None
        if cfg.val_data is not None:
            self.val_images = cfg.val_data
        elif cfg.val_folder is not None and cfg.val_crops > 0:
            self.val_images = validation_crops(cfg.val_folder, cfg.val_crop or cfg.crop, cfg.val_crops)
            if cfg.make_condition is not None:
                with torch.no_grad(), torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed + 1)
                    self.val_cond = cfg.make_condition(self.val_images.to(device)).detach()

        nb = cfg.n_buckets
        self.acc_loss = torch.zeros((), device=device)
        self.acc_mse = torch.zeros((), device=device)
        self.bucket_sum = torch.zeros(nb, device=device)
        self.bucket_cnt = torch.zeros(nb, device=device)
        self.acc_n = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model_config": self.model.config, "schedule": self.schedule.config,
                "parameterization": self.cfg.parameterization}

    def step(self) -> torch.Tensor:
        cfg, schedule, device = self.cfg, self.schedule, self.device
        B, T, gen = cfg.batch, schedule.T, self.generator
        x0 = self.data.batch(B, self.np_rng).to(device, non_blocking=True)
        u = (torch.rand((), generator=gen) + torch.arange(B)) / B        # stratified t
        t = (u * T).long().clamp_(0, T - 1)
        noise = torch.randn(x0.shape, generator=gen).to(device, non_blocking=True)
        x_t = schedule.q_sample(x0, t, noise)
        target = schedule.training_target(x0, noise, t, cfg.parameterization)
        weight = schedule.loss_weight(t, cfg.parameterization, cfg.loss_weighting,
                                      gamma=cfg.min_snr_gamma).to(device, torch.float32)
        cond = None
        if cfg.make_condition is not None:
            with torch.no_grad():
                cond = cfg.make_condition(x0)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_bf16):
            pred = self.model(x_t, schedule.model_time(t).to(device), cond)
        mse = (pred.float() - target).pow(2).flatten(1).mean(1)
        loss = (weight * mse).mean()
        with torch.no_grad():
            self.acc_loss += loss.detach()
            self.acc_mse += mse.detach().mean()
            b = (t * cfg.n_buckets // T).to(device)
            self.bucket_sum.index_add_(0, b, mse.detach())
            self.bucket_cnt.index_add_(0, b, torch.ones_like(mse))
        self.acc_n += 1
        return loss

    def log_fields(self) -> dict[str, Any]:
        n = self.acc_n
        sums, cnts = self.bucket_sum.tolist(), self.bucket_cnt.tolist()
        rec = {"loss": float(self.acc_loss) / n, "mse": float(self.acc_mse) / n,
               "bucket_mse": [s / c if c else None for s, c in zip(sums, cnts)]}
        self.acc_loss.zero_(), self.acc_mse.zero_(), self.bucket_sum.zero_(), self.bucket_cnt.zero_()
        self.acc_n = 0
        return rec

    def validate(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"x0_psnr": evaluate_x0_psnr(self.ema.model, self.schedule, cfg.parameterization, self.val_images,
                                            cfg.val_timesteps, cond=self.val_cond, batch=cfg.batch,
                                            autocast_bf16=self.use_bf16)}

    def log_validation(self, last_val: dict[str, Any]) -> Any:
        return last_val["x0_psnr"]

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        cfg = self.cfg
        manifest = {
            "loss_weighting": cfg.loss_weighting,
            **loop.command_fields(cfg, summary),
            "data": [str(p) for p in cfg.data],
            **loop.run_manifest(cfg, summary["steps"], wall, summary["device"]),
            "validation": summary["validation"],
            "license": cfg.license_note,
            **cfg.extra_manifest,
        }
        path = export_denoiser(cfg.export_name, self.ema.model, self.schedule, cfg.parameterization, manifest)
        return {"export": str(path)}
