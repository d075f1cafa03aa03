"""opq clip encode / decode speed at 352x288 (issue #14's target: >= 10 frames/s each on 2 CPU cores), measured
in-process (no CLI start-up) by wall time and by this process's CPU time, which a busy machine inflates less.

    OMP_NUM_THREADS=1 python benchmarks/opq_clip_speed.py ../shared/data/video/bus_cif.y4m [--gop 1,12]
"""

from __future__ import annotations

import argparse
import io
import time

from diffcodec import clips, container, video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--gop", default="1,12")
    ap.add_argument("-p", "--preset", action="append")
    ap.add_argument("--rgb", action="store_true", help="code through RGB (planar=False)")
    args = ap.parse_args()
    presets = args.preset or ["opq-16-8-8", "opq-32-8-8", "opq-64-16-16", "opq-128-32-32"]
    print("| preset | gop | frames | encode fps (wall) | encode fps (CPU) | decode fps (wall) | decode fps (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for gop in (int(g) for g in args.gop.split(",")):
        for preset in presets:
            out = io.BytesIO()
            with video.open_video(args.clip) as reader:
                w0, c0 = time.perf_counter(), time.process_time()
                summary = clips.encode_clip(reader, out, "opq", preset, gop=gop, planar=False if args.rgb else None)
                enc_wall, enc_cpu = time.perf_counter() - w0, time.process_time() - c0
            data = out.getvalue()
            w0, c0 = time.perf_counter(), time.process_time()
            n = sum(1 for _ in clips.decode_frames(container.StreamReader(io.BytesIO(data))))
            dec_wall, dec_cpu = time.perf_counter() - w0, time.process_time() - c0
            f = summary["frames"]
            print(f"| {preset} | {gop} | {n} | {f / enc_wall:.1f} | {f / enc_cpu:.1f} | {n / dec_wall:.1f} | "
                  f"{n / dec_cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
