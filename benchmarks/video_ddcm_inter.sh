#!/usr/bin/env bash
# ddcm P-frames against ddcm intra (issue #16, item 2): conditional ddcm on an opq base layer with the free refiner
# step, one `diffcodec bench --video` run per base (a base and the refinement fix the rate, so each run is one
# point), at --gop 1 and --gop N, over natural clips of ../shared/data/video:
# benchmarks/results/video-ddcm-opq-gop<G>/<clip>/<base>/. One thread everywhere.
# Usage: benchmarks/video_ddcm_inter.sh N [CLIP ...]
#   then: python benchmarks/bd_inter_vs_intra.py benchmarks/results/video-ddcm-opq-gop1 benchmarks/results/video-ddcm-opq-gopN
set -euo pipefail
cd "$(dirname "$0")/.."
gop=$1; shift
clips=("$@")
if [[ ${#clips[@]} -eq 0 ]]; then
  clips=(bus_cif basketballpass_416x240 CiscoVT2people_320x192_12fps)
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for c in "${clips[@]}"; do
  src=../shared/data/video/$c.y4m
  [[ -f $src ]] || src=../shared/data/video/$c.mp4
  for g in 1 "$gop"; do
    for base in opq-16-8-8 opq-32-8-8 opq-64-16-16 opq-128-32-32; do
      out=benchmarks/results/video-ddcm-opq-gop$g/$c/$base
      echo "== $(date -u +%H:%M:%S) ddcm gop $g $c $base -> $out"
      python -m diffcodec bench --video "$src" -m ddcm --gop "$g" --param base=$base --param steps=1 \
        --param k=4096 --param atoms=1 --vs h264 --device cpu --quiet -o "$out"
    done
  done
done
