"""How far a ddcm decode on "another machine" lands from the encoder's reconstruction, with the shipped models.

A CPU-only stand-in for cross-device decoding: each image is encoded in this process with one torch thread
(keeping the encoder's own reconstruction), then the file is decoded in fresh processes with 1 and with 2
threads. With 1 thread the decode must be bit-identical; with 2 the networks sum in another order, and the
table shows how many pixels move and by how much (PSNR of the decode against the encoder's reconstruction).
A GPU decode differs from a CPU one the same way (float rounding of the networks, never the codebooks).

    python benchmarks/ddcm_cross_threads.py [KODAK_DIR] --limit 3 --out benchmarks/results/ddcm-cross-threads
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from diffcodec import api
from diffcodec.data import list_images, load_image_rgb
from diffcodec.metrics import psnr

MODES = {   # name -> encode parameters (each the default of its mode at a typical rate)
    "latent bpp 0.1": {"bpp": 0.1, "space": "latent"},
    "base opq-16-8-8 n3-m512": {"base": "opq-16-8-8"},
    "pixel bpp 0.05": {"bpp": 0.05, "space": "pixel"},
}

DECODE = """
import sys, torch
torch.set_num_threads(int(sys.argv[2]))
from diffcodec import api
sys.stdout.buffer.write(api.decode(open(sys.argv[1], "rb").read(), device="cpu").tobytes())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--every", type=int, default=8, help="take every n-th image (spread over the set)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated names from: " + ", ".join(MODES))
    ap.add_argument("--out", default="bench-out/ddcm-cross-threads")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            for path in list_images(args.images)[::args.every][:args.limit]:
                img = load_image_rgb(path)
                data, recon = api.encode_with_reconstruction(img, method="ddcm", device="cpu", **MODES[mode])
                src = Path(tmp) / "x.ddc"
                src.write_bytes(data)
                row = {"mode": mode, "image": path.name, "bpp": round(len(data) * 8 / (img.shape[0] * img.shape[1]), 4),
                       "psnr_vs_original": round(psnr(img, recon), 3)}
                for threads in (1, 2):
                    p = subprocess.run([sys.executable, "-c", DECODE, str(src), str(threads)], capture_output=True,
                                       check=True)
                    dec = np.frombuffer(p.stdout, np.uint8).reshape(recon.shape)
                    diff = np.abs(dec.astype(int) - recon.astype(int))
                    row[f"t{threads}"] = {"identical": bool(not diff.any()), "max_diff": int(diff.max()),
                                          "pixels_changed": round(float((diff > 0).mean()), 6),
                                          "psnr_vs_encoder": None if not diff.any() else round(psnr(recon, dec), 2)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    (out / "cross_threads.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
