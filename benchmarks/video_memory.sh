#!/usr/bin/env bash
# Peak memory of streaming clip coding: the same 1280x720 clip at 10, 50 and 132 frames, opq encode and decode
# (one thread). Peak RSS must not grow with the clip's length (issue #14, item 3).
#   bash benchmarks/video_memory.sh [CLIP] [OUTDIR]
set -euo pipefail
clip=${1:-../shared/data/video/bigbuckbunny_720p.mp4}
out=${2:-bench-out/video-memory}
mkdir -p "$out"
ffmpeg=$(python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
export OMP_NUM_THREADS=1
echo "frames,step,max_rss_kb,wall_s,file_bytes"
for n in 10 50 132; do
  "$ffmpeg" -loglevel error -y -i "$clip" -frames:v "$n" -pix_fmt yuv420p -f yuv4mpegpipe "$out/clip$n.y4m"
  for step in encode decode; do
    if [ "$step" = encode ]; then
      args=(encode "$out/clip$n.y4m" -o "$out/clip$n.ddc" -p opq-32-8-8 -f --quiet)
    else
      args=(decode "$out/clip$n.ddc" -o "$out/clip$n.out.y4m" -f --quiet)
    fi
    /usr/bin/time -f "%M %e" -o "$out/time.txt" python3 -m diffcodec "${args[@]}"
    read -r rss wall < "$out/time.txt"
    echo "$n,$step,$rss,$wall,$(stat -c %s "$out/clip$n.ddc")"
  done
  rm -f "$out/clip$n.y4m" "$out/clip$n.out.y4m"
done
