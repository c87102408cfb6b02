#!/usr/bin/env bash
# Real clients against the weft tool, on every backend: nc and socat against
# `weft echo` (including a socat client that shuts down its write side first
# and must still get every byte back), curl through `weft portforward` to
# python3 -m http.server, a slow reader through portforward with bounded
# memory, bad endpoints, a port in use, and a clean exit 0 on SIGTERM.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"


head -c 4194304 /dev/urandom >"$work/payload"

for backend in epoll poll select; do
  start "echo-$backend" --reactor "$backend" echo tcp:0:interface=127.0.0.1
  echoPid=$PID echoPort=$PORT
  # nc: sends, shuts down its write side (-N), reads until the server closes.
  nc -N 127.0.0.1 "$echoPort" <"$work/payload" >"$work/nc.out"
  cmp "$work/payload" "$work/nc.out" || { echo "$backend: nc echo differs"; exit 1; }
  # socat: half-close after stdin's EOF, then every echoed byte before the close.
  socat -t 30 - "TCP:127.0.0.1:$echoPort" <"$work/payload" >"$work/socat.out"
  cmp "$work/payload" "$work/socat.out" || { echo "$backend: socat echo differs"; exit 1; }
  # Twenty clients at once.
  for i in $(seq 20); do (printf 'line %s\n' "$i" | nc -N 127.0.0.1 "$echoPort" >"$work/many.$i") & done
  wait $(jobs -p | grep -v -e "$echoPid") 2>/dev/null || true
  for i in $(seq 20); do grep -qx "line $i" "$work/many.$i" || { echo "$backend: client $i got nothing"; exit 1; }; done
  stop "$echoPid" "echo-$backend"
done

# curl through portforward to python's HTTP server.
mkdir "$work/www" && printf 'hello from the backend\n' >"$work/www/index.txt"
httpPort=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$httpPort" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:$httpPort/" >/dev/null && break; sleep 0.1; done
start forward portforward tcp:0:interface=127.0.0.1 --to "tcp:localhost:$httpPort"
fwdPid=$PID fwdPort=$PORT
body=$(curl -sS --max-time 10 "http://127.0.0.1:$fwdPort/index.txt")
[ "$body" = "hello from the backend" ] || { echo "curl through portforward got: $body"; exit 1; }
# Clients that reset at once: the target answers after each has gone. That is no failure to reach the
# target (it was reached), and was logged as "cannot connect to" once per client: a log flood.
python3 - "$fwdPort" <<'PY'
import socket, struct, sys
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
sleep 0.5
body=$(curl -sS --max-time 10 "http://127.0.0.1:$fwdPort/index.txt")
[ "$body" = "hello from the backend" ] || { echo "curl through portforward after resets got: $body"; exit 1; }
! grep -q "cannot connect to" "$work/forward.log" \
  || { echo "portforward warned of a reachable target:"; grep -m3 "cannot connect to" "$work/forward.log"; exit 1; }
stop "$fwdPid" forward

# A slow reader through portforward → echo: weft's memory stays bounded and the data is exact.
# The bound is on what each process grew by (it would be 64 MiB if nothing pushed back): its
# size at rest differs by build (≈ 6 MiB in release, ≈ 49 MiB under AddressSanitizer, which also
# keeps freed buffers in a quarantine, made small here so that the growth measures weft's own).
saved_asan=${ASAN_OPTIONS-}
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
start echo-slow echo tcp:0:interface=127.0.0.1
slowEcho=$PID slowEchoPort=$PORT
start forward-slow portforward tcp:0:interface=127.0.0.1 --to "tcp:127.0.0.1:$slowEchoPort"
slowFwd=$PID slowFwdPort=$PORT
if [ -n "$saved_asan" ]; then export ASAN_OPTIONS=$saved_asan; else unset ASAN_OPTIONS; fi
python3 - "$slowFwdPort" "$slowFwd" "$slowEcho" <<'PY'
import socket, sys, threading, time, hashlib
port, fwd, echo = int(sys.argv[1]), sys.argv[2], sys.argv[3]
total = 64 << 20
block = bytes(range(256)) * 256  # 64 KiB
sent_hash = hashlib.sha256()
s = socket.create_connection(("127.0.0.1", port))
def send():
    left = total
    while left:
        chunk = block[: min(len(block), left)]
        s.sendall(chunk); sent_hash.update(chunk); left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
def hwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1])
before = {pid: hwm(pid) for pid in (fwd, echo)}
t = threading.Thread(target=send); t.start()
got = hashlib.sha256(); n = 0; start = time.time()
while True:
    data = s.recv(16384)
    if not data: break
    got.update(data); n += len(data)
    if time.time() - start < 3: time.sleep(0.002)  # slow for the first seconds
t.join()
assert n == total, f"received {n} of {total}"
assert got.hexdigest() == sent_hash.hexdigest(), "data differs"
for name, pid in (("portforward", fwd), ("echo", echo)):
    kib = hwm(pid)
    print(f"{name} peak RSS {kib} KiB ({before[pid]} KiB at rest) after 64 MiB through a slow reader")
    assert kib - before[pid] < 32 * 1024, f"{name} grew by {kib - before[pid]} KiB: memory not bounded"
PY
stop "$slowFwd" forward-slow
stop "$slowEcho" echo-slow

# Bad input: a malformed endpoint (exit 2, names the problem), a port in use (exit 1).
if "$weft" echo 'tcp:notaport' >"$work/bad.log" 2>&1; then echo "bad endpoint accepted"; exit 1; fi
grep -q "notaport" "$work/bad.log" || { echo "error does not name the bad part:"; cat "$work/bad.log"; exit 1; }
start busy echo tcp:0:interface=127.0.0.1
busyPid=$PID busyPort=$PORT
set +e
"$weft" echo "tcp:$busyPort:interface=127.0.0.1" >"$work/inuse.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { echo "port in use: exit $rc"; cat "$work/inuse.log"; exit 1; }
grep -qi "address already in use" "$work/inuse.log" || { cat "$work/inuse.log"; exit 1; }
stop "$busyPid" busy

# SIGTERM while connections are open: every transport and protocol is released
# (under the ASan+UBSan build LeakSanitizer fails the exit status otherwise),
# and an idle client sees its connection closed. Cases: an idle echo client on
# each backend; portforward with an idle client whose backend is connected;
# portforward whose outbound connect is still pending (a loopback listener
# whose accept queue is full never completes the handshake).
idleCheck() {  # idleCheck NAME PORT: an idle nc client, then SIGTERM to weft ($PID); the client must be closed
  local name=$1 port=$2 pid=$PID
  rm -f "$work/idle.closed"
  (timeout 30 nc -d 127.0.0.1 "$port" >/dev/null; echo done >"$work/idle.closed") &
  pids+=("$!")
  sleep 0.4
  stop "$pid" "$name"
  for _ in $(seq 100); do [ -e "$work/idle.closed" ] && break; sleep 0.05; done
  [ -e "$work/idle.closed" ] || { echo "$name: the idle client was not disconnected at shutdown"; exit 1; }
}
for backend in epoll poll select; do
  start "idle-$backend" --reactor "$backend" echo tcp:0:interface=127.0.0.1 --grace 1
  idleCheck "idle-$backend" "$PORT"
done
start idle-target echo tcp:0:interface=127.0.0.1
targetPid=$PID targetPort=$PORT
start fwd-idle portforward tcp:0:interface=127.0.0.1 --to "tcp:127.0.0.1:$targetPort" --grace 1
idleCheck fwd-idle "$PORT"
stop "$targetPid" idle-target
python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
held = []
for _ in range(8):  # fill the accept queue: later handshakes stall
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    held.append(c)
time.sleep(30)' >"$work/full.port" &
pids+=("$!")
for _ in $(seq 100); do [ -s "$work/full.port" ] && break; sleep 0.05; done
start fwd-pending portforward tcp:0:interface=127.0.0.1 --to "tcp:127.0.0.1:$(cat "$work/full.port"):timeout=30" --grace 1
idleCheck fwd-pending "$PORT"

