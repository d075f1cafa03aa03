"""`diffcodec train ...`: the commands that make every shipped codebook and model (codebooks/, with manifests).

Training modules (:mod:`diffcodec.training`) are imported inside the commands, so the coding commands never
load them.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from diffcodec.cli_options import device_option, quiet_option, say
from diffcodec.errors import UsageError


@click.group()
def train():
    """Train the codebooks and models shipped in codebooks/."""


@train.command("opq")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeat). Never Kodak.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None, help="Validation image folder.")
@click.option("-p", "--preset", "presets", multiple=True, help="Preset(s) to train (default: all).")
@click.option("--patches-per-image", default=2000, show_default=True, help="Random 8x8 patches per image and flip.")
@click.option("--niter", default=50, show_default=True, help="OPQ alternating-optimisation iterations.")
@click.option("--seed", default=0, show_default=True)
@quiet_option
def train_opq_cmd(data, val, presets, patches_per_image, niter, seed, quiet):
    """Train OPQ codebooks + context-model tables; writes codebooks/opq/<preset>.safetensors and .json."""
    from diffcodec.methods.opq import PRESETS
    from diffcodec.training.opq import train_opq

    _refuse_kodak(data)
    presets = list(presets) or list(PRESETS)
    for p in presets:
        if p not in PRESETS:
            raise UsageError(f"unknown opq preset {p!r} (available: {', '.join(PRESETS)})")
    command = "diffcodec " + shlex.join(sys.argv[1:])
    manifests = train_opq([Path(d) for d in data], presets, val=Path(val) if val else None,
                          patches_per_image=patches_per_image, niter=niter, seed=seed, command=command,
                          progress=None if quiet else (lambda s: click.echo(s, err=True)))
    for m in manifests:
        say(f"wrote {m['name']}.safetensors ({m['bytes']:,} bytes, sha256 {m['sha256'][:12]})", quiet)


def _refuse_kodak(folders) -> None:
    if any("kodak" in Path(d).resolve().as_posix().lower() for d in folders):
        raise UsageError("Kodak24 is the evaluation set: never train on it")


def _run_options(f):
    """The options every network trainer takes last: threads, seed, --no-export, --device, --quiet."""
    for o in reversed([
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: all)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--no-export", is_flag=True, help="Train/checkpoint only; do not write codebooks/."),
        device_option,
        quiet_option,
    ]):
        f = o(f)
    return f


def _diffusion_train_options(f):
    opts = [
        click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
                     help="Training image folder (repeat). Never Kodak."),
        click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Validation image folder (held-out crops)."),
        click.option("--out", "out_dir", default=None, help="Checkpoint/log folder (default runs/NAME)."),
        click.option("--name", default=None, help="Export name under codebooks/ (default models/<kind>)."),
        click.option("--steps", type=int, default=100_000, show_default=True, help="Total optimizer steps."),
        click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable)."),
        click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out."),
        click.option("--batch", type=int, default=16, show_default=True),
        click.option("--crop", type=int, default=64, show_default=True),
        click.option("--lr", type=float, default=2e-4, show_default=True),
        click.option("--base-channels", type=int, default=48, show_default=True),
        click.option("--schedule", type=click.Choice(["cosine", "linear"]), default="cosine", show_default=True),
        click.option("--parameterization", type=click.Choice(["eps", "x0", "v"]), default="v", show_default=True),
        click.option("--loss-weighting", type=click.Choice(["const", "min_snr", "p2"]), default="const",
                     show_default=True),
    ]
    for o in reversed(opts):
        f = o(f)
    return _run_options(f)


def _run_diffusion_training(kind: str, make_condition, cond_channels: int, extra_manifest: dict, *,
                            data_source=None, val_data=None, io_channels: int = 3, init_from: str | None = None,
                            **o):
    from diffcodec.training.denoiser import TrainConfig, train_denoiser
    from diffcodec.training.opq import LICENSE_NOTE

    name = o["name"] or f"models/{kind}"
    cfg = TrainConfig(
        data=[Path(d) for d in o["data"]], out_dir=Path(o["out_dir"] or f"runs/{Path(name).name}"),
        crop=o["crop"], batch=o["batch"], lr=o["lr"], steps=o["steps"], max_minutes=o["max_minutes"],
        schedule=o["schedule"], parameterization=o["parameterization"], loss_weighting=o["loss_weighting"],
        model={"base_channels": o["base_channels"], "cond_channels": cond_channels,
               "in_channels": io_channels, "out_channels": io_channels,
               **({"cond_residual": True} if cond_channels else {})},
        data_source=data_source, val_data=val_data,
        device=o["device"], seed=o["seed"], resume=o["resume"], val_folder=Path(o["val"]) if o["val"] else None,
        make_condition=make_condition, export_name=None if o["no_export"] else name,
        command="diffcodec " + shlex.join(sys.argv[1:]), license_note=LICENSE_NOTE,
        progress=None if not o["quiet"] else False, num_threads=o["threads"], extra_manifest=extra_manifest,
        init_from=init_from,
    )
    result = train_denoiser(cfg)
    say(f"{kind}: {json.dumps(result, default=str)[:2000]}", o["quiet"])


@train.command("denoiser")
@_diffusion_train_options
def train_denoiser_cmd(**o):
    """Unconditional pixel-space denoiser (the `pixel-ddpm` prior): writes codebooks/models/pixel-ddpm.*"""
    _refuse_kodak(o["data"])
    _run_diffusion_training("pixel-ddpm", None, 0, {}, **o)


@train.command("refiner")
@click.option("--opq-preset", "opq_presets", multiple=True,
              help="opq presets to degrade with (default: 16-8-8, 32-8-8, 64-16-16).")
@_diffusion_train_options
def train_refiner_cmd(opq_presets, **o):
    """Conditional denoiser that cleans OPQ-decoded images (`decode --refine`): writes codebooks/models/opq-refiner.*"""
    from diffcodec.methods.opq import PRESETS
    from diffcodec.training.degrade import TRAIN_PRESETS, OPQDegrade

    _refuse_kodak(o["data"])
    presets = tuple(opq_presets) or TRAIN_PRESETS
    for p in presets:
        if p not in PRESETS:
            raise UsageError(f"unknown opq preset {p!r}")
    _run_diffusion_training("opq-refiner", OPQDegrade(presets, seed=o["seed"]), 3, {"opq_presets": list(presets)}, **o)


@train.command("codec-refiner")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["opq", "jpeg", "webp", "avif", "h264"]),
              help="Base codecs to degrade with (repeat; default opq, jpeg, webp, avif; h264 alone writes "
                   "models/h264-refiner, the refiner of ddcm clips on an H.264 base: needs PyAV).")
@click.option("--init", "init_from", default=None, metavar="MODEL",
              help="Start from a shipped denoiser's weights, e.g. models/opq-refiner (extra condition channels "
                   "start at zero).")
@click.option("--p-frames", "p_frames", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Fraction of the opq crops coded as the last opq P-frame of a synthetic-motion sequence (the clip "
                   "refiner of ddcm P-frames: writes models/opq-clip-refiner unless --name says otherwise).")
@click.option("--max-quality", "max_quality", type=click.IntRange(1, 100), default=None,
              help="Top of the JPEG / WebP / AVIF quality range to train on (default: JPEG 60, WebP and AVIF 75; "
                   "90 reaches past 1 bpp on photos).")
@_diffusion_train_options
def train_codec_refiner_cmd(kinds, init_from, p_frames, max_quality, **o):
    """Conditional denoiser that refines decoded base layers of opq, JPEG, WebP and AVIF, conditioned on the base's
    kind and quality: writes codebooks/models/codec-refiner.* (with --p-frames: models/opq-clip-refiner.*)"""
    from diffcodec.methods.codec_refiner import CONDITION_CHANNELS
    from diffcodec.methods.ddcm.priors import CLIP_MODEL, CODEC_BASE_MODEL
    from diffcodec.training.degrade import CODEC_KINDS, CodecDegrade, codec_qualities

    _refuse_kodak(o["data"])
    kinds = tuple(kinds) or CODEC_KINDS
    qualities = codec_qualities(max_quality)
    degrade = CodecDegrade(kinds, seed=o["seed"], p_frames=p_frames, qualities=qualities)
    extra = {"base_kinds": list(kinds), "qualities": qualities, "init_from": init_from,
             "condition": "decoded base RGB + one-hot kind (opq, jpeg, webp, avif) + coarseness "
                          "(diffcodec/methods/codec_refiner.py)", "degrade": degrade.description,
             **({"p_frames": p_frames} if p_frames else {})}
    from diffcodec.methods.ddcm.priors import H264_MODEL

    model = H264_MODEL if kinds == ("h264",) else CLIP_MODEL if p_frames else CODEC_BASE_MODEL
    _run_diffusion_training(model, degrade, CONDITION_CHANNELS, extra, init_from=init_from, **o)


@train.command("latent-denoiser")
@click.option("--autoencoder", "ae_name", default="models/latent-ae", show_default=True,
              help="Shipped autoencoder whose latents to model.")
@_diffusion_train_options
def train_latent_denoiser_cmd(ae_name, **o):
    """Unconditional diffusion prior on `latent-ae` latents (`latent-ddpm`, used by ddcm --space latent).
    The training images (and mirror images) are encoded once, cached in --out; --crop is the latent crop
    (default 32: 256 px at f8)."""
    from diffcodec.device import resolve_device
    from diffcodec.latent import load_latent_space
    from diffcodec.training.data import ImageFolderCrops
    from diffcodec.training.latent import LatentCrops, LatentImageCache, encode_validation

    _refuse_kodak(o["data"])
    if o["threads"]:  # the encoding below runs before the training loop sets it
        import torch

        torch.set_num_threads(o["threads"])
    space = load_latent_space(ae_name, resolve_device(o["device"]))
    crop = o["crop"] if o["crop"] != 64 else 256 // space.factor     # 64 is the shared option's pixel default
    name = o["name"] or "models/latent-ddpm"
    out_dir = Path(o["out_dir"] or f"runs/{Path(name).name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    images = ImageFolderCrops([Path(d) for d in o["data"]], crop=crop * space.factor, flips=False)
    cache = LatentImageCache(images, space.autoencoder, space.sha256, crop * space.factor, flips=True,
                             cache_path=out_dir / "latents.pt", progress=False if o["quiet"] else None)
    data = LatentCrops(cache, crop)
    val = encode_validation(space.autoencoder, o["val"], 256, 16) if o["val"] else None
    o.update(crop=crop, out_dir=str(out_dir), name=name)
    extra = {"autoencoder": ae_name, "autoencoder_sha256": space.sha256, "data_source": data.description,
             "validation_note": "x0-prediction PSNR in latent space (unit-variance latents, peak-to-peak 2) on "
                                "the latents of 16 fixed 256 px bsds500/val crops"}
    _run_diffusion_training("latent-ddpm", None, 0, extra, data_source=data, val_data=val,
                            io_channels=space.channels, **o)


@train.command("autoencoder")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeat). Never Kodak.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
              help="Validation image folder (held-out crops).")
@click.option("--out", "out_dir", default=None, help="Checkpoint/log folder (default runs/NAME).")
@click.option("--name", default="models/latent-ae", show_default=True, help="Export name under codebooks/.")
@click.option("--factor", type=click.Choice(["4", "8", "16"]), default="8", show_default=True,
              help="Latent stride f.")
@click.option("--latent-channels", type=int, default=4, show_default=True)
@click.option("--channels", default=None,
              help="Comma-separated widths per level (log2(f) of them; default 64,128,192[,256]).")
@click.option("--res-blocks", type=int, default=1, show_default=True, help="Encoder ResBlocks per level (decoder: +1).")
@click.option("--steps", type=int, default=20_000, show_default=True, help="Total optimizer steps (cosine LR to 0).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=112, show_default=True, help="Training crop (> 96 for MS-SSIM).")
@click.option("--lr", type=float, default=4e-4, show_default=True)
@click.option("--ms-ssim-weight", type=float, default=0.2, show_default=True)
@click.option("--kl-weight", type=float, default=1e-5, show_default=True)
@_run_options
def train_autoencoder_cmd(**o):
    """First-stage autoencoder (`latent-ae`): L1 + MS-SSIM + small KL; writes codebooks/models/latent-ae.*"""
    from diffcodec.training.autoencoder import AETrainConfig, train_autoencoder
    from diffcodec.training.opq import LICENSE_NOTE

    _refuse_kodak(o["data"])
    model: dict = {"factor": int(o["factor"]), "latent_channels": o["latent_channels"],
                   "num_res_blocks": o["res_blocks"]}
    if o["channels"]:
        try:
            model["channels"] = [int(c) for c in o["channels"].split(",")]
        except ValueError:
            raise UsageError(f"--channels must be comma-separated integers, got {o['channels']!r}") from None
    if o["crop"] <= 96:
        raise UsageError("--crop must be over 96 (MS-SSIM's 5 scales with a 7-tap window)")
    try:
        from diffcodec.autoencoder import Autoencoder

        Autoencoder.from_config(model)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cfg = AETrainConfig(
        data=[Path(d) for d in o["data"]], out_dir=Path(o["out_dir"] or f"runs/{Path(o['name']).name}"),
        model=model, crop=o["crop"], batch=o["batch"], lr=o["lr"], steps=o["steps"], max_minutes=o["max_minutes"],
        ms_ssim_weight=o["ms_ssim_weight"], kl_weight=o["kl_weight"], device=o["device"], seed=o["seed"],
        resume=o["resume"], val_folder=Path(o["val"]) if o["val"] else None,
        export_name=None if o["no_export"] else o["name"], command="diffcodec " + shlex.join(sys.argv[1:]),
        license_note=LICENSE_NOTE, progress=None if not o["quiet"] else False, num_threads=o["threads"],
    )
    result = train_autoencoder(cfg)
    say(f"autoencoder: {json.dumps(result, default=str)[:2000]}", o["quiet"])


@train.command("diffae")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeat). Never Kodak.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
              help="Validation image folder (fixed crops: bpp per Delta, presets, PSNR).")
@click.option("--space", type=click.Choice(["latent", "pixel"]), default="latent", show_default=True,
              help="Where the diffusion decoder runs: latent-ae latents or pixels.")
@click.option("--autoencoder", "ae_name", default="models/latent-ae", show_default=True,
              help="latent space: the shipped autoencoder (its sha256 is pinned in the manifest).")
@click.option("--out", "out_dir", default=None, help="Checkpoint/log folder (default runs/NAME).")
@click.option("--name", default=None,
              help="Export name under codebooks/ (default models/diffae, pixel: models/diffae-pixel).")
@click.option("--steps", type=int, default=20_000, show_default=True, help="Total optimizer steps (cosine LR to 0).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--batch", type=int, default=None, help="Batch size (default: latent 8, pixel 4).")
@click.option("--crop", type=int, default=None,
              help="Training crop, a multiple of 16 (default: latent 256, pixel 128).")
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--factor", type=click.Choice(["8", "16", "32"]), default="16", show_default=True,
              help="Stride f of the coded latent.")
@click.option("--latent-channels", type=int, default=16, show_default=True, help="Channels c of the coded latent.")
@click.option("--encoder-channels", default=None,
              help="Comma-separated encoder widths, levels H/4..H/f (default f16: 64,96,192).")
@click.option("--cond-channels", type=int, default=None,
              help="Condition channels fed to the UNet (default: latent 64, pixel 32).")
@click.option("--base-channels", type=int, default=None, help="UNet base width (default: latent 64, pixel 32).")
@click.option("--rate-weight", type=float, default=None,
              help="lambda of loss = diffusion loss + lambda * bpp (default: latent 0.5, pixel 0.05).")
@click.option("--delta-min", type=float, default=0.125, show_default=True,
              help="Smallest quantization step (highest rate).")
@click.option("--delta-max", type=float, default=8.0, show_default=True,
              help="Largest quantization step (lowest rate).")
@click.option("--val-every", type=int, default=1000, show_default=True,
              help="Validate every N steps (0: only at the end).")
@click.option("--val-crops", type=int, default=8, show_default=True)
@_run_options
def train_diffae_cmd(**o):
    """Diffusion-autoencoder codec (`--method diffae`): encoder, prior and diffusion decoder jointly, one
    variable-rate model; writes codebooks/models/diffae.* (pixel space: diffae-pixel.*)"""
    from diffcodec.training.diffae import DiffAETrainConfig, train_diffae
    from diffcodec.training.opq import LICENSE_NOTE

    _refuse_kodak(list(o["data"]) + ([o["val"]] if o["val"] else []))
    name = o["name"] or ("models/diffae" if o["space"] == "latent" else "models/diffae-pixel")
    model: dict = {"factor": int(o["factor"]), "latent_channels": o["latent_channels"],
                   "delta_min": o["delta_min"], "delta_max": o["delta_max"]}
    if o["encoder_channels"]:
        try:
            model["encoder_channels"] = [int(c) for c in o["encoder_channels"].split(",")]
        except ValueError:
            raise UsageError(f"--encoder-channels must be comma-separated integers, "
                             f"got {o['encoder_channels']!r}") from None
    if o["cond_channels"]:
        model["cond_channels"] = o["cond_channels"]
    if o["base_channels"]:
        model["unet"] = {"base_channels": o["base_channels"]}
    if o["threads"]:  # the latent cache is computed before the training loop sets the thread count
        import torch

        torch.set_num_threads(o["threads"])
    cfg = DiffAETrainConfig(
        data=[Path(d) for d in o["data"]], out_dir=Path(o["out_dir"] or f"runs/{Path(name).name}"),
        space=o["space"], autoencoder=o["ae_name"], model=model, rate_weight=o["rate_weight"], crop=o["crop"],
        batch=o["batch"], lr=o["lr"], steps=o["steps"], max_minutes=o["max_minutes"], device=o["device"],
        seed=o["seed"], resume=o["resume"], val_folder=Path(o["val"]) if o["val"] else None,
        val_crops=o["val_crops"], val_every=o["val_every"] or None,
        export_name=None if o["no_export"] else name, command="diffcodec " + shlex.join(sys.argv[1:]),
        license_note=LICENSE_NOTE, progress=None if not o["quiet"] else False, num_threads=o["threads"],
    )
    result = train_diffae(cfg)
    say(f"diffae: {json.dumps(result, default=str)[:2000]}", o["quiet"])


@train.command("diffae-temporal")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeat; stills made into synthetic-motion sequences). Never Kodak.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
              help="Validation image folder (fixed crops, fixed synthetic motion: bpp and PSNR per preset).")
@click.option("--diffae-model", default="diffae", show_default=True,
              help="The frozen latent-space diffae model the layers are trained for (its sha256 is pinned).")
@click.option("--out", "out_dir", default=None, help="Checkpoint/log folder (default runs/NAME).")
@click.option("--name", default="models/diffae-temporal", show_default=True, help="Export name under codebooks/.")
@click.option("--steps", type=int, default=2000, show_default=True, help="Total optimizer steps (cosine LR to 0).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--batch", type=int, default=4, show_default=True, help="Sequences of 4 frames per step.")
@click.option("--crop", type=int, default=128, show_default=True, help="Training crop, a multiple of 16.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--val-every", type=int, default=250, show_default=True,
              help="Validate every N steps (0: only at the end).")
@click.option("--val-crops", type=int, default=8, show_default=True)
@_run_options
def train_diffae_temporal_cmd(**o):
    """Temporal layers of diffae clips (`--method diffae --gop 2|4`): the 1x1 projections before pooling over
    time and the deflates after, over a frozen diffae model; writes codebooks/models/diffae-temporal.*"""
    from diffcodec.training.diffae_temporal import TemporalTrainConfig, train_temporal
    from diffcodec.training.opq import LICENSE_NOTE

    _refuse_kodak(list(o["data"]) + ([o["val"]] if o["val"] else []))
    name = o["name"]
    cfg = TemporalTrainConfig(
        data=[Path(d) for d in o["data"]], out_dir=Path(o["out_dir"] or f"runs/{Path(name).name}"),
        diffae_model=o["diffae_model"], crop=o["crop"], batch=o["batch"], lr=o["lr"], steps=o["steps"],
        max_minutes=o["max_minutes"], device=o["device"], seed=o["seed"], resume=o["resume"],
        val_folder=Path(o["val"]) if o["val"] else None, val_crops=o["val_crops"], val_every=o["val_every"] or None,
        export_name=None if o["no_export"] else name, command="diffcodec " + shlex.join(sys.argv[1:]),
        license_note=LICENSE_NOTE, progress=None if not o["quiet"] else False, num_threads=o["threads"],
    )
    result = train_temporal(cfg)
    say(f"diffae-temporal: {json.dumps(result, default=str)[:2000]}", o["quiet"])


@train.command("opq-gen")
@click.option("--formulation", type=click.Choice(["continuous", "categorical"]), default="continuous",
              show_default=True, help="continuous: ordinal indices, x0-prediction; categorical: logits over the "
                                      "256 codewords, Gumbel-softmax, image-space loss.")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeat). Never Kodak.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
              help="Validation image folder (fixed crops: denoising accuracy).")
@click.option("--out", "out_dir", default=None, help="Checkpoint/log folder (default runs/NAME).")
@click.option("--name", default=None, help="Export name under codebooks/ (default models/opq-gen-FORMULATION).")
@click.option("--steps", type=int, default=100_000, show_default=True, help="Total optimizer steps.")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--pool", type=int, default=32768, show_default=True, help="Training crops, quantized once.")
@click.option("--width", type=int, default=96, show_default=True, help="Network width.")
@click.option("--blocks", type=int, default=6, show_default=True, help="Residual blocks (attention every 2).")
@click.option("--tau", type=float, default=0.5, show_default=True, help="categorical: Gumbel-softmax temperature.")
@click.option("--ce-weight", type=float, default=0.02, show_default=True,
              help="categorical: weight of the cross-entropy term beside the image-space loss (0: none).")
@click.option("--val-every", type=int, default=250, show_default=True, help="Validate every N steps.")
@_run_options
def train_opq_gen_cmd(**o):
    """Generator in the opq-32-8-8 index space (`generate --method opq [--categorical]`): writes
    codebooks/models/opq-gen-{continuous,categorical}.*"""
    from diffcodec.training.opq import LICENSE_NOTE
    from diffcodec.training.opq_gen import OPQGenConfig, train_opq_gen

    _refuse_kodak(o["data"])
    name = o["name"] or f"models/opq-gen-{o['formulation']}"
    cfg = OPQGenConfig(
        data=[Path(d) for d in o["data"]], out_dir=Path(o["out_dir"] or f"runs/{Path(name).name}"),
        formulation=o["formulation"], batch=o["batch"], lr=o["lr"], steps=o["steps"], max_minutes=o["max_minutes"],
        pool=o["pool"], width=o["width"], blocks=o["blocks"], tau=o["tau"], ce_weight=o["ce_weight"],
        val_every=o["val_every"], device=o["device"], seed=o["seed"], resume=o["resume"],
        val_folder=Path(o["val"]) if o["val"] else None, export_name=None if o["no_export"] else name,
        command="diffcodec " + shlex.join(sys.argv[1:]), license_note=LICENSE_NOTE,
        progress=None if not o["quiet"] else False, num_threads=o["threads"],
    )
    result = train_opq_gen(cfg)
    say(f"opq-gen: {json.dumps(result, default=str)[:2000]}", o["quiet"])
