#!/usr/bin/env bash
# `weft connect` for real (issue #11): stdin and stdout joined to a connection
# through `weft echo`, over TCP and UNIX sockets, on every backend; 1 GiB both
# ways byte-exact; end of stdin half-closes (the echo's answer still arrives);
# a peer that closes first; refused and bad endpoints.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

tcpPort() { sed -n "s/IPv4Address(TCP, '127.0.0.1', \([0-9]*\))/\1/p" <<<"$1"; }

head -c 4194304 /dev/urandom >"$work/payload"
start echo echo tcp:0:interface=127.0.0.1
port=$(tcpPort "$ADDR")
start uecho echo "unix:$work/echo.sock"

for backend in epoll poll select; do
  timeout 60 "$weft" --reactor "$backend" connect "tcp:127.0.0.1:$port" <"$work/payload" >"$work/out" \
    || { echo "$backend: weft connect failed"; exit 1; }
  cmp "$work/payload" "$work/out" || { echo "$backend: TCP round trip differs"; exit 1; }
  timeout 60 "$weft" --reactor "$backend" connect "unix:$work/echo.sock" <"$work/payload" >"$work/out" \
    || { echo "$backend: weft connect over UNIX failed"; exit 1; }
  cmp "$work/payload" "$work/out" || { echo "$backend: UNIX round trip differs"; exit 1; }
done

# 1 GiB both ways, byte-exact (a 64 MiB block 16 times; both sides hashed as they stream).
head -c 67108864 /dev/urandom >"$work/block"
want=$(for _ in $(seq 16); do cat "$work/block"; done | sha256sum | cut -d' ' -f1)
got=$(for _ in $(seq 16); do cat "$work/block"; done | timeout 300 "$weft" connect "tcp:127.0.0.1:$port" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "1 GiB through weft connect and weft echo differs"; exit 1; }

# End of stdin half-closes: a server that answers only after EOF still gets its answer through.
python3 - "$work/eof.port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept()
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk: break
    data += chunk
c.sendall(b"got %d bytes\n" % len(data)); c.close()
PY
pids+=($!)
for _ in $(seq 100); do [ -s "$work/eof.port" ] && break; sleep 0.05; done
answer=$(printf 'twelve bytes' | timeout 20 "$weft" connect "tcp:127.0.0.1:$(cat "$work/eof.port")")
[ "$answer" = "got 12 bytes" ] || { echo "half-close: got '$answer'"; exit 1; }

# A peer that closes first: what it sent is written out and weft exits 0 while stdin stays open.
python3 - "$work/first.port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept(); c.sendall(b"bye\n" * 10000); c.close()
PY
pids+=($!)
for _ in $(seq 100); do [ -s "$work/first.port" ] && break; sleep 0.05; done
( sleep 30 | timeout 20 "$weft" connect "tcp:127.0.0.1:$(cat "$work/first.port")" >"$work/first.out" ) \
  || { echo "peer closing first: weft connect did not exit 0"; exit 1; }
[ "$(wc -l <"$work/first.out")" = 10000 ] || { echo "peer closing first: output lost"; exit 1; }

# Refused and bad endpoints: non-zero, one line naming the endpoint.
if "$weft" connect tcp:127.0.0.1:1 </dev/null >"$work/refused.out" 2>"$work/refused.err"; then
  echo "a refused connection exited 0"; exit 1
