"""Classical baseline codecs through Pillow, and "matched compression ratio" encoding.

Baselines (name: settings, valid quality range):

- ``jpeg``: baseline JPEG, chroma 4:2:0 (``subsampling=2``), optimised Huffman tables (``optimize=True``), q 1..95.
- ``jpeg444``: the same with chroma 4:4:4 (``subsampling=0``), q 1..95.
- ``webp``: lossy WebP, ``method=6`` (slowest, smallest files: a benchmark should give the baseline its best
  effort), q 0..100.
- ``avif``: Pillow's AVIF plugin (libavif), ``speed=6`` (Pillow's default, as in REFERENCE.md), chroma 4:2:0,
  full range, q 0..100.
- ``jxl`` (optional extra ``jxl``: the ``pillow-jxl-plugin`` package, libjxl): JPEG XL, lossy VarDCT, effort 7
  (cjxl's default), q 0..100 (cjxl's quality scale; q=100 is lossless, so it is left out: 0..99).
- ``heic`` (optional extra ``heic``: the ``pillow-heif`` package, libheif + x265): HEIC, chroma 4:2:0, q 0..100.

An optional baseline whose package is missing stays registered but unavailable: :func:`baseline_status` says what
to install, and encoding with it is an UnsupportedError saying the same.

Optimised Huffman tables make JPEG files a few percent smaller than Pillow's default for free; the Kodak numbers
in REFERENCE.md were measured without them.

Grayscale images ((H, W) or (H, W, 1)) are encoded as 1-channel images. :meth:`Baseline.decode` returns (H, W)
for 1-channel files and (H, W, 3) otherwise; pass ``channels=`` to force one (WebP always decodes to RGB).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from diffcodec.errors import UnsupportedError, UsageError


def _as_pil(img: np.ndarray):
    from PIL import Image

    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise UsageError(f"baselines need a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(img))   # mode "L"
    if img.ndim == 3 and img.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(img))
    raise UsageError(f"baselines need an (H, W, 3) or (H, W) image, got shape {img.shape}")


@dataclass(frozen=True)
class Baseline:
    """One Pillow codec at fixed settings; only the quality varies."""

    name: str
    description: str
    qmin: int
    qmax: int
    pil_format: str
    save_options: dict[str, Any] = field(default_factory=dict)
    gray_options: dict[str, Any] = field(default_factory=dict)   # replaces save_options for 1-channel images
    feature: str | None = None                                   # PIL.features name that must be available
    plugin: str | None = None       # module registering the Pillow plugin ("module" or "module:function")
    install: str = ""               # how to get the plugin, for the message when it is missing

    def unavailable(self) -> str | None:
        """None when this baseline can encode here, else what is missing (one line)."""
        if self.feature is not None:
            from PIL import features

            if not features.check(self.feature):
                return f"baseline {self.name!r} needs Pillow built with {self.feature} support"
        if self.plugin is not None:
            import importlib

            module, _, register = self.plugin.partition(":")
            try:
                mod = importlib.import_module(module)
            except ImportError:
                return f"baseline {self.name!r} needs {self.install}"
            if register:
                getattr(mod, register)()
        return None

    def _check_available(self) -> None:
        why = self.unavailable()
        if why is not None:
            raise UnsupportedError(why)

    def encode(self, img: np.ndarray, quality: int) -> bytes:
        """Encode a uint8 (H, W, 3) or (H, W) image at an integer quality within [qmin, qmax]."""
        quality = int(quality)
        if not self.qmin <= quality <= self.qmax:
            raise UsageError(f"{self.name} quality must be in {self.qmin}..{self.qmax}, got {quality}")
        self._check_available()
        pil = _as_pil(img)
        opts = self.gray_options if (pil.mode == "L" and self.gray_options) else self.save_options
        buf = io.BytesIO()
        pil.save(buf, format=self.pil_format, quality=quality, **opts)
        return buf.getvalue()

    def decode(self, data: bytes, channels: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
        """Decode to uint8: (H, W) for 1-channel files, (H, W, 3) otherwise, unless `channels` (1 or 3) forces it.
        ``size`` (width, height): the file must declare it, checked before any pixel is decoded (ValueError), so
        that bytes from elsewhere cannot make it allocate more (Pillow's own bomb limit raises ValueError too)."""
        import warnings

        from PIL import Image

        self._check_available()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                opened = Image.open(io.BytesIO(data))
            except Image.DecompressionBombError as e:
                raise ValueError(str(e)) from None
        with opened as im:
            if size is not None and tuple(im.size) != tuple(size):
                raise ValueError(f"it is {im.size[0]}x{im.size[1]}, not {size[0]}x{size[1]}")
            im.load()
            if channels is None:
                mode = "L" if im.mode in ("L", "I;16", "I", "F") else "RGB"
            elif channels in (1, 3):
                mode = "L" if channels == 1 else "RGB"
            else:
                raise UsageError(f"channels must be 1 or 3, got {channels}")
            from diffcodec.images import pil_pixels

            return pil_pixels(  # a new array filled in stripes, not np.asarray's full-size temporaries
                im.convert(mode) if im.mode != mode else im)

    def setting(self, quality: int) -> str:
        """Label for reports, e.g. ``q=37``."""
        return f"q={int(quality)}"


BASELINES: dict[str, Baseline] = {
    "jpeg": Baseline(
        "jpeg", "JPEG 4:2:0, optimised Huffman (Pillow/libjpeg)", 1, 95, "JPEG",
        {"subsampling": 2, "optimize": True}, {"optimize": True},
    ),
    "jpeg444": Baseline(
        "jpeg444", "JPEG 4:4:4, optimised Huffman (Pillow/libjpeg)", 1, 95, "JPEG",
        {"subsampling": 0, "optimize": True}, {"optimize": True},
    ),
    "webp": Baseline(
        "webp", "WebP lossy, method 6 (Pillow/libwebp)", 0, 100, "WEBP",
        {"lossless": False, "method": 6}, feature="webp",
    ),
    "avif": Baseline(
        "avif", "AVIF speed 6, 4:2:0, full range (Pillow/libavif)", 0, 100, "AVIF",
        {"speed": 6, "subsampling": "4:2:0", "range": "full"},
        {"speed": 6, "subsampling": "4:0:0", "range": "full"}, feature="avif",
    ),
    "jxl": Baseline(
        "jxl", "JPEG XL lossy, effort 7 (pillow-jxl-plugin/libjxl)", 0, 99, "JXL", {"effort": 7, "lossless": False},
        plugin="pillow_jxl", install="pillow-jxl-plugin: pip install 'diffcodec[jxl]'",
    ),
    "heic": Baseline(
        "heic", "HEIC 4:2:0 (pillow-heif/libheif + x265)", 0, 100, "HEIF", {"chroma": 420},
        plugin="pillow_heif:register_heif_opener", install="pillow-heif: pip install 'diffcodec[heic]'",
    ),
}


def registered_baselines() -> list[str]:
    """Names of every registered baseline, in registry order (optional ones included)."""
    return list(BASELINES)


def available_baselines() -> list[str]:
    """Names of the baselines that can encode here (their Pillow support or plugin is installed), in order."""
    return [n for n, b in BASELINES.items() if b.unavailable() is None]


def baseline_status() -> dict[str, str | None]:
    """Every registered baseline: None when it can run here, else what to install."""
    return {n: b.unavailable() for n, b in BASELINES.items()}


def get_baseline(name: str) -> Baseline:
    """The baseline called `name`; UsageError listing the available ones otherwise."""
    try:
        return BASELINES[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown baseline {name!r} (available: {', '.join(BASELINES)})") from None


@dataclass
class BaselineResult:
    """One baseline file: its bytes, the quality used, its size and whether it exceeds the size target."""

    data: bytes
    quality: int
    bytes: int
    over_target: bool
    name: str = ""

    @property
    def setting(self) -> str:
        return f"q={self.quality}"


def encode_at_quality(name: str, img: np.ndarray, quality: int) -> BaselineResult:
    """Encode with baseline `name` at a fixed quality (over_target is always False)."""
    b = get_baseline(name)
    data = b.encode(img, quality)
    return BaselineResult(data, int(quality), len(data), False, b.name)


def encode_at_size(name: str, img: np.ndarray, target_bytes: int,
                   encode: Callable[[np.ndarray, int], bytes] | None = None) -> BaselineResult:
    """Matched compression ratio: the LARGEST file of baseline `name` not exceeding `target_bytes`.

    Binary search over the integer quality (about log2(range) encodes), assuming file size grows with quality,
    then a check of the qualities next to the result (size is not strictly monotonic in quality) keeping the
    largest file <= target (ties: the higher quality). If even the lowest quality exceeds the target, returns
    the lowest quality with ``over_target=True``. Nothing is cached between calls. `encode` overrides the
    baseline's encoder (for tests).
    """
    b = get_baseline(name)
    enc = encode if encode is not None else b.encode
    target_bytes = int(target_bytes)
    sizes: dict[int, bytes] = {}

    def size(q: int) -> int:
        if q not in sizes:
            sizes[q] = enc(img, q)
        return len(sizes[q])

    if size(b.qmin) > target_bytes:
        return BaselineResult(sizes[b.qmin], b.qmin, len(sizes[b.qmin]), True, b.name)

    # Invariant: size(lo) <= target; hi is the first quality known (or assumed, for qmax + 1) to exceed it.
    lo, hi = b.qmin, b.qmax + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= target_bytes:
            lo = mid
        else:
            hi = mid
    for q in (lo - 1, lo + 1, lo + 2):
        if b.qmin <= q <= b.qmax:
            size(q)
    best_q = max((q for q, d in sizes.items() if len(d) <= target_bytes), key=lambda q: (len(sizes[q]), q))
    return BaselineResult(sizes[best_q], best_q, len(sizes[best_q]), False, b.name)
