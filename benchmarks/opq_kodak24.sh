#!/usr/bin/env bash
# Kodak24 rate-distortion benchmark of every opq preset against JPEG (4:2:0 and 4:4:4), WebP and AVIF at
# matched file sizes. Usage: benchmarks/opq_kodak24.sh [IMAGE_DIR] [OUTDIR]
set -euo pipefail
images="${1:-../shared/data/kodak}"
out="${2:-bench-out/opq-kodak24}"
/usr/bin/time -v diffcodec bench "$images" --method opq --vs jpeg --vs jpeg444 --vs webp --vs avif -o "$out"
