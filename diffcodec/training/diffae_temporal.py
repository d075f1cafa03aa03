"""Training of diffae's temporal layers (`diffcodec train diffae-temporal`; inference in
:mod:`diffcodec.methods.diffae_temporal`): the 1x1 projections and deflates of
:class:`~diffcodec.methods.diffae_nets.TemporalLayers`, over a frozen diffae model, on synthetic motion.

Per step: B still crops, each made a sequence of 4 frames by :func:`~diffcodec.training.synthetic_motion.sequence`;
a factor f (2 or 4, drawn per step) cuts it into groups of f frames::

    y_i     = frozen diffae encoder(frame_i)                 z = pool(y_1 .. y_f)        (the learned layers)
    Delta   ~ log-uniform over the model's grid range        rate = -log2 P(z + Delta U) / (f * pixels)
    z_dec   = z rounded to the Delta grid (straight-through) y_hat_i = unpool(z_dec)_i   (the learned layers)
    loss    = the diffae decoder's own training loss on each frame given y_hat_i (x0, its weighting) + lambda rate

with lambda the diffae model's own rate weight. The layers start as plain pooling and copying, so step 0 is that
design without learned parts; validation reports both (real range-coded bpp and 2-step decodes of fixed
synthetic sequences of the validation images at the model's presets), beside intra coding of the same frames.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from diffcodec.data import to_tensor, to_uint8
from diffcodec.errors import UsageError
from diffcodec.methods import diffae
from diffcodec.methods import diffae_temporal as dt
from diffcodec.methods.diffae_nets import TemporalLayers
from diffcodec.training import loop
from diffcodec.training.data import ImageFolderCrops, validation_crops
from diffcodec.training.denoiser import psnr
from diffcodec.training.diffae import DiffAETrainer, rate_distortion_loss
from diffcodec.training.synthetic_motion import sequence

CHECKPOINT_FORMAT = "diffcodec-diffae-temporal-checkpoint-v1"
SEQUENCE = 4            # frames per training sequence (the largest factor)


@dataclass(kw_only=True)
class TemporalTrainConfig(loop.LoopConfig):
    diffae_model: str = "diffae"
    crop: int = 128
    batch: int = 4                      # sequences per step
    steps: Optional[int] = 2000
    lr: float = 1e-3
    warmup_steps: int = 50
    val_crops: int = 8
    val_crop: int = 128
    val_every: Optional[int] = 250
    val_steps: int = diffae.DEFAULT_STEPS


def train_temporal(cfg: TemporalTrainConfig) -> dict[str, Any]:
    return loop.train(cfg, TemporalTrainer)


def sequences(stills: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (B, S, S, 3) stills -> (B, SEQUENCE, S, S, 3) synthetic-motion sequences."""
    return np.stack([np.stack(sequence(s, SEQUENCE, rng)) for s in stills])


