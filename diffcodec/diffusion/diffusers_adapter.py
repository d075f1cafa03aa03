"""Pretrained diffusion models in the diffusers format, read from a local folder (never downloaded).

The optional `diffusers` extra (`pip install 'diffcodec[diffusers]'`: diffusers, and transformers for a text encoder)
is imported only here, and this module only when a user-added model is used (`diffcodec models add`, ddcm
`--prior NAME`). Two kinds of folder are taken:

* **pixel**: a `UNet2DModel` (``unet/``) and a scheduler config (``scheduler/``), as `DDPMPipeline` saves them
  (e.g. a CelebA-HQ or ImageNet pixel DDPM);
* **latent**: an `AutoencoderKL` (``vae/``), a `UNet2DConditionModel` (``unet/``) and a scheduler config, plus a text
  encoder and tokenizer used once, at registration, to compute the empty-prompt embedding the UNet is conditioned
  on (e.g. Stable Diffusion 2.1 base).

What the scheduler config says is honoured (:func:`resolve_process`): the training betas (``beta_schedule``
linear / scaled_linear / squaredcos_cap_v2, or ``trained_betas``; ``rescale_betas_zero_snr``), the prediction type
(epsilon / v_prediction / sample), the inference timesteps (``timestep_spacing`` leading / linspace / trailing and
``steps_offset``, exactly as diffusers' ``set_timesteps``), the clipping of the x0 prediction (``clip_sample``,
``clip_sample_range``), and the VAE's ``scaling_factor`` / ``shift_factor``. The reverse step itself is DDCM's: the
DDPM posterior (DDPMScheduler.step with the fixed-small variance), whatever scheduler class the folder names
(``variance_type`` and DDIM's ``set_alpha_to_one`` do not apply; dynamic thresholding is refused).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec.diffusion.schedules import NoiseSchedule
from diffcodec.errors import ModelError, UsageError

INSTALL_HINT = "pip install 'diffcodec[diffusers]'"
FORMAT = "diffusers"
# scheduler classes of discrete variance-preserving diffusion (their configs share the training betas, prediction
# type and timestep spacing); flow-matching and variance-exploding schedulers are another process
VP_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
                 "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler", "HeunDiscreteScheduler",
                 "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler",
                 "KDPM2AncestralDiscreteScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
                 "DDPMParallelScheduler", "DDIMParallelScheduler")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}   # diffusers -> our parameterization names
SPACINGS = ("leading", "linspace", "trailing")
# weight files of one component folder, in the order diffusers / transformers load them:
# (file name, variant, safetensors); sharded checkpoints are named by their index file
_WEIGHTS = {
    "diffusers": (("diffusion_pytorch_model.safetensors", None, True),
                  ("diffusion_pytorch_model.safetensors.index.json", None, True),
                  ("diffusion_pytorch_model.fp16.safetensors", "fp16", True),
                  ("diffusion_pytorch_model.bin", None, False),
                  ("diffusion_pytorch_model.fp16.bin", "fp16", False)),
    "transformers": (("model.safetensors", None, True),
                     ("model.safetensors.index.json", None, True),
                     ("model.fp16.safetensors", "fp16", True),
                     ("pytorch_model.bin", None, False),
                     ("pytorch_model.fp16.bin", "fp16", False)),
}


def require_diffusers(what: str = "a diffusers model", error=UsageError):
    """Import diffusers (offline: no hub access) or raise ``error`` with a one-line install hint."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")          # everything is read from local folders
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import diffusers
    except ImportError:
        raise error(f"{what} needs the optional diffusers package, which is not installed: {INSTALL_HINT}") from None
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    return diffusers


def _require_transformers(what: str, error=UsageError):
    try:
        import transformers
    except ImportError:
        raise error(f"{what} needs the optional transformers package, which is not installed: "
                    f"{INSTALL_HINT}") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


# ------------------------------------------------------------------------------------------ the noise schedule

