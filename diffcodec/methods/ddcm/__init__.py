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
* :class:`DiffusersPrior` (``--prior NAME``, model NAME, header ``pf`` = ``"diffusers"``): a pretrained diffusers model
  the user registered (`diffcodec models add NAME --diffusers DIR`, :mod:`diffcodec.user_models`), in its own space,
  with the process its scheduler config defines (:mod:`diffcodec.diffusion.diffusers_adapter`, imported only then).

Grayscale images are replicated to 3 channels, coded as RGB, and decoded back to one channel as
``(2 (R + G + B) + 3) // 6`` (the rounded mean); the opq base layer of a grayscale image is opq's own
one-channel coding, replicated to 3 channels as the condition.

Layout: :mod:`.combinatorics` (subsets, alphabets, atoms <-> symbols), :mod:`.payload` (the mixed-radix payload,
base + index layers), :mod:`.priors` (the denoiser of each mode), :mod:`.base_layer` (the opq base layer),
:mod:`.params` (parameters, header form, file sizes, the --bpp rule), :mod:`.process` (the coded reverse
process), :mod:`.codec` (:class:`DDCMCodec`, registered as method ``ddcm``), :mod:`.generation` (compressed
generation).
"""

from __future__ import annotations

from diffcodec.methods.ddcm.base_layer import BaseLayer, check_base, code_base, decode_base
from diffcodec.methods.ddcm.codec import (
    AUTO_BASES,
    AUTO_CODEC_BASES,
    BASE_DEFAULT_PRESET,
    ENCODE_OPTIONS,
    GENERATE_OPTIONS,
    PRESETS,
    DDCMCodec,
)
from diffcodec.methods.ddcm.combinatorics import (
    alphabet,
    atoms_to_symbol,
    bits_per_step,
    select_atoms,
    subset_rank,
    subset_unrank,
    symbol_to_atoms,
)
from diffcodec.methods.ddcm.generation import generate
from diffcodec.methods.ddcm.params import (
    BASE_DEFAULT_STEPS,
    BASE_FREE_STEP_MAX_ATOMS,
    BASE_MAX_AUTO_STEPS,
    DEFAULT_CODEBOOK,
    DEFAULT_K,
    DEFAULT_SPACE,
    DEFAULT_STEPS,
    ENSEMBLES,
    K_GRID,
    LATENT_DEFAULT_STEPS,
    MAX_ATOMS,
    MAX_AUTO_ATOMS,
    MAX_AUTO_STEPS,
    MAX_K,
    MAX_STEPS,
    METHOD,
    PRECISIONS,
    PRIOR_FORMATS,
    STEPS_GRID,
    BelowBaseLayerError,
    DDCMParams,
    choose_params,
    default_steps,
    file_bytes,
)
from diffcodec.methods.ddcm.payload import (
    DIGIT_BITS,
    MAX_BASE_BYTES,
    decode_payload,
    encode_payload,
    join_layers,
    payload_bits,
    payload_bytes,
    split_layers,
)
from diffcodec.methods.ddcm.priors import (
    BASE_MODEL,
    LATENT_CLIP,
    LATENT_MODELS,
    SPACE_MODELS,
    SPACES,
    DiffusersPrior,
    LatentPrior,
    PixelPrior,
    Prior,
    RefinerPrior,
    auto_precision,
    load_prior,
    missing_models,
    native_bf16,
)
from diffcodec.methods.ddcm.process import ENSEMBLE_VIEWS, RunStats, run_process

__all__ = [
    # codec
    "DDCMCodec", "METHOD", "PRESETS", "AUTO_BASES", "AUTO_CODEC_BASES", "BASE_DEFAULT_PRESET", "ENCODE_OPTIONS",
    "GENERATE_OPTIONS", "generate",
    # combinatorics
    "subset_rank", "subset_unrank", "alphabet", "bits_per_step", "atoms_to_symbol", "symbol_to_atoms",
    "select_atoms",
    # payload
    "DIGIT_BITS", "MAX_BASE_BYTES", "payload_bits", "payload_bytes", "encode_payload", "decode_payload",
    "join_layers", "split_layers",
    # priors
    "Prior", "PixelPrior", "RefinerPrior", "LatentPrior", "DiffusersPrior", "load_prior", "missing_models",
    "native_bf16", "auto_precision", "SPACE_MODELS", "SPACES", "LATENT_MODELS", "LATENT_CLIP", "BASE_MODEL",
    # base layer
    "BaseLayer", "check_base", "code_base", "decode_base",
    # parameters
    "DDCMParams", "choose_params", "file_bytes", "default_steps", "BelowBaseLayerError", "DEFAULT_STEPS",
    "DEFAULT_K", "DEFAULT_CODEBOOK", "DEFAULT_SPACE", "MAX_K", "MAX_ATOMS", "MAX_STEPS", "PRECISIONS", "PRIOR_FORMATS",
    "LATENT_DEFAULT_STEPS", "BASE_DEFAULT_STEPS", "BASE_FREE_STEP_MAX_ATOMS", "STEPS_GRID", "MAX_AUTO_STEPS",
    "BASE_MAX_AUTO_STEPS", "K_GRID", "MAX_AUTO_ATOMS", "ENSEMBLES",
    # the coded process
    "RunStats", "run_process", "ENSEMBLE_VIEWS",
]
