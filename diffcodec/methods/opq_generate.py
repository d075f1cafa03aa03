"""Generation in the OPQ latent (the generative half of Scribano et al. 2023, "Denoising Diffusion Models on
Model-Based Latent Space"): a diffusion model over the index grid of opq-32-8-8, in its two formulations.

A 64x64 image is an 8x8 grid of patches with 6 indices each (4 luma sub-quantizers, 1 Cb, 1 Cr; 0..255). The
codewords of each sub-quantizer are sorted along its first principal component (:mod:`diffcodec.methods.opq`),
so nearby indices mean similar patches and an index can be treated as an ordinal value:

* **continuous** (the paper's pseudo-ordinal model): ``z = index / 255 * 2 - 1``, an ordinary Gaussian diffusion
  (cosine schedule, T = 1000) over the (6, H/8, W/8) latent; the network predicts z0 (x0-prediction, trained with
  min-SNR-5 weighting and self-conditioning: half the training batches feed a detached first estimate of z0 back
  as 6 extra input channels; sampling always does). The sample is the rounded final estimate.
* **categorical** (the paper's categorical reverse process): the network sees the same noised ordinal latent but
  outputs logits over the 256 codewords per position and sub-quantizer, (B, 6, 256, H/8, W/8). Training draws z0
  with Gumbel-softmax (temperature tau) and decodes the soft codeword mixture sum_k w_k T_m[k] to pixels
  differentiably (the loss is in image space: :func:`soft_decode`). Sampling draws each step's z0 estimate from
  the categorical distribution at inference temperature gamma (0: argmax), maps it back to ordinal values and
  re-noises it to the next timestep.

Both samplers run on the CPU with a seeded ``torch.Generator``: a seed gives the same sample on a machine with the
same torch build (float convolutions may differ across CPUs in the last bits, so a rounded index can, rarely,
differ elsewhere). The generated index grid is an opq-32-8-8 file like any other (:func:`generate`): decoding it
gives exactly the codebook decoding of the sample, on any machine.

The network is fully convolutional (with self-attention over the whole grid), so any size whose sides are
multiples of 8 works; it was trained on 64x64 crops (8x8 grids) and larger samples are texture-like.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffcodec import artifacts, color
from diffcodec.container import Encoded
from diffcodec.diffusion.samplers import strided_timesteps
from diffcodec.diffusion.schedules import NoiseSchedule
from diffcodec.diffusion.unet import AttnBlock, ResBlock, _norm, _zero, timestep_embedding
from diffcodec.errors import ModelError, UsageError
from diffcodec.methods.opq import OPQCodec, encode_grids, load_codebooks

PRESET = "opq-32-8-8"                 # the paper's choice; the latent the shipped models were trained on
FORMULATIONS = ("continuous", "categorical")
ARTIFACTS = {"continuous": "models/opq-gen-continuous", "categorical": "models/opq-gen-categorical"}
ARTIFACT_FORMAT = "diffcodec-opq-gen-v1"
KSUB = 256
PATCH = 8
DEFAULT_STEPS = 50
MAX_SIDE = 512                        # largest generated side (pixels)
GENERATE_OPTIONS = OPQCodec.generate_options


# ---------------------------------------------------------------------------------------------- the network
class IndexDenoiser(nn.Module):
    """A small conv net with self-attention over the (channels, h, w) index latent, conditioned on t.

    ``forward(z_t, t, self_cond)``: z_t (B, C, h, w) noised ordinal latent, t (B,) model time in [0, 1),
    self_cond (B, C, h, w) or None (zeros: no estimate); returns the z0 estimate (B, C, h, w) (continuous) or
    logits (B, C, 256, h, w) (categorical)."""

    def __init__(self, channels: int = 6, width: int = 128, blocks: int = 6, attn_every: int = 2,
                 categorical: bool = False, self_cond: bool = True, ksub: int = KSUB):
        super().__init__()
        self.config = {"channels": channels, "width": width, "blocks": blocks, "attn_every": attn_every,
                       "categorical": categorical, "self_cond": self_cond, "ksub": ksub}
        self.channels, self.width, self.ksub = channels, width, ksub
        self.categorical, self.self_cond = categorical, self_cond
        emb = 2 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = nn.Conv2d(channels * (2 if self_cond else 1), width, 3, padding=1)
        self.res = nn.ModuleList(ResBlock(width, width, emb) for _ in range(blocks))
        self.attn = nn.ModuleDict({str(i): AttnBlock(width, 32, 0) for i in range(blocks)
                                   if attn_every and (i + 1) % attn_every == 0})
        self.norm_out = _norm(width)
        out = channels * ksub if categorical else channels
        self.conv_out = nn.Conv2d(width, out, 1) if categorical else _zero(nn.Conv2d(width, out, 3, padding=1))

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "IndexDenoiser":
        return cls(**cfg)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, self_cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.self_cond:
            z_t = torch.cat([z_t, torch.zeros_like(z_t) if self_cond is None else self_cond], dim=1)
        emb = self.time_mlp(timestep_embedding(t, self.width))
        h = self.conv_in(z_t)
        for i, block in enumerate(self.res):
            h = block(h, emb)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if self.categorical:
            b, _, gh, gw = out.shape
            return out.reshape(b, self.channels, self.ksub, gh, gw)
        return out


# ---------------------------------------------------------------------------------------------- latent <-> grids
def grids_to_indices(grids: list[np.ndarray]) -> np.ndarray:
    """opq's per-channel index grids [(gh, gw, M_c), ...] -> one (C, gh, gw) int64 array (channels in order)."""
    return np.concatenate(grids, axis=-1).transpose(2, 0, 1).astype(np.int64)


