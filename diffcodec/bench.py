"""Benchmark runner: diffcodec presets against Pillow baselines at matched file sizes, with a report.

:func:`run_bench` takes a :class:`BenchConfig` and runs four named steps in order:

1. inputs: :meth:`BenchConfig.check` (files, baselines, extra decode settings) and :func:`codec_under_test`, which
   asks the codec (``diffcodec.methods.get_codec``) for its presets, whether it takes a device, and whether the
   encode parameters replace the preset; it never names a method;
2. :func:`measure_codec`: per image and setting, encode with diffcodec (through :mod:`diffcodec.api` only),
   decode, measure the real file size and the metrics of :mod:`diffcodec.metrics`, and decode the same file
   again with every extra decode setting;
3. :func:`measure_baselines`: encode every baseline at the largest quality whose file does not exceed the
   diffcodec file (:func:`diffcodec.baselines.encode_at_size`);
4. :func:`write_outputs`: results.csv, summary.json, summary.md, rd_psnr.png, rd_msssim.png and report.html
   (their text and bytes come from :mod:`diffcodec.bench_report`).

Conventions:

- A setting is labelled by its preset ("default" when the codec picks it) followed by the encode parameters
  used (``"n20-k4096-m64 space=latent"``). When the codec says the parameters replace the preset entirely
  (``params_override_preset(params)``, e.g. a target ``bpp``), the method runs once at its default preset and
  the label is the parameters alone (``"bpp=0.1 k=4096"``).
- bpp is 8 * (file size in bytes) / pixels, from the complete file (container header included);
  ``payload_bpp`` counts only the payload when ``diffcodec.api.info(data)`` reports ``payload_bytes``.
- Means in the summary are arithmetic means over images of the per-image values (per-image PSNR averaged,
  the CompressAI convention); NaN values (MS-SSIM of images <= 160 px) are left out of a mean.
- Baseline timings: ``encode_s`` is one encode at the chosen quality, ``search_s`` the whole quality search.
- ``peak_rss_mb`` is the process's peak resident set size so far (``getrusage(RUSAGE_SELF).ru_maxrss``), read
  after each diffcodec encode + decode: a high-water mark of the whole run up to that point, not the memory of
  that one call, and it includes the torch runtime that the metrics load before the first image (``rss_start_mb``
  in the summary). It is left empty for baseline rows.
- Report crops are ``crop_size`` x ``crop_size`` from the image centre (top = (H - size) // 2,
  left = (W - size) // 2; the whole side when the image is smaller), for the first ``report_images`` images.
- ``device`` ("auto", "cpu", "cuda"; see :func:`diffcodec.device.resolve_device`) is recorded in the summary.
  It is passed on as ``device=`` only where the codec takes one (``Codec.takes_device()`` for encoding,
  ``"device" in Codec.decode_options`` for decoding; an injected encode/decode function that declares a
  ``device`` parameter), never with "auto".

Every file (crops/*.png too) is written with :mod:`diffcodec.atomic` (temporary file + rename); the progress
bar is :func:`diffcodec.progress.bar`.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from diffcodec import atomic, progress
from diffcodec import baselines as _baselines
from diffcodec import metrics as _metrics
from diffcodec.bench_report import (
    CODEC,
    csv_text,
    format_markdown_table,
    json_clean,
    rd_plot_png,
    report_html,
    summarize,
)
from diffcodec.errors import DiffcodecError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
OUTPUT_FILES = ["results.csv", "summary.json", "summary.md", "rd_psnr.png", "rd_msssim.png", "report.html", "crops/"]


# ----------------------------------------------------------------------------------------------- inputs

def collect_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files named directly or found (non-recursively) in folders, sorted; UsageError if none/missing."""
    found: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.update(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found.add(path)
        else:
            raise UsageError(f"no such file or folder: {str(path)!r}")
    if not found:
        raise UsageError(
            f"no images found in {', '.join(map(str, paths)) or '(no paths given)'} "
            f"(looked for {' '.join(IMAGE_EXTENSIONS)})"
        )
    return sorted(found)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, converting other modes; UsageError when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UsageError(f"cannot read image {str(path)!r}: {e}") from None


def default_image_dir() -> Path | None:
    """``../shared/data/kodak`` relative to the repository root (parent of the package folder), if present."""
    repo_root = Path(__file__).resolve().parent.parent
    d = (repo_root / ".." / "shared" / "data" / "kodak").resolve()
    return d if d.is_dir() else None


# ----------------------------------------------------------------------------------------------- helpers

def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (None where `resource` is unavailable)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0   # bytes on macOS, KiB on Linux


def center_crop_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) of the centred size x size crop (clipped to the image)."""
    ch, cw = min(size, height), min(size, width)
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, torch threads and library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        info["torch"] = None
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:  # pragma: no cover
        info["pillow"] = None
    try:
        from diffcodec import __version__

        info["diffcodec"] = __version__
    except ImportError:  # pragma: no cover
        info["diffcodec"] = None
    return info


# ----------------------------------------------------------------------------------------------- configuration

@dataclass
class BenchConfig:
    """What one benchmark runs: the options of ``diffcodec bench``.

    `presets` empty means every preset of the method; named ones are checked against the codec's list (when the
    real API is used). `extra_settings`: ``[{"label": str, "decode_options": dict}, ...]``: every diffcodec file
    is decoded again with those options and recorded as setting ``<setting>+<label>``. `encode_params` go to
    every encode (e.g. ``{"space": "latent"}`` for ddcm) and into the setting labels. `command` (a string or
    an argv list) is stored in the summary."""

    images: Sequence[str | os.PathLike]
    method: str
    outdir: str | os.PathLike
    presets: Sequence[str] = ()
    baselines: Sequence[str] = ()
    device: str = "auto"
    encode_params: dict[str, Any] = field(default_factory=dict)
    extra_settings: Sequence[dict] = ()
    report_images: int = 6
    crop_size: int = 256
    command: str | Sequence[str] | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        self.images = [Path(p) for p in self.images]
        self.outdir = Path(self.outdir)
        self.presets, self.baselines = list(self.presets or ()), list(self.baselines or ())
        self.encode_params = dict(self.encode_params or {})
        self.extra_settings = list(self.extra_settings or ())

    def check(self) -> None:
        """UsageError for anything that would fail later (before any file is written)."""
        if not self.images:
            raise UsageError("no images to benchmark")
        for p in map(Path, self.images):
            if not p.is_file():
                raise UsageError(f"no such image file: {str(p)!r}")
        if self.crop_size < 1:
            raise UsageError(f"crop size must be positive, got {self.crop_size}")
        for b in self.baselines:
            _baselines.get_baseline(b)    # UsageError listing the available ones
        for e in self.extra_settings:
            if not isinstance(e, dict) or not isinstance(e.get("label"), str) or not e["label"]:
                raise UsageError(f"extra setting needs a non-empty 'label': {e!r}")
            if not isinstance(e.get("decode_options", {}), dict):
                raise UsageError(f"extra setting 'decode_options' must be a dict: {e!r}")


@dataclass(frozen=True)
class Setting:
    """One rate point of the codec under test: what `encode` gets and how its rows are labelled."""

    preset: str | None       # None: the codec's default
    label: str               # the `setting` column


@dataclass
class CodecUnderTest:
    """How the bench calls diffcodec: ``encode(image, method, preset, **encode_kwargs)``,
    ``decode(data, **decode_kwargs)``, ``info(data)`` (optional: payload_bpp), at each of `settings`."""

    method: str
    settings: list[Setting]
    encode: Callable[..., bytes]
    decode: Callable[..., np.ndarray]
    info: Callable[[bytes], dict] | None = None
    encode_kwargs: dict[str, Any] = field(default_factory=dict)
    decode_kwargs: dict[str, Any] = field(default_factory=dict)


def setting_label(preset: str | None, params: dict[str, Any], preset_overridden: bool = False) -> str:
    """``"<preset> k=v ..."`` (``"default"`` for None); just the parameters when they replace the preset."""
    used = " ".join(f"{k}={v}" for k, v in params.items())
    if preset_overridden and used:
        return used
    name = "default" if preset is None else preset
    return f"{name} {used}" if used else name


def _resolve_presets(codec: Any, method: str, presets: Sequence[str] | None) -> list[str]:
    known = dict(codec.presets)
    if not presets:
        return list(known)
    unknown = [p for p in presets if p not in known]
    if unknown:
        raise UsageError(
            f"unknown preset(s) {', '.join(map(repr, unknown))} for method {method!r} "
            f"(available: {', '.join(known)})"
        )
    return list(presets)


def _takes_device(fn: Any) -> bool:
    """Whether `fn` declares a parameter named ``device`` (a ``**kwargs`` catch-all does not count)."""
    import inspect

    try:
        return "device" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def codec_under_test(config: BenchConfig, encode_fn: Callable[..., bytes] | None = None,
                     decode_fn: Callable[..., np.ndarray] | None = None,
                     info_fn: Callable[[bytes], dict] | None = None) -> CodecUnderTest:
    """The settings and calls of a run. By default ``diffcodec.api.encode`` / ``decode`` / ``info`` (imported
    here, lazily), with the codec's answers about presets, devices and options. With `encode_fn` and
    `decode_fn` injected (tests, experiments) presets are taken as given ([None] when none), `info_fn` is used
    only if injected too, and ``device`` goes to a function that declares it."""
    params = dict(config.encode_params)
    want_device = config.device not in (None, "", "auto")
    if encode_fn is None or decode_fn is None:
        from diffcodec import api
        from diffcodec.methods import get_codec

        encode_fn, decode_fn = encode_fn or api.encode, decode_fn or api.decode
        if info_fn is None:
            info_fn = getattr(api, "info", None)
        codec = get_codec(config.method)
        presets: list[str | None] = list(_resolve_presets(codec, config.method, config.presets))
        enc_dev = want_device and codec.takes_device()
        dec_dev = want_device and "device" in codec.decode_options
        enc_kw = {**params, **({"device": config.device} if enc_dev else {})}
        dec_kw = {"device": config.device} if dec_dev else {}
        codec.check_encode_options(enc_kw)
        for e in config.extra_settings:
            codec.check_decode_options({**dec_kw, **e.get("decode_options", {})})
        # optional codec hook: whether these parameters fix everything a preset would set (a target bpp ...)
        overrides = getattr(codec, "params_override_preset", None)
        overridden = bool(params) and callable(overrides) and bool(overrides(params))
    else:
        presets = list(config.presets) if config.presets else [None]
        enc_kw = {**params, **({"device": config.device} if want_device and _takes_device(encode_fn) else {})}
        dec_kw = {"device": config.device} if want_device and _takes_device(decode_fn) else {}
        overridden = False
    if overridden:       # the parameters fix everything a preset would: one run at the codec's default
        presets = [None]
    settings = [Setting(p, setting_label(p, params, overridden)) for p in presets]
    return CodecUnderTest(config.method, settings, encode_fn, decode_fn, info_fn, enc_kw, dec_kw)


# ----------------------------------------------------------------------------------------------- measurements

@dataclass
class ImageCase:
    """One input image of the run, its rows' common columns and (for reported images) its crops."""

    index: int
    path: Path
    pixels: np.ndarray
    crop: tuple[int, int, int, int]         # center_crop_box
    crops_dir: Path | None                  # None: not in the report
    entries: list[tuple[str, str, str, dict | None]] = field(default_factory=list)

    @classmethod
    def load(cls, index: int, path: Path, crop_size: int, crops_dir: Path | None) -> ImageCase:
        img = load_rgb(path)
        case = cls(index, path, img, center_crop_box(img.shape[0], img.shape[1], crop_size), crops_dir)
        case.show(img, "original", "", None, tag="original")
        return case

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def channels(self) -> int:
        return self.pixels.shape[2] if self.pixels.ndim == 3 else 1

    def row(self, codec: str, setting: str, nbytes: int) -> dict[str, Any]:
        h, w = self.pixels.shape[:2]
        return {
            "image": self.name, "codec": codec, "setting": setting, "bytes": nbytes,
            "bpp": _metrics.bpp(nbytes, h, w), "payload_bpp": None,
            "compression_ratio": _metrics.compression_ratio(nbytes, h, w, self.channels),
            "matched_to": "", "over_target": None, "peak_rss_mb": None,
            "width": w, "height": h, "quality": None, "search_s": None,
        }

    def check(self, dec: Any, what: str) -> np.ndarray:
        dec = np.asarray(dec)
        if dec.shape != self.pixels.shape or dec.dtype != np.uint8:
            raise DiffcodecError(f"{what} on {self.name}: decoded image is {dec.dtype} {dec.shape}, "
                                 f"expected uint8 {self.pixels.shape}")
        return dec

    def show(self, arr: np.ndarray, codec: str, setting: str, row: dict | None, tag: str | None = None) -> None:
        """Write the crop of `arr` (reported images only) and list it in the report."""
        if self.crops_dir is None:
            return
        top, left, ch, cw = self.crop
        fname = (f"{self.index:03d}_{_safe_name(self.path.stem)}_{_safe_name(codec)}_"
                 f"{_safe_name(tag or setting)}.png")
        atomic.write_bytes(self.crops_dir / fname, _png_bytes(arr[top:top + ch, left:left + cw]))
        self.entries.append((codec, setting, f"crops/{fname}", row))

    def gallery(self) -> dict[str, Any]:
        return {"image": self.name, "size": self.pixels.shape[:2], "crop": self.crop, "entries": self.entries}


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _payload_bpp(info_fn: Callable[[bytes], dict] | None, data: bytes, case: ImageCase) -> float | None:
    if info_fn is None:
        return None
    try:
        inf = info_fn(data)
        pb = inf.get("payload_bytes") if isinstance(inf, dict) else None
        return None if pb is None else _metrics.bpp(int(pb), *case.pixels.shape[:2])
    except (DiffcodecError, KeyError, TypeError, ValueError):
        return None    # info is optional: no payload_bpp then


