"""Feasibility check for a refinement layer over x264 (issue #16): how much does the shipped codec refiner's free
step (one deterministic step, no coded bits) lift x264's own decoded frames, at x264's size plus one byte per
frame (the flag that says whether a frame is refined)?

Not a codec: nothing is written in a .ddc file. Each clip is coded by x264 medium, GOP-matched as `bench --video`
codes it (a keyframe every --gop frames, P-frames only, no scene cut), at each --crf; the decoded frames go
through RGB (the clip's matrix and range) to the refiner, conditioned as a base of --kind at --quality (the
refiner was trained on JPEG / WebP / AVIF / opq bases, not on H.264: the condition says which of those to imitate),
and back to the clip's chroma layout. A frame keeps the refined version only where its PSNR-YUV is higher (what
an encoder that sees the source would flag). Reports per CRF: kbps, PSNR-Y / PSNR-YUV / VMAF of x264 and of the
refined clip, and the BD-rate of the refined clip against x264's own curve.

    OMP_NUM_THREADS=1 python benchmarks/refine_over_x264.py ../shared/data/video/carphone_qcif_pristine.mp4 \
        --frames 30 --crf 28 --crf 33 --crf 38 --crf 43 --kind webp --quality 40 --views 1 --json-out out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diffcodec import bdrate, metrics, video, yuv
from diffcodec.bench_video import BASELINES, _run_ffmpeg, vmaf_scores
from diffcodec.methods.ddcm.base_layer import BaseSpec
from diffcodec.methods.ddcm.h264_base import condition_quality
from diffcodec.methods.ddcm.params import DDCMParams
from diffcodec.methods.ddcm.priors import load_prior
from diffcodec.methods.ddcm.process import ensemble_mean, free_step_views

FLAG_BYTES = 1          # per frame: refined or not


def refine_frame(prior, rgb: np.ndarray, spec: BaseSpec, views: int, precision: str) -> np.ndarray:
    p = DDCMParams(steps=1, base=f"{spec.name}:q{spec.quality}", precision=precision, ensemble=views)
    h, w = rgb.shape[:2]
    cond = prior.condition(rgb, spec)
    outs = free_step_views(prior, p, cond, prior.shape(h, w), views)
    return prior.to_image(ensemble_mean(outs, views), h, w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--crf", type=float, action="append", required=True)
    ap.add_argument("--gop", type=int, default=12)
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    ap.add_argument("--kind", default="webp", choices=("jpeg", "webp", "avif"))
    ap.add_argument("--quality", type=int, action="append",
                    help="condition quality (repeat to compare; 0: h264_base.condition_quality of the CRF, what "
                         "ddcm ships; -D: that minus D)")
    ap.add_argument("--offset", type=int, action="append", default=[],
                    help="condition quality = h264_base.condition_quality(CRF) + D (repeat; +10 = the first "
                         "mapping tried, 45 at CRF 28)")
    ap.add_argument("--views", type=int, default=1, choices=(1, 2, 4))
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--no-vmaf", action="store_true")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    qualities = (args.quality or ([] if args.offset else [0])) + [f"{d:+d}" for d in args.offset]
    prior = load_prior("pixel", "cpu", base="webp:q40", refiner="codec-refiner-3")
    b = BASELINES["x264-medium"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref = work / "ref.y4m"
        with video.open_video(args.clip) as r:
            info = r.info
            with video.open_writer(str(ref), info) as w:
                for i, f in enumerate(r):
                    if args.frames and i >= args.frames:
                        break
                    w.write(f.planes)
        src = [f.planes for f in video.open_video(str(ref))]
        n = len(src)
        for crf in args.crf:
            out = work / f"x264_q{crf:g}.264"
            _run_ffmpeg(["-i", ref.name, *b.encode_args(crf, 1, args.gop), "-f", b.fmt, out.name], work)
            nbytes = out.stat().st_size
            dec = work / f"x264_q{crf:g}.y4m"
            num, den = info.fps
            _run_ffmpeg(["-threads", "1", "-r", f"{num}/{den}", "-i", out.name, "-fps_mode", "passthrough",
                         "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", dec.name], work)
            base = [f.planes for f in video.open_video(str(dec))]
            assert len(base) == n, (len(base), n)
            def kbps(extra: int, nbytes: int = nbytes, num: int = num, den: int = den) -> float:
                return (nbytes + extra) * 8 * num / den / n / 1000
            row = {"crf": crf, "bytes": nbytes, "kbps": kbps(0),
                   "x264": _quality(src, base, ref, dec, work, not args.no_vmaf)}
            for q in qualities:
                shift = int(q) if isinstance(q, str) or q <= 0 else None
                spec = BaseSpec("codec", args.kind, q if shift is None else max(0, condition_quality(crf) + shift))
                t0 = time.perf_counter()
                chosen, refined_n = [], 0
                for s, bp in zip(src, base):
                    rgb = yuv.planes_to_rgb(bp, info)
                    r_rgb = refine_frame(prior, rgb, spec, args.views, args.precision)
                    rp = yuv.rgb_to_planes(r_rgb, info.chroma, matrix=info.matrix, color_range=info.range)
                    better = metrics.psnr_planes(s, rp)["yuv"] > metrics.psnr_planes(s, bp)["yuv"]
                    refined_n += better
                    chosen.append(rp if better else bp)
                secs = time.perf_counter() - t0
                outp = work / f"ref_q{crf:g}_{q}.y4m"
                with video.open_writer(str(outp), info) as w:
                    for planes in chosen:
                        w.write(planes)
                row[f"refined_q{q}"] = {**_quality(src, chosen, ref, outp, work, not args.no_vmaf),
                                        "kbps": kbps(FLAG_BYTES * n), "frames_refined": refined_n,
                                        "refine_s_per_frame": secs / n}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    summary = {"clip": args.clip, "frames": n, "gop": args.gop, "kind": args.kind, "views": args.views,
               "precision": args.precision, "x264": b.describe(1, args.gop), "rows": rows, "bd": {}}
    for q in qualities:
        for m in ("psnr_y", "psnr_yuv", "vmaf"):
            if args.no_vmaf and m == "vmaf":
                continue
            anchor = ([r["kbps"] for r in rows], [r["x264"][m] for r in rows])
            test = ([r[f"refined_q{q}"]["kbps"] for r in rows], [r[f"refined_q{q}"][m] for r in rows])
            summary["bd"][f"q{q}_{m}"] = bdrate.bd_rate(*anchor, *test)      # None: undefined
    print(json.dumps(summary["bd"]))
    for r in rows:
        line = f"crf {r['crf']:g}: {r['kbps']:.1f} kbps x264 {r['x264']['psnr_y']:.2f}/{r['x264']['psnr_yuv']:.2f}"
        line += f"/{r['x264'].get('vmaf', float('nan')):.2f}"
        for q in qualities:
            rr = r[f"refined_q{q}"]
            line += (f" | q{q}: {rr['psnr_y']:.2f}/{rr['psnr_yuv']:.2f}/{rr.get('vmaf', float('nan')):.2f}"
                     f" ({rr['frames_refined']}/{n} refined)")
        print(line)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=1))
    return 0


def _quality(src, frames, ref: Path, dist: Path, work: Path, want_vmaf: bool) -> dict:
    ps = [metrics.psnr_planes(s, f) for s, f in zip(src, frames)]
    out = {"psnr_y": float(np.mean([p["y"] for p in ps])), "psnr_yuv": float(np.mean([p["yuv"] for p in ps]))}
    if want_vmaf:
        out["vmaf"] = float(np.mean(vmaf_scores(ref, dist, work, 1)))
    return out


if __name__ == "__main__":
    sys.exit(main())
