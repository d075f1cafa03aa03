"""Coding parameters (N, K, M, codebook, space, seed, base layer, precision), their header form, exact file
sizes, and the --bpp rule that picks them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from diffcodec import codebooks_rng, container
from diffcodec.errors import CorruptInputError, UnsupportedError, UsageError
from diffcodec.methods.ddcm.combinatorics import alphabet
from diffcodec.methods.ddcm.payload import payload_bytes
from diffcodec.methods.ddcm.priors import REFINERS, SPACE_MODELS, SPACES

METHOD = "ddcm"
DEFAULT_STEPS = 20
DEFAULT_K = 4096
DEFAULT_CODEBOOK = "mshift"     # iid's quality at a fraction of its cost (measured: benchmarks/RESULTS.md, 'Codebook
                                # kinds end to end at equal bits'); why not shift: diffcodec/codebooks_rng.py
DEFAULT_SPACE = "latent"        # above pixel on MS-SSIM at every rate, and faster (measured: benchmarks/RESULTS.md,
                                # 'Pixel space on Kodak24, four rates'); with --base the space is pixel (the only
                                # conditional prior is the pixel opq-refiner)
MAX_K = 1 << 20
MAX_ATOMS = 1024
MAX_STEPS = 1000                # also bounded by the prior's schedule T
PRECISIONS = ("fp32", "bf16", "fp16")   # the prior's matmuls/convolutions; in the header (`pr`), replayed when decoding
PRIOR_FORMATS = ("diffusers",)  # header `pf`: the prior is a model the user added, named by the header's `model`

# --bpp's first N per mode (default_steps), chosen at equal bits: latent does better at N = 50 than at N = 20, the
# conditional refiner best at N = 3-5, and N = 20 is worse and slower there (measured: benchmarks/RESULTS.md,
# 'latent space at N = 50 on Kodak24' and 'Fewer steps with more atoms (Turbo-DDCM's trade) at equal bits')
LATENT_DEFAULT_STEPS = 50
BASE_DEFAULT_STEPS = 3
# ... but a budget that buys N = 3 only a few atoms is better spent on nothing: one free refiner step (N = 1, no
# index bits) is the conditional mean, and N = 3 with up to this many atoms does not beat it (measured:
# benchmarks/RESULTS.md, 'A few coded atoms vs one free refiner step'). So --bpp takes N = 1 up to this M.
BASE_FREE_STEP_MAX_ATOMS = 64
# On a standard-codec base (JPEG / WebP / AVIF) --bpp always takes the free step: coded steps with the bytes left
# under the target lost to it at every M tried (benchmarks/RESULTS.md, 'The default mode on standard-codec bases':
# kodim07 / kodim23 at 0.1 bpp, N = 3 with M = 161 / 135 below N = 1 and larger).

# --bpp search grids (see choose_params)
STEPS_GRID = (2, 3, 5, 10, 15, 20, 30, 50, 100, 200)
MAX_AUTO_STEPS = 200            # --bpp grows N up to this when the atoms are saturated
BASE_MAX_AUTO_STEPS = 10        # ... and up to this with a base layer: a refiner step is a full-size pixel UNet pass
                                # and more steps buy little past it (measured: benchmarks/RESULTS.md, 'The default
                                # mode (`--bpp` alone) on Kodak24', "Step cap with a base"). Past it the file lands
                                # under the target
K_GRID = (2, 4, 16, 64, 256, 1024, 4096, 16384)
ENSEMBLES = (1, 2, 4)            # the free step's ensemble sizes (header en; process.free_step_views)
MAX_AUTO_ATOMS = 512            # --bpp picks any M in 1..min(K/2, 512): combining grows with M (measured:
                                # benchmarks/RESULTS.md, 'Speed work this session', exact combining)


def base_kind(base: str) -> str:
    """The REFINERS kind of a base layer name: opq, x264 (a clip's H.264 base), or codec for the standard codecs
    (checked elsewhere)."""
    if base in _opq_presets():
        return "opq"
    return "x264" if isinstance(base, str) and base.startswith("x264") else "codec"


def _opq_presets():
    from diffcodec.methods.opq import PRESETS

    return PRESETS


@dataclass
class DDCMParams:
    steps: int = DEFAULT_STEPS          # N strided timesteps (N - 1 coded)
    k: int = DEFAULT_K                  # codebook size K
    atoms: int = 1                      # M
    codebook: str = DEFAULT_CODEBOOK    # mshift | iid | shift
    space: str = DEFAULT_SPACE
    seed: int = 0
    base: str | None = None             # the base layer (conditional ddcm): an opq preset or "<codec>:q<quality>"
    base_sha: int = 0                   # first 4 bytes of that opq codebook's sha256 (0: a standard codec)
    precision: str = "fp32"             # fp32 | bf16 | fp16 (autocast of the prior's network)
    prior: str | None = None            # a user-added diffusers model (`diffcodec models add`): header pf + model
    tile: int = 0                       # free-step files of big images: the refiner's tile core (header tl)
    refiner: str | None = None          # a base's newer refiner (priors.REFINERS; the header's model), else None
    ensemble: int = 1                   # free-step files: views the refiner runs on, averaged (header en)
    base_stripe: int = 0                # a standard-codec base in stripes of this many rows (header bh)

    def check(self, err=UsageError) -> DDCMParams:
        def _int(name, v, lo, hi):
            if type(v) is not int or not lo <= v <= hi:
                raise err(f"ddcm {name} must be an integer in {lo}..{hi}, got {v!r}")
        _int("steps", self.steps, 0 if self.base is not None else 1, MAX_STEPS)   # 0: the base layer as is
        _int("k", self.k, 1, MAX_K)
        _int("atoms", self.atoms, 1, min(self.k, MAX_ATOMS))
        _int("seed", self.seed, 0, codebooks_rng.MAX_SEED)
        if not isinstance(self.codebook, str) or self.codebook not in codebooks_rng.CODEBOOKS:   # (a map: unhashable)
            raise err(f"ddcm codebook must be one of {', '.join(codebooks_rng.CODEBOOKS)}, got {self.codebook!r}")
        if self.space not in SPACES:
            raise err(f"ddcm space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.precision not in PRECISIONS:
            raise err(f"ddcm precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.prior is not None:
            from diffcodec.user_models import check_name

            check_name(self.prior, err=lambda m: err(f"ddcm prior: {m}"))
            if self.base is not None:
                raise err("ddcm: a user-added prior is unconditional, it takes no base layer")
        if self.tile:
            _int("tile", self.tile, 64, 1 << 14)
            if self.tile % 64 or self.steps != 1 or self.base is None:
                raise err(f"ddcm tile {self.tile!r}: a multiple of 64, on free-step files (n 1 with a base) only")
        if type(self.ensemble) is not int or self.ensemble != 1:      # (True == 1, but is not a view count)
            if type(self.ensemble) is not int or self.ensemble not in ENSEMBLES or self.steps != 1 \
                    or self.base is None or self.tile:
                raise err(f"ddcm ensemble {self.ensemble!r}: one of {', '.join(map(str, ENSEMBLES[1:]))}, on untiled "
                          f"free-step files (n 1 with a base) only")
        if self.base is not None:
            from diffcodec.methods.ddcm.base_layer import parse_base

            parse_base(self.base, err=lambda m: err(f"ddcm base: {m}"))
            _int("base codebook sha prefix", self.base_sha, 0, 2**32 - 1)
            if self.space != "pixel":
                raise err(f"ddcm base layer works in the pixel space only, got space {self.space!r}")
        if type(self.base_stripe) is not int or self.base_stripe:   # (after the base's check: base_kind needs a name)
            from diffcodec.methods.ddcm.base_layer import MAX_STRIPE, STRIPE_UNIT

            _int("base stripe", self.base_stripe, STRIPE_UNIT, MAX_STRIPE)
            if self.base_stripe % STRIPE_UNIT or self.base is None or base_kind(self.base) != "codec":
                raise err(f"ddcm base stripe {self.base_stripe!r}: a multiple of {STRIPE_UNIT}, on a standard-codec "
                          f"base only")
        if self.refiner is not None and (self.base is None or self.refiner not in REFINERS[base_kind(self.base)][1:]):
            raise err(f"ddcm refiner {self.refiner!r}: " + " or ".join(
                f"{' / '.join(models[1:])} on {kind} base layers" for kind, models in REFINERS.items()) + " only")
        return self

    @property
    def model_id(self) -> str:
        """The header `model` these parameters go with: the prior of the space, or the refiner with a base, or the
        name of a user-added prior."""
        if self.prior is not None:
            return self.prior
        if self.refiner is not None:
            return self.refiner
        if self.base is None:
            return SPACE_MODELS[self.space]

        return REFINERS[base_kind(self.base)][0]

    def header(self) -> dict:
        """The header's `params` map (the codebook seed lives in the header's `rng` map: :meth:`rng_spec`)."""
        out = {"n": self.steps, "k": self.k, "m": self.atoms, "cb": self.codebook, "sp": self.space}
        if self.base is not None:
            out.update(b=self.base, bs=self.base_sha)
        if self.base_stripe:
            out["bh"] = self.base_stripe
        if self.precision != "fp32":
            out["pr"] = self.precision
        if self.prior is not None:
            out["pf"] = PRIOR_FORMATS[0]
        if self.tile:
            out["tl"] = self.tile
        if self.ensemble != 1 and self.steps == 1:     # (a --bpp template's en sizes only its free-step files)
            out["en"] = self.ensemble
        return out

    def rng_spec(self) -> dict:
        return {"g": codebooks_rng.GENERATOR_ID, "s": self.seed}

    @classmethod
    def from_header(cls, params: dict, rng: dict | None, model: str | None = None) -> DDCMParams:
        """The parameters of a header (``model``: its `model` field, the prior's name when `pf` is present)."""
        try:
            if type(rng) is not dict:
                raise CorruptInputError("corrupt ddcm header: the rng map is missing")
            if rng.get("g") != codebooks_rng.GENERATOR_ID:
                raise UnsupportedError(f"ddcm file uses random generator {rng.get('g')!r}; this diffcodec has "
                                       f"{codebooks_rng.GENERATOR_ID!r}")
            if "bh" in params and params["bh"] == 0:     # (absent reads as 0; check() refuses other values)
                raise CorruptInputError(f"corrupt ddcm header: base stripe {params['bh']!r}")
            if "bs" in params and "b" not in params:
                raise CorruptInputError("corrupt ddcm header: parameter 'bs' without 'b'")
            base = params.get("b")
            prior = None
            if "pf" in params:
                if not isinstance(params["pf"], str):
                    raise CorruptInputError(f"corrupt ddcm header: prior format {params['pf']!r}")
                if params["pf"] not in PRIOR_FORMATS:
                    raise UnsupportedError(f"ddcm file runs on a {params['pf']!r} prior; this diffcodec takes "
                                           f"{', '.join(PRIOR_FORMATS)}")
                prior = model if model is not None else ""
            p = cls(steps=params["n"], k=params["k"], atoms=params["m"], codebook=params["cb"],
                    space=params["sp"], seed=rng["s"], base=base, base_sha=params["bs"] if base is not None else 0,
                    precision=params.get("pr", "fp32"), prior=prior, tile=params.get("tl", 0),
                    ensemble=params.get("en", 1), base_stripe=params.get("bh", 0),
                    refiner=model if isinstance(base, str) and model in REFINERS[base_kind(base)][1:] else None)
        except KeyError as e:
            raise CorruptInputError(f"corrupt ddcm header: parameter {e} missing") from None
        p.check(lambda msg: CorruptInputError(f"corrupt ddcm header: {msg}"))
        if p.base is not None:
            from diffcodec.methods.ddcm.base_layer import parse_base

            spec = parse_base(p.base)
            if spec.kind == "codec" and (spec.quality is None or p.base_sha != 0):
                raise CorruptInputError(f"corrupt ddcm header: a standard-codec base is written as "
                                        f"<codec>:q<quality> with bs 0, got b {p.base!r}, bs {p.base_sha}")
            if spec.kind == "x264" and (spec.crf is None or p.base_sha != 0 or p.steps > 1 or p.ensemble != 1):
                raise CorruptInputError(f"corrupt ddcm header: an H.264 base is written as x264:crf<CRF> with bs 0, "
                                        f"n 0 or 1, one view; got b {p.base!r}, bs {p.base_sha}, n {p.steps}")
        return p


def max_steps(schedule) -> int:
    """The most strided steps the prior's schedule takes (T, or fewer where a diffusers config's spacing and offset
    would step past T - 1)."""
    return int(getattr(schedule, "max_steps", schedule.T))


def _coded_steps(schedule, steps: int) -> tuple[list[int], list[bool]]:
    """The strided timesteps and, per step, whether it is stochastic (posterior variance > 0) = coded."""
    from diffcodec.diffusion.samplers import strided_timesteps

    ts = schedule.inference_timesteps(steps) if hasattr(schedule, "inference_timesteps") else \
        strided_timesteps(schedule.T, steps)
    coded = [schedule.posterior(t, ts[i + 1] if i + 1 < len(ts) else -1)[2] > 0 for i, t in enumerate(ts)]
    return ts, coded


def file_bytes(p: DDCMParams, n_coded: int, height: int, width: int, channels: int, model_id: str,
               model_sha: int, base_bytes: int = 0) -> int:
    """Exact size of the .ddc file for these parameters (container framing + header + payload); with a base
    layer (``p.base``) the payload is LEB128(base_bytes) + base_bytes + the index payload."""
    size = payload_bytes([alphabet(p.k, p.atoms)] * n_coded)
    if p.base is not None:
        size += len(container.encode_varint(base_bytes)) + base_bytes
    encoded = container.Encoded(model=model_id, model_sha=model_sha, params=p.header(), rng=p.rng_spec())
    return container.framed_size(METHOD, encoded, width, height, channels, payload_sizes=[size])


def default_steps(p: DDCMParams) -> int:
    """The step count --bpp starts from, per mode (measured at equal bits, benchmarks/ddcm_steps.py): the
    conditional refiner does best with few steps, the unconditional priors with many."""
    if p.base is not None:
        return BASE_DEFAULT_STEPS
    return LATENT_DEFAULT_STEPS if p.space == "latent" else DEFAULT_STEPS


class BelowBaseLayerError(UsageError):
    """--bpp is under the size of the base layer alone (the automatic mode then falls back to the latent space)."""


class BelowReachError(UsageError):
    """--bpp is under the smallest file ddcm can make for the image; ``smallest``: the steps, K and atoms of it."""

    def __init__(self, message: str, smallest: dict[str, int]):
        super().__init__(message)
        self.smallest = smallest


def _is_codec_base(base: str) -> bool:
    from diffcodec.methods.ddcm.base_layer import parse_base

    return parse_base(base).kind != "opq"


def choose_params(target_bpp: float, height: int, width: int, channels: int, *, n_coded: Callable[[int], int],
                  model_id: str, model_sha: int = 0, steps: int | None = None, k: int | None = None,
                  atoms: int | None = None, template: DDCMParams | None = None, base_bytes: int = 0,
                  max_steps: int = MAX_STEPS, valid_steps: Callable[[int], bool] | None = None) -> DDCMParams:
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
       N, K and M are all free and step 1 gives M <= BASE_FREE_STEP_MAX_ATOMS (measured no better than N = 1),
       and always on a standard-codec base when N, K and M are free (it fits whenever the base does).
    Raises BelowReachError (a UsageError) when even the smallest choice is over the target (BelowBaseLayerError,
    naming the base layer, when it alone, with the header and no index bits, is over). ``valid_steps``: the N the
    prior's schedule can take (a diffusers config's trailing spacing has gaps); the search never picks another.
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

    valid = valid_steps or (lambda n: True)
    n0, k0 = steps or min(default_steps(template), max_steps), k or DEFAULT_K
    if base is not None and not (steps or k or atoms) and _is_codec_base(base) and size(1, k0, 1) <= budget:
        return params(1, k0, 1)
    m = best_m(n0, k0)
    if m is not None and base is not None and m <= BASE_FREE_STEP_MAX_ATOMS and not (steps or k or atoms):
        return params(1, k0, 1)
    if m is not None:
        saturated = atoms is not None or m == max_m(k0)
        n = n0
        if saturated and steps is None:
            grow_to = BASE_MAX_AUTO_STEPS if base is not None else MAX_AUTO_STEPS
            n = largest_fitting(n0, max(n0, min(grow_to, max_steps)),
                                lambda nn: size(nn, k0, m) if valid(nn) else math.inf)
        return params(n, k0, m)
    if steps is None:
        for cand in sorted((s for s in STEPS_GRID if s < n0 and valid(s)), reverse=True):
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
    least = {"steps": steps or STEPS_GRID[0], "k": k or K_GRID[0], "atoms": atoms or 1}
    smallest = size(least["steps"], least["k"], least["atoms"])
    with_base = f", with the {base_bytes}-byte {base} base layer" if base is not None else ""
    raise BelowReachError(f"--bpp {target_bpp:g} is below what ddcm can reach for a {width}x{height} image "
                          f"(smallest file {smallest} bytes = {smallest * 8 / (height * width):.4f} bpp{with_base})",
                          least)

