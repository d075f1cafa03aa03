"""diffae clips with temporal compression (issue #16 item 1), after Rampas 2024, section 3.4: one coded latent
per group of t frames (``--gop t``, t in TEMPORAL_FACTORS)::

    frames x_1 .. x_t --diffae encoder, per frame--> y_1 .. y_t                       (c, H/16, W/16) each
    per factor of 2 (level l = 0, then 1): y <- mean over pairs of frames of P_l y    (P_l: a 1x1 conv)
        -> z (c, H/16, W/16): quantized and range-coded exactly as an image's y (grid index d, the model's tables)
    decoder: z_hat --deflate (level 1, then 0: a 1x1 conv c -> 2c, split into the pair)--> y_hat_1 .. t
        each frame: the diffae decoder conditioned on its y_hat, all t of a group from the same seeded x_T
    global motion: frame k of a group is coded shifted by -d_k (whole pixels, found by phase correlation against
        the group's first frame) and decoded shifted back by +d_k, so that a pan is not averaged away

The group's latent is its keyframe's payload; its other frames are P chunks holding only d_k (empty when 0).
The layers are the artifact ``models/diffae-temporal`` (:class:`diffcodec.methods.diffae_nets.TemporalLayers`;
trainable, the shipped ones are at their initialisation: plain pooling and copying), made for one diffae model
(its manifest pins that model's sha256). Our diffusion decoder is the image diffae's 2D one per frame (the
thesis decodes a group with 3D convolutions); the shared noise keeps a group's frames alike.
The byte-level description is in formats/ddc-v1.md ("diffae clips with temporal compression").

This module imports torch only inside functions.
"""

from __future__ import annotations

import functools
import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffcodec import artifacts
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods import Encoded, diffae

TEMPORAL_FACTORS = (2, 4)
MAX_SHIFT = 64          # the encoder's global-motion search range, pixels (the format allows up to the frame size)
TEMPORAL_MODEL = "diffae-temporal"
TEMPORAL_FORMAT = "diffcodec-diffae-temporal-v1"
MAX_LEVELS = 2


def levels(factor: int) -> int:
    return int(math.log2(factor))


@dataclass
class TemporalModel:
    model_id: str
    sha: str
    manifest: dict
    net: Any            # TemporalLayers, on the diffae model's device


def load_temporal(model_id: str, base: diffae.DiffAEModel) -> TemporalModel:
    """Load codebooks/models/<model_id>, checked to be trained for the diffae model ``base``."""
    if not diffae._MODEL_ID.match(model_id or ""):
        raise UsageError(f"bad diffae temporal model id {model_id!r}")
    name = diffae.artifact_name(model_id)
    weights, _ = artifacts.artifact_paths(name)
    if not weights.is_file():
        raise ModelError(f"diffae temporal model {model_id!r} is not installed: missing {weights} (train it with "
                         f"`diffcodec train diffae-temporal --name {name} ...` or set DIFFCODEC_CODEBOOKS)")
    return _built_temporal(model_id, artifacts.artifact_key(name), base.model_id, base.sha,
                           base.config["latent_channels"], str(base.device))


@functools.lru_cache(maxsize=4)     # built once per process per file content and diffae model
def _built_temporal(model_id: str, key: tuple[str, str], base_id: str, base_sha: str, channels: int,
                    device: str) -> TemporalModel:
    import torch

    from diffcodec.methods.diffae_nets import TemporalLayers

    name = diffae.artifact_name(model_id)
    tensors, manifest, sha = artifacts.load_artifact(name)
    if manifest.get("format") != TEMPORAL_FORMAT:
        raise ModelError(f"artifact {name!r} is not a diffae temporal model ({manifest.get('format')!r})")
    if manifest.get("diffae_sha256") != base_sha:
        raise ModelError(f"diffae temporal model {model_id!r} was trained for a diffae model with sha256 "
                         f"{str(manifest.get('diffae_sha256'))[:16]}..., not {base_id!r} "
                         f"({base_sha[:16]}...): retrain it for that model")
    try:
        net = TemporalLayers(int(manifest["channels"]), int(manifest["levels"]))
        if net.channels != channels or not 1 <= net.levels <= MAX_LEVELS:
            raise ValueError(f"{net.channels} channels, {net.levels} levels")
        net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()},
                            strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = " ".join(str(e).split())
        raise ModelError(f"artifact {name!r} does not match its manifest: {reason[:300]}") from None
    net.to(device).eval()
    net.requires_grad_(False)
    return TemporalModel(model_id, sha, manifest, net)


def pool(temporal: TemporalModel, ys: np.ndarray, factor: int) -> np.ndarray:
    """Per-frame latents (factor, c, h, w) float32 -> the group's latent z (c, h, w) float32."""
    import torch

    with torch.inference_mode():
        z = temporal.net.pool(torch.from_numpy(ys)[None].to(next(temporal.net.parameters()).device), levels(factor))
    return z[0].float().cpu().numpy()


