"""diffcodec: diffusion-based image codec.

    >>> import diffcodec
    >>> data = diffcodec.encode(image, method="opq", preset="opq-32-8-8")   # uint8 HxWx3 -> bytes
    >>> image2 = diffcodec.decode(data)                                       # bytes -> uint8 HxWx3

The API functions are imported on first use, so `import diffcodec` stays cheap (no torch, no faiss).
"""

import os

# oneDNN (torch's CPU convolutions) keeps up to 1024 compiled primitives by default, one per layer and input shape:
# a long-lived process that codes images of many sizes (a batch worker, the fuzz harness) grew by gigabytes.
# 128 holds every layer of our networks at a few shapes (no slower in a clip or a batch of one size); the user's
# own setting wins. Read by oneDNN when it first runs, so set before torch computes anything.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "128")

from diffcodec.errors import (  # noqa: E402
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
