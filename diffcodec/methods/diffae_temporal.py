"""diffae clips with temporal compression (issue #16 item 1), after Rampas 2024, section 3.4: one coded latent
per group of t frames (``--gop t``, t in TEMPORAL_FACTORS)::

    frames x_1 .. x_t --diffae encoder, per frame--> y_1 .. y_t                       (c, H/16, W/16) each
    per factor of 2 (level l = 0, then 1): y <- mean over pairs of frames of P_l y    (P_l: a 1x1 conv)
        -> z (c, H/16, W/16): quantized and range-coded exactly as an image's y (grid index d, the model's tables)
    decoder: z_hat --deflate (level 1, then 0: a 1x1 conv c -> 2c, split into the pair)--> y_hat_1 .. t
        each frame: the diffae decoder conditioned on its y_hat, all t of a group from the same seeded x_T
    global motion: frame k of a group is coded shifted by -d_k (quarter pixels, found by phase correlation against
        the group's first frame, :func:`global_motion`; bilinear between pixels, :func:`shift_subpel`) and decoded
        shifted back by +d_k, so that a pan is not averaged away
    per-region motion (session 16): a frame's motion may instead be a field of quarter-pixel vectors on a grid of
        nodes 64 pixels apart (:mod:`diffcodec.motion_field`), so that what moves against the pan, or a zoom,
        is aligned too

The group's latent is its keyframe's payload; its other frames are P chunks holding only d_k (empty when 0; 4 bytes
for whole pixels, as session 14 wrote them all; 5 bytes for quarter pixels; 6 or more for a field).
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
from diffcodec import motion_field as mf
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
def header(d: int, steps: int, seed: int, factor: int, temporal: TemporalModel, pixels: int) -> dict:
    """A group keyframe's header for frames of ``pixels`` pixels (big ones decode in tiles: ``tl``)."""
    from diffcodec.tiling import TILE_ABOVE_PIXELS

    tiled = {"tl": diffae.DECODE_TILE} if pixels > TILE_ABOVE_PIXELS else {}
    return {"d": d, "n": steps, "s": seed, "t": factor, "tm": temporal.model_id,
            "th": artifacts.sha_prefix32(temporal.sha), **tiled}


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
# A frame of a group may be coded aligned to the group's first frame: the encoder shifts it by -d before pooling,
# its P chunk stores d, and the decoder shifts the decoded frame back by +d. A pan then survives the averaging;
# the frame's border, where new content enters, repeats its edge pixels. d is in quarter pixels (MOTION_UNIT):
# files of session 14 hold whole pixels only (4-byte P chunks), which are the multiples of 4 and still decode.
MOTION_UNIT = 4         # sub-pixel motion: quarter pixels


