#!/usr/bin/env bash
# ddcm P-frames against ddcm intra (issue #16, item 2): conditional ddcm on an opq base layer with the free refiner
# step, one benchmarks/video_inter.sh run per base (a base and the refinement fix the rate, so each run is one point
# per clip), at --gop 1 and --gop N: benchmarks/results/video-ddcm-opq-gop<G>/<base>/<clip>/.
# Usage: [GOPS="12"] benchmarks/video_ddcm_inter.sh N [CLIP ...]   (GOPS: which of 1 and N to run; default both)
#   then: python benchmarks/bd_inter_vs_intra.py benchmarks/results/video-ddcm-opq-gop1 benchmarks/results/video-ddcm-opq-gopN
set -euo pipefail
cd "$(dirname "$0")/.."
gop=$1; shift
for g in ${GOPS:-1 $gop}; do
  for base in opq-16-8-8 opq-32-8-8 opq-64-16-16 opq-128-32-32; do
    OUTROOT=benchmarks/results/video-ddcm-opq-gop$g/$base benchmarks/video_inter.sh ddcm "$g" "$@" -- \
      --param base=$base --param steps=1 --param k=4096 --param atoms=1
  done
done