def _betas(process: dict[str, Any]) -> torch.Tensor:
    """The training betas exactly as diffusers' schedulers compute them (float32 torch)."""
    T = process["num_train_timesteps"]
    if process.get("trained_betas") is not None:
        betas = torch.tensor(process["trained_betas"], dtype=torch.float32)
    elif process["beta_schedule"] == "linear":
        betas = torch.linspace(process["beta_start"], process["beta_end"], T, dtype=torch.float32)
    elif process["beta_schedule"] == "scaled_linear":
        betas = torch.linspace(process["beta_start"] ** 0.5, process["beta_end"] ** 0.5, T, dtype=torch.float32) ** 2
    elif process["beta_schedule"] == "squaredcos_cap_v2":
        def f(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    else:
        raise ModelError(f"beta_schedule {process['beta_schedule']!r} is not supported "
                         f"(use {', '.join(BETA_SCHEDULES)})")
    if process.get("rescale_betas_zero_snr"):         # Lin et al. 2024, Algorithm 1, as diffusers does it
        ab_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
        first, last = ab_sqrt[0].clone(), ab_sqrt[-1].clone()
        ab_sqrt -= last
        ab_sqrt *= first / (first - last)
        ab = ab_sqrt ** 2
        alphas = torch.cat([ab[0:1], ab[1:] / ab[:-1]])
        betas = 1 - alphas
    if betas.shape != (T,):
        raise ModelError(f"the scheduler config gives {tuple(betas.shape)} betas for {T} timesteps")
    return betas


class DiffusersSchedule(NoiseSchedule):
    """The discrete schedule of a diffusers scheduler config (:func:`resolve_process`): alpha_bar is diffusers'
    own float32 ``alphas_cumprod`` (held in float64), and :meth:`inference_timesteps` is its ``set_timesteps``."""

    def __init__(self, process: dict[str, Any]):   # not NoiseSchedule.__init__: the tables follow diffusers' rule
        self.process = dict(process)
        self.name = FORMAT
        self.T = int(process["num_train_timesteps"])
        betas = _betas(process)
        alpha_bar = torch.cumprod(1.0 - betas, dim=0)
        self.betas = betas.double().numpy()
        self.alpha_bar = alpha_bar.double().numpy()
        self.alpha = np.sqrt(self.alpha_bar)
        self.sigma = np.sqrt(1.0 - self.alpha_bar)
        with np.errstate(divide="ignore"):          # a zero-terminal-SNR schedule ends at alpha_bar = 0
            self.snr = self.alpha_bar / (1.0 - self.alpha_bar)
            self.log_snr = np.log(self.alpha_bar) - np.log1p(-self.alpha_bar)
        self._tables: dict[str, torch.Tensor] = {}

    @property
    def config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: self.process[k] for k in sorted(self.process)}}

    @property
    def max_steps(self) -> int:
        """The most inference steps whose timesteps all lie in 0..T-1 (leading spacing with an offset: T - offset)."""
        n = self.T
        while n > 1 and not self._valid(n):
            n -= 1
        return n

    def _raw_timesteps(self, n: int) -> np.ndarray:
        T, spacing, offset = self.T, self.process["timestep_spacing"], int(self.process["steps_offset"])
        if spacing == "linspace":
            return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
        if spacing == "leading":
            return (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64) + offset
        return np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1        # trailing

    def valid_steps(self, n: int) -> bool:
        """Whether ``n`` inference steps give n distinct timesteps in 0..T-1 (diffusers' trailing spacing does not for
        some n: e.g. 61 of 1000 gives 62, the last -1)."""
        return 1 <= n <= self.T and self._valid(n)

    def _valid(self, n: int) -> bool:
        ts = self._raw_timesteps(n)
        return len(ts) == n and bool(np.all(np.diff(ts) < 0)) and ts[0] < self.T and ts[-1] >= 0

    def inference_timesteps(self, n: int) -> list[int]:
        """The ``n`` descending timesteps diffusers' ``DDPMScheduler.set_timesteps(n)`` gives for this config."""
        if not 1 <= n <= self.T:
            raise ValueError(f"need 1 <= n <= T, got n={n}, T={self.T}")
        if not self._valid(n):
            raise UsageError(f"{n} steps are not possible with this model's scheduler "
                             f"({self.process['timestep_spacing']} spacing, steps_offset "
                             f"{self.process['steps_offset']}, {self.T} timesteps): at most {self.max_steps}")
        return [int(t) for t in self._raw_timesteps(n)]


