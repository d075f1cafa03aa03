"""Which mode ddcm's automatic `--bpp` rule picked per image in a `diffcodec bench` run, and how each mode's
images fare against the baselines matched to them.

For every image of a bench folder made by `benchmarks/ddcm_kodak24.sh auto` (results.csv + summary.json),
the rule is re-run without coding (`DDCMCodec._params`: it codes the opq base layer and picks N, K, M), then
the diffcodec rows are grouped by mode: latent, or conditional on an opq base. Per group: images, mean bpp,
PSNR, MS-SSIM, and per baseline the mean PSNR / MS-SSIM of its matched files and on how many images ddcm has
the higher MS-SSIM.

    python benchmarks/ddcm_auto_modes.py bench-out/ddcm-kodak24/auto-bpp0.3 [...] > modes.md
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from diffcodec.data import load_image_rgb
from diffcodec.methods.ddcm import DDCMCodec


def modes(folder: Path) -> tuple[float, list[dict]]:
    s = json.loads((folder / "summary.json").read_text())
    params = s["encode_params"]
    paths = {Path(p).name: Path(p) for p in s["images"]}
    rows = list(csv.DictReader(open(folder / "results.csv")))
    codec = DDCMCodec()
    out = []
    for r in (r for r in rows if r["codec"] == "diffcodec"):
        img = load_image_rgb(paths[r["image"]])
        p, _, _ = codec._params(img, None, {k: v for k, v in params.items() if k != "device"} | {"device": "cpu"})
        mode = f"base {p.base}" if p.base else p.space
        base = {b["codec"]: b for b in rows if b["image"] == r["image"] and b["codec"] != "diffcodec"}
        out.append({"image": r["image"], "mode": mode, "n": p.steps, "m": p.atoms, "row": r, "baselines": base})
    return float(params["bpp"]), out


def main(folders: list[str]) -> None:
    torch.set_num_threads(1)
    print("| target | mode | images | N | bpp | PSNR | MS-SSIM | vs JPEG: PSNR / MS-SSIM (ddcm MS-SSIM higher on) "
          "| WebP | AVIF |")
    print("|---|---|---:|---|---:|---:|---:|---|---|---|")
    for f in folders:
        target, items = modes(Path(f))
        groups = defaultdict(list)
        for it in items:
            groups[it["mode"]].append(it)
        for mode, its in sorted(groups.items()):
            mean = lambda key, rs: np.mean([float(r[key]) for r in rs])  # noqa: E731
            mine = [it["row"] for it in its]
            ns = sorted({it["n"] for it in its})
            cells = [f"{target:g}", mode, str(len(its)), f"{ns[0]}-{ns[-1]}" if len(ns) > 1 else str(ns[0]),
                     f"{mean('bpp', mine):.4f}", f"{mean('psnr', mine):.2f}", f"{mean('ms_ssim', mine):.4f}"]
            for b in ("jpeg", "webp", "avif"):
                theirs = [it["baselines"][b] for it in its if b in it["baselines"]]
                wins = sum(float(it["row"]["ms_ssim"]) > float(it["baselines"][b]["ms_ssim"])
                           for it in its if b in it["baselines"])
                cells.append(f"{mean('psnr', theirs):.2f} / {mean('ms_ssim', theirs):.4f} ({wins} of {len(theirs)})"
                             if theirs else "-")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
