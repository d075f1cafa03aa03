"""A small, fully convolutional denoising UNet (ADM-style blocks, sized for CPU training).

Layout for ``channel_mult=(1, 2, 4)``, ``num_res_blocks=1``, ``attn_levels=(2,)``::

    conv_in(in + cond -> C)
    level 0 (1x,  C) : ResBlock                      -> skip0, strided conv  (H/2)
    level 1 (2x, 2C) : ResBlock                      -> skip1, strided conv  (H/4)
    level 2 (4x, 4C) : ResBlock + Attn               -> skip2
    level 2 up       : cat(skip2) ResBlock + Attn, nearest x2 + conv (4C -> 2C)
    level 1 up       : cat(skip1) ResBlock,        nearest x2 + conv (2C -> C)
    level 0 up       : cat(skip0) ResBlock
    GroupNorm, SiLU, conv_out(C -> out)            (zero-initialised, as are the last conv of each block)

There is one skip connection per level (the level's output before downsampling), and no separate middle
block: the lowest level's down and up blocks form the bottleneck. With the default config (48/96/192 channels)
this is about 2.9 M parameters.

**Time input.** ``forward(x, t, cond)`` takes ``t`` as a float tensor (B,) (or a scalar) holding the
*normalised* time ``t_int / T`` in [0, 1) (:meth:`NoiseSchedule.model_time`). It is embedded sinusoidally as
``1000 * t`` (the DDPM embedding of the integer step at T = 1000), so any respaced or strided subset of steps
gets the same embedding as in training. Integer tensors are refused, to catch callers that forgot the
normalisation.

**Conditioning.** ``cond`` (B, cond_channels, H, W) is concatenated to ``x`` at the input; the caller upsamples
latents to the image size. With ``cond_residual=True`` the output is ``cond[:, :out_channels] + network``: for a
refiner whose condition is a degraded copy of the target (x0-parameterization), the zero-initialised output
layer then starts at "no change", so training can only improve on the condition.

**Any size.** Inputs are padded (reflect, or replicate where the input is too small) to a multiple of the
network stride ``2 ** (len(channel_mult) - 1)`` and the output is cropped back.

**Speed.** On the CPU, ``model.to(memory_format=torch.channels_last)`` makes the convolutions ~20% faster
(the input may stay NCHW; the output is returned NCHW-contiguous).

**Attention** (only at the levels in ``attn_levels``) runs inside non-overlapping windows of
``attn_window`` x ``attn_window`` tokens (16 by default: one window covers a whole 64x64 training crop at the
4x-downsampled level, so training sees plain global attention). At inference on large images every window
then attends over the same number of tokens as in training, and the cost stays linear in the image area
(global attention over the 128x192 tokens of a 512x768 image would cost more than all the convolutions and
would dilute the softmax over 100x more keys than seen in training). ``attn_window=0`` gives global attention.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def timestep_embedding(t: torch.Tensor, dim: int, *, scale: float = 1000.0,
                       max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of the continuous values ``scale * t``: [cos(w_i s t), sin(w_i s t)]
    with ``w_i = max_period ** (-i / (dim // 2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.to(torch.float32) * scale)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(ch: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(ch), ch, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, time embedding as scale-shift on the second GroupNorm, dropout, zero-init conv."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Multi-head self-attention over spatial tokens, windowed (see module docstring)."""

    def __init__(self, ch: int, head_channels: int = 32, window: int = 16):
        super().__init__()
        divisible = head_channels > 0 and ch % head_channels == 0 and ch >= head_channels
        self.heads = ch // head_channels if divisible else 1
        self.window = int(window or 0)
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        nh, hd = self.heads, C // self.heads
        qkv = self.qkv(self.norm(x))
        w = self.window
        if w <= 0 or (H <= w and W <= w):
            q, k, v = qkv.reshape(B, 3, nh, hd, H * W).permute(1, 0, 2, 4, 3).unbind(0)  # (B, nh, L, hd)
            out = F.scaled_dot_product_attention(q, k, v)
            out = out.permute(0, 1, 3, 2).reshape(B, C, H, W)
            return x + self.proj(out)
        # Windowed: pad to a multiple of w (padded keys are masked out), attend within each w x w window.
        ph, pw = (-H) % w, (-W) % w
        if ph or pw:
            qkv = F.pad(qkv, (0, pw, 0, ph))
        Hp, Wp = H + ph, W + pw
        nwh, nww = Hp // w, Wp // w
        t = qkv.reshape(B, 3, nh, hd, nwh, w, nww, w).permute(1, 0, 4, 6, 2, 5, 7, 3)  # 3,B,nwh,nww,nh,w,w,hd
        q, k, v = t.reshape(3, B * nwh * nww, nh, w * w, hd).unbind(0)
        mask = None
        if ph or pw:
            valid = torch.zeros(Hp, Wp, dtype=torch.bool, device=x.device)
            valid[:H, :W] = True
            valid = valid.reshape(nwh, w, nww, w).permute(0, 2, 1, 3).reshape(nwh * nww, 1, 1, w * w)
            mask = valid.repeat(B, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B*nw, nh, w*w, hd)
        out = out.reshape(B, nwh, nww, nh, w, w, hd).permute(0, 3, 6, 1, 4, 2, 5).reshape(B, C, Hp, Wp)
        return x + self.proj(out[:, :, :H, :W])


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    def __init__(self, in_ch: int, ch: int, n: int, emb_dim: int, attn: bool, dropout: float, head_ch: int,
                 window: int):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(in_ch if i == 0 else ch, ch, emb_dim, dropout) for i in range(n))
        self.attn = nn.ModuleList(AttnBlock(ch, head_ch, window) for _ in range(n)) if attn else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res):
            h = block(h, emb)
            if self.attn is not None:
                h = self.attn[i](h)
        return h


