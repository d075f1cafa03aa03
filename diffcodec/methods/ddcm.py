"""DDCM codec: Denoising Diffusion Codebook Models (Ohayon, Manor, Michaeli, Elad, ICML 2025), with
Turbo-DDCM's multi-atom rule (Vaisman, Ohayon, Michaeli, Elad 2025).

The reverse diffusion process of a fixed prior is run with its noise drawn from small seeded codebooks
instead of N(0, I). The encoder, which knows the target x0, picks at every stochastic step the codeword(s)
that push the sample toward it; the file holds only those choices. The decoder replays the same process.

    x_T = seeded N(0, I)                                            (never stored)
    for each of N strided steps t (ancestral DDPM, posterior variance):
        x0_hat = prior(x_t, t)
        r      = x0 - x0_hat                                        (encoder only)
        C_t    = K codewords regenerated from (seed, step)          (codebooks_rng: mshift, iid or shift)
        M = 1: k = argmax_k <C_t[k], r>,                      noise = C_t[k]              (paper DDCM)
        M > 1: top-M k by |<C_t[k], r>|, signs s_k,           noise = sum s_k C_t[k] / sqrt(M) (Turbo-DDCM)
        x_{t_prev} = mean(x_t, x0_hat) + std * noise          (last step: std = 0, no noise, no bits)

    bits per coded step: log2 K (M = 1), log2 C(K, M) + M (M > 1); all steps' choices form one mixed-radix
    integer, coded exactly with uniform symbols (range coder): payload bits = ceil(log2 prod_t A_t).

The prior is "a denoiser + a space" (:class:`Prior`), one per mode:

* :class:`PixelPrior` (``--space pixel``, header model ``pixel-ddpm``): RGB in [-1, 1], the shipped unconditional
  `models/pixel-ddpm`.
* :class:`LatentPrior` (``--space latent``, model ``latent-ddpm``): the same process on the latent of the shipped
  autoencoder `models/latent-ae` (:mod:`diffcodec.latent`): target = the encoded latent (1, c, ceil(H/f),
  ceil(W/f)), x0_hat clamped to [-10, 10] (latents are unit-variance, not in [-1, 1]), the final latent
  decoded by the autoencoder and cropped to H x W. The header pins latent-ddpm; latent-ddpm's manifest pins
  the autoencoder (``autoencoder_sha256``), checked on load.
* :class:`RefinerPrior` (``--base PRESET``, conditional DDCM, model ``opq-refiner``): a low-rate base layer is
  coded with the `opq` method (its own bitstream, decoded exactly as `opq` decodes it) and the codebook steps
  run on the conditional denoiser `models/opq-refiner` whose condition is the decoded base image. The ``D``
  chunk holds ``LEB128(len(base)) || base || indices`` (see :func:`join_layers`).

Grayscale images are replicated to 3 channels, coded as RGB, and decoded back to one channel as
``(2 (R + G + B) + 3) // 6`` (the rounded mean); the opq base layer of a grayscale image is opq's own
one-channel coding, replicated to 3 channels as the condition.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from diffcodec import artifacts, codebooks_rng
from diffcodec.entropy import Decoder, Encoder
from diffcodec.errors import CorruptInputError, ModelError, UnsupportedError, UsageError
from diffcodec.methods import Codec, Encoded, register

METHOD = "ddcm"
DEFAULT_STEPS = 20
DEFAULT_K = 4096
DEFAULT_CODEBOOK = "mshift"      # measured: = iid quality end to end, ~400x cheaper; plain shift loses 0.5-3 dB
DEFAULT_SPACE = "latent"        # measured on Kodak24: above pixel on MS-SSIM at every rate, ~10x faster; with
                                # --base the space is pixel (the only conditional prior is the pixel opq-refiner)
MAX_K = 1 << 20
MAX_ATOMS = 1024
MAX_STEPS = 1000                # also bounded by the prior's schedule T

# space -> model id (the prior's artifact is codebooks/models/<model id>.safetensors)
SPACE_MODELS = {"pixel": "pixel-ddpm", "latent": "latent-ddpm"}
SPACES = ("pixel", "latent")
LATENT_MODELS = ("models/latent-ae", "models/latent-ddpm")     # what --space latent needs installed
LATENT_CLIP = 10.0              # latent x0_hat is clamped to +-10 (latents are unit-variance: a safety net for
                                # eps-priors at the noisiest step, where 1/alpha_t ~ 2e4 on the cosine schedule)
BASE_MODEL = "opq-refiner"      # the conditional prior of --base (pixel space only)
MAX_BASE_BYTES = (1 << 31) - 1

PRESETS: dict[str, tuple[int, int, int]] = {      # name -> (steps N, K, atoms M)
    "n20-k4096-m1": (20, 4096, 1),
    "n20-k4096-m16": (20, 4096, 16),
    "n20-k4096-m64": (20, 4096, 64),
    "n20-k4096-m256": (20, 4096, 256),
    "n3-k4096-m512": (3, 4096, 512),
}
# With --bpp and neither --space nor --base: conditional on the largest of these bases that fits, else latent.
# Measured on Kodak24 at 0.4 bpp: where opq-32-8-8 (+ 3 steps) fits it beats opq-16-8-8 + many coded steps on
# MS-SSIM on every such image, with fewer bits (RESULTS.md). opq-64-16-16 + 3 steps: +0.70 dB / +0.003 MS-SSIM
# over its plain decode. opq-128-32-32 is left out: the opq-refiner was not trained on it.
AUTO_BASES = ("opq-64-16-16", "opq-32-8-8", "opq-16-8-8")
BASE_DEFAULT_PRESET = "n3-k4096-m512"   # the preset with --base (few steps: see below)
# --bpp's first N per mode (default_steps), measured at equal bits: latent N = 50 is +0.25 dB / +0.015 MS-SSIM
# over N = 20 on Kodak24; the conditional refiner is best at N = 3-5 (N = 20: 0.05-0.2 dB worse, 5x slower)
LATENT_DEFAULT_STEPS = 50
BASE_DEFAULT_STEPS = 3
# ... but a budget that buys N = 3 only a few atoms is better spent on nothing: one free refiner step (N = 1, no
# index bits) is the conditional mean. Measured on Kodak24 against N = 1 (K = 4096): M = 16 / 32 lose 0.07 /
# 0.04 dB, M = 64 ties (+0.005 dB, +0.003 bpp), M = 128 wins (+0.06 dB). So --bpp takes N = 1 up to this M.
BASE_FREE_STEP_MAX_ATOMS = 64

# --bpp search grids (see choose_params)
STEPS_GRID = (2, 3, 5, 10, 15, 20, 30, 50, 100, 200)
MAX_AUTO_STEPS = 200            # --bpp grows N up to this when the atoms are saturated
BASE_MAX_AUTO_STEPS = 10        # ... and up to this with a base layer: a refiner step is a full-size pixel UNet pass
                                # (~1.5 s on a CPU at 768x512); at +0.1 bpp N = 10 is 0.09 dB / 0.001 MS-SSIM
                                # below N = 20 (measured). Past it the file lands under the target
K_GRID = (2, 4, 16, 64, 256, 1024, 4096, 16384)
MAX_AUTO_ATOMS = 512           # --bpp picks any M in 1..min(K/2, 512): combining costs ~2 ms per atom at Kodak size

ENCODE_PARAMS = ("k", "steps", "atoms", "codebook", "space", "base", "seed", "bpp", "device", "precision")
PRECISIONS = ("fp32", "bf16")   # the prior's matmuls/convolutions; in the header (`pr`), replayed by the decoder


# ------------------------------------------------------------------------------------------------------
# Combinatorics: subsets <-> ranks, atoms <-> symbols
# ------------------------------------------------------------------------------------------------------


def subset_rank(indices) -> int:
    """Rank of a subset {c_1 < ... < c_M} in the combinatorial number system: sum_i C(c_i, i) (i from 1).
    A bijection from the M-subsets of 0..K-1 onto 0..C(K, M)-1."""
    cs = sorted(int(c) for c in indices)
    if len(set(cs)) != len(cs) or (cs and cs[0] < 0):
        raise ValueError("subset must hold distinct non-negative integers")
    return sum(math.comb(c, i) for i, c in enumerate(cs, start=1))


def subset_unrank(rank: int, k: int, m: int) -> list[int]:
    """Inverse of :func:`subset_rank` for M-subsets of 0..K-1 (ascending list)."""
    if not 0 <= rank < math.comb(k, m):
        raise ValueError(f"rank {rank} outside 0..C({k}, {m})-1")
    out = []
    hi = k - 1
    for i in range(m, 0, -1):
        lo = i - 1                      # C(i-1, i) = 0 <= rank always
        while lo < hi:                  # largest c in [lo, hi] with C(c, i) <= rank
            mid = (lo + hi + 1) // 2
            if math.comb(mid, i) <= rank:
                lo = mid
            else:
                hi = mid - 1
        out.append(lo)
        rank -= math.comb(lo, i)
        hi = lo - 1
    return out[::-1]


def alphabet(k: int, m: int) -> int:
    """Number of distinct choices of one coded step: K (M = 1), C(K, M) * 2^M (M > 1)."""
    return k if m == 1 else math.comb(k, m) << m


def bits_per_step(k: int, m: int) -> float:
    """log2 of :func:`alphabet` (the fixed-length code would use ceil(log2 C(K, M)) + M, at most 1 bit more)."""
    return math.log2(alphabet(k, m))


def atoms_to_symbol(indices, signs, k: int, m: int) -> int:
    """(ascending indices, +-1 signs) -> symbol in 0..alphabet-1: the index (M = 1), else
    rank * 2^M + sum_j [signs[j] < 0] 2^j."""
    if m == 1:
        return int(indices[0])
    bits = sum(1 << j for j, s in enumerate(signs) if s < 0)
    return (subset_rank(indices) << m) | bits


def symbol_to_atoms(symbol: int, k: int, m: int) -> tuple[list[int], list[int]]:
    if m == 1:
        return [int(symbol)], [1]
    rank, bits = symbol >> m, symbol & ((1 << m) - 1)
    return subset_unrank(rank, k, m), [-1 if (bits >> j) & 1 else 1 for j in range(m)]


def select_atoms(scores: np.ndarray, m: int) -> tuple[list[int], list[int]]:
    """M = 1: argmax score (sign +1, the paper's rule). M > 1: the M largest |score| (ties: lower index first),
    ascending, with the signs of their scores (0 -> +1)."""
    if m == 1:
        return [int(np.argmax(scores))], [1]
    order = np.argsort(-np.abs(scores), kind="stable")[:m]
    idx = sorted(int(i) for i in order)
    return idx, [(-1 if scores[i] < 0 else 1) for i in idx]


# ------------------------------------------------------------------------------------------------------
# Payload: the choices of all coded steps as one mixed-radix integer, coded with uniform symbols
# ------------------------------------------------------------------------------------------------------

DIGIT_BITS = 16


def payload_bits(alphabets) -> int:
    """Exact bits of the payload's content: the bit length of prod(A_t) - 1 (0 when nothing is coded)."""
    return (math.prod(alphabets) - 1).bit_length()


def payload_bytes(alphabets) -> int:
    """Bytes of the D chunk: constriction's range coder emits L // 32 + 1 words of 4 bytes for L > 0 bits."""
    bits = payload_bits(alphabets)
    return 0 if bits == 0 else 4 * (bits // 32 + 1)


def encode_payload(symbols, alphabets) -> bytes:
    """V = sum_t v_t prod_{s < t} A_s (first coded step least significant), written as L bits: 16-bit digits
    least significant first, each coded with Uniform(2^16), the last (L mod 16 bits, if any) with
    Uniform(2^(L mod 16))."""
    value = 0
    for v, a in zip(reversed(symbols), reversed(alphabets)):
        if not 0 <= v < a:
            raise ValueError(f"symbol {v} outside 0..{a - 1}")
        value = value * a + v
    bits = payload_bits(alphabets)
    q, r = divmod(bits, DIGIT_BITS)
    raw = np.frombuffer(value.to_bytes(2 * (q + (r > 0)), "little"), dtype="<u2").astype(np.int64)
    enc = Encoder()
    enc.uniform(raw[:q], 1 << DIGIT_BITS)
    if r:
        enc.uniform(raw[q:], 1 << r)
    return enc.finish()


def decode_payload(data: bytes, alphabets) -> list[int]:
    bits = payload_bits(alphabets)
    if len(data) != (0 if bits == 0 else 4 * (bits // 32 + 1)):
        raise CorruptInputError(f"corrupt ddcm payload: {len(data)} bytes, the parameters need "
                                f"{payload_bytes(alphabets)} ({bits} bits)")
    q, r = divmod(bits, DIGIT_BITS)
    dec = Decoder(data)
    digits = [dec.uniform(q, 1 << DIGIT_BITS)]
    if r:
        digits.append(dec.uniform(1, 1 << r))
    value = int.from_bytes(np.concatenate(digits).astype("<u2").tobytes(), "little")
    if value >= math.prod(alphabets):
        raise CorruptInputError("corrupt ddcm payload: coded value out of range")
    out = []
    for a in alphabets:
        value, v = divmod(value, a)
        out.append(v)
    return out


def _varint(n: int) -> bytes:
    """Unsigned LEB128 (7 bits per byte, least significant group first), as the container's chunk lengths."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def join_layers(base: bytes, indices: bytes) -> bytes:
    """The ``D`` chunk of a conditional (``--base``) file: ``LEB128(len(base)) || base || indices``."""
    if len(base) > MAX_BASE_BYTES:
        raise UsageError(f"base layer of {len(base)} bytes is too large")
    return _varint(len(base)) + bytes(base) + bytes(indices)


def split_layers(data: bytes) -> tuple[bytes, bytes]:
    """Inverse of :func:`join_layers`: (base layer bytes, index payload). The length prefix must be a minimal
    LEB128 of at most 5 bytes, < 2^31 and within the chunk, else the file is corrupt."""
    n, shift, pos = 0, 0, 0
    while True:
        if pos >= len(data) or pos >= 5:
            raise CorruptInputError("corrupt ddcm payload: truncated or overlong base-layer length")
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            break
    if (pos > 1 and data[pos - 1] == 0) or n > MAX_BASE_BYTES:
        raise CorruptInputError("corrupt ddcm payload: invalid base-layer length")
    if n > len(data) - pos:
        raise CorruptInputError(f"corrupt ddcm payload: base layer declares {n} bytes but only "
                                f"{len(data) - pos} remain")
    return bytes(data[pos:pos + n]), bytes(data[pos + n:])


# ------------------------------------------------------------------------------------------------------
# Priors: a denoiser + a space
# ------------------------------------------------------------------------------------------------------


class Prior:
    """What DDCM needs from a generative model: the space it works in and an x0-predictor on it
    (``model_fn(x_t, t_batch, cond)``; ``cond`` is None for unconditional priors)."""

    space: str
    model_id: str           # header `model` field
    sha: str                # sha256 of the weights (header `model_sha` = its first 4 bytes)
    schedule: Any
    model_fn: Callable
    device: Any

    def shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the coded tensor for an image of height x width."""
        raise NotImplementedError

    def to_space(self, rgb: np.ndarray):
        """uint8 (H, W, 3) -> target tensor (1, C, h, w) on the device."""
        raise NotImplementedError

    def to_image(self, x, height: int, width: int) -> np.ndarray:
        """Final sample (1, C, h, w) -> uint8 (height, width, 3)."""
        raise NotImplementedError


def _load_unet(model_id: str, device, *, channels: int | None, cond_channels: int, clip, loaded=None):
    """(schedule, x0-predictor, manifest) of denoiser `models/<model_id>` (``loaded``: its load_denoiser tuple),
    checked to map ``channels`` to ``channels`` with ``cond_channels`` condition channels."""
    from diffcodec.diffusion.samplers import x0_predictor
    from diffcodec.diffusion.models import load_denoiser

    model, schedule, parameterization, manifest = loaded or load_denoiser(f"models/{model_id}", device)
    io_ok = model.in_channels == model.out_channels and (channels is None or model.in_channels == channels)
    if not io_ok or model.cond_channels != cond_channels:
        kind = f"a conditional denoiser with {cond_channels} condition channels" if cond_channels else \
            "an unconditional denoiser"
        raise ModelError(f"models/{model_id} is not {kind} on {channels or 'matching'} channels "
                         f"(in {model.in_channels}, out {model.out_channels}, cond {model.cond_channels})")
    return schedule, x0_predictor(model, schedule, parameterization, clip=clip), manifest


class PixelPrior(Prior):
    space = "pixel"

    def __init__(self, model_id: str, device: str):
        self.schedule, self.model_fn, manifest = _load_unet(model_id, device, channels=3, cond_channels=0, clip=1.0)
        self.model_id, self.sha, self.device = model_id, manifest["sha256"], device

    def shape(self, height, width):
        return (3, height, width)

    def to_space(self, rgb):
        from diffcodec.data import to_tensor

        return to_tensor(rgb[None]).to(self.device)

    def to_image(self, x, height=None, width=None):
        from diffcodec.data import to_uint8

        return to_uint8(x)[0]


class RefinerPrior(PixelPrior):
    """Conditional DDCM: the pixel-space process of `models/opq-refiner`, conditioned on the decoded opq base
    layer (uint8 RGB -> [-1, 1], as :func:`diffcodec.methods.opq_refine.refine` conditions it)."""

    def __init__(self, device: str):
        self.schedule, self.model_fn, manifest = _load_unet(BASE_MODEL, device, channels=3, cond_channels=3,
                                                            clip=1.0)
        self.model_id, self.sha, self.device = BASE_MODEL, manifest["sha256"], device

    def condition(self, base_rgb: np.ndarray):
        from diffcodec.data import to_tensor

        return to_tensor(base_rgb[None]).to(self.device)


class LatentPrior(Prior):
    """DDCM in the latent of `models/latent-ae` with the unconditional latent prior `models/latent-ddpm`."""

    space = "latent"

    def __init__(self, device: str):
        from diffcodec.latent import load_latent_prior, load_latent_space

        self.latent = load_latent_space(device=device)
        loaded = load_latent_prior(device=device)
        ae_sha = loaded[3].get("autoencoder_sha256")
        if ae_sha != self.latent.sha256:
            raise ModelError(f"models/{SPACE_MODELS['latent']} was trained on the latents of autoencoder "
                             f"{str(ae_sha)[:8]}..., but the installed models/latent-ae is "
                             f"{self.latent.sha256[:8]}...; install the matching pair (or retrain latent-ddpm "
                             f"with `diffcodec train latent-denoiser`)")
        self.schedule, self.model_fn, manifest = _load_unet(SPACE_MODELS["latent"], device,
                                                            channels=self.latent.channels, cond_channels=0,
                                                            clip=LATENT_CLIP, loaded=loaded)
        self.model_id, self.sha, self.device = SPACE_MODELS["latent"], manifest["sha256"], device

    def shape(self, height, width):
        return tuple(self.latent.latent_shape(height, width))

    def to_space(self, rgb):
        return self.latent.encode_image(rgb).float()

    def to_image(self, x, height, width):
        return self.latent.decode_latent(x, height, width)


def missing_models(space: str) -> list[str]:
    """The artifacts a space needs that are not installed (weights file absent)."""
    names = LATENT_MODELS if space == "latent" else ()
    return [n for n in names if not artifacts.artifact_paths(n)[0].is_file()]


def load_prior(space: str, device: str, base: str | None = None, missing=UsageError) -> Prior:
    """The prior of a mode. Absent latent models raise ``missing`` (UsageError when encoding, UnsupportedError
    when decoding) naming them; a damaged or mismatched model raises ModelError."""
    if space not in SPACE_MODELS:
        raise UsageError(f"unknown space {space!r} (use pixel or latent)")
    if base is not None:
        if space != "pixel":
            raise UsageError("--base (conditional ddcm) works in --space pixel only")
        return RefinerPrior(device)
    if space == "latent":
        absent = missing_models(space)
        if absent:
            raise missing(f"--space latent needs the latent models {' and '.join(absent)}, which are not installed "
                          f"in {artifacts.codebooks_dir()} (train them with `diffcodec train autoencoder` and "
                          f"`diffcodec train latent-denoiser`), or use --space pixel")
        return LatentPrior(device)
    return PixelPrior(SPACE_MODELS[space], device)


def native_bf16(device) -> bool:
    """Whether ``device`` runs bf16 matmuls/convolutions natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX
    that oneDNN uses); elsewhere bf16 autocast works but is emulated and slow."""
    import torch

    dev = torch.device(device)
    try:
        if dev.type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        return dev.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_precision(prior: Prior) -> str:
    """``--param precision=auto``: bf16 for the pixel-space priors (pixel-ddpm, opq-refiner) where the device
    has native bf16 (measured on two Kodak crops: 1.45x faster end to end, -0.03..-0.06 dB), else fp32; the
    latent prior stays fp32 (its network is small next to the autoencoder)."""
    return "bf16" if prior.space == "pixel" and native_bf16(prior.device) else "fp32"


def _resolve_device(device: str | None) -> str:
    from diffcodec.api import resolve_device

    return resolve_device(device or "auto")


# ------------------------------------------------------------------------------------------------------
# The base layer of conditional DDCM: an opq bitstream
# ------------------------------------------------------------------------------------------------------


@dataclass
class BaseLayer:
    preset: str             # opq preset, e.g. "opq-16-8-8"
    sha: int                # first 4 bytes of the opq codebook file's sha256
    data: bytes             # opq's payload (its one D chunk)
    image: np.ndarray       # the decoded base image, uint8 (H, W, C) as opq decodes it


def check_base(base) -> str:
    from diffcodec.methods.opq import PRESETS as OPQ_PRESETS

    if not isinstance(base, str) or base not in OPQ_PRESETS:
        raise UsageError(f"unknown --base {base!r}: the base layer is an opq preset "
                         f"({', '.join(OPQ_PRESETS)})")
    return base


def code_base(image: np.ndarray, preset: str) -> BaseLayer:
    """Code ``image`` (H, W, 1 or 3) with opq ``preset``; the base image is opq's own decode of those bytes."""
    from diffcodec.methods.opq import OPQCodec

    enc = OPQCodec().compress(image, check_base(preset))
    if len(enc.chunks) != 1:
        raise ModelError("opq produced more than one payload chunk")
    h, w, c = image.shape
    return BaseLayer(preset, enc.model_sha, enc.chunks[0], decode_base(enc.chunks[0], preset, enc.model_sha, h, w, c))


def decode_base(data: bytes, preset: str, sha: int, height: int, width: int, channels: int) -> np.ndarray:
    from diffcodec.methods import Encoded as _Encoded
    from diffcodec.methods.opq import OPQCodec

    enc = _Encoded(model=preset.removeprefix("opq-"), model_sha=sha, chunks=[data])
    return OPQCodec().decompress(enc, height, width, channels)


# ------------------------------------------------------------------------------------------------------
# Parameters and their header form
# ------------------------------------------------------------------------------------------------------


@dataclass
class DDCMParams:
    steps: int = DEFAULT_STEPS          # N strided timesteps (N - 1 coded)
    k: int = DEFAULT_K                  # codebook size K
    atoms: int = 1                      # M
    codebook: str = DEFAULT_CODEBOOK    # mshift | iid | shift
    space: str = DEFAULT_SPACE
    seed: int = 0
    base: str | None = None             # opq preset of the base layer (conditional ddcm), None: unconditional
    base_sha: int = 0                   # first 4 bytes of that opq codebook's sha256
    precision: str = "fp32"             # fp32 | bf16 (bf16 autocast of the prior's network)

    def check(self, err=UsageError) -> DDCMParams:
        def _int(name, v, lo, hi):
            if type(v) is not int or not lo <= v <= hi:
                raise err(f"ddcm {name} must be an integer in {lo}..{hi}, got {v!r}")
        _int("steps", self.steps, 1, MAX_STEPS)
        _int("k", self.k, 1, MAX_K)
        _int("atoms", self.atoms, 1, min(self.k, MAX_ATOMS))
        _int("seed", self.seed, 0, codebooks_rng.MAX_SEED)
        if self.codebook not in codebooks_rng.CODEBOOKS:
            raise err(f"ddcm codebook must be one of {', '.join(codebooks_rng.CODEBOOKS)}, got {self.codebook!r}")
        if self.space not in SPACES:
            raise err(f"ddcm space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.precision not in PRECISIONS:
            raise err(f"ddcm precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.base is not None:
            from diffcodec.methods.opq import PRESETS as OPQ_PRESETS

            if not isinstance(self.base, str) or self.base not in OPQ_PRESETS:
                raise err(f"ddcm base must be an opq preset ({', '.join(OPQ_PRESETS)}), got {self.base!r}")
            _int("base codebook sha prefix", self.base_sha, 0, 2**32 - 1)
            if self.space != "pixel":
                raise err(f"ddcm base layer works in the pixel space only, got space {self.space!r}")
        return self

    @property
    def model_id(self) -> str:
        """The header `model` these parameters go with: the prior of the space, or the refiner with a base."""
        return BASE_MODEL if self.base is not None else SPACE_MODELS[self.space]

    def header(self) -> dict:
        """The header's `params` map (the codebook seed lives in the header's `rng` map: :meth:`rng_spec`)."""
        out = {"n": self.steps, "k": self.k, "m": self.atoms, "cb": self.codebook, "sp": self.space}
        if self.base is not None:
            out.update(b=self.base, bs=self.base_sha)
        if self.precision != "fp32":
            out["pr"] = self.precision
        return out

    def rng_spec(self) -> dict:
        return {"g": codebooks_rng.GENERATOR_ID, "s": self.seed}

    @classmethod
    def from_header(cls, params: dict, rng: dict | None) -> DDCMParams:
        try:
            if type(rng) is not dict:
                raise CorruptInputError("corrupt ddcm header: the rng map is missing")
            if rng.get("g") != codebooks_rng.GENERATOR_ID:
                raise UnsupportedError(f"ddcm file uses random generator {rng.get('g')!r}; this diffcodec has "
                                       f"{codebooks_rng.GENERATOR_ID!r}")
            if "bs" in params and "b" not in params:
                raise CorruptInputError("corrupt ddcm header: parameter 'bs' without 'b'")
            base = params.get("b")
            p = cls(steps=params["n"], k=params["k"], atoms=params["m"], codebook=params["cb"],
                    space=params["sp"], seed=rng["s"], base=base, base_sha=params["bs"] if base is not None else 0,
                    precision=params.get("pr", "fp32"))
        except KeyError as e:
            raise CorruptInputError(f"corrupt ddcm header: parameter {e} missing") from None
        return p.check(lambda msg: CorruptInputError(f"corrupt ddcm header: {msg}"))


def _coded_steps(schedule, steps: int) -> tuple[list[int], list[bool]]:
    """The strided timesteps and, per step, whether it is stochastic (posterior variance > 0) = coded."""
    from diffcodec.diffusion.samplers import strided_timesteps

    ts = strided_timesteps(schedule.T, steps)
    coded = [schedule.posterior(t, ts[i + 1] if i + 1 < len(ts) else -1)[2] > 0 for i, t in enumerate(ts)]
    return ts, coded


def file_bytes(p: DDCMParams, n_coded: int, height: int, width: int, channels: int, model_id: str,
               model_sha: int, base_bytes: int = 0) -> int:
    """Exact size of the .ddc file for these parameters (container framing + header + payload); with a base
    layer (``p.base``) the payload is LEB128(base_bytes) + base_bytes + the index payload."""
    from diffcodec import container

    header = container.Header(method=METHOD, model=model_id, model_sha=model_sha, width=width, height=height,
                              pixel_format=container.pixel_format_code(channels), params=p.header(), rng=p.rng_spec())
    size = payload_bytes([alphabet(p.k, p.atoms)] * n_coded)
    if p.base is not None:
        size += len(_varint(base_bytes)) + base_bytes
    return len(container.write_container(header, [bytes(size)]))


def default_steps(p: DDCMParams) -> int:
    """The step count --bpp starts from, per mode (measured at equal bits, benchmarks/ddcm_steps.py): the
    conditional refiner does best with few steps, the unconditional priors with many."""
    if p.base is not None:
        return BASE_DEFAULT_STEPS
    return LATENT_DEFAULT_STEPS if p.space == "latent" else DEFAULT_STEPS


class BelowBaseLayerError(UsageError):
    """--bpp is under the size of the base layer alone (the automatic mode then falls back to the latent space)."""


def choose_params(target_bpp: float, height: int, width: int, channels: int, *, n_coded: Callable[[int], int],
                  model_id: str, model_sha: int = 0, steps: int | None = None, k: int | None = None,
                  atoms: int | None = None, template: DDCMParams | None = None, base_bytes: int = 0,
                  max_steps: int = MAX_STEPS) -> DDCMParams:
    """Pick (steps N, K, atoms M) so that the whole file lands at or under ``target_bpp``; values given by the
    caller stay fixed, the other fields (codebook, space, seed, base, precision) come from ``template``.
    Rule (fill with atoms first, then steps, then shrink):

    1. N = steps or :func:`default_steps`, K = k or 4096; take the largest M in 1..min(K/2, MAX_AUTO_ATOMS)
       (or M = atoms) that fits (the file size grows with M there, so a bisection finds it).
    2. If it fits but M cannot grow (atoms fixed, or M = min(K/2, MAX_AUTO_ATOMS) fits) and N is free: the
       largest N in N..MAX_AUTO_STEPS (BASE_MAX_AUTO_STEPS with a base layer; bounded by ``max_steps``, the
       prior's T) that still fits with that M.
    3. If nothing fits and N is free: the largest N in STEPS_GRID below it where some M fits (largest such M).
    4. If still nothing and K is free: the largest K in K_GRID below it at N = 2 (or the fixed N).
    5. With a base layer only (``base``, of ``base_bytes`` bytes, counted in every size): if still nothing and N
       is free, N = 1 (no coded step: one refiner step on the base layer, no index bits). Also N = 1 when
       N, K and M are all free and step 1 gives M <= BASE_FREE_STEP_MAX_ATOMS (measured no better than N = 1).
    Raises UsageError when even the smallest choice is over the target (naming the base layer when it alone,
    with the header and no index bits, is over).
    """
    budget = target_bpp * height * width / 8.0   # bytes
    template = template or DDCMParams()
    base = template.base

    def params(n, kk, m):
        return replace(template, steps=n, k=kk, atoms=m)

    def size(n, kk, m):
        return file_bytes(params(n, kk, m), n_coded(n), height, width, channels, model_id, model_sha, base_bytes)

    def max_m(kk):
        return max(1, min(kk // 2, MAX_AUTO_ATOMS))

    def largest_fitting(lo, hi, size_of):
        """The largest v in lo..hi with size_of(v) within budget, given size_of(lo) is (sizes grow with v)."""
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if size_of(mid) <= budget else (lo, mid - 1)
        return lo

    def best_m(n, kk):
        if atoms is not None:
            return atoms if atoms <= kk and size(n, kk, atoms) <= budget else None
        if size(n, kk, 1) > budget:
            return None
        return largest_fitting(1, max_m(kk), lambda m: size(n, kk, m))

    n0, k0 = steps or min(default_steps(template), max_steps), k or DEFAULT_K
    m = best_m(n0, k0)
    if m is not None and base is not None and m <= BASE_FREE_STEP_MAX_ATOMS and not (steps or k or atoms):
        return params(1, k0, 1)
    if m is not None:
        saturated = atoms is not None or m == max_m(k0)
        n = n0
        if saturated and steps is None:
            grow_to = BASE_MAX_AUTO_STEPS if base is not None else MAX_AUTO_STEPS
            n = largest_fitting(n0, max(n0, min(grow_to, max_steps)), lambda nn: size(nn, k0, m))
        return params(n, k0, m)
    if steps is None:
        for cand in sorted((s for s in STEPS_GRID if s < n0), reverse=True):
            m = best_m(cand, k0)
            if m is not None:
                return params(cand, k0, m)
    if k is None:
        n = steps or STEPS_GRID[0]
        for cand in sorted((x for x in K_GRID if x < k0), reverse=True):
            m = best_m(n, cand)
            if m is not None:
                return params(n, cand, m)
    if base is not None:
        m1 = atoms or 1
        ks = [kk for kk in ([k0] if k is not None else sorted({k0, *K_GRID}, reverse=True)) if kk >= m1]
        if steps is None:
            for kk in ks:
                if size(1, kk, m1) <= budget:
                    return params(1, kk, m1)
        alone = min(size(1, kk, m1) for kk in ks) if ks else size(1, k0, m1)
        if alone > budget:
            raise BelowBaseLayerError(
                f"--bpp {target_bpp:g} is below the base layer alone: --base {base} takes {base_bytes} bytes, the "
                f"file with no ddcm index {alone} bytes = {alone * 8 / (height * width):.4f} bpp for this "
                f"{width}x{height} image; choose a smaller --base preset or a higher --bpp")
    smallest = size(steps or STEPS_GRID[0], k or K_GRID[0], atoms or 1)
    with_base = f", with the {base_bytes}-byte {base} base layer" if base is not None else ""
    raise UsageError(f"--bpp {target_bpp:g} is below what ddcm can reach for a {width}x{height} image "
                     f"(smallest file {smallest} bytes = {smallest * 8 / (height * width):.4f} bpp{with_base})")


# ------------------------------------------------------------------------------------------------------
# The coding loop (shared by encoder, decoder and compressed generation)
# ------------------------------------------------------------------------------------------------------


@dataclass
class RunStats:
    steps: int = 0
    coded_steps: int = 0
    model_s: float = 0.0        # denoiser forward passes (+ the step arithmetic)
    codebook_s: float = 0.0     # codebook generation, scoring, selection and noise assembly
    total_s: float = 0.0
    symbols: list = field(default_factory=list)


def run_process(prior: Prior, p: DDCMParams, shape, choose, cond=None) -> tuple[Any, RunStats]:
    """Run the coded reverse process; ``choose(step_index, codebook, x0_hat) -> symbol`` makes each coded
    step's choice; ``cond`` (1, 3, H, W) is the condition of a conditional prior (the decoded base layer).
    Returns the final sample (1, C, h, w) and the stats (with the symbols, in step order)."""
    import torch

    from diffcodec.diffusion.samplers import ddpm_step

    t_start = time.perf_counter()
    stats = RunStats()
    ts, _ = _coded_steps(prior.schedule, p.steps)
    x = torch.from_numpy(codebooks_rng.initial_noise(p.seed, shape))[None].to(prior.device)

    def sampler(i, t, x_t, x0_hat, mean, std):
        t0 = time.perf_counter()
        cb = codebooks_rng.make_codebook(p.codebook, p.seed, i, p.k, shape)
        v = choose(i, cb, x0_hat)
        idx, signs = symbol_to_atoms(v, p.k, p.atoms)
        stats.symbols.append(v)
        noise = torch.from_numpy(cb.combine(idx, signs))[None].to(prior.device)
        stats.codebook_s += time.perf_counter() - t0
        return noise

    from diffcodec.progress import bar

    dev = torch.device(prior.device)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=p.precision == "bf16"):
        for i, t in enumerate(bar(ts, desc="ddcm", unit="step")):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddpm_step(prior.model_fn, x, t, t_prev, prior.schedule, sampler, cond=cond, step_index=i).x_prev
    stats.steps, stats.coded_steps = len(ts), len(stats.symbols)
    stats.total_s = time.perf_counter() - t_start
    stats.model_s = stats.total_s - stats.codebook_s
    return x, stats


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
        raise UsageError("ddcm codes uint8 images of shape (H, W, 1) or (H, W, 3)")
    from diffcodec.data import gray_to_rgb

    return gray_to_rgb(image)


@register
class DDCMCodec(Codec):
    """Denoising Diffusion Codebook Models: the noise of a pretrained diffusion prior's reverse process is picked
    from seeded codebooks toward the target; the file holds the picks (options: k, steps, atoms, codebook,
    space (pixel | latent), base (an opq preset: conditional ddcm on an opq base layer), seed, bpp, device)."""

    name = METHOD
    presets = {
        "n20-k4096-m1": "20 steps, K=4096, 1 atom/step (paper DDCM): 228 payload bits per image",
        "n20-k4096-m16": "20 steps, K=4096, 16 atoms/step (Turbo-DDCM rule): 3111 payload bits per image",
        "n20-k4096-m64": "20 steps, K=4096, 64 atoms/step: 10171 payload bits per image",
        "n20-k4096-m256": "20 steps, K=4096, 256 atoms/step: 31013 payload bits per image",
        "n3-k4096-m512": "3 steps, K=4096, 512 atoms/step (the default with --base): 5466 payload bits per image",
    }
    default_preset = "n20-k4096-m64"

    def __init__(self):
        self.last_stats: RunStats | None = None

    # ---------------------------------------------------------------- encoding
    def _params(self, image: np.ndarray, preset: str | None,
                params: dict) -> tuple[DDCMParams, Prior, BaseLayer | None]:
        """The mode and parameters of an encode. With ``bpp`` and neither ``space`` nor ``base`` the mode is
        automatic: conditional on the largest AUTO_BASES layer that fits under the target (measured best
        there), else the latent space."""
        unknown = set(params) - set(ENCODE_PARAMS)
        if unknown:
            raise UsageError(f"ddcm takes no parameter(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(ENCODE_PARAMS)})")
        if params.get("bpp") is not None and params.get("space") is None and params.get("base") is None:
            for base in AUTO_BASES:
                try:
                    return self._mode_params(image, preset, {**params, "base": base})
                except BelowBaseLayerError:
                    pass
        return self._mode_params(image, preset, params)

    def _mode_params(self, image: np.ndarray, preset: str | None,
                     params: dict) -> tuple[DDCMParams, Prior, BaseLayer | None]:
        preset = preset or (BASE_DEFAULT_PRESET if params.get("base") is not None else self.default_preset)
        if preset not in PRESETS:
            raise UsageError(f"unknown ddcm preset {preset!r} (available: {', '.join(PRESETS)})")
        base = params.get("base")
        space = params.get("space") or ("pixel" if base is not None else DEFAULT_SPACE)
        codebook = params.get("codebook") or DEFAULT_CODEBOOK
        seed = params.get("seed")
        seed = 0 if seed is None else seed
        if base is not None:
            check_base(base)
            if space != "pixel":
                raise UsageError("--base (conditional ddcm) works in --space pixel only; a latent conditional "
                                 "prior does not exist yet")
        precision = params.get("precision") or "auto"
        template = DDCMParams(codebook=codebook, space=space, seed=seed, base=base,
                              precision="fp32" if precision == "auto" else precision)
        template.check()
        prior = load_prior(space, _resolve_device(params.get("device")), base=base)
        layer = code_base(image, base) if base is not None else None
        template = replace(template, base_sha=0 if layer is None else layer.sha,
                           precision=auto_precision(prior) if precision == "auto" else precision)
        bpp = params.get("bpp")
        h, w, c = image.shape
        if bpp is not None:
            if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
                raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
            p = choose_params(float(bpp), h, w, c, n_coded=lambda n: sum(_coded_steps(prior.schedule, n)[1]),
                              model_id=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha),
                              steps=params.get("steps"), k=params.get("k"), atoms=params.get("atoms"),
                              template=template, base_bytes=0 if layer is None else len(layer.data),
                              max_steps=prior.schedule.T)
        else:
            n0, k0, m0 = PRESETS[preset]
            get = lambda key, default: default if params.get(key) is None else params[key]
            p = replace(template, steps=get("steps", n0), k=get("k", k0), atoms=get("atoms", m0))
            if params.get("k") is not None and params.get("atoms") is None:
                p.atoms = min(p.atoms, max(1, p.k // 2))
        p.check()
        if p.steps > prior.schedule.T:
            raise UsageError(f"--steps {p.steps} exceeds the prior's {prior.schedule.T} timesteps")
        return p, prior, layer

    def compress_with_reconstruction(self, image: np.ndarray, preset: str | None = None,
                                     **params) -> tuple[Encoded, np.ndarray]:
        p, prior, layer = self._params(image, preset, params)
        h, w, channels = image.shape
        rgb = _to_rgb(image)
        target = prior.to_space(rgb)
        shape = tuple(target.shape[1:])
        cond = None if layer is None else prior.condition(_to_rgb(layer.image))

        import torch

        def choose(i, cb, x0_hat):
            r = (target - x0_hat)[0].to("cpu", dtype=torch.float64).numpy()
            idx, signs = select_atoms(cb.scores(r), p.atoms)
            return atoms_to_symbol(idx, signs, p.k, p.atoms)

        x, stats = run_process(prior, p, shape, choose, cond=cond)
        self.last_stats = stats
        payload = encode_payload(stats.symbols, [alphabet(p.k, p.atoms)] * len(stats.symbols))
        if layer is not None:
            payload = join_layers(layer.data, payload)
        encoded = Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=p.header(),
                          rng=p.rng_spec(), chunks=[payload])
        from diffcodec.data import rgb_to_channels

        return encoded, rgb_to_channels(prior.to_image(x, h, w), channels)

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        return self.compress_with_reconstruction(image, preset, **params)[0]

    # ---------------------------------------------------------------- decoding
    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        """Options: device ('auto' | 'cpu' | 'cuda'; default 'auto', as `encode`)."""
        unknown = set(options) - {"device"}
        if unknown:
            raise UsageError(f"ddcm decoding takes no option(s) {', '.join(sorted(unknown))}")
        p = DDCMParams.from_header(encoded.params, encoded.rng)
        if p.base is None and missing_models(p.space):
            raise UnsupportedError(f"file codes in the {p.space} space, which needs "
                                   f"{' and '.join(missing_models(p.space))}; they are not installed in "
                                   f"{artifacts.codebooks_dir()}, so this diffcodec cannot decode it")
        if encoded.model != p.model_id:
            what = f"base layer {p.base!r}" if p.base is not None else f"space {p.space!r}"
            raise CorruptInputError(f"corrupt ddcm header: model {encoded.model!r} does not match {what}")
        if len(encoded.chunks) != 1:
            raise CorruptInputError("ddcm file must hold exactly one payload chunk")
        base_data, index_data = (None, encoded.chunks[0]) if p.base is None else split_layers(encoded.chunks[0])
        prior = load_prior(p.space, _resolve_device(options.get("device")), base=p.base, missing=UnsupportedError)
        if artifacts.sha_prefix32(prior.sha) != encoded.model_sha:
            raise ModelError(f"file was encoded with a different {prior.model_id} model (sha256 prefix "
                             f"{encoded.model_sha:08x}, installed {prior.sha[:8]}); decode it with the model "
                             f"that wrote it")
        if p.steps > prior.schedule.T:
            raise CorruptInputError(f"corrupt ddcm header: {p.steps} steps, the prior has {prior.schedule.T}")
        n_coded = sum(_coded_steps(prior.schedule, p.steps)[1])
        symbols = decode_payload(index_data, [alphabet(p.k, p.atoms)] * n_coded)
        cond = None
        if p.base is not None:
            base_image = decode_base(base_data, p.base, p.base_sha, height, width, channels)
            cond = prior.condition(_to_rgb(base_image))
        shape = prior.shape(height, width)
        it = iter(symbols)
        x, stats = run_process(prior, p, shape, lambda i, cb, x0_hat: next(it), cond=cond)
        self.last_stats = stats
        from diffcodec.data import rgb_to_channels

        return rgb_to_channels(prior.to_image(x, height, width), channels)


def describe(params: dict, payloads: list[bytes]) -> dict:
    """What `diffcodec info` shows about a ddcm file without decoding it: the mode and, with a base layer, how
    the payload splits into base and index bytes (None values where the file is malformed)."""
    space = params.get("sp") if isinstance(params, dict) else None
    base = params.get("b") if isinstance(params, dict) else None
    out = {"space": space, "base": base, "base_bytes": None, "index_bytes": None}
    if len(payloads) == 1:
        if base is None:
            out["base_bytes"], out["index_bytes"] = 0, len(payloads[0])
        else:
            try:
                b, idx = split_layers(payloads[0])
                out["base_bytes"], out["index_bytes"] = len(b), len(idx)
            except CorruptInputError:
                pass
    return out


# ------------------------------------------------------------------------------------------------------
# Compressed generation
# ------------------------------------------------------------------------------------------------------


def generate(height: int = 64, width: int = 64, *, k: int = DEFAULT_K, steps: int = DEFAULT_STEPS, atoms: int = 1,
             codebook: str = DEFAULT_CODEBOOK, space: str = "pixel", seed: int = 0,
             device: str | None = "auto") -> tuple[bytes, np.ndarray]:
    """An unconditional sample whose codebook choices are random (seeded by ``seed``) in ``space`` (pixel or
    latent): returns the .ddc bytes (decoding them reproduces the sample) and the sample, uint8
    (height, width, 3)."""
    from diffcodec import container

    p = DDCMParams(steps=steps, k=k, atoms=atoms, codebook=codebook, space=space, seed=seed).check()
    if not (1 <= height <= container.MAX_DIMENSION and 1 <= width <= container.MAX_DIMENSION):
        raise UsageError(f"--size must be 1..{container.MAX_DIMENSION} pixels, got {width}x{height}")
    prior = load_prior(space, _resolve_device(device))
    if p.steps > prior.schedule.T:
        raise UsageError(f"--steps {p.steps} exceeds the prior's {prior.schedule.T} timesteps")
    a = alphabet(p.k, p.atoms)

    def choose(i, cb, x0_hat):   # not normative: any choice decodes; these are uniform and repeatable
        return random.Random(codebooks_rng.philox_key(seed, codebooks_rng.KIND_CHOICE, i, 0)).randrange(a)

    x, stats = run_process(prior, p, prior.shape(height, width), choose)
    payload = encode_payload(stats.symbols, [a] * len(stats.symbols))
    header = container.Header(method=METHOD, model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha),
                              width=width, height=height, pixel_format=0, params=p.header(), rng=p.rng_spec())
    return container.write_container(header, [payload]), prior.to_image(x, height, width)