def shift_frame(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``img`` (H, W[, C]) with its content moved down by ``dy`` and right by ``dx`` whole pixels (either may be
    negative): out[y, x] = img[clip(y - dy, 0, H - 1), clip(x - dx, 0, W - 1)]."""
    h, w = img.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[rows][:, cols]


def shift_subpel(img: np.ndarray, qy: int, qx: int) -> np.ndarray:
    """``img`` (H, W[, C]) uint8 with its content moved down by qy / 4 and right by qx / 4 pixels (the rule of the
    format, bilinear in integers, edge clamped): output row y reads source row position sy = 4 y - qy quarter
    pixels, y0 = floor(sy / 4), fy = sy mod 4 (the same for every row), rows r0 = clip(y0, 0, H - 1) and r1 =
    clip(y0 + 1, 0, H - 1); columns alike (x0, fx, c0, c1); with a, b, c, d = img at (r0, c0), (r0, c1),
    (r1, c0), (r1, c1): out = ((a (4 - fx) + b fx) (4 - fy) + (c (4 - fx) + d fx) fy + 8) >> 4, exact integer
    arithmetic. Multiples of 4 are :func:`shift_frame`'s whole-pixel copies (fy = fx = 0)."""
    if qy % MOTION_UNIT == 0 and qx % MOTION_UNIT == 0:
        return shift_frame(img, qy // MOTION_UNIT, qx // MOTION_UNIT)
    h, w = img.shape[:2]
    sy = np.arange(h) * 4 - qy
    sx = np.arange(w) * 4 - qx
    y0, x0 = sy >> 2, sx >> 2
    fy, fx = int(-qy) & 3, int(-qx) & 3
    r0, r1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    c0, c1 = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    src = img.astype(np.int32)
    top, bottom = src[r0], src[r1]
    return mf.blend(top[:, c0], top[:, c1], bottom[:, c0], bottom[:, c1], fy, fx).astype(img.dtype)


def _gray(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64).mean(axis=2) if img.ndim == 3 else img.astype(np.float64)


def _phase_peaks(a: np.ndarray, b: np.ndarray, window: np.ndarray | None,
                 max_shift: int) -> list[tuple[int, int]]:
    """The peak (quarter pixels) of the phase correlation of ``b`` against ``a`` (float (H, W)) within
    +-max_shift pixels: the whole-pixel maximum, and the maximum of the correlation's band-limited
    interpolation (its DFT evaluated at quarter-pixel offsets, Guizar-Sicairos 2008) within +-1 pixel of it."""
    h, w = a.shape
    wa, wb = a - a.mean(), b - b.mean()
    if window is not None:
        wa, wb = wa * window, wb * window
    cross = np.fft.fft2(wb) * np.conj(np.fft.fft2(wa))
    cross /= np.maximum(np.abs(cross), 1e-9)
    r = np.fft.ifft2(cross).real
    reach_y, reach_x = min(max_shift, h // 4), min(max_shift, w // 4)
    ys = np.r_[0:reach_y + 1, h - reach_y:h] if reach_y else np.array([0])
    xs = np.r_[0:reach_x + 1, w - reach_x:w] if reach_x else np.array([0])
    sub = r[np.ix_(ys, xs)]
    iy, ix = np.unravel_index(int(np.argmax(sub)), sub.shape)
    dy, dx = int(ys[iy]), int(xs[ix])
    dy, dx = dy - h if dy > h // 2 else dy, dx - w if dx > w // 2 else dx
    steps = np.arange(-MOTION_UNIT, MOTION_UNIT + 1)
    qy = dy * MOTION_UNIT + steps if reach_y else np.array([0])
    qx = dx * MOTION_UNIT + steps if reach_x else np.array([0])
    ky = np.exp(2j * np.pi * np.outer(qy / MOTION_UNIT, np.fft.fftfreq(h)))         # (ny, H)
    kx = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(w), qx / MOTION_UNIT))         # (W, nx)
    fine = (ky @ cross @ kx).real
    jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return [(dy * MOTION_UNIT, dx * MOTION_UNIT), (int(qy[jy]), int(qx[jx]))]


def global_motion(first: np.ndarray, frame: np.ndarray, max_shift: int = MAX_SHIFT) -> tuple[int, int]:
    """The translation d (quarter pixels) that ``frame`` (uint8 (H, W, 3)) shows against ``first``: the
    candidates are no motion and the whole- and sub-pixel peaks of two phase correlations of their mean of R, G,
    B within +-max_shift pixels, one of the frames as they are and one under a Hann window (which a pan's
    entering and leaving borders disturb less); the one whose alignment (``frame`` moved by -d,
    :func:`shift_subpel`) has the least squared error against ``first`` over the part that every candidate
    leaves inside both frames wins (no motion on ties)."""
    a, b = _gray(first), _gray(frame)
    h, w = a.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    candidates = [(0, 0)]
    for win in (None, window):
        for d in _phase_peaks(a, b, win, max_shift):
            if d not in candidates:
                candidates.append(d)
    if len(candidates) == 1:
        return 0, 0
    my = -(-max(abs(q) for q, _ in candidates) // MOTION_UNIT) + 1
    mx = -(-max(abs(q) for _, q in candidates) // MOTION_UNIT) + 1
    if 2 * my >= h or 2 * mx >= w:
        return 0, 0

    def error(d: tuple[int, int]) -> float:
        m = _gray(shift_subpel(frame, -d[0], -d[1])) - a
        return float(np.mean(m[my:h - my, mx:w - mx] ** 2))

    errors = [error(d) for d in candidates]
    return candidates[int(np.argmin(errors))]


def group_error(frames: list[np.ndarray], motion: list, m: int) -> float:
    """What a group's motions cost, a cheap stand-in for decoding it: the mean squared error (mean of R, G, B)
    of each frame against the average of the aligned frames (each moved by -d_k, :func:`align`, rounded to
    uint8) moved back by +d_k (:func:`move`), away from a border of ``m`` pixels. ``motion``: global motions
    (qy, qx) or fields."""
    total = np.zeros(frames[0].shape, dtype=np.int32)      # sums of whole levels: exact, as a float64 mean's
    for f, d in zip(frames, motion):
        total += align(f, d)
    mean = np.clip(np.rint(total / len(frames)), 0, 255).astype(np.uint8)
    h, w = frames[0].shape[:2]
    return float(np.mean([np.mean((_gray(move(mean, d)) - _gray(f))[m:h - m, m:w - m] ** 2)
                          for f, d in zip(frames, motion)]))


def global_motions(frames: list[np.ndarray]) -> list[tuple[int, int]]:
    """Each frame's :func:`global_motion` against the group's first ((0, 0) for the first)."""
    return [(0, 0)] + [global_motion(frames[0], f) for f in frames[1:]]


def group_motion(frames: list[np.ndarray], found: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """The motions (quarter pixels) of a group's frames against its first: :func:`global_motion` per frame
    (``found``: :func:`global_motions`, when already made), kept only where they lower the group's
    :func:`group_error` (away from a border as wide as the largest motion plus 2 pixels), else none at all."""
    motion = global_motions(frames) if found is None else list(found)
    still = [(0, 0)] * len(frames)
    h, w = frames[0].shape[:2]
    m = 2 + max(max(-(-abs(qy) // MOTION_UNIT), -(-abs(qx) // MOTION_UNIT)) for qy, qx in motion)
    if motion == still or 2 * m >= min(h, w) or group_error(frames, motion, m) >= group_error(frames, still, m):
        return still
    return motion


Motion = tuple[int, int] | mf.Field     # a frame's motion: global (quarter pixels) or a field


def move(img: np.ndarray, motion: Motion) -> np.ndarray:
    """The decoder's step: ``img`` moved by ``motion`` (:func:`shift_subpel` or :func:`motion_field.warp`)."""
    if isinstance(motion, mf.Field):
        return mf.warp(img, motion.nodes, motion.log2b)
    return shift_subpel(img, motion[0], motion[1]) if motion != (0, 0) else img


def align(img: np.ndarray, motion: Motion) -> np.ndarray:
    """The encoder's step, the inverse of :func:`move`: exact for a global motion, approximate for a field."""
    if isinstance(motion, mf.Field):
        return mf.align(img, motion)
    return shift_subpel(img, -motion[0], -motion[1])


def region_motion(frames: list[np.ndarray], motion: list[tuple[int, int]],
                  found: list[tuple[int, int]] | None = None) -> list[Motion]:
    """Per-region motion (session 16): every frame after the first gets a field (:func:`motion_field.estimate`
    around its :func:`global_motion`, ``found`` when already made; one whose nodes all came out equal is that
    global motion); the group takes
    the fields where they lower the group's error (the measure of :func:`group_error` over the whole frame: the
    border counts, and fields move it too) against ``motion``, its :func:`group_motion`, by more than what their
    extra bits cost at the price the estimation uses (:data:`motion_field.LAMBDA` per bit, in squared error
    summed over a frame)."""
    if len(frames) < 2:
        return list(motion)
    fields: list[Motion] = [(0, 0)]
    for f, origin in zip(frames[1:], (global_motions(frames) if found is None else found)[1:]):
        field = mf.estimate(frames[0], f, origin)
        nodes = field.nodes
        fields.append(field if not (nodes == nodes[0, 0]).all() else (int(nodes[0, 0, 0]), int(nodes[0, 0, 1])))
    if all(not isinstance(d, mf.Field) for d in fields):
        return list(motion)
    h, w = frames[0].shape[:2]
    extra_bits = 8 * sum(len(payload_of(a)) - len(payload_of(b)) for a, b in zip(fields[1:], motion[1:]))
    price = mf.LAMBDA * extra_bits / (h * w * len(frames))
    if group_error(frames, fields, 0) + price < group_error(frames, list(motion), 0):
        return fields
    return list(motion)


def payload_of(motion: Motion) -> bytes:
    """A P chunk for ``motion``: :func:`motion_payload` or :func:`motion_field.field_payload`."""
    return mf.field_payload(motion) if isinstance(motion, mf.Field) else motion_payload(*motion)


def motion_payload(qy: int, qx: int) -> bytes:
    """A group's P chunk for a motion of (qy, qx) quarter pixels: empty without motion, 4 bytes (dy, dx as
    big-endian int16, whole pixels) for a whole-pixel one, else 5 bytes: the unit 4, then qy, qx as big-endian
    int16."""
    if (qy, qx) == (0, 0):
        return b""
    if qy % MOTION_UNIT == 0 and qx % MOTION_UNIT == 0:
        return struct.pack(">hh", qy // MOTION_UNIT, qx // MOTION_UNIT)
    return struct.pack(">Bhh", MOTION_UNIT, qy, qx)


def parse_motion(payload: bytes, height: int, width: int) -> Motion:
    """A P chunk's motion: (qy, qx) in quarter pixels (see :func:`motion_payload`), or a field (6 bytes or more
    starting with :data:`motion_field.FIELD_TAG`, :func:`motion_field.parse_field`); or CorruptInputError."""
    corrupt = lambda msg: CorruptInputError(f"corrupt diffae clip: {msg}")  # noqa: E731
    if mf.is_field_payload(payload):
        return mf.parse_field(payload, height, width)
    if len(payload) == 0:
        return 0, 0
    if len(payload) == 4:
        dy, dx = struct.unpack(">hh", payload)
        if (dy, dx) == (0, 0) or abs(dy) >= height or abs(dx) >= width:
            raise corrupt(f"P-frame motion ({dy}, {dx}) for a {width}x{height} frame")
        return dy * MOTION_UNIT, dx * MOTION_UNIT
    if len(payload) == 5:
        unit, qy, qx = struct.unpack(">Bhh", payload)
        if unit != MOTION_UNIT:
            raise corrupt(f"P-frame motion unit 1/{unit} pixel (only 1/{MOTION_UNIT})")
        if qy % MOTION_UNIT == 0 and qx % MOTION_UNIT == 0:
            raise corrupt(f"P-frame motion ({qy}, {qx}) quarter pixels is whole pixels (those have 4 bytes)")
        if abs(qy) >= MOTION_UNIT * height or abs(qx) >= MOTION_UNIT * width:
            raise corrupt(f"P-frame motion ({qy}, {qx}) quarter pixels for a {width}x{height} frame")
        return qy, qx
    raise corrupt(f"a temporal group's P-frame holds {len(payload)} bytes (0, 4 or 5: its motion; 6 or more "
                  f"starting with 0x8k: a field)")


# ------------------------------------------------------------------------------------------------ encoder
class TemporalClipEncoder:
    """The stream encoder of a temporal diffae clip (:meth:`diffcodec.methods.Codec.open_clip_encoder`): RGB
    frames in, one keyframe (the group's latent) and factor - 1 P-frames (each frame's motion against the
    group's first, :func:`group_motion` then :func:`region_motion`) out per group; a last group of
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
        found = global_motions(frames[:real])
        motion = region_motion(frames[:real], group_motion(frames[:real], found), found)
        motion += [motion[-1]] * (self.factor - real)
        aligned = [align(f, d) for f, d in zip(frames, motion)]
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
                      params=header(self.grid, self.steps, self.seed, self.factor, self.temporal, h * w),
                      chunks=[payload(self.grid)])
        return [(True, key, None)] + [(False, payload_of(d), None) for d in motion[1:real]]

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
                 seed: int, factor: int, height: int, width: int, tile: int = 0) -> list[np.ndarray]:
    """A group's keyframe -> its ``factor`` frames, uint8 (height, width, 3) each: one batch, or (header ``tl`` =
    ``tile``) frame after frame in tiles, every frame from the same seed's x_T."""
    q = diffae.decode_latent(encoded.chunks[0], model.latent_shape(height, width), model.tables[g],
                             int(model.supports[g]))
    ys = unpool(temporal, diffae.dequantize(q, model.deltas[g]), factor)
    if tile:
        return [diffae.synthesize_tiled(model, y.cpu().numpy(), g, height, width, steps, seed, tile) for y in ys]
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
    return move(frame, parse_motion(payload, frame.shape[0], frame.shape[1])), reference
