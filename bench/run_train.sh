#!/usr/bin/env bash
# Training speed of the CIFAR-10 demo ViT (configs/train-cifar10-*.yaml: dim 128, depth 6,
# 4 heads, mlp_ratio 2, patch 4, batch 128): questbench's full training step next to PyTorch
# 1.13 training the same architecture with the same batch and threads, measured in one run.
# Run by bench/run.sh (make bench) or alone: BUILD=build bash bench/run_train.sh
set -uo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
threads=${OMP_NUM_THREADS:-$(nproc)}
iters=${TRAIN_ITERS:-4}
[ -x "$BUILD/bench/bench_train" ] || make --no-print-directory "$BUILD/bench/bench_train" >/dev/null || exit 1
echo "== training: CIFAR-10 ViT (dim 128, depth 6, patch 4), batch 128, $threads threads =="
qb_out=$(OMP_NUM_THREADS=$threads "$BUILD/bench/bench_train" --iters "$iters") || exit 1
echo "$qb_out"
if [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then
    torch_out=$("$PY" bench/torch_train.py --threads "$threads" --iters "$iters") || exit 1
    echo "$torch_out"
    echo "-- questbench / PyTorch (training images/s ratio)"
    while read -r who attn pass rate; do
        [ "$who" = torch ] || continue
        ours=$(echo "$qb_out" | awk -v a="$attn" '$1=="questbench" && $2==a {print $4}')
        [ -n "$ours" ] && awk -v a="$attn" -v o="$ours" -v t="$rate" \
            'BEGIN { printf "%-7s train  questbench %7.2f  pytorch %7.2f  ratio %5.2fx\n", a, o, t, o / t }'
    done <<< "$torch_out"
else
    echo "(PyTorch reference skipped: /usr/bin/python3 with torch not found; apt-get install python3-torch)"
fi
