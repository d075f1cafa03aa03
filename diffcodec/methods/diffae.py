"""Diffusion autoencoder codec (`diffae`), after Rampas 2024, "On Neural Compression using Diffusion Autoencoders".

A small convolutional encoder maps the image to a latent y of c channels at stride f (16 by default); y is
quantized with a step Delta and entropy-coded under a learned factorized prior; the decoder is a conditional
diffusion UNet that generates the image (or the `latent-ae` latent of the image) from noise, conditioned on the
dequantized latent::

    RGB (padded to a multiple of f) --encoder--> y (c, H/f, W/f)
        q = clip(rint(y / Delta_g), -L_g, L_g)         g: index into the model's grid of quantization steps
        payload = range coder over q, channel by channel, one integer frequency table per (g, channel)
    decoder: y_hat = q * Delta_g --cond net + nearest upsample--> cond (at the target's resolution)
        x_T ~ N(0, I) from torch.Generator().manual_seed(seed) (CPU) ; N strided DDIM steps (eta 0) of
        UNet(cat(x_t, cond), t) -> x0 ; space "pixel": x0 is the image ; space "latent": latent-ae decodes x0

One model serves every rate: training draws Delta per sample log-uniformly from [delta_min, delta_max] (a
variable-rate model), rate = -log2 of the prior's bin mass CDF(y + Delta/2) - CDF(y - Delta/2) with y + uniform
noise, the decoder sees y rounded to the Delta grid (straight-through). The prior is a per-channel mixture of K
logistics; at export its fp32 parameters are turned into integer tables (float64 numpy, then
:func:`diffcodec.entropy.quantize_table`) for every Delta of the grid and stored in the weights file, so a
decoder never evaluates a float probability. Presets low / medium / high are three grid indices chosen at
export from the measured validation bpp; `--bpp` searches the whole grid for this image (exact file sizes).

Model ids: the header's `model` is the artifact name under `codebooks/models/` (`diffae`: latent space,
`diffae-pixel`: pixel space by default). Header params: ``d`` grid index, ``n`` decoder steps, ``s`` seed.
The byte-level description is in formats/ddc-v1.md ("Method: diffae").

This module imports torch only inside functions (the method registry imports it for `diffcodec info`).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffcodec import artifacts, container
from diffcodec.device import resolve_device
from diffcodec.entropy import Decoder, Encoder, quantize_table
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods import Codec, Encoded, register

METHOD = "diffae"
ARTIFACT_FORMAT = "diffcodec-diffae-v1"
SPACES = ("latent", "pixel")
SPACE_MODELS = {"latent": "diffae", "pixel": "diffae-pixel"}   # --space -> model id (codebooks/models/<id>)
DEFAULT_SPACE = "latent"

# Decoder sampling steps written into the header when `--steps` is not given. x0-prediction + DDIM (eta 0):
# 1 step is the conditional mean E[x0 | y] (best PSNR, blurriest); more steps add generated detail. Change it
# after measuring a trained model (its manifest records validation PSNR per preset for DEFAULT_STEPS and 1).
DEFAULT_STEPS = 2
MAX_STEPS = 50
DEFAULT_ETA = 0.0                   # DDIM eta; > 0 draws seeded CPU noise from the header's seed
MAX_SEED = (1 << 64) - 1

# Images of more than tiling.TILE_ABOVE_PIXELS pixels run the networks in tiles, so that memory is bounded by a
# tile, not the image. Encoder: cores of ENCODE_TILE latent positions with ENCODE_HALO of context (the file does
# not depend on how y was computed). Decoder (header `tl`, formats/ddc-v1.md): the UNet samples windows of the
# diffusion target, cores of `tl` positions with DECODE_HALO of context; the autoencoder decodes each core in
# sub-tiles of AE_TILE with AE_HALO of context (its activations per pixel are the largest of the decoder's).
ENCODE_TILE, ENCODE_HALO = 64, 4
DECODE_TILE, DECODE_HALO = 128, 64
AE_TILE, AE_HALO = 96, 16
MAX_TILE = 4096

PRESETS = ("low", "medium", "high")
PRESET_TARGET_BPP = {"low": 0.05, "medium": 0.1, "high": 0.2}   # export picks the grid index closest to these
DEFAULT_PRESET = "medium"

# Integer tables (see build_tables): totals and support.
TABLE_TOTAL = 1 << 20
TAIL_MASS = 1e-9                    # per mixture component, outside the support (clipped symbols)
MAX_SUPPORT = 2047                  # |q| <= L_g <= MAX_SUPPORT
LOG_SCALE_CLAMP = 7.0

ENCODE_OPTIONS = {      # option -> help (the order is the one error messages list them in)
    "steps": f"decoder steps stored in the file (1..{MAX_STEPS}, default {DEFAULT_STEPS})",
    "seed": "decoder noise seed stored in the file (default 0)",
    "bpp": "the quantization step whose file lands at or under this many bits per pixel (not with a preset)",
    "device": "where the networks run: auto (default), cpu or cuda",
    "space": "decoder space: latent (default) or pixel (picks the model diffae or diffae-pixel)",
    "model": "model id under codebooks/models/ (default: the space's)",
    "grid": "index into the model's grid of quantization steps (instead of a preset or --bpp)",
}
DECODE_OPTIONS = {
    "steps": f"decoder steps (1..{MAX_STEPS}), overriding the file's",
    "device": "where the networks run: auto (default), cpu or cuda",
}
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ------------------------------------------------------------------------------------------------------
# Configuration (plain python: no torch)
# ------------------------------------------------------------------------------------------------------

def default_encoder_channels(factor: int) -> list[int]:
    """Widths of the encoder levels H/4 .. H/f (log2(f) - 1 of them)."""
    return {8: [64, 128], 16: [64, 96, 192], 32: [64, 96, 160, 256]}[factor]


def default_unet(space: str) -> dict:
    if space == "latent":   # 32x32 latents of 256 crops: levels 32, 16, 8 (attention at 8x8)
        return dict(base_channels=64, channel_mult=[1, 2, 4], num_res_blocks=1, attn_levels=[2])
    return dict(base_channels=32, channel_mult=[1, 2, 4, 4], num_res_blocks=1, attn_levels=[3])


def make_config(space: str = DEFAULT_SPACE, *, target_channels: int, target_factor: int, factor: int = 16,
                latent_channels: int = 16, encoder_channels=None, encoder_res_blocks: int = 1,
                cond_channels: int | None = None, prior_mixtures: int = 3, delta_min: float = 0.125,
                delta_max: float = 8.0, delta_grid: int = 25, unet: dict | None = None) -> dict:
    """A complete, JSON-able model configuration (what the manifest's `model_config` holds)."""
    if space not in SPACES:
        raise UsageError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    if factor not in (8, 16, 32):
        raise UsageError(f"factor must be 8, 16 or 32, got {factor}")
    if factor % target_factor or factor < target_factor:
        raise UsageError(f"latent stride {factor} must be a multiple of the target's stride {target_factor}")
    enc = [int(c) for c in (encoder_channels or default_encoder_channels(factor))]
    if len(enc) != int(math.log2(factor)) - 1:
        raise UsageError(f"factor {factor} needs {int(math.log2(factor)) - 1} encoder widths, got {enc}")
    if not (0 < delta_min < delta_max) or not 2 <= delta_grid <= 256:
        raise UsageError("need 0 < delta_min < delta_max and 2 <= delta_grid <= 256")
    if latent_channels < 1 or prior_mixtures < 1:
        raise UsageError("latent_channels and prior_mixtures must be >= 1")
    unet_cfg = {**default_unet(space), **(unet or {})}
    for k in ("in_channels", "out_channels", "cond_channels", "cond_residual"):
        unet_cfg.pop(k, None)
    return {
        "space": space, "factor": int(factor), "latent_channels": int(latent_channels),
        "encoder_channels": enc, "encoder_res_blocks": int(encoder_res_blocks),
        "cond_channels": int(cond_channels or (64 if space == "latent" else 32)),
        "prior_mixtures": int(prior_mixtures), "target_channels": int(target_channels),
        "target_factor": int(target_factor), "delta_min": float(delta_min), "delta_max": float(delta_max),
        "delta_grid": int(delta_grid), "unet": unet_cfg,
    }


def delta_grid(config: dict) -> np.ndarray:
    """The quantization steps of grid indices 0 .. G-1 as float32, from delta_max (index 0, lowest rate) down to
    delta_min (highest rate), geometrically spaced (float64 geomspace, rounded to float32 once, stored)."""
    return np.geomspace(config["delta_max"], config["delta_min"], config["delta_grid"]).astype(np.float32)


# ------------------------------------------------------------------------------------------------------
# Integer tables of the factorized prior (export time; stored in the weights file)
# ------------------------------------------------------------------------------------------------------

def _sigmoid64(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def mixture_params64(logits, means, log_scales) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, scales) in float64 from the fp32 stored parameters, each (c, K)."""
    lg = np.asarray(logits, dtype=np.float32).astype(np.float64)
    w = np.exp(lg - lg.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mu = np.asarray(means, dtype=np.float32).astype(np.float64)
    s = np.exp(np.clip(np.asarray(log_scales, dtype=np.float32).astype(np.float64), -LOG_SCALE_CLAMP, LOG_SCALE_CLAMP))
    return w, mu, s


def build_tables(logits, means, log_scales, deltas, *, total: int = TABLE_TOTAL, tail: float = TAIL_MASS,
                 max_support: int = MAX_SUPPORT) -> tuple[list[np.ndarray], np.ndarray]:
    """Integer frequency tables of the discretized mixture-of-logistics prior for every Delta of the grid.

    For grid index g with step D = float64(deltas[g]): support L_g = clip(ceil(R / D - 1/2), 1, max_support) with
    R = max over channels and components of |mu| + s ln(1/tail); symbol q in -L_g .. L_g (stored at q + L_g)
    has mass CDF((q + 1/2) D) - CDF((q - 1/2) D), CDF(x) = sum_k w_k sigmoid((x - mu_k) / s_k), with the tails
    folded into the end bins (first edge -> 0, last edge -> 1); `quantize_table(mass, total)` makes the integers.
    Returns (tables: one int32 array (c, 2 L_g + 1) per g, supports: int32 (G,))."""
    w, mu, s = mixture_params64(logits, means, log_scales)
    reach = float(np.max(np.abs(mu) + s * math.log(1.0 / tail)))
    tables, supports = [], []
    for d in np.asarray(deltas, dtype=np.float32).astype(np.float64):
        L = int(min(max(math.ceil(reach / d - 0.5), 1), max_support))
        edges = (np.arange(-L, L + 2, dtype=np.float64) - 0.5) * d                    # (2L + 2,)
        cdf = (w[:, :, None] * _sigmoid64((edges[None, None, :] - mu[:, :, None]) / s[:, :, None])).sum(axis=1)
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0
        mass = np.clip(np.diff(cdf, axis=1), 0.0, None)
        tables.append(quantize_table(mass, total))
        supports.append(L)
    return tables, np.asarray(supports, dtype=np.int32)


# ------------------------------------------------------------------------------------------------------
# Payload: the integer latent, channel by channel, raster order
# ------------------------------------------------------------------------------------------------------

def quantize(y: np.ndarray, delta: np.float32, support: int) -> np.ndarray:
    """Encoder side: q = clip(rint(y / Delta), -L, L) (float32 division, round half to even), int64."""
    q = np.rint(np.asarray(y, dtype=np.float32) / np.float32(delta))
    return np.clip(q, -support, support).astype(np.int64)


def dequantize(q: np.ndarray, delta: np.float32) -> np.ndarray:
    return q.astype(np.float32) * np.float32(delta)


def encode_latent(q: np.ndarray, tables: np.ndarray, support: int) -> bytes:
    """q (c, h, w) -> payload: one RangeEncoder, channel i's h*w symbols (raster order) with table i."""
    enc = Encoder()
    for i in range(q.shape[0]):
        enc.categorical(q[i].ravel() + support, tables[i])
    return enc.finish()


def decode_latent(data: bytes, shape: tuple[int, int, int], tables: np.ndarray, support: int) -> np.ndarray:
    """Inverse of :func:`encode_latent`; a payload that is not exactly what the encoder writes for the decoded
    symbols (truncated, extra or altered words) is corrupt."""
    c, h, w = shape
    dec = Decoder(data)
    q = np.stack([dec.categorical(h * w, tables[i]).reshape(h, w) for i in range(c)]) - support
    if not dec.maybe_exhausted() or encode_latent(q, tables, support) != bytes(data):
        raise CorruptInputError("corrupt diffae payload: the range-coded latent does not decode cleanly")
    return q


# ------------------------------------------------------------------------------------------------------
# Networks: diffcodec/methods/diffae_nets.py (imports torch; loaded on first use)
# ------------------------------------------------------------------------------------------------------

def build_net(config: dict):
    """A fresh :class:`diffcodec.methods.diffae_nets.DiffAENet` (torch module) for ``config``."""
    from diffcodec.methods.diffae_nets import DiffAENet

    return DiffAENet(config)


# ------------------------------------------------------------------------------------------------------
# Export / load
# ------------------------------------------------------------------------------------------------------

def artifact_name(model_id: str) -> str:
    return f"models/{model_id}"


def export_tensors(net, config: dict) -> tuple[dict[str, np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Weights file content of ``net``: network weights in fp16 (`net.*`), the prior's parameters in fp32
    (`net.prior.*`), the Delta grid (`deltas`, fp32), supports (`supports`, int32) and one integer table per grid
    index (`tables.GG`, int32 (c, 2 L + 1)). Returns (tensors, tables, supports, deltas)."""
    import torch

    tensors: dict[str, np.ndarray] = {}
    for k, v in net.state_dict().items():
        dtype = torch.float32 if k.startswith("prior.") else torch.float16
        arr = v.detach().to("cpu", dtype).contiguous().numpy()
        if not np.isfinite(arr).all():
            raise ModelError(f"weight {k} is not finite in {dtype}; cannot export")
        tensors[f"net.{k}"] = arr
    deltas = delta_grid(config)
    tables, supports = build_tables(tensors["net.prior.logits"], tensors["net.prior.means"],
                                    tensors["net.prior.log_scales"], deltas)
    tensors["deltas"] = deltas
    tensors["supports"] = supports
    for g, t in enumerate(tables):
        tensors[f"tables.{g:02d}"] = t.astype(np.int32)
    return tensors, tables, supports, deltas


def load_state(net, tensors: dict) -> None:
    import torch

    state = {k[4:]: torch.from_numpy(np.asarray(v, dtype=np.float32))
             for k, v in tensors.items() if k.startswith("net.")}
    net.load_state_dict(state, strict=True)


@dataclass
class DiffAEModel:
    """A loaded diffae artifact (sha256-verified), ready to encode and decode."""

    model_id: str
    sha: str
    manifest: dict
    net: Any
    schedule: Any
    parameterization: str
    deltas: np.ndarray          # float32 (G,)
    supports: np.ndarray        # int (G,)
    tables: list                # G int32 arrays (c, 2 L_g + 1)
    presets: dict               # name -> grid index
    device: Any
    autoencoder: Any = None     # latent space: the frozen latent-ae (torch module)
    cache: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.net.config

    @property
    def space(self) -> str:
        return self.config["space"]

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.config["factor"]
        return (self.config["latent_channels"], -(-height // f), -(-width // f))


def load_model(model_id: str, device: str = "cpu") -> DiffAEModel:
    """Load codebooks/models/<model_id> (and, for latent space, the autoencoder whose sha256 its manifest pins)."""


    if not _MODEL_ID.match(model_id or ""):
        raise UsageError(f"bad diffae model id {model_id!r}")
    name = artifact_name(model_id)
    weights, _ = artifacts.artifact_paths(name)
    if not weights.is_file():
        raise ModelError(f"diffae model {model_id!r} is not installed: missing {weights} (train it with "
                         f"`diffcodec train diffae --name {name} ...` or set DIFFCODEC_CODEBOOKS)")
    return _built_model(model_id, artifacts.artifact_key(name), str(device), _autoencoder_key(name))


@functools.lru_cache(maxsize=4)     # built once per process per file content (and autoencoder) and device
def _built_model(model_id: str, key: tuple[str, str], device: str, autoencoder_key) -> DiffAEModel:
    import torch

    from diffcodec.diffusion.schedules import PARAMETERIZATIONS, NoiseSchedule

    name = artifact_name(model_id)
    tensors, manifest, sha = artifacts.load_artifact(name)
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"artifact {name!r} is not a diffae model ({manifest.get('format')!r})")
    try:
        config = manifest["model_config"]
        net = build_net(config)
        load_state(net, tensors)
        schedule = NoiseSchedule.from_config(manifest["schedule"])
        parameterization = manifest["parameterization"]
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {parameterization!r}")
        deltas = np.asarray(tensors["deltas"], dtype=np.float32)
        supports = np.asarray(tensors["supports"]).astype(np.int64)
        tables = [np.asarray(tensors[f"tables.{g:02d}"], dtype=np.int32) for g in range(len(deltas))]
        presets = {p: int(i) for p, i in zip(PRESETS, np.asarray(tensors["presets"]).tolist())}
        c = config["latent_channels"]
        for g, t in enumerate(tables):
            if t.shape != (c, 2 * supports[g] + 1) or t.min() < 1:
                raise ValueError(f"table {g} has shape {t.shape}")
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = " ".join(str(e).split())            # torch's load_state_dict errors span several lines
        raise ModelError(f"artifact {name!r} does not match its manifest: {reason[:300]}") from None
    net.to(device).eval()
    net.requires_grad_(False)
    if torch.device(device).type == "cpu":
        net.unet.to(memory_format=torch.channels_last)
    ae = _check_autoencoder(manifest, model_id, device) if config["space"] == "latent" else None
    model = DiffAEModel(model_id, sha, manifest, net, schedule, parameterization, deltas, supports, tables, presets,
                        torch.device(device), ae)
    return model


def _autoencoder_key(name: str):
    """The :func:`artifacts.artifact_key` of the autoencoder a latent-space model needs (part of the load cache
    key), or None (pixel space; or an autoencoder missing or damaged: the build names the problem)."""
    try:
        manifest = artifacts.read_manifest(name)
        if (manifest.get("model_config") or {}).get("space") != "latent":
            return None
        return artifacts.artifact_key(manifest.get("autoencoder") or "models/latent-ae")
    except ModelError:
        return None


def _check_autoencoder(manifest: dict, model_id: str, device):
    from diffcodec.latent import load_latent_space

    ae_name = manifest.get("autoencoder") or "models/latent-ae"
    pinned = manifest.get("autoencoder_sha256")
    space = load_latent_space(ae_name, device)
    if space.sha256 != pinned:
        raise ModelError(f"diffae model {model_id!r} was trained on autoencoder {ae_name} with sha256 "
                         f"{str(pinned)[:16]}..., but the installed one is {space.sha256[:16]}...; install the "
                         f"matching autoencoder or retrain the diffae model")
    ae = space.autoencoder
    ae.requires_grad_(False)
    if ae.latent_channels != manifest["model_config"]["target_channels"] or \
            ae.factor != manifest["model_config"]["target_factor"]:
        raise ModelError(f"autoencoder {ae_name} does not have the latent shape diffae model {model_id!r} needs")
    return ae


# ------------------------------------------------------------------------------------------------------
# Encoding and decoding with a loaded model
# ------------------------------------------------------------------------------------------------------

def analyse(model: DiffAEModel, rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> the encoder's float32 latent y (c, ceil(H/f), ceil(W/f)) on the CPU; an image of more
    than ``tiling.TILE_ABOVE_PIXELS`` pixels goes through the encoder window by window (GroupNorm statistics are
    then the window's: a slightly other y)."""
    import torch

    from diffcodec import tiling
    from diffcodec.data import to_tensor

    def encode(crop: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.net.encode(to_tensor(crop[None]).to(model.device))[0].float().cpu().numpy()

    h, w = rgb.shape[:2]
    if h * w <= tiling.TILE_ABOVE_PIXELS:
        return encode(rgb)
    f = model.net.factor
    hy, wy = -(-h // f), -(-w // f)
    y = np.empty((model.config["latent_channels"], hy, wy), np.float32)
    tiling.trim_heap()
    for t in tiling.plan(hy, wy, ENCODE_TILE, ENCODE_HALO):
        # the window's pixels; at the image's right / bottom edge the encoder pads as it pads the whole image
        y_window = encode(rgb[t.ya * f:min(t.yb * f, h), t.xa * f:min(t.xb * f, w)])
        y[:, t.y0:t.y1, t.x0:t.x1] = y_window[(slice(None), *t.core_in_window)]
        tiling.trim_heap()
    return y


def sample_targets(net, schedule, parameterization: str, y_hat, delta, steps: int, generator, *,
                   eta: float = DEFAULT_ETA, callback=None, shared_noise: bool = False):
    """Diffusion decoding of a batch: y_hat (B, c, h, w) dequantized latents, delta (B,) their steps -> x0
    (B, C, h*up, w*up) after `steps` strided DDIM steps from x_T drawn on the CPU from ``generator`` (pixel space:
    x0 clamped to [-1, 1] at every step; latent space: not clamped). ``shared_noise``: one x_T for the whole
    batch (the frames of a temporal group), else one per sample."""
    import torch

    from diffcodec.diffusion.samplers import (
        gaussian_noise_sampler,
        randn_cpu,
        sample_ddim,
        strided_timesteps,
        x0_predictor,
    )

    clip = 1.0 if net.config["space"] == "pixel" else None
    model_fn = x0_predictor(net.unet, schedule, parameterization, clip=clip)
    with torch.inference_mode():
        cond = net.condition(y_hat, delta)
        shape = net.target_shape(y_hat.shape[2], y_hat.shape[3])
        if shared_noise:
            x_T = randn_cpu((1, *shape), generator, y_hat.device).expand(y_hat.shape[0], *shape).contiguous()
        else:
            x_T = randn_cpu((y_hat.shape[0], *shape), generator, y_hat.device)
        return sample_ddim(model_fn, x_T, strided_timesteps(schedule.T, steps), schedule,
                           gaussian_noise_sampler(generator), eta=eta, cond=cond, callback=callback)


def to_images(x0, space: str, autoencoder, height: int, width: int):
    """Decoded diffusion targets -> images in [-1, 1] (B, 3, height, width)."""
    import torch

    with torch.inference_mode():
        if space == "latent":
            return autoencoder.decode(x0, height, width)
        return x0[..., :height, :width].clamp(-1.0, 1.0)


def synthesize(model: DiffAEModel, q: np.ndarray, g: int, height: int, width: int, steps: int, seed: int,
               *, eta: float = DEFAULT_ETA) -> np.ndarray:
    """Integer latent q (c, h, w) at grid index g -> uint8 (height, width, 3): condition on q * Delta_g, run
    `steps` strided DDIM steps from seeded CPU noise, decode (latent space: with the autoencoder), crop."""
    import torch

    y_hat = torch.from_numpy(dequantize(q, model.deltas[g]))[None]
    return synthesize_latents(model, y_hat, g, height, width, steps, seed, eta=eta)[0]


def synthesize_latents(model: DiffAEModel, y_hat, g: int, height: int, width: int, steps: int, seed: int, *,
                       eta: float = DEFAULT_ETA, shared_noise: bool = False) -> np.ndarray:
    """Dequantized latents y_hat (B, c, h, w) (a float tensor) at grid index g -> uint8 (B, height, width, 3), as
    :func:`synthesize` (``shared_noise``: as :func:`sample_targets`)."""
    import torch

    from diffcodec.data import to_uint8
    from diffcodec.progress import bar

    delta = torch.full((y_hat.shape[0],), float(model.deltas[g]), dtype=torch.float32)
    gen = torch.Generator().manual_seed(int(seed))
    with bar(total=steps, desc="diffae", unit="step") as steps_bar:
        x0 = sample_targets(model.net, model.schedule, model.parameterization, y_hat.to(model.device), delta, steps,
                            gen, eta=eta, callback=lambda *_: steps_bar.update(), shared_noise=shared_noise)
    return to_uint8(to_images(x0, model.space, model.autoencoder, height, width))


def synthesize_tiled(model: DiffAEModel, y_hat: np.ndarray, g: int, height: int, width: int, steps: int, seed: int,
                     tile: int, *, halo: int = DECODE_HALO, ae_tile: int = AE_TILE,
                     ae_halo: int = AE_HALO) -> np.ndarray:
    """A tiled file's decoding (header ``tl`` = ``tile``; formats/ddc-v1.md, diffae step 7) of the dequantized
    latent ``y_hat`` (c, h, w) float32 at grid index g: as :func:`synthesize` window by window of the diffusion
    target, x_T drawn by rows from the ddcm initial-noise stream of the seed. Memory: the latent, the output and
    one window's networks."""
    import torch

    from diffcodec import codebooks_rng, tiling
    from diffcodec.data import to_uint8
    from diffcodec.diffusion.samplers import sample_ddim, strided_timesteps, x0_predictor
    from diffcodec.progress import bar

    net, up = model.net, model.net.up
    _, lh, lw = y_hat.shape
    latent = torch.from_numpy(np.ascontiguousarray(y_hat, dtype=np.float32))[None].to(model.device)
    delta = torch.full((1,), float(model.deltas[g]), dtype=torch.float32)
    channels, ht, wt = net.target_shape(lh, lw)
    noise = codebooks_rng.InitialNoiseRows(seed, (channels, ht, wt))
    model_fn = x0_predictor(net.unet, model.schedule, model.parameterization,
                            clip=1.0 if model.space == "pixel" else None)
    timesteps = strided_timesteps(model.schedule.T, steps)
    ae_f = model.autoencoder.factor if model.space == "latent" else 1
    out = np.empty((height, width, 3), np.uint8)

    def put(img, y0: int, x0: int) -> None:
        """The image part ``img`` (1, 3, h, w) in [-1, 1] of the target core starting at (y0, x0), cut to the
        picture."""
        py0, px0 = y0 * ae_f, x0 * ae_f
        py1, px1 = min(py0 + img.shape[2], height), min(px0 + img.shape[3], width)
        if py1 > py0 and px1 > px0:
            out[py0:py1, px0:px1] = to_uint8(img[..., :py1 - py0, :px1 - px0])[0]

    tiles = tiling.plan(ht, wt, tile, halo)
    tiling.trim_heap()                  # also fixes the allocator's mmap threshold before the first window
    with torch.inference_mode(), bar(tiles, desc="diffae tiles", unit="tile") as tiles_bar:
        for t in tiles_bar:
            # the window's condition: the conditioning network (two 3x3 convs) on the latent under the window and
            # 2 more positions on each side, upsampled, cut to the window: the whole image's condition there
            la, lb = max(0, t.ya // up - 2), min(lh, -(-t.yb // up) + 2)
            ca, cb = max(0, t.xa // up - 2), min(lw, -(-t.xb // up) + 2)
            cond = net.condition(latent[:, :, la:lb, ca:cb], delta)
            cond = cond[:, :, t.ya - la * up:t.yb - la * up, t.xa - ca * up:t.xb - ca * up]
            x_T = torch.from_numpy(np.ascontiguousarray(noise.rows(t.ya, t.yb)[:, :, t.xa:t.xb]))[None]
            x0 = sample_ddim(model_fn, x_T.to(model.device), timesteps, model.schedule, None, eta=DEFAULT_ETA,
                             cond=cond)
            del cond, x_T
            tiling.trim_heap()
            if model.space == "pixel":
                put(x0[(slice(None), slice(None), *t.core_in_window)], t.y0, t.x0)
            else:
                for s in tiling.plan(t.y1 - t.y0, t.x1 - t.x0, ae_tile, ae_halo, top=t.y0, left=t.x0,
                                     bounds=(t.ya, t.yb, t.xa, t.xb)):
                    z = x0[..., s.ya - t.ya:s.yb - t.ya, s.xa - t.xa:s.xb - t.xa]
                    # channels-last activations take about half the memory per pixel on the CPU
                    img = model.autoencoder.decode(z.contiguous(memory_format=torch.channels_last))
                    r, c = s.core_in_window
                    put(img[..., r.start * ae_f:r.stop * ae_f, c.start * ae_f:c.stop * ae_f], s.y0, s.x0)
                    del img
                    tiling.trim_heap()
            del x0
            tiling.trim_heap()
    return out


def _file_bytes(model: DiffAEModel, params: dict, height: int, width: int, channels: int, payload: int) -> int:
    """Exact size of the .ddc file with header ``params`` and a payload of ``payload`` bytes."""
    encoded = container.Encoded(model=model.model_id, model_sha=artifacts.sha_prefix32(model.sha), params=params)
    return container.framed_size(METHOD, encoded, width, height, channels, payload_sizes=[payload])


def _tile(params: dict) -> int:
    """The header's decoder tile core ``tl`` (0: absent, decode the image whole); a malformed one is corrupt."""
    tile = params.get("tl")
    if tile is None:
        return 0
    if type(tile) is not int or not 16 <= tile <= MAX_TILE or tile % 16:
        raise CorruptInputError(f"corrupt diffae header: tile core tl = {tile!r}, must be a multiple of 16 in "
                                f"16..{MAX_TILE}")
    return tile


def _check_int(name: str, v, lo: int, hi: int, err) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise err(f"diffae {name} must be an integer in {lo}..{hi}, got {v!r}")
    return v


@register
class DiffAECodec(Codec):
    """Diffusion autoencoder: a learned f16 latent, entropy-coded under a factorized prior, decoded by a
    conditional diffusion model in `latent-ae` space or pixel space (options: steps, seed, bpp, space, model,
    device)."""

    name = METHOD
    presets = {
        "low": f"about {PRESET_TARGET_BPP['low']} bpp (the model's manifest records the measured rate)",
        "medium": f"about {PRESET_TARGET_BPP['medium']} bpp (default)",
        "high": f"about {PRESET_TARGET_BPP['high']} bpp",
    }
    default_preset = DEFAULT_PRESET
    encode_options = ENCODE_OPTIONS
    decode_options = DECODE_OPTIONS
    header_keys = {
        "d": "index into the model's grid of quantization steps",
        "n": "decoder steps",
        "s": "decoder noise seed",
        "tl": "a big image's decoder tiles: core size on the diffusion target's grid (absent: the whole image)",
        "t": "clips with temporal compression: frames per coded latent (2 or 4)",
        "tm": "clips with temporal compression: the temporal model's id",
        "th": "clips with temporal compression: the temporal model's sha256 prefix",
    }

    def params_override_preset(self, params: dict) -> bool:
        """A target bpp or a grid index replaces the preset (they are refused together)."""
        return params.get("bpp") is not None or params.get("grid") is not None

    # -q/--quality (methods.QUALITY_SCALE): the smallest preset whose Kodak24 MS-SSIM (2 decoder steps) reaches
    # JPEG's at that quality; from 6 on none does (benchmarks/quality_scale.py)
    quality_points = ((0, "low", {}), (3, "medium", {}), (5, "high", {}))
    quality_ceiling = 6

    def coded_setting(self, model: str, params: dict) -> str:
        p = params if isinstance(params, dict) else {}
        return f"{model} grid {p.get('d')} n{p.get('n')}" + (f" t{p['t']}" if "t" in p else "")

    def clip_params(self, encoded: Encoded) -> tuple[str | None, dict]:
        p = encoded.params
        return None, {"grid": p.get("d"), "steps": p.get("n"), "seed": p.get("s"), "model": encoded.model}

    def __init__(self):
        self.last_info: dict = {}

    def _model_id(self, params: dict) -> str:
        space, model_id = params.get("space"), params.get("model")
        if space is not None and space not in SPACES:
            raise UsageError(f"diffae space must be one of {', '.join(SPACES)}, got {space!r}")
        if model_id is None:
            return SPACE_MODELS[space or DEFAULT_SPACE]
        if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
            raise UsageError(f"bad diffae model id {model_id!r}")
        return model_id

    def _encoder(self, params: dict, device_params: dict) -> tuple[DiffAEModel, int, int]:
        """(the model, decoder steps, seed) an encode with ``params`` uses."""
        steps = DEFAULT_STEPS if params.get("steps") is None else params["steps"]
        seed = 0 if params.get("seed") is None else params["seed"]
        _check_int("steps", steps, 1, MAX_STEPS, UsageError)
        _check_int("seed", seed, 0, MAX_SEED, UsageError)
        model = load_model(self._model_id(params), resolve_device(device_params.get("device")))
        if model.space == "latent" and params.get("space") == "pixel" or \
                model.space == "pixel" and params.get("space") == "latent":
            raise UsageError(f"diffae model {model.model_id!r} works in {model.space} space, not {params['space']}")
        return model, steps, seed

    @staticmethod
    def _rate(preset: str | None, params: dict) -> tuple[float | None, int | None]:
        """(bpp, grid) of an encode: at most one of them or ``preset``, each checked as far as it can be without
        the model (grid: by :meth:`_grid`)."""
        if preset is not None and preset not in PRESETS:
            raise UsageError(f"unknown diffae preset {preset!r} (available: {', '.join(PRESETS)})")
        bpp, grid = params.get("bpp"), params.get("grid")
        if sum(x is not None for x in (bpp, preset, grid)) > 1:
            raise UsageError("give one of a diffae preset, a target --bpp or a grid index, not both")
        if bpp is not None and not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
            raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
        return bpp, grid

    @staticmethod
    def _grid(model: DiffAEModel, grid: int) -> int:
        return _check_int("grid", grid, 0, len(model.deltas) - 1, UsageError)

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        self.check_encode_options(params)
        bpp, grid = self._rate(preset, params)
        model, steps, seed = self._encoder(params, params)
        height, width, channels = image.shape
        y = analyse(model, self.rgb_input(image))
        from diffcodec.tiling import TILE_ABOVE_PIXELS

        tiled = {"tl": DECODE_TILE} if height * width > TILE_ABOVE_PIXELS else {}

        def coded(g: int) -> tuple[bytes, dict]:
            q = quantize(y, model.deltas[g], int(model.supports[g]))
            return (encode_latent(q, model.tables[g], int(model.supports[g])),
                    {"d": g, "n": steps, "s": seed, **tiled})

        if bpp is not None:
            best, smallest = None, None
            for g in range(len(model.deltas)):      # increasing rate; keep the largest file within the target
                payload, hp = coded(g)
                size = _file_bytes(model, hp, height, width, channels, len(payload))
                smallest = size if smallest is None else min(smallest, size)
                if size * 8 <= bpp * height * width and (best is None or size >= best[0]):
                    best = (size, payload, hp)
            if best is None:
                raise UsageError(f"--bpp {bpp:g} is below what diffae model {model.model_id!r} reaches for this "
                                 f"{width}x{height} image (smallest file {smallest} bytes = "
                                 f"{smallest * 8 / (height * width):.4f} bpp)")
            _, payload, hp = best
        elif grid is not None:
            payload, hp = coded(self._grid(model, grid))
        else:
            payload, hp = coded(model.presets[preset or DEFAULT_PRESET])
        self.last_info = {"grid_index": hp["d"], "delta": float(model.deltas[hp["d"]]), "payload_bytes": len(payload)}
        return Encoded(model=model.model_id, model_sha=artifacts.sha_prefix32(model.sha), params=hp, chunks=[payload])

    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        """Options: steps (1..50, overrides the header's), device ('auto' | 'cpu' | 'cuda'; default 'auto')."""
        from diffcodec.methods.diffae_temporal import is_temporal

        if is_temporal(encoded.params):
            raise CorruptInputError("corrupt diffae header: a temporal header (t) outside a clip's keyframe")
        tile = _tile(encoded.params)
        model, g, steps, seed = self._decoder(encoded, options)
        q = decode_latent(encoded.chunks[0], model.latent_shape(height, width), model.tables[g], int(model.supports[g]))
        from diffcodec.data import rgb_to_channels

        if tile:
            rgb = synthesize_tiled(model, dequantize(q, model.deltas[g]), g, height, width, steps, seed, tile)
        else:
            rgb = synthesize(model, q, g, height, width, steps, seed)
        return rgb_to_channels(rgb, channels)

    def _decoder(self, encoded: Encoded, options: dict) -> tuple[DiffAEModel, int, int, int]:
        """(the model, grid index, decoder steps, seed) that decode ``encoded`` with ``options``, the header and
        the installed model checked."""
        self.check_decode_options(options)
        corrupt = lambda msg: CorruptInputError(f"corrupt diffae header: {msg}")  # noqa: E731
        p = encoded.params
        try:
            g, steps, seed = p["d"], p["n"], p["s"]
        except KeyError as e:
            raise corrupt(f"parameter {e} missing") from None
        _check_int("d", g, 0, 255, corrupt)
        _check_int("n", steps, 1, MAX_STEPS, corrupt)
        _check_int("s", seed, 0, MAX_SEED, corrupt)
        if options.get("steps") is not None:
            steps = _check_int("steps", options["steps"], 1, MAX_STEPS, UsageError)
        if not _MODEL_ID.match(encoded.model):
            raise corrupt(f"bad model id {encoded.model!r}")
        if encoded.rng is not None:
            raise corrupt("a diffae file has no rng map (its noise seed is the parameter 's')")
        if len(encoded.chunks) != 1:
            raise CorruptInputError("diffae file must hold exactly one payload chunk")
        try:        # an installed artifact of another kind named by the header: the header is wrong, not the model
            kind = artifacts.read_manifest(artifact_name(encoded.model)).get("format")
        except ModelError:
            kind = ARTIFACT_FORMAT                    # absent or unreadable: load_model names the problem
        if kind != ARTIFACT_FORMAT:
            raise corrupt(f"model {encoded.model!r} is not a diffae model")
        model = load_model(encoded.model, resolve_device(options.get("device")))
        if artifacts.sha_prefix32(model.sha) != encoded.model_sha:
            raise ModelError(f"file was encoded with a different diffae model {model.model_id!r} (sha256 prefix "
                             f"{encoded.model_sha:08x}, installed {model.sha[:8]}); decode it with the model that "
                             f"wrote it")
        if g >= len(model.deltas):
            raise corrupt(f"grid index {g} outside 0..{len(model.deltas) - 1}")
        return model, g, steps, seed

    def decode_steps(self, encoded: Encoded, **options) -> int:
        """The decoder's steps: the option, else the header's ``n`` (a malformed one counts 1 here; decompress
        refuses it before allocating), times a temporal header's group size (its keyframe decodes the group)."""
        steps = options.get("steps")
        p = encoded.params if isinstance(encoded.params, dict) else {}
        if steps is None:
            steps = p.get("n")
        steps = steps if type(steps) is int and 1 <= steps <= MAX_STEPS else 1
        t = p.get("t")
        return steps * (t if type(t) is int and 1 <= t <= 4 else 1)

    # ------------------------------------------------------- clips with temporal compression (diffae_temporal.py)
    predicts = True
    predicts_with = "by temporal compression: --gop 2 or 4 codes one latent per 2 or 4 frames (diffae-temporal)"

    def clip_stream_layouts(self, params: dict, gop: int) -> tuple[str, ...] | None:
        return ("rgb",) if gop > 1 else None

    def open_clip_encoder(self, info, gop: int, preset: str | None, params: dict, **device_params):
        from diffcodec.methods import diffae_temporal as dt

        if gop not in dt.TEMPORAL_FACTORS:
            raise UsageError(f"diffae codes a clip with --gop 1 (every frame alone) or "
                             f"{' or '.join(map(str, dt.TEMPORAL_FACTORS))} (one latent per group of frames), not "
                             f"--gop {gop}")
        bpp, grid = self._rate(preset, params)
        model, steps, seed = self._encoder(params, device_params)
        if grid is not None:
            self._grid(model, grid)
        temporal = dt.load_temporal(dt.TEMPORAL_MODEL, model)
        return dt.TemporalClipEncoder(model, temporal, gop, preset=preset, grid=grid, bpp=bpp, steps=steps,
                                      seed=seed)

    def decompress_keyframe(self, encoded: Encoded, height: int, width: int, channels: int, *,
                            planar: tuple[str, str] | None = None, **options) -> tuple[Any, Any]:
        from diffcodec.data import rgb_to_channels
        from diffcodec.methods import diffae_temporal as dt

        if not dt.is_temporal(encoded.params):
            return super().decompress_keyframe(encoded, height, width, channels, planar=planar, **options)
        if planar is not None:
            raise CorruptInputError("corrupt file: diffae clips are not coded as YCbCr planes")
        t, tm, th = dt.check_header(encoded.params)
        tile = _tile(encoded.params)
        model, g, steps, seed = self._decoder(encoded, options)
        temporal = dt.load_temporal(tm, model)
        if artifacts.sha_prefix32(temporal.sha) != th:
            raise ModelError(f"file was encoded with a different diffae temporal model {tm!r} (sha256 prefix "
                             f"{th:08x}, installed {temporal.sha[:8]}); decode it with the model that wrote it")
        frames = [rgb_to_channels(f, channels)
                  for f in dt.decode_group(model, temporal, encoded, g, steps, seed, t, height, width, tile)]
        return frames[0], dt.group_reference(frames)

    def decompress_predicted(self, payload: bytes, reference: Any, key: Encoded, height: int, width: int,
                             channels: int, *, planar: tuple[str, str] | None = None,
                             **options) -> tuple[Any, Any]:
        from diffcodec.methods import diffae_temporal as dt

        if not dt.is_temporal(key.params) or planar is not None:
            raise CorruptInputError("corrupt file: a diffae P-frame in a clip without temporal compression (t)")
        return dt.next_frame(payload, reference)

    def describe(self, params: dict, payloads: list[bytes]) -> dict[str, Any]:
        """The grid index, decoder steps and seed ({} where the header's values are malformed)."""
        p = params if isinstance(params, dict) else {}
        g, steps, seed = p.get("d"), p.get("n"), p.get("s")
        ranges = ((g, 255), (steps, MAX_STEPS), (seed, MAX_SEED))
        if not all(type(v) is int and 0 <= v <= hi for v, hi in ranges) or steps < 1:
            return {}
        out = {"grid_index": g, "steps": steps, "seed": seed,
               "summary": f"grid index {g}, {steps} decoder step{'s' if steps != 1 else ''}, seed {seed}"}
        t, tm = p.get("t"), p.get("tm")
        if type(t) is int and 2 <= t <= 4 and isinstance(tm, str):
            out.update(temporal_factor=t, temporal_model=tm[:64])
            out["summary"] += f", one latent per {t} frames ({tm[:64]})"
        tile = p.get("tl")
        if type(tile) is int and 16 <= tile <= MAX_TILE:
            out["tile"] = tile
            out["summary"] += f", decoded in tiles of {tile}"
        return out
