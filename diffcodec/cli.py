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
from diffcodec.cli_options import device_option, emit_json, quiet_option, say, short_json, show_warning
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
              help="ddcm: space (default latent; with --bpp and no --space/--base, conditional on the largest opq "
                   "base that fits); diffae: decoder space (default latent).")
@click.option("--base", default=None, metavar="BASE",
              help="ddcm: conditional mode on a base layer refined by the diffusion prior: an opq preset "
                   "(opq-16-8-8 ...) or a standard codec (jpeg, webp, avif; quality chosen by --bpp, or avif:q40).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None,
              help="ddcm: codebook/noise seed; diffae: decoder noise seed (default 0).")
@click.option("--bpp", type=float, default=None,
              help="ddcm: choose steps/K/atoms (diffae: the quantization step) to land at or under this bpp "
              "(with --base: the base layer counts).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="ddcm: arithmetic of the prior's network, stored in the file and replayed when decoding "
              "(default auto: bf16 for pixel-space priors where the device has native bf16, else fp32).")
@click.option("--kbps", type=float, default=None,
              help="Video: target rate of the whole clip (frame 0 picks the parameters at the matching --bpp).")
@click.option("--size", "frame_size", default=None, metavar="WxH", help="Video: frame size of raw .yuv input.")
@click.option("--fps", default=None, metavar="N[/D]", help="Video: frame rate of raw .yuv input (or relabel).")
@device_option
@quiet_option
def encode(input, output, method, preset, force, as_json, k, steps, atoms, codebook, space, base, seed, bpp, precision,
           kbps, frame_size, fps, device, quiet):
    """Encode an image (PNG, JPEG, TIFF, BMP, WebP) or a video (Y4M, raw .yuv, anything ffmpeg reads: every frame
    coded alone) into a .ddc file; '-' = stdin (an image, or a Y4M stream)."""
    from diffcodec import api, atomic, images

    output = _output_path(input, output, ".ddc", as_json)
    images.check_output_path(output, [input], force)
    given = {"k": k, "steps": steps, "atoms": atoms, "codebook": codebook, "space": space, "base": base, "seed": seed,
             "bpp": bpp, "precision": precision}
    params = {name: v for name, v in given.items() if v is not None}
    if api.get_codec(method).takes_device():   # resolved by the codec when it loads a network
        params["device"] = device
    if _is_video_input(input) or kbps is not None or frame_size is not None:
        return _encode_clip(input, output, method, preset, params, kbps, frame_size, fps, as_json, quiet)
    t0 = time.perf_counter()
    arr = images.image_from_bytes(images.read_bytes(input), input)
    data = api.encode(arr, method=method, preset=preset, **params)
    elapsed = time.perf_counter() - t0
    atomic.write_bytes(output, data)
    meta = api.info(data)
    summary = {"input": input, "output": output, "preset": preset, **meta, "encode_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        say(f"{input} -> {output}: {method} {meta['model']}, {meta['width']}x{meta['height']}, "
             f"{meta['file_bytes']:,} bytes, {meta['bpp']:.3f} bpp, {elapsed:.2f} s", quiet)
    if bpp is not None and meta["bpp"] < 0.9 * bpp:    # --bpp is "at or under": say when it is far under
        say(f"note: {meta['bpp']:.3f} bpp is well under --bpp {bpp:g}: that is the most {method}'s --bpp search "
             f"spends on this image", quiet)


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
        raise UsageError(f"--size must be WxH, got {text!r}") from None