def resolve_process(scheduler_config: dict[str, Any]) -> dict[str, Any]:
    """What DDCM takes from a diffusers scheduler config, with the scheduler class's defaults filled in (the class
    is instantiated from the config, so a key the file leaves out means what it means to diffusers)."""
    diffusers = require_diffusers("reading a diffusers scheduler config")
    name = scheduler_config.get("_class_name")
    if name not in VP_SCHEDULERS:
        raise ModelError(f"scheduler {name!r} is not a discrete variance-preserving diffusion scheduler; ddcm needs "
                         f"one of {', '.join(VP_SCHEDULERS)}")
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise ModelError(f"this diffusers ({diffusers.__version__}) has no scheduler {name!r}")
    cfg = dict(cls.from_config(scheduler_config).config)
    if cfg.get("thresholding"):
        raise ModelError("the scheduler uses dynamic thresholding, which ddcm does not implement")
    process = {
        "scheduler": name,
        "num_train_timesteps": int(cfg["num_train_timesteps"]),
        "beta_schedule": cfg.get("beta_schedule", "linear"),
        "beta_start": float(cfg.get("beta_start", 0.0001)),
        "beta_end": float(cfg.get("beta_end", 0.02)),
        "trained_betas": None if cfg.get("trained_betas") is None else [float(b) for b in cfg["trained_betas"]],
        "rescale_betas_zero_snr": bool(cfg.get("rescale_betas_zero_snr", False)),
        "prediction_type": cfg.get("prediction_type", "epsilon"),
        "timestep_spacing": cfg.get("timestep_spacing", "leading"),
        "steps_offset": int(cfg.get("steps_offset", 0)),
        "clip_sample": bool(cfg.get("clip_sample", False)),
        "clip_sample_range": float(cfg.get("clip_sample_range", 1.0)),
    }
    if process["trained_betas"] is None and process["beta_schedule"] not in BETA_SCHEDULES:
        raise ModelError(f"beta_schedule {process['beta_schedule']!r} is not supported (ddcm takes "
                         f"{', '.join(BETA_SCHEDULES)} or trained_betas)")
    if process["prediction_type"] not in PREDICTIONS:
        raise ModelError(f"prediction_type {process['prediction_type']!r} is not supported "
                         f"(ddcm takes {', '.join(PREDICTIONS)})")
    if process["timestep_spacing"] not in SPACINGS:
        raise ModelError(f"timestep_spacing {process['timestep_spacing']!r} is not supported ({', '.join(SPACINGS)})")
    if process["rescale_betas_zero_snr"] and process["prediction_type"] == "epsilon":
        raise ModelError("a zero-terminal-SNR schedule with epsilon prediction has no x0 prediction at the last "
                         "timestep (use a v_prediction model)")
    DiffusersSchedule(process)          # the betas are computable
    return process


def x0_from_output(out: torch.Tensor, x_t: torch.Tensor, t_batch: torch.Tensor, schedule: DiffusersSchedule,
                   process: dict[str, Any]) -> torch.Tensor:
    """The x0 prediction from the network output, with the scheduler config's clipping (DDPMScheduler.step's steps
    2 and 3)."""
    x0 = schedule.predict_x0(out, x_t, t_batch, PREDICTIONS[process["prediction_type"]])
    if process["clip_sample"]:
        x0 = x0.clamp(-process["clip_sample_range"], process["clip_sample_range"])
    return x0


