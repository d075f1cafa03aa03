"""Exponential moving average of a model's parameters (kept as a full shadow copy of the model)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """``ema = EMA(model, decay=0.999)``; call ``ema.update(model)`` after each optimizer step; use ``ema.model``
    (eval mode, no grads) for validation/export.

    Warm-up (``warmup=True``): the effective decay at update n (counted from 0) is
    ``min(decay, (1 + n) / (10 + n))``, so early averages are not dominated by the random initialisation.
    Floating-point buffers are averaged like parameters; other buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError("EMA decay must be in [0, 1)")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = dict(model.named_parameters())
        for name, p in self.model.named_parameters():
            p.lerp_(src[name].detach().to(p.dtype), 1.0 - d)
        src_b = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            if b.is_floating_point():
                b.lerp_(src_b[name].to(b.dtype), 1.0 - d)
            else:
                b.copy_(src_b[name])
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model``."""
        model.load_state_dict(self.model.state_dict())

    def to(self, *args, **kwargs) -> "EMA":
        self.model.to(*args, **kwargs)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.warmup = bool(state.get("warmup", True))
        self.num_updates = int(state["num_updates"])
        self.model.load_state_dict(state["model"])
