"""`diffcodec` command line: a thin layer over :mod:`diffcodec.api`.

Exit codes: 0 success, 1 internal error (a bug: traceback printed), 2 usage error, 3 corrupt or unreadable
input, 4 unsupported input (newer format, unknown method), 5 missing or corrupt model files, 6 over the decode
limits (--max-pixels, --max-work), 7 the operating system failed a read or write (disk full, read-only file
system: the message names the path), 8 `batch`: not every file succeeded (the manifest says which), 130
interrupted.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import click

from diffcodec import __version__
from diffcodec.cli_batch import batch
from diffcodec.cli_options import (
    device_option,
    emit_json,
    limit_options,
    parse_bytes,
    quiet_option,
    say,
    short_json,
    show_warning,
    verbose_option,
)
from diffcodec.cli_train import train
from diffcodec.errors import DiffcodecError, ModelError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _json_bytes(value):
    """Header values may be binary (the format allows bin): shown as hex."""
    if isinstance(value, (bytes, bytearray)):
        return f"0x{bytes(value).hex()}" if len(value) <= 32 else f"<{len(value)} bytes 0x{bytes(value[:16]).hex()}...>"
    return str(value)


def _output_path(input: str, output: str | None, suffix: str, as_json: bool) -> str:
    """-o as given, or IN with ``suffix``; stdin needs an explicit -o, and --json needs stdout free."""
    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for stdout)")
        output = str(Path(input).with_suffix(suffix))
    if as_json and output == "-":
        raise UsageError("--json prints on stdout, which -o - already uses; write to a file instead")
    return output


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="diffcodec")
def cli():
    """Diffusion-based image and video codec. Run `diffcodec COMMAND -h` for help on a command."""


@cli.command()
@click.argument("input", metavar="IN")
@click.option("-o", "--output", "output", metavar="OUT", help="Output .ddc file ('-' = stdout). Default: IN with .ddc.")
@click.option("-m", "--method", default="opq", show_default=True, help="Coding method (see `diffcodec methods`).")
@click.option("-p", "--preset", default=None, help="Rate/quality preset of the method (default: the method's).")
@click.option("-q", "--quality", type=click.IntRange(0, 100), default=None,
              help="Quality 0..100 (higher = better), one scale for every method: about the MS-SSIM of JPEG at that "
                   "quality; each method's mapping to its presets / rates: `diffcodec methods`.")
@click.option("--size", "max_size", default=None, metavar="BYTES",
              help="Target size: the whole file at or under BYTES (40000, 40k = 40,000, 1.5M; 64KiB = 65,536); a "
                   "clip: the whole clip.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--k", "k", type=click.IntRange(1, 1 << 20), default=None, help="ddcm: codebook size K.")
@click.option("--steps", type=click.IntRange(1, 1000), default=None,
              help="ddcm: strided diffusion steps N; diffae: decoder steps (1..50) stored in the file.")
@click.option("--atoms", type=click.IntRange(1, 1024), default=None, help="ddcm: atoms M picked per step.")
@click.option("--codebook", type=click.Choice(["mshift", "iid", "shift"]), default=None,
              help="ddcm: codebook kind (default mshift).")
@click.option("--space", type=click.Choice(["pixel", "latent"]), default=None,
              help="ddcm: space (default latent; with --bpp and no --space/--base, conditional on the best of "
                   "avif/webp/jpeg that fits, else on an opq base, else latent); diffae: decoder space (default "
                   "latent).")
@click.option("--base", default=None, metavar="BASE",
              help="ddcm: conditional mode on a base layer refined by the diffusion prior: an opq preset "
                   "(opq-16-8-8 ...) or a standard codec (jpeg, webp, avif; quality chosen by --bpp, or avif:q40); "
                   "4:2:0 clips also x264 (CRF chosen by --kbps, or x264:crf28; needs the x264 extra).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None,
              help="ddcm: codebook/noise seed; diffae: decoder noise seed (default 0).")
@click.option("--bpp", type=float, default=None,
              help="Land the whole file at or under this bpp: opq picks the largest preset that fits, ddcm its "
              "steps/K/atoms (with --base: the base layer counts), diffae its quantization step.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
              help="ddcm: arithmetic of the prior's network, stored in the file and replayed when decoding "
              "(default auto: bf16 for pixel-space priors where the device has native bf16, fp16 for a --prior on "
              "CUDA, else fp32).")
@click.option("--prior", default=None, metavar="NAME",
              help="ddcm: run on a pretrained model added with `diffcodec models add NAME --diffusers DIR`, in its own "
                   "space (pixel or latent); decoding needs the same model registered.")
@click.option("--texture", is_flag=True, default=None,
              help="ddcm with a base layer: stochastic refinement steps instead of the one free step (more detail, "
                   "less fidelity: benchmarks/RESULTS.md, 'Texture option').")
@click.option("--kbps", type=float, default=None,
              help="Video: target rate of the whole clip (frame 0 picks the parameters at the matching --bpp).")
@click.option("--gop", type=click.IntRange(1, 2**20), default=None, metavar="N",
              help="Video: a keyframe every N frames, P-frames predicted from the frame before in between (1: every "
                   "frame alone; diffae: 2 or 4 frames per coded latent; default: the method's, see `diffcodec "
                   "methods`).")
@click.option("--video-size", "frame_size", default=None, metavar="WxH", help="Video: frame size of raw .yuv input.")
@click.option("--fps", default=None, metavar="N[/D]", help="Video: frame rate of raw .yuv input (or relabel).")
@device_option
@quiet_option
@verbose_option
def encode(input, output, method, preset, force, as_json, k, steps, atoms, codebook, space, base, seed, bpp, precision,
           kbps, gop, frame_size, fps, device, quiet, quality=None, max_size=None, verbose=False, prior=None,
           texture=None):
    """Encode an image (PNG, JPEG, TIFF, BMP, WebP) or a video (Y4M, raw .yuv, anything ffmpeg reads) into a .ddc
    file; '-' = stdin (an image, or a Y4M stream). The rate: a --preset, -q/--quality (one scale for every method),
    --size (a file size) or the method's own options (--bpp ...)."""
    from diffcodec import api, atomic, images, metrics

    output = _output_path(input, output, ".ddc", as_json)
    images.check_output_path(output, [input], force)
    max_bytes = parse_bytes(max_size)
    given = {"k": k, "steps": steps, "atoms": atoms, "codebook": codebook, "space": space, "base": base, "seed": seed,
             "bpp": bpp, "precision": precision, "prior": prior, "texture": texture}
    params = {name: v for name, v in given.items() if v is not None}
    codec = api.get_codec(method)
    if kbps is not None and (quality is not None or max_bytes is not None):
        raise UsageError("give --kbps or --quality / --size, not both")
    if quality is not None:         # the same for every image and frame: the codec's own preset / options
        preset, params = api.rate_request(method, preset, params, quality=quality)
    if codec.takes_device():   # resolved by the codec when it loads a network
        params["device"] = device
    if _is_video_input(input) or kbps is not None or frame_size is not None or gop is not None:
        _encode_clip(input, output, method, preset, params, kbps, gop, frame_size, fps, as_json, quiet,
                     force, max_bytes=max_bytes)
        if verbose and output != "-" and not as_json:
            _say_clip_header(output, quiet)
        return
    t0 = time.perf_counter()
    arr = images.read_image(input)
    if max_bytes is not None:
        preset, params = api.rate_request(method, preset, params, max_bytes=max_bytes, shape=arr.shape)
    data, recon = api.encode_with_reconstruction(arr, method=method, preset=preset, **params)
    elapsed = time.perf_counter() - t0
    atomic.write_bytes(output, data, overwrite=force)
    meta = api.info(data)
    psnr = None if recon is None else metrics.psnr(arr.reshape(recon.shape), recon)
    coded = codec.coded_setting(meta["model"], meta["params"])
    summary = {"input": input, "output": output, "preset": preset, **meta, "coded": coded, "quality": quality,
               "max_bytes": max_bytes, "psnr": psnr, "encode_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        say(f"{input} -> {output}: {meta['file_bytes']:,} bytes, {meta['bpp']:.3f} bpp"
            f"{'' if psnr is None else f', PSNR {psnr:.2f} dB'}, {elapsed:.2f} s ({method} {coded}, "
            f"{meta['width']}x{meta['height']})", quiet)
        if verbose:
            asked = (f"-q {quality}" if quality is not None else f"--size {max_bytes:,} bytes" if max_bytes else
                     None)
            rate = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                             if k != "device")
            if asked:
                say(f"  asked:      {asked} -> {' '.join(x for x in (preset, rate) if x) or 'defaults'}", quiet)
            _say_details(meta, codec, quiet)
    target = bpp if bpp is not None else (max_bytes * 8 / (meta["width"] * meta["height"]) if max_bytes else None)
    if target is not None and meta["bpp"] < 0.9 * target:    # "at or under": say when it is far under
        what = f"--bpp {bpp:g}" if bpp is not None else f"--size {max_bytes:,}"
        say(f"note: {meta['bpp']:.3f} bpp is well under {what}: that is the most {method}'s rate search spends on "
            f"this image", quiet)
    if quality is not None and quality >= codec.quality_ceiling:
        say(f"note: {method} reaches the quality scale only up to -q {codec.quality_ceiling - 1}; -q {quality} gives "
            f"its best setting ({coded})", quiet)