_CONFIG_KEYS = frozenset({
    "in_channels", "out_channels", "cond_channels", "base_channels", "channel_mult", "num_res_blocks",
    "attn_levels", "dropout", "attn_window", "attn_head_channels", "cond_residual",
})


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        cond_channels: int = 0,
        base_channels: int = 48,
        channel_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 1,
        attn_levels: tuple[int, ...] = (2,),
        dropout: float = 0.0,
        attn_window: int = 16,
        attn_head_channels: int = 32,
        cond_residual: bool = False,
    ):
        super().__init__()
        if cond_residual and cond_channels < out_channels:
            raise ValueError("cond_residual needs at least out_channels condition channels")
        channel_mult = tuple(int(m) for m in channel_mult)
        attn_levels = tuple(sorted(int(a) for a in attn_levels))
        if not channel_mult or num_res_blocks < 1:
            raise ValueError("UNet needs at least one level and one residual block per level")
        if any(not 0 <= a < len(channel_mult) for a in attn_levels):
            raise ValueError(f"attn_levels {attn_levels} outside levels 0..{len(channel_mult) - 1}")
        self._config = dict(
            in_channels=int(in_channels), out_channels=int(out_channels), cond_channels=int(cond_channels),
            base_channels=int(base_channels), channel_mult=list(channel_mult), num_res_blocks=int(num_res_blocks),
            attn_levels=list(attn_levels), dropout=float(dropout), attn_window=int(attn_window or 0),
            attn_head_channels=int(attn_head_channels),
        )
        if cond_residual:  # only written when set, so older configs stay byte-identical
            self._config["cond_residual"] = True
        self.cond_residual = bool(cond_residual)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.cond_channels = int(cond_channels)
        self.stride = 2 ** (len(channel_mult) - 1)
        C = int(base_channels)
        chs = [C * m for m in channel_mult]
        emb_dim = 4 * C
        self.time_dim = C
        self.time_mlp = nn.Sequential(nn.Linear(C, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(self.in_channels + self.cond_channels, C, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = C
        for lvl, ch in enumerate(chs):
            self.down.append(_Level(prev, ch, num_res_blocks, emb_dim, lvl in attn_levels, dropout,
                                    attn_head_channels, attn_window))
            if lvl < len(chs) - 1:
                self.downsample.append(Downsample(ch))
            prev = ch
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(chs))):
            ch = chs[lvl]
            self.up.append(_Level(prev + ch, ch, num_res_blocks, emb_dim, lvl in attn_levels, dropout,
                                  attn_head_channels, attn_window))
            prev = ch
            if lvl > 0:
                self.upsample.append(Upsample(ch, chs[lvl - 1]))
                prev = chs[lvl - 1]
        self.norm_out = _norm(C)
        self.conv_out = _zero(nn.Conv2d(C, self.out_channels, 3, padding=1))

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "UNet":
        unknown = set(cfg) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown UNet config keys: {sorted(unknown)}")
        cfg = dict(cfg)
        for key in ("channel_mult", "attn_levels"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected x of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        B, _, H, W = x.shape
        if self.cond_channels:
            if cond is None:
                raise ValueError(f"this UNet needs a condition with {self.cond_channels} channels")
            if cond.shape[0] != B or cond.shape[1] != self.cond_channels or cond.shape[2:] != x.shape[2:]:
                raise ValueError(
                    f"condition must have shape ({B}, {self.cond_channels}, {H}, {W}), got {tuple(cond.shape)}"
                )
            cond = cond.to(x.dtype)
            x = torch.cat([x, cond], dim=1)
        elif cond is not None:
            raise ValueError("this UNet takes no condition (cond_channels=0)")
        if not isinstance(t, torch.Tensor):
            t = torch.tensor(float(t), device=x.device)
        if not t.is_floating_point():
            raise TypeError("UNet expects the normalised float time t/T (use NoiseSchedule.model_time), "
                            "not integer steps")
        t = t.to(x.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(B)
        elif t.numel() != B:
            raise ValueError(f"t has {t.numel()} entries for a batch of {B}")

        s = self.stride
        ph, pw = (-H) % s, (-W) % s
        if ph or pw:
            mode = "reflect" if (H > ph and W > pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)

        emb = self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))
        h = self.conv_in(x)
        skips = []
        for lvl, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if lvl < len(self.downsample):
                h = self.downsample[lvl](h)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if ph or pw:
            out = out[:, :, :H, :W]
        if self.cond_residual:
            out = out + cond[:, : self.out_channels]
        return out.contiguous()
