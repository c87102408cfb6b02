#!/usr/bin/env bash
# Builds and runs weft's whole test suite three times: a debug build (plus the
# install test, which builds examples/ against the installed package), under
# AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
# Every test case runs in its own process under a timeout (ctest).
# Usage: scripts/test.sh [preset ...]   (default: debug asan-ubsan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(debug asan-ubsan tsan)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
for p in "${presets[@]}"; do
  echo "=== $p ==="
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
if [ -d ../shared/spec ]; then
  python3 ../shared/tools/conformance.py || true   # the report; issues track what is still open
fi
