"""Benchmark runner: diffcodec presets against Pillow baselines at matched file sizes, with a report.

For every image and every preset, :func:`run_bench` encodes with diffcodec (through :mod:`diffcodec.api` only),
decodes, measures the real file size and the metrics of :mod:`diffcodec.metrics`, then encodes every baseline at
the largest quality whose file does not exceed the diffcodec file (:func:`diffcodec.baselines.encode_at_size`).

Conventions:

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
- ``device`` ("auto", "cpu", "cuda"; see ``api.resolve_device``) is recorded in the summary. It is passed on as
  ``device=`` only to a codec that declares a ``device`` parameter (its ``compress`` for encoding, its
  ``decompress`` for decoding, or an injected encode/decode function), never with "auto": ``api.encode``
  forwards unknown keyword arguments to the method, and a method without one (opq) rejects them.

Output files (all written atomically: temporary file + rename): results.csv, summary.json, summary.md,
rd_psnr.png, rd_msssim.png, report.html and crops/*.png.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import math
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from diffcodec import baselines as _baselines
from diffcodec import metrics as _metrics
from diffcodec.errors import DiffcodecError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

CSV_COLUMNS = [
    "image", "codec", "setting", "bytes", "bpp", "payload_bpp", "psnr", "psnr_y", "ssim", "ms_ssim",
    "encode_s", "decode_s", "compression_ratio", "matched_to", "over_target", "peak_rss_mb",
    # extra columns
    "width", "height", "quality", "search_s",
]

CODEC = "diffcodec"


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

def _atomic_write_bytes(path: Path, data: bytes) -> None:
    from diffcodec import atomic

    atomic.write_bytes(path, data)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


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


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_clean(obj: Any) -> Any:
    """Replace NaN/inf by None (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    return _finite_or_none(obj)


def _mean(values: list[Any]) -> float | None:
    """Mean of the non-NaN, non-None values; inf if any is +inf (lossless PSNR); None if none are left."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    return float(sum(vals) / len(vals))


def _fmt_csv(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"
    return str(v)


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


# ----------------------------------------------------------------------------------------------- the run

def _resolve_presets(method: str, presets: Sequence[str] | None) -> list[str]:
    from diffcodec.methods import get_codec

    known = dict(get_codec(method).presets)
    if not presets:
        return list(known)
    unknown = [p for p in presets if p not in known]
    if unknown:
        raise UsageError(
            f"unknown preset(s) {', '.join(map(repr, unknown))} for method {method!r} "
            f"(available: {', '.join(known)})"
        )
    return list(presets)


def run_bench(
    images: Sequence[str | os.PathLike],
    method: str,
    presets: Sequence[str],
    baselines: Sequence[str],
    outdir: str | os.PathLike,
    *,
    quiet: bool = False,
    crop_size: int = 256,
    extra_settings: list[dict] | None = None,
    device: str = "auto",
    report_images: int = 6,
    command: str | Sequence[str] | None = None,
    encode_fn: Callable[..., bytes] | None = None,
    decode_fn: Callable[..., np.ndarray] | None = None,
    info_fn: Callable[[bytes], dict] | None = None,
    encode_params: dict[str, Any] | None = None,
) -> dict:
    """Benchmark `method` at each preset against `baselines` on `images`; write the report into `outdir`.

    `presets` empty means every preset of the method (``diffcodec.methods.get_codec(method).presets``); named
    presets are checked against that list before anything runs (only when the real API is used).
    `extra_settings`: ``[{"label": str, "decode_options": dict}, ...]``: the same diffcodec file is decoded
    again with ``api.decode(data, **decode_options)`` and recorded as setting ``<preset>+<label>``.
    `encode_fn(image, method, preset, **params)`, `decode_fn(data, **options)` and `info_fn(data)` default to
    ``diffcodec.api.encode`` / ``decode`` / ``info`` (imported here, lazily); `command` is stored in the
    summary. `encode_params` are passed to every encode (e.g. ``{"space": "latent"}`` for ddcm) and recorded in
    the summary. Returns the summary (as in summary.json).
    """
    t_start = time.perf_counter()
    outdir = Path(outdir)
    image_paths = [Path(p) for p in images]
    if not image_paths:
        raise UsageError("no images to benchmark")
    for p in image_paths:
        if not p.is_file():
            raise UsageError(f"no such image file: {str(p)!r}")
    if crop_size < 1:
        raise UsageError(f"crop size must be positive, got {crop_size}")
    baseline_names = list(baselines)
    for b in baseline_names:
        _baselines.get_baseline(b)    # UsageError listing the available ones
    extras = list(extra_settings or [])
    for e in extras:
        if not isinstance(e, dict) or not isinstance(e.get("label"), str) or not e["label"]:
            raise UsageError(f"extra setting needs a non-empty 'label': {e!r}")
        if not isinstance(e.get("decode_options", {}), dict):
            raise UsageError(f"extra setting 'decode_options' must be a dict: {e!r}")

    want_device = device not in (None, "", "auto")
    if encode_fn is None or decode_fn is None:
        from diffcodec import api
        from diffcodec.methods import get_codec

        encode_fn = encode_fn or api.encode
        decode_fn = decode_fn or api.decode
        if info_fn is None:
            info_fn = getattr(api, "info", None)
        preset_list: list[str | None] = list(_resolve_presets(method, presets))
        codec = get_codec(method)
        enc_dev = want_device and _takes_device(getattr(codec, "compress", None))
        dec_dev = want_device and _takes_device(getattr(codec, "decompress", None))
    else:   # injected codec (tests, experiments): presets are taken as given, info only if injected too
        preset_list = list(presets) if presets else [None]
        enc_dev = want_device and _takes_device(encode_fn)
        dec_dev = want_device and _takes_device(decode_fn)
    setting_names = [p if p is not None else "default" for p in preset_list]
    enc_kw = {**(encode_params or {}), **({"device": device} if enc_dev else {})}
    dec_kw = {"device": device} if dec_dev else {}

    # Load torch and the metric code before the first measurement, so that every image's peak_rss_mb includes
    # the same runtime (the metrics need torch whether or not the codec does); recorded as rss_start_mb.
    _metrics.compare(np.zeros((16, 16, 3), np.uint8), np.ones((16, 16, 3), np.uint8))
    rss_start = peak_rss_mb()

    outdir.mkdir(parents=True, exist_ok=True)
    crops_dir = outdir / "crops"
    crops_dir.mkdir(exist_ok=True)

    rows: list[dict[str, Any]] = []
    gallery: list[dict[str, Any]] = []     # per reported image: name + list of (codec, setting, png, row)

    from tqdm import tqdm

    show_progress = (not quiet) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    bar = tqdm(image_paths, disable=not show_progress, file=sys.stderr, unit="img", desc="bench")
    for idx, path in enumerate(bar):
        img = load_rgb(path)
        h, w = img.shape[:2]
        channels = img.shape[2] if img.ndim == 3 else 1
        name = path.name
        report_this = idx < report_images
        crop = center_crop_box(h, w, crop_size)
        entries: list[tuple[str, str, str, dict | None]] = []

        def save_crop(arr: np.ndarray, codec: str, setting: str) -> str:
            top, left, ch, cw = crop
            fname = f"{idx:03d}_{_safe_name(path.stem)}_{_safe_name(codec)}_{_safe_name(setting)}.png"
            _atomic_write_bytes(crops_dir / fname, _png_bytes(arr[top:top + ch, left:left + cw]))
            return f"crops/{fname}"

        if report_this:
            entries.append(("original", "", save_crop(img, "original", "original"), None))

        def base_row(codec: str, setting: str, nbytes: int) -> dict[str, Any]:
            return {
                "image": name, "codec": codec, "setting": setting, "bytes": nbytes,
                "bpp": _metrics.bpp(nbytes, h, w), "payload_bpp": None,
                "compression_ratio": _metrics.compression_ratio(nbytes, h, w, channels),
                "matched_to": "", "over_target": None, "peak_rss_mb": None,
                "width": w, "height": h, "quality": None, "search_s": None,
            }

        for preset, setting in zip(preset_list, setting_names):
            if show_progress:
                bar.set_postfix_str(f"{name} {setting}")
            t0 = time.perf_counter()
            data = encode_fn(img, method, preset, **enc_kw)
            enc_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            dec = decode_fn(data, **dec_kw)
            dec_s = time.perf_counter() - t0
            rss = peak_rss_mb()
            dec = _check_decoded(dec, img, f"{CODEC} {setting} on {name}")

            row = base_row(CODEC, setting, len(data))
            if info_fn is not None:
                try:
                    inf = info_fn(data)
                    pb = inf.get("payload_bytes") if isinstance(inf, dict) else None
                    if pb is not None:
                        row["payload_bpp"] = _metrics.bpp(int(pb), h, w)
                except (DiffcodecError, KeyError, TypeError, ValueError):
                    pass   # info is optional: no payload_bpp then
            row.update(_metrics.compare(img, dec))
            row.update(encode_s=enc_s, decode_s=dec_s, peak_rss_mb=rss)
            rows.append(row)
            if report_this:
                entries.append((CODEC, setting, save_crop(dec, CODEC, setting), row))

            for e in extras:
                xs = f"{setting}+{e['label']}"
                t0 = time.perf_counter()
                dec2 = decode_fn(data, **{**dec_kw, **e.get("decode_options", {})})
                dec2_s = time.perf_counter() - t0
                dec2 = _check_decoded(dec2, img, f"{CODEC} {xs} on {name}")
                row2 = dict(row)
                row2.update(setting=xs)
                row2.update(_metrics.compare(img, dec2))
                row2.update(decode_s=dec2_s, peak_rss_mb=peak_rss_mb())
                rows.append(row2)
                if report_this:
                    entries.append((CODEC, xs, save_crop(dec2, CODEC, xs), row2))

            for bname in baseline_names:
                b = _baselines.get_baseline(bname)
                t0 = time.perf_counter()
                res = _baselines.encode_at_size(bname, img, len(data))
                search_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                b.encode(img, res.quality)           # one timed encode at the chosen quality
                benc_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                bdec = b.decode(res.data, channels=channels)
                bdec_s = time.perf_counter() - t0
                bdec = _check_decoded(bdec, img, f"{bname} on {name}")
                brow = base_row(bname, res.setting, res.bytes)
                brow.update(_metrics.compare(img, bdec))
                brow.update(encode_s=benc_s, decode_s=bdec_s, matched_to=setting, over_target=res.over_target,
                            quality=res.quality, search_s=search_s)
                rows.append(brow)
                if report_this:
                    entries.append((bname, f"{res.setting} @{setting}",
                                    save_crop(bdec, bname, f"{res.setting}_at_{setting}"), brow))
        if report_this:
            gallery.append({"image": name, "size": (h, w), "crop": crop, "entries": entries})
    bar.close()

    _write_csv(outdir / "results.csv", rows)
    settings = summarize(rows, setting_names, [e["label"] for e in extras], baseline_names)
    summary: dict[str, Any] = {
        "method": method,
        "presets": setting_names,
        "encode_params": dict(encode_params or {}),
        "baselines": baseline_names,
        "extra_settings": extras,
        "images": [str(p) for p in image_paths],
        "n_images": len(image_paths),
        "crop": {"size": crop_size, "position": "centre"},
        "device": device,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command) if isinstance(command, (list, tuple)) else command,
        "machine": machine_info(),
        "rss_start_mb": rss_start,
        "notes": {
            "means": "arithmetic mean over images of per-image values; NaN (MS-SSIM on images <= 160 px) skipped",
            "bpp": "8 * file bytes / pixels, whole file; payload_bpp from api.info payload_bytes",
            "baselines": "largest file not exceeding the diffcodec file; setting '@P' = matched to preset P",
            "peak_rss_mb": "process peak RSS so far after each diffcodec encode+decode (high-water mark, "
                           "includes torch and the metrics; rss_start_mb is the level before the first image)",
        },
        "settings": settings,
    }
    _atomic_write_text(outdir / "summary.md", format_markdown_table(summary))
    _plot_rd(outdir / "rd_psnr.png", settings, "mean_psnr", "PSNR (RGB) [dB]", "Rate-distortion: PSNR")
    _plot_rd(outdir / "rd_msssim.png", settings, "mean_ms_ssim", "MS-SSIM [0..1]", "Rate-distortion: MS-SSIM")
    summary["wall_s"] = time.perf_counter() - t_start
    _write_report(outdir / "report.html", summary, gallery)
    summary["wall_s"] = time.perf_counter() - t_start
    summary["files"] = ["results.csv", "summary.json", "summary.md", "rd_psnr.png", "rd_msssim.png",
                        "report.html", "crops/"]
    _atomic_write_text(outdir / "summary.json", json.dumps(_json_clean(summary), indent=2) + "\n")
    return _json_clean(summary)


def _takes_device(fn: Any) -> bool:
    """Whether `fn` declares a parameter named ``device`` (a ``**kwargs`` catch-all does not count)."""
    import inspect

    try:
        return "device" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _check_decoded(dec: Any, img: np.ndarray, what: str) -> np.ndarray:
    dec = np.asarray(dec)
    if dec.shape != img.shape or dec.dtype != np.uint8:
        raise DiffcodecError(
            f"{what}: decoded image is {dec.dtype} {dec.shape}, expected uint8 {img.shape}"
        )
    return dec


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(CSV_COLUMNS)
    for r in rows:
        wr.writerow([_fmt_csv(r.get(c)) for c in CSV_COLUMNS])
    _atomic_write_text(path, buf.getvalue())


def summarize(rows: list[dict[str, Any]], presets: Sequence[str] | None = None,
              extra_labels: Sequence[str] = (), baselines: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per (codec, setting) means. Baseline rows are grouped by the preset they were matched to (setting "@P").

    Order: diffcodec presets (then their extra settings), then each baseline in the order given.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["codec"], r["setting"]) if r["codec"] == CODEC else (r["codec"], f"@{r['matched_to']}")
        groups.setdefault(key, []).append(r)

    if presets is None:
        presets = list(dict.fromkeys(r["setting"] for r in rows if r["codec"] == CODEC and "+" not in r["setting"]))
    if baselines is None:
        baselines = list(dict.fromkeys(r["codec"] for r in rows if r["codec"] != CODEC))
    order: list[tuple[str, str]] = [(CODEC, p) for p in presets]
    order += [(CODEC, f"{p}+{lab}") for lab in extra_labels for p in presets]
    order += [(b, f"@{p}") for b in baselines for p in presets]
    order += [k for k in groups if k not in order]

    out = []
    for codec, setting in order:
        g = groups.get((codec, setting))
        if not g:
            continue
        entry: dict[str, Any] = {
            "codec": codec,
            "setting": setting,
            "matched_to": g[0]["matched_to"] if codec != CODEC else "",
            "n_images": len(g),
        }
        for k in ("bytes", "bpp", "payload_bpp", "psnr", "psnr_y", "ssim", "ms_ssim", "encode_s", "decode_s",
                  "compression_ratio"):
            entry[f"mean_{k}"] = _mean([r.get(k) for r in g])
        entry["max_peak_rss_mb"] = max((r["peak_rss_mb"] for r in g if r.get("peak_rss_mb") is not None),
                                       default=None)
        if codec != CODEC:
            qs = [r["quality"] for r in g if r.get("quality") is not None]
            entry["quality_min"] = min(qs) if qs else None
            entry["quality_max"] = max(qs) if qs else None
            entry["over_target"] = sum(1 for r in g if r.get("over_target"))
        else:
            entry["over_target"] = 0
        out.append(entry)
    return out


def _num(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, fmt)


def _setting_label(e: dict[str, Any]) -> str:
    s = e["setting"]
    if e["codec"] != CODEC and e.get("quality_min") is not None:
        lo, hi = e["quality_min"], e["quality_max"]
        s += f" (q={lo})" if lo == hi else f" (q={lo}-{hi})"
    return s


def format_markdown_table(summary: dict | list) -> str:
    """Markdown table of a summary (the dict :func:`run_bench` returns, or its ``settings`` list)."""
    settings = summary.get("settings", []) if isinstance(summary, dict) else list(summary)
    lines = [
        "| codec | setting | bpp | PSNR (dB) | PSNR-Y (dB) | MS-SSIM | enc (s) | dec (s) | n | over target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in settings:
        lines.append(
            f"| {e['codec']} | {_setting_label(e)} | {_num(e.get('mean_bpp'), '.4f')} | "
            f"{_num(e.get('mean_psnr'), '.2f')} | {_num(e.get('mean_psnr_y'), '.2f')} | "
            f"{_num(e.get('mean_ms_ssim'), '.4f')} | {_num(e.get('mean_encode_s'), '.3f')} | "
            f"{_num(e.get('mean_decode_s'), '.3f')} | {e.get('n_images', 0)} | {e.get('over_target', 0)} |"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- plots & HTML

def _plot_rd(path: Path, settings: list[dict[str, Any]], key: str, ylabel: str, title: str) -> None:
    # A bare Figure renders PNG with the Agg canvas and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    curves: dict[str, list[tuple[float, float]]] = {}
    for e in settings:
        label = e["codec"]
        if e["codec"] == CODEC and "+" in e["setting"]:
            label = f"{CODEC} +{e['setting'].split('+', 1)[1]}"
        x, y = e.get("mean_bpp"), e.get(key)
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        curves.setdefault(label, []).append((x, y))

    fig = Figure(figsize=(6.4, 4.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    markers = "os^Dvx*P"
    for i, (label, pts) in enumerate(curves.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)], label=label,
                linewidth=2.0 if label == CODEC else 1.3)
    if not curves:
        ax.text(0.5, 0.5, "no finite values to plot" + (" (MS-SSIM needs images > 160 px)" if "ms_ssim" in key
                                                       else ""), ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("rate [bits per pixel]")
    ax.set_ylabel(ylabel)
    ax.set_title(title + " (means over images; baselines at matched file size)", fontsize=9)
    ax.grid(True, alpha=0.4)
    if curves:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _atomic_write_bytes(path, buf.getvalue())


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0} td.l{text-align:left}
.plots img{max-width:48%;margin-right:1%}
.row{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:1.5em}
figure{margin:0;font-size:12px;text-align:center}
figure img{image-rendering:pixelated;display:block;border:1px solid #ddd}
.meta{font-size:12px;color:#555}
"""


def _write_report(path: Path, summary: dict[str, Any], gallery: list[dict[str, Any]]) -> None:
    esc = html.escape
    m = summary["machine"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>diffcodec benchmark: {esc(summary['method'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>diffcodec benchmark: method {esc(summary['method'])}</h1>",
        '<p class="meta">'
        f"{summary['n_images']} images; presets {esc(', '.join(summary['presets']))}; baselines "
        f"{esc(', '.join(summary['baselines']) or 'none')} (each at the largest file not exceeding the diffcodec "
        f"file). Date (UTC) {esc(summary['date_utc'])}; {esc(str(m.get('platform')))}, {m.get('cpu_count')} CPUs, "
        f"torch {esc(str(m.get('torch')))} ({m.get('torch_threads')} threads), Pillow {esc(str(m.get('pillow')))}; "
        f"wall time {summary.get('wall_s', 0):.1f} s."
        + (f"<br>Command: <code>{esc(summary['command'])}</code>" if summary.get("command") else "")
        + "</p>",
        "<h2>Summary (means over images)</h2>",
        "<table><tr><th>codec</th><th>setting</th><th>bpp</th><th>payload bpp</th><th>PSNR (dB)</th>"
        "<th>PSNR-Y (dB)</th><th>SSIM</th><th>MS-SSIM</th><th>enc (s)</th><th>dec (s)</th><th>n</th>"
        "<th>over target</th></tr>",
    ]
    for e in summary["settings"]:
        parts.append(
            f"<tr><td class=l>{esc(e['codec'])}</td><td class=l>{esc(_setting_label(e))}</td>"
            f"<td>{_num(e.get('mean_bpp'), '.4f')}</td><td>{_num(e.get('mean_payload_bpp'), '.4f')}</td>"
            f"<td>{_num(e.get('mean_psnr'), '.2f')}</td><td>{_num(e.get('mean_psnr_y'), '.2f')}</td>"
            f"<td>{_num(e.get('mean_ssim'), '.4f')}</td><td>{_num(e.get('mean_ms_ssim'), '.4f')}</td>"
            f"<td>{_num(e.get('mean_encode_s'), '.3f')}</td><td>{_num(e.get('mean_decode_s'), '.3f')}</td>"
            f"<td>{e.get('n_images')}</td><td>{e.get('over_target')}</td></tr>"
        )
    parts.append("</table>")
    parts.append('<h2>Rate-distortion</h2><div class="plots">'
                 '<img src="rd_psnr.png" alt="bpp vs PSNR"><img src="rd_msssim.png" alt="bpp vs MS-SSIM"></div>')
    if gallery:
        size = summary["crop"]["size"]
        parts.append(f"<h2>Crops</h2><p class=meta>{size}x{size} px from the image centre (top = (H - {size}) // 2,"
                     f" left = (W - {size}) // 2), first {len(gallery)} images, shown at 1:1.</p>")
    for g in gallery:
        h, w = g["size"]
        top, left, ch, cw = g["crop"]
        parts.append(f"<h3>{esc(g['image'])} <span class=meta>({w}x{h}, crop at x={left}, y={top})</span></h3>")
        parts.append('<div class="row">')
        for codec, setting, src, row in g["entries"]:
            if row is None:
                cap = "original"
            else:
                cap = (f"{esc(codec)} {esc(setting)}<br>{_num(row['bpp'], '.3f')} bpp, "
                       f"{_num(row['psnr'], '.2f')} dB, MS-SSIM {_num(row['ms_ssim'], '.4f')}")
                if row.get("over_target"):
                    cap += "<br><b>over target</b>"
            parts.append(f'<figure><img src="{esc(src)}" width="{cw}" height="{ch}" alt="{esc(codec)} '
                         f'{esc(setting)}"><figcaption>{cap}</figcaption></figure>')
        parts.append("</div>")
    parts.append("</body></html>\n")
    _atomic_write_text(path, "\n".join(parts))
