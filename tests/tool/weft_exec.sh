#!/usr/bin/env bash
# Real programs behind `weft exec`, reached by real clients, over loopback TCP
# (and tcp6 where ::1 exists), UNIX sockets and a systemd-style inherited
# socket: /bin/cat 4 MiB byte-exact through nc, socat and a Python client on
# every backend; the ucspi variables; a python3 child and bc; 64 MiB from a
# child, byte-exact, with weft's memory bounded while the client stalls; a
# client that goes away (SIGTERM to the child's process group, SIGKILL after
# --kill-grace for one that ignores SIGTERM, nothing left running);
# --max-children 1 holding a second client back; --pty with its window size
# and Ctrl-D for the peer's EOF; SIGTERM to weft with children running; bad
# input (each a one-line error and a non-zero exit) and a spawn failure at
# connection time.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

fail() { echo "$1"; [ -z "${2:-}" ] || cat "$work/$2.log"; exit 1; }
# children PID: weft's child processes, one per line (none: empty).
children() { pgrep -P "$1" || true; }
# waitNoChildren PID NAME: within 10 s weft has no child left.
waitNoChildren() {
  for _ in $(seq 100); do [ -z "$(children "$1")" ] && return 0; sleep 0.1; done
  fail "$2: children still running: $(children "$1" | tr '\n' ' ')" "$2"
}
# waitLog NAME COUNT PATTERN: within 10 s the log has COUNT lines matching PATTERN.
waitLog() {
  for _ in $(seq 100); do [ "$(grep -c -- "$3" "$work/$1.log" || true)" -ge "$2" ] && return 0; sleep 0.1; done
  fail "$1: fewer than $2 lines matching '$3'" "$1"
}
# noProcess MARKER: no process on the machine has MARKER in its command line.
noProcess() {
  for _ in $(seq 50); do pgrep -f -- "$1" >/dev/null || return 0; sleep 0.1; done
  fail "a process '$1' outlived its connection"
}
# pyclient PORT PAYLOAD: sends PAYLOAD (half-closing after it) while reading
# everything back; fails unless what came back is PAYLOAD.
pyclient() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, threading
data = open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
t.join()
sys.exit(0 if bytes(got) == data else f"python client: {len(got)} bytes back, not the {len(data)} sent")
PY
}

head -c 4194304 /dev/urandom >"$work/payload"

# ---- /bin/cat: 4 MiB both ways, byte-exact, on every backend ------------------------------------
for backend in epoll poll select; do
  start "cat-$backend" --reactor "$backend" exec tcp:0:interface=127.0.0.1 -- /bin/cat
  catPid=$PID catPort=$PORT
  nc -N 127.0.0.1 "$catPort" <"$work/payload" >"$work/nc.out"
  cmp -s "$work/payload" "$work/nc.out" || fail "$backend: nc through cat differs" "cat-$backend"
  socat -t 30 - "TCP:127.0.0.1:$catPort" <"$work/payload" >"$work/socat.out"
  cmp -s "$work/payload" "$work/socat.out" || fail "$backend: socat through cat differs" "cat-$backend"
  pyclient "$catPort" "$work/payload" || fail "$backend: python through cat differs" "cat-$backend"
  waitLog "cat-$backend" 3 "exec: pid [0-9]* exited with status 0"
  waitNoChildren "$catPid" "cat-$backend"
  stop "$catPid" "cat-$backend"
done

# ---- the ucspi variables ---------------------------------------------------------------------------------
# weft's own environment is passed on, less stale ucspi variables it may carry.
# shellcheck disable=SC2016  # expanded by the child's shell
showEnv='echo "$PROTO $TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT ${TCPREMOTEHOST-unset} $WEFT_EXEC_MARK"'
WEFT_EXEC_MARK=inherited TCPREMOTEHOST=stale start env-tcp exec tcp:0:interface=127.0.0.1 -- sh -c "$showEnv"
envPid=$PID envPort=$PORT
got=$(nc -N 127.0.0.1 "$envPort" </dev/null)
[[ "$got" =~ ^TCP\ 127\.0\.0\.1\ [0-9]+\ 127\.0\.0\.1\ $envPort\ unset\ inherited$ ]] || fail "TCP variables: '$got'" env-tcp
stop "$envPid" env-tcp

