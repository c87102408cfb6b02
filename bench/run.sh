#!/usr/bin/env bash
# Builds the release preset and runs weft's micro-benchmarks, writing the
# console tables to bench/results/. Usage: bench/run.sh [min_time_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
min=${1:-0.5}
cmake --preset release >/dev/null
cmake --build --preset release --target bench_timers bench_threads >/dev/null
mkdir -p bench/results
for b in bench_timers bench_threads; do
  echo "=== $b ==="
  ./build/release/bench/$b --benchmark_min_time="$min" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true 2>&1 | tee bench/results/$b.txt
done
