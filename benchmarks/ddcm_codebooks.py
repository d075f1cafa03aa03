"""DDCM codebook kinds end to end at equal bits, and the index statistics that decide entropy coding.

For each image (Kodak, evaluation only) and each (codebook kind, atoms M) the image is encoded with ddcm
(N = 20 steps, K = 4096; same bits for every kind, since the size depends only on N, K, M) and the file is
decoded again: PSNR, MS-SSIM, encode and decode seconds. The chosen atoms of every coded step are collected:

* index uniformity: the atom positions 0..K-1 in 64 equal bins, chi-square against uniform (p-value), and the
  empirical entropy of those bins against log2(64) = 6 bits: 6 - H is an upper bound (biased upward by the
  finite sample) on what a static entropy model of the index could save per atom over the uniform code;
* signs (M > 1): the fraction of negative coefficients (uniform coding spends 1 bit per sign).

    python benchmarks/ddcm_codebooks.py [KODAK_DIR] --limit 6 --space latent --out benchmarks/results/ddcm-codebooks
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chisquare

from diffcodec.data import list_images, load_image_rgb
from diffcodec.methods.ddcm import DDCMCodec, alphabet, symbol_to_atoms
from diffcodec.metrics import ms_ssim, psnr

BINS = 64


def index_stats(positions: list[int], signs: list[int], k: int) -> dict:
    counts = np.bincount(np.asarray(positions) * BINS // k, minlength=BINS)
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    out = {"atoms_seen": len(positions), "chi2_p": float(chisquare(counts).pvalue),
           "bin_entropy_bits": round(entropy, 4), "max_gain_bits_per_atom": round(math.log2(BINS) - entropy, 4)}
    if signs:
        out["negative_fraction"] = round(float(np.mean(np.asarray(signs) < 0)), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--limit", type=int, default=6, help="first N images (sorted)")
    ap.add_argument("--space", default="latent", choices=["latent", "pixel"])
    ap.add_argument("--kinds", default="mshift,shift,iid")
    ap.add_argument("--atoms", default="1,64")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench-out/ddcm-codebooks")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = list_images(args.images)[:args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    codec = DDCMCodec()
    rows = []
    for kind in args.kinds.split(","):
        for m in (int(a) for a in args.atoms.split(",")):
            res = {"codebook": kind, "atoms": m, "images": [], "positions": [], "signs": []}
            for path in paths:
                img = load_image_rgb(path)
                h, w, _ = img.shape
                t0 = time.perf_counter()
                enc, _ = codec.compress_with_reconstruction(img, steps=args.steps, k=args.k, atoms=m, codebook=kind,
                                                            space=args.space, precision="fp32", device="cpu")
                t_enc = time.perf_counter() - t0
                symbols = codec.last_stats.symbols
                t0 = time.perf_counter()
                dec = codec.decompress(enc, h, w, 3)
                t_dec = time.perf_counter() - t0
                for v in symbols:
                    idx, sg = symbol_to_atoms(v, args.k, m)
                    res["positions"] += idx
                    res["signs"] += sg if m > 1 else []
                bits = sum(math.log2(alphabet(args.k, m)) for _ in symbols)
                res["images"].append({"image": Path(path).name, "bpp": bits / (h * w), "psnr": psnr(img, dec),
                                      "ms_ssim": float(ms_ssim(img, dec)), "encode_s": t_enc, "decode_s": t_dec})
                print(kind, m, Path(path).name, {k: round(v, 3) for k, v in res["images"][-1].items()
                                                  if k != "image"}, flush=True)
            ims = res["images"]
            row = {"codebook": kind, "atoms": m, **{key: float(np.mean([r[key] for r in ims]))
                                                   for key in ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s")},
                   **index_stats(res["positions"], res["signs"], args.k)}
            rows.append(row)
            (out / f"{kind}-m{m}.json").write_text(json.dumps(res["images"], indent=1))
    (out / "summary.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print("| codebook | M | payload bpp | PSNR | MS-SSIM | enc s | dec s | chi2 p (64 bins) | 6 - H(bins) "
          "| neg. signs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['codebook']} | {r['atoms']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['ms_ssim']:.3f} | "
              f"{r['encode_s']:.1f} | {r['decode_s']:.1f} | {r['chi2_p']:.2f} | {r['max_gain_bits_per_atom']:.4f} | "
              f"{r.get('negative_fraction', '')} |")


if __name__ == "__main__":
    main()
