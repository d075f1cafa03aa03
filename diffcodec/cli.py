"""`diffcodec` command line: a thin layer over :mod:`diffcodec.api`.

Exit codes: 0 success, 1 internal error (a bug: traceback printed), 2 usage error, 3 corrupt or unreadable
input, 4 unsupported input (newer format, unknown method), 5 missing or corrupt model files,
130 interrupted.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import click

from diffcodec import __version__
from diffcodec.errors import DiffcodecError, ModelError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        click.echo(msg, err=True)


def _short_json(obj, limit: int = 160) -> str:
    text = json.dumps(obj, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"diffcodec: warning: {message}", err=True)


def _device_option(f):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                        help="Where networks run (methods without one ignore it).")(f)


def _silence_progress(ctx, param, quiet: bool) -> bool:
    from diffcodec.progress import set_enabled

    set_enabled(not quiet)
    return quiet


def _quiet_option(f):
    return click.option("-q", "--quiet", is_flag=True, callback=_silence_progress,
                        help="Print nothing but errors (no progress bars).")(f)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="diffcodec")
def cli():
    """Diffusion-based image codec. Run `diffcodec COMMAND -h` for help on a command."""


@cli.command()
@click.argument("input", metavar="IN")
@click.option("-o", "--output", "output", metavar="OUT", help="Output .ddc file ('-' = stdout). Default: IN with .ddc.")
@click.option("-m", "--method", default="opq", show_default=True, help="Coding method (see `diffcodec methods`).")
@click.option("-p", "--preset", default=None, help="Rate/quality preset of the method (default: the method's).")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--k", "k", type=click.IntRange(1, 1 << 20), default=None, help="ddcm: codebook size K.")
@click.option("--steps", type=click.IntRange(1, 1000), default=None,
              help="ddcm: strided diffusion steps N; diffae: decoder steps (1..50) stored in the file.")
@click.option("--atoms", type=click.IntRange(1, 1024), default=None, help="ddcm: atoms M picked per step.")
@click.option("--codebook", type=click.Choice(["mshift", "iid", "shift"]), default=None,
              help="ddcm: codebook kind (default mshift).")
@click.option("--space", type=click.Choice(["pixel", "latent"]), default=None,
              help="ddcm: space (default latent; with --bpp and no --space/--base, conditional on the largest opq base that fits); diffae: decoder space (default latent).")
@click.option("--base", default=None, metavar="PRESET",
              help="ddcm: conditional mode, an opq base layer (e.g. opq-16-8-8) + refiner-guided codebook steps.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None,
              help="ddcm: codebook/noise seed; diffae: decoder noise seed (default 0).")
@click.option("--bpp", type=float, default=None,
              help="ddcm: choose steps/K/atoms (diffae: the quantization step) to land at or under this bpp "
              "(with --base: the base layer counts).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="ddcm: arithmetic of the prior's network, stored in the file and replayed when decoding "
              "(default auto: bf16 for pixel-space priors where the device has native bf16, else fp32).")
@_device_option
@_quiet_option
def encode(input, output, method, preset, force, as_json, k, steps, atoms, codebook, space, base, seed, bpp, precision,
           device, quiet):
    """Encode an image (PNG, JPEG, TIFF, BMP, WebP; '-' = stdin) into a .ddc file."""
    from diffcodec import api, images

    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for stdout)")
        output = str(Path(input).with_suffix(".ddc"))
    if as_json and output == "-":
        raise UsageError("--json prints on stdout, which -o - already uses; write to a file instead")
    # --device is resolved (which imports torch) only by methods that run a network; opq does not.
    images.check_output_path(output, [input], force)
    t0 = time.perf_counter()
    arr = images.image_from_bytes(images.read_bytes(input), input)
    given = {"k": k, "steps": steps, "atoms": atoms, "codebook": codebook, "space": space, "base": base, "seed": seed,
             "bpp": bpp, "precision": precision}
    params = {name: v for name, v in given.items() if v is not None}
    if method in ("ddcm", "diffae"):
        params["device"] = api.resolve_device(device)
    data = api.encode(arr, method=method, preset=preset, **params)
    elapsed = time.perf_counter() - t0
    images.write_bytes_atomic(output, data)
    meta = api.info(data)
    summary = {"input": input, "output": output, "preset": preset, **meta, "encode_s": round(elapsed, 3)}
    if as_json:
        _emit_json(summary)
    else:
        _say(f"{input} -> {output}: {method} {meta['model']}, {meta['width']}x{meta['height']}, "
             f"{meta['file_bytes']:,} bytes, {meta['bpp']:.3f} bpp, {elapsed:.2f} s", quiet)
    if bpp is not None and meta["bpp"] < 0.9 * bpp:    # --bpp is "at or under": say when it is far under
        _say(f"note: {meta['bpp']:.3f} bpp is well under --bpp {bpp:g}: that is the most {method}'s --bpp search "
             f"spends on this image", quiet)


@cli.command()
@click.argument("input", metavar="IN")
@click.option("-o", "--output", "output", metavar="OUT",
              help="Output image, type from the extension: .png .bmp .tif .webp (lossless) .ppm; '-' = PNG on stdout. "
                   "Default: IN with .png.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--refine", is_flag=True, help="opq: remove blocking with the diffusion refiner (slower).")
@click.option("--steps", type=click.IntRange(1, 50), default=None,
              help="Refiner sampling steps (default 1: best PSNR and MS-SSIM in our measurements); "
              "diffae: decoder steps (default: the file's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Refiner noise seed.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@_device_option
@_quiet_option
def decode(input, output, force, refine, steps, seed, as_json, device, quiet):
    """Decode a .ddc file ('-' = stdin) into an image."""
    from diffcodec import api, images

    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for stdout)")
        output = str(Path(input).with_suffix(".png"))
    if as_json and output == "-":
        raise UsageError("--json prints on stdout, which -o - already uses; write to a file instead")
    fmt = images.output_format(output)
    options = {}
    if refine:
        options = {"refine": True, "steps": steps, "seed": seed, "device": api.resolve_device(device)}
    images.check_output_path(output, [input], force)
    data = images.read_bytes(input)
    try:
        is_diffae = not refine and api.info(data)["method"] == "diffae"
    except DiffcodecError:
        is_diffae = False   # api.decode below reports what is wrong with the file
    if is_diffae:           # diffae: --steps overrides the file's decoder steps; the network runs on --device
        options = {"device": api.resolve_device(device), **({"steps": steps} if steps is not None else {})}
    elif not refine and steps is not None:
        raise UsageError("--steps only applies with --refine (or to diffae files)")
    t0 = time.perf_counter()
    pixels = api.decode(data, **options)
    elapsed = time.perf_counter() - t0
    images.write_bytes_atomic(output, images.image_to_bytes(pixels, fmt))
    summary = {"input": input, "output": output, "width": pixels.shape[1], "height": pixels.shape[0],
               "channels": 1 if pixels.ndim == 2 else pixels.shape[2], "decode_s": round(elapsed, 3)}
    if as_json:
        _emit_json(summary)
    else:
        _say(f"{input} -> {output}: {pixels.shape[1]}x{pixels.shape[0]}, {elapsed:.2f} s", quiet)


@cli.command()
@click.option("-m", "--method", default="ddcm", show_default=True, help="Generating method (only ddcm).")
@click.option("-o", "--output", "output", metavar="OUT", required=True, help="The sample image (.png ...).")
@click.option("--bitstream", default=None, metavar="DDC", help="Also write the sample's .ddc (decoding it reproduces OUT).")
@click.option("--k", "k", type=click.IntRange(1, 1 << 20), default=4096, show_default=True, help="Codebook size K.")
@click.option("--steps", type=click.IntRange(1, 1000), default=20, show_default=True, help="Strided diffusion steps N.")
@click.option("--atoms", type=click.IntRange(1, 1024), default=1, show_default=True, help="Atoms M per step.")
@click.option("--codebook", type=click.Choice(["mshift", "iid", "shift"]), default="mshift", show_default=True)
@click.option("--space", type=click.Choice(["pixel", "latent"]), default="pixel", show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Seed of the codebooks and of the random choices.")
@click.option("--size", default="64", show_default=True, help="Sample size: N (square) or WxH.")
@click.option("-f", "--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@_device_option
@_quiet_option
def generate(method, output, bitstream, k, steps, atoms, codebook, space, seed, size, force, as_json, device, quiet):
    """Compressed generation: an unconditional sample whose codebook choices are random (seeded); --bitstream
    writes them as a .ddc file that decodes to the sample."""
    from diffcodec import api, images

    if method != "ddcm":
        raise UsageError(f"only ddcm can generate (got --method {method})")
    try:
        w, _, h = size.lower().partition("x")
        width, height = int(w), int(h or w)
    except ValueError:
        raise UsageError(f"--size must be N or WxH, got {size!r}") from None
    fmt = images.output_format(output)
    images.check_output_path(output, [], force)
    if bitstream is not None:
        images.check_output_path(bitstream, [], force)
        if bitstream != "-" and output != "-" and Path(bitstream).resolve() == Path(output).resolve():
            raise UsageError("--bitstream and -o name the same file")
    from diffcodec.methods import ddcm

    t0 = time.perf_counter()
    data, sample = ddcm.generate(height, width, k=k, steps=steps, atoms=atoms, codebook=codebook, space=space,
                                 seed=seed, device=api.resolve_device(device))
    elapsed = time.perf_counter() - t0
    images.write_bytes_atomic(output, images.image_to_bytes(sample, fmt))
    if bitstream is not None:
        images.write_bytes_atomic(bitstream, data)
    meta = api.info(data)
    summary = {"output": output, "bitstream": bitstream, **meta, "generate_s": round(elapsed, 3)}
    if as_json:
        _emit_json(summary)
    else:
        _say(f"{output}: {width}x{height} ddcm sample, K={k}, {steps} steps, {atoms} atom(s); bitstream "
             f"{meta['file_bytes']:,} bytes ({meta['bpp']:.4f} bpp){' -> ' + bitstream if bitstream else ''}, "
             f"{elapsed:.2f} s", quiet)


@cli.command()
@click.argument("input", metavar="IN")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(input, as_json):
    """Describe a .ddc file without decoding it."""
    from diffcodec import api, images

    meta = api.info(images.read_bytes(input))
    if as_json:
        _emit_json(meta)
        return
    rows = [
        ("format version", meta["format_version"]),
        ("method", meta["method"]),
        ("model", f"{meta['model']} (sha256 {meta['model_sha256_prefix']}...)"),
        ("parameters", json.dumps(meta["params"]) if meta["params"] else "-"),
        ("rng", json.dumps(meta["rng"]) if meta["rng"] else "-"),
        ("size", f"{meta['width']}x{meta['height']}, {meta['channels']} channel(s), {meta['bit_depth']}-bit "
                 f"{meta['colour_space']}, {meta['frames']} frame(s)"),
        ("header bytes", meta["header_bytes"]),
        ("framing bytes", f"{meta['framing_bytes']} (header + chunk framing, all but the payload)"),
        ("payload bytes", meta["payload_bytes"]),
        ("file bytes", meta["file_bytes"]),
        ("bpp", f"{meta['bpp']:.4f} (payload only {meta['payload_bpp']:.4f})"),
        ("compression ratio", f"{meta['compression_ratio']:.1f} : 1"),
    ]
    if "ddcm" in meta:
        d = meta["ddcm"]
        mode = f"space {d['space']}" + (f", base layer {d['base']}" if d["base"] else ", no base layer")
        if d["base"] and d["base_bytes"] is not None:
            mode += f" ({d['base_bytes']:,} base + {d['index_bytes']:,} index bytes)"
        rows.insert(4, ("ddcm mode", mode))
    for k, v in rows:
        click.echo(f"{k:>18}: {v}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def methods(as_json):
    """List coding methods and their presets."""
    from diffcodec import api

    table = api.methods()
    if as_json:
        _emit_json(table)
        return
    for name, m in table.items():
        click.echo(f"{name}  (default preset {m['default_preset']})")
        for preset, desc in m["presets"].items():
            click.echo(f"  {preset:<16} {desc}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check every file's sha256.")
def models(as_json, verify):
    """List shipped codebooks and model weights."""
    from diffcodec import artifacts

    rows = []
    for m in artifacts.list_artifacts():
        weights, _ = artifacts.artifact_paths(m["name"])
        status = "missing" if not weights.is_file() else "unchecked"
        if verify and weights.is_file():
            status = "ok" if artifacts.sha256_file(weights) == m.get("sha256") else "CORRUPT"
        rows.append({"name": m["name"], "kind": m.get("kind"), "bytes": m.get("bytes"), "sha256": m.get("sha256"),
                     "status": status, "command": m.get("command"),
                     "validation": m.get("validation_figures") or m.get("validation") or {},
                     "steps": m.get("steps"), "device": m.get("device"),
                     "wall_time_s": m.get("total_wall_time_s", m.get("wall_time_s"))})
    if as_json:
        _emit_json(rows)
    else:
        if not rows:
            click.echo(f"no artifacts found in {artifacts.codebooks_dir()}")
        for r in rows:
            click.echo(f"{r['name']:<24} {r['kind'] or '?':<14} {r['bytes'] or 0:>10,} B  {r['sha256'][:12]}  {r['status']}")
            trained = ", ".join(x for x in (
                f"{r['steps']} steps" if r.get("steps") else "",
                f"{r['wall_time_s']:.0f} s" if r.get("wall_time_s") else "",
                f"on {r['device']}" if r.get("device") else "") if x)
            if trained:
                click.echo(f"    trained: {trained}")
            if r["validation"]:
                click.echo(f"    validation: {_short_json(r['validation'])}")
    if any(r["status"] != "ok" for r in rows if verify):
        bad = [r["name"] for r in rows if r["status"] != "ok"]
        raise ModelError(f"damaged or missing model files: {', '.join(bad)}")


@cli.command()
@click.argument("inputs", nargs=-1, metavar="[FILES or DIR]...")
@click.option("-m", "--method", default="opq", show_default=True)
@click.option("-p", "--preset", "presets", multiple=True, help="Preset(s) to run (repeat; default: all of the method's).")
@click.option("--vs", "baselines", multiple=True, default=("jpeg", "webp", "avif"), show_default=True,
              help="Baseline codec(s), matched to each diffcodec file's size (repeat).")
@click.option("-o", "--outdir", default="bench-out", show_default=True, help="Folder for results.csv, plots, report.")
@click.option("--report-images", default=6, show_default=True, help="Images with crops in report.html.")
@click.option("--refine-steps", "refine_steps", multiple=True, type=click.IntRange(1, 50),
              help="opq: also decode each file with the diffusion refiner at N steps (repeat).")
@click.option("--decode-steps", "decode_steps", multiple=True, type=click.IntRange(1, 50),
              help="diffae: also decode each file with N decoder steps (repeat).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Encode parameter for every file (repeat), e.g. --param space=latent --param steps=10.")
@_device_option
@_quiet_option
def bench(inputs, method, presets, baselines, outdir, report_images, refine_steps, decode_steps, params, device,
          quiet):
    """Rate-distortion benchmark against JPEG/WebP/AVIF at matched file sizes.

    Default input: ../shared/data/kodak (Kodak24) when it exists beside the repository.
    """
    from diffcodec import api, bench as bench_mod
    from diffcodec.methods import get_codec

    if not inputs:
        default = bench_mod.default_image_dir()
        if default is None:
            raise UsageError("no input images given and ../shared/data/kodak not found")
        inputs = (str(default),)
    files = bench_mod.collect_images(list(inputs))
    codec = get_codec(method)
    presets = list(presets) or list(codec.presets)
    for p in presets:
        if p not in codec.presets:
            raise UsageError(f"unknown {method} preset {p!r} (available: {', '.join(codec.presets)})")
    dev = api.resolve_device(device)
    if refine_steps and method != "opq":
        raise UsageError("--refine-steps applies to --method opq")
    if decode_steps and method != "diffae":
        raise UsageError("--decode-steps applies to --method diffae")
    extras = [{"label": f"refine{n}", "decode_options": {"refine": True, "steps": n, "device": dev}}
              for n in refine_steps]
    extras += [{"label": f"steps{n}", "decode_options": {"steps": n, "device": dev}} for n in decode_steps]
    encode_params = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        encode_params[key.replace("-", "_")] = value
    summary = bench_mod.run_bench(files, method, presets, list(baselines), Path(outdir), quiet=quiet,
                                  device=dev, report_images=report_images, extra_settings=extras,
                                  encode_params=encode_params,
                                  command="diffcodec " + shlex.join(sys.argv[1:]))
    _say(f"wrote {outdir}/results.csv, summary.json, summary.md, rd_psnr.png, rd_msssim.png, report.html", quiet)
    if not quiet:
        click.echo((Path(outdir) / "summary.md").read_text())
    return summary


@cli.command()
@click.option("-o", "--outdir", default="diffcodec-demo", show_default=True, help="Folder for the demo files.")
@click.option("-p", "--preset", default=None, help="opq preset (default: the method's default).")
@_quiet_option
def demo(outdir, preset, quiet):
    """Encode and decode a generated sample image: writes sample.png, sample.ddc, sample-decoded.png."""
    import os

    from diffcodec import api, images, metrics
    from diffcodec.sample import sample_image

    os.makedirs(outdir, exist_ok=True)
    img = sample_image()
    paths = {k: os.path.join(outdir, k) for k in ("sample.png", "sample.ddc", "sample-decoded.png")}
    images.write_bytes_atomic(paths["sample.png"], images.image_to_bytes(img))
    t0 = time.perf_counter()
    data = api.encode(img, method="opq", preset=preset)
    t1 = time.perf_counter()
    out = api.decode(data)
    t2 = time.perf_counter()
    images.write_bytes_atomic(paths["sample.ddc"], data)
    images.write_bytes_atomic(paths["sample-decoded.png"], images.image_to_bytes(out))
    meta = api.info(data)
    _say(f"{paths['sample.png']} ({img.shape[1]}x{img.shape[0]}) -> {paths['sample.ddc']}: {meta['file_bytes']:,} bytes, "
         f"{meta['bpp']:.3f} bpp, PSNR {metrics.psnr(img, out):.2f} dB, encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s "
         f"-> {paths['sample-decoded.png']}", quiet)


@cli.group()
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
@_quiet_option
def train_opq_cmd(data, val, presets, patches_per_image, niter, seed, quiet):
    """Train OPQ codebooks + context-model tables; writes codebooks/opq/<preset>.safetensors and .json."""
    from diffcodec.methods.opq import PRESETS
    from diffcodec.methods.opq_train import train_opq

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
        _say(f"wrote {m['name']}.safetensors ({m['bytes']:,} bytes, sha256 {m['sha256'][:12]})", quiet)


def _refuse_kodak(folders) -> None:
    if any("kodak" in Path(d).resolve().as_posix().lower() for d in folders):
        raise UsageError("Kodak24 is the evaluation set: never train on it")


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
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: all)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--no-export", is_flag=True, help="Train/checkpoint only; do not write codebooks/."),
        _device_option,
        _quiet_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _run_diffusion_training(kind: str, make_condition, cond_channels: int, extra_manifest: dict, *,
                            data_source=None, val_data=None, io_channels: int = 3, **o):
    from diffcodec.diffusion.train import TrainConfig, train_denoiser
    from diffcodec.methods.opq_train import LICENSE_NOTE

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
    )
    result = train_denoiser(cfg)
    _say(f"{kind}: {json.dumps(result, default=str)[:2000]}", o["quiet"])


@train.command("denoiser")
@_diffusion_train_options
def train_denoiser_cmd(**o):
    """Unconditional pixel-space denoiser (the `pixel-ddpm` prior): writes codebooks/models/pixel-ddpm.*"""
    _refuse_kodak(o["data"])
    _run_diffusion_training("pixel-ddpm", None, 0, {}, **o)


@train.command("refiner")
@click.option("--opq-preset", "opq_presets", multiple=True, help="opq presets to degrade with (default: 16-8-8, 32-8-8, 64-16-16).")
@_diffusion_train_options
def train_refiner_cmd(opq_presets, **o):
    """Conditional denoiser that cleans OPQ-decoded images (`decode --refine`): writes codebooks/models/opq-refiner.*"""
    from diffcodec.methods.opq import PRESETS
    from diffcodec.methods.opq_refine import TRAIN_PRESETS, OPQDegrade

    _refuse_kodak(o["data"])
    presets = tuple(opq_presets) or TRAIN_PRESETS
    for p in presets:
        if p not in PRESETS:
            raise UsageError(f"unknown opq preset {p!r}")
    _run_diffusion_training("opq-refiner", OPQDegrade(presets, seed=o["seed"]), 3, {"opq_presets": list(presets)}, **o)


@train.command("latent-denoiser")
@click.option("--autoencoder", "ae_name", default="models/latent-ae", show_default=True,
              help="Shipped autoencoder whose latents to model.")
@_diffusion_train_options
def train_latent_denoiser_cmd(ae_name, **o):
    """Unconditional diffusion prior on `latent-ae` latents (`latent-ddpm`, used by ddcm --space latent).
    The training images (and mirror images) are encoded once, cached in --out; --crop is the latent crop
    (default 32: 256 px at f8)."""
    from diffcodec.data import ImageFolderCrops
    from diffcodec.diffusion.train import resolve_device
    from diffcodec.latent import LatentCrops, LatentImageCache, encode_validation, load_latent_space

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
                             cache_path=out_dir / "latents.pt", progress=not o["quiet"] and sys.stderr.isatty())
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
@click.option("--channels", default=None, help="Comma-separated widths per level (log2(f) of them; default 64,128,192[,256]).")
@click.option("--res-blocks", type=int, default=1, show_default=True, help="Encoder ResBlocks per level (decoder: +1).")
@click.option("--steps", type=int, default=20_000, show_default=True, help="Total optimizer steps (cosine LR to 0).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes (resumable).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=112, show_default=True, help="Training crop (> 96 for MS-SSIM).")
@click.option("--lr", type=float, default=4e-4, show_default=True)
@click.option("--ms-ssim-weight", type=float, default=0.2, show_default=True)
@click.option("--kl-weight", type=float, default=1e-5, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-export", is_flag=True, help="Train/checkpoint only; do not write codebooks/.")
@_device_option
@_quiet_option
def train_autoencoder_cmd(**o):
    """First-stage autoencoder (`latent-ae`): L1 + MS-SSIM + small KL; writes codebooks/models/latent-ae.*"""
    from diffcodec.autoencoder_train import AETrainConfig, train_autoencoder
    from diffcodec.methods.opq_train import LICENSE_NOTE

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
    _say(f"autoencoder: {json.dumps(result, default=str)[:2000]}", o["quiet"])


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
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-export", is_flag=True, help="Train/checkpoint only; do not write codebooks/.")
@_device_option
@_quiet_option
def train_diffae_cmd(**o):
    """Diffusion-autoencoder codec (`--method diffae`): encoder, prior and diffusion decoder jointly, one
    variable-rate model; writes codebooks/models/diffae.* (pixel space: diffae-pixel.*)"""
    from diffcodec.methods.diffae_train import DiffAETrainConfig, train_diffae
    from diffcodec.methods.opq_train import LICENSE_NOTE

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
    _say(f"diffae: {json.dumps(result, default=str)[:2000]}", o["quiet"])


def main(argv=None) -> None:
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="diffcodec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("diffcodec: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except DiffcodecError as e:
        click.echo(f"diffcodec: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("diffcodec: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)


if __name__ == "__main__":
    main()
