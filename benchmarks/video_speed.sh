#!/usr/bin/env bash
# opq encode / decode frames per second on a clip through the CLI (issue #14 target: >= 10 frames/s at
# 352x288 on 2 CPU cores). Usage: benchmarks/video_speed.sh THREADS [CLIP]   (default ../shared/data/video/bus_cif.y4m)
# Prints one line per preset: the CLI's own encode_fps / decode_fps (coding loop, without Python start-up).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}; clip=${2:-../shared/data/video/bus_cif.y4m}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for p in opq-16-8-8 opq-32-8-8 opq-64-16-16 opq-128-32-32; do
  enc=$(python -m diffcodec encode "$clip" -m opq -p "$p" -o "$tmp/$p.ddc" --json --quiet)
  dec=$(python -m diffcodec decode "$tmp/$p.ddc" -o "$tmp/$p.y4m" --json --quiet)
  python - "$p" "$threads" "$enc" "$dec" <<'PY'
import json, sys
p, t, e, d = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"{p:>14} threads={t} frames={e['frames']} kbps={e['kbps']:.0f} encode_fps={e['encode_fps']:.1f} "
      f"decode_fps={d['decode_fps']:.1f}")
PY
done
