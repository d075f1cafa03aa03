"""Latents as training data: ``LatentImageCache`` encodes whole training images once (cached on disk, keyed by
the autoencoder's sha256) and serves pixel crops with their latents (diffae training) or latent crops only
(``LatentCrops``, the data source of `diffcodec train latent-denoiser`); ``encode_validation`` gives the latents
of fixed validation crops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from diffcodec import atomic, progress
from diffcodec.autoencoder import Autoencoder
from diffcodec.data import to_tensor
from diffcodec.errors import UsageError
from diffcodec.training.data import ImageFolderCrops, validation_crops


class LatentImageCache:
    """Latent space: every training image and the autoencoder latent of the whole image (and, with ``flips``, of
    its mirror image), computed once; ``batch`` serves pixel crops at positions that are multiples of the
    autoencoder's stride with the matching latent crops."""

    def __init__(self, images: ImageFolderCrops, autoencoder, ae_sha256: str, crop: int, *, flips: bool,
                 cache_path: Path | None = None, progress: bool | None = False):
        self.images, self.crop, self.align = images, int(crop), autoencoder.factor
        if self.crop % 16 or self.crop % self.align:
            raise UsageError(f"latent-space crops must be multiples of 16 and of the autoencoder stride, got {crop}")
        self.variants = 2 if flips else 1
        key = {"autoencoder_sha256": ae_sha256, "files": [str(p) for p in images.files], "variants": self.variants}
        self.latents: list[list[torch.Tensor]] | None = None
        if cache_path is not None and cache_path.is_file():
            try:
                ck = torch.load(cache_path, map_location="cpu", weights_only=True)
                if ck.get("key") == json.dumps(key):
                    self.latents = ck["latents"]
            except Exception:
                self.latents = None
        if self.latents is None:
            self.latents = self._encode(autoencoder, progress)
            if cache_path is not None:
                atomic.save_torch({"key": json.dumps(key), "latents": self.latents}, cache_path)
        self.description = (f"random {crop}px crops at multiples of {self.align} px with the latents of the whole "
                            f"images{' and of their mirror images' if flips else ''}")

    def _variant(self, i: int, v: int) -> np.ndarray:
        img = self.images.images[i]
        return img if v == 0 else np.ascontiguousarray(img[:, ::-1])

    @torch.no_grad()
    def _encode(self, autoencoder, show: bool | None) -> list[list[torch.Tensor]]:
        dev = next(autoencoder.parameters()).device
        out = []
        with progress.bar(show=show, total=len(self.images.images) * self.variants, desc="encode latents") as bar:
            for i in range(len(self.images.images)):
                zs = []
                for v in range(self.variants):
                    zs.append(autoencoder.encode(to_tensor(self._variant(i, v)[None]).to(dev))[0].float().cpu())
                    bar.update(1)
                out.append(zs)
        return out

    def batch(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c, a = self.crop, self.align
        idx = rng.choice(len(self.images.images), size=n, p=self.images.probs)
        xs = np.empty((n, c, c, 3), dtype=np.uint8)
        zs = []
        for k, i in enumerate(idx):
            v = int(rng.integers(0, self.variants)) if self.variants > 1 else 0
            img = self._variant(int(i), v)
            h, w = img.shape[:2]
            y0 = a * int(rng.integers(0, (h - c) // a + 1))
            x0 = a * int(rng.integers(0, (w - c) // a + 1))
            xs[k] = img[y0:y0 + c, x0:x0 + c]
            zs.append(self.latents[int(i)][v][:, y0 // a:(y0 + c) // a, x0 // a:(x0 + c) // a])
        return to_tensor(xs), torch.stack(zs)

    def latent_batch(self, n: int, rng: np.random.Generator, size: int) -> torch.Tensor:
        """(n, c, size, size) random latent crops (any latent position, either variant), no pixels."""
        idx = rng.choice(len(self.latents), size=n, p=self.images.probs)
        out = []
        for i in idx:
            z = self.latents[int(i)][int(rng.integers(0, self.variants))]
            h, w = z.shape[-2:]
            if min(h, w) < size:
                raise UsageError(f"latent crop {size} is larger than an encoded image ({h}x{w})")
            y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            out.append(z[:, y0:y0 + size, x0:x0 + size])
        return torch.stack(out)


class LatentCrops:
    """Data source of the latent prior's training (`TrainConfig.data_source`): ``batch(n, rng)`` gives random
    ``size`` x ``size`` crops of the cached latents of whole training images (and their mirror images)."""

    def __init__(self, cache: LatentImageCache, size: int):
        self.cache, self.size = cache, int(size)
        self.description = (f"random {size}x{size} crops of the latents of the whole training images"
                            f"{' and of their mirror images' if cache.variants > 1 else ''}")

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        return self.cache.latent_batch(n, rng, self.size)


@torch.no_grad()
def encode_validation(autoencoder: Autoencoder, folder: Path | str, crop: int, count: int) -> torch.Tensor:
    """Scaled latents of the fixed validation crops of ``folder`` (see :func:`.data.validation_crops`)."""
    images = validation_crops(folder, crop, count)
    dev = next(autoencoder.parameters()).device
    return torch.cat([autoencoder.encode(images[i:i + 16].to(dev)).float().cpu() for i in range(0, count, 16)])