def _say_clip_header(path: str, quiet: bool) -> None:
    """The -v line of a clip: what its header says it was coded with (read without the frames)."""
    from diffcodec import api, container

    with open(path, "rb") as f:
        h = container.StreamReader(f).header
    if h is not None:
        codec = api.get_codec(h.method, for_decoding=True)
        say(f"  setting:    {h.method} {codec.coded_setting(h.model, h.params)}, {h.width}x{h.height}, "
            f"{h.frames} frame(s)", quiet)


def _say_details(meta: dict, codec, quiet: bool) -> None:
    """The -v lines of encode and decode: what `diffcodec info` would show about the file, in short."""
    details = meta.get(meta["method"])
    rows = [("method", f"{meta['method']}, model {meta['model']} (sha256 {meta['model_sha256_prefix']}...)"),
            ("setting", codec.coded_setting(meta["model"], meta["params"])),
            ("mode", details.get("summary") if isinstance(details, dict) else None),
            ("parameters", json.dumps(meta["params"], default=_json_bytes) if meta["params"] else None),
            ("rng", json.dumps(meta["rng"], default=_json_bytes) if meta["rng"] else None),
            ("bytes", f"{meta['file_bytes']:,} = {meta['framing_bytes']:,} header and framing + "
                      f"{meta['payload_bytes']:,} payload"),
            ("size", f"{meta['width']}x{meta['height']}, {meta['channels']} channel(s), {meta['frames']} frame(s)")]
    for name, value in rows:
        if value:
            say(f"  {name + ':':<11} {value}", quiet)


