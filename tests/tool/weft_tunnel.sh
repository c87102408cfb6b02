#!/usr/bin/env bash
# weft tunnel (issue #13): two network namespaces joined by a veth pair, each
# running `weft tunnel` over it. ping crosses the TUN tunnel (and a TAP one),
# 64 MiB over TCP through it arrive byte-exact (socat, sha256), a datagram
# from a stranger or longer than the packet size is dropped and counted
# (SIGUSR1 and exit report), packets
# leave through a socket connected to the peer and no one else can join the
# port, an IPv6
# underlay works, a device
# the tunnel created goes away at exit while a persistent one stays (with its
# MTU put back), and bad input gets clear errors: a name too long, a name
# taken, the wrong type, bad --listen, --peer, --mtu.
# Everything happens inside namespaces this script makes and removes; it skips
# (exit 77) when not root or without /dev/net/tun, ip, socat or ping.
set -euo pipefail
weft=$1
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces and tun devices)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
for tool in ip socat ping sha256sum; do command -v "$tool" >/dev/null || skip "no $tool"; done
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
a=weft-tunnel-$$-a b=weft-tunnel-$$-b
trap 'cleanup; ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true' EXIT
ip netns add "$a" 2>/dev/null || skip "cannot create a network namespace"
ip netns add "$b"
inA() { ip netns exec "$a" "$@"; }
inB() { ip netns exec "$b" "$@"; }
# addresses DEV NET: NET.1 on DEV in namespace A, NET.2 in B, both up.
addresses() {
  inA ip addr add "$2.1/24" dev "$1" && inA ip link set "$1" up &&
    inB ip addr add "$2.2/24" dev "$1" && inB ip link set "$1" up
}
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

# The underlay: 192.168.77.1 (a) ⇄ 192.168.77.2 (b).
ip link add veth-a netns "$a" type veth peer name veth-b netns "$b"
inA ip link set lo up
inB ip link set lo up
inA ip addr add 192.168.77.1/24 dev veth-a
inB ip addr add 192.168.77.2/24 dev veth-b
inA ip link set veth-a up
inB ip link set veth-b up

# tunnel NS NAME ARGS...: `weft tunnel ARGS` in namespace NS, logging to $work/NAME.log, until it says it runs.
tunnel() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$weft" tunnel "$@" >"$work/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  await_text "$work/$name.log" "stop with Ctrl-C" && return 0
  fail "$name did not start"
}

# ---- a TUN tunnel ------------------------------------------------------------------------
tunnel "$a" tun-a tun:wtun0 --listen udp:5555:interface=192.168.77.1 --peer 192.168.77.2:5555 --mtu 1400
pa=$PID
tunnel "$b" tun-b tun:wtun0 --listen udp:5555:interface=192.168.77.2 --peer 192.168.77.1:5555 --mtu 1400
pb=$PID
grep -q "created: removed at exit" "$work/tun-a.log" || fail "tun-a did not say it created the device"
# Two UDP ports share the --listen address (one connected to the peer): each says which it is, once.
[ "$(grep -c "NetSide starting on 5555" "$work/tun-a.log")" -eq 1 ] &&
  [ "$(grep -c "PeerSide starting on 5555" "$work/tun-a.log")" -eq 1 ] ||
  fail "the two UDP ports did not each log their start once: $(cat "$work/tun-a.log")"
inA ip link show wtun0 | grep -q "mtu 1400" || fail "--mtu 1400 was not set"
addresses wtun0 10.77.0

inA ping -n -c 3 -i 0.2 -W 3 10.77.0.2 >"$work/ping.log" 2>&1 || fail "ping did not cross the tunnel"
echo "ping through the TUN tunnel: ok"

# 64 MiB over TCP, a → b, through the tunnel.
head -c 64M /dev/urandom >"$work/data"
inB socat -u TCP-LISTEN:7000,bind=10.77.0.2,reuseaddr OPEN:"$work/received",creat,trunc &
receiver=$!
pids+=("$receiver")
for _ in $(seq 100); do inB ss -ltn 'sport = :7000' | grep -q LISTEN && break; sleep 0.05; done
timeout 120 ip netns exec "$a" socat -u OPEN:"$work/data" TCP:10.77.0.2:7000 || fail "socat could not send 64 MiB"
timeout 60 tail --pid="$receiver" -f /dev/null || fail "the receiver did not finish"
sent=$(sha256sum <"$work/data" | cut -d' ' -f1)
got=$(sha256sum <"$work/received" | cut -d' ' -f1)
[ "$sent" = "$got" ] || fail "64 MiB arrived changed: $(stat -c %s "$work/received") bytes, sha256 $got"
echo "64 MiB over TCP through the tunnel: byte-exact"

# Strangers: three datagrams to b's tunnel port from another source port.
for i in 1 2 3; do
  echo "stranger $i" | inA socat -u - UDP:192.168.77.2:5555,sourceport=6000,reuseaddr
done
sleep 0.3
kill -USR1 "$pb"
for _ in $(seq 100); do grep -q "dropped: 3 datagrams from strangers" "$work/tun-b.log" && break; sleep 0.05; done
grep -q "dropped: 3 datagrams from strangers" "$work/tun-b.log" || fail "SIGUSR1 did not report 3 strangers"
echo "strangers dropped and counted: ok"