def indices_to_grids(indices: np.ndarray, split: tuple[int, ...]) -> list[np.ndarray]:
    """Inverse of :func:`grids_to_indices`; ``split``: the sub-quantizers per channel (e.g. (4, 1, 1))."""
    hwc = np.ascontiguousarray(np.asarray(indices, dtype=np.int64).transpose(1, 2, 0))
    bounds = np.cumsum((0,) + tuple(split))
    return [np.ascontiguousarray(hwc[..., bounds[i]:bounds[i + 1]]) for i in range(len(split))]


def to_ordinal(indices: torch.Tensor) -> torch.Tensor:
    """Indices 0..255 -> ordinal values in [-1, 1]."""
    return indices.to(torch.float32) / (KSUB - 1) * 2 - 1


def from_ordinal(z: torch.Tensor) -> torch.Tensor:
    """Ordinal values -> the nearest index (round half to even), clipped to 0..255."""
    return torch.round((z.clamp(-1, 1) + 1) / 2 * (KSUB - 1)).to(torch.int64)


def decode_indices_image(indices: np.ndarray, books) -> np.ndarray:
    """(C, gh, gw) indices -> uint8 (gh*8, gw*8, 3) RGB through the codebooks (exactly opq's decoder)."""
    split = tuple(b.m for b in books)
    grids = indices_to_grids(indices, split)
    gh, gw = grids[0].shape[:2]
    planes = np.stack([color.from_patches(book.reconstruct(g), gh * PATCH, gw * PATCH, PATCH)
                       for g, book in zip(grids, books)])
    return color.ycbcr_centered_to_rgb(planes)


def decode_batch_planes(indices: np.ndarray, books) -> np.ndarray:
    """(N, C, gh, gw) indices -> float32 (N, 3, H, W) centred YCbCr planes (vectorised codebook decoding)."""
    n, _, gh, gw = indices.shape
    out = np.empty((n, len(books), gh * PATCH, gw * PATCH), dtype=np.float32)
    c0 = 0
    for c, book in enumerate(books):
        codes = np.ascontiguousarray(indices[:, c0:c0 + book.m].transpose(0, 2, 3, 1))     # (N, gh, gw, M)
        patches = book.reconstruct(codes)                                                  # (N, gh, gw, 64)
        out[:, c] = patches.reshape(n, gh, gw, PATCH, PATCH).transpose(0, 1, 3, 2, 4).reshape(n, gh * PATCH,
                                                                                               gw * PATCH)
        c0 += book.m
    return out


def planes_to_rgb(planes: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) centred YCbCr -> uint8 (N, H, W, 3) RGB."""
    return np.stack([color.ycbcr_centered_to_rgb(p) for p in planes])


def torch_tables(books) -> list[torch.Tensor]:
    """Each channel's decode tables (M, 256, 64) as float32 tensors (for :func:`soft_decode`)."""
    return [torch.from_numpy(np.ascontiguousarray(b.tables)) for b in books]