fi
grep -q "cannot connect to 'tcp:127.0.0.1:1'" "$work/refused.err" || { echo "refused: message"; cat "$work/refused.err"; exit 1; }
[ "$(wc -l <"$work/refused.err")" = 1 ] || { echo "refused: more than one line"; cat "$work/refused.err"; exit 1; }
if "$weft" connect "unix:$work/none.sock" </dev/null 2>"$work/nounix.err"; then echo "missing UNIX socket exited 0"; exit 1; fi
grep -q "none.sock" "$work/nounix.err" || { echo "missing UNIX socket: message"; cat "$work/nounix.err"; exit 1; }
set +e
"$weft" connect 'nope:x' </dev/null 2>"$work/bad.err"; status=$?
set -e
[ "$status" = 2 ] || { echo "bad endpoint: exit $status"; exit 1; }
grep -q "Unknown endpoint type" "$work/bad.err" || { echo "bad endpoint: message"; cat "$work/bad.err"; exit 1; }
# Standard output that ends: its reader goes away (EPIPE: `| head`), or the device is full. weft
# drops the connection at once (nothing the peer sends can go anywhere): quietly with status 0 for
# a reader that left, as `weft watch` does; saying why in one line with status 1 otherwise.
set +e
head -c 10000000 /dev/zero | timeout 20 "$weft" connect "tcp:127.0.0.1:$port" 2>"$work/epipe.err" | head -c 100 >/dev/null
status=${PIPESTATUS[1]}
set -e
[ "$status" = 0 ] || { echo "stdout's reader gone: exit $status (124: weft hung)"; cat "$work/epipe.err"; exit 1; }
[ ! -s "$work/epipe.err" ] || { echo "stdout's reader gone: said something"; cat "$work/epipe.err"; exit 1; }
set +e  # the same over a UNIX socket, whose transport is no ITCPTransport
head -c 10000000 /dev/zero | timeout 20 "$weft" connect "unix:$work/echo.sock" 2>"$work/epipe.err" | head -c 100 >/dev/null
status=${PIPESTATUS[1]}
set -e
[ "$status" = 0 ] || { echo "UNIX, stdout's reader gone: exit $status (124: weft hung)"; cat "$work/epipe.err"; exit 1; }
set +e
echo hi | timeout 20 "$weft" connect "tcp:127.0.0.1:$port" >/dev/full 2>"$work/full.err"; status=$?
set -e
[ "$status" = 1 ] || { echo "stdout on /dev/full: exit $status"; cat "$work/full.err"; exit 1; }
grep -q "cannot write standard output: No space left on device$" "$work/full.err" || { echo "ENOSPC: message"; cat "$work/full.err"; exit 1; }

# Standard descriptors closed at start stand for /dev/null: no reactor descriptor takes their numbers.
echo hi | timeout 20 "$weft" connect "tcp:127.0.0.1:$port" >&- 2>"$work/noout.err" \
  || { echo "closed stdout: non-zero exit"; cat "$work/noout.err"; exit 1; }
[ ! -s "$work/noout.err" ] || { echo "closed stdout: errors"; cat "$work/noout.err"; exit 1; }
got=$(timeout 20 "$weft" connect "tcp:127.0.0.1:$port" <&- 2>"$work/noin.err") \
  || { echo "closed stdin: non-zero exit"; cat "$work/noin.err"; exit 1; }
[ -z "$got" ] && [ ! -s "$work/noin.err" ] || { echo "closed stdin: '$got'"; cat "$work/noin.err"; exit 1; }
echo hi | timeout 20 "$weft" connect "tcp:127.0.0.1:$port" 2>&- >"$work/noerr.out" || { echo "closed stderr: non-zero exit"; exit 1; }
[ "$(cat "$work/noerr.out")" = hi ] || { echo "closed stderr: output"; exit 1; }
# Stopped while the connection is still being made (a listener whose queue is full drops the SYN):
# SIGTERM exits 0, as every subcommand stops, without reporting a failure to connect (it said "cannot
# connect to …: … lost in a non-clean fashion.."), and SIGHUP, a terminal's hang-up, the same way.
timeout 30 python3 - "$weft" <<'PY' || { echo "stopped while connecting: see above"; exit 1; }
import signal, socket, subprocess, sys, time
weft = sys.argv[1]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
fillers = []
for _ in range(4):  # fill the accept queue; later SYNs are dropped and the connects stay pending
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    fillers.append(c)
time.sleep(0.2)
for sig, want in ((signal.SIGTERM, 0), (signal.SIGHUP, 0)):
    p = subprocess.Popen([weft, "connect", "tcp:127.0.0.1:%d" % port], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.send_signal(sig)
    _, err = p.communicate(timeout=10)
    if p.returncode != want or b"cannot connect" in err:
        sys.exit("signal %d while connecting: exit %d, said %r" % (sig, p.returncode, err))
PY
# Stopped while connected: what the peer sent is on standard output, nothing is reported as lost
# (it said "cannot write standard output: … non-clean fashion" or "connection … lost"), exit 0.
timeout 60 python3 - "$weft" "$port" <<'PY' || { echo "stopped while connected: see above"; exit 1; }
import signal, subprocess, sys, time
weft, port = sys.argv[1], sys.argv[2]
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    p = subprocess.Popen([weft, "connect", "tcp:127.0.0.1:%s" % port], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"data\n")
    p.stdin.flush()
    got = p.stdout.read(5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    if p.returncode != 0 or got != b"data\n" or b"lost" in err or b"cannot" in err:
        sys.exit("signal %d while connected: exit %d, out %r, said %r" % (sig, p.returncode, got + out, err))
PY
"$weft" connect --help | grep -q "half-closes" || { echo "no --help"; exit 1; }
echo "weft connect: all checks passed"
