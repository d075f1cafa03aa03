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


class AtomicFile:
    """A temporary file beside ``path`` (its :attr:`file`, open for writing), renamed over ``path`` by
    :meth:`commit` (after an fsync, and with the folder fsynced so the rename survives a crash) or removed by
    :meth:`discard`. For outputs written piece by piece; :func:`write_with` is the one-call form."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        fd, self.tmp = tempfile.mkstemp(prefix=".diffcodec-", suffix=".tmp",
                                        dir=os.path.dirname(os.path.abspath(self.path)))
        try:
            os.chmod(self.tmp, mode_for(self.path))   # mkstemp makes 0600; users expect what cp or cwebp leave
            self.file: IO[bytes] = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            remove_quietly(self.tmp)
            raise

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def discard(self) -> None:
        try:
            self.file.close()
        finally:
            remove_quietly(self.tmp)


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``; the temporary file is
    removed on any error."""
    out = AtomicFile(path)
    try:
        write(out.file)
    except BaseException:
        out.discard()
        raise
    out.commit()


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the file system allows it)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def mode_for(path: str) -> int:
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
