"""Resident memory of one long-lived process decoding a file again and again (issue #17: a fuzz worker grew to
3 GB): as it is, or re-framed at a new size every time (``--sizes``: widths 16..128, heights 16..112, what fuzzed
headers do). Prints VmRSS every 50 decodes.

    OMP_NUM_THREADS=1 python benchmarks/worker_memory.py formats/golden/ddcm-latent_bpp2_rgb_37x29.ddc --sizes
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 OMP_NUM_THREADS=1 python benchmarks/worker_memory.py FILE --sizes
"""

from __future__ import annotations

import argparse

from diffcodec import api, container


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--decodes", type=int, default=401)
    ap.add_argument("--sizes", action="store_true", help="a new width x height for every decode")
    args = ap.parse_args()
    data = open(args.file, "rb").read()
    c = container.read_container(data)
    h = c.header
    for i in range(args.decodes):
        if args.sizes:
            w, hh = 16 + (i * 7) % 113, 16 + (i * 13) % 97
            data = container.frame(h.method, c.encoded, w, hh, h.pixel.channels)
        api.decode(data, device="cpu")
        if i % 50 == 0:
            print(f"{i} decodes: {rss_mb()} MB", flush=True)
    print(f"end: {rss_mb()} MB")


if __name__ == "__main__":
    main()
