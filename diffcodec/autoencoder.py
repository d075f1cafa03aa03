"""First-stage autoencoder (`latent-ae`): images <-> a smooth, bounded latent of stride f with c channels.

The latent-diffusion recipe (Rombach et al., CVPR 2022) separates perceptual compression (this network) from
generation (a diffusion prior on its latents, `latent-ddpm`). DDCM codes in such a latent and the diffusion
autoencoder can decode into one. We cannot download Stable Diffusion's VAE, so we train our own::

    RGB (B,3,H,W) in [-1,1]
      | reflect-pad to a multiple of f
      | pixel_unshuffle(2)                          (no full-resolution convolutions: CPU-cheap)
      | conv -> [ResBlock x n, stride-2 conv] ... -> ResBlock x n
      | conv -> mean, logvar (2c channels, H/f x W/f)
      v
    z = mean (+ exp(logvar/2) * noise while training; a small KL term keeps it smooth and bounded)
      | (z - shift) * scale                         per-channel, recorded at export: unit variance latents
      v
    latent (B,c,H/f,W/f)  --decoder (mirror, nearest-upsample convs, pixel_shuffle(2))-->  RGB, cropped back

Use :func:`load_autoencoder` for the shipped model: ``ae.encode(x)`` gives *scaled* latents (what priors and
codecs see), ``ae.decode(z, height, width)`` maps them back, cropping to the original size.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffcodec.errors import ModelError, UsageError

ARTIFACT_FORMAT = "diffcodec-autoencoder-v1"
DEFAULT_NAME = "models/latent-ae"

_CONFIG_KEYS = frozenset({"factor", "latent_channels", "channels", "num_res_blocks"})


def _norm(ch: int) -> nn.GroupNorm:
    for g in (32, 16, 8, 4, 2, 1):
        if ch % g == 0:
            return nn.GroupNorm(g, ch, eps=1e-6)
    return nn.GroupNorm(1, ch, eps=1e-6)


def pad_to_multiple(x: torch.Tensor, f: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the right/bottom to multiples of ``f`` (reflect; replicate where too small)."""
    ph, pw = (-x.shape[-2]) % f, (-x.shape[-1]) % f
    if not (ph or pw):
        return x
    mode = "reflect" if (x.shape[-2] > ph and x.shape[-1] > pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, residual (no time embedding: this is a plain autoencoder)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = _norm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class Autoencoder(nn.Module):
    """Convolutional autoencoder with stride ``factor`` (4, 8 or 16) and ``latent_channels`` channels.

    ``channels`` lists the widths from the half-resolution level down to the latent level: its length must be
    ``log2(factor)`` (the first 2x is the pixel (un)shuffle). The decoder has one more ResBlock per level than
    the encoder (decoding is where quality is made). ``shift``/``scale`` buffers hold the per-channel latent
    normalisation (set by :meth:`calibrate`)."""

    def __init__(self, factor: int = 8, latent_channels: int = 4, channels: tuple[int, ...] | None = None,
                 num_res_blocks: int = 1):
        super().__init__()
        if factor not in (4, 8, 16):
            raise ValueError("factor must be 4, 8 or 16")
        levels = int(math.log2(factor))
        if channels is None:
            channels = (64, 128, 192, 256)[:levels]
        channels = tuple(int(c) for c in channels)
        if len(channels) != levels:
            raise ValueError(f"factor {factor} needs {levels} channel widths, got {channels}")
        self._config = dict(factor=int(factor), latent_channels=int(latent_channels), channels=list(channels),
                            num_res_blocks=int(num_res_blocks))
        c, n = int(latent_channels), int(num_res_blocks)

        enc: list[nn.Module] = [nn.Conv2d(12, channels[0], 3, padding=1)]
        for i, ch in enumerate(channels):
            enc += [ResBlock(ch) for _ in range(n)]
            if i + 1 < len(channels):
                enc.append(nn.Conv2d(ch, channels[i + 1], 3, stride=2, padding=1))
        enc += [_norm(channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], 2 * c, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(c, channels[-1], 3, padding=1)]
        for i in range(len(channels) - 1, -1, -1):
            dec += [ResBlock(channels[i]) for _ in range(n + 1)]
            if i > 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                        nn.Conv2d(channels[i], channels[i - 1], 3, padding=1)]
        dec += [_norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], 12, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("shift", torch.zeros(c))
        self.register_buffer("scale", torch.ones(c))

    # -------------------------------------------------------------------------------------------- config
    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Autoencoder:
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown autoencoder config keys {sorted(unknown)}")
        return cls(**config)

    @property
    def factor(self) -> int:
        return self._config["factor"]

    @property
    def latent_channels(self) -> int:
        return self._config["latent_channels"]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------------------------------------- shapes
    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.factor
        return (self.latent_channels, -(-height // f), -(-width // f))

    # -------------------------------------------------------------------------------------------- passes
    def encode_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior (mean, logvar) of images ``x`` (B,3,H,W) in [-1, 1], any H, W."""
        h = self.encoder(F.pixel_unshuffle(pad_to_multiple(x, self.factor), 2))
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent -> image (B,3,f*h,f*w) (not cropped, not clamped)."""
        return F.pixel_shuffle(self.decoder(z), 2)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.shift[:, None, None]) * self.scale[:, None, None]

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.scale[:, None, None] + self.shift[:, None, None]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B,3,H,W) in [-1, 1] -> scaled latents (B,c,ceil(H/f),ceil(W/f)) (posterior mean)."""
        return self.normalize(self.encode_moments(x)[0])

    def decode(self, z: torch.Tensor, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1] (clamped), cropped to ``height`` x ``width`` when given."""
        x = self.decode_raw(self.denormalize(z)).clamp(-1.0, 1.0)
        return x[..., : height or x.shape[-2], : width or x.shape[-1]]

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction cropped to x's size, mean, logvar)."""
        mean, logvar = self.encode_moments(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        rec = self.decode_raw(z)[..., : x.shape[-2], : x.shape[-1]]
        return rec, mean, logvar

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch: int = 16) -> None:
        """Set ``shift``/``scale`` so the latents of ``images`` have zero mean, unit variance per channel."""
        dev = self.shift.device
        zs = [self.encode_moments(images[i:i + batch].to(dev))[0].float() for i in range(0, len(images), batch)]
        z = torch.cat(zs).transpose(0, 1).flatten(1)
        self.shift.copy_(z.mean(1))
        self.scale.copy_(1.0 / z.std(1).clamp_min(1e-6))


