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

The prior is "a denoiser + a space" (:class:`Prior`): :class:`PixelPrior` runs on RGB in [-1, 1] with the
shipped unconditional `models/pixel-ddpm`. A latent prior (autoencoder + latent denoiser, issue 4) and
conditional priors (a coded base layer as the denoiser's condition) plug in as further `Prior`s.

Grayscale images are replicated to 3 channels, coded as RGB, and decoded back to one channel as
``(2 (R + G + B) + 3) // 6`` (the rounded mean).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
DEFAULT_SPACE = "pixel"
MAX_K = 1 << 20
MAX_ATOMS = 1024
MAX_STEPS = 1000                # also bounded by the prior's schedule T

# space -> model id (the prior's artifact is codebooks/models/<model id>.safetensors)
SPACE_MODELS = {"pixel": "pixel-ddpm"}
FUTURE_SPACES = {"latent": "latent-ae + latent-ddpm (issue 4)"}
SPACES = ("pixel", "latent")

PRESETS: dict[str, tuple[int, int, int]] = {      # name -> (steps N, K, atoms M)
    "n20-k4096-m1": (20, 4096, 1),
    "n20-k4096-m16": (20, 4096, 16),
    "n20-k4096-m64": (20, 4096, 64),
    "n20-k4096-m256": (20, 4096, 256),
}

# --bpp search grids (see choose_params)
STEPS_GRID = (2, 3, 5, 10, 15, 20, 30, 50, 100, 200)
K_GRID = (2, 4, 16, 64, 256, 1024, 4096, 16384)
ATOMS_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)

ENCODE_PARAMS = ("k", "steps", "atoms", "codebook", "space", "seed", "bpp", "device")


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


# ------------------------------------------------------------------------------------------------------
# Priors: a denoiser + a space
# ------------------------------------------------------------------------------------------------------


class Prior:
    """What DDCM needs from a generative model: the space it works in and an x0-predictor on it."""

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

    def to_image(self, x) -> np.ndarray:
        """Final sample (1, C, h, w) -> uint8 (H, W, 3)."""
        raise NotImplementedError


class PixelPrior(Prior):
    space = "pixel"

    def __init__(self, model_id: str, device: str):
        from diffcodec.diffusion.samplers import x0_predictor
        from diffcodec.diffusion.train import load_denoiser

        model, schedule, parameterization, manifest = load_denoiser(f"models/{model_id}", device)
        if model.in_channels != 3 or model.out_channels != 3 or model.cond_channels:
            raise ModelError(f"models/{model_id} is not an unconditional RGB denoiser")
        self.model_id, self.sha, self.schedule, self.device = model_id, manifest["sha256"], schedule, device
        self.model_fn = x0_predictor(model, schedule, parameterization, clip=1.0)

    def shape(self, height, width):
        return (3, height, width)

    def to_space(self, rgb):
        from diffcodec.data import to_tensor

        return to_tensor(rgb[None]).to(self.device)

    def to_image(self, x):
        from diffcodec.data import to_uint8

        return to_uint8(x)[0]


def load_prior(space: str, device: str) -> Prior:
    if space in FUTURE_SPACES:
        raise UsageError(f"--space {space} needs the latent models {FUTURE_SPACES[space]}, which this "
                         f"diffcodec does not have yet; use --space pixel")
    if space not in SPACE_MODELS:
        raise UsageError(f"unknown space {space!r} (use pixel or latent)")
    return PixelPrior(SPACE_MODELS[space], device)


def _resolve_device(device: str | None) -> str:
    from diffcodec.api import resolve_device

    return resolve_device(device or "auto")


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
        return self

    def header(self) -> dict:
        """The header's `params` map (the codebook seed lives in the header's `rng` map: :meth:`rng_spec`)."""
        return {"n": self.steps, "k": self.k, "m": self.atoms, "cb": self.codebook, "sp": self.space}

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
            p = cls(steps=params["n"], k=params["k"], atoms=params["m"], codebook=params["cb"],
                    space=params["sp"], seed=rng["s"])
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
               model_sha: int) -> int:
    """Exact size of the .ddc file for these parameters (container framing + header + payload)."""
    from diffcodec import container

    header = container.Header(method=METHOD, model=model_id, model_sha=model_sha, width=width, height=height,
                              pixel_format=container.pixel_format_code(channels), params=p.header(), rng=p.rng_spec())
    size = payload_bytes([alphabet(p.k, p.atoms)] * n_coded)
    return len(container.write_container(header, [bytes(size)]))


