"""The common quality scale (-q/--quality, issue #22): what each method's quality_points are derived from.

Quality Q means "about the MS-SSIM of Pillow's JPEG (4:2:0, optimised Huffman) at quality Q", as a mean over
Kodak24. This script measures that JPEG curve on the images given (Kodak24) and maps every Q to the smallest
setting of each method whose Kodak24 mean MS-SSIM reaches it, from the method figures recorded in
benchmarks/RESULTS.md (copied below, with the section each comes from). ddcm's --bpp is continuous: its bpp for
a quality is interpolated log-linearly in MS-SSIM between its measured targets.

    OMP_NUM_THREADS=1 python benchmarks/quality_scale.py ../shared/data/kodak      # ~1.5 min on one CPU thread

prints the JPEG curve and, per method, the quality where each setting starts (the rows of Codec.quality_points)
and its ceiling (the first quality no setting of the method reaches).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JPEG_QUALITIES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 50, 60, 70, 75, 80, 85, 90, 95)

# Kodak24 mean MS-SSIM of each method's settings, as recorded in benchmarks/RESULTS.md.
METHOD_POINTS = {
    # "OPQ codec on Kodak24 vs JPEG / WebP / AVIF at matched file size"
    "opq": [("opq-16-8-8", 0.9129), ("opq-32-8-8", 0.9453), ("opq-64-16-16", 0.9708), ("opq-128-32-32", 0.9870)],
    # "diffae on Kodak24 vs JPEG / WebP / AVIF at matched size" (2 decoder steps, the default)
    "diffae": [("low", 0.728), ("medium", 0.781), ("high", 0.818)],
    # --bpp targets: "latent space at N = 50 on Kodak24" (0.02, 0.05: below every standard-codec base, the default
    # mode is still latent there) and "The default mode on standard-codec bases" (0.1 .. 0.8)
    "ddcm": [(0.02, 0.6699), (0.05, 0.7770), (0.1, 0.8888), (0.2, 0.9384), (0.3, 0.9576), (0.5, 0.9741),
             (0.8, 0.9846)],
}


def jpeg_curve(files: list[Path]) -> dict[int, tuple[float, float, float]]:
    """quality -> (mean bpp, mean PSNR, mean MS-SSIM) of Pillow's JPEG over ``files``."""
    from PIL import Image

    from diffcodec import baselines, metrics

    b = baselines.get_baseline("jpeg")
    sums = {q: np.zeros(3) for q in JPEG_QUALITIES}
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        for q in JPEG_QUALITIES:
            r = baselines.encode_at_quality("jpeg", img, q)
            dec = b.decode(r.data, channels=3)
            sums[q] += (r.bytes * 8 / (img.shape[0] * img.shape[1]), metrics.psnr(img, dec), metrics.ms_ssim(img, dec))
    return {q: tuple(s / len(files)) for q, s in sums.items()}


def anchor(curve: dict[int, tuple[float, float, float]], q: int) -> float:
    """JPEG's MS-SSIM at quality q (linear between measured qualities; quality 0 = quality 1)."""
    qs = sorted(curve)
    return float(np.interp(max(q, qs[0]), qs, [curve[k][2] for k in qs]))


def ddcm_bpp(ms_ssim: float) -> float | None:
    """The ddcm --bpp target whose measured MS-SSIM is ``ms_ssim`` (log-linear in bpp), None above its best."""
    pts = METHOD_POINTS["ddcm"]
    if ms_ssim <= pts[0][1]:
        return pts[0][0]
    for (b0, m0), (b1, m1) in zip(pts, pts[1:]):
        if m0 <= ms_ssim <= m1:
            t = (ms_ssim - m0) / (m1 - m0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="?", default=str(ROOT / ".." / "shared" / "data" / "kodak"))
    args = ap.parse_args()
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png")
    curve = jpeg_curve(files)
    print(f"JPEG on {len(files)} images: quality, bpp, PSNR, MS-SSIM")
    for q, (bpp, psnr, ms) in curve.items():
        print(f"  {q:3d}  {bpp:.4f}  {psnr:6.2f}  {ms:.4f}")
    for method in ("opq", "diffae"):
        pts = METHOD_POINTS[method]
        starts: dict[str, int] = {}
        ceiling = None
        for q in range(101):
            fit = [name for name, ms in pts if ms >= anchor(curve, q)]
            if fit:
                starts.setdefault(fit[0], q)
            elif ceiling is None:
                ceiling = q
        print(f"{method}: " + ", ".join(f"from {q}: {name}" for name, q in starts.items())
              + f"; ceiling {ceiling} (from there: {pts[-1][0]})")
    rows = []
    for q in range(101):
        b = ddcm_bpp(anchor(curve, q))
        if b is None:
            print(f"ddcm: ceiling {q} (from there: bpp {METHOD_POINTS['ddcm'][-1][0]})")
            break
        rows.append((q, b))
    print("ddcm bpp per quality: " + ", ".join(f"{q}: {b:.3f}" for q, b in rows))


if __name__ == "__main__":
    main()
