#!/usr/bin/env bash
# Kodak24 rate sweep of ddcm against JPEG/WebP/AVIF at matched file sizes: one `diffcodec bench` run per rate
# point, per mode, then one table.
# Usage: benchmarks/ddcm_kodak24.sh MODE [IMAGE_DIR] [OUTDIR] [POINT...]
#   MODE latent | pixel: POINT is a target bpp (--bpp picks the atoms M at N = $STEPS steps, default 20, K = 4096).
#   MODE base: conditional ddcm on an opq base layer with the opq-refiner; POINT is [OPQ_PRESET/]STEPS:ATOMS
#     (K = 4096, base opq-16-8-8 unless named), so every image gets the same refinement bits on top of its own
#     base layer (base sizes differ per image).
#   MODE auto: the default mode (no --space/--base; --bpp picks conditional or latent); POINT is a target bpp.
# BENCH_ARGS (environment, split on spaces) is added to every bench command, e.g.
#   BENCH_ARGS="--metric ssimulacra2 --metric butteraugli" (Butteraugli needs DIFFCODEC_BUTTERAUGLI).
set -euo pipefail
mode="${1:?mode: latent | pixel | base | auto}"
images="${2:-../shared/data/kodak}"
out="${3:-bench-out/ddcm-kodak24}"
shift $(( $# < 3 ? $# : 3 ))
points=("$@")
case "$mode" in
  latent|pixel|auto) [ ${#points[@]} -gt 0 ] || points=(0.05 0.1 0.2 0.4) ;;
  base) [ ${#points[@]} -gt 0 ] || points=(3:16 3:128 3:512 5:1024) ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
for point in "${points[@]}"; do
  if [ "$mode" = base ]; then
    base=opq-16-8-8; sa="$point"
    case "$point" in */*) base="${point%%/*}"; sa="${point#*/}" ;; esac
    rate=(--param base="$base" --param steps="${sa%%:*}" --param atoms="${sa##*:}")
    name="n${sa%%:*}-m${sa##*:}"; [ "$base" = opq-16-8-8 ] || name="$base-$name"
  elif [ "$mode" = auto ]; then
    rate=(--param bpp="$point")
    name="bpp$point"
  else
    rate=(--param space="$mode" --param bpp="$point" --param steps="${STEPS:-20}")
    name="bpp$point"; [ "${STEPS:-20}" = 20 ] || name="n$STEPS-$name"
  fi
  # -p names one preset (without it bench runs every preset); the --param values override its N, K, M, so the
  # per-run summary.md is labelled with that preset's name while the folder name and summary.json say what ran
  diffcodec bench "$images" --method ddcm -p n20-k4096-m64 --vs jpeg --vs webp --vs avif --report-images 2 --quiet \
    "${rate[@]}" --param k=4096 ${BENCH_ARGS:-} -o "$out/$mode-$name"
done
python "$(dirname "$0")/summarize_benches.py" "$out/$mode"-*/ | tee "$out/$mode-table.md"