def _encode_clip(input, output, method, preset, params, kbps, frame_size, fps, as_json, quiet):
    from diffcodec import api, atomic, video
    from diffcodec.progress import bar

    with video.open_video(input, size=_parse_size(frame_size), fps=fps) as reader:
        info = reader.info
        with bar(total=info.frames, desc="encode", unit="frame") as frames_bar:
            write = (lambda w: w(sys.stdout.buffer)) if output == "-" else (lambda w: atomic.write_with(output, w))
            summary = api.encode_clip(reader, write, method, preset, kbps=kbps,
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
            f"{summary['file_bytes']:,} bytes, {summary['kbps']:.1f} kbps{quality}, "
            f"{summary['encode_fps'] or 0:.2f} frames/s", quiet)


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
@device_option
@quiet_option
def decode(input, output, force, refine, steps, seed, frame_range, as_json, device, quiet):
    """Decode a .ddc file ('-' = stdin) into an image, or a clip into a video."""
    from diffcodec import api, atomic, images

    given = {"refine": refine or None, "steps": steps, "seed": seed}
    options = {name: v for name, v in given.items() if v is not None}
    clip = _open_clip(input)
    if clip is not None:
        return _decode_clip(input, output, clip, options, frame_range, device, force, as_json, quiet)
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
    pixels = api.decode(data, **options)
    elapsed = time.perf_counter() - t0
    atomic.write_bytes(output, images.image_to_bytes(pixels, fmt))
    summary = {"input": input, "output": output, "width": pixels.shape[1], "height": pixels.shape[0],
               "channels": 1 if pixels.ndim == 2 else pixels.shape[2], "decode_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        say(f"{input} -> {output}: {pixels.shape[1]}x{pixels.shape[0]}, {elapsed:.2f} s", quiet)


def _open_clip(input: str):
    """A StreamReader over IN when it is a clip (a 'v' chunk or several frames), else None (the caller reads the
    file as an image). Standard input is only peeked at, so that an image there stays readable."""
    from diffcodec import clips, container, images

    n = len(container.SIGNATURE_VIDEO)
    if input == "-":
        f = sys.stdin.buffer
        head = f.peek(n)[:n] if hasattr(f, "peek") else b""
        return container.StreamReader(f) if head == container.SIGNATURE_VIDEO else None
    f = images.open_input(input)            # a missing or unreadable file: its one-line error
    try:
        if f.read(n) != container.SIGNATURE_VIDEO:
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


def _decode_clip(input, output, stream, options, frame_range, device, force, as_json, quiet):
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
        for _, planes in api.decode_frames(stream, first, stop, **options):
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
    suffix, base = api.extract_base(data)
    if output is None:
        if input == "-":
            raise UsageError("reading stdin: give -o OUT (use -o - for stdout)")
        output = str(Path(input).with_suffix(".base.ddc" if suffix == ".ddc" else suffix))
    images.check_output_path(output, [input], force)
    atomic.write_bytes(output, base)
    say(f"{input} -> {output}: base layer, {len(base):,} bytes", quiet)


@cli.command()
@click.option("-m", "--method", default="ddcm", show_default=True,
              help="Generating method (one whose codec can generate: `diffcodec methods --json`).")
@click.option("-o", "--output", "output", metavar="OUT", required=True, help="The sample image (.png ...).")
@click.option("--bitstream", default=None, metavar="DDC",
              help="Also write the sample's .ddc (decoding it reproduces OUT).")
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
@device_option
@quiet_option
def generate(method, output, bitstream, k, steps, atoms, codebook, space, seed, size, force, as_json, device, quiet):
    """Compressed generation: an unconditional sample whose codebook choices are random (seeded); --bitstream
    writes them as a .ddc file that decodes to the sample."""
    from diffcodec import api, atomic, images

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
    t0 = time.perf_counter()
    data, sample = api.generate(method, height, width, k=k, steps=steps, atoms=atoms, codebook=codebook,
                                space=space, seed=seed, device=api.resolve_device(device))
    elapsed = time.perf_counter() - t0
    atomic.write_bytes(output, images.image_to_bytes(sample, fmt))
    if bitstream is not None:
        atomic.write_bytes(bitstream, data)
    meta = api.info(data)
    summary = {"output": output, "bitstream": bitstream, **meta, "generate_s": round(elapsed, 3)}
    if as_json:
        emit_json(summary)
    else:
        say(f"{output}: {width}x{height} ddcm sample, K={k}, {steps} steps, {atoms} atom(s); bitstream "
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
                                 f"{v['keyframes']} keyframe(s), {v['kbps']:.1f} kbps"))
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
    """List coding methods and their presets."""
    from diffcodec import api

    table = api.methods()
    if as_json:
        emit_json(table)
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
        emit_json(rows)
    else:
        if not rows:
            click.echo(f"no artifacts found in {artifacts.artifacts_dir()}")
        for r in rows:
            click.echo(f"{r['name']:<24} {r['kind'] or '?':<14} {r['bytes'] or 0:>10,} B  {r['sha256'][:12]}  "
                       f"{r['status']}")
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


@cli.command()
@click.argument("inputs", nargs=-1, metavar="[FILES or DIR]...")
@click.option("-m", "--method", default="opq", show_default=True)
@click.option("-p", "--preset", "presets", multiple=True,
              help="Preset(s) to run (repeat; default: all of the method's, or the default one when --param values "
                   "fix everything a preset sets).")
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
@click.option("--video", "videos", multiple=True, metavar="CLIP",
              help="Video benchmark of CLIP (repeat) against --vs h264 (x264 medium + veryslow/tune psnr), h265, "
                   "av1, h264-gop (default: h264 h265 av1), see diffcodec.bench_video.")
@click.option("--kbps", "kbps", default=None, metavar="A,B,...", help="--video: rate points as clip targets in kbps.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="--video: first N frames of each clip.")
@device_option
@quiet_option
def bench(inputs, method, presets, baselines, outdir, report_images, refine_steps, decode_steps, params, videos,
          kbps, max_frames, device, quiet):
    """Rate-distortion benchmark against JPEG/WebP/AVIF at matched file sizes (with --video: clips against
    x264/x265/SVT-AV1 at matched total size).

    Default input: ../shared/data/kodak (Kodak24) when it exists beside the repository.
    """
    from diffcodec import api
    from diffcodec import bench as bench_mod

    if videos and (inputs or refine_steps or decode_steps):
        raise UsageError("--video takes clips only (no image inputs, --refine-steps or --decode-steps)")
    if not videos and (kbps is not None or max_frames is not None):
        raise UsageError("--kbps and --max-frames apply to --video")
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
                                               quiet=quiet, command="diffcodec " + shlex.join(sys.argv[1:]))
        summary = bench_video.run_video_bench(vconfig)
        say(f"wrote {outdir}/results.csv, frames.csv, summary.json, summary.md, rd_*.png, perframe_*.png, "
            "report.html", quiet)
        if not quiet:
            click.echo((Path(outdir) / "summary.md").read_text())
        return summary
    config = bench_mod.BenchConfig(files, method, Path(outdir), presets=list(presets), baselines=list(baselines),
                                   device=dev, encode_params=encode_params, extra_settings=extras,
                                   report_images=report_images, quiet=quiet,
                                   command="diffcodec " + shlex.join(sys.argv[1:]))
    summary = bench_mod.run_bench(config)
    say(f"wrote {outdir}/results.csv, summary.json, summary.md, rd_psnr.png, rd_msssim.png, report.html", quiet)
    if not quiet:
        click.echo((Path(outdir) / "summary.md").read_text())
    return summary


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


if __name__ == "__main__":
    main()
