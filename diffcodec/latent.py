"""The latent space as other methods see it: one small API over `latent-ae` and `latent-ddpm`.

    >>> from diffcodec import latent
    >>> space = latent.load_latent_space(device="cpu")        # the shipped autoencoder (sha256-verified)
    >>> z = space.encode_image(rgb_uint8)                      # (1, c, ceil(H/f), ceil(W/f)), unit-variance latent
    >>> rgb = space.decode_latent(z, height, width)            # uint8 (H, W, 3)
    >>> model, schedule, parameterization, manifest = latent.load_latent_prior(device="cpu")

Latents as training data (cached encodings of whole training images) are in :mod:`diffcodec.training.latent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffcodec.autoencoder import DEFAULT_NAME as AUTOENCODER_NAME
from diffcodec.autoencoder import Autoencoder, load_autoencoder

PRIOR_NAME = "models/latent-ddpm"


@dataclass
class LatentSpace:
    """A loaded autoencoder and the identity of its weights (``sha256``: what headers pin)."""

    autoencoder: Autoencoder
    manifest: dict[str, Any]
    device: Any

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def factor(self) -> int:
        return self.autoencoder.factor

    @property
    def channels(self) -> int:
        return self.autoencoder.latent_channels

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return self.autoencoder.latent_shape(height, width)

    @torch.no_grad()
    def encode_image(self, rgb: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> scaled latent (1, c, h, w) on the device."""
        from diffcodec.data import to_tensor

        return self.autoencoder.encode(to_tensor(rgb[None]).to(self.device))

    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor, height: int, width: int) -> np.ndarray:
        """Scaled latent (1, c, h, w) -> uint8 (height, width, 3)."""
        from diffcodec.data import to_uint8

        return to_uint8(self.autoencoder.decode(z.to(self.device), height, width))[0]


def load_latent_space(name: str = AUTOENCODER_NAME, device: str | torch.device = "cpu") -> LatentSpace:
    model, manifest = load_autoencoder(name, device)
    return LatentSpace(model, manifest, torch.device(device))


def load_latent_prior(name: str = PRIOR_NAME, device: str | torch.device = "cpu"):
    """The latent diffusion prior: ``(model, schedule, parameterization, manifest)``; its manifest's
    ``autoencoder_sha256`` names the autoencoder whose latents it models."""
    from diffcodec.diffusion.models import load_denoiser

    return load_denoiser(name, device)
