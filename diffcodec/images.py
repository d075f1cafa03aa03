"""Reading user images into the arrays codecs take, and writing decoded images, safely.

Codecs see uint8 arrays of shape (H, W, 1) or (H, W, 3). What happens to other inputs:
- grayscale (L, 1-bit, 16-bit I;16) -> 1 channel; 16-bit values are reduced to 8 bits (a warning says so);
- palette, CMYK, YCbCr, LAB, HSV -> RGB;
- alpha (RGBA, LA, palette transparency) is DROPPED: the colour channels are coded as stored and the
  decoded image is opaque (a warning says so). Composite onto a background first if that matters;
- EXIF orientation is applied, so the decoded image looks the way viewers showed the original;
- only the first frame of an animated or multi-page file is coded (warning).
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from diffcodec.errors import CorruptInputError, UsageError, read_failure

READ_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "PPM", "GIF")
WRITE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
                 ".ppm": "PPM", ".pgm": "PPM", ".pnm": "PPM"}
MAX_PIXELS = 1 << 28  # refuse decompression bombs before decoding them


class ImageWarning(UserWarning):
    pass


def read_bytes(path: str) -> bytes:
    """Read a whole input file, '-' meaning standard input. A file that cannot be opened is a UsageError; a
    read the operating system fails (an I/O error, standard input that is a folder) a FileAccessError."""
    if path == "-":
        try:
            return sys.stdin.buffer.read()
        except OSError as e:
            raise read_failure("standard input", e) from None
    with open_input(path) as f:
        try:
            return f.read()
        except OSError as e:
            raise read_failure(path, e) from None


def read_head(f, n: int, path: str) -> bytes:
    """Up to ``n`` bytes from the open input ``f``; an OS failure is a one-line FileAccessError naming ``path``."""
    try:
        return f.read(n)
    except OSError as e:
        raise read_failure(path, e) from None


def open_input(path: str):
    """Open an input file for reading; a missing or unreadable one is a one-line UsageError naming it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from None


_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"),
                (b"MM\x00*", "TIFF"), (b"BM", "BMP"), (b"RIFF", "WebP"))


def image_from_bytes(data: bytes, name: str = "input") -> np.ndarray:
    """Decode PNG/JPEG/TIFF/BMP/WebP bytes into uint8 (H, W, C), C in {1, 3}."""
    return _decode_image(io.BytesIO(data), name)


def read_image(path: str) -> np.ndarray:
    """The image file at ``path`` ('-' = standard input) as :func:`image_from_bytes` decodes it; the file's bytes
    are let go once its pixels are decoded, before they are copied into the array (a big photo's PNG is tens
    of MB)."""
    return _decode_image(io.BytesIO(read_bytes(path)), path)   # the BytesIO holds the only reference


