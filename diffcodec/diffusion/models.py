"""Shipped denoisers: export (fp16 safetensors + manifest) and loading. Inference side: decoding imports this,
never the training loop."""

from __future__ import annotations

import datetime as _dt
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec.diffusion.schedules import PARAMETERIZATIONS, NoiseSchedule
from diffcodec.diffusion.unet import UNet
from diffcodec.errors import ModelError

ARTIFACT_FORMAT = "diffcodec-denoiser-v1"


def export_denoiser(
    name: str,
    model: UNet,
    schedule: NoiseSchedule,
    parameterization: str,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights as fp16 safetensors artifact ``name`` (relative to the codebooks folder); the model
    config, schedule config and parameterization go into both the safetensors metadata and the manifest (the
    manifest's copy is the one :func:`load_denoiser` uses). ``manifest`` adds fields (command, data, steps,
    wall time, device, validation, license, ...). Returns the weights path."""
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous().numpy() for k, v in model.state_dict().items()}
    for k, v in tensors.items():
        if not np.isfinite(v).all():
            raise ModelError(f"weight {k} is not finite in fp16; cannot export")
    info = {
        "kind": "denoiser",
        "format": ARTIFACT_FORMAT,
        "model_config": model.config,
        "schedule": schedule.config,
        "parameterization": parameterization,
        "params": model.num_parameters(),
        "dtype": "float16",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    full = {**info, **(manifest or {})}
    for key in ("command", "data", "steps", "wall_time_s", "device", "validation", "license"):
        full.setdefault(key, None)
    from diffcodec.artifacts import save_artifact

    metadata = {"format": ARTIFACT_FORMAT, "model_config": json.dumps(model.config),
                "schedule": json.dumps(schedule.config), "parameterization": parameterization}
    return save_artifact(name, tensors, full, metadata=metadata)


def load_denoiser(
    name: str, device: str | torch.device = "cpu", *, channels_last: bool = True
) -> tuple[UNet, NoiseSchedule, str, dict[str, Any]]:
    """Load a shipped denoiser (sha256-verified by :func:`diffcodec.artifacts.load_artifact`), fp16 -> fp32, in
    eval mode: ``(model, schedule, parameterization, manifest)``. ``channels_last`` stores the weights NHWC,
    which makes the convolutions ~20% faster on the CPU (outputs are the same up to float rounding)."""
    from diffcodec.artifacts import artifact_key

    return _built_denoiser(name, artifact_key(name), str(device), channels_last)


@functools.lru_cache(maxsize=4)     # built once per process per file content (a clip, a batch worker)
def _built_denoiser(name: str, key: tuple[str, str], device: str,
                    channels_last: bool) -> tuple[UNet, NoiseSchedule, str, dict[str, Any]]:
    from diffcodec.artifacts import load_artifact

    tensors, manifest, _ = load_artifact(name)
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"artifact {name!r} is not a denoiser ({manifest.get('format')!r})")
    try:
        model = UNet.from_config(manifest["model_config"])
        schedule = NoiseSchedule.from_config(manifest["schedule"])
        parameterization = manifest["parameterization"]
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {parameterization!r}")
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"artifact {name!r} does not match its manifest: {e}") from None
    model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, schedule, parameterization, manifest