class TemporalTrainer(loop.Trainer):
    desc = "train diffae-temporal"
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: TemporalTrainConfig, device: torch.device):
        self.base = diffae.load_model(cfg.diffae_model, str(device))
        if self.base.space != "latent":
            raise UsageError("diffae-temporal trains over a latent-space diffae model")
        m = self.base.manifest
        self.rate_weight = float(m.get("rate_weight") or 0.5)
        self.loss_weighting = m.get("loss_weighting", "min_snr")
        self.gamma, self.floor = float(m.get("min_snr_gamma", 5.0)), float(m.get("loss_weight_floor", 1.0))
        if cfg.crop % self.base.config["factor"]:
            raise UsageError(f"--crop must be a multiple of {self.base.config['factor']}")
        torch.manual_seed(cfg.seed)
        net = TemporalLayers(self.base.config["latent_channels"], dt.MAX_LEVELS).to(device)
        super().__init__(cfg, device, net)
        self.images = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=True)
        self.log_lo, self.log_hi = math.log(float(self.base.deltas.min())), math.log(float(self.base.deltas.max()))
        if cfg.val_folder is not None and cfg.val_crops > 0:
            stills = to_uint8(validation_crops(cfg.val_folder, cfg.val_crop, cfg.val_crops))
            self.val_images = torch.from_numpy(sequences(stills, np.random.default_rng(1234)))
            self.identity = self._measure(TemporalLayers(net.channels, net.levels).to(device), intra=True)
        self.acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0}
        self.acc_n = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"diffae_sha256": self.base.sha, "levels": dt.MAX_LEVELS}

    def step(self) -> torch.Tensor:
        cfg, base, gen = self.cfg, self.base, self.generator
        net, schedule, dev = base.net, base.schedule, self.device
        seqs = sequences(self.images.batch_uint8(cfg.batch, self.np_rng), self.np_rng)
        B, F, S = seqs.shape[0], SEQUENCE, cfg.crop
        f = dt.TEMPORAL_FACTORS[int(self.np_rng.integers(len(dt.TEMPORAL_FACTORS)))]
        frames = to_tensor(seqs.reshape(B * F, S, S, 3)).to(dev)
        with torch.no_grad():
            y = net.encode(frames).float()
            target = base.autoencoder.encode(frames).float()
        c, h, w = y.shape[1:]
        G = B * F // f
        delta = torch.exp(self.log_lo + (self.log_hi - self.log_lo) * torch.rand(G, generator=gen)).to(dev)
        d4 = delta.view(G, 1, 1, 1)
        z = self.model.pool(y.view(G, f, c, h, w), dt.levels(f))
        unif = (torch.rand(z.shape, generator=gen) - 0.5).to(dev)
        bpp = net.prior.bits(z + d4 * unif, delta).flatten(1).sum(1) / (S * S * f)
        z_dec = z + (torch.round(z / d4) * d4 - z).detach()
        y_hat = self.model.unpool(z_dec, dt.levels(f)).reshape(B * F, c, h, w)
        delta_f = delta.repeat_interleave(f)
        T = schedule.T
        t = (((torch.rand((), generator=gen) + torch.arange(B * F)) / (B * F)) * T).long().clamp_(0, T - 1)
        noise = torch.randn(target.shape, generator=gen).to(dev)
        x_t = schedule.q_sample(target, t, noise)
        goal = schedule.training_target(target, noise, t, base.parameterization)
        weight = schedule.loss_weight(t, base.parameterization, self.loss_weighting, gamma=self.gamma)
        if base.parameterization == "x0" and self.floor:
            weight = weight.clamp_min(self.floor)
        pred = net.unet(x_t, schedule.model_time(t).to(dev), net.condition(y_hat, delta_f))
        return rate_distortion_loss(self, pred, goal, weight.to(dev, torch.float32), bpp, self.rate_weight)

    postfix = DiffAETrainer.postfix

    @torch.no_grad()
    def _measure(self, layers: TemporalLayers, intra: bool = False) -> dict[str, Any]:
        """Per preset and factor: mean payload bpp per frame and PSNR (8-bit) of ``val_steps``-step decodes of the
        validation sequences (``intra``: also each frame coded alone at that grid index)."""
        base, seqs = self.base, self.val_images.numpy()
        n, F, S = seqs.shape[:3]
        temporal = dt.TemporalModel("validation", "", {}, layers.eval())
        ys = [np.stack([diffae.analyse(base, fr) for fr in seq]) for seq in seqs]
        out: dict[str, Any] = {}
        for name in diffae.PRESETS:
            g = base.presets[name]
            d, L = base.deltas[g], int(base.supports[g])
            row: dict[str, Any] = {"index": g}
            modes = [(f"t{f}", f) for f in dt.TEMPORAL_FACTORS] + ([("intra", 1)] if intra else [])
            for label, f in modes:
                bits, scores = 0, []
                for seq, y in zip(seqs, ys):
                    for k in range(0, F, f):
                        if f == 1:
                            q = diffae.quantize(y[k], d, L)
                            y_hat = torch.from_numpy(diffae.dequantize(q, d))[None]
                        else:
                            q = diffae.quantize(dt.pool(temporal, y[k:k + f], f), d, L)
                            y_hat = dt.unpool(temporal, diffae.dequantize(q, d), f)
                        bits += 8 * len(diffae.encode_latent(q, base.tables[g], L))
                        dec = diffae.synthesize_latents(base, y_hat, g, S, S, self.cfg.val_steps, 0,
                                                        shared_noise=True)
                        scores.append(psnr(to_tensor(dec), to_tensor(seq[k:k + f])).mean())
                row[label] = {"bpp": round(bits / (n * F * S * S), 5), "psnr": round(float(np.mean(scores)), 3)}
            out[name] = row
        layers.train()
        return out

    def validate(self) -> dict[str, Any]:
        return {"learned": self._measure(self.ema.model), "plain_pooling": self.identity}

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        from diffcodec.artifacts import save_artifact

        cfg = self.cfg
        tensors = {k: v.detach().to("cpu", torch.float16).numpy() for k, v in self.ema.model.state_dict().items()}
        validation = summary.get("validation")
        manifest = {
            "kind": "diffae-temporal",
            "format": dt.TEMPORAL_FORMAT,
            "channels": self.model.channels,
            "levels": self.model.levels,
            "factors": list(dt.TEMPORAL_FACTORS),
            "diffae_model": cfg.diffae_model,
            "diffae_sha256": self.base.sha,
            "params": sum(p.numel() for p in self.model.parameters()),
            "dtype": "float16",
            "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **loop.command_fields(cfg, {"commands": summary.get("commands")}),
            "data": [str(p) for p in cfg.data],
            "data_source": f"random {cfg.crop}px crops with flips, each a {SEQUENCE}-frame synthetic-motion sequence "
                           f"(diffcodec/training/synthetic_motion.py)",
            "rate_weight": self.rate_weight,
            "note": ("the layers as initialised (no training steps): plain pooling over time and copying back; "
                     "trained layers measured no better on validation (benchmarks/RESULTS.md, \"diffae with "
                     "temporal compression\")") if summary["steps"] == 0 else None,
            **loop.run_manifest(cfg, summary["steps"], wall, summary["device"]),
            "validation": validation,
            "validation_note": (f"{cfg.val_crops} fixed {cfg.val_crop}px crops of {cfg.val_folder}, each a fixed "
                                f"{SEQUENCE}-frame synthetic-motion sequence; per preset: payload bpp per frame and "
                                f"PSNR (8-bit) of {cfg.val_steps}-step decodes, for the learned layers, plain "
                                f"pooling / copying (the layers at step 0) and intra coding"),
            "license": cfg.license_note,
        }
        path = save_artifact(cfg.export_name, tensors, manifest, metadata={"format": dt.TEMPORAL_FORMAT})
        return {"export": str(path)}