def make_model_fn(unet, schedule: DiffusersSchedule, process: dict[str, Any], embedding: torch.Tensor | None = None):
    """``model_fn(x_t, t_batch, cond) -> x0_hat`` (the :mod:`diffcodec.diffusion.samplers` interface) of a diffusers
    UNet: integer timesteps in, the empty-prompt ``embedding`` as its cross-attention context (latent models), a
    learned-variance half of the output dropped, then :func:`x0_from_output`."""
    channels = int(process["channels"])

    def model_fn(x_t: torch.Tensor, t_batch: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        kw = {} if embedding is None else {"encoder_hidden_states": embedding.expand(x_t.shape[0], -1, -1)}
        out = unet(x_t, t_batch.to(x_t.device), return_dict=False, **kw)[0].to(x_t.dtype)
        if out.shape[1] == 2 * channels:          # learned variance: DDCM uses the posterior variance
            out = out[:, :channels]
        return x0_from_output(out, x_t, t_batch, schedule, process)

    return model_fn


# ------------------------------------------------------------------------------------------ the folder

def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def weight_files(folder: Path, library: str = "diffusers") -> tuple[list[str], str | None, bool]:
    """(files relative to ``folder``, variant, safetensors) of the checkpoint in a component folder, in the order
    diffusers / transformers pick one; a sharded checkpoint lists its index and its shards."""
    for name, variant, safetensors in _WEIGHTS[library]:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(_read_json(path).get("weight_map", {}).values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if not shards or missing:
                raise UsageError(f"{path} names shards that are not there: {', '.join(missing) or 'none'}")
            return [name, *shards], variant, safetensors
        return [name], variant, safetensors
    raise UsageError(f"no weights in {folder} (looked for {', '.join(n for n, _, _ in _WEIGHTS[library])})")


@dataclass
class Inspected:
    """What registration learns about a folder: the space, the files decoding reads (configs and weights, relative
    to the folder), those only registration reads (text encoder, tokenizer), how to load each component, the
    process parameters, and the empty-prompt embedding (latent models)."""

    space: str
    files: list[str]
    registration_files: list[str]
    load: dict[str, dict[str, Any]]
    process: dict[str, Any]
    embedding: torch.Tensor | None
    notes: list[str]


def _component(folder: Path, sub: str, library: str = "diffusers") -> tuple[dict[str, Any], list[str]]:
    path = folder / sub
    config_name = "config.json"
    if not (path / config_name).is_file():
        raise UsageError(f"{folder} has no {sub}/{config_name}")
    weights, variant, safetensors = weight_files(path, library)
    config = _read_json(path / config_name)
    return ({"class": config.get("_class_name") or (config.get("architectures") or [None])[0], "variant": variant,
             "safetensors": safetensors, "config": config},
            [f"{sub}/{config_name}", *(f"{sub}/{w}" for w in weights)])


def _down_multiple(unet_config: dict[str, Any]) -> int:
    """The factor the UNet's input size must divide by: 2 per down block but the last."""
    return 2 ** max(0, len(unet_config.get("down_block_types", ())) - 1)


def inspect_folder(folder: Path | str) -> Inspected:
    """Read a diffusers model folder (a pipeline folder with model_index.json, or unet/ + scheduler/ [+ vae/]),
    check that ddcm can run it, and compute the empty-prompt embedding of a latent model's text encoder."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    require_diffusers("`diffcodec models add --diffusers`")
    sched_path = folder / "scheduler" / "scheduler_config.json"
    if not sched_path.is_file():
        raise UsageError(f"{folder} has no scheduler/scheduler_config.json (a diffusers model folder has unet/ and "
                         f"scheduler/, and vae/ for a latent model)")
    process = resolve_process(_read_json(sched_path))
    files = ["scheduler/scheduler_config.json"] + (["model_index.json"] if (folder / "model_index.json").is_file()
                                                   else [])
    unet, unet_files = _component(folder, "unet")
    files += unet_files
    load = {"unet": unet}
    notes = []
    cfg = unet["config"]
    learned = cfg.get("out_channels") == 2 * cfg.get("in_channels", 0)
    if not (cfg.get("out_channels") == cfg.get("in_channels") or learned):
        raise ModelError(f"unet maps {cfg.get('in_channels')} to {cfg.get('out_channels')} channels; ddcm needs a "
                         f"denoiser of its own input (an inpainting or image-conditioned unet is not one)")
    if learned:
        notes.append("the unet predicts its variance too: ddcm uses the DDPM posterior variance and ignores it")
    embedding: torch.Tensor | None = None
    registration_files: list[str] = []
    if (folder / "vae").is_dir():
        vae, vae_files = _component(folder, "vae")
        files += vae_files
        load["vae"] = vae
        if unet["class"] != "UNet2DConditionModel":
            raise ModelError(f"a latent model needs a UNet2DConditionModel, {folder}/unet is {unet['class']}")
        if vae["class"] != "AutoencoderKL":
            raise ModelError(f"the autoencoder must be an AutoencoderKL, {folder}/vae is {vae['class']}")
        vcfg = vae["config"]
        if vcfg.get("latents_mean") is not None or vcfg.get("latents_std") is not None:
            raise ModelError("an AutoencoderKL with latents_mean / latents_std is not supported (only scaling_factor "
                             "and shift_factor)")
        for key in ("addition_embed_type", "class_embed_type", "encoder_hid_dim_type"):
            if cfg.get(key) is not None:
                raise ModelError(f"the unet needs extra conditioning ({key} = {cfg[key]!r}); ddcm conditions on the "
                                 f"empty prompt only")
        if cfg.get("in_channels") != vcfg.get("latent_channels"):
            raise ModelError(f"the unet takes {cfg.get('in_channels')} channels, the autoencoder's latent has "
                             f"{vcfg.get('latent_channels')}")
        factor = 2 ** (len(vcfg.get("block_out_channels", ())) - 1)
        process.update(space="latent", channels=int(vcfg["latent_channels"]), vae_factor=factor,
                       multiple=factor * _down_multiple(cfg), scaling_factor=float(vcfg.get("scaling_factor", 1.0)),
                       shift_factor=float(vcfg.get("shift_factor") or 0.0))
        embedding, registration_files = _empty_prompt_embedding(folder)
        space = "latent"
    else:
        if unet["class"] != "UNet2DModel":
            raise ModelError(f"a pixel model needs a UNet2DModel, {folder}/unet is {unet['class']} (a latent model "
                             f"also needs vae/)")
        if cfg.get("num_class_embeds") is not None or cfg.get("class_embed_type") is not None:
            raise ModelError("the unet is class-conditional; ddcm runs unconditional pixel models")
        if cfg.get("time_embedding_type", "positional") == "fourier":
            raise ModelError("the unet takes continuous noise levels (a score-SDE model), not DDPM timesteps")
        if cfg.get("in_channels") != 3:
            raise ModelError(f"a pixel model must take 3 channels (RGB), the unet takes {cfg.get('in_channels')}")
        process.update(space="pixel", channels=3, multiple=_down_multiple(cfg))
        space = "pixel"
    for part in load.values():
        part.pop("config")
    return Inspected(space, files, registration_files, load, process, embedding, notes)


def _empty_prompt_embedding(folder: Path) -> tuple[torch.Tensor, list[str]]:
    """The text encoder's output for the empty prompt, as StableDiffusionPipeline.encode_prompt('') computes it
    (max-length padding, last hidden state; the attention mask only where the encoder's config asks for it)."""
    transformers = _require_transformers("a latent diffusers model (its text encoder)")
    te, te_files = _component(folder, "text_encoder", "transformers")
    tok_dir = folder / "tokenizer"
    if not tok_dir.is_dir():
        raise UsageError(f"{folder} has no tokenizer/ (a latent model's empty-prompt embedding needs it)")
    tok_files = sorted(str(p.relative_to(folder)) for p in tok_dir.iterdir() if p.is_file())
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        encoder = getattr(transformers, te["class"] or "CLIPTextModel").from_pretrained(
            str(folder / "text_encoder"), local_files_only=True, variant=te["variant"],
            use_safetensors=te["safetensors"])
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise ModelError(f"cannot load the text encoder of {folder}: {e}") from None
    encoder.eval()
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    mask = ids.attention_mask if getattr(encoder.config, "use_attention_mask", False) else None
    with torch.no_grad():
        embedding = encoder(ids.input_ids, attention_mask=mask)[0].float().contiguous()
    return embedding, te_files + tok_files


# ------------------------------------------------------------------------------------------ loading for coding

class LoadedModel:
    """A registered model on a device: its schedule, the x0-predictor DDCM runs, and the maps between images and the
    coded tensor (pixels or latents), padded to what the networks take and cropped back."""

    def __init__(self, folder: Path, record: dict[str, Any], embedding: torch.Tensor | None, device):
        diffusers = require_diffusers(f"model {record['name']!r}", error=ModelError)
        self.process = record["process"]
        self.space = record["space"]
        self.device = torch.device(device)
        self.schedule = DiffusersSchedule(self.process)
        self.multiple = int(self.process["multiple"])
        self.unet = self._load(diffusers, folder, "unet", record["load"]["unet"])
        self.vae = self._load(diffusers, folder, "vae", record["load"]["vae"]) if self.space == "latent" else None
        self.embedding = None if embedding is None else embedding.to(self.device)
        self.model_fn = make_model_fn(self.unet, self.schedule, self.process, self.embedding)

    def _load(self, diffusers, folder: Path, sub: str, spec: dict[str, Any]):
        cls = getattr(diffusers, spec["class"], None)
        if cls is None:
            raise ModelError(f"this diffusers ({diffusers.__version__}) has no model class {spec['class']!r}")
        try:
            model = cls.from_pretrained(str(folder / sub), local_files_only=True, variant=spec["variant"],
                                        use_safetensors=spec["safetensors"], torch_dtype=torch.float32)
        except (OSError, ValueError, RuntimeError, TypeError) as e:
            raise ModelError(f"cannot load {folder / sub}: {e}") from None
        return model.to(self.device).eval()

    def padded(self, height: int, width: int) -> tuple[int, int]:
        m = self.multiple
        return -(-height // m) * m, -(-width // m) * m

    def shape(self, height: int, width: int) -> tuple[int, int, int]:
        hp, wp = self.padded(height, width)
        if self.space == "pixel":
            return (3, hp, wp)
        f = int(self.process["vae_factor"])
        return (int(self.process["channels"]), hp // f, wp // f)

    @torch.no_grad()
    def to_space(self, rgb: np.ndarray) -> torch.Tensor:
        from diffcodec.data import to_tensor

        h, w = rgb.shape[:2]
        hp, wp = self.padded(h, w)
        x = to_tensor(np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")[None]).to(self.device)
        if self.space == "pixel":
            return x
        assert self.vae is not None
        z = self.vae.encode(x).latent_dist.mean           # the posterior's mean: a deterministic target
        return ((z - self.process["shift_factor"]) * self.process["scaling_factor"]).float()

    @torch.no_grad()
    def to_image(self, x: torch.Tensor, height: int, width: int) -> np.ndarray:
        from diffcodec.data import to_uint8

        if self.space == "latent":
            assert self.vae is not None
            z = x.float() / self.process["scaling_factor"] + self.process["shift_factor"]
            x = self.vae.decode(z.to(self.device), return_dict=False)[0]
        return to_uint8(x)[0][:height, :width]