def measure_codec(case: ImageCase, codec: CodecUnderTest, setting: Setting,
                  extra_settings: Sequence[dict] = ()) -> tuple[list[dict[str, Any]], int]:
    """Encode + decode `case` at `setting`, then decode the same file with every extra setting: the rows and
    the file size (the baselines' target)."""
    img = case.pixels
    data, enc_s = _timed(codec.encode, img, codec.method, setting.preset, **codec.encode_kwargs)
    dec, dec_s = _timed(codec.decode, data, **codec.decode_kwargs)
    rss = peak_rss_mb()
    dec = case.check(dec, f"{CODEC} {setting.label}")
    row = case.row(CODEC, setting.label, len(data))
    row["payload_bpp"] = _payload_bpp(codec.info, data, case)
    row.update(_metrics.compare(img, dec))
    row.update(encode_s=enc_s, decode_s=dec_s, peak_rss_mb=rss)
    case.show(dec, CODEC, setting.label, row)
    rows = [row]
    for e in extra_settings:
        xs = f"{setting.label}+{e['label']}"
        dec2, dec2_s = _timed(codec.decode, data, **{**codec.decode_kwargs, **e.get("decode_options", {})})
        dec2 = case.check(dec2, f"{CODEC} {xs}")
        row2 = {**row, "setting": xs, **_metrics.compare(img, dec2), "decode_s": dec2_s, "peak_rss_mb": peak_rss_mb()}
        rows.append(row2)
        case.show(dec2, CODEC, xs, row2)
    return rows, len(data)