def soft_decode(weights: torch.Tensor, tables: list[torch.Tensor]) -> torch.Tensor:
    """Differentiable decoding of codeword mixtures: ``weights`` (B, C, 256, gh, gw), per position and
    sub-quantizer a distribution over the codewords (a one-hot gives opq's decoding) -> centred YCbCr planes
    (B, 3, gh*8, gw*8): each channel's patch is sum_m sum_k w[m, k] T_m[k]."""
    b, _, _, gh, gw = weights.shape
    planes, c0 = [], 0
    for table in tables:
        m = table.shape[0]
        patches = torch.einsum("bmkhw,mkp->bhwp", weights[:, c0:c0 + m], table.to(weights))
        planes.append(patches.reshape(b, gh, gw, PATCH, PATCH).permute(0, 1, 3, 2, 4).reshape(b, gh * PATCH,
                                                                                              gw * PATCH))
        c0 += m
    return torch.stack(planes, dim=1)


# ---------------------------------------------------------------------------------------------- samplers
def _model_time(schedule: NoiseSchedule, t: int, n: int) -> torch.Tensor:
    return torch.full((n,), float(t) / schedule.T)


def _ab(schedule: NoiseSchedule, t: int) -> tuple[float, float]:
    if t < 0:
        return 1.0, 0.0
    return float(schedule.alpha[t]), float(schedule.sigma[t])


def _step(z_t: torch.Tensor, z0: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule, eta: float,
          gen: torch.Generator) -> torch.Tensor:
    """z_{t_prev} from z_t and a z0 estimate: DDIM with stochasticity eta (0: deterministic; 1: DDPM's
    posterior variance); past the last step it is z0 itself."""
    if t_prev < 0:
        return z0
    a_t, s_t = _ab(schedule, t)
    a_p, s_p = _ab(schedule, t_prev)
    eps = (z_t - a_t * z0) / s_t
    ab_t, ab_p = a_t ** 2, a_p ** 2
    var = eta ** 2 * (1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)
    std = float(np.sqrt(max(var, 0.0)))
    direction = float(np.sqrt(max(s_p ** 2 - var, 0.0)))
    out = a_p * z0 + direction * eps
    if std > 0:
        out = out + std * torch.randn(z_t.shape, generator=gen)
    return out


@torch.no_grad()
def sample_continuous(model: IndexDenoiser, schedule: NoiseSchedule, gh: int, gw: int, *, steps: int = DEFAULT_STEPS,
                      seed: int = 0, eta: float = 0.0, batch: int = 1) -> np.ndarray:
    """(batch, C, gh, gw) int64 indices from the continuous model: DDIM (eta) over ``steps`` strided timesteps
    with self-conditioning, then the rounded final z0 estimate."""
    gen = torch.Generator().manual_seed(int(seed))
    shape = (batch, model.channels, gh, gw)
    z = torch.randn(shape, generator=gen)
    ts = strided_timesteps(schedule.T, steps)
    z0 = torch.zeros(shape)
    for i, t in enumerate(ts):
        z0 = model(z, _model_time(schedule, t, batch), z0 if model.self_cond else None).clamp(-1, 1)
        z = _step(z, z0, t, ts[i + 1] if i + 1 < len(ts) else -1, schedule, eta, gen)
    return from_ordinal(z0).numpy()


def categorical_draw(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """Indices (B, C, h, w) drawn from softmax(logits / temperature) over dim 2 (Gumbel-max with ``gen``);
    temperature 0: the argmax."""
    if temperature <= 0:
        return logits.argmax(dim=2)
    u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-7)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(dim=2)


@torch.no_grad()
def sample_categorical(model: IndexDenoiser, schedule: NoiseSchedule, gh: int, gw: int, *,
                       steps: int = DEFAULT_STEPS, seed: int = 0, temperature: float = 1.0, eta: float = 1.0,
                       batch: int = 1) -> np.ndarray:
    """(batch, C, gh, gw) int64 indices from the categorical model: at each strided step z0 is drawn from the
    predicted categorical distribution at ``temperature`` (0: argmax), mapped to ordinal values and re-noised to
    the next timestep (eta 1: fresh DDPM-posterior noise); the sample is the last draw."""
    gen = torch.Generator().manual_seed(int(seed))
    shape = (batch, model.channels, gh, gw)
    z = torch.randn(shape, generator=gen)
    ts = strided_timesteps(schedule.T, steps)
    idx = torch.zeros(shape, dtype=torch.int64)
    for i, t in enumerate(ts):
        logits = model(z, _model_time(schedule, t, batch), None)
        idx = categorical_draw(logits, temperature, gen)
        z = _step(z, to_ordinal(idx), t, ts[i + 1] if i + 1 < len(ts) else -1, schedule, eta, gen)
    return idx.numpy()


