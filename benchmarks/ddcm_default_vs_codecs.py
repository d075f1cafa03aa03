"""The default ddcm mode (`--bpp` alone) against JPEG / WebP / AVIF per rate point, from `diffcodec bench` folders
(one per target): means over all images, and over the images where the baseline could get at or under our file
(the others show the baseline's smallest file, which is larger than ours), plus which base each image took.

    python benchmarks/ddcm_default_vs_codecs.py benchmarks/results/ddcm-kodak24-auto-codec-bpp*

and, where the rows have them, the same for SSIMULACRA 2 and Butteraugli.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def mode_of(coded: str) -> str:
    """'n1-k4096-m1 pixel base avif:q7 bf16' -> 'avif base, refined'; '... en4 bf16' -> 'avif base, refined en4';
    'base avif:q73 alone' -> 'avif base alone'."""
    words = coded.split()
    if "base" in words:
        base = words[words.index("base") + 1].split(":")[0]
        views = next((w for w in words if w.startswith("en") and w[2:].isdigit()), "")     # the free step's ensemble
        return f"{base} base" + (" alone" if words[-1] == "alone" else ", refined" + (f" {views}" if views else ""))
    return "latent" if "latent" in words else coded


def _gap(images: list[dict], codec: str, key: str) -> float:
    return float(np.mean([float(v["diffcodec"][key]) - float(v[codec][key]) for v in images]))


def _by_image(folders: list[str]):
    """(folder, {image: {codec: row}}) per bench folder, by rising target."""
    for folder in sorted(folders, key=lambda f: float(f.rsplit("bpp", 1)[1])):
        by: dict[str, dict[str, dict]] = {}
        for r in csv.DictReader((Path(folder) / "results.csv").open()):
            by.setdefault(r["image"], {})[r["codec"]] = r
        yield folder, by


CODECS = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}


def _codecs(folders: list[str]) -> list[str]:
    """The baselines the bench runs carry (all of them, or a single --vs)."""
    by = next(_by_image(folders))[1]
    return [c for c in CODECS if all(c in v for v in by.values())]


def main(folders: list[str]) -> None:
    codecs = _codecs(folders)
    print("| target | ours bpp / PSNR / MS-SSIM | modes | " + " | ".join(f"vs {CODECS[c]} (n)" for c in codecs) + " |")
    print("|---|---|---|" + "---|" * len(codecs))
    for folder, by in _by_image(folders):
        ours = [v["diffcodec"] for v in by.values()]
        cells = []
        for codec in codecs:
            fit = [v for v in by.values() if v[codec]["over_target"] == "false"]
            dp, dm = (_gap(fit, codec, "psnr"), _gap(fit, codec, "ms_ssim")) if fit else (np.nan, np.nan)
            cells.append(f"{dp:+.2f} dB / {dm:+.4f} ({len(fit)})")
        modes = Counter(mode_of(r["coded"]) for r in ours)
        target = folder.rsplit("bpp", 1)[1]
        print(f"| {target} | {np.mean([float(r['bpp']) for r in ours]):.4f} / "
              f"{np.mean([float(r['psnr']) for r in ours]):.2f} / {np.mean([float(r['ms_ssim']) for r in ours]):.4f} | "
              + ", ".join(f"{k} {n}" for k, n in modes.most_common()) + " | " + " | ".join(cells) + " |")


def metric_table(folders: list[str], column: str, title: str) -> None:
    """A perceptual metric of the bench rows (``column``; where the runs carry it) of ours against each baseline on
    the images where it fits: ours minus the baseline (SSIMULACRA 2: higher is better; Butteraugli: lower)."""
    codecs = _codecs(folders)
    rows = []
    for folder, by in _by_image(folders):
        if not all(v["diffcodec"].get(column) for v in by.values()):
            continue
        cells = []
        for codec in codecs:
            fit = [v for v in by.values() if v[codec]["over_target"] == "false"]
            cells.append(f"{_gap(fit, codec, column):+.3f} ({len(fit)})" if fit else "n/a")
        ours = np.mean([float(v["diffcodec"][column]) for v in by.values()])
        rows.append(f"| {folder.rsplit('bpp', 1)[1]} | {ours:.3f} | " + " | ".join(cells) + " |")
    if rows:
        print()
        print(f"| target | ours {title} | " + " | ".join(f"vs {CODECS[c]} (n)" for c in codecs) + " |")
        print("|---|---:|" + "---|" * len(codecs))
        print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
    metric_table(sys.argv[1:], "ssimulacra2", "SSIMULACRA 2")
    metric_table(sys.argv[1:], "butteraugli", "Butteraugli max")
    metric_table(sys.argv[1:], "butteraugli_3norm", "Butteraugli 3-norm")