# What the user typed is quoted, not echoed raw: a newline, an escape sequence,
# a tab or bytes that are not UTF-8 in an argument give one line, escaped, and
# no raw control byte reaches the terminal.
rawCheck() {  # rawCheck LABEL ARGS...: weft must fail with one clean line on stderr
  local label=$1; shift
  set +e
  "$weft" "$@" >"$work/raw.out" 2>"$work/raw.err"
  local rc=$?
  set -e
  [ "$rc" -ne 0 ] || { echo "$label: accepted"; exit 1; }
  [ "$(wc -l <"$work/raw.err")" -eq 1 ] || { echo "$label: not one line:"; cat -A "$work/raw.err"; exit 1; }
  if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$work/raw.err"; then
    echo "$label: raw control bytes:"; cat -A "$work/raw.err"; exit 1
  fi
}
rawCheck newline echo -- $'tcp:\n80'
grep -qF "'tcp:\n80'" "$work/raw.err" || { echo "newline not escaped:"; cat "$work/raw.err"; exit 1; }
rawCheck escape echo -- $'tcp:\e[31m80'
grep -qF '\x1b[31m80' "$work/raw.err" || { echo "escape not escaped:"; cat "$work/raw.err"; exit 1; }
rawCheck keyword echo -- $'tcp:80:\e]0;title\a=1'
rawCheck not-utf8 echo -- $'tcp:\xff\xfe'
grep -qF '\xff\xfe' "$work/raw.err" || { echo "bytes not escaped:"; cat "$work/raw.err"; exit 1; }
rawCheck to-endpoint portforward tcp:0 --to $'tcp:\thost'
rawCheck interface echo -- $'tcp:0:interface=\e[31m'
# CLI11's usage errors add a "Run with --help" line; the offending argument is still escaped.
set +e; "$weft" --reactor $'\e[2J' echo 2>"$work/raw.err"; set -e
grep -qF '\x1b[2J' "$work/raw.err" || { echo "--reactor: not escaped:"; cat -A "$work/raw.err"; exit 1; }
if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$work/raw.err"; then echo "--reactor: raw control bytes"; exit 1; fi
# A newline in what CLI11 rejects stays in its one line, written as \n (it broke the error in two).
cliCheck() {  # cliCheck LABEL WANT ARGS...: exit 2, the error on one line holding WANT, then CLI11's hint
  local label=$1 want=$2 rc=0; shift 2
  "$weft" "$@" >"$work/cli.out" 2>"$work/cli.err" || rc=$?
  [ "$rc" -eq 2 ] || { echo "$label: exit $rc"; cat "$work/cli.err"; exit 1; }
  [ "$(grep -cv '^Run with --help for more information.$' "$work/cli.err")" -eq 1 ] \
    || { echo "$label: not one line:"; cat -A "$work/cli.err"; exit 1; }
  grep -qF -- "$want" "$work/cli.err" || { echo "$label: no '$want':"; cat "$work/cli.err"; exit 1; }
}
cliCheck reactor-newline 'ep\noll not in' --reactor $'ep\noll' echo
cliCheck value-newline 'weft echo: --max-line: 5\n is not a whole number' echo --max-line $'5\n' --lines
# Usage errors are named after the subcommand, and a word where a number belongs is called that, not "out of range".
cliCheck mtu-word 'weft tunnel: --mtu: abc is not a whole number (from 68 to 65535)' \
  tunnel tun:x --listen udp:1 --peer 127.0.0.1:1 --mtu abc
