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
4. :func:`write_outputs`: results.csv, summary.json, summary.md, rd_psnr.png, rd_msssim.png, one rd_<metric>.png
   per perceptual metric, and report.html (their text and bytes come from :mod:`diffcodec.bench_report`).

Conventions:

- Settings: every preset (or those named), and every ``qualities`` value (``Codec.quality_params``). The codec
  says what each is fixed to before seeing an image (``Codec.encode_setting``): settings it answers alike for
  run once (``asked`` lists them all). When it says the parameters replace the preset entirely
  (``params_override_preset(params)``, e.g. a target ``bpp``), the method runs once at its default preset.
- Labels say what ran: every diffcodec row records ``coded``, the parameters read back from its file
  (``Codec.coded_setting`` of the header's model and params), and a setting is labelled by its ``coded`` value
  when all its files read back alike (``"n50-k4096-m412 latent"``); otherwise (a rate search that picks per
  image) by what the codec was asked, resolved (``"bpp=0.1"``), with ``coded`` per row. ``asked`` is what was
  requested (a preset, ``q=50``, the parameters); tables show it in brackets where the label does not contain it.
- The output folder must be empty or absent; ``force`` (``bench --force``) first deletes what an earlier run
  wrote there (:data:`OUTPUT_FILES`, ``crops/*.png``), so the report lists this run's files only.
- bpp is 8 * (file size in bytes) / pixels, from the complete file (container header included);
  ``payload_bpp`` counts only the payload when ``diffcodec.api.info(data)`` reports ``payload_bytes``.
- Means in the summary are arithmetic means over images of the per-image values (per-image PSNR averaged,
  the CompressAI convention); NaN values (MS-SSIM of images <= 160 px) are left out of a mean.
- Baseline timings: ``encode_s`` is one encode at the chosen quality, ``search_s`` the whole quality search.
- Perceptual metrics (``metrics``; :mod:`diffcodec.perceptual`): SSIMULACRA 2, and Butteraugli when libjxl's tool
  is found, unless named; every row gets their columns. A named metric that cannot run here is refused before
  anything runs.
- BD-rate / BD-quality (:mod:`diffcodec.bdrate`, PCHIP): per image, each codec's curve over the settings against
  the ``anchor`` codec's (default: the first baseline), then the mean over the images where it is defined; for
  every metric column (PSNR gives BD-PSNR). Needs two or more settings.
- ``published``: JSON files of published rate-distortion points (``benchmarks/published/*.json``) drawn as dashed
  lines and listed as rows marked "published, not re-measured"; never mixed into the measured rows.
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
import math
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
from diffcodec import bdrate as _bdrate
from diffcodec import metrics as _metrics
from diffcodec import perceptual as _perceptual
from diffcodec.bench_report import (
    CODEC,
    CSV_COLUMNS,
    METRIC_PLOTS,
    csv_text,
    format_markdown_table,
    json_clean,
    load_published,
    rd_plot_png,
    report_html,
    summarize,
)
from diffcodec.errors import DiffcodecError, UnsupportedError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
OUTPUT_FILES = ["results.csv", "summary.json", "summary.md", "rd_psnr.png", "rd_msssim.png",
                *[f"rd_{m}.png" for m in METRIC_PLOTS], "report.html", "crops/"]


def prepare_outdir(outdir: Path, force: bool, patterns: Sequence[str], folders: Sequence[str]) -> None:
    """Refuse a non-empty ``outdir`` (UsageError) unless ``force``; with it, delete the files an earlier run wrote
    there (``patterns`` at the top, ``*.png`` in ``folders``), so that a report holds only the new run's files.
    Anything else in the folder stays and is named in the error."""
    outdir = Path(outdir)
    if not outdir.exists():
        return
    if not outdir.is_dir():
        raise UsageError(f"{str(outdir)!r} is not a folder")
    entries = sorted(p.name for p in outdir.iterdir())
    if not entries:
        return
    if not force:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise UsageError(f"output folder {str(outdir)!r} is not empty ({shown}): give another -o, or --force to "
                         f"replace an earlier run's results there")
    for pattern in patterns:
        for f in outdir.glob(pattern):
            if f.is_file():
                f.unlink()
    for folder in folders:
        d = outdir / folder
        if d.is_dir():
            for f in d.glob("*.png"):
                f.unlink()


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
    """Read an image file as uint8 (H, W, 3) RGB exactly as `encode` reads it (:func:`diffcodec.images.
    image_from_bytes`: EXIF orientation applied, alpha dropped, 16-bit samples to their high byte), grey repeated
    to three channels, so that the figures are of what `encode` codes."""
    from diffcodec import images

    arr = images.image_from_bytes(images.read_bytes(str(path)), str(path))
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


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
    qualities: Sequence[int] = ()           # -q/--quality values: settings through Codec.quality_params
    force: bool = False                     # replace an earlier run's files in outdir (else it must be empty)
    metrics: Sequence[str] | None = None    # perceptual metrics (None: perceptual.default_metrics())
    anchor: str | None = ""                 # BD anchor codec ("": the first baseline; None: no BD table)
    published: Sequence[str | os.PathLike] = ()   # published RD curves (JSON) to draw, never re-measured

    def __post_init__(self) -> None:
        self.images = [Path(p) for p in self.images]
        self.outdir = Path(self.outdir)
        self.presets, self.baselines = list(self.presets or ()), list(self.baselines or ())
        self.encode_params = dict(self.encode_params or {})
        self.extra_settings = list(self.extra_settings or ())
        self.qualities = list(self.qualities or ())
        self.metrics = _perceptual.default_metrics() if self.metrics is None else list(self.metrics)
        if self.anchor == "":
            self.anchor = self.baselines[0] if self.baselines else None
        self.published = list(self.published or ())

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
            why = _baselines.get_baseline(b).unavailable()    # UsageError listing the registered ones
            if why is not None:
                raise UnsupportedError(f"--vs {b}: {why}")
        self.metrics = _perceptual.check_metrics(self.metrics or ())
        if self.anchor is not None and self.anchor not in (CODEC, *self.baselines):
            raise UsageError(f"--anchor {self.anchor!r} is not among the codecs run "
                             f"({', '.join([CODEC, *self.baselines])})")
        for f in self.published:
            load_published(f)             # UsageError for a missing or malformed file
        for e in self.extra_settings:
            if not isinstance(e, dict) or not isinstance(e.get("label"), str) or not e["label"]:
                raise UsageError(f"extra setting needs a non-empty 'label': {e!r}")
            if not isinstance(e.get("decode_options", {}), dict):
                raise UsageError(f"extra setting 'decode_options' must be a dict: {e!r}")
        if not self.force:
            prepare_outdir(Path(self.outdir), False, (), ())


@dataclass(frozen=True)
class Setting:
    """One rate point of the codec under test: what `encode` gets and how its rows are labelled."""

    preset: str | None       # None: the codec's default
    label: str               # the `setting` column until the files are read back (see relabel)
    params: dict[str, Any] = field(default_factory=dict)    # encode options of this setting only (a quality's)
    asked: str = ""          # what was requested: preset(s), q=Q, parameters


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
    coded: Callable[[bytes], str | None] | None = None     # the read-back label of a file (Codec.coded_setting)


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
        if config.qualities and not config.presets:
            presets = []                # -q values alone: no preset rows besides them
        settings = _codec_settings(codec, presets, params, config.qualities)
        coded = _coded_label(codec, info_fn)
    else:
        if config.qualities:
            raise UsageError("quality settings are the codec's (Codec.quality_params): run through diffcodec.api")
        presets = list(config.presets) if config.presets else [None]
        enc_kw = {**params, **({"device": config.device} if want_device and _takes_device(encode_fn) else {})}
        dec_kw = {"device": config.device} if want_device and _takes_device(decode_fn) else {}
        settings = [Setting(p, setting_label(p, params), asked=setting_label(p, params)) for p in presets]
        coded = None
    return CodecUnderTest(config.method, settings, encode_fn, decode_fn, info_fn, enc_kw, dec_kw, coded)


def _codec_settings(codec: Any, presets: Sequence[str | None], params: dict[str, Any],
                    qualities: Sequence[int]) -> list[Setting]:
    """The settings of a run, as the codec resolves them (``Codec.encode_setting``): requests it resolves alike run
    once, their ``asked`` joined. Parameters that replace the preset (a target bpp ...) leave one preset request,
    at the codec's default."""
    if params and codec.params_override_preset(params):
        presets = [None]
    requests: list[tuple[str | None, dict[str, Any], str]] = [
        (p, {}, p if p is not None else setting_label(None, params, True)) for p in presets]
    for q in qualities:
        if params.get("bpp") is not None or codec.params_override_preset(params):
            raise UsageError("--quality chooses the rate, which the --param values already fix: give one or the "
                             "other")
        q_preset, q_params = codec.quality_params(q)
        requests.append((q_preset, q_params, f"q={q}"))
    settings: dict[str, Setting] = {}
    for preset, extra, asked in requests:
        key, label = resolved_setting(codec, preset, {**params, **extra})
        if key in settings:
            s = settings[key]
            settings[key] = Setting(s.preset, s.label, s.params, f"{s.asked}, {asked}")
            continue
        settings[key] = Setting(preset, label, extra, asked)
    return list(settings.values())


def resolved_setting(codec: Any, preset: str | None, params: dict[str, Any]) -> tuple[str, str]:
    """(key, label) of what the codec fixes an encode with (preset, params) to (``Codec.encode_setting``): equal
    keys code every image alike; the label is the preset it resolves to, if any, then the other values."""
    resolved = dict(codec.encode_setting(preset, params))
    key = json.dumps(resolved, sort_keys=True, default=str)
    head = [str(resolved.pop("preset"))] if "preset" in resolved else []
    return key, " ".join(head + [f"{k}={v}" for k, v in resolved.items()]) or "default"


def _coded_label(codec: Any, info_fn: Callable[[bytes], dict] | None) -> Callable[[bytes], str | None]:
    """data -> the codec's label of what the file was coded with (None when the info has no header fields)."""
    def coded(data: bytes) -> str | None:
        try:
            inf = info_fn(data) if info_fn is not None else None
            return codec.coded_setting(inf["model"], inf["params"]) if isinstance(inf, dict) else None
        except (DiffcodecError, KeyError, TypeError, ValueError):
            return None
    return coded


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


def quality(original: np.ndarray, decoded: np.ndarray, metrics: Sequence[str] = ()) -> dict[str, float]:
    """Every metric of one decoded image: :func:`diffcodec.metrics.compare` and the named perceptual ones."""
    return {**_metrics.compare(original, decoded), **_perceptual.measure(original, decoded, metrics)}


def measure_codec(case: ImageCase, codec: CodecUnderTest, setting: Setting,
                  extra_settings: Sequence[dict] = (), metrics: Sequence[str] = ()) -> tuple[list[dict[str, Any]], int]:
    """Encode + decode `case` at `setting`, then decode the same file with every extra setting: the rows and
    the file size (the baselines' target)."""
    img = case.pixels
    data, enc_s = _timed(codec.encode, img, codec.method, setting.preset, **codec.encode_kwargs, **setting.params)
    dec, dec_s = _timed(codec.decode, data, **codec.decode_kwargs)
    rss = peak_rss_mb()
    dec = case.check(dec, f"{CODEC} {setting.label}")
    row = case.row(CODEC, setting.label, len(data))
    row["payload_bpp"] = _payload_bpp(codec.info, data, case)
    row.update(asked=setting.asked, coded=codec.coded(data) if codec.coded is not None else None)
    row.update(quality(img, dec, metrics))
    row.update(encode_s=enc_s, decode_s=dec_s, peak_rss_mb=rss)
    case.show(dec, CODEC, setting.label, row)
    rows = [row]
    for e in extra_settings:
        xs = f"{setting.label}+{e['label']}"
        dec2, dec2_s = _timed(codec.decode, data, **{**codec.decode_kwargs, **e.get("decode_options", {})})
        dec2 = case.check(dec2, f"{CODEC} {xs}")
        row2 = {**row, "setting": xs, **quality(img, dec2, metrics), "decode_s": dec2_s,
                "peak_rss_mb": peak_rss_mb()}
        rows.append(row2)
        case.show(dec2, CODEC, xs, row2)
    return rows, len(data)


def measure_baselines(case: ImageCase, baselines: Sequence[str], target_bytes: int,
                      matched_to: str, metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
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
        brow.update(quality(img, bdec, metrics))
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
            codec_rows, nbytes = measure_codec(case, codec, setting, config.extra_settings, config.metrics or ())
            rows += codec_rows
            rows += measure_baselines(case, config.baselines, nbytes, setting.label, config.metrics or ())
        if case.crops_dir is not None:
            gallery.append(case.gallery())
    bar.close()
    return rows, gallery


def relabel(settings: Sequence[Setting], rows: list[dict[str, Any]], gallery: list[dict[str, Any]]) -> list[Setting]:
    """Label each setting by what its files read back (their common ``coded`` value) where they all agree and
    no other setting takes that label; rewrite the rows (``setting``, ``matched_to``) and the gallery to match.
    Returns the settings with their final labels."""
    final: dict[str, str] = {}
    for st in settings:
        coded = {r.get("coded") for r in rows if r["codec"] == CODEC and r["setting"] == st.label}
        name = coded.pop() if len(coded) == 1 else None
        final[st.label] = name if name and name not in final.values() else st.label
    if len(set(final.values())) != len(final):      # a read-back label equal to another's request label
        final = {st.label: st.label for st in settings}

    def new(label: str) -> str:        # a setting's label, or it + "+<extra decode>"
        old = next((o for o in sorted(final, key=len, reverse=True) if label == o or label.startswith(o + "+")),
                   None)
        return label if old is None else final[old] + label[len(old):]

    for r in rows:
        if r["codec"] == CODEC:
            r["setting"] = new(r["setting"])
        elif r.get("matched_to"):
            r["matched_to"] = new(r["matched_to"])
    for g in gallery:           # captions: "<setting>" for ours, "<quality> @<setting>" for a baseline
        g["entries"] = [(c, new(name) if c == CODEC else " @".join(
            [name.split(" @", 1)[0]] + [new(x) for x in name.split(" @", 1)[1:]]), src, row)
            for c, name, src, row in g["entries"]]
    return [Setting(st.preset, final[st.label], st.params, st.asked) for st in settings]


def write_outputs(config: BenchConfig, codec: CodecUnderTest, rows: list[dict[str, Any]],
                  gallery: list[dict[str, Any]], *, rss_start_mb: float | None, t_start: float) -> dict:
    """results.csv, summary.md, the two plots, report.html and summary.json; returns the summary."""
    out = Path(config.outdir)
    labels = [s.label for s in codec.settings]
    asked = {s.label: s.asked for s in codec.settings}
    metric_cols = [c for m in (config.metrics or ()) for c in _perceptual.METRICS[m].columns]
    atomic.write_text(out / "results.csv", csv_text(rows, CSV_COLUMNS + metric_cols))
    settings = summarize(rows, labels, [e["label"] for e in config.extra_settings], config.baselines,
                         metric_cols)
    for e in settings:
        base = e["setting"] if e["codec"] == CODEC else e["matched_to"]
        e["asked"] = next((a for lab, a in asked.items() if base == lab or base.startswith(lab + "+")), "")
    command = config.command
    summary: dict[str, Any] = {
        "method": config.method,
        "presets": labels,
        "asked": asked,
        "qualities": list(config.qualities),
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
            "baselines": "largest file not exceeding the diffcodec file; setting '@P' = matched to setting P",
            "labels": "a setting is labelled by the parameters read back from its files (column coded) when they "
                      "all agree, else by what was asked, resolved by the codec; asked: what was requested",
            "peak_rss_mb": "process peak RSS so far after each diffcodec encode+decode (high-water mark, "
                           "includes torch and the metrics; rss_start_mb is the level before the first image)",
        },
        "settings": settings,
        "metrics": list(config.metrics or ()),
        "anchor": config.anchor,
        "bd": (bd_summary(rows, config.anchor, ["psnr", "ms_ssim", *metric_cols])
               if config.anchor and len(labels) >= 2 else []),          # a curve needs two settings
        "published": [load_published(f) for f in config.published],
    }
    summary["notes"]["bd"] = ("BD-rate (%) and BD-quality (metric units; for distances, how much lower) per image, "
                              "PCHIP (JCT-VC/JVET sheets), then the mean over images where defined; anchor: "
                              f"{config.anchor}")
    summary["notes"]["published"] = "published, not re-measured: values and source in each file"
    published = summary["published"]
    atomic.write_text(out / "summary.md", format_markdown_table(summary))
    atomic.write_bytes(out / "rd_psnr.png", rd_plot_png(settings, "mean_psnr", "PSNR (RGB) [dB]",
                                                        "Rate-distortion: PSNR", published=published))
    atomic.write_bytes(out / "rd_msssim.png", rd_plot_png(settings, "mean_ms_ssim", "MS-SSIM [0..1]",
                                                          "Rate-distortion: MS-SSIM", published=published))
    for col, (fname, ylabel, title) in METRIC_PLOTS.items():
        if col in metric_cols:
            atomic.write_bytes(out / fname, rd_plot_png(settings, f"mean_{col}", ylabel, title, published=published))
    summary["wall_s"] = time.perf_counter() - t_start
    atomic.write_text(out / "report.html", report_html(summary, gallery))
    summary["wall_s"] = time.perf_counter() - t_start
    summary["files"] = list(OUTPUT_FILES)
    atomic.write_text(out / "summary.json", json.dumps(json_clean(summary), indent=2) + "\n")
    return json_clean(summary)


def bd_summary(rows: list[dict[str, Any]], anchor: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    """BD-rate and BD-quality of every curve (ours and each extra decode, every baseline) against `anchor`, per
    image over the settings, then averaged (:func:`diffcodec.bdrate.per_image_bd`), for each metric column."""
    def curve_key(r: dict[str, Any]) -> str:
        if r["codec"] == CODEC and "+" in r["setting"]:
            return f"{CODEC} +{r['setting'].split('+', 1)[1]}"
        return r["codec"]

    curves: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {}
    for r in rows:
        for col in columns:
            v = r.get(col)
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            curves.setdefault(curve_key(r), {}).setdefault(col, {}).setdefault(r["image"], []).append((r["bpp"], v))
    out = []
    for name, per_col in curves.items():
        if name == anchor:
            continue
        for col in columns:
            if col not in per_col or col not in curves.get(anchor, {}):
                continue
            higher = _perceptual.COLUMN_HIGHER_IS_BETTER.get(col, True)
            res = _bdrate.per_image_bd(curves[anchor][col], per_col[col], higher_is_better=higher)
            out.append({"codec": name, "anchor": anchor, "metric": col, "higher_is_better": higher, **res})
    return out


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
    prepare_outdir(Path(config.outdir), config.force, [f for f in OUTPUT_FILES if not f.endswith("/")], ["crops"])
    rows, gallery = measure(config, codec)
    codec.settings = relabel(codec.settings, rows, gallery)
    return write_outputs(config, codec, rows, gallery, rss_start_mb=rss_start, t_start=t_start)


