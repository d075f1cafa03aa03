"""Where networks run: the one device resolver (a leaf module; torch is imported only to ask for a GPU)."""

from __future__ import annotations

from diffcodec.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | None = "auto") -> str:
    """'auto' (or None) -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is a usage error.
    Methods without a network ignore the device."""
    device = "auto" if device is None else device
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise UsageError("--device cuda asked for, but no CUDA GPU is available")
    return "cuda" if has_cuda else "cpu"
