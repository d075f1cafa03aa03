"""Training of the OPQ-latent generators (`opq-gen-continuous`, `opq-gen-categorical`;
:mod:`diffcodec.methods.opq_generate`) in the shared loop (:mod:`diffcodec.training.loop`).

Data: a fixed pool of ``pool`` random ``crop`` x ``crop`` crops (area-weighted image choice, random flips) of
the training folders, drawn in chunks of :data:`CHUNK` with ``numpy.random.default_rng([seed, chunk])`` (so any
chunk can be redrawn alone: :func:`pool_crops`, used by the nearest-training-crop search of the evaluation) and
quantized once through the shipped opq-32-8-8 codebooks to (6, crop/8, crop/8) index grids. Each step draws a
batch of pool entries. Validation: fixed crops of the validation folder, quantized alike;
:func:`~diffcodec.methods.opq_generate.denoising_metrics` of the EMA model at ``val_timesteps``.

Steps (t stratified over the batch, Gaussian noise from the run's generator, z_t = q_sample(z0, t, noise) on the
ordinal latent z0 = index / 255 * 2 - 1):

* continuous: x0-prediction; with probability ``self_cond_p`` a batch first runs the network without the
  self-condition and feeds its detached, clamped estimate back as the 6 extra input channels; loss
  mean_b min(SNR_t, gamma) |z0_hat - z0|^2 (min-SNR-gamma weighting, gamma = ``min_snr_gamma``).
* categorical: logits (B, 6, 256, h, w); Gumbel-softmax w = softmax((logits + g) / tau) over the codewords;
  the soft codeword mixture decoded differentiably (:func:`~diffcodec.methods.opq_generate.soft_decode`) to
  centred YCbCr planes; loss = mean |planes(w) - planes(z0)|^2 / 127.5^2 (image space, against the codebook
  decoding of the clean latent) + ``ce_weight`` x the cross-entropy of the logits with the clean indices (a small
  term that speeds up the short CPU training; 0 gives the paper's pure image-space loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import torch
import torch.nn.functional as F

from diffcodec import color
from diffcodec.diffusion.schedules import NoiseSchedule
from diffcodec.errors import UsageError
from diffcodec.methods import opq_generate as og
from diffcodec.training import loop
from diffcodec.training.data import ImageFolderCrops, validation_crops

CHECKPOINT_FORMAT = "diffcodec-opq-gen-checkpoint-v1"
CHUNK = 2048


@dataclass(kw_only=True)
class OPQGenConfig(loop.LoopConfig):
    formulation: str = "continuous"                # continuous | categorical
    crop: int = 64
    batch: int = 32
    steps: Optional[int] = 100_000
    lr: float = 3e-4
    lr_decay: str = "constant"
    warmup_steps: int = 100
    pool: int = 32768                              # training crops (quantized once)
    width: int = 96
    blocks: int = 6
    self_cond_p: float = 0.5                       # continuous: share of batches with self-conditioning
    min_snr_gamma: float = 5.0                     # continuous: min-SNR-gamma weighting
    tau: float = 0.5                               # categorical: Gumbel-softmax temperature
    ce_weight: float = 0.02                        # categorical: weight of the cross-entropy term
    val_crops: int = 64
    val_every: Optional[int] = 250
    val_timesteps: tuple = (100, 300, 500, 700, 900)
    checkpoint_minutes: Optional[float] = 5.0


def quantize_crops(crops: np.ndarray, books) -> np.ndarray:
    """uint8 (N, H, W, 3) crops (H, W multiples of 8) -> (N, C, H/8, W/8) uint8 opq indices (batched)."""
    n, h, w, _ = crops.shape
    planes = color.rgb_to_ycbcr_centered(crops)                                  # (3, N, H, W)
    gh, gw = h // og.PATCH, w // og.PATCH
    out = []
    for c, book in enumerate(books):
        patches = planes[c].reshape(n, gh, og.PATCH, gw, og.PATCH).transpose(0, 1, 3, 2, 4).reshape(-1, 64)
        out.append(book.assign(patches).reshape(n, gh, gw, book.m).transpose(0, 3, 1, 2))
    return np.concatenate(out, axis=1).astype(np.uint8)


def pool_crops(data: ImageFolderCrops, chunk: int, seed: int, size: int = CHUNK) -> np.ndarray:
    """Chunk ``chunk`` of the training pool: uint8 (size, crop, crop, 3)."""
    return data.batch_uint8(size, np.random.default_rng([int(seed), int(chunk)]))


def build_pool(data: ImageFolderCrops, n: int, seed: int, books) -> np.ndarray:
    """The quantized training pool (n, C, crop/8, crop/8) uint8 (chunks of :data:`CHUNK`, the last one cut)."""
    chunks = []
    for k in range(-(-n // CHUNK)):
        chunks.append(quantize_crops(pool_crops(data, k, seed), books))
    return np.concatenate(chunks)[:n]


def train_opq_gen(cfg: OPQGenConfig) -> dict[str, Any]:
    if cfg.formulation not in og.FORMULATIONS:
        raise UsageError(f"unknown formulation {cfg.formulation!r} (one of {', '.join(og.FORMULATIONS)})")
    if cfg.crop % 8 or cfg.crop < 8 or cfg.pool < 1:
        raise UsageError("--crop must be a multiple of 8 and --pool >= 1")
    return loop.train(cfg, OPQGenTrainer)


class OPQGenTrainer(loop.Trainer):
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: OPQGenConfig, device: torch.device, *, pool: np.ndarray | None = None,
                 val: np.ndarray | None = None):
        torch.manual_seed(cfg.seed)
        self.categorical = cfg.formulation == "categorical"
        self.books, self.books_sha = og._codebooks()
        channels = sum(b.m for b in self.books)
        model = og.IndexDenoiser(channels=channels, width=cfg.width, blocks=cfg.blocks,
                                 categorical=self.categorical, self_cond=not self.categorical).to(device)
        super().__init__(cfg, device, model)
        self.schedule = NoiseSchedule("cosine")
        self.tables = [t.to(device) for t in og.torch_tables(self.books)]
        if pool is None:
            data = ImageFolderCrops([Path(p) for p in cfg.data], crop=cfg.crop, flips=True)
            pool = build_pool(data, cfg.pool, cfg.seed, self.books)
        self.pool = torch.from_numpy(pool.astype(np.int64))
        if val is None and cfg.val_folder is not None and cfg.val_crops > 0:
            crops = validation_crops(cfg.val_folder, cfg.crop, cfg.val_crops)
            val = quantize_crops(((crops.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8),
                                 self.books)
        self.val_indices = val
        self.val_images = None if val is None else torch.from_numpy(val.astype(np.int64))
        self.acc = {"loss": 0.0, "mse": 0.0, "ce": 0.0}
        self.acc_n = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model_config": self.model.config, "schedule": self.schedule.config,
                "formulation": self.cfg.formulation, "preset_sha256": self.books_sha}

    def step(self) -> torch.Tensor:
        cfg, sch, gen, dev = self.cfg, self.schedule, self.generator, self.device
        B = cfg.batch
        idx = self.pool[torch.from_numpy(self.np_rng.integers(0, len(self.pool), size=B))].to(dev)
        z0 = og.to_ordinal(idx)
        u = (torch.rand((), generator=gen) + torch.arange(B)) / B
        t = (u * sch.T).long().clamp_(0, sch.T - 1)
        noise = torch.randn(z0.shape, generator=gen).to(dev)
        z_t = sch.q_sample(z0, t, noise)
        tm = sch.model_time(t).to(dev)
        if not self.categorical:
            sc = None
            if float(torch.rand((), generator=gen)) < cfg.self_cond_p:
                with torch.no_grad():
                    sc = self.model(z_t, tm, None).clamp(-1, 1).detach()
            pred = self.model(z_t, tm, sc)
            mse = (pred - z0).pow(2).flatten(1).mean(1)
            w = sch.loss_weight(t, "x0", "min_snr", gamma=cfg.min_snr_gamma).to(dev, torch.float32)
            loss = (w * mse).mean()
            ce = torch.zeros(())
        else:
            logits = self.model(z_t, tm, None)                               # (B, C, K, h, w)
            u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-7).to(dev)
            w = F.softmax((logits - torch.log(-torch.log(u))) / cfg.tau, dim=2)
            soft = og.soft_decode(w, self.tables)
            with torch.no_grad():
                target = og.soft_decode(F.one_hot(idx, og.KSUB).permute(0, 1, 4, 2, 3).float(), self.tables)
            mse = (soft - target).pow(2).flatten(1).mean(1) / 127.5 ** 2
            ce = F.cross_entropy(logits.transpose(1, 2), idx)
            loss = mse.mean() + cfg.ce_weight * ce
        self.acc["loss"] += float(loss.detach())
        self.acc["mse"] += float(mse.detach().mean())
        self.acc["ce"] += float(ce.detach())
        self.acc_n += 1
        return loss

    def validate(self) -> dict[str, Any]:
        assert self.val_indices is not None
        return {"denoising": og.denoising_metrics(cast(og.IndexDenoiser, self.ema.model), self.schedule,
                                                  self.val_indices, self.books, self.cfg.val_timesteps)}

    def log_validation(self, last_val: dict[str, Any]) -> Any:
        return last_val["denoising"]

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        cfg = self.cfg
        manifest = {
            **loop.command_fields(cfg, summary),
            "data": [str(p) for p in cfg.data],
            "pool": {"crops": cfg.pool, "crop": cfg.crop, "seed": cfg.seed, "chunk": CHUNK,
                     "how": "diffcodec.training.opq_gen.pool_crops: ImageFolderCrops(data, crop, flips=True)"
                            ".batch_uint8(chunk, default_rng([seed, k])) for k = 0, 1, ...; quantized with "
                            + og.PRESET},
            **loop.run_manifest(cfg, summary["steps"], wall, summary["device"]),
            "training": ({"loss": "x0 MSE on the ordinal latent, min-SNR weighting", "min_snr_gamma":
                          cfg.min_snr_gamma, "self_cond_p": cfg.self_cond_p} if not self.categorical else
                         {"loss": "image-space MSE of the Gumbel-softmax codeword mixture + ce_weight x CE",
                          "tau": cfg.tau, "ce_weight": cfg.ce_weight}),
            "validation": summary["validation"],
            "validation_set": f"{cfg.val_crops} fixed {cfg.crop}px crops of {cfg.val_folder}, quantized with "
                              f"{og.PRESET}; timesteps of a cosine T=1000 schedule",
            "license": cfg.license_note,
        }
        return {"export": str(og.export_model(cfg.export_name, cast(og.IndexDenoiser, self.ema.model), self.schedule,
                                                     manifest))}