def _is_video_input(path: str) -> bool:
    from diffcodec import video

    if path == "-":
        peek = getattr(sys.stdin.buffer, "peek", None)
        return bool(peek) and video.looks_like_y4m(peek(len(video.Y4M_MAGIC))[:len(video.Y4M_MAGIC)])
    return video.is_video_path(path)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(w), int(h)
    except ValueError:
        raise UsageError(f"--video-size must be WxH, got {text!r}") from None


def _encode_clip(input, output, method, preset, params, kbps, gop, frame_size, fps, as_json, quiet, force=False,
                 max_bytes=None):
    from diffcodec import api, atomic, video
    from diffcodec.progress import bar

    with video.open_video(input, size=_parse_size(frame_size), fps=fps) as reader:
        info = reader.info
        if max_bytes is not None:       # --size of a clip: the rate that makes the whole clip that size
            kbps = api.clip_kbps_for_size(max_bytes, info)
        with bar(total=info.frames, desc="encode", unit="frame") as frames_bar:
            write = atomic.write_stdout_with if output == "-" else \
                (lambda w: atomic.write_with(output, w, overwrite=force))
            summary = api.encode_clip(reader, write, method, preset, kbps=kbps, gop=gop,
                                      on_frame=lambda n: frames_bar.update(), **params)
    if output == "-":
        sys.stdout.buffer.flush()
    result = {"input": input, "output": output, "method": method, "width": info.width, "height": info.height,
              "chroma": info.chroma, **summary}
    if as_json:
        emit_json(result)
    else:
        quality = f", PSNR-Y {summary['psnr_y']:.2f} dB" if summary.get("psnr_y") is not None else ""
        say(f"{input} -> {output}: {method}, {info.width}x{info.height} {info.chroma}, {summary['frames']} frames, "
            f"{summary['file_bytes']:,} bytes, {summary['kbps']:.1f} kbps{quality}, {summary['encode_s']:.2f} s "
            f"({summary['encode_fps'] or 0:.2f} frames/s)", quiet)


@cli.command()
@click.argument("input", metavar="IN")
@click.option("-o", "--output", "output", metavar="OUT",
              help="Output image, type from the extension: .png .bmp .tif .webp (lossless) .ppm; '-' = PNG on stdout. "
                   "A clip: .y4m, .yuv, .mp4 (lossless H.264), .mkv (FFV1), out_%04d.png, '-' = Y4M on stdout. "
                   "Default: IN with .png (.y4m for a clip).")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--refine", is_flag=True, help="opq: remove blocking with the diffusion refiner (slower).")
