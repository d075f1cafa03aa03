"""`diffcodec batch`: many files into a mirrored output tree with a manifest (flags -> :mod:`diffcodec.batch`)."""

from __future__ import annotations

import shlex
import sys

import click

from diffcodec.cli_options import device_option, emit_json, limit_options, parse_bytes, quiet_option, say


def _parse_params(items) -> dict:
    """--param KEY=VALUE -> {key: int | float | bool | str}."""
    from diffcodec.errors import UsageError

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {item!r}")
        parsed: object = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    parsed = cast(value)
                    break
                except ValueError:
                    continue
        out[key.replace("-", "_")] = parsed
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@click.option("-o", "--outdir", required=True, metavar="OUT",
              help="Output folder: the input tree mirrored (a/b.png -> OUT/a/b.ddc), and OUT/manifest.jsonl.")
@click.option("--decode", is_flag=True, help="Decode .ddc files into images instead of encoding images.")
@click.option("-m", "--method", default="opq", show_default=True, help="Coding method (see `diffcodec methods`).")
@click.option("-p", "--preset", default=None, help="Preset of the method (default: the method's).")
@click.option("-q", "--quality", type=click.IntRange(0, 100), default=None,
              help="Quality 0..100, one scale for every method (as `encode -q`).")
@click.option("--size", "max_size", default=None, metavar="BYTES", help="Each file at or under BYTES (as `encode`).")
@click.option("--bpp", type=float, default=None, help="Each file at or under this bpp (as `encode --bpp`).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Another option of the method (repeat): encode options (space=latent, steps=10, base=avif ...), "
                   "or with --decode decode options (refine=true, steps=2).")
@click.option("--format", "image_format", type=click.Choice(["png", "webp", "tif", "bmp", "ppm"]), default="png",
              show_default=True, help="--decode: the image format written (lossless).")
@click.option("--keep-suffix", is_flag=True,
              help="Keep the input's suffix in the output name (a/b.png -> a/b.png.ddc): for trees where a/b.png and "
                   "a/b.jpg both exist.")
@click.option("--metrics", is_flag=True, help="Encoding: record PSNR and MS-SSIM of each file against its input.")
@click.option("--metrics-against", default=None, metavar="DIR",
              help="--decode: record PSNR and MS-SSIM against the originals in DIR (the same tree: a/b.ddc <-> "
                   "DIR/a/b.png or any image suffix).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None,
              help="Workers: local processes (default 1: this process), or Ray actors (default: what the cluster's "
                   "CPUs or GPUs allow).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads per worker (default: OMP_NUM_THREADS, else the CPUs shared among the local "
                   "workers; Ray: 1, and each actor reserves that many CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a pool of processes on this machine; ray: Ray Data (pip install \"diffcodec[ray]\").")
@click.option("--address", default=None, metavar="ADDR",
              help="--engine ray: an existing cluster (auto, HOST:6379, ray://HOST:10001); default: an embedded local "
                   "Ray for this batch.")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=None,
              help="--engine ray: GPUs each actor reserves (default 1 where the cluster has GPUs and the method runs "
                   "networks, else 0).")
@click.option("-f", "--force", is_flag=True,
              help="Code every file again, replacing outputs that exist, and start a new manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@limit_options
@device_option
@quiet_option
def batch(inputs, outdir, decode, method, preset, quality, max_size, bpp, params, image_format, keep_suffix, metrics,
          metrics_against, jobs, threads, engine, address, gpus_per_worker, force, as_json, max_pixels, max_work,
          device, quiet):
    """Encode (or --decode) many files: folders (recursive), files, glob patterns, '-' (a list of paths on stdin).

    The output tree mirrors the input tree; every output is written atomically; OUT/manifest.jsonl records each
    file (input sha256, output, bytes, bpp, metrics, seconds, status, error). Running the same command again skips
    the files that are done (checked: input and output sha256) and codes what failed or changed. A bad file is
    recorded and skipped; the exit code is 8 when not every file succeeded.
    """
    from diffcodec import batch as batch_mod
    from diffcodec.errors import BatchIncomplete, UsageError

    options = _parse_params(params)
    if bpp is not None:
        if decode:
            raise UsageError("--bpp applies to encoding")
        options["bpp"] = bpp
    if "device" in options:
        raise UsageError("give --device, not --param device=...")
    config = batch_mod.BatchConfig(outdir=outdir, decode=decode, method=method, preset=preset, params=options,
                                   quality=quality, max_bytes=parse_bytes(max_size), image_format=image_format,
                                   keep_suffix=keep_suffix, metrics=metrics, metrics_against=metrics_against,
                                   max_pixels=max_pixels, max_work=max_work, device=device, force=force)
    summary = batch_mod.run(list(inputs), config, engine=engine, workers=jobs, threads=threads, address=address,
                            gpus_per_worker=gpus_per_worker, command="diffcodec " + shlex.join(sys.argv[1:]),
                            show_progress=False if quiet else None)
    if as_json:
        emit_json(summary)
    for line in batch_mod.failed_lines(summary):
        say(line, quiet)
    say(batch_mod.summary_line(summary), quiet)
    if summary["failed"]:
        raise BatchIncomplete(f"{summary['failed']} of {summary['files']} file(s) failed (see {summary['manifest']})")