# Oversized: a datagram from the peer's address and port longer than the packet size (mtu 1400) is
# dropped and counted, however long (a raw socket sends it as a's tunnel port, which a holds).
oversize='import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for size in (1401, 4000):
    s.sendto(struct.pack("!HHHH", 5555, 5555, 8 + size, 0) + b"x" * size, ("192.168.77.2", 0))'
inA python3 -c "$oversize" || fail "could not send the oversized datagrams"
sleep 0.3
kill -USR1 "$pb"
for _ in $(seq 100); do grep -q "strangers, 2 oversized" "$work/tun-b.log" && break; sleep 0.05; done
grep -q "strangers, 2 oversized" "$work/tun-b.log" || fail "SIGUSR1 did not report 2 oversized datagrams"
grep -q "dropped a packet from the peer longer than the packet size" "$work/tun-b.log" ||
  fail "the oversized datagram was not logged"
echo "oversized datagrams from the peer dropped and counted: ok"

# Packets leave through a second socket on the port, connected to the peer (the kernel keeps its
# route); the --listen socket stays unconnected, the one that hears strangers. Nobody else may join
# the port, not even a socket asking for SO_REUSEPORT, which the two used to share it.
inA ss -Huan 'sport = :5555' >"$work/ss.log"
grep -Eq "^ESTAB .* 192\.168\.77\.1:5555 +192\.168\.77\.2:5555" "$work/ss.log" ||
  fail "no socket on :5555 connected to the peer: $(cat "$work/ss.log")"
grep -Eq "^UNCONN .* 192\.168\.77\.1:5555 " "$work/ss.log" || fail "no unconnected socket on :5555: $(cat "$work/ss.log")"
join='import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("192.168.77.1", 5555))'
if inA python3 -c "$join" 2>"$work/join.err"; then fail "a socket with SO_REUSEPORT joined the tunnel's port"; fi
grep -q "Address already in use" "$work/join.err" || fail "joining the port failed otherwise: $(cat "$work/join.err")"
echo "sends through a socket connected to the peer; the port stays closed to others: ok"

# Taken name, wrong type, port in use: clear errors while the tunnel runs.
expect_error() {  # expect_error STATUS TEXT COMMAND...
  local want=$1 text=$2 status=0; shift 2
  "$@" >"$work/error.out" 2>&1 || status=$?
  [ "$status" = "$want" ] || fail "$* exited $status, not $want: $(cat "$work/error.out")"
  grep -qF -- "$text" "$work/error.out" || fail "$* did not say \"$text\": $(cat "$work/error.out")"
}
expect_error 1 "cannot attach to tun device 'wtun0': the interface is already attached" \
  inA "$weft" tunnel tun:wtun0 --listen udp:5556 --peer 192.168.77.2:5556
expect_error 1 "an interface of that name exists and is not a TAP device" \
  inA "$weft" tunnel tap:wtun0 --listen udp:5556 --peer 192.168.77.2:5556
expect_error 1 "Address already in use" \
  inA "$weft" tunnel tun:wtun1 --listen udp:5555:interface=192.168.77.1 --peer 192.168.77.2:5555
inA ip link show wtun1 >/dev/null 2>&1 && fail "a failed start left wtun1 behind"
echo "taken name, wrong type, port in use: clear errors"

stop "$pa" tun-a
stop "$pb" tun-b
grep -q "dropped: 3 datagrams from strangers" "$work/tun-b.log" || fail "no report at exit"
grep -Eq "tun:wtun0: [1-9][0-9]* packets to the peer, [1-9][0-9]* from the peer" "$work/tun-b.log" ||
  fail "the exit report counts no packets"
inA ip link show wtun0 >/dev/null 2>&1 && fail "the device the tunnel created is still there"
echo "created devices removed at exit: ok"

# ---- a TAP tunnel: ARP and ping cross it (a listens on every address: its connected socket
# takes the route's source address, and the peer's datagrams still find it) ---------------------
tunnel "$a" tap-a tap:wtap0 --listen udp:5557 --peer 192.168.77.2:5557
pa=$PID
tunnel "$b" tap-b tap:wtap0 --listen udp:5557:interface=192.168.77.2 --peer 192.168.77.1:5557
pb=$PID
addresses wtap0 10.78.0
inA ping -n -c 2 -i 0.2 -W 3 10.78.0.2 >"$work/ping-tap.log" 2>&1 || fail "ping did not cross the TAP tunnel"
inA ss -Huan 'sport = :5557' | grep -Eq "^ESTAB .* 192\.168\.77\.1:5557 +192\.168\.77\.2:5557" ||
  fail "the wildcard listener has no socket connected to the peer: $(inA ss -Huan 'sport = :5557')"
stop "$pa" tap-a
stop "$pb" tap-b
grep -q "dropped: 0 datagrams from strangers" "$work/tap-a.log" || fail "the wildcard listener took its peer for a stranger"
echo "ping through the TAP tunnel: ok"

