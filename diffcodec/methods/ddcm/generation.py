"""Compressed generation: an unconditional sample whose codebook choices are random (seeded), with the file
that decodes to it."""

from __future__ import annotations

import random

import numpy as np

from diffcodec import artifacts, codebooks_rng, container
from diffcodec.device import resolve_device
from diffcodec.errors import UsageError
from diffcodec.methods.ddcm.combinatorics import alphabet
from diffcodec.methods.ddcm.params import DEFAULT_CODEBOOK, DEFAULT_K, DEFAULT_STEPS, METHOD, DDCMParams
from diffcodec.methods.ddcm.payload import encode_payload
from diffcodec.methods.ddcm.priors import load_prior
from diffcodec.methods.ddcm.process import RunStats, run_process


def sample(height: int, width: int, *, k: int = DEFAULT_K, steps: int = DEFAULT_STEPS, atoms: int = 1,
           codebook: str = DEFAULT_CODEBOOK, space: str = "pixel", seed: int = 0,
           device: str | None = "auto") -> tuple[container.Encoded, np.ndarray, RunStats]:
    """The encoding of a sample in ``space`` (pixel or latent), the sample (uint8 (height, width, 3)) and the
    run's stats (what :meth:`DDCMCodec.generate` returns, with the stats)."""
    p = DDCMParams(steps=steps, k=k, atoms=atoms, codebook=codebook, space=space, seed=seed).check()
    if not (1 <= height <= container.MAX_DIMENSION and 1 <= width <= container.MAX_DIMENSION):
        raise UsageError(f"--size must be 1..{container.MAX_DIMENSION} pixels, got {width}x{height}")
    prior = load_prior(space, resolve_device(device))
    if p.steps > prior.schedule.T:
        raise UsageError(f"--steps {p.steps} exceeds the prior's {prior.schedule.T} timesteps")
    a = alphabet(p.k, p.atoms)

    def choose(i, cb, x0_hat):   # not normative: any choice decodes; these are uniform and repeatable
        return random.Random(codebooks_rng.philox_key(seed, codebooks_rng.KIND_CHOICE, i, 0)).randrange(a)

    x, stats = run_process(prior, p, prior.shape(height, width), choose)
    payload = encode_payload(stats.symbols, [a] * len(stats.symbols))
    encoded = container.Encoded(model=prior.model_id, model_sha=artifacts.sha_prefix32(prior.sha), params=p.header(),
                                rng=p.rng_spec(), chunks=[payload])
    return encoded, prior.to_image(x, height, width), stats


def generate(height: int = 64, width: int = 64, *, k: int = DEFAULT_K, steps: int = DEFAULT_STEPS, atoms: int = 1,
             codebook: str = DEFAULT_CODEBOOK, space: str = "pixel", seed: int = 0,
             device: str | None = "auto") -> tuple[bytes, np.ndarray]:
    """An unconditional sample whose codebook choices are random (seeded by ``seed``) in ``space`` (pixel or
    latent): returns the .ddc bytes (decoding them reproduces the sample) and the sample, uint8
    (height, width, 3)."""
    from diffcodec.methods import get_codec

    encoded, image = get_codec(METHOD).generate(height, width, k=k, steps=steps, atoms=atoms, codebook=codebook,
                                                space=space, seed=seed, device=device)
    return container.frame(METHOD, encoded, width, height, 3), image
