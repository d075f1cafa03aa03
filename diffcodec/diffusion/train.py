"""Training loop for the denoisers (unconditional or conditional), resumable, with export of shipped weights.

``train_denoiser(TrainConfig(...))`` trains a :class:`~diffcodec.diffusion.unet.UNet` on random crops of the
images in ``cfg.data`` and writes into ``cfg.out_dir``:

* ``checkpoint.pt``: model, EMA, optimizer, step, accumulated wall time and every RNG state (written to a
  temporary file, fsynced, then renamed, so a crash never leaves a broken checkpoint);
* ``train_log.jsonl``: one JSON object per ``log_every`` steps (``{"step", "loss", "mse", "bucket_mse",
  "lr", "elapsed_s", "img_per_s"}``; ``loss`` is the weighted training loss, ``mse`` the unweighted MSE in the
  parameterization's space, ``bucket_mse`` the unweighted MSE per noise-level bucket ``t * n_buckets // T``,
  null where no sample fell in a bucket) and one ``{"step", "val": {...}}`` per validation;
* with ``cfg.export_name``, the EMA weights as fp16 safetensors plus manifest via
  :func:`diffcodec.artifacts.save_artifact` (see :func:`export_denoiser`); :func:`load_denoiser` reads them back.

Validation: x0-prediction PSNR (dB, on [-1, 1] images, peak-to-peak 2) of the EMA model on fixed crops at the
fixed timesteps ``cfg.val_timesteps`` with fixed noise; the PSNR of the plain estimate ``x_t / alpha_t`` and the
noise std in 8-bit units (``127.5 sigma_t / alpha_t``) are reported beside it.

Conditional training: ``cfg.make_condition(x0_batch) -> cond`` (on the training device, under no_grad) makes
the network's extra input (e.g. a degraded copy of the image, for a refiner); set ``model["cond_channels"]``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from diffcodec.data import ImageFolderCrops, validation_crops
from diffcodec.diffusion.ema import EMA
from diffcodec.diffusion.schedules import LOSS_WEIGHTINGS, PARAMETERIZATIONS, NoiseSchedule
from diffcodec.diffusion.unet import UNet
from diffcodec.diffusion.models import ARTIFACT_FORMAT, export_denoiser, load_denoiser  # noqa: F401
from diffcodec.errors import ModelError, UsageError

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"
CHECKPOINT_FORMAT = "diffcodec-train-checkpoint-v1"


@dataclass
class TrainConfig:
    data: list[Path]                               # training image folders
    out_dir: Path                                  # checkpoint + log folder
    crop: int = 64
    batch: int = 16
    lr: float = 2e-4                               # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 200                        # linear warm-up from 0
    lr_decay: str = "constant"                     # after warm-up: "constant" | "cosine" (to 0 at `steps`)
    grad_clip: Optional[float] = 1.0
    steps: Optional[int] = 10_000                  # total optimizer steps (including resumed ones)
    max_minutes: Optional[float] = None            # wall-clock limit of this call; stop at whichever comes first
    schedule: Any = "cosine"                       # "linear" | "cosine" | NoiseSchedule config dict
    parameterization: str = "eps"                  # eps | x0 | v
    loss_weighting: str = "const"                  # const | min_snr | p2
    min_snr_gamma: float = 5.0
    model: dict = field(default_factory=dict)      # UNet kwargs (defaults: UNet's)
    ema_decay: float = 0.999
    ema_warmup: bool = True
    device: str = "auto"                           # auto | cpu | cuda[:n]
    bf16: bool = True                              # bf16 autocast, on CUDA only
    seed: int = 0
    checkpoint_every: Optional[int] = 500          # steps
    checkpoint_minutes: Optional[float] = 10.0     # and/or minutes
    resume: bool = False
    val_folder: Optional[Path] = None
    val_crops: int = 16
    val_crop: Optional[int] = None                 # default: crop
    val_every: Optional[int] = 500
    val_timesteps: tuple = (50, 150, 300, 500, 750)
    log_every: int = 1
    n_buckets: int = 5
    flips: bool = True
    rot90: bool = False
    make_condition: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    data_source: Optional[Any] = None              # anything with .batch(n, rng) -> tensor; replaces image crops
    val_data: Optional[torch.Tensor] = None        # validation tensors; replaces crops of val_folder
    export_name: Optional[str] = None              # artifact name, e.g. "denoisers/unet48-cosine-eps"
    command: str = ""                              # the command line that ran this (recorded in the manifest)
    license_note: str = ""                         # licence/terms of the training data (recorded in the manifest)
    extra_manifest: dict = field(default_factory=dict)  # caller's extra manifest fields (e.g. the refiner's presets)
    progress: Optional[bool] = None                # tqdm bar; None: only when stderr is a TTY
    num_threads: Optional[int] = None              # torch CPU threads for this run (None: leave as is)
    channels_last: bool = True                     # NHWC weights/activations (~20% faster convs on the CPU)

    def to_dict(self) -> dict[str, Any]:
        name = lambda v: None if v is None else getattr(v, "description", None) or type(v).__qualname__  # noqa: E731
        return config_dict(self, {"make_condition": name, "data_source": name,
                                  "val_data": lambda v: None if v is None else list(v.shape)})


# ---------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but CUDA is not available")
    return dev


def _device_description(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _schedule_from(cfg_schedule: Any) -> NoiseSchedule:
    if isinstance(cfg_schedule, NoiseSchedule):
        return cfg_schedule
    return NoiseSchedule.from_config(cfg_schedule)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename durable too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


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


def _lr_at(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_decay == "cosine" and cfg.steps:
        progress = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))
        return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * warm


def _check_config(cfg: TrainConfig) -> None:
    if cfg.parameterization not in PARAMETERIZATIONS:
        raise UsageError(f"unknown parameterization {cfg.parameterization!r} (one of {', '.join(PARAMETERIZATIONS)})")
    if cfg.loss_weighting not in LOSS_WEIGHTINGS:
        raise UsageError(f"unknown loss weighting {cfg.loss_weighting!r} (one of {', '.join(LOSS_WEIGHTINGS)})")
    if cfg.lr_decay not in ("constant", "cosine"):
        raise UsageError(f"unknown lr_decay {cfg.lr_decay!r}")
    if cfg.steps is None and cfg.max_minutes is None:
        raise UsageError("give steps or max_minutes (or both)")
    if cfg.batch < 1 or cfg.crop < 8 or cfg.log_every < 1 or cfg.n_buckets < 1:
        raise UsageError("batch >= 1, crop >= 8, log_every >= 1 and n_buckets >= 1 are required")


# ---------------------------------------------------------------------- training
def with_threads(num_threads: Optional[int], fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` with ``num_threads`` torch CPU threads (None: as is), restoring the count afterwards."""
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def config_dict(cfg: Any, special: Optional[dict[str, Callable[[Any], Any]]] = None) -> dict[str, Any]:
    """A training config dataclass as JSON-able values (paths as strings; ``special[name](value)`` where given)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if special and f.name in special:
            v = special[f.name](v)
        elif isinstance(v, Path):
            v = str(v)
        elif isinstance(v, (list, tuple)):
            v = [str(x) if isinstance(x, Path) else x for x in v]
        out[f.name] = v
    return out


def load_checkpoint(ckpt_path: Path, fmt: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Read a training checkpoint of format ``fmt`` and check that each ``expected`` key matches (resuming a
    run with another model or schedule would silently train something else)."""
    try:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"cannot read checkpoint {ckpt_path}: {e}") from None
    if ck.get("format") != fmt:
        raise ModelError(f"{ckpt_path} is not a {fmt} checkpoint")
    for key, mine in expected.items():
        if ck.get(key) != mine:
            raise UsageError(f"cannot resume {ckpt_path}: its {key} {ck.get(key)!r} differs from {mine!r}")
    return ck


