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
