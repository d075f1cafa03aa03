"""Evaluation of the OPQ-latent generators (`generate --method opq`, issue 20) that needs no downloaded weights.

* sample grids (docs/opq-gen/samples.png): rows = continuous, continuous + refiner, categorical at several
  temperatures gamma; columns = seeds. Every sample's .ddc is decoded and checked to reproduce it.
* denoising accuracy on fixed BSDS500 val crops (quantized with opq-32-8-8) at several timesteps: index accuracy,
  mean |index error| and the PSNR of the codebook decoding of the estimate against the clean latent's decoding,
  beside the plain estimate round(z_t / alpha_t) (``denoising_metrics``).
* nearest training crop (docs/opq-gen/nearest.png): for shown samples, the training-pool crop (the exact pool the
  models were trained on, rebuilt from the manifest's seed) whose opq decoding is nearest in pixels (L2), shown
  decoded and as the original crop; as a yardstick, the same distance for held-out val crops.

    python benchmarks/opq_gen_eval.py --out docs/opq-gen
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diffcodec import api
from diffcodec.methods import opq_generate as og
from diffcodec.training.data import ImageFolderCrops, validation_crops
from diffcodec.training.opq_gen import CHUNK, pool_crops, quantize_crops


def tile(rows: list[list[np.ndarray]], pad: int = 2, scale: int = 2) -> np.ndarray:
    s = rows[0][0].shape[0] * scale
    out = np.full((len(rows) * (s + pad), max(len(r) for r in rows) * (s + pad), 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            big = np.repeat(np.repeat(im, scale, 0), scale, 1)
            out[i * (s + pad):i * (s + pad) + s, j * (s + pad):j * (s + pad) + s] = big
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/opq-gen")
    ap.add_argument("--val", default="../shared/data/bsds500/val")
    ap.add_argument("--val-crops", type=int, default=200)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--nearest", type=int, default=4, help="samples per row searched in the training pool")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 700, 900])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    books, _ = og._codebooks()
    result: dict = {"date": "2026-12-01", "machine": "2-core CPU, 1 thread", "steps": args.steps,
                    "seeds": args.seeds}

    # ------------------------------------------------------------------ samples
    settings = [("continuous", {}), ("continuous + refiner", {"refine": True, "device": "cpu"})]
    settings += [(f"categorical gamma={g:g}", {"categorical": True, "temperature": g}) for g in args.temperatures]
    rows, shown = [], {}
    result["samples"] = []
    for label, opts in settings:
        row = []
        t0 = time.perf_counter()
        for seed in args.seeds:
            data, sample = api.generate("opq", 64, 64, steps=args.steps, seed=seed, **opts)
            back = api.decode(data, **({"refine": True, "device": "cpu"} if opts.get("refine") else {}))
            assert np.array_equal(back, sample), "decoding the bitstream must reproduce the sample"
            row.append(sample)
            if not opts.get("refine"):
                shown.setdefault(label, []).append(sample)
            result["samples"].append({"setting": label, "seed": seed, "bytes": len(data),
                                      "bpp": round(len(data) * 8 / 4096, 4)})
        secs = (time.perf_counter() - t0) / len(args.seeds)
        print(f"{label}: {secs:.2f} s per sample")
        rows.append(row)
    Image.fromarray(tile(rows)).save(out / "samples.png")
    result["grid_rows"] = [label for label, _ in settings]

    # ------------------------------------------------------------------ denoising accuracy
    crops = validation_crops(args.val, 64, args.val_crops)
    val_u8 = ((crops.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    val_idx = quantize_crops(val_u8, books).astype(np.int64)
    result["denoising"] = {}
    for form in og.FORMULATIONS:
        model, schedule, manifest = og.load_model(form)
        result["denoising"][form] = og.denoising_metrics(model, schedule, val_idx, books, args.timesteps)
        print(form, json.dumps(result["denoising"][form]))

    # ------------------------------------------------------------------ nearest training crop
    manifest = og.load_model("continuous")[2]
    pool = manifest["pool"]
    data = ImageFolderCrops([Path(p) for p in manifest["data"]], crop=pool["crop"], flips=True)
    queries = {label: np.stack(s[:args.nearest]) for label, s in shown.items()}
    queries["held-out val crop (decoded)"] = og.planes_to_rgb(og.decode_batch_planes(val_idx[:args.nearest], books))
    flat = {k: v.reshape(len(v), -1).astype(np.float32) for k, v in queries.items()}
    best = {k: (np.full(len(v), np.inf), np.zeros(len(v), np.int64)) for k, v in flat.items()}
    chunks = -(-pool["crops"] // pool["chunk"])
    assert pool["chunk"] == CHUNK
    originals: dict[int, np.ndarray] = {}
    decoded_pool: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for k in range(chunks):
        raw = pool_crops(data, k, pool["seed"])[: pool["crops"] - k * CHUNK]
        dec = og.planes_to_rgb(og.decode_batch_planes(quantize_crops(raw, books).astype(np.int64), books))
        d = dec.reshape(len(dec), -1).astype(np.float32)
        dn = (d ** 2).sum(1)
        for key, q in flat.items():
            dist = (q ** 2).sum(1)[:, None] - 2 * q @ d.T + dn[None]
            j = dist.argmin(1)
            better = dist[np.arange(len(q)), j] < best[key][0]
            best[key][0][better] = dist[np.arange(len(q)), j][better]
            best[key][1][better] = k * CHUNK + j[better]
        for key in flat:
            for g in best[key][1]:
                if g // CHUNK == k:
                    originals[int(g)], decoded_pool[int(g)] = raw[g - k * CHUNK], dec[g - k * CHUNK]
    print(f"nearest-crop search over {pool['crops']} pool crops: {time.perf_counter() - t0:.0f} s")
    nn_rows, result["nearest"] = [], {}
    for key, q in queries.items():
        idxs = best[key][1]
        row = []
        for i, g in enumerate(idxs):
            row += [q[i], decoded_pool[int(g)], originals[int(g)]]
        nn_rows.append(row)
        result["nearest"][key] = [round(psnr(q[i], decoded_pool[int(g)]), 2) for i, g in enumerate(idxs)]
        print(key, "PSNR to nearest pool crop:", result["nearest"][key])
    Image.fromarray(tile(nn_rows)).save(out / "nearest.png")
    result["nearest_rows"] = list(queries)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
