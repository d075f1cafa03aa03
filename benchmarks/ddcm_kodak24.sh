#!/usr/bin/env bash
# Kodak24 rate sweep of ddcm against JPEG/WebP/AVIF at matched file sizes: one `diffcodec bench` run per target
# bpp (ddcm's --bpp picks the atoms M at N=20 steps, K=4096), per mode, then one table.
# Usage: benchmarks/ddcm_kodak24.sh MODE [IMAGE_DIR] [OUTDIR] [BPP...]
#   MODE: latent | pixel | base   (base = conditional ddcm on an opq-16-8-8 base layer with the opq-refiner)
set -euo pipefail
mode="${1:?mode: latent | pixel | base}"
images="${2:-../shared/data/kodak}"
out="${3:-bench-out/ddcm-kodak24}"
shift $(( $# < 3 ? $# : 3 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(0.05 0.1 0.2 0.4)
case "$mode" in
  latent) extra=(--param space=latent) ;;
  pixel)  extra=(--param space=pixel) ;;
  base)   extra=(--param space=pixel --param base=opq-16-8-8) ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
for bpp in "${targets[@]}"; do
  diffcodec bench "$images" --method ddcm -p n20-k4096-m64 --vs jpeg --vs webp --vs avif --report-images 2 --quiet \
    "${extra[@]}" --param bpp="$bpp" --param steps=20 --param k=4096 -o "$out/$mode-bpp$bpp"
done
python "$(dirname "$0")/summarize_benches.py" "$out/$mode"-bpp* | tee "$out/$mode-table.md"
