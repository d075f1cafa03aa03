"""BD-rate / BD-quality over several bench runs taken together (a curve whose points were run one bench each, as
benchmarks/ddcm_kodak24.sh does): the rows of every results.csv given are pooled, each codec's points per image form
its curve, and diffcodec.bench.bd_summary compares every curve with the anchor (per image, PCHIP, then the mean).

    python benchmarks/bd_from_results.py bench-out/ddcm-kodak24/auto-*/ --anchor jpeg

Pass the runs of one method (and mode) only: every "diffcodec" row pooled is one curve.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffcodec.bench import bd_summary  # noqa: E402
from diffcodec.bench_report import QUALITY_HEADINGS  # noqa: E402
from diffcodec.perceptual import METRICS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path, help="bench output folders (or results.csv files)")
    ap.add_argument("--anchor", default="jpeg")
    args = ap.parse_args()
    rows, columns = [], ["psnr", "ms_ssim"]
    for run in args.runs:
        path = run / "results.csv" if run.is_dir() else run
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                row = {"image": r["image"], "codec": r["codec"], "setting": r["setting"], "bpp": float(r["bpp"])}
                for col in ["psnr", "ms_ssim", *[c for m in METRICS.values() for c in m.columns]]:
                    if r.get(col) not in (None, "", "inf", "nan"):
                        row[col] = float(r[col])
                        if col not in columns:
                            columns.append(col)
                rows.append(row)
    print(f"| codec | metric | BD-rate vs {args.anchor} (%) | BD-quality | images (rate / quality) |")
    print("|---|---|---:|---:|---:|")
    for b in bd_summary(rows, args.anchor, columns):
        fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
        print(f"| {b['codec']} | {QUALITY_HEADINGS.get(b['metric'], b['metric'])} | {fmt(b['bd_rate'], '+.2f')} | "
              f"{fmt(b['bd_quality'], '+.4f')} | {b['n_rate']} / {b['n_quality']} of {b['n_images']} |")


if __name__ == "__main__":
    main()
