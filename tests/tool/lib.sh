# Shared by the tool tests (tests/tool/weft_*.sh): source it after `set -euo
# pipefail` and `weft=$1`. It makes a scratch directory `work`, kills every
# process listed in `pids` and removes `work` on exit, and provides:
#   start NAME ARGS...  runs "$weft ARGS..." in the background, logging to
#                       $work/NAME.log, until it logs "… on <address>"; sets PID,
#                       ADDR (the address as logged: IPv4Address(…), IPv6Address(…)
#                       or UNIXAddress('…')) and PORT (its port, for IP addresses)
#   stop PID NAME       SIGTERM; the process must exit 0 within 30 s and log
#                       "stopped by signal 15"
#   await_text FILE TEXT [TRIES]
#                       waits (TRIES × 50 ms, default 100) until FILE holds TEXT
#                       while the process $PID lives; returns 1 if it never does
# shellcheck shell=bash
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() {
  local name=$1; shift
  "$weft" "$@" >"$work/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    [ -e "$work/$name.log" ] || { sleep 0.05; continue; }  # the background shell may not have opened it yet
    ADDR=$(sed -n "s/.* on \(IPv[46]Address([^)]*)\|UNIXAddress('[^']*')\).*/\1/p" "$work/$name.log" | head -1)
    if [ -n "$ADDR" ]; then
      PORT=$(sed -n "s/IPv[46]Address([A-Z]*, '[^']*', \([0-9]*\))/\1/p" <<<"$ADDR")
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start:"; cat "$work/$name.log"; exit 1
}

await_text() {
  local tries=${3:-100}
  for _ in $(seq "$tries"); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

stop() {
  kill -TERM "$1"
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  wait "$1" || { echo "$2 exited with $?"; cat "$work/$2.log"; exit 1; }
  grep -q "stopped by signal 15" "$work/$2.log" || { echo "$2: no clean stop"; cat "$work/$2.log"; exit 1; }
}
