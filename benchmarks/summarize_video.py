"""Markdown tables for benchmarks/RESULTS.md from the video benchmark folders (issue #14).

    python benchmarks/summarize_video.py benchmarks/results/video-opq [benchmarks/results/video-diffae ...]

Each folder holds one sub-folder per clip written by `diffcodec bench --video` (benchmarks/video_intra.sh); the
tables read their summary.json only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from diffcodec.bench_video import BD_ANCHOR, OURS

CONFIGS = ["x264-medium", "x264-veryslow-psnr", "x265-medium", "svtav1-p8", "x264-medium-gop"]


def num(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def bd(res):
    if res is None:
        return "n/a"
    lo, hi = res["quality_range"]
    return f"{res['bd_rate_pct']:+.0f}% ({lo:.1f}-{hi:.1f})"


def load(folder: Path):
    for s in sorted(folder.glob("*/summary.json")):
        yield json.loads(s.read_text())


def main(folders):
    for folder in map(Path, folders):
        summaries = list(load(folder))
        if not summaries:
            continue
        method = summaries[0]["method"]
        print(f"\n#### {method}: BD-rate against {BD_ANCHOR} (keyint 1), and speed\n")
        print("| clip | frames | RGB ceiling PSNR-Y | our PSNR-Y range | BD-rate PSNR-Y | BD-rate PSNR-YUV "
              "| BD-rate VMAF | BD-rate PSNR-Y vs x264 veryslow / x265 / SVT-AV1 (size-matched points only) "
              "| our enc fps | our dec fps |")
        print("|---|---:|---:|---|---|---|---|---|---|---|")
        for s in summaries:
            for c in s["clips"]:
                rows = [r for r in s["rows"] if r["clip"] == c["name"]]
                ours = [r for r in rows if r["codec"] == OURS and not r.get("error")]
                b = {e["anchor"]: e for e in c["bd_rate"]}
                others = " / ".join(bd(b[n]["psnr_y"]) if n in b else "-" for n in CONFIGS[1:4])
                a = b.get(BD_ANCHOR, {})
                ys = [r["psnr_y"] for r in ours]
                ef = [r["encode_fps"] for r in ours]
                df = [r["decode_fps"] for r in ours]
                print(f"| {c['name']} | {c['frames']} | {num(c['rgb_ceiling']['psnr_y'], '.2f')} | "
                      f"{min(ys):.2f}-{max(ys):.2f} | {bd(a.get('psnr_y'))} | {bd(a.get('psnr_yuv'))} | "
                      f"{bd(a.get('vmaf'))} | {others} | {min(ef):.1f}-{max(ef):.1f} | {min(df):.1f}-{max(df):.1f} |")
        print(f"\n#### {method}: every rate point (PSNR-Y dB / VMAF; baselines at the highest quality not larger "
              "than our file)\n")
        print("| clip | ours | kbps | ours | " + " | ".join(CONFIGS) + f" | {BD_ANCHOR} at our PSNR-Y: kbps |")
        print("|---|---|---:|---|" + "---|" * len(CONFIGS) + "---:|")
        for s in summaries:
            for c in s["clips"]:
                rows = [r for r in s["rows"] if r["clip"] == c["name"]]
                for o in (r for r in rows if r["codec"] == OURS):
                    if o.get("error"):
                        print(f"| {c['name']} | {o['setting']} | failed: {o['error']} |" + " |" * (len(CONFIGS) + 2))
                        continue
                    cells = []
                    for n in CONFIGS:
                        m = next((r for r in rows if r["codec"] == n and r.get("matched_to") == o["setting"]), None)
                        cells.append("-" if m is None else
                                     f"{m['psnr_y']:.2f} / {num(m.get('vmaf'), '.1f')}"
                                     + (" (over)" if m.get("over_target") else ""))
                    q = next((r for r in rows if r.get("matched_to") == f"psnr@{o['setting']}"), None)
                    qtxt = "-" if q is None else f"{q['kbps']:.0f}" + (
                        " (PSNR not reached)" if q.get("over_target") else
                        " (its lowest rate, CRF 51, is already above)" if q.get("quality") == 51 else "")
                    print(f"| {c['name']} | {o['setting']} | {o['kbps']:.0f} | {o['psnr_y']:.2f} / "
                          f"{num(o.get('vmaf'), '.1f')} | " + " | ".join(cells) + f" | {qtxt} |")


if __name__ == "__main__":
    main(sys.argv[1:])