@click.option("--steps", type=click.IntRange(1, 50), default=None,
              help="Refiner sampling steps (default 1: best PSNR and MS-SSIM in our measurements); "
              "diffae: decoder steps (default: the file's).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None, help="Refiner noise seed (default 0).")
@click.option("--frames", "frame_range", default=None, metavar="A:B",
              help="A clip: decode frames A to B-1 only (either may be left out), from the nearest keyframe.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@limit_options
@device_option
@quiet_option
@verbose_option
def decode(input, output, force, refine, steps, seed, frame_range, as_json, max_pixels, max_work, device, quiet,
           verbose=False):
    """Decode a .ddc file ('-' = stdin) into an image, or a clip into a video."""
    from diffcodec import api, images

    given = {"refine": refine or None, "steps": steps, "seed": seed}
    options = {name: v for name, v in given.items() if v is not None}
    clip = _open_clip(input)
    if clip is not None and verbose and clip.header is not None:
        h = clip.header
        clip_codec = api.get_codec(h.method, for_decoding=True)
        say(f"  setting:    {h.method} {clip_codec.coded_setting(h.model, h.params)}, {h.width}x{h.height}, "
            f"{h.frames} frame(s)", quiet)
    if clip is not None:
        try:
            return _decode_clip(input, output, clip, options, frame_range, device, force, as_json, quiet,
                                {"max_pixels": max_pixels, "max_work": max_work})
        finally:
            if input != "-":
                clip.file.close()
    if frame_range is not None:
        raise UsageError("--frames applies to clips; this file holds one image")
    output = _output_path(input, output, ".png", as_json)
    fmt = images.output_format(output)
    images.check_output_path(output, [input], force)
    data = images.read_bytes(input)
    # The file's codec says what it decodes with; flags it does not take are its one-line usage error.
    codec = api.codec_of(data)
    if "device" in codec.decode_options:    # resolved (importing torch) only by a codec that runs a network
        options["device"] = device
    codec.check_decode_options(options)
    t0 = time.perf_counter()
    pixels = api.decode(data, max_pixels=max_pixels, max_work=max_work, **options)
    elapsed = time.perf_counter() - t0
    images.write_image(output, pixels, fmt, overwrite=force)
    summary = {"input": input, "output": output, "width": pixels.shape[1], "height": pixels.shape[0],
               "channels": 1 if pixels.ndim == 2 else pixels.shape[2], "input_bytes": len(data),
               "bpp": len(data) * 8 / (pixels.shape[0] * pixels.shape[1]), "decode_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        meta = api.info(data)
        say(f"{input} -> {output}: {pixels.shape[1]}x{pixels.shape[0]} from {len(data):,} bytes, "
            f"{summary['bpp']:.3f} bpp, {elapsed:.2f} s ({meta['method']} "
            f"{codec.coded_setting(meta['model'], meta['params'])}{', refined' if options.get('refine') else ''})",
            quiet)
        if verbose:
            _say_details(meta, codec, quiet)


def _open_clip(input: str):
    """A StreamReader over IN when it is a clip (a 'v' chunk or several frames), else None (the caller reads the
    file as an image). Standard input is only peeked at, so that an image there stays readable."""
    from diffcodec import clips, container, images

    n = len(container.SIGNATURE_VIDEO)
    if input == "-":
        f = sys.stdin.buffer
        head = f.peek(n)[:n] if hasattr(f, "peek") else b""
        # a pipe cannot be read twice: any version but an image's (1.0) goes to the clip reader (a newer minor
        # version of a clip too: readers accept those)
        clip = head.startswith(container.MAGIC) and len(head) == n and head != container.SIGNATURE
        return container.StreamReader(f) if clip else None
    f = images.open_input(input)            # a missing or unreadable file: its one-line error
    try:
        # any .ddc file: whether it is a clip is its content's answer (a 'v' chunk or several frames), whatever
        # version its signature says
        if not images.read_head(f, n, input).startswith(container.MAGIC):
            f.close()
            return None
        f.seek(0)
        stream = container.StreamReader(f)
    except BaseException:
        f.close()
        raise
    if not clips.is_clip(stream):
        f.close()
        return None
    return stream


def _parse_frames(text: str | None) -> tuple[int, int | None]:
    if text is None:
        return 0, None
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first, stop = int(a) if a else 0, int(b) if b else None
    except ValueError:
        raise UsageError(f"--frames takes A:B (frame numbers, B excluded), got {text!r}") from None
    if first < 0 or (stop is not None and stop <= first):
        raise UsageError(f"--frames {text}: need 0 <= A < B")
    return first, stop


def _decode_clip(input, output, stream, options, frame_range, device, force, as_json, quiet, limits=None):
    from dataclasses import replace

    from diffcodec import api, clips, video
    from diffcodec.progress import bar

    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for Y4M on stdout)")
        output = str(Path(input).with_suffix(".y4m"))
    if as_json and output == "-":
        raise UsageError("--json prints on stdout, which -o - already uses; write to a file instead")
    if output != "-" and not video.is_video_path(output):
        raise UsageError(f"{output}: a clip decodes to a video (.y4m, .yuv, .mp4, .mkv or out_%04d.png)")
    first, stop = _parse_frames(frame_range)
    codec = api.get_codec(stream.header.method, for_decoding=True)
    if "device" in codec.decode_options:
        options["device"] = device
    codec.check_decode_options(options)
    info = clips.clip_video_info(stream)
    stop_ = info.frames if stop is None else min(stop, info.frames)
    t0 = time.perf_counter()
    n = 0
    with video.open_writer(output, replace(info, frames=max(stop_ - first, 0)), force=force) as writer, \
            bar(total=max(stop_ - first, 0), desc="decode", unit="frame") as frames_bar:
        for _, planes in api.decode_frames(stream, first, stop, **(limits or {}), **options):
            writer.write(planes)
            n += 1
            frames_bar.update()
    elapsed = time.perf_counter() - t0
    summary = {"input": input, "output": output, "width": info.width, "height": info.height, "frames": n,
               "first_frame": first, "decode_s": round(elapsed, 3),
               "decode_fps": round(n / elapsed, 3) if elapsed else None}
    if as_json:
        emit_json(summary)
    else:
        say(f"{input} -> {output}: {info.width}x{info.height}, {n} frames from {first}, {elapsed:.2f} s "
            f"({n / elapsed if elapsed else 0:.2f} frames/s)", quiet)


@cli.command("extract-base")
@click.argument("input", metavar="IN")
@click.option("-o", "--output", "output", metavar="OUT",
              help="The base layer's file ('-' = stdout). Default: IN with the base's suffix (.jpg .webp .avif, or "
                   ".base.ddc for an opq base).")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@quiet_option
def extract_base(input, output, force, quiet):
    """Write the base layer of a layered file (ddcm --base) as a standalone file: a JPEG / WebP / AVIF file any
    viewer opens, or an opq .ddc; it decodes to exactly the image the refinement started from."""
    from diffcodec import api, atomic, images

    data = images.read_bytes(input)
    suffix, files = api.extract_base_stripes(data)
    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for stdout)")
        output = str(Path(input).with_suffix(".base.ddc" if suffix == ".ddc" else suffix))
    if len(files) == 1:
        images.check_output_path(output, [input], force)
        atomic.write_bytes(output, files[0], overwrite=force)
        say(f"{input} -> {output}: base layer, {len(files[0]):,} bytes", quiet)
        return
    if output == "-":
        raise UsageError(f"the base layer is {len(files)} files, one per stripe of rows: give -o FILE (they are "
                         f"written as FILE's name with .0, .1, ... before its suffix)")
    out = Path(output)
    outputs = [str(out.with_name(f"{out.stem}.{i}{out.suffix}")) for i in range(len(files))]
    for path in outputs:
        images.check_output_path(path, [input], force)
    atomic.write_files(outputs, files, overwrite=force)
    say(f"{input} -> {outputs[0]} ... {outputs[-1]}: base layer in {len(files)} stripes of rows, "
        f"{sum(map(len, files)):,} bytes", quiet)


@cli.command()
@click.option("-m", "--method", default="ddcm", show_default=True,
              help="Generating method (one whose codec can generate: `diffcodec methods --json`).")
@click.option("-o", "--output", "output", metavar="OUT", required=True, help="The sample image (.png ...).")
@click.option("--bitstream", default=None, metavar="DDC",
              help="Also write the sample's .ddc (decoding it reproduces OUT; opq --refine: `decode --refine` does).")
@click.option("--k", "k", type=click.IntRange(1, 1 << 20), default=None, help="ddcm: codebook size K (default 4096).")
@click.option("--steps", type=click.IntRange(1, 1000), default=None,
              help="Strided diffusion steps N (default: ddcm 20, opq 50).")
@click.option("--atoms", type=click.IntRange(1, 1024), default=None, help="ddcm: atoms M per step (default 1).")
@click.option("--codebook", type=click.Choice(["mshift", "iid", "shift"]), default=None,
              help="ddcm: codebook kind (default mshift).")
@click.option("--space", type=click.Choice(["pixel", "latent"]), default=None, help="ddcm: space (default pixel).")
@click.option("--categorical", is_flag=True, default=None,
              help="opq: the categorical model (logits over the codewords) instead of the continuous one.")
@click.option("--temperature", type=click.FloatRange(0, 100), default=None,
              help="opq --categorical: sampling temperature gamma (default 1; 0 = argmax).")
@click.option("--refine", is_flag=True, default=None,
              help="opq: run the opq refiner over the decoded sample (as `decode --refine`).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None,
              help="Seed of the random choices (ddcm: also of the codebooks; default 0).")
@click.option("--size", default="64", show_default=True, help="Sample size: N (square) or WxH.")
@click.option("-f", "--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@limit_options
@device_option
@quiet_option
def generate(method, output, bitstream, k, steps, atoms, codebook, space, categorical, temperature, refine, seed, size,
             force, as_json, max_pixels, max_work, device, quiet):
    """Compressed generation: an unconditional sample (seeded) and, with --bitstream, the .ddc file that decodes to
    it. ddcm: random codebook choices; opq: diffusion in the opq-32-8-8 index space (--categorical)."""
    from diffcodec import api, atomic, images
    from diffcodec.methods import get_codec

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
    # only the options the user gave reach the codec (it refuses those it does not take), and --device where the
    # codec lists it
    given = {name: value for name, value in (("k", k), ("steps", steps), ("atoms", atoms), ("codebook", codebook),
                                             ("space", space), ("categorical", categorical),
                                             ("temperature", temperature), ("refine", refine), ("seed", seed))
             if value is not None}
    codec = get_codec(method)
    options = dict(given)
    if "device" in codec.generate_options:
        options["device"] = api.resolve_device(device)
    t0 = time.perf_counter()
    data, sample = api.generate(method, height, width, max_pixels=max_pixels, max_work=max_work, **options)
    elapsed = time.perf_counter() - t0
    images.write_image(output, sample, fmt, overwrite=force)
    if bitstream is not None:
        try:
            atomic.write_bytes(bitstream, data, overwrite=force)
        except BaseException:
            if output != "-":       # the pair appears whole or not at all
                atomic.remove_quietly(output)
            raise
    meta = api.info(data)
    summary = {"output": output, "bitstream": bitstream, **meta, "generate_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        settings = ", ".join(f"{name}={value}" for name, value in given.items())
        say(f"{output}: {width}x{height} {method} sample{' (' + settings + ')' if settings else ''}; bitstream "
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
        emit_json(meta)
        return
    rows = [
        ("format version", meta["format_version"]),
        ("method", meta["method"]),
        ("model", f"{meta['model']} (sha256 {meta['model_sha256_prefix']}...)"),
        ("parameters", json.dumps(meta["params"], default=_json_bytes) if meta["params"] else "-"),
        ("rng", json.dumps(meta["rng"], default=_json_bytes) if meta["rng"] else "-"),
        ("size", f"{meta['width']}x{meta['height']}, {meta['channels']} channel(s), {meta['bit_depth']}-bit "
                 f"{meta['colour_space']}, {meta['frames']} frame(s)"),
        ("header bytes", meta["header_bytes"]),
        ("framing bytes", f"{meta['framing_bytes']} (header + chunk framing, all but the payload)"),
        ("payload bytes", meta["payload_bytes"]),
        ("file bytes", meta["file_bytes"]),
        ("bpp", f"{meta['bpp']:.4f} (payload only {meta['payload_bpp']:.4f})"),
        ("compression ratio", f"{meta['compression_ratio']:.1f} : 1"),
    ]
    v = meta.get("video")
    if v:
        fps = f"{v['fps'][0]}/{v['fps'][1]}" if v["fps"][1] != 1 else str(v["fps"][0])
        rows.insert(5, ("video", f"{fps} fps, {v['duration_s']:.2f} s, {v['chroma']} {v['matrix']} {v['range']}, "
                                 f"{v['keyframes']} keyframe(s), {v['p_frames']} P-frame(s), {v['kbps']:.1f} kbps"))
        b = v["bytes_per_frame"]
        rows.insert(6, ("bytes per frame", f"{b['min']:,} min, {b['mean']:,.0f} mean, {b['max']:,} max"))
    details = meta.get(meta["method"])        # the codec's own description (Codec.describe)
    if isinstance(details, dict) and details.get("summary"):
        rows.insert(4, (f"{meta['method']} mode", details["summary"]))
    for k, v in rows:
        click.echo(f"{k:>18}: {v}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def methods(as_json):
    """List coding methods, their presets and how -q/--quality maps to them."""
    from diffcodec import api

    table = api.methods()
    if as_json:
        emit_json(table)
        return
    for name, m in table.items():
        default = (" ".join(f"--{k} {v}" for k, v in m["default_options"].items()) + " when no rate is given"
                   if m["default_options"] else f"preset {m['default_preset']}")
        click.echo(f"{name}  (default {default})")
        for preset, desc in m["presets"].items():
            click.echo(f"  {preset:<16} {desc}")
        if m["quality"]:
            click.echo(f"  -q/--quality     {_quality_text(m['quality'], m['quality_ceiling'])}")
        if m["predicts"]:
            click.echo(f"  --gop N          clips with P-frames{' ' + m['predicts_with'] if m['predicts_with'] else ''}"
                       f" (default --gop {m['default_gop']})")


def _quality_text(rows: list[dict], ceiling: int) -> str:
    """'0-12 opq-16-8-8, 13-19 opq-32-8-8, ...': a codec's quality rows (every fifth of a long list)."""
    spans = [(r["from"], (rows[i + 1]["from"] - 1) if i + 1 < len(rows) else 100,
              " ".join([r["preset"]] if r["preset"] else []
                       + [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["options"].items()]))
             for i, r in enumerate(rows)]
    if len(spans) > 8:
        spans = [sp for i, sp in enumerate(spans) if i in (0, len(spans) - 1) or sp[0] % 5 == 0]
        text = ", ".join(f"{a}: {what}" if i < len(spans) - 1 else f"{a}-{b}: {what}"
                         for i, (a, b, what) in enumerate(spans)) + " (in between: `methods --json`)"
    else:
        text = ", ".join(f"{a}-{b} {what}" if a != b else f"{a} {what}" for a, b, what in spans)
    return text + f" (from {ceiling} on it falls short of the scale)" if ceiling <= 100 else text


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check every file's sha256.")
@click.pass_context
def models(ctx, as_json, verify):
    """List shipped codebooks and model weights, and the models added with `models add` (sha256 verified).

    `models add NAME --diffusers DIR` registers a pretrained diffusers model for ddcm --prior NAME; `models remove
    NAME` forgets it."""
    if ctx.invoked_subcommand is not None:
        return
    from diffcodec import artifacts, user_models

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
                     "wall_time_s": m.get("total_wall_time_s", m.get("wall_time_s")), "source": "shipped"})
    for r in user_models.list_models():
        wrong = user_models.problems(r, rehash=verify)
        missing = any(w.endswith(" is missing") for w in wrong)
        status = ("missing" if missing else "CHANGED") if wrong else ("ok" if verify else "unchecked")
        rows.append({"name": r["name"], "kind": f"{r.get('kind', '?')}-{r.get('space', '?')}", "bytes": r.get("bytes"),
                     "sha256": r.get("sha256") or "?" * 12, "status": status, "source": "added",
                     "path": r.get("path"), "problems": wrong, "process": r.get("process")})
    if as_json:
        emit_json(rows)
    else:
        if not rows:
            click.echo(f"no artifacts found in {artifacts.artifacts_dir()}")
        for r in rows:
            click.echo(f"{r['name']:<24} {r['kind'] or '?':<14} {r['bytes'] or 0:>10,} B  {r['sha256'][:12]}  "
                       f"{r['status']}")
            if r["source"] == "added":
                click.echo(f"    added: {r['path']}" + "".join(f"\n    {w}" for w in r["problems"]))
                continue
            trained = ", ".join(x for x in (
                f"{r['steps']} steps" if r.get("steps") else "",
                f"{r['wall_time_s']:.0f} s" if r.get("wall_time_s") else "",
                f"on {r['device']}" if r.get("device") else "") if x)
            if trained:
                click.echo(f"    trained: {trained}")
            if r["validation"]:
                click.echo(f"    validation: {short_json(r['validation'])}")
    if any(r["status"] != "ok" for r in rows if verify):
        bad = [r["name"] for r in rows if r["status"] != "ok"]
        raise ModelError(f"damaged or missing model files: {', '.join(bad)}")


@models.command("add")
@click.argument("name")
@click.option("--diffusers", "folder", required=True, metavar="DIR",
              help="A local diffusers model folder: unet/ + scheduler/ (pixel), and vae/ + text_encoder/ + tokenizer/ "
                   "(latent, e.g. Stable Diffusion 2.1 base).")
@click.option("--copy", is_flag=True, help="Copy the files decoding reads into the registry (default: use DIR).")
@click.option("-f", "--force", is_flag=True, help="Replace a model registered under NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print the registration as JSON.")
@quiet_option
def models_add(name, folder, copy, force, as_json, quiet):
    """Register the pretrained diffusers model in DIR as NAME, for `encode --method ddcm --prior NAME` (nothing is
    downloaded; the sha256 of every file is recorded and re-checked whenever the model is used)."""
    from diffcodec import user_models

    record = user_models.add_diffusers(name, folder, copy=copy, force=force)
    if as_json:
        emit_json(record)
        return
    p = record["process"]
    say(f"added {name}: {record['space']} diffusers model at {record['path']} ({len(record['files'])} files, "
        f"{record['bytes']:,} bytes, sha256 {record['sha256'][:12]}); {p['scheduler']} config: {p['beta_schedule']} "
        f"betas over {p['num_train_timesteps']} steps, {p['prediction_type']} prediction, {p['timestep_spacing']} "
        f"spacing (offset {p['steps_offset']})" + (f", x0 clipped to +-{p['clip_sample_range']:g}"
                                                   if p["clip_sample"] else ""), quiet)
    for note in record["notes"]:
        say(f"note: {note}", quiet)
    say(f"registered in {user_models.record_path(name)}", quiet)


@models.command("remove")
@click.argument("name")
@quiet_option
def models_remove(name, quiet):
    """Forget the model added as NAME (its registration, its cached embedding and a --copy; never DIR itself)."""
    from diffcodec import user_models

    record = user_models.remove(name)
    say(f"removed {name}" + (f" (its files in {record['path']} stay)" if record.get("path") and
                             not record.get("copied") else ""), quiet)


@cli.command()
@click.argument("inputs", nargs=-1, metavar="[FILES or DIR]...")
@click.option("-m", "--method", default="opq", show_default=True)
@click.option("-p", "--preset", "presets", multiple=True,
              help="Preset(s) to run (repeat; default: all of the method's, or the default one when --param values "
                   "fix everything a preset sets).")
@click.option("--vs", "baselines", multiple=True, default=("jpeg", "webp", "avif"), show_default=True,
              help="Baseline codec(s), matched to each diffcodec file's size (repeat); `--vs list` lists them and "
                   "what the optional ones (jxl, heic) need.")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME",
              help="Perceptual metric(s) besides PSNR and MS-SSIM (repeat): ssimulacra2, butteraugli, lpips, dists, "
                   "or none. Default: ssimulacra2, and butteraugli when libjxl's butteraugli_main is found.")
@click.option("--anchor", default=None, metavar="CODEC",
              help="BD-rate / BD-quality anchor: a --vs baseline or diffcodec (default: the first --vs; none: no BD).")
@click.option("--published", "published", multiple=True, metavar="JSON",
              help="Published RD curves to draw dashed, 'published, not re-measured' (repeat), e.g. "
                   "benchmarks/published/kodak24.json.")
@click.option("-q", "--quality", "qualities", multiple=True, type=click.IntRange(0, 100),
              help="Also (or, without -p, instead of the presets) run the setting of this common quality (repeat; "
                   "qualities that map to the same setting run once).")
@click.option("-o", "--outdir", default="bench-out", show_default=True,
              help="Folder for results.csv, plots, report; must be empty or absent (see --force).")
@click.option("-f", "--force", is_flag=True, help="Run into a non-empty -o, deleting an earlier run's results there.")
@click.option("--report-images", default=6, show_default=True, help="Images with crops in report.html.")
@click.option("--refine-steps", "refine_steps", multiple=True, type=click.IntRange(1, 50),
              help="opq: also decode each file with the diffusion refiner at N steps (repeat).")
@click.option("--decode-steps", "decode_steps", multiple=True, type=click.IntRange(1, 50),
              help="diffae: also decode each file with N decoder steps (repeat).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Encode parameter for every file (repeat), e.g. --param space=latent --param steps=10.")
@click.option("--video", "videos", multiple=True, metavar="CLIP",
              help="Video benchmark of CLIP (repeat) against --vs h264 (x264 medium + veryslow/tune psnr), h265, "
                   "av1, h264-gop (default: h264 h265 av1), see diffcodec.bench_video.")
@click.option("--kbps", "kbps", default=None, metavar="A,B,...", help="--video: rate points as clip targets in kbps.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="--video: first N frames of each clip.")
@click.option("--gop", type=click.IntRange(1, 2**20), default=None, metavar="N",
              help="--video: our clips' keyframe interval (default: the method's); the baselines use the same GOP.")
@device_option
@quiet_option
def bench(inputs, method, presets, baselines, outdir, report_images, refine_steps, decode_steps, params, videos,
          kbps, max_frames, gop, device, quiet, qualities=(), force=False, metric_names=(), anchor=None, published=()):
    """Rate-distortion benchmark against JPEG/WebP/AVIF at matched file sizes (with --video: clips against
    x264/x265/SVT-AV1 at matched total size).

    Default input: ../shared/data/kodak (Kodak24) when it exists beside the repository.
    """
    from diffcodec import api
    from diffcodec import bench as bench_mod

    if "list" in baselines:
        return _list_baselines()
    if videos and (inputs or refine_steps or decode_steps or qualities):
        raise UsageError("--video takes clips only (no image inputs, --refine-steps, --decode-steps or --quality)")
    if not videos and (kbps is not None or max_frames is not None or gop is not None):
        raise UsageError("--kbps, --max-frames and --gop apply to --video")
    if not inputs and not videos:
        default = bench_mod.default_image_dir()
        if default is None:
            raise UsageError("no input images given and ../shared/data/kodak not found")
        inputs = (str(default),)
    files = bench_mod.collect_images(list(inputs)) if not videos else []
    codec = api.get_codec(method)
    dev = api.resolve_device(device)
    if refine_steps and "refine" not in codec.decode_options:
        raise UsageError(f"--refine-steps: {method} has no refiner (methods with one take the decode option refine)")
    if decode_steps and ("steps" not in codec.decode_options or "refine" in codec.decode_options):
        raise UsageError(f"--decode-steps: {method} has no decoder steps to choose (see --refine-steps)")
    extras = [{"label": f"refine{n}", "decode_options": {"refine": True, "steps": n}} for n in refine_steps]
    extras += [{"label": f"steps{n}", "decode_options": {"steps": n}} for n in decode_steps]
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
    if videos:
        from click.core import ParameterSource

        from diffcodec import bench_video

        vs = (bench_video.DEFAULT_BASELINES if click.get_current_context().get_parameter_source("baselines")
              == ParameterSource.DEFAULT else baselines)
        vconfig = bench_video.VideoBenchConfig(videos, method, Path(outdir), presets=presets,
                                               kbps=bench_video.parse_kbps(kbps), baselines=vs,
                                               encode_params=encode_params, device=dev, max_frames=max_frames,
                                               gop=gop, quiet=quiet, command="diffcodec " + shlex.join(sys.argv[1:]),
                                               force=force)
        summary = bench_video.run_video_bench(vconfig)
        say(f"wrote {outdir}/results.csv, frames.csv, summary.json, summary.md, rd_*.png, perframe_*.png, "
            "report.html", quiet)
        if not quiet:
            click.echo((Path(outdir) / "summary.md").read_text())
        return summary
    config = bench_mod.BenchConfig(files, method, Path(outdir), presets=list(presets), baselines=list(baselines),
                                   device=dev, encode_params=encode_params, extra_settings=extras,
                                   report_images=report_images, quiet=quiet, qualities=list(qualities),
                                   force=force, command="diffcodec " + shlex.join(sys.argv[1:]),
                                   metrics=_metric_list(metric_names),
                                   anchor=None if anchor == "none" else (anchor or ""), published=list(published))
    summary = bench_mod.run_bench(config)
    say(f"wrote {outdir}/results.csv, summary.json, summary.md, rd_*.png, report.html", quiet)
    if not quiet:
        click.echo((Path(outdir) / "summary.md").read_text())
    return summary


def _metric_list(names) -> list[str] | None:
    """--metric values: None (the default set) when none is given, [] for `none`."""
    if not names:
        return None
    return [] if list(names) == ["none"] else [n for n in names if n != "none"]


def _list_baselines() -> None:
    from diffcodec import baselines

    for name, why in baselines.baseline_status().items():
        b = baselines.get_baseline(name)
        click.echo(f"{name:8s} {'available' if why is None else 'missing  '}  {b.description}"
                   + ("" if why is None else f"  [{why}]"))


@cli.command()
@click.argument("reference", metavar="A")
@click.argument("distorted", metavar="B")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME",
              help="Perceptual metric(s) besides PSNR, SSIM and MS-SSIM (repeat): ssimulacra2, butteraugli, lpips, "
                   "dists, or none. Default: ssimulacra2, and butteraugli when libjxl's butteraugli_main is found.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare(reference, distorted, metric_names, as_json):
    """Every quality metric of image B against the reference image A (same size)."""
    from diffcodec import api

    result = api.compare(reference, distorted, metrics=_metric_list(metric_names))
    if as_json:            # strict JSON: NaN (MS-SSIM of small images) and inf (PSNR of identical ones) are null
        emit_json({"reference": reference, "distorted": distorted,
                   **{k: None if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")) else v
                      for k, v in result.items()}})
        return
    units = {"psnr": " dB", "psnr_y": " dB"}
    fmt = {"psnr": ".2f", "psnr_y": ".2f", "ssim": ".5f", "ms_ssim": ".5f", "ssimulacra2": ".3f",
           "butteraugli": ".4f", "butteraugli_3norm": ".4f", "lpips": ".4f", "dists": ".4f"}
    click.echo(f"{distorted} vs {reference} ({result['width']}x{result['height']})")
    for key, value in result.items():
        if key in ("width", "height"):
            continue
        shown = "n/a" if value is None or value != value else ("inf" if value == float("inf") else
                                                               format(value, fmt.get(key, ".4f")))
        click.echo(f"  {key:18s} {shown}{units.get(key, '') if shown not in ('n/a', 'inf') else ''}")


@cli.command()
@click.option("-o", "--outdir", default="diffcodec-demo", show_default=True, help="Folder for the demo files.")
@click.option("-p", "--preset", default=None, help="opq preset (default: the method's default).")
@quiet_option
def demo(outdir, preset, quiet):
    """Encode and decode a generated sample image: writes sample.png, sample.ddc, sample-decoded.png."""
    import os

    from diffcodec import api, atomic, images, metrics
    from diffcodec.testimage import synthetic_image

    os.makedirs(outdir, exist_ok=True)
    img = synthetic_image()
    paths = {k: os.path.join(outdir, k) for k in ("sample.png", "sample.ddc", "sample-decoded.png")}
    atomic.write_bytes(paths["sample.png"], images.image_to_bytes(img))
    t0 = time.perf_counter()
    data = api.encode(img, method="opq", preset=preset)
    t1 = time.perf_counter()
    out = api.decode(data)
    t2 = time.perf_counter()
    atomic.write_bytes(paths["sample.ddc"], data)
    atomic.write_bytes(paths["sample-decoded.png"], images.image_to_bytes(out))
    meta = api.info(data)
    say(f"{paths['sample.png']} ({img.shape[1]}x{img.shape[0]}) -> {paths['sample.ddc']}: "
        f"{meta['file_bytes']:,} bytes, "
         f"{meta['bpp']:.3f} bpp, PSNR {metrics.psnr(img, out):.2f} dB, encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s "
         f"-> {paths['sample-decoded.png']}", quiet)


cli.add_command(train)
cli.add_command(batch)


def main(argv=None) -> None:
    warnings.showwarning = show_warning
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
    except OSError as e:      # the OS failed a read or write outside the paths that name it (FileAccessError)
        _os_error_exit(e)
    try:
        sys.stdout.flush()    # --json and info text: a full disk or /dev/full says so here, in one line
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except OSError as e:
        _os_error_exit(e, "standard output")


def _os_error_exit(e: OSError, where: str | None = None) -> None:
    from diffcodec.errors import FileAccessError, os_reason

    if where is None and e.filename is not None:
        where = str(e.filename)
    tb = e.__traceback__
    while where is None and tb is not None:    # no path: was it click.echo writing to stdout (--json, info)?
        code = tb.tb_frame.f_code
        if code.co_name == "echo" and "click" in code.co_filename and not tb.tb_frame.f_locals.get("err"):
            where = "standard output"
        tb = tb.tb_next
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)     # what is left in stdout's buffer must not fail again at exit
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    what = f"cannot write ({os_reason(e)})" if where == "standard output" else os_reason(e)
    click.echo(f"diffcodec: error: {where or 'a read or write'}: {what}", err=True)
    sys.exit(FileAccessError.exit_code)


if __name__ == "__main__":
    main()
