"""The ddcm codec: modes and parameters of an encode, encoding, decoding, compressed generation and what
`diffcodec info` says about a file."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from diffcodec import artifacts, metrics
from diffcodec.device import resolve_device
from diffcodec.errors import CorruptInputError, ModelError, UnsupportedError, UsageError
from diffcodec.methods import Codec, Encoded, register
from diffcodec.methods.ddcm import h264_base, inter
from diffcodec.methods.ddcm.base_layer import (
    BaseLayer,
    check_base,
    code_base,
    decode_base,
    opq_base_encoded,
    parse_base,
    stripe_bounds,
    stripe_rows,
)
from diffcodec.methods.ddcm.combinatorics import alphabet, atoms_to_symbol, select_atoms
from diffcodec.methods.ddcm.params import (
    DEFAULT_CODEBOOK,
    DEFAULT_K,
    DEFAULT_SPACE,
    DEFAULT_STEPS,
    ENSEMBLES,
    MAX_K,
    METHOD,
    BelowBaseLayerError,
    BelowReachError,
    DDCMParams,
    _coded_steps,
    base_kind,
    choose_params,
    file_bytes,
    max_steps,
)
from diffcodec.methods.ddcm.payload import decode_payload, encode_payload, join_layers, split_layers, split_stripes
from diffcodec.methods.ddcm.priors import (
    REFINERS,
    Prior,
    auto_precision,
    load_prior,
    missing_models,
    model_installed,
)
from diffcodec.methods.ddcm.process import (
    TILE,
    RunStats,
    ensemble_mean,
    free_step_views,
    run_free_step_tiled,
    run_process,
)
from diffcodec.tiling import TILE_ABOVE_PIXELS

PRESETS: dict[str, tuple[int, int, int]] = {      # name -> (steps N, K, atoms M)
    "n20-k4096-m1": (20, 4096, 1),
    "n20-k4096-m16": (20, 4096, 16),
    "n20-k4096-m64": (20, 4096, 64),
    "n20-k4096-m256": (20, 4096, 256),
    "n3-k4096-m512": (3, 4096, 512),
}
# With --bpp and neither --space nor --base: conditional on the largest of these bases that fits, else latent.
# Where a bigger base fits, it beats a smaller one + more coded steps on MS-SSIM with fewer bits (measured:
# benchmarks/RESULTS.md, 'Conditional mode (`--base opq-16-8-8`) on Kodak24', "A bigger base beats more coded
# steps"; opq-64-16-16: 'The default mode (`--bpp` alone) on Kodak24', "opq-64-16-16 as a base").
# opq-128-32-32 is left out: the opq-refiner was not trained on it.
AUTO_BASES = ("opq-64-16-16", "opq-32-8-8", "opq-16-8-8")
# Tried first: the standard codecs under the codec-refiner; the automatic mode keeps the one whose base layer is
# closest to the image (PSNR) at the target. Their base alone is 2-4 dB above an opq base of the same size, and
# refinement is never worse than the base (benchmarks/RESULTS.md, 'codec-refiner'); the opq bases and the latent
# space remain for targets below the smallest standard-codec file.
AUTO_CODEC_BASES = ("avif", "webp", "jpeg")
# -q/--quality Q -> --bpp (benchmarks/quality_scale.py: the target whose Kodak24 MS-SSIM reaches JPEG's at Q)
QUALITY_BPP = ((0, 0.029), (3, 0.033), (4, 0.048), (5, 0.06), (6, 0.073), (7, 0.081), (8, 0.091), (9, 0.097),
               (10, 0.108), (11, 0.12), (12, 0.133), (13, 0.145), (14, 0.158), (15, 0.172), (16, 0.181), (17, 0.19),
               (18, 0.2), (19, 0.216), (20, 0.233), (21, 0.244), (22, 0.255), (23, 0.266), (24, 0.278), (25, 0.291),
               (26, 0.299), (27, 0.312), (28, 0.326), (29, 0.341), (30, 0.356), (31, 0.368), (32, 0.38), (33, 0.392),
               (34, 0.405), (35, 0.418), (36, 0.426), (37, 0.436), (38, 0.445), (39, 0.454), (40, 0.464),
               (41, 0.472), (42, 0.479), (43, 0.487), (44, 0.495), (45, 0.504), (46, 0.516), (47, 0.528), (48, 0.54),
               (49, 0.553), (50, 0.566), (51, 0.576), (52, 0.585), (53, 0.595), (54, 0.605), (55, 0.616),
               (56, 0.626), (57, 0.637), (58, 0.648), (59, 0.658), (60, 0.67), (61, 0.682), (62, 0.695), (63, 0.707),
               (64, 0.721), (65, 0.734), (66, 0.747), (67, 0.761), (68, 0.775), (69, 0.79), (70, 0.8))
BASE_DEFAULT_PRESET = "n3-k4096-m512"   # the preset with --base (few steps: see params.BASE_DEFAULT_STEPS)
# The rate of an encode that names none (no --bpp, preset or base, and not all of steps, K and atoms): a rate
# per pixel, since every preset spends a fixed number of bits per file whatever its size. 0.3 bpp: the middle of
# the measured range of the default mode (benchmarks/RESULTS.md, 'The default mode with the 5000-step
# codec-refiner'); -q/--quality 26 asks for about the same.
DEFAULT_BPP = 0.3

ENCODE_OPTIONS = {      # option -> help (the order is the one error messages list them in)
    "k": "codebook size K (1..2^20)",
    "steps": "strided diffusion steps N (1..1000, at most the prior's timesteps)",
    "atoms": "atoms M picked per coded step (1..min(K, 1024))",
    "codebook": "codebook kind: mshift (default), iid or shift",
    "space": "pixel or latent (default latent; with bpp and neither space nor base: automatic)",
    "base": "the base layer of conditional ddcm (pixel space): an opq preset, or jpeg / webp / avif (quality chosen "
            "by bpp, or given: avif:q40); for 4:2:0 clips also x264 (CRF chosen by bpp / kbps, or given: x264:crf28)",
    "refiner": "with a base: the refiner network; on an opq base " + " or ".join(REFINERS["opq"][::-1]) + ", on a "
               "standard codec's " + " or ".join(REFINERS["codec"][::-1]) + ", on a clip's H.264 base "
               + " or ".join(REFINERS["x264"][::-1]) + " (the newest first: the default where "
               "installed)",
    "refine": "with a base: None (auto: keep the refinement only where it beats the plain base), True, False",
    "texture": "with a base: TEXTURE_STEPS stochastic coded steps (K = TEXTURE_K, M = 1, always kept) instead of "
               "the one free refiner step: more detail, less fidelity",
    "ensemble": "free-step files: how many views of the base the refiner runs on, averaged: 1, 2 or 4 (default: "
                "the best of them for an image, 1 for a clip's frames); decoding takes one refiner pass per view",
    "seed": "codebook seed (default 0)",
    "bpp": "choose steps/K/atoms (and, alone, the mode) to land at or under this many bits per pixel (default "
           f"{DEFAULT_BPP} when no preset, base or full steps/K/atoms are given)",
    "device": "where the prior runs: auto (default), cpu or cuda",
    "precision": "auto (default), fp32, bf16 or fp16: the prior's arithmetic, stored in the file and replayed",
    "prior": "a model added with `diffcodec models add NAME --diffusers DIR`: ddcm on it, in its own space (pixel or "
             "latent); the file names it by NAME and sha256",
}
GENERATE_OPTIONS = {
    "k": "codebook size K (default 4096)",
    "steps": "strided diffusion steps N (default 20)",
    "atoms": "atoms M per coded step (default 1)",
    "codebook": "codebook kind: mshift (default), iid or shift",
    "space": "pixel (default) or latent",
    "seed": "seed of the codebooks and of the random choices (default 0)",
    "device": "where the prior runs: auto (default), cpu or cuda",
}


# A keyframe of a clip with P-frames, against the clip's mean bytes per frame, at --gop 12: 4.7x on bus_cif with opq
# (benchmarks/RESULTS.md, 'Video with P-frames'); --kbps then corrects the rate with further passes
PREDICTED_KEY_SHARE = 4.0

# --texture: N = 10 steps of K = 16 (9 coded steps x 4 bits: 5 bytes). Measured against the free step, it costs
# PSNR and SSIMULACRA 2 alike (benchmarks/RESULTS.md, 'Texture option'): an option for those who want it, not a default
TEXTURE_STEPS = 10
TEXTURE_K = 16


def _refiner(name: str | None, base: str | None) -> str | None:
    """The ``refiner`` option's network for ``base``: None (the header's default model of that kind of base) or
    one of its newer ones (priors.REFINERS). Unset: the newest installed (each beats the one before on Kodak24:
    benchmarks/RESULTS.md, 'The opq-base refiner', 'codec-refiner-2' and 'codec-refiner-3')."""
    if base is None:
        if name is not None:
            raise UsageError(f"--param refiner={name} chooses the refiner of a base layer: give --base")
        return None
    models = REFINERS[base_kind(base)]
    if name is None:
        return next((m for m in reversed(models[1:]) if model_installed(m)), None)
    if name not in models:
        raise UsageError(f"ddcm refiner of the base {base} must be {' or '.join(reversed(models))}, got {name!r}")
    return None if name == models[0] else name


def _corrupt_base(message: str) -> CorruptInputError:
    return CorruptInputError(f"corrupt ddcm header: {message}")


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
    default_preset = "n20-k4096-m64"           # listed only: an encode naming no rate gets default_options
    default_options = {"bpp": DEFAULT_BPP}
    predicts = True                            # clips on an opq base layer (--gop > 1; ddcm/inter.py)
    predicts_with = "on an opq base layer (--base opq-..., or chosen from --bpp / --kbps) or an H.264 one (--base x264)"
    encode_options = ENCODE_OPTIONS
    decode_options = {"device": "where the prior runs: auto (default), cpu or cuda"}
    generate_options = GENERATE_OPTIONS
    header_keys = {
        "n": "strided diffusion steps N (the stochastic ones are coded)",
        "k": "codebook size K",
        "m": "atoms M per coded step",
        "cb": "codebook kind: mshift, iid or shift",
        "sp": "space: pixel or latent",
        "b": "the base layer (conditional files only): an opq preset, <codec>:q<quality> or, in clips, x264:crf<CRF>",
        "bs": "first 4 bytes of that opq codebook's sha256 (with b)",
        "pr": "precision of the prior's network: bf16 or fp16 (absent: fp32)",
        "pf": "prior format: diffusers (a user-added model named by the header's model; absent: a shipped prior)",
        "tl": "tile core of a big image's free refiner step (absent: the whole image at once)",
        "en": "views of the base the free refiner step runs on, averaged (absent: 1)",
        "g": "rng: codebook generator id",
        "s": "rng: codebook seed",
    }
    can_generate = True
    generate_options = GENERATE_OPTIONS

    def clip_params(self, encoded: Encoded) -> tuple[str | None, dict]:
        p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
        return None, {"steps": p.steps, "k": p.k, "atoms": p.atoms, "codebook": p.codebook, "space": p.space,
                      "base": p.base, "seed": p.seed, "precision": p.precision, "prior": p.prior,
                      **({"refiner": p.refiner} if p.refiner else {}),
                      **({"ensemble": p.ensemble} if p.ensemble != 1 else {}),
                      **({"refine": True} if p.base is not None and p.steps else {})}

    @staticmethod
    def with_default_rate(preset: str | None, params: dict) -> dict:
        """``params`` with ``bpp`` = DEFAULT_BPP when nothing in them or the preset sets a rate."""
        if preset is None and all(params.get(k) is None for k in ("bpp", "base")) \
                and not all(params.get(k) is not None for k in ("steps", "k", "atoms")):
            return {**params, "bpp": DEFAULT_BPP}
        return params

    def params_override_preset(self, params: dict) -> bool:
        """A target bpp, or steps, K and atoms all given, or an H.264 base (one free step per frame), leave nothing
        for a preset to set."""
        return params.get("bpp") is not None or all(params.get(k) is not None for k in ("steps", "k", "atoms")) \
            or h264_base.is_h264_base(params.get("base"))

    # -q/--quality (methods.QUALITY_SCALE): the --bpp whose Kodak24 MS-SSIM reaches JPEG's at that quality
    # (log-linear between the measured targets of the default mode); from 70 on no measured target does, and
    # 0.8 bpp, the largest measured, is used
    # (benchmarks/quality_scale.py)
    quality_points = tuple((q, None, {"bpp": b}) for q, b in QUALITY_BPP)
    quality_ceiling = 70

    def encode_setting(self, preset: str | None, params: dict) -> dict:
        """The preset resolved to steps, K and atoms (as :meth:`_mode_params` does), or the options alone when
        they replace it."""
        given = self.with_default_rate(preset, {k: v for k, v in params.items() if v is not None and k != "device"})
        name = preset or (BASE_DEFAULT_PRESET if given.get("base") is not None else self.default_preset)
        if self.params_override_preset(given) or name not in PRESETS:
            return given if self.params_override_preset(given) else {"preset": name, **given}
        n, k, m = PRESETS[name]
        k = given.get("k", k)
        m = given.get("atoms", min(m, max(1, k // 2)) if "k" in given else m)
        return {**given, "steps": given.get("steps", n), "k": k, "atoms": m}

    def coded_setting(self, model: str, params: dict) -> str:
        p = params if isinstance(params, dict) else {}
        if p.get("n") == 0:
            return f"base {p.get('b')} alone"
        if h264_base.is_h264_base(p.get("b")):
            return f"base {p['b']} + free step {model}" + (f" {p['pr']}" if "pr" in p else "")
        label = f"n{p.get('n')}-k{p.get('k')}-m{p.get('m')} {p.get('sp')}"
        label += f" base {p['b']}" if p.get("b") is not None else ""
        label += f" {p['cb']}" if p.get("cb") not in (None, DEFAULT_CODEBOOK) else ""
        label += f" prior {model}" if "pf" in p else ""
        label += f" en{p['en']}" if "en" in p else ""
        return label + (f" {p['pr']}" if "pr" in p else "")

    def __init__(self):
        self.last_stats: RunStats | None = None

    # ---------------------------------------------------------------- encoding
    def _params(self, image: np.ndarray, preset: str | None,
                params: dict) -> tuple[DDCMParams, Prior, BaseLayer | None]:
        """The mode and parameters of an encode. With ``bpp`` and neither ``space`` nor ``base`` the mode is
        automatic: conditional on the AUTO_CODEC_BASES layer with the highest PSNR under the target; where none
        fits, on the largest AUTO_BASES layer that does, else the latent space. A ``prior`` (a user-added model)
        fixes the mode: that model, in its own space."""
        self.check_encode_options(params)
        if params.get("bpp") is not None and params.get("space") is None and params.get("base") is None \
                and params.get("prior") is None:
            best, best_psnr = None, -math.inf
            for base in AUTO_CODEC_BASES:
                try:
                    candidate = self._mode_params(image, preset, {**params, "base": base})
                except BelowBaseLayerError:
                    continue
                layer = candidate[2]
                assert layer is not None
                psnr = metrics.psnr(image, layer.image)
                if psnr > best_psnr:
                    best, best_psnr = candidate, psnr
                del candidate, layer        # only the best's decoded base is kept while the next one is coded
            if best is not None:
                return best
            for base in AUTO_BASES:
                try:
                    return self._mode_params(image, preset, {**params, "base": base})
                except BelowBaseLayerError:
                    pass
        return self._mode_params(image, preset, params)

    def _mode_params(self, image: np.ndarray, preset: str | None,
                     params: dict) -> tuple[DDCMParams, Prior, BaseLayer | None]:
        """One mode's parameters."""
        preset = preset or (BASE_DEFAULT_PRESET if params.get("base") is not None else self.default_preset)
        if preset not in PRESETS:
            raise UsageError(f"unknown ddcm preset {preset!r} (available: {', '.join(PRESETS)})")
        base = params.get("base")
        space = params.get("space") or ("pixel" if base is not None else DEFAULT_SPACE)
        prior_name = params.get("prior")
        if prior_name is not None:
            from diffcodec import user_models

            registered = user_models.get(user_models.check_name(prior_name))["space"]
            if params.get("space") not in (None, registered):
                raise UsageError(f"--prior {prior_name} works in the {registered} space, not --space {space}")
            if base is not None:
                raise UsageError(f"--prior {prior_name} is an unconditional model: --base (conditional ddcm) runs on "
                                 f"the shipped refiners only")
            space = registered
        codebook = params.get("codebook") or DEFAULT_CODEBOOK
        seed = params.get("seed")
        seed = 0 if seed is None else seed
        if base is not None:
            check_base(base)
            if space != "pixel":
                raise UsageError("--base (conditional ddcm) works in --space pixel only; a latent conditional "
                                 "prior does not exist yet")
        precision = params.get("precision") or "auto"
        refiner = _refiner(params.get("refiner"), base)
        template = DDCMParams(codebook=codebook, space=space, seed=seed, base=base,
                              precision="fp32" if precision == "auto" else precision, prior=prior_name,
                              refiner=refiner)
        template.check()
        prior = load_prior(space, resolve_device(params.get("device")), base=base, prior=prior_name, refiner=refiner)
        bpp = params.get("bpp")
        h, w, c = image.shape
        template = replace(template, precision=auto_precision(prior) if precision == "auto" else precision)
        layer = None
        if base is not None and h * w > TILE_ABOVE_PIXELS:
            template = replace(template, tile=TILE)          # kept only if the choice is the free step (below)
        if base is not None and base_kind(base) == "codec":
            template = replace(template, base_stripe=stripe_rows(h, w))
        ensemble = params.get("ensemble")
        if ensemble is not None and (type(ensemble) is not int or ensemble not in ENSEMBLES):
            raise UsageError(f"ddcm ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {ensemble!r}")
        if base is not None and not template.tile:          # the longest header the free step may write
            template = replace(template, ensemble=max(ENSEMBLES) if ensemble is None else ensemble)
        if base is not None:
            budget = None
            if bpp is not None and parse_base(base).quality is None and parse_base(base).kind != "opq":
                budget = self._codec_base_budget(bpp, h, w, c, template, prior, params.get("steps"), params.get("k"),
                                                 params.get("atoms"))
            layer = code_base(image, base, budget, template.base_stripe)
        template = replace(template, base=None if layer is None else layer.spec.header,
                           base_sha=0 if layer is None else layer.sha)
        if bpp is not None:
            if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
                raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
            def choose(template: DDCMParams) -> DDCMParams:
                return choose_params(float(bpp), h, w, c, n_coded=lambda n: sum(_coded_steps(prior.schedule, n)[1]),
                                     model_id=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha),
                                     steps=params.get("steps"), k=params.get("k"), atoms=params.get("atoms"),
                                     template=template, base_bytes=0 if layer is None else len(layer.data),
                                     max_steps=max_steps(prior.schedule),
                                     valid_steps=getattr(prior.schedule, "valid_steps", None))

            try:
                p = choose(template)
            except BelowBaseLayerError:
                if ensemble is not None or template.ensemble == 1:
                    raise
                p = choose(replace(template, ensemble=1))   # the few header bytes of en do not fit: one view
        else:
            n0, k0, m0 = PRESETS[preset]
            get = lambda key, default: default if params.get(key) is None else params[key]
            p = replace(template, steps=get("steps", n0), k=get("k", k0), atoms=get("atoms", m0))
            if params.get("k") is not None and params.get("atoms") is None:
                p.atoms = min(p.atoms, max(1, p.k // 2))
        if p.tile and p.steps != 1:
            p = replace(p, tile=0)                       # coded steps run untiled
        if ensemble not in (None, 1) and (p.steps != 1 or p.base is None or p.tile):
            raise UsageError(f"--param ensemble={ensemble} is for files with one free refiner step on a base layer "
                             f"(and images of at most {TILE_ABOVE_PIXELS:,} pixels); this encode has "
                             f"{p.steps} steps" + (", tiled" if p.tile else ""))
        if p.steps != 1:
            p = replace(p, ensemble=1)
        p.check()
        if p.steps > max_steps(prior.schedule):
            raise UsageError(f"--steps {p.steps} exceeds the {max_steps(prior.schedule)} steps the prior takes")
        return p, prior, layer

    @staticmethod
    def _codec_base_budget(bpp: float, h: int, w: int, c: int, template: DDCMParams, prior: Prior,
                           steps: int | None = None, k: int | None = None, atoms: int | None = None) -> int:
        """Bytes a standard-codec base may take under ``bpp``: the file with that base and no index bits (one
        free refiner step), its header written with the longest quality; with ``steps`` (and ``k``, ``atoms``)
        given, the file with their index bits."""
        if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
            raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
        spec = parse_base(template.base)
        if steps is None:
            longest, n_coded = replace(template, base=f"{spec.name}:q100", steps=1, k=MAX_K, atoms=1), 0
        else:
            longest = replace(template, base=f"{spec.name}:q100", steps=steps, k=k or DEFAULT_K,
                              atoms=atoms or 1)
            n_coded = sum(_coded_steps(prior.schedule, steps)[1])
        overhead = file_bytes(longest, n_coded, h, w, c, prior.model_id, artifacts.sha_prefix32(prior.sha),
                              base_bytes=1 << 28)
        return int(bpp * h * w / 8) - (overhead - (1 << 28))

    def compress_with_reconstruction(self, image: np.ndarray, preset: str | None = None,
                                     **params) -> tuple[Encoded, np.ndarray]:
        return self._compress(image, preset, params)

    def _compress(self, image: np.ndarray, preset: str | None, params: dict) -> tuple[Encoded, np.ndarray]:
        defaulted = params.get("bpp") is None
        params = self.with_default_rate(preset, params)
        defaulted = defaulted and params.get("bpp") is not None
        refine = params.pop("refine", None)
        if refine not in (None, True, False):
            raise UsageError(f"ddcm refine must be auto (None), True or False, got {refine!r}")
        texture = bool(params.pop("texture", None))
        if texture:
            given = sorted(k for k in ("steps", "k", "atoms") if params.get(k) is not None)
            if given or refine is False:
                raise UsageError(f"--texture sets the refinement ({TEXTURE_STEPS} steps of K = {TEXTURE_K}, one atom, "
                                 f"always kept): drop {', '.join('--' + k for k in given) or '--no-refine'}")
            if params.get("space") == "latent" or params.get("prior") is not None:
                raise UsageError("--texture refines a base layer (pixel space); it takes no --space latent or --prior")
            params.update(steps=TEXTURE_STEPS, k=TEXTURE_K, atoms=1)
            refine = True
        try:
            p, prior, layer = self._params(image, preset, params)
        except BelowReachError as e:
            if not defaulted:
                raise
            # an image too small for the default rate (a rate the user did not ask for): its smallest file
            p, prior, layer = self._params(image, preset, {**params, "bpp": None, **e.smallest})
        if texture and layer is None:
            h, w = image.shape[:2]
            raise UsageError(f"--texture refines a base layer and none fits under --bpp {params['bpp']:g} for this "
                             f"{w}x{h} image: give a higher --bpp or a --base")
        if layer is not None and (refine is False or p.steps == 0):
            return self._base_only(p, prior, layer)
        base_err = None
        # a tiled step writes over the decoded base (a big image's: one full-size array less), which is decoded
        # again should it win
        disposable = layer is not None and bool(p.tile)
        if layer is not None and p.steps == 1 and not p.tile:
            recon, p = self._free_step(image, prior, p, layer, choose=params.get("ensemble") is None)
            payload = encode_payload([], [])
        else:
            if disposable and refine is None:
                base_err = metrics.mse(layer.image, image)
            recon, payload = self._refine_toward(image, prior, p, None if layer is None else layer.image,
                                                 None if layer is None else layer.spec, base_disposable=disposable)
        if layer is not None:
            payload = join_layers(layer.data, payload)
        encoded = Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=p.header(),
                          rng=p.rng_spec(), chunks=[payload])
        if layer is not None and refine is None:
            if base_err is None:
                base_err = metrics.mse(layer.image, image)
            if base_err <= metrics.mse(recon, image):   # the refinement lost to its own base: ship the base alone
                if disposable:
                    h, w, c = image.shape
                    layer.image = decode_base(layer.data, layer.spec.header, layer.sha, h, w, c, p.base_stripe)
                return self._base_only(p, prior, layer)
        return encoded, recon

    def _run(self, prior: Prior, p: DDCMParams, height: int, width: int, base: np.ndarray | None, spec,
             choose, base_disposable: bool = False) -> np.ndarray:
        """The reverse process of the encoder and the decoder alike, uint8 RGB out: ``choose(i, codebook, x0_hat)``
        gives each coded step's symbol (the encoder's search or the decoder's next symbol); a header ``tile`` runs
        the free step over the base tile by tile (over the base's own array with ``base_disposable``: a base the
        caller drops afterwards)."""
        if p.tile:              # a big image's free step (no choice to make): the refiner tile by tile
            assert base is not None
            self.last_stats = RunStats(steps=1)
            return run_free_step_tiled(prior, p, self.rgb_input(base), spec, p.tile, in_place=base_disposable)
        if base is not None and p.steps == 1:       # the free step (no choice to make), on p.ensemble views
            self.last_stats = RunStats(steps=1)
            views = self._free_step_views(prior, p, height, width, base, spec, p.ensemble)
            return prior.to_image(ensemble_mean(views, p.ensemble), height, width)
        cond = None if base is None else prior.condition(self.rgb_input(base), spec)
        x, self.last_stats = run_process(prior, p, prior.shape(height, width), choose, cond=cond)
        return prior.to_image(x, height, width)

    def _free_step_views(self, prior: Prior, p: DDCMParams, height: int, width: int, base: np.ndarray, spec,
                         views: int) -> list:
        cond = prior.condition(self.rgb_input(base), spec)
        return free_step_views(prior, p, cond, prior.shape(height, width), views)

    def _free_step(self, image: np.ndarray, prior: Prior, p: DDCMParams, layer: BaseLayer,
                   choose: bool) -> tuple[np.ndarray, DDCMParams]:
        """The free step's reconstruction (shaped like ``image``) and header: with ``choose``, the ensemble of
        ENSEMBLES closest to ``image`` (MSE; ties: the fewer views), else the header's ``p.ensemble``."""
        from diffcodec.data import rgb_to_channels

        h, w, channels = image.shape
        views = self._free_step_views(prior, p, h, w, layer.image, layer.spec, p.ensemble)
        self.last_stats = RunStats(steps=1)
        best = None
        for n in ENSEMBLES if choose else (p.ensemble,):
            if n > len(views):
                break
            recon = rgb_to_channels(prior.to_image(ensemble_mean(views, n), h, w), channels)
            err = metrics.mse(recon, image)
            if best is None or err < best[0]:
                best = (err, recon, n)
        assert best is not None
        return best[1], replace(p, ensemble=best[2])

    def _refine_toward(self, image: np.ndarray, prior: Prior, p: DDCMParams, base: np.ndarray | None,
                       spec, base_disposable: bool = False) -> tuple[np.ndarray, bytes]:
        """Encode ``image`` with the header ``p`` (over ``base``, a decoded base layer, where given; with
        ``base_disposable`` a tiled step may write over it): the reconstruction, shaped like ``image``, and the
        index payload."""
        from diffcodec.data import rgb_to_channels

        h, w, channels = image.shape
        choose = None
        if not p.tile:
            import torch

            target = prior.to_space(self.rgb_input(image))

            def choose(i, cb, x0_hat):
                r = (target - x0_hat)[0].to("cpu", dtype=torch.float64).numpy()
                idx, signs = select_atoms(cb.scores(r), p.atoms)
                return atoms_to_symbol(idx, signs, p.k, p.atoms)

        out = self._run(prior, p, h, w, base, spec, choose, base_disposable)
        assert self.last_stats is not None
        symbols = self.last_stats.symbols
        return rgb_to_channels(out, channels), encode_payload(symbols, [alphabet(p.k, p.atoms)] * len(symbols))

    def _base_only(self, p: DDCMParams, prior: Prior, layer: BaseLayer) -> tuple[Encoded, np.ndarray]:
        """The file that decodes to its base layer as is (header n = 0: no step, no index bits)."""
        q = replace(p, steps=0, atoms=1, tile=0, ensemble=1)
        encoded = Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=q.header(),
                          rng=q.rng_spec(), chunks=[join_layers(layer.data, b"")])
        return encoded, layer.image

    def compress(self, image: np.ndarray, preset: str | None = None, **params) -> Encoded:
        return self.compress_with_reconstruction(image, preset, **params)[0]

    # ---------------------------------------------------------------- clips with P-frames (ddcm/inter.py)
    def _predicting_params(self, image: np.ndarray, preset: str | None, params: dict) -> dict:
        """The keyframe parameters of a clip with P-frames: an opq base (given, or with a rate the largest of
        AUTO_BASES whose keyframe fits, with the free refiner step unless steps are given)."""
        if params.get("prior") is not None or params.get("space") not in (None, "pixel"):
            raise UsageError("ddcm P-frames refine an opq base layer (pixel space): --space latent and --prior code "
                             "every frame alone (use --gop 1)")
        params = self.with_default_rate(preset, params)
        base = params.get("base")
        if base is not None:
            if parse_base(base).kind != "opq":
                raise UsageError(f"ddcm P-frames are built on opq P-frames or an H.264 base: give an opq base "
                                 f"({', '.join(AUTO_BASES)} ...) or x264, not --base {base}, or --gop 1")
            return params
        if params.get("bpp") is None:
            raise UsageError("ddcm P-frames refine an opq base layer: give --base opq-PRESET, or a rate (--bpp, "
                             "--kbps) to choose one")
        if params.get("steps") is None:
            params["steps"] = 1     # coded steps would spend their index bits again in every refined P-frame
        # the rate is the clip's mean per frame; a keyframe of a clip with P-frames takes several times that
        key_bpp = params["bpp"] * PREDICTED_KEY_SHARE
        for base in AUTO_BASES:
            try:
                self._mode_params(image, preset, {**params, "base": base, "bpp": key_bpp})
            except BelowBaseLayerError:
                continue
            return {**params, "base": base, "bpp": key_bpp}
        # below the smallest: a clip's rate control says what it reached
        return {**params, "base": AUTO_BASES[-1], "bpp": None}

    # ---------------------------------------------------------------- clips on an H.264 base (ddcm/h264_base.py)
    def clip_stream_layouts(self, params: dict, gop: int) -> tuple[str, ...] | None:
        return ("420",) if h264_base.is_h264_base(params.get("base")) else None

    def open_clip_encoder(self, info, gop: int, preset: str | None, params: dict,
                          **device_params) -> h264_base.H264BaseClipEncoder:
        """x264 over the clip, and the free refiner step of each frame where it beats the H.264 frame (PSNR-YUV;
        ``refine`` True: every frame, False: none, header n 0)."""
        if preset is not None:
            raise UsageError(f"a ddcm clip on an H.264 base takes no preset (got {preset!r}): its rate is the "
                             f"base's CRF or --bpp / --kbps")
        taken = ("base", "bpp", "refine", "refiner", "precision", "seed", "ensemble")
        extra = sorted(k for k, v in params.items() if v is not None and k not in taken)
        if extra:
            raise UsageError(f"a ddcm clip on an H.264 base takes one free refiner step per frame: drop "
                             f"{', '.join('--param ' + k for k in extra)}")
        if params.get("ensemble") not in (None, 1):
            raise UsageError("a ddcm clip on an H.264 base runs the refiner on one view (ensemble 1)")
        refine = params.get("refine")
        if refine not in (None, True, False):
            raise UsageError(f"ddcm refine must be auto (None), True or False, got {refine!r}")
        h264_base.check_frame_size(info.width, info.height, info.chroma)
        crf = parse_base(params["base"]).crf
        bpp = params.get("bpp")
        if bpp is not None:
            if crf is not None:
                raise UsageError(f"give --base {params['base']} or a rate (--bpp, --kbps), not both")
            if not (isinstance(bpp, (int, float)) and bpp > 0 and math.isfinite(bpp)):
                raise UsageError(f"--bpp must be a positive number, got {bpp!r}")
            crf = h264_base.crf_for_bpp(float(bpp))
        base = h264_base.header_name(h264_base.DEFAULT_CRF if crf is None else crf)
        seed = params.get("seed")
        refiner = _refiner(params.get("refiner"), base)
        precision = params.get("precision") or "auto"
        prior = load_prior("pixel", resolve_device(device_params.get("device")), base=base, refiner=refiner)
        steps = 0 if refine is False else 1
        p = DDCMParams(steps=steps, k=1, atoms=1, space="pixel", base=base, seed=0 if seed is None else seed,
                       refiner=refiner,
                       precision=auto_precision(prior) if precision == "auto" else precision,
                       tile=TILE if steps and info.width * info.height > TILE_ABOVE_PIXELS else 0).check()
        spec = parse_base(base)
        h, w = info.height, info.width

        def run(rgb: np.ndarray) -> np.ndarray:
            return self._run(prior, p, h, w, rgb, spec, None)

        def key_of(payload: bytes) -> Encoded:
            return Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=p.header(),
                           rng=p.rng_spec(), chunks=[payload])

        return h264_base.H264BaseClipEncoder(w, h, info.fps, info.range, spec.crf, gop,
                                             None if steps == 0 else run, key_of, always=refine is True)

    def _h264_frame(self, key: Encoded, p: DDCMParams, decoder: h264_base.H264Decoder | None, payload: bytes,
                    height: int, width: int, channels: int, planar, options: dict) -> tuple[Any, Any]:
        """A frame of a clip on an H.264 base: its planes and the decoder (the reference the next frame needs)."""
        self.check_decode_options(options)
        if planar is None or planar[0] != "420" or channels != 3:
            raise CorruptInputError("corrupt file: a ddcm clip on an H.264 base is coded as 4:2:0 YCbCr planes")
        if key.model != p.model_id:
            raise CorruptInputError(f"corrupt ddcm header: model {key.model!r} does not refine an H.264 base")
        refined, au = h264_base.split_frame(payload)
        if decoder is None:
            decoder = h264_base.H264Decoder(width, height, au)
            base = decoder.decode()
        else:
            base = decoder.decode(au)
        if not refined:
            return base, decoder
        if p.steps == 0:
            raise CorruptInputError("corrupt ddcm clip: a refined frame, but the clip's header has no refinement (n 0)")
        rgb = self._decode_refinement(key, p, b"", h264_base.to_rgb(base, planar[1]), height, width, 3, options)
        return h264_base.from_rgb(rgb, planar[1]), decoder

    def compress_keyframe(self, image: np.ndarray, preset: str | None = None, *, predicted: bool = False,
                          **params) -> tuple[Encoded, np.ndarray, Any]:
        if params.get("ensemble") is None:      # a clip's frames: one refiner pass each, unless asked
            params = {**params, "ensemble": 1}
        if predicted:
            params = self._predicting_params(image, preset, params)
        encoded, recon = self._compress(image, preset, dict(params))
        p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
        h, w, c = image.shape
        return encoded, recon, (inter.keyframe_reference(p, encoded, h, w, c) if predicted else None)

    def compress_predicted(self, image: np.ndarray, reference: Any, key: Encoded,
                           **params) -> tuple[bytes, np.ndarray, Any]:
        """The P-frame: the opq P-frame of ``image`` from ``reference`` and, where it beats that base (MSE), the
        header's refinement over it."""
        from diffcodec.methods.opq import OPQCodec

        if set(params) - {"device"}:
            raise UsageError(f"a ddcm P-frame is coded with its clip's header, not {', '.join(sorted(params))}")
        p = DDCMParams.from_header(key.params, key.rng, key.model)
        if reference is None or not inter.predicts_over(p.base):
            raise UsageError(f"ddcm P-frames are built on an opq base layer; this clip's keyframe has "
                             f"{'base ' + p.base if p.base else 'none'} (give --base opq-PRESET, or --gop 1)")
        base_payload, base, ref = OPQCodec().compress_predicted(image, reference, inter.opq_key(p))
        out, indices = base, b""
        if p.steps:
            prior = load_prior(p.space, resolve_device(params.get("device")), base=p.base, refiner=p.refiner)
            recon, payload = self._refine_toward(image, prior, p, base, parse_base(p.base))
            if metrics.mse(recon, image) < metrics.mse(base, image):
                out, indices = recon, payload
        return inter.join(out is not base, base_payload, indices), out, ref

    def decompress_keyframe(self, encoded: Encoded, height: int, width: int, channels: int, *,
                            planar: tuple[str, str] | None = None, **options) -> tuple[Any, Any]:
        p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
        if h264_base.is_h264_base(p.base):
            if len(encoded.chunks) != 1:
                raise CorruptInputError("ddcm file must hold exactly one payload chunk")
            return self._h264_frame(encoded, p, None, encoded.chunks[0], height, width, channels, planar, options)
        if planar is not None:
            raise CorruptInputError(f"corrupt file: {self.name} clips are not coded as YCbCr planes (but on an "
                                    f"H.264 base)")
        return self._decompress(encoded, height, width, channels, options, reference=True)

    def decompress_predicted(self, payload: bytes, reference: Any, key: Encoded, height: int, width: int,
                             channels: int, *, planar: tuple[str, str] | None = None,
                             **options) -> tuple[Any, Any]:
        from diffcodec.methods.opq import OPQCodec

        self.check_decode_options(options)
        p = DDCMParams.from_header(key.params, key.rng, key.model)
        if h264_base.is_h264_base(p.base) and isinstance(reference, h264_base.H264Decoder):
            return self._h264_frame(key, p, reference, payload, height, width, channels, planar, options)
        if planar is not None or reference is None or not inter.predicts_over(p.base):
            raise CorruptInputError("corrupt file: a ddcm P-frame in a clip without an opq base layer (or coded "
                                    "as YCbCr planes)")
        refined, base_payload, indices = inter.split(payload)
        base, ref = OPQCodec().decompress_predicted(base_payload, reference, inter.opq_key(p), height, width,
                                                    channels)
        if not refined:
            return base, ref
        if p.steps == 0:
            raise CorruptInputError("corrupt ddcm P-frame: refined, but the clip's header has no refinement (n 0)")
        return self._decode_refinement(key, p, indices, base, height, width, channels, options), ref

    # ---------------------------------------------------------------- decoding
    def decompress(self, encoded: Encoded, height: int, width: int, channels: int, **options) -> np.ndarray:
        """Options: device ('auto' | 'cpu' | 'cuda'; default 'auto', as `encode`)."""
        return self._decompress(encoded, height, width, channels, options)[0]

    def _decompress(self, encoded: Encoded, height: int, width: int, channels: int, options: dict,
                    reference: bool = False) -> tuple[np.ndarray, Any]:
        """The image and, with ``reference`` on an opq base (a clip's keyframe), the reference its base layer
        leaves for the P-frames after it (the base decoded once for both)."""
        self.check_decode_options(options)
        p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
        if p.base is None and p.prior is None and missing_models(p.space):
            raise UnsupportedError(f"file codes in the {p.space} space, which needs "
                                   f"{' and '.join(missing_models(p.space))}; they are not installed in "
                                   f"{artifacts.artifacts_dir()}, so this diffcodec cannot decode it")
        if encoded.model != p.model_id:
            what = f"base layer {p.base!r}" if p.base is not None else f"space {p.space!r}"
            raise CorruptInputError(f"corrupt ddcm header: model {encoded.model!r} does not match {what}")
        if len(encoded.chunks) != 1:
            raise CorruptInputError("ddcm file must hold exactly one payload chunk")
        base_data, index_data = (None, encoded.chunks[0]) if p.base is None else split_layers(encoded.chunks[0])
        if p.steps == 0 and index_data:            # the encoder found the base better than its refinement
            raise CorruptInputError("corrupt ddcm payload: index bytes after a base layer decoded as is")
        ref = None
        if p.base is None:
            base = None
        elif reference and inter.predicts_over(p.base):
            base, ref = inter.decode_keyframe_base(p, base_data, height, width, channels)
        else:
            base = decode_base(base_data, p.base, p.base_sha, height, width, channels, p.base_stripe)
        if p.steps == 0:
            return base, ref
        return self._decode_refinement(encoded, p, index_data, base, height, width, channels, options,
                                       base_disposable=ref is None), ref

    def _decode_refinement(self, encoded: Encoded, p: DDCMParams, index_data: bytes, base: np.ndarray | None,
                           height: int, width: int, channels: int, options: dict,
                           base_disposable: bool = False) -> np.ndarray:
        """The image that header ``p`` (of ``encoded``) and ``index_data`` decode to over ``base`` (the decoded
        base layer, None without one; with ``base_disposable`` a tiled refinement may overwrite it)."""
        from diffcodec.data import rgb_to_channels

        if p.prior is not None:             # named by id + sha256 prefix: refused before any weight is read
            from diffcodec import user_models

            if user_models.check_header(p.prior, encoded.model_sha)["space"] != p.space:
                raise CorruptInputError(f"corrupt ddcm header: space {p.space!r}, model {p.prior!r} is not")
        prior = load_prior(p.space, resolve_device(options.get("device")), base=p.base, missing=UnsupportedError,
                           prior=p.prior, refiner=p.refiner)
        if artifacts.sha_prefix32(prior.sha) != encoded.model_sha:
            raise ModelError(f"file was encoded with a different {prior.model_id} model (sha256 prefix "
                             f"{encoded.model_sha:08x}, installed {prior.sha[:8]}); decode it with the model "
                             f"that wrote it")
        if p.steps > max_steps(prior.schedule):
            raise CorruptInputError(f"corrupt ddcm header: {p.steps} steps, the prior takes "
                                    f"{max_steps(prior.schedule)}")
        try:
            n_coded = sum(_coded_steps(prior.schedule, p.steps)[1])
        except UsageError as e:             # an N the prior's scheduler config cannot step
            raise CorruptInputError(f"corrupt ddcm header: {e}") from None
        it = iter(decode_payload(index_data, [alphabet(p.k, p.atoms)] * n_coded))
        spec = None if p.base is None else parse_base(p.base, err=_corrupt_base)
        out = self._run(prior, p, height, width, base, spec, lambda i, cb, x0_hat: next(it), base_disposable)
        return rgb_to_channels(out, channels)

    def decode_steps(self, encoded: Encoded, **options) -> int:
        """The header's N: one prior (or refiner) pass per strided step, 0 for a base layer decoded as is."""
        return DDCMParams.from_header(encoded.params, encoded.rng, encoded.model).steps

    # ---------------------------------------------------------------- compressed generation
    def generate_steps(self, **options) -> int:
        steps = options.get("steps")
        return DEFAULT_STEPS if steps is None else steps

    def generate(self, height: int, width: int, **options) -> tuple[Encoded, np.ndarray]:
        """An unconditional sample whose codebook choices are random (seeded) and the encoding that decodes to
        it (options: :data:`GENERATE_OPTIONS`; None or absent: the default). The sample is uint8
        (height, width, 3)."""
        unknown = set(options) - set(GENERATE_OPTIONS)
        if unknown:
            raise UsageError(f"ddcm generation takes no option(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(GENERATE_OPTIONS)})")
        from diffcodec.methods.ddcm.generation import sample

        encoded, image, stats = sample(height, width, **{k: v for k, v in options.items() if v is not None})
        self.last_stats = stats
        return encoded, image

    def base_layer(self, encoded: Encoded, height: int, width: int, channels: int) -> tuple[str, list[bytes]]:
        """A standard-codec base: its file as stored (any viewer opens it), or its stripes' files, top to bottom;
        an opq base: a one-image opq .ddc."""
        from diffcodec import container

        p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
        if p.base is None or len(encoded.chunks) != 1:
            raise UsageError("this ddcm file has no base layer (it was coded without --base)")
        spec = parse_base(p.base)
        if spec.kind == "x264":
            raise UsageError("this ddcm file is a clip on an H.264 base; its base is the clip's x264 stream")
        data, _ = split_layers(encoded.chunks[0])
        if spec.kind != "opq":
            files = split_stripes(data, len(stripe_bounds(height, p.base_stripe))) if p.base_stripe else [data]
            return {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}[spec.name], files
        return ".ddc", [container.frame("opq", opq_base_encoded(spec.name, p.base_sha, data), width, height,
                                        channels)]

    # ---------------------------------------------------------------- info
    def describe(self, params: dict, payloads: list[bytes]) -> dict[str, Any]:
        """The mode and, with a base layer, how the payload splits into base and index bytes (None values where
        the file is malformed), and ``summary``: the mode in words."""
        space = params.get("sp") if isinstance(params, dict) else None
        base = params.get("b") if isinstance(params, dict) else None
        out: dict[str, Any] = {"space": space, "base": base, "base_bytes": None, "index_bytes": None}
        try:
            if len(payloads) == 1:
                if h264_base.is_h264_base(base):
                    out["base_bytes"], out["index_bytes"] = len(h264_base.split_frame(payloads[0])[1]), 0
                elif base is None:
                    out["base_bytes"], out["index_bytes"] = 0, len(payloads[0])
                else:
                    b, idx = split_layers(payloads[0])
                    out["base_bytes"], out["index_bytes"] = len(b), len(idx)
        except (CorruptInputError, TypeError):
            pass
        summary = f"space {space}" + (f", base layer {base}" if base else ", no base layer")
        if isinstance(params, dict) and params.get("pf"):     # a user-added prior (absent for the shipped ones)
            out["prior"] = params["pf"]
            summary += f", on a user-added {params['pf']} prior (the header's model)"
        if base and out["base_bytes"] is not None:
            summary += f" ({out['base_bytes']:,} base + {out['index_bytes']:,} index bytes)"
        stripe = params.get("bh") if isinstance(params, dict) else None
        if base and type(stripe) is int and stripe > 0:
            summary += f", the base in stripes of {stripe} rows"
        if isinstance(params, dict) and params.get("n") == 0:
            summary += ", decoded as the base layer alone (the refinement did not beat it)"
        out["summary"] = summary
        return out
