"""Error types with the process exit code the CLI uses for each.

User mistakes and damaged inputs are reported as one line on stderr; only a bug produces a traceback.
"""


class DiffcodecError(Exception):
    """Base class for errors that are reported to the user as one line."""

    exit_code = 1


class UsageError(DiffcodecError):
    """Bad arguments: unknown preset, unreadable path, output would overwrite the input, ..."""

    exit_code = 2


class CorruptInputError(DiffcodecError):
    """The input file is damaged or is not what it claims to be (truncated, bad CRC, wrong magic...)."""

    exit_code = 3


class UnsupportedError(DiffcodecError):
    """The input is valid but needs something this version lacks (newer major format, unknown method)."""

    exit_code = 4


class ModelError(DiffcodecError):
    """A shipped codebook or model file is missing, corrupt, or does not match the stream."""

    exit_code = 5


class LimitError(DiffcodecError):
    """Decoding the input would take more than the decode limits allow (pixels, or diffusion steps x pixels):
    refused from the header, before anything is allocated. The limits can be raised (``--max-pixels``,
    ``--max-work``, DIFFCODEC_MAX_PIXELS, DIFFCODEC_MAX_WORK)."""

    exit_code = 6


class FileAccessError(DiffcodecError):
    """The operating system failed a read of an input or a write of an output (disk full, read-only file system,
    permission denied, I/O error, a device that refuses writes); the message names the path and the reason."""

    exit_code = 7


class BatchIncomplete(DiffcodecError):
    """`diffcodec batch` finished, but not every file succeeded: each failure is in the batch's manifest, with its
    one-line error and that error's own exit code."""

    exit_code = 8


def os_reason(e: OSError) -> str:
    """The OS's reason for ``e`` in a few words (``No space left on device``)."""
    return e.strerror or str(e) or type(e).__name__


def write_failure(path: str, e: OSError) -> FileAccessError:
    return FileAccessError(f"{path}: cannot write ({os_reason(e)})")


def read_failure(path: str, e: OSError) -> FileAccessError:
    return FileAccessError(f"{path}: cannot read ({os_reason(e)})")
