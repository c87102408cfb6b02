#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (the "fuzz" preset: clang, weft
# compiled with fuzzer-no-link + ASan + UBSan) and runs each one for a bounded
# time, starting from a scratch copy of its seed corpus
# (tests/fuzz/corpus/<target>/, never modified) with tests/fuzz/endpoints.dict.
# Inputs that once crashed a target (tests/fuzz/regressions/<target>/) are
# replayed first. Prints one line per target; exits non-zero if any target
# crashed, leaked, timed out or hit its memory limit, leaving the input under
# build/fuzz/artifacts/<target>/ and the log under build/fuzz/work/<target>.log.
# Usage: scripts/fuzz.sh [seconds-per-target]   (default 60)
# The receiver targets (fuzz_*_receiver: small parsers, millions of runs a
# minute), fuzz_tls_server (the server side of a TLS connection fed arbitrary
# bytes), fuzz_inotify_events (the inotify record decoder) and
# fuzz_pair_packets (the Ethernet, IPv4 and UDP decoders) get half of that, so
# the nine of them add 4.5 minutes, not 9.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: $0 [seconds-per-target > 0]" >&2
  exit 2
fi
build=build/fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$build"
if ! { cmake --preset fuzz && cmake --build --preset fuzz; } >"$build/fuzz-build.log" 2>&1; then
  tail -n 40 "$build/fuzz-build.log"
  echo "fuzz: the build failed (log: $build/fuzz-build.log)" >&2
  exit 1
fi

targets=(fuzz_endpoint_description fuzz_endpoint_strings fuzz_signal_name fuzz_window_size
         fuzz_line_receiver fuzz_lineonly_receiver fuzz_netstring_receiver fuzz_int8_receiver fuzz_int16_receiver
         fuzz_int32_receiver fuzz_tls_server fuzz_inotify_events fuzz_pair_packets)
# seconds_for TARGET: the per-target budget (see the usage line).
seconds_for() {
  case $1 in
    fuzz_*_receiver | fuzz_tls_server | fuzz_inotify_events | fuzz_pair_packets) echo $(((seconds + 1) / 2)) ;;
    *) echo "$seconds" ;;
  esac
}
report='ERROR|SUMMARY|==[0-9]+==|Running:|deadly signal|#[0-9]+ 0x|terminate called|what\(\)'
failed=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t
  work=$build/work/$t
  artifacts=$build/artifacts/$t/
  log=$build/work/$t.log
  rm -rf "$work" "$artifacts"
  mkdir -p "$work/corpus" "$artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)

  regressions=()
  if [ -d tests/fuzz/regressions/"$t" ]; then
    mapfile -t regressions < <(find tests/fuzz/regressions/"$t" -type f | sort)
  fi
  if [ ${#regressions[@]} -gt 0 ] &&
     ! "$bin" -timeout=10 -rss_limit_mb=2048 "${regressions[@]}" >"$log" 2>&1; then
    grep -E "$report" "$log" | head -n 30 || true
    echo "$t: FAILED on a saved regression input (log: $log)"
    failed=1
    continue
  fi

  rc=0
  budget=$(seconds_for "$t")
  "$bin" -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 -dict=tests/fuzz/endpoints.dict \
         -artifact_prefix="$artifacts" -print_final_stats=1 "$work/corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  corpus=$(find "$work/corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    echo "$t: OK, ${execs:-?} executions in ${budget} s, corpus ${seeds} -> ${corpus} inputs"
  else
    grep -E "$report" "$log" | head -n 30 || true
    echo "$t: FAILED (exit $rc) after ${execs:-?} executions; input: $(ls "$artifacts" | sed "s|^|$artifacts|" | head -n 1); log: $log"
    failed=1
  fi
done
exit "$failed"