# ---- an IPv6 underlay (the peer written unlike the kernel writes it) ---------------------------
inA ip addr add fd00:77::1/64 dev veth-a nodad
inB ip addr add fd00:77::2/64 dev veth-b nodad
tunnel "$a" six-a tun:wsix0 --listen 'udp:5560:interface=fd00\:77\:\:1' --peer '[fd00:77:0::2]:5560'
pa=$PID
tunnel "$b" six-b tun:wsix0 --listen 'udp:5560:interface=fd00\:77\:\:2' --peer '[fd00:77::1]:5560'
pb=$PID
addresses wsix0 10.79.0
inA ping -n -c 2 -i 0.2 -W 3 10.79.0.2 >"$work/ping-six.log" 2>&1 || fail "ping did not cross the IPv6-carried tunnel"
stop "$pa" six-a
stop "$pb" six-b
grep -q "dropped: 0 datagrams from strangers" "$work/six-a.log" || fail "the IPv6 peer was taken for a stranger"
echo "ping through a tunnel over IPv6: ok"

# ---- a persistent device stays, with its MTU put back -----------------------------------------
inA ip tuntap add dev wpers0 mode tun
tunnel "$a" pers tun:wpers0 --listen udp:5558 --peer 192.168.77.2:5558 --mtu 1300
grep -q "existing: left in place at exit" "$work/pers.log" || fail "the tunnel did not see wpers0 existed"
inA ip link show wpers0 | grep -q "mtu 1300" || fail "--mtu 1300 was not set on wpers0"
stop "$PID" pers
inA ip link show wpers0 >/dev/null 2>&1 || fail "the persistent device was removed"
inA ip link show wpers0 | grep -q "mtu 1500" || fail "the MTU of wpers0 was not put back"
echo "a persistent device stays, MTU put back: ok"

# A persistent device made with a packet-information prefix and virtio headers keeps them: the
# kernel keeps the flags of the last attachment (weft's noPI) on the device, so weft puts its own back.
inA ip tuntap add dev wpi0 mode tun pi vnet_hdr
flags_before=$(inA cat /sys/class/net/wpi0/tun_flags)
tunnel "$a" pi tun:wpi0 --listen udp:5561 --peer 192.168.77.2:5561
stop "$PID" pi
flags_after=$(inA cat /sys/class/net/wpi0/tun_flags)
[ "$flags_before" = "$flags_after" ] || fail "wpi0's flags were $flags_before before weft tunnel, $flags_after after"
inA ip -d link show wpi0 | grep -q "pi on vnet_hdr on" || fail "wpi0 lost pi or vnet_hdr: $(inA ip -d link show wpi0)"
inA ip tuntap del dev wpi0 mode tun pi vnet_hdr
# A device made with multi_queue is refused as such, not as "the other type".
inA ip tuntap add dev wmq0 mode tun multi_queue
expect_error 1 "the TUN device was made with multi_queue" \
  inA "$weft" tunnel tun:wmq0 --listen udp:5562 --peer 192.168.77.2:5562
inA ip tuntap del dev wmq0 mode tun multi_queue
echo "a persistent device keeps its pi and vnet_hdr; a multi_queue one is named as such: ok"

# ---- bad input ----------------------------------------------------------------------------
expect_error 2 "'abcdefghijklmnopq': 17 bytes, at most 15 allowed" \
  inA "$weft" tunnel tun:abcdefghijklmnopq --listen udp:5559 --peer 192.168.77.2:5559
expect_error 2 "expected tun:NAME or tap:NAME" inA "$weft" tunnel eth:x --listen udp:5559 --peer 192.168.77.2:1
expect_error 2 "give the interface a name" inA "$weft" tunnel tun: --listen udp:5559 --peer 192.168.77.2:1
expect_error 2 "bad --listen endpoint 'tcp:5559'" inA "$weft" tunnel tun:x --listen tcp:5559 --peer 192.168.77.2:1
expect_error 2 "expected HOST:PORT" inA "$weft" tunnel tun:x --listen udp:5559 --peer 192.168.77.2
expect_error 2 "the port must be a number in 1..65535" inA "$weft" tunnel tun:x --listen udp:5559 --peer h:0
expect_error 2 "is not IPv4" inA "$weft" tunnel tun:x --listen udp:5559 --peer '[::1]:5559'
# The hint names a --listen value weft takes: the colons of :: escaped.
grep -qF 'give interface=\:\: in --listen' "$work/error.out" || fail "the IPv6 hint is not usable: $(cat "$work/error.out")"
expect_error 2 "cannot resolve the --peer host 'no.such.host.invalid'" \
  inA "$weft" tunnel tun:x --listen udp:5559 --peer no.such.host.invalid:1
status=0
inA "$weft" tunnel tun:x --listen udp:5559 --peer 192.168.77.2:1 --mtu 10 >"$work/error.out" 2>&1 || status=$?
[ "$status" != 0 ] && grep -q -- "--mtu" "$work/error.out" || fail "--mtu 10 was accepted: $(cat "$work/error.out")"
inA ip link show x >/dev/null 2>&1 && fail "bad input left a device behind"
echo "bad input: clear errors"
echo "weft tunnel: all good"
