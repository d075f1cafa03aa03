#!/usr/bin/env bash
# ddcm on an H.264 base (issue #16): x264 medium codes the clip, the codec refiner's free step runs over each decoded
# frame where it gains; one benchmarks/video_inter.sh run per CRF (the CRF fixes the rate, so each run is one point
# per clip), at --gop 1 and --gop N: benchmarks/results/video-ddcm-x264-gop<G>/crf<C>/<clip>/.
# Usage: [GOPS="12"] [CRFS="28 33 38 43"] benchmarks/video_ddcm_x264.sh N [CLIP ...]   (GOPS: default both 1 and N)
#   then: python benchmarks/bd_inter_vs_intra.py benchmarks/results/video-ddcm-x264-gop1 benchmarks/results/video-ddcm-x264-gopN
#   (its second table: the clips against the GOP-matched x264 rows, i.e. against the base codec itself)
set -euo pipefail
cd "$(dirname "$0")/.."
gop=$1; shift
for g in ${GOPS:-1 $gop}; do
  for crf in ${CRFS:-28 33 38 43}; do
    OUTROOT=benchmarks/results/video-ddcm-x264-gop$g/crf$crf benchmarks/video_inter.sh ddcm "$g" "$@" -- \
      --param base=x264:crf$crf
  done
done
