#!/usr/bin/env bash
# System calls per connection (issue #10 item 9): runs each server under `strace -c -f`, drives it
# with `loadgen connrate` (connect, send one message, read the echo, close) for a few seconds, and
# prints each system call's count divided by the number of connections the server accepted
# (its successful accept4 calls). The counts are deterministic where timings are not.
#
# Usage: bench/syscalls.sh [--build-dir DIR] [--seconds T] [--unix] NAME=COMMAND ...
#   COMMAND is the server's command line with {ADDR} where the port (or, with --unix, the
#   socket path) goes, e.g.
#   bench/syscalls.sh weft='build/release/weft echo tcp:{ADDR}:interface=127.0.0.1:backlog=4096' \
#                     libuv='build/release/bench/peers/echo_libuv {ADDR}'
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/release seconds=2 unix=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2%/}; shift ;;
    --seconds) seconds=$2; shift ;;
    --unix) unix=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *=*) break ;;
    *) echo "syscalls.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -gt 0 ] || { echo "syscalls.sh: no server given (see --help)" >&2; exit 2; }
loadgen=$build_dir/bench/loadgen
[ -x "$loadgen" ] || { echo "syscalls.sh: no $loadgen" >&2; exit 1; }
command -v strace >/dev/null || { echo "syscalls.sh: strace is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A table=()
names=()
calls=()
for spec in "$@"; do
  name=${spec%%=*} cmd=${spec#*=}
  names+=("$name")
  if [ "$unix" = 1 ]; then addr=$tmp/$name.sock; target=(--unix "$addr"); else addr=$(free_port); target=(--port "$addr"); fi
  ${cmd//\{ADDR\}/$addr} >"$tmp/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if [ "$unix" = 1 ]; then [ -S "$addr" ] && break; else ss -ltn "sport = :$addr" | grep -q LISTEN && break; fi
    sleep 0.05
  done
  strace -c -f -qq -o "$tmp/$name.strace" -p "$pid" &
  spid=$!
  sleep 0.5
  "$loadgen" connrate "${target[@]}" --concurrency 32 --seconds "$seconds" --warmup 0 >"$tmp/$name.load" 2>&1 || true
  sleep 0.3
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # strace -c: "% time seconds usecs/call calls errors syscall"; errors may be empty.
  conns=$(awk '$NF=="accept4" || $NF=="accept" {print $4 - ($6 ~ /^[0-9]+$/ ? $5 : 0)}' "$tmp/$name.strace" | head -1)
  conns=${conns:-0}
  [ "$conns" -gt 0 ] || { echo "$name: no connection accepted"; cat "$tmp/$name.load" "$tmp/$name.log" | head -5; continue; }
  while read -r call count; do
    table[$name,$call]=$count
    [[ " ${calls[*]} " == *" $call "* ]] || calls+=("$call")
  done < <(awk -v n="$conns" 'NF>=5 && $1 ~ /^[0-9.]+$/ && $NF!="total" {printf "%s %.2f\n", $NF, $4 / n}' "$tmp/$name.strace")
  table[$name,connections]=$conns
done

printf '%-16s' "per connection"; for n in "${names[@]}"; do printf '%10s' "$n"; done; echo
for c in "${calls[@]}"; do
  printf '%-16s' "$c"
  for n in "${names[@]}"; do printf '%10s' "${table[$n,$c]:--}"; done
  echo
done
printf '%-16s' "total"
for n in "${names[@]}"; do
  t=0
  for c in "${calls[@]}"; do v=${table[$n,$c]:-0}; t=$(python3 -c "print(round($t + $v, 2))"); done
  printf '%10s' "$t"
done
echo
printf '%-16s' "connections"; for n in "${names[@]}"; do printf '%10s' "${table[$n,connections]:-0}"; done; echo
