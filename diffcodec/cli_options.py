"""What every `diffcodec` command shares: output helpers, the --device / --quiet / --verbose options and
the parser of byte sizes."""

from __future__ import annotations

import json

import click

from diffcodec.device import DEVICES


def say(msg: str, quiet: bool) -> None:
    if not quiet:
        click.echo(msg, err=True)


def short_json(obj, limit: int = 160) -> str:
    text = json.dumps(obj, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"diffcodec: warning: {message}", err=True)


def device_option(f):
    return click.option("--device", type=click.Choice(list(DEVICES)), default="auto", show_default=True,
                        help="Where networks run (methods without one ignore it).")(f)


def _silence_progress(ctx, param, quiet: bool) -> bool:
    from diffcodec.progress import set_enabled

    set_enabled(not quiet)
    return quiet


def quiet_option(f):
    # long form only: -q is the quality knob of `encode` (as in cwebp, avifenc, cjxl); see README "Changes"
    return click.option("--quiet", is_flag=True, callback=_silence_progress,
                        help="Print nothing but errors (no progress bars).")(f)


def verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True,
                        help="Also print the details: method, model, chosen mode and parameters, sizes.")(f)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "kib": 1024, "mib": 1024**2}


def parse_bytes(text: str | None, flag: str = "--size") -> int | None:
    """``40000``, ``40k`` / ``40kB`` (x1000), ``1.5M`` (x1000^2), ``40KiB`` / ``1MiB`` (x1024) -> bytes (rounded
    down); None stays None."""
    if text is None:
        return None
    import re

    from diffcodec.errors import UsageError

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        hint = (f"; the frame size of raw video is --video-size {text}" if re.fullmatch(r"\d+[xX]\d+", text.strip())
                else "")
        raise UsageError(f"{flag} {text}: not a file size in bytes (40000, 40k, 1.5M, 64KiB){hint}")
    value = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if value < 1:
        raise UsageError(f"{flag} {text}: the size must be at least 1 byte")
    return value


def limit_options(f):
    """--max-pixels / --max-work: the decode limits (diffcodec.methods.decode_limits; formats/ddc-v1.md section 11)."""
    from diffcodec.methods import DEFAULT_MAX_PIXELS, DEFAULT_MAX_WORK, MAX_PIXELS_ENV, MAX_WORK_ENV

    f = click.option("--max-work", type=click.IntRange(0), default=None, metavar="N",
                     help=f"Refuse to decode more than N pixels x diffusion steps (default {DEFAULT_MAX_WORK:,} or "
                          f"{MAX_WORK_ENV}; 0: no limit).")(f)
    return click.option("--max-pixels", type=click.IntRange(0), default=None, metavar="N",
                        help=f"Refuse to decode an image (or clip frame) of more than N pixels (default "
                             f"{DEFAULT_MAX_PIXELS:,}, Pillow's, or {MAX_PIXELS_ENV}; 0: no limit).")(f)
