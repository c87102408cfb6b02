#!/usr/bin/env bash
# Real clients against `weft echo udp:…`, on every backend: nc -u and socat
# get their datagram back, a Python client checks 200 datagrams of sizes up to
# maxPacketSize byte for byte, a datagram larger than maxPacketSize is dropped
# and logged (never delivered cut), and bad input: a malformed endpoint
# (exit 2), a port already in use (exit 1), an interface that is not an IP
# literal (exit 1).
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"


for backend in epoll poll select; do
  start "udp-$backend" --log-level info --reactor "$backend" echo udp:0:interface=127.0.0.1:maxPacketSize=2048
  pid=$PID port=$PORT
  got=$(printf 'hello over nc' | nc -u -w1 127.0.0.1 "$port" || true)
  [ "$got" = "hello over nc" ] || { echo "$backend: nc -u got '$got'"; exit 1; }
  got=$(printf 'hello over socat' | socat -t 1 - "UDP:127.0.0.1:$port")
  [ "$got" = "hello over socat" ] || { echo "$backend: socat got '$got'"; exit 1; }
  python3 - "$port" <<'PY'
import os, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("127.0.0.1", port))
for i in range(200):
    payload = os.urandom(1 + (i * 37) % 2048)
    s.send(payload)
    echoed = s.recv(65536)
    assert echoed == payload, f"datagram {i}: {len(echoed)} bytes back for {len(payload)}"
# Larger than maxPacketSize: dropped by weft, never echoed cut short.
s.send(b"x" * 4000)
s.send(b"after")
assert s.recv(65536) == b"after", "the oversized datagram came back"
PY
  stop "$pid" "udp-$backend"
  grep -q "Dropped a datagram of 4000 bytes" "$work/udp-$backend.log" || { echo "$backend: the oversized datagram was not logged"; cat "$work/udp-$backend.log"; exit 1; }
done

# Bad input.
set +e
"$weft" echo udp:notaport >"$work/bad.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "port" "$work/bad.log" || { echo "malformed endpoint: exit $rc"; cat "$work/bad.log"; exit 1; }
python3 -c 'import socket,time,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1], flush=True); time.sleep(5)' >"$work/busy" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/busy" ] && break; sleep 0.05; done
"$weft" echo "udp:$(cat "$work/busy"):interface=127.0.0.1" >"$work/inuse.log" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -qi "in use" "$work/inuse.log" || { echo "port in use: exit $rc"; cat "$work/inuse.log"; exit 1; }
"$weft" echo "udp:0:interface=localhost" >"$work/iface.log" 2>&1; rc=$?
[ $rc -eq 1 ] || { echo "a host name as interface: exit $rc"; cat "$work/iface.log"; exit 1; }
echo "weft udp tool tests: ok"
