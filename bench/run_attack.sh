#!/usr/bin/env bash
# PGD-10 L-inf on ViT-S/16 224: questbench attack vs PyTorch 1.13 in the same run (called by bench/run.sh).
set -uo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
threads=${OMP_NUM_THREADS:-$(nproc)}
images=${QB_BENCH_ATTACK_IMAGES:-4}
echo "== attack: PGD-10 L-inf, ViT-S/16 224, $images images, $threads threads =="
# the machine's GEMM rate, the ceiling any implementation of these passes meets: measured before
# and after the attack, the faster kept (a shared machine has slow moments)
sgemm1=$("$BUILD/bench/bench_vit" --sgemm-only) || exit 1
qb_out=$("$BUILD/bench/bench_attack" --images "$images") || exit 1
echo "$qb_out"
sgemm2=$("$BUILD/bench/bench_vit" --sgemm-only) || exit 1
sgemm_rate=$(printf '%s\n%s\n' "$sgemm1" "$sgemm2" | awk '{r = $(NF-1); if (r > m) m = r} END {print m}')
echo "sgemm 3152x1536x384: OpenBLAS (own threading) $sgemm_rate GFLOP/s (faster of before and after)"
if [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then
    torch_out=$("$PY" bench/torch_attack.py --threads "$threads" --images "$images") || exit 1
    echo "$torch_out"
    while read -r _ attn _ rate; do
        echo "$qb_out" | awk -v a="$attn" -v t="$rate" -v g="$sgemm_rate" '$1=="questbench" && $2==a {
            printf "%-6s %-16s questbench %7.3f  pytorch %7.3f img/s  ratio %5.2fx\n", a, $3, $4, t, $4 / t
            printf "%-6s %-16s questbench at %.0f%% of the sgemm rate; 4x PyTorch would need %.0f%%\n", a, $3,
                   100 * $6 / g, 100 * 4 * t * ($6 / $4) / g }'
    done <<< "$torch_out"
else
    echo "(PyTorch reference skipped: /usr/bin/python3 with torch not found)"
fi
