"""The latent space as other methods see it: one small API over `latent-ae` and `latent-ddpm`.

    >>> from diffcodec import latent
    >>> space = latent.load_latent_space(device="cpu")        # the shipped autoencoder (sha256-verified)
    >>> z = space.encode_image(rgb_uint8)                      # (1, c, ceil(H/f), ceil(W/f)), unit-variance latent
    >>> rgb = space.decode_latent(z, height, width)            # uint8 (H, W, 3)
    >>> model, schedule, parameterization, manifest = latent.load_latent_prior(device="cpu")

``LatentCrops`` encodes random training crops once and serves them as batches, the data source of
`diffcodec train latent-denoiser`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

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
    from diffcodec.diffusion.train import load_denoiser

    return load_denoiser(name, device)


class LatentCrops:
    """Latents of ``count`` random ``image_crop`` crops (flips and 90-degree rotations) of the images in
    ``folders``, encoded once with ``autoencoder`` (posterior mean, scaled); ``batch(n, rng)`` serves random
    ``latent_crop`` sub-crops, (n, c, latent_crop, latent_crop)."""

    def __init__(self, autoencoder: Autoencoder, folders: Sequence[Path | str], *, count: int = 4096,
                 image_crop: int = 256, latent_crop: int | None = None, seed: int = 0, batch: int = 32,
                 progress: bool = False):
        from diffcodec.data import ImageFolderCrops

        images = ImageFolderCrops(list(folders), crop=image_crop, flips=True, rot90=True)
        rng = np.random.default_rng(seed)
        dev = next(autoencoder.parameters()).device
        side = image_crop // autoencoder.factor
        self.latent_crop = int(latent_crop or side)
        if not 1 <= self.latent_crop <= side:
            raise ValueError(f"latent_crop must be in 1..{side}")
        chunks = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=count, desc="encode crops", dynamic_ncols=True)
        with torch.no_grad():
            for i in range(0, count, batch):
                x = images.batch(min(batch, count - i), rng).to(dev)
                chunks.append(autoencoder.encode(x).float().cpu())
                if bar is not None:
                    bar.update(len(x))
        if bar is not None:
            bar.close()
        self.latents = torch.cat(chunks)
        self.description = (f"{count} latents of random {image_crop}px crops (flips, rot90; seed {seed}), "
                            f"served as {self.latent_crop}x{self.latent_crop} latent crops")

    def __len__(self) -> int:
        return len(self.latents)

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        idx = rng.integers(0, len(self.latents), size=n)
        side, c = self.latents.shape[-1], self.latent_crop
        out = torch.empty((n, self.latents.shape[1], c, c))
        for k, i in enumerate(idx):
            y, x = (int(v) for v in rng.integers(0, side - c + 1, size=2))
            out[k] = self.latents[i, :, y:y + c, x:x + c]
        return out


@torch.no_grad()
def encode_validation(autoencoder: Autoencoder, folder: Path | str, crop: int, count: int) -> torch.Tensor:
    """Scaled latents of the fixed validation crops of ``folder`` (see :func:`diffcodec.data.validation_crops`)."""
    from diffcodec.data import validation_crops

    images = validation_crops(folder, crop, count)
    dev = next(autoencoder.parameters()).device
    return torch.cat([autoencoder.encode(images[i:i + 16].to(dev)).float().cpu() for i in range(0, count, 16)])
