#!/usr/bin/env bash
# Real clients against the weft tool over UNIX sockets, on every backend:
# nc -U and socat against `weft echo unix:PATH` (4 MiB byte-exact, socat
# half-closing first), `weft portforward` from TCP to UNIX and from UNIX to
# TCP, the socket and lock files removed on SIGTERM, and bad input: a path
# holding a regular file (refused, left untouched) and a path too long.
set -euo pipefail
weft=$1
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# start NAME ARGS... : runs weft in the background until it logs where it listens; sets PID and ADDR.
start() {
  local name=$1; shift
  "$weft" "$@" >"$work/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    ADDR=$(sed -n "s/.* on \(IPv4Address(TCP, '127.0.0.1', [0-9]*)\|UNIXAddress('[^']*')\).*/\1/p" "$work/$name.log" | head -1)
    [ -n "$ADDR" ] && return 0
    sleep 0.05
  done
  echo "$name did not start:"; cat "$work/$name.log"; exit 1
}
tcpPort() { sed -n "s/IPv4Address(TCP, '127.0.0.1', \([0-9]*\))/\1/p" <<<"$1"; }
stop() {  # stop PID NAME: SIGTERM, must exit 0 and log the signal
  kill -TERM "$1"
  wait "$1" || { echo "$2 exited with $?"; cat "$work/$2.log"; exit 1; }
  grep -q "stopped by signal 15" "$work/$2.log" || { echo "$2: no clean stop"; cat "$work/$2.log"; exit 1; }
}

head -c 4194304 /dev/urandom >"$work/payload"

for backend in epoll poll select; do
  sock="$work/echo-$backend.sock"
  start "echo-$backend" --reactor "$backend" echo "unix:$sock"
  echoPid=$PID
  [ -S "$sock" ] || { echo "$backend: no socket file"; exit 1; }
  [ -L "$sock.lock" ] || { echo "$backend: no lock file"; exit 1; }
  nc -N -U "$sock" <"$work/payload" >"$work/nc.out"
  cmp "$work/payload" "$work/nc.out" || { echo "$backend: nc -U echo differs"; exit 1; }
  socat -t 30 - "UNIX-CONNECT:$sock" <"$work/payload" >"$work/socat.out"
  cmp "$work/payload" "$work/socat.out" || { echo "$backend: socat echo differs"; exit 1; }
  # A second listener on the same path is refused while the first lives.
  if "$weft" --reactor "$backend" echo "unix:$sock:lockfile=0" >"$work/second.log" 2>&1; then
    echo "$backend: a second listener stole the path"; exit 1
  fi
  printf 'still mine\n' | nc -N -U "$sock" | grep -qx 'still mine' || { echo "$backend: first listener lost"; exit 1; }
  stop "$echoPid" "echo-$backend"
  [ ! -e "$sock" ] && [ ! -L "$sock.lock" ] || { echo "$backend: socket or lock file left behind"; exit 1; }
done

# TCP → UNIX: nc over TCP to portforward, which forwards to weft echo on a UNIX socket.
start echo-u echo "unix:$work/u.sock"
echoU=$PID
start fwd-t2u portforward tcp:0:interface=127.0.0.1 --to "unix:$work/u.sock"
fwdT2U=$PID fwdPort=$(tcpPort "$ADDR")
nc -N 127.0.0.1 "$fwdPort" <"$work/payload" >"$work/t2u.out"
cmp "$work/payload" "$work/t2u.out" || { echo "TCP→UNIX portforward differs"; exit 1; }

# UNIX → TCP: socat over UNIX to portforward, which forwards to weft echo on TCP.
start echo-t echo tcp:0:interface=127.0.0.1
echoT=$PID echoPort=$(tcpPort "$ADDR")
start fwd-u2t portforward "unix:$work/f.sock" --to "tcp:127.0.0.1:$echoPort"
fwdU2T=$PID
socat -t 30 - "UNIX-CONNECT:$work/f.sock" <"$work/payload" >"$work/u2t.out"
cmp "$work/payload" "$work/u2t.out" || { echo "UNIX→TCP portforward differs"; exit 1; }
for p in "$fwdT2U:fwd-t2u" "$fwdU2T:fwd-u2t" "$echoU:echo-u" "$echoT:echo-t"; do stop "${p%%:*}" "${p#*:}"; done

# Bad input: a regular file at the path is refused (exit 1) and left as it was.
printf 'precious\n' >"$work/regular"
if "$weft" echo "unix:$work/regular" >"$work/bad.log" 2>&1; then echo "listened on a regular file"; exit 1; fi
grep -q "Couldn't listen" "$work/bad.log" || { echo "no clear error:"; cat "$work/bad.log"; exit 1; }
[ "$(cat "$work/regular")" = "precious" ] || { echo "the regular file was changed"; exit 1; }
# A path too long for sockaddr_un: a clear error, exit 1.
long="$work/$(printf 'x%.0s' $(seq 120))"
if "$weft" echo "unix:$long:lockfile=0" >"$work/long.log" 2>&1; then echo "listened on a path too long"; exit 1; fi
grep -q "path too long" "$work/long.log" || { echo "no clear error:"; cat "$work/long.log"; exit 1; }
echo "weft unix tool tests: ok"
