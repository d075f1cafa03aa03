"""What a benchmark writes, from its rows: per-setting means (:func:`summarize`), the CSV (:func:`csv_text`),
the markdown table (:func:`format_markdown_table`), the rate-distortion plots (:func:`rd_plot_png`) and the
HTML report (:func:`report_html`). Pure functions returning text or bytes; :func:`diffcodec.bench.write_outputs`
writes them (atomically). Conventions are in :mod:`diffcodec.bench`."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

CODEC = "diffcodec"

CSV_COLUMNS = [
    "image", "codec", "setting", "bytes", "bpp", "payload_bpp", "psnr", "psnr_y", "ssim", "ms_ssim",
    "encode_s", "decode_s", "compression_ratio", "matched_to", "over_target", "peak_rss_mb",
    # extra columns
    "width", "height", "quality", "search_s", "asked", "coded",
]

# Perceptual metric columns: (plot file, y label, title) of their rate-distortion plots, and their table headings.
METRIC_PLOTS: dict[str, tuple[str, str, str]] = {
    "ssimulacra2": ("rd_ssimulacra2.png", "SSIMULACRA 2 (higher is better)", "Rate-distortion: SSIMULACRA 2"),
    "butteraugli_3norm": ("rd_butteraugli.png", "Butteraugli 3-norm (lower is better)",
                          "Rate-distortion: Butteraugli 3-norm"),
    "lpips": ("rd_lpips.png", "LPIPS (lower is better)", "Rate-distortion: LPIPS"),
    "dists": ("rd_dists.png", "DISTS (lower is better)", "Rate-distortion: DISTS"),
}
METRIC_HEADINGS = {"ssimulacra2": ("SSIMULACRA2", ".2f"), "butteraugli": ("Butteraugli max", ".3f"),
                   "butteraugli_3norm": ("Butteraugli 3-norm", ".3f"), "lpips": ("LPIPS", ".4f"),
                   "dists": ("DISTS", ".4f")}
QUALITY_HEADINGS = {"psnr": "PSNR", "psnr_y": "PSNR-Y", "ms_ssim": "MS-SSIM", "ssim": "SSIM",
                    **{k: v[0] for k, v in METRIC_HEADINGS.items()}}
PUBLISHED = "published, not re-measured"

# One fixed look per codec in every plot, whatever else a run contains (so that plots compare side by side).
# Ours is always the thick blue line; variants of ours ("diffcodec +refine1") keep its colour with dashes.
CODEC_STYLES: dict[str, dict[str, Any]] = {
    CODEC: {"color": "#1f77b4", "marker": "o"},
    "jpeg": {"color": "#2ca02c", "marker": "s"},
    "jpeg444": {"color": "#98df8a", "marker": "s"},
    "webp": {"color": "#ff7f0e", "marker": "^"},
    "avif": {"color": "#d62728", "marker": "D"},
    "x264-medium": {"color": "#2ca02c", "marker": "s"},
    "x264-veryslow-psnr": {"color": "#17becf", "marker": "P"},
    "x264-medium-gop": {"color": "#7f7f7f", "marker": "x"},
    "x265-medium": {"color": "#9467bd", "marker": "v"},
    "svtav1-p8": {"color": "#d62728", "marker": "D"},
    "jxl": {"color": "#9467bd", "marker": "P"},
    "heic": {"color": "#8c564b", "marker": "v"},
    # published reference curves (benchmarks/published/kodak24.json), drawn dashed
    "bmshj2018-hyperprior (mse)": {"color": "#7f7f7f", "marker": "."},
    "mbt2018-mean (mse)": {"color": "#bcbd22", "marker": "."},
    "cheng2020-anchor (mse)": {"color": "#e377c2", "marker": "."},
    "VTM": {"color": "#000000", "marker": "."},
}
_SPARE_COLOURS = ("#8c564b", "#e377c2", "#bcbd22", "#aec7e8", "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2")
_SPARE_MARKERS = "*hp<>Xd8"


def codec_style(label: str) -> dict[str, Any]:
    """Matplotlib line style of a curve: fixed per codec (:data:`CODEC_STYLES`); ``"diffcodec +X"`` variants are
    ours dashed with their own marker; unknown names get a colour and marker from a hash of the name (stable
    across runs and independent of the other curves)."""
    import zlib

    if label in CODEC_STYLES:
        style = dict(CODEC_STYLES[label])
    elif label.startswith(CODEC + " "):
        h = zlib.crc32(label.encode())
        style = {"color": CODEC_STYLES[CODEC]["color"], "marker": _SPARE_MARKERS[h % len(_SPARE_MARKERS)],
                 "linestyle": ("--", "-.", ":")[h % 3]}
    else:
        h = zlib.crc32(label.encode())
        style = {"color": _SPARE_COLOURS[h % len(_SPARE_COLOURS)], "marker": _SPARE_MARKERS[h % len(_SPARE_MARKERS)]}
    style.setdefault("linestyle", "-")
    style["linewidth"] = 2.0 if label == CODEC else 1.3
    return style


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def json_clean(obj: Any) -> Any:
    """Replace NaN/inf by None (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {k: json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
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


def csv_text(rows: list[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> str:
    """The rows as CSV with ``columns`` (the image benchmark's by default; missing values are empty)."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(columns)
    for r in rows:
        wr.writerow([_fmt_csv(r.get(c)) for c in columns])
    return buf.getvalue()


def summarize(rows: list[dict[str, Any]], presets: Sequence[str] | None = None,
              extra_labels: Sequence[str] = (), baselines: Sequence[str] | None = None,
              metric_columns: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per (codec, setting) means (of the perceptual `metric_columns` too). Baseline rows are grouped by the preset
    they were matched to (setting "@P").

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
                  "compression_ratio", *metric_columns):
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
    asked = e.get("asked")
    if e["codec"] == CODEC and asked and asked not in s:       # what was asked, where the label does not say it
        s += f" ({asked})"
    if e["codec"] != CODEC and e.get("quality_min") is not None:
        lo, hi = e["quality_min"], e["quality_max"]
        s += f" (q={lo})" if lo == hi else f" (q={lo}-{hi})"
    return s


def _metric_columns(settings: list[dict[str, Any]]) -> list[str]:
    """The perceptual metric columns that these settings have means of, in :data:`METRIC_HEADINGS` order."""
    return [c for c in METRIC_HEADINGS if any(f"mean_{c}" in e for e in settings)]


def format_markdown_table(summary: dict | list) -> str:
    """Markdown table of a summary (the dict :func:`run_bench` returns, or its ``settings`` list), then the BD
    table and the published reference points when the summary has them."""
    settings = summary.get("settings", []) if isinstance(summary, dict) else list(summary)
    mcols = _metric_columns(settings)
    lines = [
        "| codec | setting | bpp | PSNR (dB) | PSNR-Y (dB) | MS-SSIM | "
        + "".join(f"{METRIC_HEADINGS[c][0]} | " for c in mcols) + "enc (s) | dec (s) | n | over target |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(mcols) + "---:|---:|---:|---:|",
    ]
    for e in settings:
        lines.append(
            f"| {e['codec']} | {_setting_label(e)} | {_num(e.get('mean_bpp'), '.4f')} | "
            f"{_num(e.get('mean_psnr'), '.2f')} | {_num(e.get('mean_psnr_y'), '.2f')} | "
            f"{_num(e.get('mean_ms_ssim'), '.4f')} | "
            + "".join(f"{_num(e.get(f'mean_{c}'), METRIC_HEADINGS[c][1])} | " for c in mcols)
            + f"{_num(e.get('mean_encode_s'), '.3f')} | "
            f"{_num(e.get('mean_decode_s'), '.3f')} | {e.get('n_images', 0)} | {e.get('over_target', 0)} |"
        )
    if isinstance(summary, dict) and summary.get("bd"):
        lines += ["", f"BD-rate and BD-quality against {summary['bd'][0]['anchor']} (per image, PCHIP, then the mean "
                  "over images; negative BD-rate = fewer bits for the same quality; for distances BD-quality is "
                  "how much lower):", "",
                  "| codec | metric | BD-rate (%) | BD-quality | images (rate / quality) |", "|---|---|---:|---:|---:|"]
        for b in summary["bd"]:
            lines.append(f"| {b['codec']} | {QUALITY_HEADINGS.get(b['metric'], b['metric'])} | "
                         f"{_num(b.get('bd_rate'), '+.2f')} | {_num(b.get('bd_quality'), '+.4f')} | "
                         f"{b.get('n_rate', 0)} / {b.get('n_quality', 0)} of {b.get('n_images', 0)} |")
    if isinstance(summary, dict) and summary.get("published"):
        datasets = "; ".join(sorted({str(p.get("dataset", "?")) for p in summary["published"]}))
        lines += ["", f"Reference curves on {datasets}, {PUBLISHED} (their source files in the rows):", "",
                  "| codec | bpp | PSNR (dB) | MS-SSIM | source |", "|---|---:|---:|---:|---|"]
        for pub in summary["published"]:
            for c in pub["curves"]:
                for i, b in enumerate(c["bpp"]):
                    lines.append(f"| {c['codec']} ({PUBLISHED}) | {b:.4f} | {_num(_at(c, 'psnr', i), '.2f')} | "
                                 f"{_num(_at(c, 'ms_ssim', i), '.4f')} | {_source(c)} |")
    return "\n".join(lines) + "\n"


def _at(curve: dict[str, Any], key: str, i: int) -> Any:
    v = curve.get(key)
    return v[i] if isinstance(v, list) and i < len(v) else None


def _source(curve: dict[str, Any]) -> str:
    s = curve.get("source", {})
    return f"{s.get('repository', '')} {s.get('path', '')} @{str(s.get('commit', ''))[:12]}".strip()


def load_published(path: str | os.PathLike) -> dict[str, Any]:
    """A published reference file (``benchmarks/published/*.json``): ``{"dataset", "curves": [{"codec", "source":
    {"repository", "path", "commit"}, "bpp": [...], "psnr": [...], "ms_ssim": [...]}]}``; UsageError when it is
    missing or malformed."""
    from diffcodec.errors import UsageError

    try:
        with open(path) as f:
            data = json.load(f)
        curves = data["curves"]
        for c in curves:
            n = len(c["bpp"])
            if not isinstance(c["codec"], str) or n < 1 or not c.get("source"):
                raise ValueError("each curve needs codec, source and bpp")
            for k, v in c.items():
                if k not in ("codec", "source", "bpp", "note") and (not isinstance(v, list) or len(v) != n):
                    raise ValueError(f"{c['codec']}: {k} has not one value per bpp point")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"published curves {str(path)!r}: {e}") from None
    return {"file": str(path), **data}



# ----------------------------------------------------------------------------------------------- plots & HTML

def rd_plot_png(settings: list[dict[str, Any]], key: str, ylabel: str, title: str, **kwargs: Any) -> bytes:
    """A rate-distortion plot (`x_key`, mean bpp by default, vs `key`; one curve per codec and extra decode
    setting, each in its :func:`codec_style`) as PNG bytes; keyword arguments as :func:`rd_figure`."""
    buf = io.BytesIO()
    rd_figure(settings, key, ylabel, title, **kwargs).savefig(buf, format="png")
    return buf.getvalue()


def rd_figure(settings: list[dict[str, Any]], key: str, ylabel: str, title: str, *, x_key: str = "mean_bpp",
              xlabel: str = "rate [bits per pixel]", note: str = "means over images; baselines at matched file size",
              published: Sequence[dict[str, Any]] = ()):
    """The matplotlib Figure of :func:`rd_plot_png`; `published` reference curves (:func:`load_published`) that
    have values of `key` are drawn dashed, labelled "published, not re-measured", over the measured rate range."""
    # A bare Figure renders PNG with the Agg canvas and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    curves: dict[str, list[tuple[float, float]]] = {}
    for e in settings:
        label = e["codec"]
        if e["codec"] == CODEC and "+" in e["setting"]:
            label = f"{CODEC} +{e['setting'].split('+', 1)[1]}"
        x, y = e.get(x_key), e.get(key)
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        curves.setdefault(label, []).append((x, y))

    fig = Figure(figsize=(6.4, 4.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for label, pts in curves.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **codec_style(label))
    if curves and published:
        _draw_published(ax, published, key, [p[0] for pts in curves.values() for p in pts])
    if not curves:
        ax.text(0.5, 0.5, "no finite values to plot" + (" (MS-SSIM needs images > 160 px)" if "ms_ssim" in key
                                                       else ""), ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" ({note})" if note else ""), fontsize=9)
    ax.grid(True, alpha=0.4)
    if curves:
        crowded = len(ax.get_lines()) > 5
        ax.legend(fontsize=7 if crowded else None, framealpha=0.7 if crowded else None)
    fig.tight_layout()
    return fig


def _draw_published(ax: Any, published: Sequence[dict[str, Any]], key: str, xs: list[float]) -> None:
    """Published curves with values of `key` (``mean_psnr`` -> ``psnr``), dashed, clipped to the measured rate
    range (plus the nearest point outside it on each side, so a line crosses the frame); x limits stay measured."""
    metric = key[5:] if key.startswith("mean_") else key
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.05 or lo * 0.05
    for pub in published:
        for c in pub["curves"]:
            ys = c.get(metric)
            if not isinstance(ys, list):
                continue
            pts = sorted((b, y) for b, y in zip(c["bpp"], ys) if y is not None)
            inside = [i for i, (b, _) in enumerate(pts) if lo <= b <= hi]
            if inside:
                keep = pts[max(inside[0] - 1, 0):inside[-1] + 2]
            else:
                below = [p for p in pts if p[0] < lo][-1:]
                above = [p for p in pts if p[0] > hi][:1]
                keep = below + above if below and above else []
            if len(keep) < 2:
                continue
            style = codec_style(c["codec"])
            ax.plot([p[0] for p in keep], [p[1] for p in keep], label=f"{c['codec']} ({PUBLISHED})",
                    color=style["color"], marker=".", linestyle="--", linewidth=1.0)
    ax.set_xlim(lo - pad, hi + pad)


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


def report_html(summary: dict[str, Any], gallery: list[dict[str, Any]]) -> str:
    esc = html.escape
    m = summary["machine"]
    mcols = _metric_columns(summary["settings"])
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
        "<th>PSNR-Y (dB)</th><th>SSIM</th><th>MS-SSIM</th>"
        + "".join(f"<th>{esc(METRIC_HEADINGS[c][0])}</th>" for c in mcols)
        + "<th>enc (s)</th><th>dec (s)</th><th>n</th><th>over target</th></tr>",
    ]
    for e in summary["settings"]:
        parts.append(
            f"<tr><td class=l>{esc(e['codec'])}</td><td class=l>{esc(_setting_label(e))}</td>"
            f"<td>{_num(e.get('mean_bpp'), '.4f')}</td><td>{_num(e.get('mean_payload_bpp'), '.4f')}</td>"
            f"<td>{_num(e.get('mean_psnr'), '.2f')}</td><td>{_num(e.get('mean_psnr_y'), '.2f')}</td>"
            f"<td>{_num(e.get('mean_ssim'), '.4f')}</td><td>{_num(e.get('mean_ms_ssim'), '.4f')}</td>"
            + "".join(f"<td>{_num(e.get(f'mean_{c}'), METRIC_HEADINGS[c][1])}</td>" for c in mcols)
            + f"<td>{_num(e.get('mean_encode_s'), '.3f')}</td><td>{_num(e.get('mean_decode_s'), '.3f')}</td>"
            f"<td>{e.get('n_images')}</td><td>{e.get('over_target')}</td></tr>"
        )
    for pub in summary.get("published") or ():
        for c in pub["curves"]:
            for i, b in enumerate(c["bpp"]):
                parts.append(
                    f"<tr><td class=l><i>{esc(c['codec'])}</i></td><td class=l><i>{PUBLISHED}: "
                    f"{esc(_source(c))}</i></td><td>{b:.4f}</td><td></td><td>{_num(_at(c, 'psnr', i), '.2f')}</td>"
                    f"<td></td><td></td><td>{_num(_at(c, 'ms_ssim', i), '.4f')}</td>" + "<td></td>" * len(mcols)
                    + "<td></td><td></td><td></td><td></td></tr>")
    parts.append("</table>")
    if summary.get("bd"):
        parts.append(f"<h2>BD-rate and BD-quality against {esc(str(summary['bd'][0]['anchor']))}</h2>"
                     "<p class=meta>Per image (each image's curve over the settings, piecewise cubic Hermite "
                     "interpolation as in the JCT-VC/JVET sheets), then the mean over the images where it is defined. "
                     "Negative BD-rate = fewer bits for the same quality; for distances (Butteraugli, LPIPS, DISTS) "
                     "BD-quality is how much lower the distance is.</p>"
                     "<table><tr><th>codec</th><th>metric</th><th>BD-rate (%)</th><th>BD-quality</th>"
                     "<th>images (rate / quality)</th></tr>")
        for b in summary["bd"]:
            parts.append(f"<tr><td class=l>{esc(b['codec'])}</td><td class=l>"
                         f"{esc(QUALITY_HEADINGS.get(b['metric'], b['metric']))}</td>"
                         f"<td>{_num(b.get('bd_rate'), '+.2f')}</td><td>{_num(b.get('bd_quality'), '+.4f')}</td>"
                         f"<td>{b.get('n_rate', 0)} / {b.get('n_quality', 0)} of {b.get('n_images', 0)}</td></tr>")
        parts.append("</table>")
    plots = [("rd_psnr.png", "bpp vs PSNR"), ("rd_msssim.png", "bpp vs MS-SSIM")]
    plots += [(METRIC_PLOTS[c][0], f"bpp vs {c}") for c in mcols if c in METRIC_PLOTS]
    parts.append('<h2>Rate-distortion</h2><div class="plots">'
                 + "".join(f'<img src="{f}" alt="{esc(alt)}">' for f, alt in plots) + "</div>")
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
                if row.get("ssimulacra2") is not None:
                    cap += f", SSIMULACRA2 {_num(row['ssimulacra2'], '.1f')}"
                if row.get("over_target"):
                    cap += "<br><b>over target</b>"
            parts.append(f'<figure><img src="{esc(src)}" width="{cw}" height="{ch}" alt="{esc(codec)} '
                         f'{esc(setting)}"><figcaption>{cap}</figcaption></figure>')
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
