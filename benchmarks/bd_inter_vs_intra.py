"""BD-rate of a method's clips with P-frames against its own intra clips (issue #16's first target), from two
`diffcodec bench --video` output folders per clip (results.csv: the `diffcodec` rows).

    python benchmarks/bd_inter_vs_intra.py benchmarks/results/video-opq benchmarks/results/video-opq-gop12
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from diffcodec.bench_video import bd_rate


def ours(folder: Path) -> list[dict]:
    rows = [r for r in csv.DictReader((folder / "results.csv").open()) if r["codec"] == "diffcodec" and not r["error"]]
    return sorted(rows, key=lambda r: float(r["kbps"]))


def main(intra_root: str, inter_root: str) -> None:
    print("| clip | intra points | P-frame points | BD-rate PSNR-YUV | BD-rate PSNR-Y | BD-rate VMAF |")
    print("|---|---:|---:|---|---|---|")
    for clip in sorted(p.name for p in Path(inter_root).iterdir() if (p / "results.csv").exists()):
        a, b = ours(Path(intra_root) / clip), ours(Path(inter_root) / clip)
        cells = []
        for metric in ("psnr_yuv", "psnr_y", "vmaf"):
            res = bd_rate([float(r["kbps"]) for r in a], [float(r[metric]) for r in a],
                          [float(r["kbps"]) for r in b], [float(r[metric]) for r in b])
            cells.append("n/a (no overlap)" if res is None else
                         f"{res['bd_rate_pct']:+.1f}% [{res['quality_range'][0]:.1f}-{res['quality_range'][1]:.1f}]")
        print(f"| {clip} | {len(a)} | {len(b)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