def unpool(temporal: TemporalModel, z_hat: np.ndarray, factor: int):
    """The group's dequantized latent (c, h, w) -> the frames' latents (factor, c, h, w), a float tensor."""
    import torch

    with torch.inference_mode():
        y = temporal.net.unpool(torch.from_numpy(z_hat)[None].to(next(temporal.net.parameters()).device),
                                levels(factor))
    return y[0].float()


# ------------------------------------------------------------------------------------------------ header
def header(d: int, steps: int, seed: int, factor: int, temporal: TemporalModel) -> dict:
    return {"d": d, "n": steps, "s": seed, "t": factor, "tm": temporal.model_id,
            "th": artifacts.sha_prefix32(temporal.sha)}


def is_temporal(params) -> bool:
    return isinstance(params, dict) and "t" in params


def check_header(p: dict) -> tuple[int, str, int]:
    """(t, tm, th) of a temporal diffae header, or CorruptInputError."""
    corrupt = lambda msg: CorruptInputError(f"corrupt diffae header: {msg}")  # noqa: E731
    try:
        t, tm, th = p["t"], p["tm"], p["th"]
    except KeyError as e:
        raise corrupt(f"parameter {e} missing (a temporal header has t, tm and th)") from None
    if type(t) is not int or t not in TEMPORAL_FACTORS:
        raise corrupt(f"temporal factor t must be one of {', '.join(map(str, TEMPORAL_FACTORS))}, got {t!r}")
    if not isinstance(tm, str) or not diffae._MODEL_ID.match(tm):
        raise corrupt(f"bad temporal model id {tm!r}")
    if type(th) is not int or not 0 <= th < 1 << 32:
        raise corrupt(f"temporal model sha prefix th must be a 32-bit integer, got {th!r}")
    return t, tm, th


