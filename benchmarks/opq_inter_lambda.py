"""opq P-frames at several rate weights (`lam_scale`, default opq_inter.INTRA_LAMBDA): kbps and mean PSNR-YUV of
the first N frames of a clip, every P-frame decoded and checked against the encoder's reconstruction. The tuning
run of benchmarks/RESULTS.md, "Video with P-frames":

    OMP_NUM_THREADS=1 python benchmarks/opq_inter_lambda.py ../shared/data/video/carphone_qcif_pristine.mp4 \
        --frames 30 --gop 10 -p opq-16-8-8 -p opq-32-8-8 -p opq-64-16-16 -p opq-128-32-32 --lam 0.25,0.5,1,2,4,8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from diffcodec import metrics, video, yuv
from diffcodec.methods import get_codec


def run(path: str, preset: str, gop: int, frames: int, lam: float) -> dict:
    codec = get_codec("opq")
    total, psnr, t0 = 0, [], time.perf_counter()
    with video.open_video(path) as reader:
        info = reader.info
        enc_ref = dec_ref = key = None
        for i, frame in enumerate(reader):
            if i >= frames:
                break
            rgb = yuv.planes_to_rgb(frame.planes, info)
            if i % gop == 0:
                key, recon, enc_ref = codec.compress_keyframe(rgb, preset)
                n = len(key.chunks[0])
                out, dec_ref = codec.decompress_keyframe(key, info.height, info.width, 3)
            else:
                payload, recon, enc_ref = codec.compress_predicted(rgb, enc_ref, key, lam_scale=lam)
                n = len(payload)
                out, dec_ref = codec.decompress_predicted(payload, dec_ref, key, info.height, info.width, 3)
            if not np.array_equal(out, recon):
                raise SystemExit(f"frame {i}: decoder differs from the encoder")
            total += n
            dec = yuv.rgb_to_planes(recon, info.chroma, matrix=info.matrix, color_range=info.range)
            psnr.append(metrics.psnr_planes(frame.planes, dec)["yuv"])
    n = len(psnr)
    return {"preset": preset, "lam": lam, "kbps": total * 8 * info.fps[0] / info.fps[1] / n / 1000,
            "psnr_yuv": float(np.mean(psnr)), "s_per_frame": (time.perf_counter() - t0) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("-p", "--preset", action="append", default=None)
    ap.add_argument("--lam", default="0.5,1,2,4,8")
    a = ap.parse_args()
    print("| preset | lambda | kbps | PSNR-YUV | s/frame |\n|---|---:|---:|---:|---:|")
    for preset in a.preset or ["opq-32-8-8"]:
        for lam in (float(x) for x in a.lam.split(",")):
            r = run(a.clip, preset, a.gop, a.frames, lam)
            print(f"| {preset} | {lam:g} | {r['kbps']:.1f} | {r['psnr_yuv']:.2f} | {r['s_per_frame']:.2f} |")


if __name__ == "__main__":
    main()
