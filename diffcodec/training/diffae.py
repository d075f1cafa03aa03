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

Runs in the shared loop (:mod:`diffcodec.training.loop`: ``checkpoint.pt``, ``train_log.jsonl``, resumable,
``max_minutes``, EMA, LR schedule); log records ``{"step", "loss", "mse", "bpp", ...}``. :func:`export` only
writes (weights, integer tables, manifest); everything decoding needs is in :mod:`diffcodec.methods.diffae`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from diffcodec.data import to_tensor, to_uint8
from diffcodec.diffusion.schedules import LOSS_WEIGHTINGS, PARAMETERIZATIONS, NoiseSchedule
from diffcodec.errors import UsageError
from diffcodec.methods import diffae
from diffcodec.methods.diffae_nets import DiffAENet
from diffcodec.training import loop
from diffcodec.training.data import ImageFolderCrops, validation_crops
from diffcodec.training.denoiser import psnr
from diffcodec.training.latent import LatentImageCache

CACHE_NAME = "latent_cache.pt"
CHECKPOINT_FORMAT = "diffcodec-diffae-checkpoint-v1"
DEFAULT_RATE_WEIGHT = {"latent": 0.5, "pixel": 0.05}
DEFAULT_CROP = {"latent": 256, "pixel": 128}
DEFAULT_BATCH = {"latent": 8, "pixel": 4}
# pixel-space decoding of 256 px crops costs ~30x the latent UNet: validate fewer step counts there
DEFAULT_VAL_STEPS = {"latent": tuple(sorted({1, 2, 4, 8, diffae.DEFAULT_STEPS})),
                     "pixel": tuple(sorted({1, diffae.DEFAULT_STEPS}))}


@dataclass(kw_only=True)
class DiffAETrainConfig(loop.LoopConfig):
    """The diffae trainer's options; the loop's (data, out_dir, seed, ...) are :class:`~.loop.LoopConfig`'s."""

    space: str = "latent"                          # latent | pixel
    autoencoder: str = "models/latent-ae"          # latent space: the frozen first stage
    model: dict = field(default_factory=dict)      # diffae.make_config kwargs (factor, latent_channels, unet, ...)
    rate_weight: Optional[float] = None            # lambda (default per space, DEFAULT_RATE_WEIGHT)
    decoder_quant: str = "ste"                     # ste | noise
    crop: Optional[int] = None                     # image crop (default per space)
    batch: Optional[int] = None
    steps: Optional[int] = 100_000
    schedule: Any = "cosine"
    parameterization: str = "x0"
    loss_weighting: str = "min_snr"
    min_snr_gamma: float = 5.0
    loss_weight_floor: float = 1.0                 # x0 only: weight max(w, floor) ("truncated" min-SNR, see below)
    bf16: bool = True                              # bf16 autocast on CUDA only
    val_crops: int = 8
    val_crop: int = 256
    val_steps: Optional[tuple] = None              # decoder steps validated (default per space, DEFAULT_VAL_STEPS)
    flips: bool = True                             # pixel: random flips; latent: also cache the h-flipped latents
    preset_bpp: dict = field(default_factory=lambda: dict(diffae.PRESET_TARGET_BPP))
    channels_last: bool = True

    def resolved(self) -> DiffAETrainConfig:
        if self.space not in diffae.SPACES:
            raise UsageError(f"space must be one of {', '.join(diffae.SPACES)}, got {self.space!r}")
        return dataclasses.replace(
            self,
            rate_weight=DEFAULT_RATE_WEIGHT[self.space] if self.rate_weight is None else self.rate_weight,
            crop=self.crop or DEFAULT_CROP[self.space], batch=self.batch or DEFAULT_BATCH[self.space],
            val_steps=tuple(self.val_steps or DEFAULT_VAL_STEPS[self.space]))


def _check(cfg: DiffAETrainConfig) -> None:
    if cfg.parameterization not in PARAMETERIZATIONS:
        raise UsageError(f"unknown parameterization {cfg.parameterization!r}")
    if cfg.loss_weighting not in LOSS_WEIGHTINGS:
        raise UsageError(f"unknown loss weighting {cfg.loss_weighting!r}")
    if cfg.decoder_quant not in ("ste", "noise"):
        raise UsageError(f"decoder_quant must be ste or noise, got {cfg.decoder_quant!r}")
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
def rate_distortion_loss(trainer: loop.Trainer, pred: torch.Tensor, goal: torch.Tensor, weight: torch.Tensor,
                         bpp: torch.Tensor, rate_weight: float) -> torch.Tensor:
    """loss = mean(weight * |pred - goal|^2) + rate_weight * mean(bpp); its parts go to ``trainer``'s log sums."""
    mse = (pred.float() - goal).pow(2).flatten(1).mean(1)
    loss = (weight * mse).mean() + rate_weight * bpp.mean()
    trainer.acc["loss"] += float(loss.detach())
    trainer.acc["mse"] += float(mse.detach().mean())
    trainer.acc["bpp"] += float(bpp.detach().mean())
    trainer.acc_n += 1
    return loss