# ---------------------------------------------------------------------------------------------- shipped models
def export_model(name: str, model: IndexDenoiser, schedule: NoiseSchedule, manifest: dict[str, Any]) -> Any:
    """Write ``model`` as fp16 safetensors artifact ``name`` with its manifest (model config, schedule, the
    codebook it was trained on, and the trainer's fields); returns the weights path."""
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous().numpy() for k, v in model.state_dict().items()}
    for k, v in tensors.items():
        if not np.isfinite(v).all():
            raise ModelError(f"weight {k} is not finite in fp16; cannot export")
    _, sha = _codebooks()
    full = {"kind": "opq-gen", "format": ARTIFACT_FORMAT,
            "formulation": "categorical" if model.categorical else "continuous",
            "model_config": model.config, "schedule": schedule.config, "preset": PRESET, "preset_sha256": sha,
            "params": model.num_parameters(), "dtype": "float16",
            "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **manifest}
    metadata = {"format": ARTIFACT_FORMAT, "model_config": json.dumps(model.config),
                "schedule": json.dumps(schedule.config)}
    return artifacts.save_artifact(name, tensors, full, metadata=metadata)


def _codebooks():
    return load_codebooks(PRESET)


@functools.lru_cache(maxsize=4)
def _load(name: str, key: tuple[str, str], sha: str) -> tuple[IndexDenoiser, NoiseSchedule, dict[str, Any]]:
    """Built once per generator file and codebook (``key``: :func:`artifacts.artifact_key`; ``sha``: the
    installed codebook's, which the generator must have been trained on)."""
    tensors, manifest, _ = artifacts.load_artifact(name)
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"artifact {name!r} is not an opq generator ({manifest.get('format')!r})")
    if manifest.get("preset_sha256") != sha:
        raise ModelError(f"{name} was trained on another {PRESET} codebook (sha256 "
                         f"{str(manifest.get('preset_sha256'))[:12]}..., installed {sha[:12]}...); retrain it with: "
                         f"{manifest.get('command', '?')}")
    try:
        model = IndexDenoiser.from_config(manifest["model_config"])
        schedule = NoiseSchedule.from_config(manifest["schedule"])
        model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()})
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"artifact {name!r} does not match its manifest: {e}") from None
    return model.eval(), schedule, manifest


def load_model(formulation: str) -> tuple[IndexDenoiser, NoiseSchedule, dict[str, Any]]:
    """The shipped generator of ``formulation`` (continuous | categorical), sha256-verified, fp32, eval mode."""
    name = ARTIFACTS[formulation]
    weights, _ = artifacts.artifact_paths(name)
    if not weights.is_file():
        raise ModelError(f"missing model file {weights} (re-create it with `diffcodec train opq-gen "
                         f"--formulation {formulation}`)")
    return _load(name, artifacts.artifact_key(name), _codebooks()[1])


