"""Priors: a denoiser + the space it works in, one per mode (pixel, latent, conditional on a base layer), and
the precision the pixel-space ones run at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffcodec import artifacts
from diffcodec.errors import ModelError, UsageError

# space -> model id (the prior's artifact is codebooks/models/<model id>.safetensors)
SPACE_MODELS = {"pixel": "pixel-ddpm", "latent": "latent-ddpm"}
SPACES = ("pixel", "latent")
LATENT_MODELS = ("models/latent-ae", "models/latent-ddpm")     # what --space latent needs installed
LATENT_CLIP = 10.0              # latent x0_hat is clamped to +-10 (latents are unit-variance: a safety net for
                                # eps-priors at the noisiest step, where 1/alpha_t ~ 2e4 on the cosine schedule)
BASE_MODEL = "opq-refiner"      # the conditional prior of an opq --base (pixel space only)
CODEC_BASE_MODEL = "codec-refiner"  # ... and of a standard-codec --base (jpeg, webp, avif)
CLIP_MODEL = "opq-clip-refiner"  # an opq base's refiner where installed (codec-refiner's condition, trained on opq
                                 # keyframes and P-frames); BASE_MODEL stays for old files and --param refiner
CODEC_MODEL_2 = "codec-refiner-2"  # a standard-codec base's refiner (codec-refiner trained on, with qualities to
                                   # 90); CODEC_BASE_MODEL stays for old files and --param refiner
CODEC_MODEL_3 = "codec-refiner-3"  # ... and codec-refiner-2 trained on: the default where installed
H264_MODEL = "h264-refiner"     # an H.264 base's refiner where installed (codec-refiner-3 trained on x264 frames)
# per base kind, oldest first: the model a header names without a newer one, then the newer models (the encoder
# takes the newest installed; files naming any of them decode with it)
REFINERS = {"opq": (BASE_MODEL, CLIP_MODEL), "codec": (CODEC_BASE_MODEL, CODEC_MODEL_2, CODEC_MODEL_3),
            "x264": (CODEC_MODEL_3, H264_MODEL)}


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
    from diffcodec.diffusion.models import load_denoiser
    from diffcodec.diffusion.samplers import x0_predictor

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

    def condition(self, base_rgb: np.ndarray, spec=None):
        from diffcodec.data import to_tensor

        return to_tensor(base_rgb[None]).to(self.device)


class CodecRefinerPrior(PixelPrior):
    """Conditional DDCM on a standard-codec base: `models/codec-refiner`, conditioned on the decoded base and on
    its codec and quality (:func:`diffcodec.methods.codec_refiner.condition`)."""

    def __init__(self, device: str, model: str = CODEC_BASE_MODEL):
        from diffcodec.methods.codec_refiner import CONDITION_CHANNELS

        self.schedule, self.model_fn, manifest = _load_unet(model, device, channels=3,
                                                            cond_channels=CONDITION_CHANNELS, clip=1.0)
        self.model_id, self.sha, self.device = model, manifest["sha256"], device

    def condition(self, base_rgb: np.ndarray, spec=None):
        from diffcodec.methods.codec_refiner import condition

        if spec.kind == "opq":
            return condition(base_rgb[None], "opq", spec.name).to(self.device)
        if spec.kind == "x264":
            from diffcodec.methods.ddcm.h264_base import CONDITION_KIND, condition_quality

            return condition(base_rgb[None], CONDITION_KIND, condition_quality(spec.crf)).to(self.device)
        return condition(base_rgb[None], spec.name, spec.quality).to(self.device)


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


class DiffusersPrior(Prior):
    """DDCM on a model the user added (`diffcodec models add NAME --diffusers DIR`): a pixel UNet2DModel, or an
    AutoencoderKL + UNet2DConditionModel on the empty-prompt embedding, run with the process its scheduler config
    defines (:mod:`diffcodec.diffusion.diffusers_adapter`). The header names it by NAME (``model``) and the first 4
    bytes of its registration's sha256 (``model_sha``); its files are re-hashed on every load."""

    format = "diffusers"

    def __init__(self, name: str, device: str):
        from diffcodec import user_models
        from diffcodec.diffusion.diffusers_adapter import LoadedModel

        record = user_models.load_verified(name)
        self.loaded = LoadedModel(user_models.folder_of(record), record, user_models.load_embedding(record), device)
        self.space, self.model_id, self.sha, self.device = record["space"], name, record["sha256"], device
        self.schedule, self.model_fn = self.loaded.schedule, self.loaded.model_fn

    def shape(self, height, width):
        return self.loaded.shape(height, width)

    def to_space(self, rgb):
        return self.loaded.to_space(rgb)

    def to_image(self, x, height, width):
        return self.loaded.to_image(x, height, width)


