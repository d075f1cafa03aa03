"""BD-rate of a method's clips with P-frames against its own intra clips (issue #16's first target), from two
`diffcodec bench --video` output trees (every results.csv in a folder named after the clip, at any depth: one run
per rate point works too), and of the P-frame clips against the GOP-matched x264 rows of the same runs.

    python benchmarks/bd_inter_vs_intra.py benchmarks/results/video-opq benchmarks/results/video-opq-gop12
    python benchmarks/bd_inter_vs_intra.py INTRA INTER --extra-bytes bus_cif=611 ...   # ours as if N bytes larger

``--extra-bytes CLIP=N`` adds N bytes to every clip of ours named CLIP (its rate recomputed from the clip's
duration) before the BD-rates: e.g. the SEI message x264 writes and a clip on an H.264 base drops.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from diffcodec.bench_video import bd_rate

METRICS = ("psnr_yuv", "psnr_y", "vmaf", "ms_ssim_y")


def clip_files(root: Path, clip: str) -> list[Path]:
    return sorted(f for f in root.rglob("results.csv") if f.parent.name == clip)


EXTRA_BYTES: dict[str, int] = {}


def rows(root: Path, clip: str, codec: str = "diffcodec") -> list[dict]:
    out = {}
    for f in clip_files(root, clip):
        for r in csv.DictReader(f.open()):
            if r["codec"] == codec and not r["error"]:
                out[(r["setting"], r["bytes"])] = r        # the same baseline encode appears once
    extra = EXTRA_BYTES.get(clip, 0) if codec == "diffcodec" else 0
    if extra:
        out = {k: {**r, "kbps": str(float(r["kbps"]) * (int(r["bytes"]) + extra) / int(r["bytes"]))}
               for k, r in out.items()}
    return sorted(out.values(), key=lambda r: float(r["kbps"]))


def bd_cells(a: list[dict], b: list[dict]) -> list[str]:
    cells = []
    for metric in METRICS:
        res = bd_rate([float(r["kbps"]) for r in a], [float(r[metric]) for r in a],
                      [float(r["kbps"]) for r in b], [float(r[metric]) for r in b])
        cells.append("n/a (no overlap)" if res is None else
                     f"{res['bd_rate_pct']:+.1f}% [{res['quality_range'][0]:.1f}-{res['quality_range'][1]:.1f}]")
    return cells


def main(intra_root: str, inter_root: str) -> None:
    clips = sorted({f.parent.name for f in Path(inter_root).rglob("results.csv")})
    print("| clip | intra points | P-frame points | BD-rate PSNR-YUV | BD-rate PSNR-Y | BD-rate VMAF | "
          "BD-rate MS-SSIM (Y) |")
    print("|---|---:|---:|---|---|---|---|")
    for clip in clips:
        a, b = rows(Path(intra_root), clip), rows(Path(inter_root), clip)
        print(f"| {clip} | {len(a)} | {len(b)} | " + " | ".join(bd_cells(a, b)) + " |")
    print()
    print("| clip | anchor (GOP-matched, same runs) | points | BD-rate PSNR-YUV | BD-rate PSNR-Y | BD-rate VMAF | "
          "BD-rate MS-SSIM (Y) |")
    print("|---|---|---:|---|---|---|---|")
    for clip in clips:
        ours = rows(Path(inter_root), clip)
        for anchor in ("x264-medium", "x264-veryslow-psnr"):
            base = rows(Path(inter_root), clip, anchor)
            if base:
                print(f"| {clip} | {anchor} | {len(base)} | " + " | ".join(bd_cells(base, ours)) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    while "--extra-bytes" in args:
        i = args.index("--extra-bytes")
        name, n = args[i + 1].split("=")
        EXTRA_BYTES[name] = int(n)
        del args[i:i + 2]
    main(*args[:2])
