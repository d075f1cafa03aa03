"""diffcodec: diffusion-based image codec.

    >>> import diffcodec
    >>> data = diffcodec.encode(image, method="opq", preset="opq-32-8-8")   # uint8 HxWx3 -> bytes
    >>> image2 = diffcodec.decode(data)                                       # bytes -> uint8 HxWx3

The API functions are imported on first use, so `import diffcodec` stays cheap (no torch, no faiss).
"""

from diffcodec.errors import (
    CorruptInputError,
    DiffcodecError,
    ModelError,
    UnsupportedError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "encode", "decode", "info", "__version__",
    "DiffcodecError", "UsageError", "CorruptInputError", "UnsupportedError", "ModelError",
]


def __getattr__(name):
    if name in ("encode", "decode", "info"):
        from diffcodec import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffcodec' has no attribute {name!r}")
