"""The one atomic writer: every file diffcodec writes (images, .ddc files, reports, checkpoints, models) goes
to a temporary file beside its destination and is renamed over it, so readers never see a half-written file
and an interrupted write leaves the old file (or none).

Without ``overwrite`` the last step refuses atomically when the destination exists, even when it appeared after
the caller checked (another process writing the same name): the temporary file is hard-linked to the destination,
which fails where the name is taken, and then removed (:func:`publish`). Every failure of the operating system
(disk full, read-only file system, ...) is a one-line :class:`FileAccessError` naming the destination, and the
temporary file is removed."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from diffcodec.errors import DiffcodecError, UsageError, write_failure

# link() errors that mean "this file system has no hard links" (FAT, some network and FUSE file systems)
_NO_HARD_LINKS = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}


def exists_error(path: str) -> UsageError:
    return UsageError(f"{path}: already exists (use --force to overwrite)")


class _TargetIO(io.FileIO):
    """The temporary file's raw stream: a failed write names the destination (one line), not the temporary."""

    target = ""

    def write(self, b):
        try:
            return super().write(b)
        except OSError as e:
            raise write_failure(self.target, e) from None


class AtomicFile:
    """A temporary file beside ``path`` (its :attr:`file`, open for writing), renamed over ``path`` by
    :meth:`commit` (after an fsync, and with the folder fsynced so the rename survives a crash) or removed by
    :meth:`discard`. For outputs written piece by piece; :func:`write_with` is the one-call form. With
    ``overwrite=False``, :meth:`commit` refuses (UsageError) if ``path`` exists by then, atomically."""

    def __init__(self, path: str | os.PathLike, overwrite: bool = True):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=".diffcodec-", suffix=".tmp",
                                            dir=os.path.dirname(os.path.abspath(self.path)))
        except OSError as e:
            raise write_failure(self.path, e) from None
        try:
            os.chmod(self.tmp, mode_for(self.path))   # mkstemp makes 0600; users expect what cp or cwebp leave
            raw = _TargetIO(fd, "wb")
            raw.target = self.path
            self.file: IO[bytes] = io.BufferedWriter(raw)
        except BaseException as e:
            os.close(fd)
            remove_quietly(self.tmp)
            if isinstance(e, OSError):
                raise write_failure(self.path, e) from None
            raise

    def commit(self) -> None:
        """Publish the file (fsync, rename or link, fsync the folder); on any failure the temporary is removed."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            publish(self.tmp, self.path, self.overwrite)
        except BaseException as e:
            self.discard()
            if isinstance(e, OSError):
                raise write_failure(self.path, e) from None
            raise
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def discard(self) -> None:
        try:
            self.file.close()
        except (OSError, DiffcodecError):   # a write that already failed, failing again at the final flush
            pass
        finally:
            remove_quietly(self.tmp)


def publish(tmp: str, path: str, overwrite: bool = True) -> None:
    """The last step of every write: the finished temporary file ``tmp`` (in ``path``'s folder) becomes ``path``.

    ``overwrite``: renamed over whatever is there. Otherwise the name is taken atomically or not at all: a hard
    link ``tmp`` -> ``path`` fails with FileExistsError where ``path`` exists (UsageError, ``tmp`` removed), and
    ``tmp`` is then unlinked. Where the file system has no hard links the name is first claimed with an exclusive
    create (O_EXCL: also atomic; an empty file holds the name until the rename replaces it)."""
    if overwrite:
        os.replace(tmp, path)
        return
    link = getattr(os, "link", None)
    try:
        if link is None:
            raise OSError(errno.ENOSYS, "no hard links")
        link(tmp, path)
    except FileExistsError:
        remove_quietly(tmp)
        raise exists_error(path) from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        _publish_exclusive(tmp, path)
        return
    remove_quietly(tmp)


def _publish_exclusive(tmp: str, path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        remove_quietly(tmp)
        raise exists_error(path) from None
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(path)
        raise


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], overwrite: bool = True) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path`` (refusing, without
    ``overwrite``, if ``path`` exists by then); the temporary file is removed on any error, and an OS error is a
    one-line FileAccessError naming ``path``."""
    out = AtomicFile(path, overwrite)
    try:
        write(out.file)
    except BaseException as e:
        out.discard()
        if isinstance(e, OSError):
            raise write_failure(out.path, e) from None
        raise
    out.commit()


def write_files(paths: list[str], contents: list[bytes], overwrite: bool = True) -> None:
    """Write several files that belong together (a base layer's stripes): every one to its temporary first, then
    published in order; where one fails, the temporaries left are removed and so are the files this call already
    published, so that no part of the set stays behind."""
    pending: list[AtomicFile] = []
    published: list[str] = []
    try:
        for path in paths:
            pending.append(AtomicFile(path, overwrite))
        for out, data in zip(pending, contents):
            try:
                out.file.write(data)
            except OSError as e:
                raise write_failure(out.path, e) from None
        for out in pending:
            out.commit()
            published.append(out.path)
    except BaseException:
        for out in pending[len(published):]:
            out.discard()
        for path in published:
            remove_quietly(path)
        raise


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


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` atomically (without ``overwrite``: refusing if ``path`` exists); ``'-'`` writes it to
    stdout."""
    if os.fspath(path) == "-":
        write_stdout(data)
        return
    write_with(path, lambda f: f.write(data), overwrite)


def write_stdout(data: bytes) -> None:
    """``data`` on standard output, flushed; a failed write (``> /dev/full``) is a one-line FileAccessError. A
    closed pipe stays a BrokenPipeError (the reader went away: the CLI exits quietly)."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise write_failure("standard output", e) from None


def write_stdout_with(write: Callable[[IO[bytes]], Any]) -> None:
    """``write(stdout)`` for outputs written piece by piece, then a flush; OS errors as :func:`write_stdout`."""
    try:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise write_failure("standard output", e) from None


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically (training checkpoints, latent caches)."""
    import torch

    write_with(path, lambda f: torch.save(obj, f))


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save

    write_bytes(Path(path), _with_sorted_metadata(save(tensors, metadata=metadata)))


def _with_sorted_metadata(data: bytes) -> bytes:
    """safetensors writes its ``__metadata__`` in a random order (a hash map), so the same weights saved twice
    differ in bytes and sha256; rewriting the header with sorted metadata makes an export reproducible (a
    re-created model matches its manifest's sha256) and keeps caches keyed by sha256 from mistaking two exports
    for one. The header stays valid: JSON padded with spaces to 8 bytes, as safetensors writes it."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if "__metadata__" not in header:
        return data
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


class AppendLog:
    """A file that grows by whole lines (the batch manifest): each :meth:`append` writes one complete line and
    fsyncs it, so an interruption leaves every earlier line intact and at worst the last one cut short (readers
    skip a line that is not whole). Rewrite such a log with :func:`write_text` (atomically) to compact it."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode_for(self.path))
        except OSError as e:
            raise write_failure(self.path, e) from None

    def append(self, line: str) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: log is closed")
        view = memoryview((line.rstrip("\n") + "\n").encode("utf-8"))
        try:
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            raise write_failure(self.path, e) from None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def lock_exclusive(path: str | os.PathLike, busy: str) -> int | None:
    """Hold an exclusive lock on ``path`` (an empty lock file, created if absent) until :func:`unlock`, or refuse
    with UsageError(``busy``) when another process holds it. The lock goes with the process that holds it. None
    where the platform has no ``flock`` (no locking there)."""
    try:
        import fcntl
    except ImportError:
        return None
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, mode_for(path))
    except OSError as e:
        raise write_failure(path, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UsageError(busy) from None
        return None         # a file system without locks (some network ones): go on unlocked
    return fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)        # closing the descriptor releases its flock
        except OSError:
            pass
