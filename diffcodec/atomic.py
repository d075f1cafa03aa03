"""The one atomic writer: every file diffcodec writes (images, .ddc files, reports, checkpoints, models) goes
to a temporary file beside its destination and is renamed over it, so readers never see a half-written file
and an interrupted write leaves the old file (or none)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it to ``path`` (and fsync
    the folder, so the rename survives a crash). The temporary file is removed on any error."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".diffcodec-", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, _mode_for(path))   # mkstemp makes 0600; users expect what cp or cwebp would leave
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _mode_for(path: str) -> int:
    """An overwritten file keeps its permission bits; a new one gets 0666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` atomically; ``'-'`` writes it to stdout."""
    if os.fspath(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_with(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically (training checkpoints, latent caches)."""
    import torch

    write_with(path, lambda f: torch.save(obj, f))


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save

    data = save(tensors, metadata=metadata)
    write_bytes(Path(path), data)
