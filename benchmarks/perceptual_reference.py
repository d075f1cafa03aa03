"""Reprint the libjxl reference scores of tests/test_perceptual.py (LIBJXL_0_11_2) with libjxl's own tools, and
compare diffcodec.perceptual.ssimulacra2 with them.

    benchmarks/libjxl_tools.sh            # Debian 12: libjxl 0.11's tools into .libjxl/
    python benchmarks/perceptual_reference.py [--tools .libjxl] [--images ../shared/data/kodak]

With --images, it also scores JPEG q5/q30/q80, a Gaussian blur and Gaussian noise of the first three images there
(the check reported in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from diffcodec.perceptual import ssimulacra2  # noqa: E402


def tool_scores(tools: Path, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        pa, pb = f"{tmp}/a.png", f"{tmp}/b.png"
        Image.fromarray(a).save(pa)
        Image.fromarray(b).save(pb)
        s2 = float(subprocess.run([str(tools / "ssimulacra2"), pa, pb], capture_output=True, text=True,
                                  check=True).stdout)
        bu = subprocess.run([str(tools / "butteraugli_main"), pa, pb, "--pnorm", "3"], capture_output=True,
                            text=True, check=True).stdout.split()
    return s2, float(bu[0]), float(bu[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", type=Path, default=ROOT / ".libjxl")
    ap.add_argument("--images", type=Path, default=None)
    args = ap.parse_args()
    from test_perceptual import reference_cases

    worst = 0.0
    print("LIBJXL_0_11_2 = {")
    for name, a, b in reference_cases():
        s2, bmax, bp3 = tool_scores(args.tools, a, b)
        ours = ssimulacra2(a, b)
        worst = max(worst, abs(ours - s2))
        print(f"    {name!r}: ({s2:.8f}, {bmax:.10f}, {bp3:.6f}),   # ours {ours:.8f}")
    print("}")
    if args.images:
        for path in sorted(args.images.glob("*.png"))[:3]:
            a = np.asarray(Image.open(path).convert("RGB"))
            dists = {}
            for q in (5, 30, 80):
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, "JPEG", quality=q)
                dists[f"jpeg q{q}"] = np.asarray(Image.open(buf).convert("RGB"))
            dists["gaussian blur 2"] = np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(2)))
            noise = np.random.default_rng(0).normal(0, 8, a.shape)
            dists["gaussian noise 8"] = np.clip(a + noise, 0, 255).astype(np.uint8)
            for what, b in dists.items():
                s2, _, _ = tool_scores(args.tools, a, b)
                t = time.perf_counter()
                ours = ssimulacra2(a, b)
                worst = max(worst, abs(ours - s2))
                print(f"{path.name} {what:17s} tool {s2:12.8f} ours {ours:12.8f} ({time.perf_counter() - t:.2f} s)")
    print(f"largest |ours - tool|: {worst:.2e}")


if __name__ == "__main__":
    main()
