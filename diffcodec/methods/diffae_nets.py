"""The torch networks of the `diffae` codec (:mod:`diffcodec.methods.diffae`): analysis encoder, factorized
prior, conditioning network, and the whole :class:`DiffAENet` with its conditional UNet. Imports torch at the
top, so :mod:`diffcodec.methods.diffae` imports this module only inside functions. Attribute names are the
state-dict keys of the shipped weights files: never rename one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffcodec.autoencoder import ResBlock, _norm
from diffcodec.diffusion.unet import UNet
from diffcodec.methods.diffae import LOG_SCALE_CLAMP


class AnalysisEncoder(nn.Module):
    """pixel_unshuffle(4) -> conv -> [stride-2 conv, ResBlock x n] per level -> norm, SiLU, conv -> c channels.
    No full-resolution convolutions (CPU-cheap); input padded to a multiple of f by the caller."""

    def __init__(self, factor: int, latent_channels: int, channels: list[int], res_blocks: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(48, channels[0], 3, padding=1), nn.SiLU()]
        for prev, ch in zip(channels, channels[1:]):
            layers.append(nn.Conv2d(prev, ch, 3, stride=2, padding=1))
            layers += [ResBlock(ch) for _ in range(res_blocks)]
        layers += [_norm(channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(F.pixel_unshuffle(x, 4))


class MixturePrior(nn.Module):
    """Per-channel mixture of K logistics: the factorized prior of the latent (continuous density)."""

    def __init__(self, channels: int, mixtures: int):
        super().__init__()
        init = torch.linspace(-1.0, 1.0, mixtures) if mixtures > 1 else torch.zeros(1)
        self.logits = nn.Parameter(torch.zeros(channels, mixtures))
        self.means = nn.Parameter(init.repeat(channels, 1))
        self.log_scales = nn.Parameter(torch.zeros(channels, mixtures))

    def bits(self, y: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """-log2 of the mass of the bin [y - Delta/2, y + Delta/2] per element; y (B, c, h, w), delta (B,)."""
        y = y.float()[:, :, None]
        mu = self.means[None, :, :, None, None]
        inv = torch.exp(-self.log_scales.clamp(-LOG_SCALE_CLAMP, LOG_SCALE_CLAMP))[None, :, :, None, None]
        half = (delta.float() / 2).view(-1, 1, 1, 1, 1)
        sign = torch.where(y > mu, -1.0, 1.0)         # evaluate in the lower tail: no cancellation
        upper = torch.sigmoid(sign * (y + half - mu) * inv)
        lower = torch.sigmoid(sign * (y - half - mu) * inv)
        w = torch.softmax(self.logits, dim=-1)[None, :, :, None, None]
        mass = (w * (upper - lower).abs()).sum(dim=2)
        return -torch.log2(mass.clamp_min(1e-9))


class CondNet(nn.Module):
    """y_hat (+ a constant channel holding the normalised log Delta) -> two 3x3 convs at the latent's
    resolution -> nearest upsampling by `up` to the diffusion target's resolution."""

    def __init__(self, latent_channels: int, channels: int, up: int):
        super().__init__()
        self.up = int(up)
        self.net = nn.Sequential(nn.Conv2d(latent_channels + 1, channels, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, y_hat: torch.Tensor, log_delta: torch.Tensor) -> torch.Tensor:
        b, _, h, w = y_hat.shape
        ld = log_delta.to(y_hat.dtype).view(b, 1, 1, 1).expand(b, 1, h, w)
        out = self.net(torch.cat([y_hat, ld], dim=1))
        return F.interpolate(out, scale_factor=float(self.up), mode="nearest") if self.up > 1 else out


class DiffAENet(nn.Module):
    """Encoder + prior + conditioning network + conditional UNet of one configuration (:func:`make_config`)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        c = config["latent_channels"]
        self.factor = config["factor"]
        self.up = config["factor"] // config["target_factor"]
        self.encoder = AnalysisEncoder(config["factor"], c, config["encoder_channels"],
                                       config["encoder_res_blocks"])
        self.prior = MixturePrior(c, config["prior_mixtures"])
        self.cond = CondNet(c, config["cond_channels"], self.up)
        tc = config["target_channels"]
        self.unet = UNet.from_config({**config["unet"], "in_channels": tc, "out_channels": tc,
                                      "cond_channels": config["cond_channels"]})
        self._ld_mid = 0.5 * (math.log(config["delta_min"]) + math.log(config["delta_max"]))
        self._ld_half = 0.5 * (math.log(config["delta_max"]) - math.log(config["delta_min"]))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad images (B, 3, H, W) on the right/bottom to a multiple of f (reflect; replicate when too small)."""
        from diffcodec.autoencoder import pad_to_multiple

        return pad_to_multiple(x, self.factor)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W), any size -> y (B, c, ceil(H/f), ceil(W/f))."""
        return self.encoder(self.pad(x))

    def condition(self, y_hat: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        ld = (torch.log(delta.float()) - self._ld_mid) / self._ld_half
        return self.cond(y_hat, ld.to(y_hat.device))

    def target_shape(self, h: int, w: int) -> tuple[int, int, int]:
        """(C, h*up, w*up): the diffusion target's shape for a latent of h x w."""
        return (self.config["target_channels"], h * self.up, w * self.up)


class TemporalLayers(nn.Module):
    """Temporal compression of diffae latents (Rampas 2024, section 3.4): per factor of 2, level l, a learned 1x1
    projection ``compress[l]`` followed by average pooling over pairs of frames, and its learned inverse
    ``deflate[l]`` (a 1x1 convolution c -> 2c split into the pair). Initialised as plain pooling and copying."""

    def __init__(self, channels: int, levels: int):
        super().__init__()
        self.channels, self.levels = int(channels), int(levels)
        self.compress = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(levels))
        self.deflate = nn.ModuleList(nn.Conv2d(channels, 2 * channels, 1) for _ in range(levels))
        eye = torch.eye(channels)[:, :, None, None]
        with torch.no_grad():
            for conv in self.compress:
                conv.weight.copy_(eye)
                conv.bias.zero_()
            for conv in self.deflate:
                conv.weight.copy_(torch.cat([eye, eye]))
                conv.bias.zero_()

    def pool(self, y: torch.Tensor, levels: int) -> torch.Tensor:
        """y (B, 2**levels, c, h, w), frames in time order -> z (B, c, h, w)."""
        for conv in self.compress[:levels]:
            b, f, c, h, w = y.shape
            y = conv(y.reshape(b * f, c, h, w)).reshape(b, f // 2, 2, c, h, w).mean(2)
        return y[:, 0]

    def unpool(self, z: torch.Tensor, levels: int) -> torch.Tensor:
        """z (B, c, h, w) -> (B, 2**levels, c, h, w): the deflated latent of each frame, in time order."""
        y = z[:, None]
        for conv in reversed(self.deflate[:levels]):
            b, f, c, h, w = y.shape
            y = conv(y.reshape(b * f, c, h, w)).reshape(b, f, 2, c, h, w).reshape(b, 2 * f, c, h, w)
        return y