# ---------------------------------------------------------------------------------------------- generate
def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options as generate() takes them (None dropped), refusing unknown ones and bad values (one line)."""
    unknown = set(options) - set(GENERATE_OPTIONS)
    if unknown:
        raise UsageError(f"opq generation takes no option(s) {', '.join('--' + k for k in sorted(unknown))} "
                         f"(known: {', '.join('--' + k for k in GENERATE_OPTIONS)})")
    opts = {k: v for k, v in options.items() if v is not None and v is not False}
    steps = opts.get("steps", DEFAULT_STEPS)
    if type(steps) is not int or not 1 <= steps <= 1000:
        raise UsageError(f"--steps must be 1..1000 for opq generation, got {steps!r}")
    if "temperature" in opts:
        if not opts.get("categorical"):
            raise UsageError("--temperature applies to the categorical model only (add --categorical)")
        g = opts["temperature"]
        if not isinstance(g, (int, float)) or not 0 <= g <= 100 or g != g:
            raise UsageError(f"--temperature must be a number in 0..100, got {g!r}")
    return opts


def check_size(height: int, width: int) -> tuple[int, int]:
    """(gh, gw) of a sample size, or a one-line UsageError for sizes the generator does not make."""
    ok = all(type(s) is int and PATCH <= s <= MAX_SIDE and s % PATCH == 0 for s in (height, width))
    if not ok:
        raise UsageError(f"opq generation makes sides that are multiples of {PATCH} from {PATCH} to {MAX_SIDE} "
                         f"pixels (trained at 64x64), got {width}x{height}")
    return height // PATCH, width // PATCH


def sample_indices(height: int, width: int, **options) -> np.ndarray:
    """The (6, height/8, width/8) index grid of one sample (options: :data:`GENERATE_OPTIONS`)."""
    opts = check_options(options)
    gh, gw = check_size(height, width)
    formulation = "categorical" if opts.get("categorical") else "continuous"
    model, schedule, _ = load_model(formulation)
    steps, seed = opts.get("steps", DEFAULT_STEPS), opts.get("seed", 0)
    with torch.inference_mode():
        if formulation == "categorical":
            return sample_categorical(model, schedule, gh, gw, steps=steps, seed=seed,
                                      temperature=float(opts.get("temperature", 1.0)))[0]
        return sample_continuous(model, schedule, gh, gw, steps=steps, seed=seed)[0]


def generate(height: int, width: int, **options) -> tuple[Encoded, np.ndarray]:
    """A sample and its opq-32-8-8 encoding: the encoding decodes (``diffcodec decode``) to exactly the sample, or
    with ``refine`` the sample is the refined decoding (``diffcodec decode --refine`` reproduces it)."""
    opts = check_options(options)
    indices = sample_indices(height, width, **{k: v for k, v in opts.items() if k not in ("refine", "device")})
    books, sha = _codebooks()
    grids = indices_to_grids(indices, tuple(b.m for b in books))
    encoded = Encoded(model=PRESET.removeprefix("opq-"), model_sha=artifacts.sha_prefix32(sha),
                      chunks=[encode_grids(grids, books)])
    image = decode_indices_image(indices, books)[:height, :width]
    if opts.get("refine"):
        from diffcodec.device import resolve_device
        from diffcodec.methods.opq_refine import refine

        image = refine(image, steps=None, device=resolve_device(opts.get("device")), seed=0)
    return encoded, image


# ---------------------------------------------------------------------------------------------- evaluation
def _psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(a.shape[0], -1).mean(1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def denoising_metrics(model: IndexDenoiser, schedule: NoiseSchedule, indices: np.ndarray, books,
                      timesteps=(100, 300, 500, 700, 900), *, seed: int = 1234,
                      batch: int = 64) -> dict[str, dict[str, float]]:
    """How well ``model`` recovers clean latents ``indices`` (N, C, gh, gw) from z_t at each timestep (fixed
    noise): ``acc`` (fraction of indices exactly right), ``mae`` (mean |index error|, in index units),
    ``psnr`` (dB, RGB, of the codebook decoding of the estimate against the decoding of the clean latent), and the
    same three for the plain estimate round(z_t / alpha_t) (``*_input``). The continuous model's estimate is its
    rounded z0 (self-conditioned on a first pass, as in sampling); the categorical one's the argmax."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    clean = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    ref = planes_to_rgb(decode_batch_planes(clean.numpy(), books))
    out: dict[str, dict[str, float]] = {}
    for t in timesteps:
        t = int(t)
        noise = torch.randn(clean.shape, generator=gen)
        est, plain = [], []
        for i in range(0, clean.shape[0], batch):
            z0 = to_ordinal(clean[i:i + batch])
            z_t = schedule.q_sample(z0, torch.full((z0.shape[0],), t), noise[i:i + batch])
            tm = _model_time(schedule, t, z0.shape[0])
            if model.categorical:
                est.append(model(z_t, tm, None).argmax(dim=2))
            else:
                first = model(z_t, tm, None).clamp(-1, 1) if model.self_cond else None
                est.append(from_ordinal(model(z_t, tm, first)))
            plain.append(from_ordinal(z_t / float(schedule.alpha[t])))
        row: dict[str, float] = {}
        for key, guess in (("", torch.cat(est)), ("_input", torch.cat(plain))):
            g = guess.numpy()
            row["acc" + key] = round(float((g == clean.numpy()).mean()), 4)
            row["mae" + key] = round(float(np.abs(g - clean.numpy()).mean()), 2)
            row["psnr" + key] = round(float(_psnr_uint8(planes_to_rgb(decode_batch_planes(g, books)), ref).mean()), 2)
        out[str(t)] = row
    model.train(was)
    return out
