#!/usr/bin/env bash
# make bench: every benchmark next to its reference, measured in the same run.
# The PyTorch references need Debian's python3-torch (/usr/bin/python3); without it the
# questbench figures are printed alone, with a line saying so.
set -uo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
have_torch=0
if [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then have_torch=1; fi
threads=${OMP_NUM_THREADS:-$(nproc)}

echo "== engine: ViT-S/16 224, batch 16, $threads threads =="
qb_out=$("$BUILD/bench/bench_vit" --iters 5) || exit 1
echo "$qb_out"
if [ $have_torch = 1 ]; then
    torch_out=$("$PY" bench/torch_vit.py --threads "$threads" --iters 5) || exit 1
    echo "$torch_out"
    echo "-- questbench / PyTorch $("$PY" -c 'import torch; print(torch.__version__)') (images/s ratio)"
    sgemm_rate=$(echo "$qb_out" | awk '/^sgemm/ {for (i = 1; i < NF; i++) if ($(i+1) == "GFLOP/s;") print $i}')
    while read -r _ attn pass rate; do
        ours=$(echo "$qb_out" | awk -v a="$attn" -v p="$pass" '$1==a && $2==p {print $3, $4}')
        # 4x PyTorch in GFLOP/s, as a share of this run's sgemm rate (above 100 %: out of reach)
        [ -n "$ours" ] && awk -v a="$attn" -v p="$pass" -v o="$ours" -v t="$rate" -v g="$sgemm_rate" \
            'BEGIN { split(o, f, " "); printf "%-7s %-19s questbench %7.2f  pytorch %7.2f  ratio %5.2fx  (4x needs %.0f%% of sgemm)\n",
                     a, p, f[1], t, f[1] / t, 100 * 4 * t * (f[2] / f[1]) / g }'
    done <<< "$torch_out"
else
    echo "(PyTorch reference skipped: /usr/bin/python3 with torch not found; apt-get install python3-torch)"
fi

# further benchmarks (corruptions, attacks) register themselves below
for extra in bench/run_*.sh; do
    [ -e "$extra" ] && BUILD="$BUILD" bash "$extra"
done
exit 0
