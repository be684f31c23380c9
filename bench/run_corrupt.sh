#!/usr/bin/env bash
# Corruption speed (bench/bench_corrupt.c), registered with bench/run.sh.
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
echo
"$BUILD/bench/bench_corrupt" --rounds 2
