"""One markdown table from several `diffcodec bench` output folders (each a summary.json): per diffcodec
setting, its mean bpp / PSNR / MS-SSIM / seconds, and each baseline matched to it (mean bpp, PSNR, MS-SSIM;
images where the baseline could not get small enough are counted in `over`).

    python benchmarks/summarize_benches.py bench-out/ddcm-latent-* > table.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(folder: Path):
    s = json.loads((folder / "summary.json").read_text())
    mine = [e for e in s["settings"] if e["codec"] == "diffcodec"]
    for e in mine:
        label = folder.name if len(mine) == 1 else f"{folder.name}/{e['setting']}"
        base = {b["codec"]: b for b in s["settings"]
                if b["codec"] != "diffcodec" and b["setting"] == f"@{e['setting']}"}
        yield label, s, e, base


def main(folders: list[str]) -> None:
    out = []
    baselines: list[str] = []
    for f in folders:
        for label, s, e, base in rows(Path(f)):
            baselines += [b for b in base if b not in baselines]
            out.append((label, s, e, base))
    head = "| setting | n | bpp | PSNR | MS-SSIM | enc s | dec s | " + " | ".join(
        f"{b} bpp / PSNR / MS-SSIM (over)" for b in baselines) + " |"
    print(head)
    print("|" + "---|" * (7 + len(baselines)))
    for label, _, e, base in out:
        cells = [label, str(e["n_images"]), f"{e['mean_bpp']:.4f}", f"{e['mean_psnr']:.2f}",
                 f"{e['mean_ms_ssim']:.4f}", f"{e['mean_encode_s']:.1f}", f"{e['mean_decode_s']:.1f}"]
        for b in baselines:
            x = base.get(b)
            cells.append("-" if x is None else
                         f"{x['mean_bpp']:.4f} / {x['mean_psnr']:.2f} / {x['mean_ms_ssim']:.4f} ({x['over_target']})")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
