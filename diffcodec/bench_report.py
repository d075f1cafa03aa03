"""What a benchmark writes, from its rows: per-setting means (:func:`summarize`), the CSV (:func:`csv_text`),
the markdown table (:func:`format_markdown_table`), the rate-distortion plots (:func:`rd_plot_png`) and the
HTML report (:func:`report_html`). Pure functions returning text or bytes; :func:`diffcodec.bench.write_outputs`
writes them (atomically). Conventions are in :mod:`diffcodec.bench`."""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Any, Sequence

import numpy as np

CODEC = "diffcodec"

CSV_COLUMNS = [
    "image", "codec", "setting", "bytes", "bpp", "payload_bpp", "psnr", "psnr_y", "ssim", "ms_ssim",
    "encode_s", "decode_s", "compression_ratio", "matched_to", "over_target", "peak_rss_mb",
    # extra columns
    "width", "height", "quality", "search_s",
]


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

def rd_plot_png(settings: list[dict[str, Any]], key: str, ylabel: str, title: str, *, x_key: str = "mean_bpp",
                xlabel: str = "rate [bits per pixel]",
                note: str = "means over images; baselines at matched file size") -> bytes:
    """A rate-distortion plot (`x_key`, mean bpp by default, vs `key`; one curve per codec and extra decode
    setting) as PNG bytes."""
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
    markers = "os^Dvx*P"
    for i, (label, pts) in enumerate(curves.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)], label=label,
                linewidth=2.0 if label == CODEC else 1.3)
    if not curves:
        ax.text(0.5, 0.5, "no finite values to plot" + (" (MS-SSIM needs images > 160 px)" if "ms_ssim" in key
                                                       else ""), ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" ({note})" if note else ""), fontsize=9)
    ax.grid(True, alpha=0.4)
    if curves:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


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
    return "\n".join(parts)
