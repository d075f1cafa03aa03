"""Training of the diffusion-autoencoder codec (`diffcodec train diffae`): encoder, prior and decoder jointly.

One variable-rate model. Per training crop x (and its diffusion target: x itself in pixel space, the frozen
`latent-ae` latent of x in latent space)::

    y       = encoder(x)                                    (B, c, crop/f, crop/f)
    Delta   ~ log-uniform [delta_min, delta_max], one per sample
    rate    = sum -log2 P(y + Delta * U(-1/2, 1/2))  /  pixels          (bpp; P = the prior's bin mass)
    y_dec   = y + stopgrad(Delta * rint(y / Delta) - y)    (decoder_quant "ste", default; "noise": the noisy y)
    cond    = CondNet(y_dec, log Delta) upsampled to the target's resolution
    loss    = w(t) |UNet(x_t, t, cond) - target|^2  (x0-prediction, cosine schedule)
              + rate_weight * rate

w(t) = max(min(SNR, 5), 1) by default: min-SNR-5 (Hang et al. 2023) on the x0 loss with a floor of 1 (Salimans &
Ho's "truncated SNR"). Plain min-SNR gives the x0 error at high noise almost no weight (w = SNR -> 0), but a
decoder that samples with 1-4 steps starts from t = T-1, where x0_hat is its whole first estimate of E[x | y];
the floor trains it there (``loss_weight_floor=0`` restores plain min-SNR).

Latent space: the autoencoder latents of every *whole* training image are computed once (no_grad, cached in
``out_dir/latent_cache.pt``) and crops are taken at positions that are multiples of the autoencoder's stride,
so image crop and latent crop line up exactly (as at coding time, where the whole image is encoded).

Validation (fixed `validation_crops` of ``val_folder``): the EMA model's real coded bpp (integer tables, range
coder) at every Delta of the grid, the presets that this implies (grid index closest to each target bpp), and at
the presets the PSNR / MS-SSIM of N-step decodes for N in ``val_steps``. At export the same measurement on the
fp16-rounded weights fixes the presets and is recorded in the manifest.

Writes ``checkpoint.pt`` (atomic) and ``train_log.jsonl`` in ``out_dir``; resumable, ``max_minutes``, EMA,
progress bar only on a TTY, as the denoiser and autoencoder trainings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from diffcodec.data import ImageFolderCrops, to_tensor, to_uint8, validation_crops
from diffcodec.diffusion.ema import EMA
from diffcodec.diffusion.schedules import LOSS_WEIGHTINGS, PARAMETERIZATIONS, NoiseSchedule
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
from diffcodec.latent import LatentImageCache
from diffcodec.methods import diffae

CACHE_NAME = "latent_cache.pt"
CHECKPOINT_FORMAT = "diffcodec-diffae-checkpoint-v1"
DEFAULT_RATE_WEIGHT = {"latent": 0.5, "pixel": 0.05}
DEFAULT_CROP = {"latent": 256, "pixel": 128}
DEFAULT_BATCH = {"latent": 8, "pixel": 4}
# pixel-space decoding of 256 px crops costs ~30x the latent UNet: validate fewer step counts there
DEFAULT_VAL_STEPS = {"latent": tuple(sorted({1, 2, 4, 8, diffae.DEFAULT_STEPS})),
                     "pixel": tuple(sorted({1, diffae.DEFAULT_STEPS}))}


@dataclass
class DiffAETrainConfig:
    data: list[Path]
    out_dir: Path
    space: str = "latent"                          # latent | pixel
    autoencoder: str = "models/latent-ae"          # latent space: the frozen first stage
    model: dict = field(default_factory=dict)      # diffae.make_config kwargs (factor, latent_channels, unet, ...)
    rate_weight: Optional[float] = None            # lambda (default per space, DEFAULT_RATE_WEIGHT)
    decoder_quant: str = "ste"                     # ste | noise
    crop: Optional[int] = None                     # image crop (default per space)
    batch: Optional[int] = None
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    lr_decay: str = "cosine"                       # constant | cosine (to 0 at `steps`)
    grad_clip: Optional[float] = 1.0
    steps: Optional[int] = 100_000
    max_minutes: Optional[float] = None
    schedule: Any = "cosine"
    parameterization: str = "x0"
    loss_weighting: str = "min_snr"
    min_snr_gamma: float = 5.0
    loss_weight_floor: float = 1.0                 # x0 only: weight max(w, floor) ("truncated" min-SNR, see below)
    ema_decay: float = 0.999
    ema_warmup: bool = True
    device: str = "auto"
    bf16: bool = True                              # bf16 autocast on CUDA only
    seed: int = 0
    checkpoint_minutes: Optional[float] = 5.0
    checkpoint_every: Optional[int] = None
    resume: bool = False
    val_folder: Optional[Path] = None
    val_crops: int = 8
    val_crop: int = 256
    val_every: Optional[int] = 500
    val_steps: Optional[tuple] = None              # decoder steps validated (default per space, DEFAULT_VAL_STEPS)
    log_every: int = 10
    flips: bool = True                             # pixel: random flips; latent: also cache the h-flipped latents
    preset_bpp: dict = field(default_factory=lambda: dict(diffae.PRESET_TARGET_BPP))
    export_name: Optional[str] = None              # e.g. "models/diffae"
    command: str = ""
    license_note: str = ""
    progress: Optional[bool] = None
    num_threads: Optional[int] = None
    channels_last: bool = True

    def resolved(self) -> DiffAETrainConfig:
        if self.space not in diffae.SPACES:
            raise UsageError(f"space must be one of {', '.join(diffae.SPACES)}, got {self.space!r}")
        return dataclasses.replace(
            self,
            rate_weight=DEFAULT_RATE_WEIGHT[self.space] if self.rate_weight is None else self.rate_weight,
            crop=self.crop or DEFAULT_CROP[self.space], batch=self.batch or DEFAULT_BATCH[self.space],
            val_steps=tuple(self.val_steps or DEFAULT_VAL_STEPS[self.space]))

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)


def _check(cfg: DiffAETrainConfig) -> None:
    if cfg.steps is None and cfg.max_minutes is None:
        raise UsageError("give steps or max_minutes (or both)")
    if cfg.parameterization not in PARAMETERIZATIONS:
        raise UsageError(f"unknown parameterization {cfg.parameterization!r}")
    if cfg.loss_weighting not in LOSS_WEIGHTINGS:
        raise UsageError(f"unknown loss weighting {cfg.loss_weighting!r}")
    if cfg.lr_decay not in ("constant", "cosine"):
        raise UsageError(f"unknown lr_decay {cfg.lr_decay!r}")
    if cfg.decoder_quant not in ("ste", "noise"):
        raise UsageError(f"decoder_quant must be ste or noise, got {cfg.decoder_quant!r}")
    if cfg.batch < 1 or cfg.log_every < 1:
        raise UsageError("batch >= 1 and log_every >= 1 are required")
    if set(cfg.preset_bpp) != set(diffae.PRESETS) or min(cfg.preset_bpp.values()) <= 0:
        raise UsageError(f"preset_bpp needs positive targets for {', '.join(diffae.PRESETS)}")
    for n in cfg.val_steps:
        if not 1 <= int(n) <= diffae.MAX_STEPS:
            raise UsageError(f"val_steps must lie in 1..{diffae.MAX_STEPS}")


# ---------------------------------------------------------------------------------------------- data
class PixelCrops:
    """Pixel space: random crops; the diffusion target is the crop itself."""

    def __init__(self, images: ImageFolderCrops):
        self.images = images
        self.description = f"random {images.crop}px crops{' with flips' if images.flips else ''}"

    def batch(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images.batch(n, rng)
        return x, x


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def measure(net, schedule, parameterization: str, autoencoder, images: torch.Tensor, preset_bpp: dict,
            steps=(1,), *, tables=None, seed: int = 1234, batch: int = 8) -> dict[str, Any]:
    """Real coded rate on ``images`` (N, 3, S, S) in [-1, 1] at every Delta of the grid (exact range-coder payload
    of each image, integer tables of ``net``'s prior), the presets this gives (grid index whose mean payload bpp
    is closest in log to each target), and at each preset the mean PSNR (8-bit) and MS-SSIM of decodes with
    N steps for N in ``steps`` (fixed noise). ``tables``: (tables, supports, deltas) if already built."""
    from diffcodec import metrics

    dev = next(net.parameters()).device
    was = net.training
    net.eval()
    cfg = net.config
    if tables is None:
        deltas = diffae.delta_grid(cfg)
        p = net.prior
        tabs, supports = diffae.build_tables(p.logits.detach().cpu().numpy(), p.means.detach().cpu().numpy(),
                                             p.log_scales.detach().cpu().numpy(), deltas)
    else:
        tabs, supports, deltas = tables
    n, _, H, W = images.shape
    ys = torch.cat([net.encode(images[i:i + batch].to(dev)).float().cpu() for i in range(0, n, batch)]).numpy()
    grid_bpp = []
    for g, d in enumerate(deltas):
        L = int(supports[g])
        bits = [8 * len(diffae.encode_latent(diffae.quantize(y, d, L), tabs[g], L)) for y in ys]
        grid_bpp.append(round(float(np.mean(bits)) / (H * W), 5))
    presets = {}
    for name, target in preset_bpp.items():
        g = int(np.argmin([abs(math.log(max(b, 1e-9) / target)) for b in grid_bpp]))
        presets[name] = {"index": g, "delta": float(deltas[g]), "target_bpp": target, "val_bpp": grid_bpp[g]}
    ref = to_uint8(images)
    done: dict[int, dict] = {}
    for pr in presets.values():
        g = pr["index"]
        if g in done:              # two presets on one grid index: same figures
            pr["psnr"], pr["ms_ssim"] = dict(done[g]["psnr"]), dict(done[g]["ms_ssim"])
            continue
        done[g] = pr
        q = np.stack([diffae.quantize(y, deltas[g], int(supports[g])) for y in ys])
        y_hat = torch.from_numpy(diffae.dequantize(q, deltas[g]))
        pr["psnr"], pr["ms_ssim"] = {}, {}
        for n_steps in steps:
            gen = torch.Generator().manual_seed(seed)
            outs = []
            for i in range(0, n, batch):
                yb = y_hat[i:i + batch].to(dev)
                x0 = diffae.sample_targets(net, schedule, parameterization, yb,
                                           torch.full((yb.shape[0],), float(deltas[g])), int(n_steps), gen)
                outs.append(to_uint8(diffae.to_images(x0.float(), cfg["space"], autoencoder, H, W)))
            dec = np.concatenate(outs)
            pr["psnr"][str(n_steps)] = round(float(psnr(to_tensor(dec), to_tensor(ref)).mean()), 3)
            ms = [metrics.ms_ssim(ref[j], dec[j]) for j in range(n)]
            pr["ms_ssim"][str(n_steps)] = None if all(math.isnan(m) for m in ms) else round(float(np.nanmean(ms)), 5)
    net.train(was)
    return {"grid_bpp": grid_bpp, "presets": presets}


# ---------------------------------------------------------------------------------------------- training
def train_diffae(cfg: DiffAETrainConfig) -> dict[str, Any]:
    """Train (or resume) a diffae model; returns a summary (steps, wall time, losses, validation, export path)."""
    cfg = cfg.resolved()
    _check(cfg)
    return with_threads(cfg.num_threads, lambda: _train(cfg))


def _train(cfg: DiffAETrainConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    ckpt_path, log_path = run_paths(out_dir, cfg.resume)
    device = resolve_device(cfg.device)
    use_bf16 = bool(cfg.bf16 and device.type == "cuda")
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()

    ae, ae_sha = None, None
    if cfg.space == "latent":
        from diffcodec.latent import load_latent_space

        space = load_latent_space(cfg.autoencoder, device)
        ae, ae_sha = space.autoencoder, space.sha256
        ae.requires_grad_(False)
        config = diffae.make_config("latent", target_channels=ae.latent_channels, target_factor=ae.factor, **cfg.model)
    else:
        config = diffae.make_config("pixel", target_channels=3, target_factor=1, **cfg.model)
    if cfg.crop % config["factor"]:
        raise UsageError(f"--crop must be a multiple of the latent stride {config['factor']}")

    schedule = NoiseSchedule.from_config(cfg.schedule)
    torch.manual_seed(cfg.seed)
    net = diffae.build_net(config).to(device)
    if cfg.channels_last:
        net.unet.to(memory_format=torch.channels_last)
    ema = EMA(net, cfg.ema_decay, cfg.ema_warmup)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    step, prior_wall, last_val = 0, 0.0, None
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, CHECKPOINT_FORMAT, {
            "model_config": config, "schedule": schedule.config, "parameterization": cfg.parameterization,
            "autoencoder_sha256": ae_sha})
        net.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        ema.to(device)
        opt.load_state_dict(ck["optimizer"])
        step, prior_wall, last_val = int(ck["step"]), float(ck["wall_time_s"]), ck.get("last_val")
        torch.set_rng_state(ck["rng"]["torch"])
        gen.set_state(ck["rng"]["generator"])
        np_rng.bit_generator.state = json.loads(ck["rng"]["numpy"])
        _truncate_log(log_path, step)
    else:
        log_path.write_text("")

    images = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop,
                              flips=cfg.flips and cfg.space == "pixel")
    if cfg.space == "latent":
        data = LatentImageCache(images, ae, ae_sha, cfg.crop, flips=cfg.flips, cache_path=out_dir / CACHE_NAME,
                                progress=show)
    else:
        data = PixelCrops(images)
    val_images = None
    if cfg.val_folder is not None and cfg.val_crops > 0:
        val_images = validation_crops(cfg.val_folder, cfg.val_crop, cfg.val_crops)

    def validate() -> dict[str, Any]:
        return {"step": step, **measure(ema.model, schedule, cfg.parameterization, ae, val_images, cfg.preset_bpp,
                                        cfg.val_steps, batch=cfg.batch)}

    t_start = time.time()

    def save_checkpoint() -> None:
        _atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "step": step, "wall_time_s": prior_wall + time.time() - t_start,
            "model": net.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": gen.get_state(),
                    "numpy": json.dumps(np_rng.bit_generator.state)},
            "model_config": config, "schedule": schedule.config, "parameterization": cfg.parameterization,
            "autoencoder_sha256": ae_sha, "train_config": json.dumps(cfg.to_dict()), "last_val": last_val,
        }, ckpt_path)

    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, file=sys.stderr, dynamic_ncols=True, desc="train diffae")
    T, B, S = schedule.T, cfg.batch, cfg.crop
    log_lo, log_hi = math.log(config["delta_min"]), math.log(config["delta_max"])
    last_ckpt = last_log = t_start
    acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0}
    acc_n, first_loss, last_loss, start_step = 0, None, None, step
    log_f = open(log_path, "a")
    net.train()
    try:
        while not (cfg.steps is not None and step >= cfg.steps) and not (
                cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60):
            lr = _lr_at(cfg, step)
            for grp in opt.param_groups:
                grp["lr"] = lr
            x, target = data.batch(B, np_rng)
            x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
            delta = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(B, generator=gen))
            d4 = delta.view(B, 1, 1, 1).to(device)
            u = (torch.rand((), generator=gen) + torch.arange(B)) / B                # stratified t
            t = (u * T).long().clamp_(0, T - 1)
            noise = torch.randn(target.shape, generator=gen).to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                y = net.encode(x).float()
            unif = (torch.rand(y.shape, generator=gen) - 0.5).to(device)
            y_noisy = y + d4 * unif
            bits = net.prior.bits(y_noisy, delta.to(device))
            bpp = bits.flatten(1).sum(1) / (S * S)
            y_dec = y + (torch.round(y / d4) * d4 - y).detach() if cfg.decoder_quant == "ste" else y_noisy
            x_t = schedule.q_sample(target, t, noise)
            goal = schedule.training_target(target, noise, t, cfg.parameterization)
            weight = schedule.loss_weight(t, cfg.parameterization, cfg.loss_weighting, gamma=cfg.min_snr_gamma)
            if cfg.parameterization == "x0" and cfg.loss_weight_floor:
                weight = weight.clamp_min(cfg.loss_weight_floor)
            weight = weight.to(device, torch.float32)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                cond = net.condition(y_dec, delta)
                pred = net.unet(x_t, schedule.model_time(t).to(device), cond)
            mse = (pred.float() - goal).pow(2).flatten(1).mean(1)
            loss = (weight * mse).mean() + cfg.rate_weight * bpp.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(net)
            step += 1
            acc["loss"] += float(loss.detach())
            acc["mse"] += float(mse.detach().mean())
            acc["bpp"] += float(bpp.detach().mean())
            acc_n += 1
            if bar is not None:
                bar.update(1)
            if step % cfg.log_every == 0 or (cfg.steps is not None and step >= cfg.steps):
                now = time.time()
                rec = {"step": step, **{k: v / acc_n for k, v in acc.items()}, "lr": lr,
                       "elapsed_s": round(prior_wall + now - t_start, 2),
                       "s_per_step": round((now - last_log) / acc_n, 3),
                       "img_per_s": round(acc_n * B / max(now - last_log, 1e-9), 2)}
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
                last_loss = rec["loss"]
                first_loss = last_loss if first_loss is None else first_loss
                if bar is not None:
                    bar.set_postfix(loss=f"{last_loss:.4f}", bpp=f"{rec['bpp']:.3f}", refresh=False)
                acc = dict.fromkeys(acc, 0.0)
                acc_n, last_log = 0, now
            if val_images is not None and cfg.val_every and step % cfg.val_every == 0:
                last_val = validate()
                log_f.write(json.dumps({"step": step, "val": last_val}) + "\n")
                log_f.flush()
            now = time.time()
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or (
                    cfg.checkpoint_minutes and now - last_ckpt >= cfg.checkpoint_minutes * 60):
                save_checkpoint()
                last_ckpt = now
    except KeyboardInterrupt:
        save_checkpoint()
        log_f.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    log_f.close()
    save_checkpoint()
    wall = prior_wall + time.time() - t_start
    summary: dict[str, Any] = {
        "steps": step, "steps_this_run": step - start_step, "wall_time_s": round(wall, 2),
        "wall_time_this_run_s": round(time.time() - t_start, 2), "first_loss": first_loss,
        "final_loss": last_loss, "validation": last_val, "checkpoint": str(ckpt_path), "log": str(log_path),
        "device": _device_description(device), "params": sum(p.numel() for p in net.parameters()), "export": None,
    }
    if cfg.export_name:
        summary["export"], summary["validation"] = export(
            cfg, ema.model, schedule, ae, ae_sha, val_images, step=step, wall=wall, device=summary["device"],
            data_description=data.description)
    return summary


# ---------------------------------------------------------------------------------------------- export
def _figures(validation: dict | None) -> dict | None:
    """One line per preset for `diffcodec models`: payload bpp and PSNR at the default decoder steps."""
    if not validation:
        return None
    n = str(diffae.DEFAULT_STEPS)
    return {name: f"{p['val_bpp']:.3f} bpp, {p['psnr'].get(n, float('nan')):.2f} dB ({n} steps)"
            for name, p in validation["presets"].items()}


def export(cfg: DiffAETrainConfig, net, schedule: NoiseSchedule, ae, ae_sha: str | None,
           val_images: torch.Tensor | None, *, step: int, wall: float, device: str,
           data_description: str = "") -> tuple[str, dict | None]:
    """Write the artifact ``cfg.export_name``: fp16 network weights, fp32 prior, integer tables for the whole Delta
    grid, presets fixed from the measured validation bpp (without validation images: grid indices G/4, G/2, 3G/4).
    Returns (weights path, validation figures or None)."""
    from diffcodec.artifacts import save_artifact

    config = net.config
    cpu_net = diffae.build_net(config)
    tensors, tables, supports, deltas = diffae.export_tensors(net.to("cpu"), config)
    diffae.load_state(cpu_net, tensors)          # measure the weights as shipped (fp16-rounded)
    cpu_net.eval()
    ae_cpu = ae.to("cpu") if ae is not None else None
    validation = None
    G = len(deltas)
    if val_images is not None:
        validation = measure(cpu_net, schedule, cfg.parameterization, ae_cpu, val_images, cfg.preset_bpp,
                             cfg.val_steps, tables=(tables, supports, deltas), batch=cfg.batch)
        preset_index = [validation["presets"][p]["index"] for p in diffae.PRESETS]
    else:
        preset_index = [G // 4, G // 2, (3 * G) // 4]
    tensors["presets"] = np.asarray(preset_index, dtype=np.int32)
    manifest = {
        "kind": "diffae",
        "format": diffae.ARTIFACT_FORMAT,
        "model_config": config,
        "schedule": schedule.config,
        "parameterization": cfg.parameterization,
        "loss_weighting": cfg.loss_weighting,
        "min_snr_gamma": cfg.min_snr_gamma,
        "loss_weight_floor": cfg.loss_weight_floor,
        "space": config["space"],
        "autoencoder": cfg.autoencoder if config["space"] == "latent" else None,
        "autoencoder_sha256": ae_sha,
        "deltas": [float(d) for d in deltas],
        "supports": [int(s) for s in supports],
        "table_total": diffae.TABLE_TOTAL,
        "presets": {p: int(i) for p, i in zip(diffae.PRESETS, preset_index)},
        "default_steps_at_export": diffae.DEFAULT_STEPS,
        "rate_weight": cfg.rate_weight,
        "decoder_quant": cfg.decoder_quant,
        "params": sum(p.numel() for p in cpu_net.parameters()),
        "params_by_part": {k: sum(p.numel() for p in getattr(cpu_net, k).parameters())
                           for k in ("encoder", "prior", "cond", "unet")},
        "dtype": "float16 (prior parameters float32, tables int32)",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": cfg.command,
        "data": [str(p) for p in cfg.data],
        "data_source": data_description,
        "steps": step,
        "batch": cfg.batch,
        "crop": cfg.crop,
        "lr": cfg.lr,
        "ema_decay": cfg.ema_decay,
        "seed": cfg.seed,
        "wall_time_s": round(wall, 1),
        "device": device,
        "validation_figures": _figures(validation),
        "validation": validation,
        "validation_note": (f"{cfg.val_crops} fixed {cfg.val_crop}px crops of {cfg.val_folder}: payload bpp of the "
                            f"range-coded latent per grid index; per preset PSNR (8-bit) / MS-SSIM of DDIM decodes "
                            f"with the given step counts" if val_images is not None else None),
        "license": cfg.license_note,
    }
    metadata = {"format": diffae.ARTIFACT_FORMAT, "model_config": json.dumps(config)}
    path = save_artifact(cfg.export_name, tensors, manifest, metadata=metadata)
    return str(path), validation