def missing_models(space: str) -> list[str]:
    """The artifacts a space needs that are not installed (weights file absent)."""
    names = LATENT_MODELS if space == "latent" else ()
    return [n for n in names if not artifacts.artifact_paths(n)[0].is_file()]


def model_installed(name: str) -> bool:
    return artifacts.artifact_paths(f"models/{name}")[0].is_file()


def load_prior(space: str, device: str, base: str | None = None, missing=UsageError, prior: str | None = None,
               refiner: str | None = None) -> Prior:
    """The prior of a mode. Absent latent models raise ``missing`` (UsageError when encoding, UnsupportedError
    when decoding) naming them; a damaged or mismatched model raises ModelError. ``prior``: a model the user added
    (:class:`DiffusersPrior`), in the space it was registered with; ``refiner``: a base's newer refiner (REFINERS)."""
    if space not in SPACE_MODELS:
        raise UsageError(f"unknown space {space!r} (use pixel or latent)")
    if prior is not None:
        if base is not None:
            raise UsageError(f"--prior {prior} is an unconditional model: --base (conditional ddcm) runs on the "
                             f"shipped refiners only")
        loaded = DiffusersPrior(prior, device)
        if loaded.space != space:
            raise UsageError(f"model {prior!r} works in the {loaded.space} space, not {space}")
        return loaded
    if base is not None:
        if space != "pixel":
            raise UsageError("--base (conditional ddcm) works in --space pixel only")
        from diffcodec.methods.ddcm.base_layer import parse_base

        if refiner is not None:
            if not model_installed(refiner):
                older = next(models[0] for models in REFINERS.values() if refiner in models)
                raise missing(f"this base layer is refined by models/{refiner}, which is not installed in "
                              f"{artifacts.artifacts_dir()} (or encode with --param refiner={older})")
            return CodecRefinerPrior(device, refiner)
        kind = parse_base(base).kind
        if kind == "x264":
            return CodecRefinerPrior(device, REFINERS["x264"][0])
        return RefinerPrior(device) if kind == "opq" else CodecRefinerPrior(device)
    if space == "latent":
        absent = missing_models(space)
        if absent:
            raise missing(f"--space latent needs the latent models {' and '.join(absent)}, which are not installed "
                          f"in {artifacts.artifacts_dir()} (train them with `diffcodec train autoencoder` and "
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
    has native bf16 (faster end to end at a few hundredths of a dB; measured: benchmarks/RESULTS.md, 'Speed work
    this session'), else fp32; the latent prior stays fp32 (its network is small next to the autoencoder); a
    user-added diffusers prior runs fp16 on CUDA (autocast: the UNet's matmuls and convolutions; its VAE and the step
    arithmetic stay float32), fp32 elsewhere."""
    if getattr(prior, "format", None) == "diffusers":    # a user's pretrained model: fp16 on a GPU
        import torch

        return "fp16" if torch.device(prior.device).type == "cuda" else "fp32"
    return "bf16" if prior.space == "pixel" and native_bf16(prior.device) else "fp32"