def run_paths(out_dir: Path | str, resume: bool) -> tuple[Path, Path]:
    """(checkpoint, log) paths of a training run folder (created); refuses to overwrite a run not resumed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    if ckpt_path.exists() and not resume:
        raise UsageError(f"{ckpt_path} exists: resume it (--resume) or choose another output folder")
    return ckpt_path, log_path


def train_denoiser(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a denoiser; returns a summary dict (steps, wall time, losses, validation, paths)."""
    _check_config(cfg)
    return with_threads(cfg.num_threads, lambda: _train_denoiser(cfg))


def _train_denoiser(cfg: TrainConfig) -> dict[str, Any]:
    ckpt_path, log_path = run_paths(cfg.out_dir, cfg.resume)

    device = resolve_device(cfg.device)
    use_bf16 = bool(cfg.bf16 and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    schedule = _schedule_from(cfg.schedule)
    torch.manual_seed(cfg.seed)
    model = UNet.from_config(dict(cfg.model)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.data_source is not None:
        data = cfg.data_source
    else:
        data = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=cfg.flips, rot90=cfg.rot90)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    step, prior_wall = 0, 0.0
    last_val: dict[str, Any] | None = None
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, CHECKPOINT_FORMAT, {"model_config": model.config, "schedule": schedule.config,
                                                            "parameterization": cfg.parameterization})
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        ema.to(device)
        opt.load_state_dict(ck["optimizer"])
        step, prior_wall = int(ck["step"]), float(ck["wall_time_s"])
        last_val = ck.get("last_val")
        torch.set_rng_state(ck["rng"]["torch"])
        gen.set_state(ck["rng"]["generator"])
        np_rng.bit_generator.state = json.loads(ck["rng"]["numpy"])
        if device.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
        _truncate_log(log_path, step)
    else:
        log_path.write_text("")

    val_images = val_cond = None
    if cfg.val_data is not None:
        val_images = cfg.val_data
    elif cfg.val_folder is not None and cfg.val_crops > 0:
        val_images = validation_crops(cfg.val_folder, cfg.val_crop or cfg.crop, cfg.val_crops)
        if cfg.make_condition is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 1)
                val_cond = cfg.make_condition(val_images.to(device)).detach()

    def validate() -> dict[str, Any]:
        return evaluate_x0_psnr(ema.model, schedule, cfg.parameterization, val_images, cfg.val_timesteps,
                                cond=val_cond, batch=cfg.batch, autocast_bf16=use_bf16)

    def save_checkpoint() -> None:
        rng = {
            "torch": torch.get_rng_state(),
            "generator": gen.get_state(),
            "numpy": json.dumps(np_rng.bit_generator.state),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }
        _atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "step": step, "wall_time_s": prior_wall + (time.time() - t_start),
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(), "rng": rng,
            "model_config": model.config, "schedule": schedule.config, "parameterization": cfg.parameterization,
            "train_config": json.dumps(cfg.to_dict()), "last_val": last_val,
        }, ckpt_path)

    T, nb = schedule.T, cfg.n_buckets
    B = cfg.batch
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, file=sys.stderr, dynamic_ncols=True, desc="train")

    t_start = time.time()
    last_ckpt_time, last_log_time = t_start, t_start
    acc_loss = torch.zeros((), device=device)
    acc_mse = torch.zeros((), device=device)
    bucket_sum = torch.zeros(nb, device=device)
    bucket_cnt = torch.zeros(nb, device=device)
    acc_n = 0
    first_loss = last_loss = None
    start_step = step
    model.train()
    log_f = open(log_path, "a")
    try:
        while True:
            if cfg.steps is not None and step >= cfg.steps:
                break
            if cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60:
                break
            lr = _lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr

            x0 = data.batch(B, np_rng).to(device, non_blocking=True)
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
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                pred = model(x_t, schedule.model_time(t).to(device), cond)
            mse = (pred.float() - target).pow(2).flatten(1).mean(1)
            loss = (weight * mse).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model)
            step += 1

            with torch.no_grad():
                acc_loss += loss.detach()
                acc_mse += mse.detach().mean()
                b = (t * nb // T).to(device)
                bucket_sum.index_add_(0, b, mse.detach())
                bucket_cnt.index_add_(0, b, torch.ones_like(mse))
            acc_n += 1

            if step % cfg.log_every == 0 or (cfg.steps is not None and step >= cfg.steps):
                now = time.time()
                sums, cnts = bucket_sum.tolist(), bucket_cnt.tolist()
                rec = {
                    "step": step,
                    "loss": float(acc_loss) / acc_n,
                    "mse": float(acc_mse) / acc_n,
                    "bucket_mse": [s / c if c else None for s, c in zip(sums, cnts)],
                    "lr": lr,
                    "elapsed_s": round(prior_wall + now - t_start, 3),
                    "img_per_s": round(acc_n * B / max(now - last_log_time, 1e-9), 2),
                }
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
                last_loss = rec["loss"]
                if first_loss is None:
                    first_loss = last_loss
                if bar is not None:
                    bar.set_postfix(loss=f"{last_loss:.4f}", refresh=False)
                acc_loss.zero_(), acc_mse.zero_(), bucket_sum.zero_(), bucket_cnt.zero_()
                acc_n, last_log_time = 0, now
            if bar is not None:
                bar.update(1)

            if val_images is not None and cfg.val_every and step % cfg.val_every == 0:
                last_val = {"step": step, "x0_psnr": validate()}
                log_f.write(json.dumps({"step": step, "val": last_val["x0_psnr"]}) + "\n")
                log_f.flush()
            now = time.time()
            if ((cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                    or (cfg.checkpoint_minutes and now - last_ckpt_time >= cfg.checkpoint_minutes * 60)):
                save_checkpoint()
                last_ckpt_time = now
    except KeyboardInterrupt:
        save_checkpoint()
        log_f.close()
        if bar is not None:
            bar.close()
        raise
    if bar is not None:
        bar.close()

    if val_images is not None and (last_val is None or last_val["step"] != step):
        last_val = {"step": step, "x0_psnr": validate()}
        log_f.write(json.dumps({"step": step, "val": last_val["x0_psnr"]}) + "\n")
    log_f.close()
    save_checkpoint()
    wall = prior_wall + (time.time() - t_start)

    summary: dict[str, Any] = {
        "steps": step,
        "steps_this_run": step - start_step,
        "wall_time_s": round(wall, 2),
        "wall_time_this_run_s": round(time.time() - t_start, 2),
        "first_loss": first_loss,
        "final_loss": last_loss,
        "validation": last_val,
        "checkpoint": str(ckpt_path),
        "log": str(log_path),
        "device": _device_description(device),
        "params": model.num_parameters(),
        "export": None,
    }
    if cfg.export_name:
        manifest = {
            "loss_weighting": cfg.loss_weighting,
            "command": cfg.command,
            "data": [str(p) for p in cfg.data],
            "steps": step,
            "batch": cfg.batch,
            "crop": cfg.crop,
            "lr": cfg.lr,
            "ema_decay": cfg.ema_decay,
            "seed": cfg.seed,
            "wall_time_s": round(wall, 1),
            "device": summary["device"],
            "validation": last_val,
            "license": cfg.license_note,
            **cfg.extra_manifest,
        }
        summary["export"] = str(export_denoiser(cfg.export_name, ema.model, schedule, cfg.parameterization, manifest))
    return summary


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log records written after the checkpoint we resume from (they will be redone)."""
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue
    tmp = log_path.with_name(log_path.name + ".tmp")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, log_path)
