#!/usr/bin/env bash
# Video benchmark, intra (issue #14): one method over the natural clips of ../shared/data/video, one output
# folder per clip: benchmarks/results/video-<method>/<clip>/. One thread everywhere (the CPU was shared).
# Usage: benchmarks/video_intra.sh METHOD [CLIP ...] -- [extra bench options]
#   benchmarks/video_intra.sh opq -- -p opq-16-8-8 -p opq-32-8-8 -p opq-64-16-16 -p opq-128-32-32
#   benchmarks/video_intra.sh diffae bus_cif -- -p low -p medium -p high --kbps 425
set -euo pipefail
cd "$(dirname "$0")/.."
method=$1; shift
clips=()
while [[ $# -gt 0 && $1 != -- ]]; do clips+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
if [[ ${#clips[@]} -eq 0 ]]; then
  clips=(bus_cif basketballpass_416x240 bus_qcif_15fps CiscoVT2people_320x192_12fps carphone_qcif_pristine)
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for c in "${clips[@]}"; do
  src=../shared/data/video/$c.y4m
  [[ -f $src ]] || src=../shared/data/video/$c.mp4
  out=benchmarks/results/video-$method/$c
  echo "== $(date -u +%H:%M:%S) $method $c -> $out"
  python -m diffcodec bench --video "$src" -m "$method" --vs h264 --vs h265 --vs av1 --vs h264-gop \
    --device cpu --quiet -o "$out" "$@"
done