def choose_params(target_bpp: float, height: int, width: int, channels: int, *, n_coded: Callable[[int], int],
                  model_id: str, model_sha: int = 0, steps: int | None = None, k: int | None = None,
                  atoms: int | None = None, codebook: str = DEFAULT_CODEBOOK, space: str = DEFAULT_SPACE,
                  seed: int = 0) -> DDCMParams:
    """Pick (steps N, K, atoms M) so that the whole file lands at or under ``target_bpp``; values given by the
    caller stay fixed. Rule (fill with atoms first, then steps, then shrink):

    1. N = steps or 20, K = k or 4096; take the largest M in ATOMS_GRID (M <= K/2, or M = atoms) that fits.
    2. If it fits but M cannot grow (atoms fixed, or the grid's largest M fits) and N is free: the largest N in
       STEPS_GRID >= N that still fits with that M.
    3. If nothing fits and N is free: the largest N in STEPS_GRID below it where some M fits (largest such M).
    4. If still nothing and K is free: the largest K in K_GRID below it at N = 2 (or the fixed N).
    Raises UsageError when even the smallest choice is over the target.
    """
    budget = target_bpp * height * width / 8.0   # bytes

    def size(n, kk, m):
        p = DDCMParams(n, kk, m, codebook, space, seed)
        return file_bytes(p, n_coded(n), height, width, channels, model_id, model_sha)

    def best_m(n, kk):
        ms = [atoms] if atoms is not None else [m for m in ATOMS_GRID if m == 1 or m <= kk // 2]
        fit = [m for m in ms if m <= kk and size(n, kk, m) <= budget]
        return max(fit) if fit else None

    n0, k0 = steps or DEFAULT_STEPS, k or DEFAULT_K
    m = best_m(n0, k0)
    if m is not None:
        saturated = atoms is not None or m == max(x for x in ATOMS_GRID if x == 1 or x <= k0 // 2)
        n = n0
        if saturated and steps is None:
            for cand in (s for s in STEPS_GRID if s > n0):
                if size(cand, k0, m) <= budget:
                    n = cand
        return DDCMParams(n, k0, m, codebook, space, seed)
    if steps is None:
        for cand in sorted((s for s in STEPS_GRID if s < n0), reverse=True):
            m = best_m(cand, k0)
            if m is not None:
                return DDCMParams(cand, k0, m, codebook, space, seed)
    if k is None:
        n = steps or STEPS_GRID[0]
        for cand in sorted((x for x in K_GRID if x < k0), reverse=True):
            m = best_m(n, cand)
            if m is not None:
                return DDCMParams(n, cand, m, codebook, space, seed)
    smallest = size(steps or STEPS_GRID[0], k or K_GRID[0], atoms or 1)
    raise UsageError(f"--bpp {target_bpp:g} is below what ddcm can reach for a {width}x{height} image "
                     f"(smallest file {smallest} bytes = {smallest * 8 / (height * width):.4f} bpp)")


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


def run_process(prior: Prior, p: DDCMParams, shape, choose) -> tuple[Any, RunStats]:
    """Run the coded reverse process; ``choose(step_index, codebook, x0_hat) -> symbol`` makes each coded
    step's choice. Returns the final sample (1, C, h, w) and the stats (with the symbols, in step order)."""
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

    with torch.inference_mode():
        for i, t in enumerate(bar(ts, desc="ddcm", unit="step")):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddpm_step(prior.model_fn, x, t, t_prev, prior.schedule, sampler, step_index=i).x_prev
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
    space, seed, bpp, device)."""

    name = METHOD
    presets = {
        "n20-k4096-m1": "20 steps, K=4096, 1 atom/step (paper DDCM): 228 payload bits per image",
        "n20-k4096-m16": "20 steps, K=4096, 16 atoms/step (Turbo-DDCM rule): 3111 payload bits per image",
        "n20-k4096-m64": "20 steps, K=4096, 64 atoms/step: 10171 payload bits per image",
        "n20-k4096-m256": "20 steps, K=4096, 256 atoms/step: 31013 payload bits per image",
    }
    default_preset = "n20-k4096-m64"

    def __init__(self):
        self.last_stats: RunStats | None = None

    # ---------------------------------------------------------------- encoding
    def _params(self, image: np.ndarray, preset: str | None, params: dict) -> tuple[DDCMParams, Prior]:
        unknown = set(params) - set(ENCODE_PARAMS)
        if unknown:
            raise UsageError(f"ddcm takes no parameter(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(ENCODE_PARAMS)})")
        preset = preset or self.default_preset
        if preset not in PRESETS:
            raise UsageError(f"unknown ddcm preset {preset!r} (available: {', '.join(PRESETS)})")
        space = params.get("space") or DEFAULT_SPACE
        codebook = params.get("codebook") or DEFAULT_CODEBOOK
        seed = params.get("seed")
        seed = 0 if seed is None else seed
        DDCMParams(codebook=codebook, space=space, seed=seed).check()
        prior = load_prior(space, _resolve_device(params.get("device")))
        bpp = params.get("bpp")
        h, w, c = image.shape
        if bpp is not None:
            if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
                raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
            p = choose_params(float(bpp), h, w, c, n_coded=lambda n: sum(_coded_steps(prior.schedule, n)[1]),
                              model_id=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha),
                              steps=params.get("steps"), k=params.get("k"), atoms=params.get("atoms"),
                              codebook=codebook, space=space, seed=seed)
        else:
            n0, k0, m0 = PRESETS[preset]
            get = lambda key, default: default if params.get(key) is None else params[key]
            p = DDCMParams(get("steps", n0), get("k", k0), get("atoms", m0), codebook, space, seed)
            if params.get("k") is not None and params.get("atoms") is None:
                p.atoms = min(p.atoms, max(1, p.k // 2))
        p.check()
        if p.steps > prior.schedule.T:
            raise UsageError(f"--steps {p.steps} exceeds the prior's {prior.schedule.T} timesteps")
        return p, prior

    def compress_with_reconstruction(self, image: np.ndarray, preset: str | None = None,
                                     **params) -> tuple[Encoded, np.ndarray]:
        p, prior = self._params(image, preset, params)
        channels = image.shape[2]
        rgb = _to_rgb(image)
        target = prior.to_space(rgb)
        shape = tuple(target.shape[1:])

        import torch

        def choose(i, cb, x0_hat):
            r = (target - x0_hat)[0].to("cpu", dtype=torch.float64).numpy()
            idx, signs = select_atoms(cb.scores(r), p.atoms)
            return atoms_to_symbol(idx, signs, p.k, p.atoms)

        x, stats = run_process(prior, p, shape, choose)
        self.last_stats = stats
        payload = encode_payload(stats.symbols, [alphabet(p.k, p.atoms)] * len(stats.symbols))
        encoded = Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=p.header(), rng=p.rng_spec(),
                          chunks=[payload])
        from diffcodec.data import rgb_to_channels

        return encoded, rgb_to_channels(prior.to_image(x), channels)

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        return self.compress_with_reconstruction(image, preset, **params)[0]

    # ---------------------------------------------------------------- decoding
    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        """Options: device ('auto' | 'cpu' | 'cuda'; default 'auto', as `encode`)."""
        unknown = set(options) - {"device"}
        if unknown:
            raise UsageError(f"ddcm decoding takes no option(s) {', '.join(sorted(unknown))}")
        p = DDCMParams.from_header(encoded.params, encoded.rng)
        if p.space in FUTURE_SPACES:
            raise UnsupportedError(f"file codes in the {p.space} space, which needs {FUTURE_SPACES[p.space]}; "
                                   f"this diffcodec cannot decode it")
        if encoded.model != SPACE_MODELS[p.space]:
            raise CorruptInputError(f"corrupt ddcm header: model {encoded.model!r} does not match space {p.space!r}")
        if len(encoded.chunks) != 1:
            raise CorruptInputError("ddcm file must hold exactly one payload chunk")
        prior = load_prior(p.space, _resolve_device(options.get("device")))
        if artifacts.sha_prefix32(prior.sha) != encoded.model_sha:
            raise ModelError(f"file was encoded with a different {prior.model_id} model (sha256 prefix "
                             f"{encoded.model_sha:08x}, installed {prior.sha[:8]}); decode it with the model "
                             f"that wrote it")
        if p.steps > prior.schedule.T:
            raise CorruptInputError(f"corrupt ddcm header: {p.steps} steps, the prior has {prior.schedule.T}")
        n_coded = sum(_coded_steps(prior.schedule, p.steps)[1])
        symbols = decode_payload(encoded.chunks[0], [alphabet(p.k, p.atoms)] * n_coded)
        shape = prior.shape(height, width)
        it = iter(symbols)
        x, stats = run_process(prior, p, shape, lambda i, cb, x0_hat: next(it))
        self.last_stats = stats
        from diffcodec.data import rgb_to_channels

        return rgb_to_channels(prior.to_image(x), channels)


# ------------------------------------------------------------------------------------------------------
# Compressed generation
# ------------------------------------------------------------------------------------------------------


def generate(height: int = 64, width: int = 64, *, k: int = DEFAULT_K, steps: int = DEFAULT_STEPS, atoms: int = 1,
             codebook: str = DEFAULT_CODEBOOK, space: str = DEFAULT_SPACE, seed: int = 0,
             device: str | None = "auto") -> tuple[bytes, np.ndarray]:
    """An unconditional sample whose codebook choices are random (seeded by ``seed``): returns the .ddc bytes
    (decoding them reproduces the sample) and the sample, uint8 (height, width, 3)."""
    from diffcodec import container

    p = DDCMParams(steps, k, atoms, codebook, space, seed).check()
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
    return container.write_container(header, [payload]), prior.to_image(x)