def train_diffae(cfg: DiffAETrainConfig) -> dict[str, Any]:
    """Train (or resume) a diffae model; returns a summary (steps, wall time, losses, validation, export path)."""
    cfg = cfg.resolved()
    _check(cfg)
    return loop.train(cfg, DiffAETrainer)


class DiffAETrainer(loop.Trainer):
    desc = "train diffae"
    checkpoint_format = CHECKPOINT_FORMAT
    final_validation = False        # the export measures the shipped weights itself

    def __init__(self, cfg: DiffAETrainConfig, device: torch.device):
        self.use_bf16 = bool(cfg.bf16 and device.type == "cuda")
        self.ae, self.ae_sha = None, None
        if cfg.space == "latent":
            from diffcodec.latent import load_latent_space

            space = load_latent_space(cfg.autoencoder, device)
            self.ae, self.ae_sha = space.autoencoder, space.sha256
            self.ae.requires_grad_(False)
            config = diffae.make_config("latent", target_channels=self.ae.latent_channels,
                                        target_factor=self.ae.factor, **cfg.model)
        else:
            config = diffae.make_config("pixel", target_channels=3, target_factor=1, **cfg.model)
        if cfg.crop % config["factor"]:
            raise UsageError(f"--crop must be a multiple of the latent stride {config['factor']}")
        self.config = config
        self.schedule = NoiseSchedule.from_config(cfg.schedule)
        torch.manual_seed(cfg.seed)
        net = DiffAENet(config).to(device)
        if cfg.channels_last:
            net.unet.to(memory_format=torch.channels_last)
        super().__init__(cfg, device, net)

        images = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop,
                                  flips=cfg.flips and cfg.space == "pixel")
        if cfg.space == "latent":
            self.data = LatentImageCache(images, self.ae, self.ae_sha, cfg.crop, flips=cfg.flips,
                                         cache_path=Path(cfg.out_dir) / CACHE_NAME, progress=cfg.progress)
        else:
            self.data = PixelCrops(images)
        if cfg.val_folder is not None and cfg.val_crops > 0:
            self.val_images = validation_crops(cfg.val_folder, cfg.val_crop, cfg.val_crops)
        self.log_lo, self.log_hi = math.log(config["delta_min"]), math.log(config["delta_max"])
        self.acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0}
        self.acc_n = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model_config": self.config, "schedule": self.schedule.config,
                "parameterization": self.cfg.parameterization, "autoencoder_sha256": self.ae_sha}

    def step(self) -> torch.Tensor:
        cfg, schedule, device, net, gen = self.cfg, self.schedule, self.device, self.model, self.generator
        T, B, S = schedule.T, cfg.batch, cfg.crop
        x, target = self.data.batch(B, self.np_rng)
        x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
        delta = torch.exp(self.log_lo + (self.log_hi - self.log_lo) * torch.rand(B, generator=gen))
        d4 = delta.view(B, 1, 1, 1).to(device)
        u = (torch.rand((), generator=gen) + torch.arange(B)) / B                # stratified t
        t = (u * T).long().clamp_(0, T - 1)
        noise = torch.randn(target.shape, generator=gen).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_bf16):
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
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_bf16):
            cond = net.condition(y_dec, delta)
            pred = net.unet(x_t, schedule.model_time(t).to(device), cond)
        return rate_distortion_loss(self, pred, goal, weight, bpp, cfg.rate_weight)

    def postfix(self, record: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{record['loss']:.4f}", "bpp": f"{record['bpp']:.3f}"}

    def validate(self) -> dict[str, Any]:
        cfg = self.cfg
        return measure(self.ema.model, self.schedule, cfg.parameterization, self.ae, self.val_images,
                       cfg.preset_bpp, cfg.val_steps, batch=cfg.batch)

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        path, validation = export(self.cfg, self.ema.model, self.schedule, self.ae, self.ae_sha, self.val_images,
                                  step=summary["steps"], wall=wall, device=summary["device"],
                                  data_description=self.data.description,
                                  commands=summary.get("commands"))
        return {"export": path, "validation": validation}


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
           data_description: str = "", commands: list[str] | None = None) -> tuple[str, dict | None]:
    """Write the artifact ``cfg.export_name``: fp16 network weights, fp32 prior, integer tables for the whole Delta
    grid, presets fixed from the measured validation bpp (without validation images: grid indices G/4, G/2, 3G/4).
    Returns (weights path, validation figures or None)."""
    from diffcodec.artifacts import save_artifact

    config = net.config
    cpu_net = DiffAENet(config)
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
        **loop.command_fields(cfg, {"commands": commands}),
        "data": [str(p) for p in cfg.data],
        "data_source": data_description,
        **loop.run_manifest(cfg, step, wall, device),
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