# ------------------------------------------------------------------------------------------------ global motion
# A frame of a group may be coded aligned to the group's first frame: the encoder shifts it by -d (whole pixels)
# before pooling, its P chunk stores d, and the decoder shifts the decoded frame back by +d. A pan then survives
# the averaging; the frame's border, where new content enters, repeats its edge pixels.
def shift_frame(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``img`` (H, W, C) with its content moved down by ``dy`` and right by ``dx`` pixels (either may be negative):
    out[y, x] = img[clip(y - dy, 0, H - 1), clip(x - dx, 0, W - 1)]."""
    h, w = img.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[rows][:, cols]


def global_shift(first: np.ndarray, frame: np.ndarray, max_shift: int = MAX_SHIFT) -> tuple[int, int]:
    """The whole-pixel translation d that ``frame`` (uint8 (H, W, 3)) shows against ``first``: the peak of their
    phase correlation within +-max_shift, kept only where aligning by it lowers the squared error (else (0, 0))."""
    a = first.astype(np.float64).mean(axis=2)
    b = frame.astype(np.float64).mean(axis=2)
    h, w = a.shape
    cross = np.fft.fft2(b - b.mean()) * np.conj(np.fft.fft2(a - a.mean()))
    r = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-9)).real
    reach_y, reach_x = min(max_shift, h // 4), min(max_shift, w // 4)
    ys = np.r_[0:reach_y + 1, h - reach_y:h] if reach_y else np.array([0])
    xs = np.r_[0:reach_x + 1, w - reach_x:w] if reach_x else np.array([0])
    sub = r[np.ix_(ys, xs)]
    iy, ix = np.unravel_index(int(np.argmax(sub)), sub.shape)
    dy, dx = int(ys[iy]), int(xs[ix])
    dy, dx = dy - h if dy > h // 2 else dy, dx - w if dx > w // 2 else dx
    if (dy, dx) == (0, 0):
        return 0, 0

    def error(d: tuple[int, int]) -> float:      # over the part that both frames show
        m = shift_frame(frame, -d[0], -d[1]).astype(np.float64) - first
        return float(np.mean(m[max(0, -d[0]):h - max(0, d[0]), max(0, -d[1]):w - max(0, d[1])] ** 2))

    return (dy, dx) if error((dy, dx)) < error((0, 0)) else (0, 0)


def motion_payload(dy: int, dx: int) -> bytes:
    """A group's P chunk: empty without motion, else dy, dx as two big-endian int16."""
    return b"" if (dy, dx) == (0, 0) else struct.pack(">hh", dy, dx)


def parse_motion(payload: bytes, height: int, width: int) -> tuple[int, int]:
    if len(payload) == 0:
        return 0, 0
    if len(payload) != 4:
        raise CorruptInputError(f"corrupt diffae clip: a temporal group's P-frame holds {len(payload)} bytes (0 or "
                                f"4: its motion)")
    dy, dx = struct.unpack(">hh", payload)
    if (dy, dx) == (0, 0) or abs(dy) >= height or abs(dx) >= width:
        raise CorruptInputError(f"corrupt diffae clip: P-frame motion ({dy}, {dx}) for a {width}x{height} frame")
    return dy, dx


# ------------------------------------------------------------------------------------------------ encoder
class TemporalClipEncoder:
    """The stream encoder of a temporal diffae clip (:meth:`diffcodec.methods.Codec.open_clip_encoder`): RGB
    frames in, one keyframe (the group's latent) and factor - 1 P-frames (each frame's global motion against the
    group's first, :func:`global_shift`) out per group; a last group of
    fewer frames is padded with its last frame (only its real frames are written). The first group fixes the
    grid index (its preset, ``grid``, or the largest whose group payload is within ``bpp`` per frame)."""

    def __init__(self, model: diffae.DiffAEModel, temporal: TemporalModel, factor: int, *, preset: str | None,
                 grid: int | None, bpp: float | None, steps: int, seed: int):
        self.model, self.temporal, self.factor = model, temporal, factor
        self.preset, self.grid, self.bpp, self.steps, self.seed = preset, grid, bpp, steps, seed
        self.pending: list[np.ndarray] = []

    def push(self, rgb: np.ndarray) -> list:
        self.pending.append(rgb)
        return self._code() if len(self.pending) == self.factor else []

    def flush(self) -> list:
        return self._code() if self.pending else []

    def _code(self) -> list:
        model, frames = self.model, self.pending
        real = len(frames)
        frames = frames + [frames[-1]] * (self.factor - real)
        self.pending = []
        h, w = frames[0].shape[:2]
        motion = [(0, 0)] + [global_shift(frames[0], f) for f in frames[1:real]]
        motion += [motion[-1]] * (self.factor - real)
        aligned = [shift_frame(f, -dy, -dx) for f, (dy, dx) in zip(frames, motion)]
        z = pool(self.temporal, np.stack([diffae.analyse(model, f) for f in aligned]), self.factor)

        def payload(g: int) -> bytes:
            q = diffae.quantize(z, model.deltas[g], int(model.supports[g]))
            return diffae.encode_latent(q, model.tables[g], int(model.supports[g]))

        if self.grid is None:
            if self.bpp is not None:
                self.grid = self._grid_for(payload, self.bpp * h * w * real / 8)
            else:
                self.grid = model.presets[self.preset or diffae.DEFAULT_PRESET]
        key = Encoded(model=model.model_id, model_sha=artifacts.sha_prefix32(model.sha),
                      params=header(self.grid, self.steps, self.seed, self.factor, self.temporal),
                      chunks=[payload(self.grid)])
        return [(True, key, None)] + [(False, motion_payload(*d), None) for d in motion[1:real]]

    def _grid_for(self, payload, budget_bytes: float) -> int:
        assert self.bpp is not None
        best, smallest = None, None
        for g in range(len(self.model.deltas)):         # increasing rate: the largest within the budget
            size = len(payload(g))
            smallest = size if smallest is None else min(smallest, size)
            if size <= budget_bytes:
                best = g
        if best is None:
            raise UsageError(f"--bpp {self.bpp:g} is below what diffae temporal coding reaches for this clip (its "
                             f"first group's smallest latent is {smallest} bytes for {int(budget_bytes * 8 / self.bpp)}"
                             f" pixels)")
        return best


# ------------------------------------------------------------------------------------------------ decoder
def decode_group(model: diffae.DiffAEModel, temporal: TemporalModel, encoded: Encoded, g: int, steps: int,
                 seed: int, factor: int, height: int, width: int) -> list[np.ndarray]:
    """A group's keyframe -> its ``factor`` frames, uint8 (height, width, 3) each."""
    q = diffae.decode_latent(encoded.chunks[0], model.latent_shape(height, width), model.tables[g],
                             int(model.supports[g]))
    ys = unpool(temporal, diffae.dequantize(q, model.deltas[g]), factor)
    return list(diffae.synthesize_latents(model, ys, g, height, width, steps, seed, shared_noise=True))


def group_reference(frames: list[np.ndarray]) -> deque:
    """What a group's keyframe leaves for its P-frames: the frames after the first, in order."""
    return deque(frames[1:])


def next_frame(payload: bytes, reference: Any) -> tuple[np.ndarray, deque]:
    """A temporal group's P-frame: the next frame its keyframe decoded, moved by the chunk's motion."""
    if not isinstance(reference, deque) or not reference:
        raise CorruptInputError("corrupt diffae clip: a P-frame beyond its temporal group (or without a keyframe "
                                "that has the header's t)")
    frame = reference.popleft()
    dy, dx = parse_motion(payload, frame.shape[0], frame.shape[1])
    return (shift_frame(frame, dy, dx) if (dy, dx) != (0, 0) else frame), reference