# ------------------------------------------------------------------------------------------------ artifacts
def export_autoencoder(name: str, model: Autoencoder, manifest: dict[str, Any] | None = None):
    """Save ``model`` as fp16 safetensors artifact ``name`` (shift/scale are kept in fp32 and in the manifest)."""
    import numpy as np

    from diffcodec.artifacts import save_artifact

    tensors = {}
    for k, v in model.state_dict().items():
        dtype = torch.float32 if k in ("shift", "scale") else torch.float16
        tensors[k] = v.detach().to("cpu", dtype).contiguous().numpy()
        if not np.isfinite(tensors[k]).all():
            raise ModelError(f"weight {k} is not finite in fp16; cannot export")
    info = {
        "kind": "autoencoder",
        "format": ARTIFACT_FORMAT,
        "model_config": model.config,
        "latent_shift": [round(float(v), 6) for v in model.shift],
        "latent_scale": [round(float(v), 6) for v in model.scale],
        "params": model.num_parameters(),
        "dtype": "float16",
    }
    full = {**info, **(manifest or {})}
    for key in ("command", "data", "steps", "wall_time_s", "device", "validation", "license"):
        full.setdefault(key, None)
    metadata = {"format": ARTIFACT_FORMAT, "model_config": json.dumps(model.config)}
    return save_artifact(name, tensors, full, metadata=metadata)


def load_autoencoder(name: str = DEFAULT_NAME, device: str | torch.device = "cpu") -> tuple[Autoencoder, dict]:
    """Shipped autoencoder (sha256-verified), fp16 -> fp32, eval mode: ``(model, manifest)``; built once per
    process for each file content and device (frames of a clip, files of a batch worker)."""
    from diffcodec.artifacts import artifact_key

    return _built_autoencoder(name, artifact_key(name), str(device))


@functools.lru_cache(maxsize=4)
def _built_autoencoder(name: str, key: tuple[str, str], device: str) -> tuple[Autoencoder, dict]:
    import numpy as np

    from diffcodec.artifacts import load_artifact

    tensors, manifest, _ = load_artifact(name)
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"artifact {name!r} is not an autoencoder ({manifest.get('format')!r})")
    try:
        model = Autoencoder.from_config(manifest["model_config"])
        model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()})
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"artifact {name!r} does not match its manifest: {e}") from None
    return model.to(device).eval(), manifest


def check_image_tensor(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise UsageError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
