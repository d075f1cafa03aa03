"""Progress bars for long work: tqdm on stderr, shown only when stderr is a terminal and not silenced
(`diffcodec --quiet` calls :func:`set_enabled(False)`)."""

from __future__ import annotations

import sys

_enabled = True


def set_enabled(flag: bool) -> None:
    global _enabled
    _enabled = bool(flag)


def bar(iterable=None, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, disable=not (_enabled and sys.stderr.isatty()), file=sys.stderr, leave=False, **kwargs)
