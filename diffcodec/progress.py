"""The one progress helper: tqdm bars on stderr, shown only when stderr is a terminal and not silenced
(`diffcodec --quiet` calls :func:`set_enabled(False)`). Every long loop (coding steps, benchmarks, training)
uses :func:`bar`."""

from __future__ import annotations

import sys

_enabled = True


def set_enabled(flag: bool) -> None:
    global _enabled
    _enabled = bool(flag)


def bar(iterable=None, *, show: bool | None = None, **kwargs):
    """A tqdm bar over ``iterable`` (or a manual one: ``total=``). ``show`` forces it on or off (None: on when
    stderr is a terminal and bars are enabled)."""
    from tqdm import tqdm

    visible = (_enabled and sys.stderr.isatty()) if show is None else show
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=not visible, file=sys.stderr, dynamic_ncols=True, **kwargs)