cliCheck mtu-range 'weft tunnel: --mtu: 67 is not from 68 to 65535' tunnel tun:x --listen udp:1 --peer 127.0.0.1:1 --mtu 67
cliCheck children-float 'weft exec: --max-children: 1e3 is not a whole number' exec --max-children 1e3 tcp:0 -- /bin/true
cliCheck extra-newline '--bogus\nx' echo --bogus$'\n'x
# A mistyped subcommand is named (it said "A subcommand is required"); --version answers.
cliCheck unknown-subcommand "unknown subcommand 'ehco' (one of: demo, echo, portforward" ehco
cliCheck no-subcommand "A subcommand is required"
# The global options work after the subcommand too (they were "not expected", the words reversed).
timeout 2 "$weft" echo tcp:0:interface=127.0.0.1 --reactor poll --log-level info 2>"$work/late.err" || true
grep -q "(poll reactor)" "$work/late.err" || { echo "--reactor after the subcommand:"; cat "$work/late.err"; exit 1; }
[ "$("$weft" --version)" = "weft $(sed -n 's/^project(weft VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")" ] \
  || { echo "--version: $("$weft" --version)"; exit 1; }

# stdio: serves standard input and output as its one connection (inetd-style): weft answers, then
# exits 0 once that connection has ended, with --lines and in portforward too.
got=$(printf 'one\ntwo\n' | timeout 10 "$weft" echo stdio: 2>"$work/stdio.err") \
  || { echo "weft echo stdio: did not exit 0 after its connection"; cat "$work/stdio.err"; exit 1; }
[ "$got" = $'one\ntwo' ] || { echo "weft echo stdio: got '$got'"; exit 1; }
got=$(printf 'line\n' | timeout 10 "$weft" echo --lines stdio: 2>"$work/stdio.err") \
  || { echo "weft echo --lines stdio: did not exit 0"; cat "$work/stdio.err"; exit 1; }
[ "$got" = line ] || { echo "weft echo --lines stdio: got '$got'"; exit 1; }
start fwdtarget echo tcp:0:interface=127.0.0.1
got=$(printf 'through' | timeout 10 "$weft" portforward stdio: --to "tcp:127.0.0.1:$PORT" 2>"$work/stdio.err") \
  || { echo "weft portforward stdio: did not exit 0"; cat "$work/stdio.err"; exit 1; }
[ "$got" = through ] || { echo "weft portforward stdio: got '$got'"; exit 1; }
# Its one connection's target refused: exit 1, a line naming the target and one under the
# connection's own prefix (it exited 0 and logged "Uninitialized: Unable to connect to peer").
rc=0
printf 'x' | timeout 10 "$weft" portforward stdio: --to tcp:127.0.0.1:1 >/dev/null 2>"$work/stdio.err" || rc=$?
[ "$rc" -eq 1 ] || { echo "weft portforward stdio: to a refused target exited $rc"; cat "$work/stdio.err"; exit 1; }
grep -q "cannot connect to 'tcp:127.0.0.1:1': .*refused" "$work/stdio.err" \
  || { echo "weft portforward stdio: refused target not named"; cat "$work/stdio.err"; exit 1; }
! grep -q Uninitialized "$work/stdio.err" || { echo "weft portforward: 'Uninitialized' prefix"; cat "$work/stdio.err"; exit 1; }
stop "$PID" fwdtarget

# Standard descriptors closed by the caller stand for /dev/null: the reactor's own descriptors and
# the clients' connections never take numbers 0-2, where log lines would land in them.
"$weft" echo tcp:0:interface=127.0.0.1 <&- >&- 2>&- &
closedPid=$!
pids+=("$closedPid")
# Looked at once it listens (a sanitizer's runtime may borrow low numbers before main).
for _ in $(seq 200); do
  ls -l "/proc/$closedPid/fd" 2>/dev/null | grep -q 'socket:' && break
  sleep 0.05
done
for fd in 0 1 2; do
  target=$(readlink "/proc/$closedPid/fd/$fd") || { echo "fd $fd of weft echo <&- >&- 2>&- is closed"; exit 1; }
  [ "$target" = /dev/null ] || { echo "fd $fd of weft echo <&- >&- 2>&- is $target"; exit 1; }
done
kill -TERM "$closedPid"
wait "$closedPid" || { echo "weft echo with closed standard descriptors exited $?"; exit 1; }
echo "weft tcp tool tests OK"
