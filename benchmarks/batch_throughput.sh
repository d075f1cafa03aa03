#!/usr/bin/env bash
# Throughput of `diffcodec batch` (issue 19, item 6) on the first N BSDS500 val images: 1 and 2 local workers, an
# embedded Ray with 2 actors, and a loop of single-file `diffcodec encode` calls (one process, one model load per
# file) for the per-file overhead that batch amortises. Every worker has one torch thread.
#
#   benchmarks/batch_throughput.sh N OUTDIR OPTIONS...     (options both `batch` and `encode` take: -m, -p, -q, --bpp)
#   benchmarks/batch_throughput.sh 20 /tmp/batch-opq --method opq
#   benchmarks/batch_throughput.sh 100 /tmp/batch-ddcm --method ddcm --bpp 0.2
#
# Prints one row per run: wall seconds, CPU seconds (user + sys of the processes waited for: not Ray's), files/s, the
# seconds to the first file (worker start and model loading) and files/s after it. SKIP_RAY=1 leaves Ray out.
set -euo pipefail
N=$1
OUT=$2
shift 2
DATA=${DATA:-../shared/data/bsds500/val}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
find "$DATA" -maxdepth 1 -name '*.jpg' | sort | head -n "$N" > "$OUT/list.txt"

run() {
    local name=$1
    shift
    rm -rf "${OUT:?}/$name"
    /usr/bin/time -f "%e %U %S" -o "$OUT/$name.time" \
        diffcodec batch - -o "$OUT/$name" "$@" --threads 1 --json --quiet < "$OUT/list.txt" > "$OUT/$name.json"
}

run local1 "$@" --jobs 1
run local2 "$@" --jobs 2
if [ -z "${SKIP_RAY:-}" ]; then
    run ray2 "$@" --engine ray --jobs 2
fi

rm -rf "${OUT:?}/single"
mkdir -p "$OUT/single"
/usr/bin/time -f "%e %U %S" -o "$OUT/single.time" bash -c '
    out=$1; shift
    while read -r f; do
        name=$(basename "${f%.*}")
        diffcodec encode "$f" -o "$out/$name.ddc" --quiet "$@"
    done' _ "$OUT/single" "$@" < "$OUT/list.txt"

python3 - "$OUT" "$N" <<'EOF'
import json, sys
from pathlib import Path

out, n = Path(sys.argv[1]), int(sys.argv[2])
print(f"| run | wall s | CPU s | files/s | first file s | files/s after it |")
print("|---|---|---|---|---|---|")
for name in ("local1", "local2", "ray2", "single"):
    t = out / f"{name}.time"
    if not t.exists():
        continue
    wall, user, sys_ = map(float, t.read_text().split()[-3:])
    if name == "single":
        files = len(list((out / "single").glob("*.ddc")))
        print(f"| single-file encode loop | {wall:.1f} | {user + sys_:.1f} | {files / wall:.3f} | | |")
        continue
    s = json.loads((out / f"{name}.json").read_text())
    assert s["coded"] == n and s["failed"] == 0, s
    print(f"| batch {name} | {wall:.1f} | {user + sys_:.1f} | {n / wall:.3f} | {s['first_file_s']} | "
          f"{s['steady_files_per_s']} |")
EOF
