#!/usr/bin/env bash
# The weft tool on serial lines, with a socat pty pair standing in for two
# serial ports joined by a cable (ttyA for weft, ttyB for the device's side):
#   * `weft portforward tcp:PORT:interface=127.0.0.1 --to serial:ttyA` serves
#     the line over TCP as ser2net does: 4 MiB byte-exact in each direction at
#     once (a Python client on TCP, Python on ttyB) at 115200 and at 123456
#     bps (a speed without a Bnnn constant, read back from ttyA with TCGETS2),
#     on every backend; a second client while one holds the line is refused
#     (exclusive access) and the first is undisturbed;
#   * `weft connect serial:ttyA` is a terminal to the device (pipes in and
#     out); the device hanging up ends it with status 0 after its output;
#   * bad input: a missing device, a non-terminal and bad settings give clear
#     errors and a non-zero exit.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

tcpPort() { sed -n "s/IPv4Address(TCP, '127.0.0.1', \([0-9]*\))/\1/p" <<<"$1"; }

# A socat pty pair: $work/NAME-A and $work/NAME-B. Sets SOCAT to its pid.
ptyPair() {
  socat pty,raw,echo=0,link="$work/$1-A" pty,raw,echo=0,link="$work/$1-B" 2>"$work/$1-socat.log" &
  SOCAT=$!
  pids+=("$SOCAT")
  for _ in $(seq 100); do
    [ -e "$work/$1-A" ] && [ -e "$work/$1-B" ] && return 0
    sleep 0.05
  done
  echo "socat made no pty pair:"; cat "$work/$1-socat.log"; exit 1
}

# The device's side and the network client, in one Python process.
#   duplex PORT TTY_A TTY_B IN OUT SPEED: connects to PORT, opens TTY_B raw,
#   sends IN over TCP and OUT from TTY_B at once, and checks that TTY_B gets
#   IN and the TCP client OUT, byte for byte; meanwhile reads the speed of
#   TTY_A with TCGETS2 and checks it is SPEED.
#   terminal TTY_B: answers "pong\n" to "ping\n".
cat >"$work/peer.py" <<'EOF'
import fcntl, os, select, socket, struct, sys, termios, time, tty

TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2): x86_64, arm64 and the other asm-generic targets

def open_raw(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: that would drop what already arrived
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IXON | termios.IXOFF)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd

def speed_of(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        raw = fcntl.ioctl(fd, TCGETS2, bytes(44))
    finally:
        os.close(fd)
    iflag, oflag, cflag, lflag, line, cc, ispeed, ospeed = struct.unpack("=IIIIB19sII", raw)
    return ospeed

def duplex(port, tty_a, tty_b, in_path, out_path, speed):
    to_device = open(in_path, "rb").read()
    to_client = open(out_path, "rb").read()
    dev = open_raw(tty_b)
    sock = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    sock.setblocking(False)
    # The line is open once a byte sent over TCP comes out of TTY_B (the
    # port discards what waits in the device when it opens).
    sock.send(b"S")
    deadline = time.monotonic() + 30
    got = b""
    while not got:
        if time.monotonic() > deadline:
            sys.exit("the serial side never opened")
        select.select([dev], [], [], 0.5)
        try:
            got = os.read(dev, 1)
        except BlockingIOError:
            pass
    if got != b"S":
        sys.exit("first byte on the device was %r" % got)
    actual = speed_of(tty_a)
    if actual != int(speed):
        sys.exit("ttyA runs at %d bps, not %s" % (actual, speed))
    sent_dev = sent_cli = 0
    at_device = bytearray()
    at_client = bytearray()
    deadline = time.monotonic() + 120
    while len(at_device) < len(to_device) or len(at_client) < len(to_client):
        if time.monotonic() > deadline:
            sys.exit("timed out: device got %d/%d, client got %d/%d" %
                     (len(at_device), len(to_device), len(at_client), len(to_client)))
        want_w = []
        if sent_cli < len(to_device):
            want_w.append(sock)
        if sent_dev < len(to_client):
            want_w.append(dev)
        r, w, _ = select.select([sock, dev], want_w, [], 1)
        if sock in w:
            try:
                sent_cli += sock.send(to_device[sent_cli:sent_cli + 65536])
            except BlockingIOError:
                pass
        if dev in w:
            try:
                sent_dev += os.write(dev, to_client[sent_dev:sent_dev + 4096])
            except BlockingIOError:
                pass
        if sock in r:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                sys.exit("the forwarder closed the connection early")
            if chunk:
                at_client += chunk
        if dev in r:
            try:
                at_device += os.read(dev, 65536)
            except BlockingIOError:
                pass
    if bytes(at_device) != to_device:
        sys.exit("the device got different bytes (%d)" % len(at_device))
    if bytes(at_client) != to_client:
        sys.exit("the client got different bytes (%d)" % len(at_client))
    sock.close()
    os.close(dev)

def terminal(tty_b, ready):
    dev = open_raw(tty_b)
    open(ready, "w").close()
    got = b""
    deadline = time.monotonic() + 30
    while not got.endswith(b"ping\n"):
        if time.monotonic() > deadline:
            sys.exit("no ping (got %r)" % got)
        select.select([dev], [], [], 0.5)
        try:
            got += os.read(dev, 100)
        except BlockingIOError:
            pass
    os.write(dev, b"pong\n")
    time.sleep(0.3)
    os.close(dev)

if sys.argv[1] == "duplex":
    duplex(*sys.argv[2:])
else:
    terminal(sys.argv[2], sys.argv[3])
EOF

head -c 4194304 /dev/urandom >"$work/in"
head -c 4194304 /dev/urandom >"$work/out"

# ---- portforward: the line over TCP -------------------------------------------------
for backend in epoll poll select; do
  for speed in 115200 123456; do
    ptyPair "pf-$backend-$speed"
    start "fwd-$backend-$speed" --reactor "$backend" portforward tcp:0:interface=127.0.0.1 \
      --to "serial:$work/pf-$backend-$speed-A:baudrate=$speed"
    fwd=$PID port=$(tcpPort "$ADDR")
    timeout 150 python3 "$work/peer.py" duplex "$port" "$work/pf-$backend-$speed-A" "$work/pf-$backend-$speed-B" \
      "$work/in" "$work/out" "$speed" || { echo "$backend at $speed bps: the forwarded line failed"; cat "$work/fwd-$backend-$speed.log"; exit 1; }
    stop "$fwd" "fwd-$backend-$speed"
    kill "$SOCAT"; wait "$SOCAT" 2>/dev/null || true
  done
done

# One client at a time: a second client while the first holds the line is
# refused (the device is taken: flock and TIOCEXCL), the first goes on.
ptyPair excl
start fwd-excl portforward tcp:0:interface=127.0.0.1 --to "serial:$work/excl-A"
fwd=$PID port=$(tcpPort "$ADDR")
python3 - "$port" "$work/excl-B" <<'EOF'
import os, socket, sys, termios, time, tty
port, tty_b = int(sys.argv[1]), sys.argv[2]
dev = os.open(tty_b, os.O_RDWR | os.O_NOCTTY)
tty.setraw(dev, termios.TCSANOW)
first = socket.create_connection(("127.0.0.1", port), timeout=10)
first.sendall(b"1")
if os.read(dev, 1) != b"1":
    sys.exit("the first client's byte did not reach the device")
second = socket.create_connection(("127.0.0.1", port), timeout=10)
second.settimeout(10)
if second.recv(100) != b"":
    sys.exit("the second client was served")
os.write(dev, b"still yours")
got = b""
while len(got) < 11:
    got += first.recv(100)
if got != b"still yours":
    sys.exit("the first client got %r" % got)
EOF
grep -q "in use\|busy" "$work/fwd-excl.log" || { echo "no log line for the refused client:"; cat "$work/fwd-excl.log"; exit 1; }
stop "$fwd" fwd-excl
kill "$SOCAT"; wait "$SOCAT" 2>/dev/null || true

# ---- connect: a terminal to the device ----------------------------------------------
for backend in epoll poll select; do
  ptyPair "con-$backend"
  python3 "$work/peer.py" terminal "$work/con-$backend-B" "$work/con-$backend.ready" &
  peer=$!
  pids+=("$peer")
  for _ in $(seq 200); do [ -e "$work/con-$backend.ready" ] && break; sleep 0.05; done
  mkfifo "$work/con-$backend.in"
  "$weft" --reactor "$backend" connect "serial:$work/con-$backend-A:baudrate=115200" \
    <"$work/con-$backend.in" >"$work/con-$backend.out" 2>"$work/con-$backend.err" &
  con=$!
  pids+=("$con")
  exec 3>"$work/con-$backend.in"
  printf 'ping\n' >&3
  wait "$peer" || { echo "$backend: the device side failed"; exit 1; }
  for _ in $(seq 100); do grep -q pong "$work/con-$backend.out" && break; sleep 0.05; done
  kill "$SOCAT"; wait "$SOCAT" 2>/dev/null || true  # the device hangs up
  status=0
  wait "$con" || status=$?
  exec 3>&-
  [ "$status" -eq 0 ] || { echo "$backend: weft connect exited $status"; cat "$work/con-$backend.err"; exit 1; }
  [ "$(cat "$work/con-$backend.out")" = "pong" ] || { echo "$backend: got $(od -c "$work/con-$backend.out")"; exit 1; }
done

# ---- bad input ---------------------------------------------------------------------
printf 'not a tty\n' >"$work/regular"
expectFailure() {  # expectFailure STATUS PATTERN ARGS...
  local want=$1 pattern=$2 status=0
  shift 2
  "$weft" "$@" </dev/null >"$work/bad.out" 2>"$work/bad.err" || status=$?
  [ "$status" -eq "$want" ] || { echo "weft $*: exit $status, not $want"; cat "$work/bad.err"; exit 1; }
  grep -q "$pattern" "$work/bad.err" || { echo "weft $*: no clear error:"; cat "$work/bad.err"; exit 1; }
}
expectFailure 1 "cannot open serial device '/nonexistent/ttyUSB0': No such file or directory" \
  connect serial:/nonexistent/ttyUSB0
expectFailure 1 "'$work/regular' is not a terminal" connect "serial:$work/regular"
expectFailure 1 "'/dev/null' is not a terminal" connect serial:/dev/null
expectFailure 2 "baudrate must be a positive integer (bits per second), not 'fast'" \
  connect serial:/dev/ttyUSB0:baudrate=fast
expectFailure 2 "parity must be N, E, O, M or S, not 'Q'" connect serial:/dev/ttyUSB0:parity=Q
expectFailure 2 "bytesize must be 5, 6, 7 or 8, not '9'" portforward tcp:0:interface=127.0.0.1 \
  --to serial:/dev/ttyUSB0:bytesize=9
expectFailure 2 "stopbits must be 1, 1.5 or 2, not '3'" connect serial:/dev/ttyUSB0:stopbits=3
expectFailure 2 "missing device" connect serial:
[ "$(cat "$work/regular")" = "not a tty" ] || { echo "the regular file was changed"; exit 1; }

# portforward to a missing device: the client is closed, the reason logged, the forwarder lives on.
start fwd-missing portforward tcp:0:interface=127.0.0.1 --to serial:/nonexistent/ttyUSB0
fwd=$PID port=$(tcpPort "$ADDR")
python3 - "$port" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.settimeout(10)
if s.recv(10) != b"":
    sys.exit("a client of a missing device was served")
EOF
grep -q "No such file or directory" "$work/fwd-missing.log" || { echo "no reason logged:"; cat "$work/fwd-missing.log"; exit 1; }
stop "$fwd" fwd-missing
echo "weft_serial: all passed"