def measure_baselines(case: ImageCase, baselines: Sequence[str], target_bytes: int,
                      matched_to: str) -> list[dict[str, Any]]:
    """Every baseline at the largest quality whose file is not larger than `target_bytes` (flagged
    ``over_target`` when even its smallest file is larger)."""
    img, rows = case.pixels, []
    for bname in baselines:
        b = _baselines.get_baseline(bname)
        res, search_s = _timed(_baselines.encode_at_size, bname, img, target_bytes)
        _, benc_s = _timed(b.encode, img, res.quality)          # one timed encode at the chosen quality
        bdec, bdec_s = _timed(b.decode, res.data, channels=case.channels)
        bdec = case.check(bdec, bname)
        brow = case.row(bname, res.setting, res.bytes)
        brow.update(_metrics.compare(img, bdec))
        brow.update(encode_s=benc_s, decode_s=bdec_s, matched_to=matched_to, over_target=res.over_target,
                    quality=res.quality, search_s=search_s)
        rows.append(brow)
        case.show(bdec, bname, f"{res.setting} @{matched_to}", brow, tag=f"{res.setting}_at_{matched_to}")
    return rows


def measure(config: BenchConfig, codec: CodecUnderTest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All rows (per image, per setting: diffcodec, its extra decodes, the baselines) and the report gallery."""
    crops_dir = Path(config.outdir) / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    gallery: list[dict[str, Any]] = []
    bar = progress.bar(config.images, show=False if config.quiet else None, unit="img", desc="bench")
    for idx, path in enumerate(bar):
        case = ImageCase.load(idx, Path(path), config.crop_size, crops_dir if idx < config.report_images else None)
        for setting in codec.settings:
            bar.set_postfix_str(f"{case.name} {setting.label}")
            codec_rows, nbytes = measure_codec(case, codec, setting, config.extra_settings)
            rows += codec_rows
            rows += measure_baselines(case, config.baselines, nbytes, setting.label)
        if case.crops_dir is not None:
            gallery.append(case.gallery())
    bar.close()
    return rows, gallery


def write_outputs(config: BenchConfig, codec: CodecUnderTest, rows: list[dict[str, Any]],
                  gallery: list[dict[str, Any]], *, rss_start_mb: float | None, t_start: float) -> dict:
    """results.csv, summary.md, the two plots, report.html and summary.json; returns the summary."""
    out = Path(config.outdir)
    labels = [s.label for s in codec.settings]
    atomic.write_text(out / "results.csv", csv_text(rows))
    settings = summarize(rows, labels, [e["label"] for e in config.extra_settings], config.baselines)
    command = config.command
    summary: dict[str, Any] = {
        "method": config.method,
        "presets": labels,
        "encode_params": dict(config.encode_params),
        "baselines": list(config.baselines),
        "extra_settings": list(config.extra_settings),
        "images": [str(p) for p in config.images],
        "n_images": len(config.images),
        "crop": {"size": config.crop_size, "position": "centre"},
        "device": config.device,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command) if isinstance(command, (list, tuple)) else command,
        "machine": machine_info(),
        "rss_start_mb": rss_start_mb,
        "notes": {
            "means": "arithmetic mean over images of per-image values; NaN (MS-SSIM on images <= 160 px) skipped",
            "bpp": "8 * file bytes / pixels, whole file; payload_bpp from api.info payload_bytes",
            "baselines": "largest file not exceeding the diffcodec file; setting '@P' = matched to preset P",
            "peak_rss_mb": "process peak RSS so far after each diffcodec encode+decode (high-water mark, "
                           "includes torch and the metrics; rss_start_mb is the level before the first image)",
        },
        "settings": settings,
    }
    atomic.write_text(out / "summary.md", format_markdown_table(summary))
    atomic.write_bytes(out / "rd_psnr.png", rd_plot_png(settings, "mean_psnr", "PSNR (RGB) [dB]",
                                                        "Rate-distortion: PSNR"))
    atomic.write_bytes(out / "rd_msssim.png", rd_plot_png(settings, "mean_ms_ssim", "MS-SSIM [0..1]",
                                                          "Rate-distortion: MS-SSIM"))
    summary["wall_s"] = time.perf_counter() - t_start
    atomic.write_text(out / "report.html", report_html(summary, gallery))
    summary["wall_s"] = time.perf_counter() - t_start
    summary["files"] = list(OUTPUT_FILES)
    atomic.write_text(out / "summary.json", json.dumps(json_clean(summary), indent=2) + "\n")
    return json_clean(summary)


# ----------------------------------------------------------------------------------------------- the run

def run_bench(config: BenchConfig, *, encode_fn: Callable[..., bytes] | None = None,
              decode_fn: Callable[..., np.ndarray] | None = None,
              info_fn: Callable[[bytes], dict] | None = None) -> dict:
    """Benchmark ``config.method`` against ``config.baselines`` on ``config.images``; write the report into
    ``config.outdir``. `encode_fn(image, method, preset, **params)`, `decode_fn(data, **options)` and
    `info_fn(data)` replace ``diffcodec.api`` (see :func:`codec_under_test`). Returns the summary (as in
    summary.json)."""
    t_start = time.perf_counter()
    config.check()
    codec = codec_under_test(config, encode_fn, decode_fn, info_fn)
    # Load torch and the metric code before the first measurement, so that every image's peak_rss_mb includes
    # the same runtime (the metrics need torch whether or not the codec does); recorded as rss_start_mb.
    _metrics.compare(np.zeros((16, 16, 3), np.uint8), np.ones((16, 16, 3), np.uint8))
    rss_start = peak_rss_mb()
    rows, gallery = measure(config, codec)
    return write_outputs(config, codec, rows, gallery, rss_start_mb=rss_start, t_start=t_start)


