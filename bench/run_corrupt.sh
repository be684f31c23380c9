#!/usr/bin/env bash
# Corruption speed (bench/bench_corrupt.c), registered with bench/run.sh: all 19 x 5 on a 224-px
# image on one thread, then the scaling of `questbench corrupt --save` (folder generation, all 95
# per image, JPEG q85 as ImageNet-C) from 1 thread to all cores on the same images.
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
echo
"$BUILD/bench/bench_corrupt" --rounds 2 || exit 1
data=${QUESTBENCH_DATA:-}/imagenet-sample
if [ -z "${QUESTBENCH_DATA:-}" ] || [ ! -d "$data" ]; then
    echo "(folder-generation scaling skipped: \$QUESTBENCH_DATA/imagenet-sample not found)"
    exit 0
fi
n=${CORRUPT_IMAGES:-16}
all=$(nproc)
# the images go to tmpfs where there is one with room (about 2 MB per image): the scaling of the
# work, not of the disk
shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ -w /dev/shm ] && [ "${shm_kb:-0}" -gt $((n * 4096)) ]; then out=$(mktemp -d -p /dev/shm); else out=$(mktemp -d); fi
trap 'rm -rf "$out"' EXIT
# imagenet-sample is flat (<wnid>_<name>.JPEG): link the first n into an ImageFolder tree
mkdir -p "$out/data"
for f in $(ls "$data" | grep -i '\.jpe\?g$' | head -n "$n"); do
    mkdir -p "$out/data/${f%%_*}" && ln -s "$data/$f" "$out/data/${f%%_*}/$f"
done
echo "== corrupt --save: $n imagenet-sample images x 95, JPEG q85, 1 vs $all threads, into $(dirname "$out") =="
t1=
for th in 1 "$all"; do
    rm -rf "$out/gen"
    s=$(date +%s.%N)
    "$BUILD/questbench" corrupt --data "$out/data" --corruptions all --severities 1-5 --save "$out/gen" --format jpeg --quality 85 \
        --threads "$th" >/dev/null 2>&1 || { echo "corrupt --save failed"; exit 1; }
    e=$(date +%s.%N)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }')
    [ -z "$t1" ] && t1=$t
    awk -v th="$th" -v t="$t" -v t1="$t1" -v n="$n" \
        'BEGIN { printf "threads %2d  %7.2f s  %6.1f ms/image  speedup %4.2fx (%3.0f%% of linear)\n", th, t, 1000 * t / n, t1 / t, 100 * t1 / t / th }'
done
