"""Seconds to assemble one ddcm step's noise (combine M atoms of an mshift codebook) at Kodak size, with the
tiled slice accumulation ``ShiftCodebook._accumulate`` uses and with the plain per-codeword definition
``combine(..., per_codeword=True)`` (both give the same bits: checked here), plus scoring all K codewords (one FFT).

    python benchmarks/ddcm_combine_speed.py [--shape 3,512,768] [--k 4096]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from diffcodec import codebooks_rng


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="3,512,768")
    ap.add_argument("--k", type=int, default=4096)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    cb = codebooks_rng.make_codebook("mshift", 0, 3, args.k, shape)
    cb.field(0), cb.signs                                      # generated once per step in both paths
    _, score_s = timed(lambda: cb.scores(rng.standard_normal(shape)))
    rows = []
    for m in (1, 64, 512):
        idx = sorted(rng.choice(args.k, m, replace=False).tolist())
        signs = rng.choice([-1, 1], m).tolist()
        fast, fast_s = timed(lambda idx=idx, signs=signs: cb.combine(idx, signs))
        plain, plain_s = timed(lambda idx=idx, signs=signs: cb.combine(idx, signs, per_codeword=True))
        rows.append({"atoms": m, "tiled_s": fast_s, "per_codeword_s": plain_s,
                     "identical": fast.tobytes() == plain.tobytes()})
    print(json.dumps({"shape": shape, "k": args.k, "score_all_s": score_s, "combine": rows}))


if __name__ == "__main__":
    main()
