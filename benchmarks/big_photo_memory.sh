#!/usr/bin/env bash
# Peak memory and time of encoding / decoding big photos (issue #17 item 6): mosaics of two Kodak images (mirrored
# tiles) at 0.75, 3, 12 and 48 megapixels, one thread, `/usr/bin/time` max RSS of the whole `diffcodec` process.
# Usage: benchmarks/big_photo_memory.sh [METHOD [extra encode options]]     (default: opq)
#        MPS="0.75 3 12" benchmarks/big_photo_memory.sh ddcm --bpp 0.3       (only these megapixel counts)
set -euo pipefail
cd "$(dirname "$0")/.."
method=${1:-opq}; shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$work" <<'PY'
import sys
import numpy as np
from PIL import Image
out = sys.argv[1]
tiles = []
for name in ("kodim01", "kodim05"):
    a = np.asarray(Image.open(f"../shared/data/kodak/{name}.png").convert("RGB"))
    tiles.append(a.transpose(1, 0, 2) if a.shape[0] > a.shape[1] else a)
a, b = tiles
row = np.concatenate([a, b[:, ::-1], a[::-1], b, a[:, ::-1], b[::-1]], axis=1)
img = np.concatenate([row, row[::-1], row, row[:, ::-1], row, row[::-1]], axis=0)[:3000, :4000]
img = np.concatenate([np.concatenate([img, img[:, ::-1]], 1), np.concatenate([img[::-1], img], 1)], 0)
for mp, (h, w) in {"0.75": (750, 1000), "3": (1500, 2000), "12": (3000, 4000), "48": (6000, 8000)}.items():
    Image.fromarray(np.ascontiguousarray(img[:h, :w])).save(f"{out}/photo_{mp}MP.png", compress_level=1)
PY
echo "| method | megapixels | encode peak RSS (MB) | encode s | decode peak RSS (MB) | decode s (incl. PNG write) | bytes |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for mp in ${MPS:-0.75 3 12 48}; do
  src=$work/photo_${mp}MP.png
  enc=$( { /usr/bin/time -f "%M %e" python -m diffcodec encode "$src" -o "$work/p.ddc" -m "$method" --quiet -f "$@"; } 2>&1 | tail -1)
  dec=$( { /usr/bin/time -f "%M %e" python -m diffcodec decode "$work/p.ddc" -o "$work/p.png" --quiet -f; } 2>&1 | tail -1)
  read -r e_kb e_s <<<"$enc"; read -r d_kb d_s <<<"$dec"
  echo "| $method | $mp | $((e_kb / 1024)) | $e_s | $((d_kb / 1024)) | $d_s | $(stat -c %s "$work/p.ddc") |"
done
