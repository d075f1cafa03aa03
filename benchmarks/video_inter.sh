#!/usr/bin/env bash
# Video benchmark with P-frames (issue #16): one method at --gop N over natural clips of ../shared/data/video, one
# output folder per clip: benchmarks/results/video-<method>-gop<N>/<clip>/. The baselines use the same GOP (a
# keyframe every N frames, P-frames only, scene-cut off); h264-gop is x264's defaults (informative). One thread
# everywhere (the CPU was shared).
# Usage: [OUTROOT=folder] benchmarks/video_inter.sh METHOD GOP [CLIP ...] -- [extra bench options]
#   benchmarks/video_inter.sh opq 12 -- -p opq-16-8-8 -p opq-32-8-8 -p opq-64-16-16 -p opq-128-32-32
set -euo pipefail
cd "$(dirname "$0")/.."
method=$1; gop=$2; shift 2
clips=()
while [[ $# -gt 0 && $1 != -- ]]; do clips+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
if [[ ${#clips[@]} -eq 0 ]]; then
  clips=(bus_cif basketballpass_416x240 CiscoVT2people_320x192_12fps)
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for c in "${clips[@]}"; do
  src=../shared/data/video/$c.y4m
  [[ -f $src ]] || src=../shared/data/video/$c.mp4
  out=${OUTROOT:-benchmarks/results/video-$method-gop$gop}/$c
  echo "== $(date -u +%H:%M:%S) $method gop $gop $c -> $out"
  python -m diffcodec bench --video "$src" -m "$method" --gop "$gop" --vs h264 --vs h264-gop \
    --device cpu --quiet -o "$out" "$@"
done
