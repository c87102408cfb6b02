#!/usr/bin/env bash
# Builds and runs weft's whole test suite three times: a debug build (plus the
# install test, which builds examples/ against the installed package), under
# AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
# Every test case runs in its own process under a timeout (ctest). Then the
# libFuzzer targets of tests/fuzz run for $WEFT_FUZZ_SECONDS (default 60) each
# (scripts/fuzz.sh; WEFT_FUZZ_SECONDS=0 skips them).
# Usage: scripts/test.sh [preset ...]   (default: debug asan-ubsan tsan, then the fuzzers;
#                                        "fuzz" among the presets runs the fuzzers too)
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(debug asan-ubsan tsan)
# ccache (CMakeLists.txt uses it when installed) shares objects between clones of the
# tree: paths relative to the source directory, and no working directory in the hash.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
fuzz=$([ $# -eq 0 ] && echo yes || echo no)
for p in "${presets[@]}"; do
  if [ "$p" = fuzz ]; then fuzz=yes; continue; fi
  echo "=== $p ==="
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
if [ "$fuzz" = yes ] && [ "${WEFT_FUZZ_SECONDS:-60}" != 0 ]; then
  echo "=== fuzz ==="
  scripts/fuzz.sh "${WEFT_FUZZ_SECONDS:-60}"
fi
if [ -d ../shared/spec ]; then
  python3 ../shared/tools/conformance.py || true   # the report; issues track what is still open
fi
