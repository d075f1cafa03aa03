"""What every `diffcodec` command shares: output helpers and the --device / --quiet options."""

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
    return click.option("-q", "--quiet", is_flag=True, callback=_silence_progress,
                        help="Print nothing but errors (no progress bars).")(f)
