#!/usr/bin/env bash
# `weft echo --lines` (a LineReceiver echo) with real clients, on every
# backend: nc and socat get each line back as it came ("\n" and "\r\n"), an
# unterminated last line after the half-close; a python3 client sends 20 000
# lines in odd chunks and gets exactly them back; a line over --max-line gets
# the error line and a closed connection (logged), and so does an endless line
# without a newline, before the client has sent it all; a UNIX socket works
# too; --lines with udp: and --max-line without --lines are usage errors; and
# SIGTERM exits 0.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

fail() { echo "$*"; exit 1; }

for backend in epoll poll select; do
  start "lines-$backend" --reactor "$backend" echo --lines --max-line 10 tcp:0:interface=127.0.0.1
  pid=$PID port=$PORT

  # Each line back as it came, "\r\n" kept; the unterminated last one after the half-close.
  printf 'one\ntwo\r\n\nthree' | nc -N 127.0.0.1 "$port" >"$work/nc.out"
  printf 'one\ntwo\r\n\nthree' | cmp - "$work/nc.out" || fail "$backend: nc got $(od -c "$work/nc.out")"
  printf 'alpha\nbeta\n' | socat -t 10 - "TCP:127.0.0.1:$port" >"$work/socat.out"
  printf 'alpha\nbeta\n' | cmp - "$work/socat.out" || fail "$backend: socat got $(od -c "$work/socat.out")"

  # Exactly --max-line bytes (not counting "\r\n") pass; one more is refused and the connection closes.
  printf '0123456789\n0123456789\r\n0123456789A\nnever\n' | nc -N 127.0.0.1 "$port" >"$work/long.out"
  printf '0123456789\n0123456789\r\nerror: line longer than 10 bytes\n' | cmp - "$work/long.out" ||
    fail "$backend: long line got $(od -c "$work/long.out")"
  grep -q "line of 11 bytes exceeds MAX_LENGTH (10 bytes); closing the connection" "$work/lines-$backend.log" ||
    fail "$backend: the refusal was not logged: $(cat "$work/lines-$backend.log")"
  # An unterminated last line is held to --max-line too: 10 bytes come back at the half-close, 11 are
  # refused (MAX_LENGTH keeps one byte more for the "\r" of "\r\n", and that byte let 11 through).
  printf '0123456789' | nc -N 127.0.0.1 "$port" >"$work/last.out"
  printf '0123456789' | cmp - "$work/last.out" || fail "$backend: a last line of 10 got $(od -c "$work/last.out")"
  printf '0123456789A' | nc -N 127.0.0.1 "$port" >"$work/lastlong.out"
  printf 'error: line longer than 10 bytes\n' | cmp - "$work/lastlong.out" ||
    fail "$backend: a last line of 11 got $(od -c "$work/lastlong.out")"
  # The same with the client's side still open: weft closes it. The line echo is its transport's
  # producer, and LineReceiver's close must not wait for it to be unregistered (FD-13).
  timeout 10 python3 - "$port" <<'PY' || fail "$backend: with the client's side open, the connection was not closed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"way too long a line\n")  # and no end of stream: only weft can close
got = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    got += b
assert got == b"error: line longer than 10 bytes\n", got
PY
  stop "$pid" "lines-$backend"
done

# Many lines in odd chunks, and an endless line: python3 checks the answers.
start lines-big echo --lines tcp:0:interface=127.0.0.1
bigPid=$PID bigPort=$PORT
python3 - "$bigPort" <<'PY'
import random, socket, sys, threading
port = int(sys.argv[1])
rng = random.Random(12)
lines = [("line %d " % i + "x" * rng.randrange(0, 200) + ("\r\n" if i % 3 == 0 else "\n")).encode() for i in range(20000)]
data = b"".join(lines)
s = socket.create_connection(("127.0.0.1", port))
def send():
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 2, 7, 100, 4096, 65536])
        s.sendall(data[pos:pos + n]); pos += n
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b: break
    got += b
t.join()
assert bytes(got) == data, "the echo differs: %d bytes back of %d" % (len(got), len(data))

# A line without end (16 MiB, no newline) is refused after --max-line (16384) bytes, long before it is all sent.
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(20)
sent = 0
try:
    while sent < 16 << 20:
        s.sendall(b"y" * 65536); sent += 65536
except (BrokenPipeError, ConnectionResetError):
    pass
answer = b""
try:
    while True:
        b = s.recv(4096)
        if not b: break
        answer += b
except ConnectionResetError:
    pass
assert answer.startswith(b"error: line longer than 16384 bytes\n") or sent < 16 << 20, answer[:100]
assert sent < 16 << 20, "the server read all %d bytes of an endless line" % sent
PY
stop "$bigPid" lines-big

# A UNIX socket.
start lines-unix echo --lines "unix:$work/lines.sock"
printf 'over unix\n' | socat -t 10 - "UNIX-CONNECT:$work/lines.sock" >"$work/unix.out"
[ "$(cat "$work/unix.out")" = "over unix" ] || fail "unix: got $(cat "$work/unix.out")"
stop "$PID" lines-unix

# Usage errors.
rc=0; "$weft" echo --lines udp:0:interface=127.0.0.1 >"$work/udp.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--lines with udp: exited $rc"
grep -q -- "--lines needs a stream endpoint" "$work/udp.log" || fail "--lines with udp: said $(cat "$work/udp.log")"
rc=0; "$weft" echo --max-line 5 tcp:0:interface=127.0.0.1 >"$work/needs.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--max-line without --lines exited $rc, not 2"
grep -q -- "--lines" "$work/needs.log" || fail "--max-line without --lines said $(cat "$work/needs.log")"
rc=0; "$weft" echo --lines --max-line 0 tcp:0:interface=127.0.0.1 >"$work/zero.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--max-line 0 exited $rc, not 2"
"$weft" echo --help | grep -q -- "--max-line" || fail "echo --help does not list --max-line"
echo "weft echo --lines: OK"