# shellcheck disable=SC2016
start env-unix exec "unix:$work/env.sock" -- sh -c 'echo "$PROTO $UNIXLOCALPATH $UNIXREMOTEEUID ${TCPLOCALPORT-none}"'
envPid=$PID
got=$(nc -N -U "$work/env.sock" </dev/null)
[ "$got" = "UNIX $work/env.sock $(id -u) none" ] || fail "UNIX variables: '$got'" env-unix
stop "$envPid" env-unix

# tcp6, where the loopback has IPv6.
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  # shellcheck disable=SC2016
  start env-tcp6 exec 'tcp6:0:interface=\:\:1' -- sh -c 'echo "$PROTO $TCPREMOTEIP $TCPLOCALPORT"'
  envPid=$PID envPort=$PORT
  got=$(nc -N ::1 "$envPort" </dev/null)
  [ "$got" = "TCP ::1 $envPort" ] || fail "tcp6 variables: '$got'" env-tcp6
  stop "$envPid" env-tcp6
fi

# systemd: a listening socket inherited as fd 3 with LISTEN_FDS/LISTEN_PID.
cat >"$work/activate.py" <<'PY'
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)  # dup2 onto itself would leave it close-on-exec
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[1], sys.argv[1:])
PY
start_systemd() {
  python3 "$work/activate.py" "$weft" "$@" >"$work/systemd.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    PORT=$(sed -n "s/.* exec on IPv4Address(TCP, '127.0.0.1', \([0-9]*\)).*/\1/p" "$work/systemd.log" 2>/dev/null | head -1)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  fail "systemd: weft did not start" systemd
}
# shellcheck disable=SC2016
start_systemd exec systemd:domain=INET:index=0 -- sh -c 'echo "$PROTO $TCPLOCALPORT"; cat'
sdPid=$PID sdPort=$PORT
got=$(printf 'via systemd\n' | nc -N 127.0.0.1 "$sdPort")
[ "$got" = "TCP $sdPort"$'\n'"via systemd" ] || fail "systemd: '$got'" systemd
stop "$sdPid" systemd

# ---- a python3 child and bc, over UNIX sockets too ---------------------------------------------------
start py exec tcp:0:interface=127.0.0.1 -- python3 -c \
  'import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())'
pyPid=$PID pyPort=$PORT
got=$(nc -N 127.0.0.1 "$pyPort" <"$work/payload")
[ "$got" = "4194304 $(sha256sum <"$work/payload" | cut -d' ' -f1)" ] || fail "python3 child: '$got'" py
stop "$pyPid" py
start bc exec tcp:0:interface=127.0.0.1 -- bc -q
bcPid=$PID bcPort=$PORT
got=$(echo '2^64' | nc -N 127.0.0.1 "$bcPort")
[ "$got" = 18446744073709551616 ] || fail "bc over TCP: '$got'" bc
stop "$bcPid" bc
start bc-unix exec "unix:$work/bc.sock" -- bc -q
bcPid=$PID
got=$(printf '2^64\n3*7\n' | nc -N -U "$work/bc.sock")
[ "$got" = $'18446744073709551616\n21' ] || fail "bc over UNIX: '$got'" bc-unix
stop "$bcPid" bc-unix

