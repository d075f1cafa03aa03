"""PSNR of an opq clip (P-frames, gop 12) decoded plain and with --refine (the opq-refiner over every frame), for
the first N frames of a clip, at each preset given.

    OMP_NUM_THREADS=1 python benchmarks/opq_clip_refine.py ../shared/data/video/bus_cif.y4m 12 opq-32-8-8 opq-64-16-16
"""

from __future__ import annotations

import io
import itertools
import sys
import time

import numpy as np

from diffcodec import clips, container, metrics, video


class FirstFrames:
    """The first ``n`` frames of a clip, as a reader ``clips.encode_clip`` takes."""

    def __init__(self, path: str, n: int):
        self.path, self.n = path, n
        with video.open_video(path) as r:
            self.info = r.info

    def __iter__(self):
        with video.open_video(self.path) as r:
            yield from itertools.islice(r, self.n)


def main(path: str, n: int, presets: list[str]) -> None:
    source = [f.planes for f in FirstFrames(path, n)]
    print("| preset | kbps | decode | PSNR-Y | PSNR-YUV | s |")
    print("|---|---:|---|---:|---:|---:|")
    for preset in presets:
        out = io.BytesIO()
        summary = clips.encode_clip(FirstFrames(path, n), out, "opq", preset, gop=12)
        for refine in (False, True):
            t = time.perf_counter()
            opts = {"refine": True, "device": "cpu"} if refine else {}
            decoded = [p for _, p in clips.decode_frames(container.StreamReader(io.BytesIO(out.getvalue())), **opts)]
            psnr = [metrics.psnr_planes(a, b) for a, b in zip(source, decoded)]
            print(f"| {preset} | {summary['kbps']:.1f} | {'refined' if refine else 'plain'} | "
                  f"{np.mean([p['y'] for p in psnr]):.3f} | {np.mean([p['yuv'] for p in psnr]):.3f} | "
                  f"{time.perf_counter() - t:.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
