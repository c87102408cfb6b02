#!/usr/bin/env bash
# User-space instructions per message of an echo server, counted by callgrind: a
# measure that does not move with the machine's noise (compare.sh's CPU ratios do).
#
#   bench/instructions.sh unix|udp|unix-connrate SERVER [ARGS...]
#
# The server command gets the endpoint appended: `unix:PATH` or `udp:PORT:interface=127.0.0.1`
# for weft, `unix:PATH` or a port number for the peers, e.g.
#   bench/instructions.sh unix build/release/weft echo
#   bench/instructions.sh unix build/release/bench/peers/echo_libuv
#   bench/instructions.sh udp  build/release/weft echo          # udp:PORT:interface=127.0.0.1
#   bench/instructions.sh udp  build/release/bench/peers/echo_libuv_udp   # PORT
# (unix-connrate: one message per connection.) CALLGRIND_OUT=FILE keeps the profile. Needs valgrind. Prints: msgs=N Ir=TOTAL Ir/msg=PER (startup and shutdown included, so run
# long enough: --seconds 3 gives ~100 000 messages).
set -euo pipefail
mode=${1:?mode: unix, unix-connrate or udp}; shift
[ $# -ge 1 ] || { echo "usage: $0 unix|unix-connrate|udp SERVER [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
loadgen=${LOADGEN:-$here/build/release/bench/loadgen}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/callgrind.out
case $mode in
  unix|unix-connrate) endpoint="unix:$work/s.sock" ;;
  udp)
    port=$((20000 + RANDOM % 20000))
    case $(basename "$1") in weft) endpoint="udp:$port:interface=127.0.0.1" ;; *) endpoint=$port ;; esac ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
valgrind --tool=callgrind --callgrind-out-file="$out" "$@" "$endpoint" >"$work/server.log" 2>&1 &
server=$!
if [ "$mode" = udp ]; then sleep 3; else
  for _ in $(seq 200); do [ -S "$work/s.sock" ] && break; sleep 0.05; done
  sleep 0.5
fi
case $mode in
  unix) result=$("$loadgen" pingpong --conns 8 --size 64 --unix "$work/s.sock" --seconds 3 --warmup 0 --timeout 60) ;;
  unix-connrate) result=$("$loadgen" connrate --unix "$work/s.sock" --seconds 3 --warmup 0 --timeout 60) ;;
  udp) result=$("$loadgen" udp --port "$port" --conns 8 --size 64 --seconds 3 --warmup 0 --timeout 60 --dgram-timeout 1) ;;
esac
kill -TERM "$server"
wait "$server" || true
msgs=$(grep -o 'msgs=[0-9]*' <<<"$result" | head -1 | cut -d= -f2)
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
[ -n "${msgs:-}" ] && [ "$msgs" -gt 0 ] && [ -n "$total" ] || { echo "no result:"; echo "$result"; cat "$work/server.log"; exit 1; }
[ -n "${CALLGRIND_OUT:-}" ] && cp "$out" "$CALLGRIND_OUT"   # keep the profile: callgrind_annotate it
echo "msgs=$msgs Ir=$total Ir/msg=$((total / msgs))"