# ---- 64 MiB from a child, byte-exact, with weft's memory bounded ------------------------------------------
start big exec tcp:0:interface=127.0.0.1 -- head -c 67108864 /dev/zero
bigPid=$PID bigPort=$PORT
want=$(head -c 67108864 /dev/zero | sha256sum | cut -d' ' -f1)
got=$(nc -N 127.0.0.1 "$bigPort" </dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "64 MiB of zeros through nc differ" big
# A generator with a known digest, read by a client that stalls for 1.5 s after
# the first MiB: while it stalls weft must stop reading the child (flow
# control), so its resident memory stays near where it was before the connection.
# shellcheck disable=SC2016
python3 - "$bigPort" "$bigPid" "$work/big.log" <<'PY'
import socket, sys, time, hashlib
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.shutdown(socket.SHUT_WR)
h, n = hashlib.sha256(), 0
while n < (1 << 20):
    b = s.recv(1 << 16)
    if not b:
        sys.exit("64 MiB: the stream ended early")
    h.update(b); n += len(b)
time.sleep(1.5)
during = rss()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    h.update(b); n += len(b)
want = hashlib.sha256(b"\0" * (64 << 20)).hexdigest()
if n != 64 << 20 or h.hexdigest() != want:
    sys.exit(f"64 MiB: {n} bytes, digest {h.hexdigest()}")
if during - before > (24 << 20):
    sys.exit(f"64 MiB: weft grew by {(during - before) >> 20} MiB while the client stalled")
PY
stop "$bigPid" big
gen='import sys, hashlib
block = bytes(range(256)) * 256
for i in range(1024):
    sys.stdout.buffer.write(block)'
start gen exec tcp:0:interface=127.0.0.1 -- python3 -c "$gen"
genPid=$PID genPort=$PORT
want=$(python3 -c "$gen" | sha256sum | cut -d' ' -f1)
got=$(socat -t 30 -u "TCP:127.0.0.1:$genPort" - | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "64 MiB from a python generator differ" gen
stop "$genPid" gen

# ---- the peer goes away while the child runs ----------------------------------------------------------
# A peer's EOF alone is a half-close (its stdin closes, the output flows on, as
# the cat tests need); the peer is gone once the connection is reset or refuses
# the child's output. hold PORT LOG reset|close MARKER: connects, waits until
# weft has started the child and a process whose command line starts with
# MARKER runs, then resets the connection (SO_LINGER 0) or closes it.
hold='import glob, socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def running(marker):
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if open(path, "rb").read().replace(b"\0", b" ").startswith(marker.encode()):
                return True
        except OSError:
            pass
    return False
for _ in range(200):  # until weft has started the child, and the child what it runs
    if " for " in open(sys.argv[2]).read().split("exec on", 1)[1] and running(sys.argv[4]):
        break
    time.sleep(0.05)
else:
    sys.exit("the child did not start")
if sys.argv[3] == "reset":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()'
# A reset: the child (sh) and what it started (sleep) both end on SIGTERM to
# the child's process group; no process is left.
start gone exec tcp:0:interface=127.0.0.1 -- sh -c 'sleep 31.25; echo never'
gonePid=$PID gonePort=$PORT
python3 -c "$hold" "$gonePort" "$work/gone.log" reset "sleep 31.25"
waitLog gone 1 "exec: pid [0-9]* killed by signal 15"
waitNoChildren "$gonePid" gone
noProcess "^sleep 31.25"
stop "$gonePid" gone
# A plain close while the child writes: its next output is refused, and it ends the same way.
start ticks exec tcp:0:interface=127.0.0.1 -- sh -c 'while :; do echo tick; sleep 0.1; done'
tickPid=$PID tickPort=$PORT
python3 -c "$hold" "$tickPort" "$work/ticks.log" close "sh -c while"
waitLog ticks 1 "exec: pid [0-9]* killed by signal 15"
waitNoChildren "$tickPid" ticks
stop "$tickPid" ticks
# A child that ignores SIGTERM gets SIGKILL after --kill-grace, and so does what it started.
start stubborn exec tcp:0:interface=127.0.0.1 --kill-grace 1 -- sh -c 'trap "" TERM; sleep 31.5; echo never'
stubPid=$PID stubPort=$PORT
t0=$(date +%s%N)
python3 -c "$hold" "$stubPort" "$work/stubborn.log" reset "sleep 31.5"
waitLog stubborn 1 "exec: pid [0-9]* killed by signal 9"
elapsed=$((($(date +%s%N) - t0) / 1000000))
[ "$elapsed" -ge 900 ] || fail "SIGKILL came after $elapsed ms, before --kill-grace 1" stubborn
grep -q "still running 1 s after SIGTERM: SIGKILL" "$work/stubborn.log" || fail "no SIGKILL logged" stubborn
waitNoChildren "$stubPid" stubborn
noProcess "^sleep 31.5"
stop "$stubPid" stubborn
# A child that has exited while a process it started in a session of its own (out of the child's process
# group) holds its output open: after --kill-grace weft says so, not "still running", and closes its ends.
start held exec tcp:0:interface=127.0.0.1 --kill-grace 1 -- sh -c 'setsid sleep 31.75 & exit 0'
heldPid=$PID heldPort=$PORT
python3 -c "$hold" "$heldPort" "$work/held.log" reset "sleep 31.75"
waitLog held 1 "has exited, but its output is still held open 1 s after SIGTERM"
grep -q "still running" "$work/held.log" && fail "an exited child was said to be still running" held
waitNoChildren "$heldPid" held
pkill -f -- "^sleep 31.75" || true
stop "$heldPid" held

# ---- --max-children 1: a second client waits until the first child ends ----------------------------------
start one exec tcp:0:interface=127.0.0.1 --max-children 1 -- sh -c 'echo start; sleep 1; echo end'
onePid=$PID onePort=$PORT
python3 - "$onePort" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def lines(s):
    buf = b""
    while True:
        b = s.recv(4096)
        if not b:
            return buf.decode().split()
        buf += b
a = socket.create_connection(("127.0.0.1", port), timeout=10)
first = a.recv(6)  # "start\n": the first child runs
t0 = time.monotonic()
b = socket.create_connection(("127.0.0.1", port), timeout=10)  # queued in the backlog
b.settimeout(0.5)
try:
    early = b.recv(6)
    sys.exit(f"max-children 1: the second client got {early!r} while the first child ran")
except socket.timeout:
    pass
b.settimeout(10)
rest = lines(a)
t1 = time.monotonic()
second = lines(b)
t2 = time.monotonic()
if first != b"start\n" or rest != ["end"] or second != ["start", "end"]:
    sys.exit(f"max-children 1: got {first!r} {rest} {second}")
if t2 - t1 < 0.8:  # the second child started only once the first had ended, then ran its second
    sys.exit(f"max-children 1: the second client finished {t2 - t1:.2f} s after the first")
PY
grep -q "1 program(s) running: not accepting until one ends" "$work/one.log" || fail "no pause logged" one
waitNoChildren "$onePid" one
stop "$onePid" one

# ---- --pty: a terminal of the given size, Ctrl-D for the peer's EOF ---------------------------------------
start pty exec tcp:0:interface=127.0.0.1 --pty -- sh -c 'tty; stty size'
ptyPid=$PID ptyPort=$PORT
got=$(nc -N 127.0.0.1 "$ptyPort" </dev/null | tr -d '\r')
[[ "$got" =~ ^/dev/pts/[0-9]+$'\n'"24 80"$ ]] || fail "--pty: '$got'" pty
stop "$ptyPid" pty
start pty-window exec tcp:0:interface=127.0.0.1 --pty --window 40x100 -- sh -c 'tty; stty size'
ptyPid=$PID ptyPort=$PORT
got=$(nc -N 127.0.0.1 "$ptyPort" </dev/null | tr -d '\r')
[[ "$got" =~ ^/dev/pts/[0-9]+$'\n'"40 100"$ ]] || fail "--pty --window 40x100: '$got'" pty-window
stop "$ptyPid" pty-window
# cat on a terminal ends at the peer's EOF (Ctrl-D), after a whole line and after
# an unfinished one (two Ctrl-D then); wc counts what it read (the terminal
# echoes the input before that).
start pty-cat --reactor poll exec "unix:$work/pty.sock" --pty -- sh -c 'echo "count=$(wc -c)"'
ptyPid=$PID
got=$(printf 'hello\n' | timeout 10 nc -N -U "$work/pty.sock" | tr -d '\r ')
[[ "$got" =~ (^|$'\n')count=6$ ]] || fail "--pty, whole line then EOF: '$got'" pty-cat
got=$(printf 'hello' | timeout 10 nc -N -U "$work/pty.sock" | tr -d '\r ')
[[ "$got" =~ count=5$ ]] || fail "--pty, unfinished line then EOF: '$got'" pty-cat
stop "$ptyPid" pty-cat

# ---- stdio: one connection, weft's own standard input and output (inetd-style) ----------------------------
# The program gets them as its connection; when it has exited and its output is through, weft exits 0.
got=$(printf 'via exec\n' | timeout 10 "$weft" exec stdio: -- /bin/cat 2>"$work/stdio.err") \
  || { echo "weft exec stdio: did not exit 0 after its connection"; cat "$work/stdio.err"; exit 1; }
[ "$got" = "via exec" ] || { echo "weft exec stdio: got '$got'"; exit 1; }
if grep -q "cannot pause" "$work/stdio.err"; then echo "weft exec stdio: warns about pausing"; exit 1; fi

# ---- SIGTERM to weft with children running ---------------------------------------------------------------
# Three connected clients, each with a child; one child ignores SIGTERM: weft
# ends them all (SIGKILL after --kill-grace 1 for that one), reaps them, closes
# the connections and exits 0.
# On select, except under ThreadSanitizer: TSan defers a signal that arrives
# while the program runs its own code until the program's next intercepted
# call returns, and it does not treat select() as a blocking call, so the
# handler (and the eventfd write that would wake the loop) waits until some
# descriptor becomes ready; poll and epoll are woken (about 1 run in 15 stalled
# there on select under load, none of 20 on poll or epoll).
busyReactor=select
if nm -D "$weft" 2>/dev/null | grep -q ' __tsan_init$'; then busyReactor=poll; fi
# shellcheck disable=SC2016
start busy --reactor "$busyReactor" exec tcp:0:interface=127.0.0.1 --kill-grace 1 -- \
  sh -c 'if [ "$TCPREMOTEPORT" = "$(cat "$0")" ]; then trap "" TERM; fi; echo up; sleep 32.5' "$work/stubborn.port"
busyPid=$PID busyPort=$PORT
python3 - "$busyPort" "$busyPid" "$work/stubborn.port" <<'PY'
import os, signal, socket, sys, time
port, pid, portFile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
clients = []
for i in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    if i == 0:
        open(portFile, "w").write(str(s.getsockname()[1]))
    s.connect(("127.0.0.1", port))
    s.settimeout(10)
    if s.recv(3) != b"up\n":
        sys.exit("SIGTERM: a child did not start")
    clients.append(s)
t0 = time.monotonic()
os.kill(pid, signal.SIGTERM)
for s in clients:
    if s.recv(100) != b"":
        sys.exit("SIGTERM: a connection got more than its child wrote")
if time.monotonic() - t0 > 8:
    sys.exit("SIGTERM: the connections took too long to close")
PY
for _ in $(seq 100); do kill -0 "$busyPid" 2>/dev/null || break; sleep 0.1; done
wait "$busyPid" || fail "weft exited with $? after SIGTERM" busy
grep -q "stopped by signal 15" "$work/busy.log" || fail "no clean stop" busy
[ "$(grep -c "exec: pid [0-9]* killed by signal 15" "$work/busy.log")" -eq 2 ] || fail "two children end on SIGTERM" busy
[ "$(grep -c "exec: pid [0-9]* killed by signal 9" "$work/busy.log")" -eq 1 ] || fail "one child needs SIGKILL" busy
noProcess "^sleep 32.5"

# ---- SIGHUP (the terminal or the SSH session closed) ---------------------------------------------------------
# weft's programs run in process groups of their own, out of the terminal's reach: only weft can end them. A
# hang-up stops weft as SIGTERM does (it used to kill weft at once and leave the program running).
start hup exec tcp:0:interface=127.0.0.1 --kill-grace 1 -- sh -c 'echo up; sleep 33.5'
hupPid=$PID
python3 - "$PORT" "$hupPid" <<'PY'
import os, signal, socket, sys
port, pid = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
if s.recv(3) != b"up\n":
    sys.exit("SIGHUP: the child did not start")
os.kill(pid, signal.SIGHUP)
if s.recv(100) != b"":
    sys.exit("SIGHUP: a connection got more than its child wrote")
PY
for _ in $(seq 100); do kill -0 "$hupPid" 2>/dev/null || break; sleep 0.1; done
wait "$hupPid" || fail "weft exited with $? after SIGHUP" hup
grep -q "stopped by signal 1 (SIGHUP)" "$work/hup.log" || fail "no clean stop on SIGHUP" hup
noProcess "^sleep 33.5"
# Under nohup (SIGHUP ignored when weft starts) a hang-up stays ignored.
realWeft=$weft
weft=nohup start nohup "$realWeft" exec tcp:0:interface=127.0.0.1 -- /bin/cat
kill -HUP "$PID"
sleep 0.3
kill -0 "$PID" 2>/dev/null || fail "under nohup, SIGHUP ended weft" nohup
stop "$PID" nohup

# ---- bad input: one line, a non-zero exit, nothing hangs ----------------------------------------------------
# bad NAME WANT-STATUS PATTERN ARGS...: weft exits with WANT-STATUS ("nonzero":
# any but 0) within 10 s, printing exactly one line that matches PATTERN. (What
# CLI11 itself rejects, an option's value, is followed by the tool's usual
# "Run with --help for more information." line.)
bad() {
  local name=$1 want=$2 pattern=$3 status=0; shift 3
  timeout 10 "$weft" "$@" >"$work/$name.log" 2>&1 </dev/null || status=$?
  [ "$status" -ne 124 ] || fail "$name: weft hung" "$name"
  if [ "$want" = nonzero ]; then [ "$status" -ne 0 ] || fail "$name: exit status 0" "$name"
  else [ "$status" -eq "$want" ] || fail "$name: exit status $status, not $want" "$name"; fi
  [ "$(grep -cv '^Run with --help for more information.$' "$work/$name.log")" -eq 1 ] || fail "$name: not one line" "$name"
  head -1 "$work/$name.log" | grep -q -- "$pattern" || fail "$name: unclear error" "$name"
}
printf '#!/bin/sh\necho hi\n' >"$work/notexec"
chmod 0644 "$work/notexec"
bad missing 2 "program 'no-such-program-here' was not found on PATH" exec tcp:0:interface=127.0.0.1 -- no-such-program-here
bad missing-path 2 "program '$work/nope' does not exist" exec tcp:0:interface=127.0.0.1 -- "$work/nope"
bad missing-dir 2 "the directory '$work/no/such' does not exist" exec tcp:0:interface=127.0.0.1 -- "$work/no/such/prog"
bad not-executable 2 "program '$work/notexec' is not executable" exec tcp:0:interface=127.0.0.1 -- "$work/notexec"
bad directory 2 "program '$work' is a directory" exec tcp:0:interface=127.0.0.1 -- "$work"
bad no-dashes 2 "missing \`--\` before the program" exec tcp:0:interface=127.0.0.1 /bin/cat
bad no-program 2 "no program after \`--\`" exec tcp:0:interface=127.0.0.1 --
# The ENDPOINT forgotten: CLI11 took the first word after `--` for it ("program '-c' was not found").
bad no-endpoint 2 "missing ENDPOINT before \`--\`" exec -- sh -c true
bad no-endpoint-cat 2 "missing ENDPOINT before \`--\`" exec -- /bin/cat
bad unknown-option 2 "not expected: --frobnicate" exec tcp:0:interface=127.0.0.1 --frobnicate -- /bin/cat
bad bad-endpoint 2 "bad endpoint 'bogus:1'" exec bogus:1 -- /bin/cat
# What CLI11 rejects exits 2 too, as --help promises for bad arguments (it was 104-109, CLI11's own codes).
bad bad-window 2 "expected ROWSxCOLS" exec tcp:0:interface=127.0.0.1 --pty --window 80 -- /bin/cat
bad bad-max 2 "max-children" exec tcp:0:interface=127.0.0.1 --max-children 0 -- /bin/cat
# NaN passed CLI::Range (it compares with < and >): a NaN kill grace stopped the SIGKILL timer.
bad nan-kill-grace 2 "kill-grace" exec tcp:0:interface=127.0.0.1 --kill-grace nan -- /bin/cat
bad inf-kill-grace 2 "kill-grace" exec tcp:0:interface=127.0.0.1 --kill-grace inf -- /bin/cat
bad nan-grace 2 "grace" echo --grace nan tcp:0:interface=127.0.0.1
bad negative-grace 2 "grace" portforward --grace -1 tcp:0:interface=127.0.0.1 --to tcp:127.0.0.1:1
bad nan-seconds 2 "seconds" demo --seconds nan
bad extra-argument 2 "" echo tcp:0:interface=127.0.0.1 another
bad unix-nodir nonzero "does not exist" exec "unix:$work/no-dir/s.sock" -- /bin/cat
# A control byte in the program name is escaped, not printed.
bad control-byte 2 "program 'x\\\\ny' was not found" exec tcp:0:interface=127.0.0.1 -- $'x\ny'
# A port in use: weft cannot listen (exit 1).
start inuse exec tcp:0:interface=127.0.0.1 -- /bin/cat
inusePid=$PID inusePort=$PORT
bad port-in-use 1 "Couldn't listen" exec "tcp:$inusePort:interface=127.0.0.1" -- /bin/cat
stop "$inusePid" inuse

# ---- a spawn failure at connection time closes that connection only -------------------------------------
printf '#!/bin/sh\necho "hello from the script"\n' >"$work/script"
chmod 0755 "$work/script"
start vanish exec tcp:0:interface=127.0.0.1 -- "$work/script"
vanishPid=$PID vanishPort=$PORT
[ "$(nc -N 127.0.0.1 "$vanishPort" </dev/null)" = "hello from the script" ] || fail "the script did not run" vanish
rm "$work/script"
got=$(timeout 10 nc -N 127.0.0.1 "$vanishPort" </dev/null) || fail "the failed connection was not closed" vanish
[ -z "$got" ] || fail "a failed spawn sent '$got'" vanish
grep -q "exec: cannot start '$work/script' for IPv4Address" "$work/vanish.log" || fail "the spawn failure was not logged" vanish
printf '#!/bin/sh\necho back\n' >"$work/script"
chmod 0755 "$work/script"
[ "$(nc -N 127.0.0.1 "$vanishPort" </dev/null)" = back ] || fail "weft stopped serving after a failed spawn" vanish
stop "$vanishPid" vanish

echo "weft exec tool tests: ok"