def _decode_image(buf: io.BytesIO, name: str) -> np.ndarray:
    """Decode the image file in ``buf`` (closed, so its bytes freed, once the pixels are decoded)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    head = buf.read(8)          # read, not getbuffer(): that would copy bytes the BytesIO shares
    buf.seek(0)
    if not head:
        raise UsageError(f"{name}: empty input")
    if head[:3] == b"DDC":
        raise UsageError(f"{name}: this is already a .ddc file; use `diffcodec decode`")
    try:
        with warnings.catch_warnings():
            # Our own limit, checked from the header before any pixel is decoded; Pillow's global setting
            # is left alone (it is process-wide state that belongs to the caller).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(buf, formats=READ_FORMATS)
            if im.width * im.height > MAX_PIXELS:
                raise Image.DecompressionBombError("over our limit")
            if getattr(im, "n_frames", 1) > 1:
                warnings.warn(f"{name}: has {im.n_frames} frames; only the first is coded", ImageWarning, stacklevel=3)
            ImageOps.exif_transpose(im, in_place=True)      # in place: no copy of an upright image
            im.load()
    except UnidentifiedImageError:
        known = next((fmt for magic, fmt in _IMAGE_MAGIC if head.startswith(magic)), None)
        if known is not None:   # the signature of a format we read, but not a readable file: damaged
            raise CorruptInputError(f"{name}: damaged or truncated {known} file") from None
        raise UsageError(f"{name}: not a supported image (PNG, JPEG, TIFF, BMP, WebP)") from None
    except Image.DecompressionBombError:
        raise UsageError(f"{name}: image is too large (over {MAX_PIXELS} pixels)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptInputError(f"{name}: damaged image file ({e})") from None
    buf.close()
    return pil_to_array(im, name)


# Pillow images go to numpy in stripes of about this many pixels: np.asarray(pil_image) builds the whole
# image's bytes twice (tobytes joins a list of chunks) before numpy copies them.
STRIPE_PIXELS = 1 << 20


def pil_pixels(im) -> np.ndarray:
    """A loaded Pillow image of mode RGB or L as a new uint8 array (H, W, 3) or (H, W), exactly
    ``np.asarray(im)``, copied in stripes (memory: the array and one stripe)."""
    if im.mode not in ("RGB", "L"):
        raise ValueError(f"pil_pixels takes RGB or L images, not {im.mode}")
    w, h = im.size
    out = np.empty((h, w, 3) if im.mode == "RGB" else (h, w), np.uint8)
    rows = max(1, STRIPE_PIXELS // max(1, w))
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        stripe = im.crop((0, top, w, bottom)).tobytes()
        out[top:bottom] = np.frombuffer(stripe, np.uint8).reshape(out[top:bottom].shape)
    return out


def pil_to_array(im, name: str = "input") -> np.ndarray:
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        warnings.warn(f"{name}: alpha channel dropped (diffcodec codes colour only; the output is opaque)",
                      ImageWarning, stacklevel=2)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.int64)
        if arr.max(initial=0) > 255:
            warnings.warn(f"{name}: 16-bit samples reduced to 8 bits", ImageWarning, stacklevel=2)
            arr = arr >> 8 if arr.max() < 65536 else np.clip(arr, 0, 255)
        return np.clip(arr, 0, 255).astype(np.uint8)[..., None]
    if mode == "F":
        return np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)[..., None]
    if mode in ("L", "1", "LA", "La"):
        return pil_pixels(im if mode == "L" else im.convert("L"))[..., None]
    if mode == "P":
        im = im.convert("RGBA" if has_alpha else "RGB")
    return pil_pixels(im if im.mode == "RGB" else im.convert("RGB"))


def as_image_array(image) -> np.ndarray:
    """Accept an ndarray (H, W), (H, W, 1|3|4) uint8, a PIL image, a path, or encoded image bytes."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return image_from_bytes(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        return read_image(str(image))
    if hasattr(image, "mode") and hasattr(image, "size"):  # PIL image
        return pil_to_array(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise UsageError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise UsageError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[2] == 4:
        warnings.warn("alpha channel dropped (diffcodec codes colour only)", ImageWarning, stacklevel=2)
        arr = arr[..., :3]
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UsageError("image is empty")
    return np.ascontiguousarray(arr)


def _save(image: np.ndarray, fmt: str, out) -> None:
    from PIL import Image

    arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(arr).save(out, format=fmt, **kwargs)


def image_to_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    _save(image, fmt, buf)
    return buf.getvalue()


def write_image(path: str, image: np.ndarray, fmt: str, overwrite: bool = True) -> None:
    """Encode ``image`` as ``fmt`` straight into ``path`` (atomically; ``'-'``: standard output), without holding
    the encoded file in memory as well (a big photo's PNG is tens of MB)."""
    from diffcodec import atomic

    if path == "-":
        atomic.write_stdout_with(lambda f: _save(image, fmt, f))
    else:
        atomic.write_with(path, lambda f: _save(image, fmt, f), overwrite)


def output_format(path: str) -> str:
    if path == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    if ext not in WRITE_FORMATS:
        raise UsageError(f"{path}: unknown output image type {ext or '(none)'}; use one of "
                         f"{', '.join(sorted(WRITE_FORMATS))} (lossless formats only)")
    return WRITE_FORMATS[ext]


def check_output_path(out: str, inputs: list[str], force: bool) -> None:
    """Refuse to overwrite an input, or an existing file without --force. '-' is always fine."""
    if out == "-":
        return
    for src in inputs:
        if src != "-" and os.path.exists(src) and os.path.exists(out) and os.path.samefile(src, out):
            raise UsageError(f"{out}: output would overwrite the input")
    if os.path.isdir(out):
        raise UsageError(f"{out}: is a directory")
    if os.path.exists(out) and not force:
        raise UsageError(f"{out}: already exists (use --force to overwrite)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: folder {parent} does not exist")
