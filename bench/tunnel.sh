#!/usr/bin/env bash
# weft tunnel against a plain C loop (issue #13): packets per second and MB/s through a
# point-to-point TUN tunnel between two network namespaces, side by side in one run, CPU time per
# packet and system calls per packet.
#
# Topology: namespaces A and B joined by a veth pair (192.168.88.1 ⇄ .2). Each runs one endpoint
# on a TUN device wb0 (MTU 1400, inner addresses 10.88.0.1 and .2): `weft tunnel`, or
# bench/peers/tunnel_loop (the ceiling: poll, read the device, sendto; recvfrom, write the
# device). bench/peers/udp_blast sends from A to 10.88.0.2 and counts in B what comes out of B's
# device (recvmmsg). So endpoint A reads the device and sends UDP, endpoint B receives UDP and
# writes the device.
#
# Scenarios: small (64-byte payloads: the packet rate) and large (1372-byte payloads, a full
# 1400-byte inner packet: MB/s). For each, each peer climbs a ladder of offered rates (--rates,
# packets/s, --step-seconds each, paced by udp_blast) and its sustained rate is the highest step it
# carries with at most --max-loss % lost; the climb stops at the first step it fails twice in a
# row (a step is run again once when it fails: other work on the machine costs a step). An unpaced
# flood is no measure on a small machine: the sender takes the CPU the tunnels need. At the step
# of --cpu-rate packets/s the CPU time of each endpoint (/proc/PID/schedstat, in ns) per packet
# delivered is recorded: the cost at equal load. Peers alternate within each round, the first
# rotating from round to round; tables show medians over the rounds and the median of the
# per-round weft/C ratios.
#
# Then the system calls per forwarded packet, two ways (counts divided by the packets each
# endpoint forwarded, from its own report at exit):
#   loaded   perf stat -e on the syscall tracepoints of both endpoints while --cpu-rate small
#            datagrams a second go through for --step-seconds (cheap enough not to change the run;
#            skipped without perf)
#   paced    strace -c -f on both endpoints while --paced-count small datagrams go through at
#            --paced-rate a second (strace slows every call; at that rate packets mostly wake the
#            loop one at a time, the worst case per packet)
#
# Needs root (namespaces, tun devices). Builds nothing; build first (release preset):
#   cmake --preset release && cmake --build build/release --target weft_tool tunnel_loop udp_blast
#
# Usage: bench/tunnel.sh [--build-dir DIR] [--rounds R] [--peers weft,c] [--scenarios small,large]
#                        [--rates R1,R2,...] [--step-seconds S] [--max-loss PCT] [--cpu-rate R]
#                        [--paced-rate P] [--paced-count N] [--no-syscalls]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/release rounds=3 peers=weft,c scenarios=small,large
rates=20000,30000,40000,45000,50000,55000,60000,65000,70000,75000,80000,85000,90000,100000,110000,120000,130000,140000,150000,165000,180000
step_seconds=2 max_loss=1 cpu_rate=20000 paced_rate=5000 paced_count=10000 syscalls=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2%/}; shift ;;
    --rounds) rounds=$2; shift ;;
    --rates) rates=$2; shift ;;
    --step-seconds) step_seconds=$2; shift ;;
    --max-loss) max_loss=$2; shift ;;
    --cpu-rate) cpu_rate=$2; shift ;;
    --peers) peers=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --paced-rate) paced_rate=$2; shift ;;
    --paced-count) paced_count=$2; shift ;;
    --no-syscalls) syscalls=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "tunnel.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "tunnel.sh: needs root (network namespaces, tun devices)" >&2; exit 1; }
weft=$build_dir/weft loop=$build_dir/bench/peers/tunnel_loop blast=$build_dir/bench/peers/udp_blast
for f in "$weft" "$loop" "$blast"; do [ -x "$f" ] || { echo "tunnel.sh: no $f (see --help)" >&2; exit 1; }; done
IFS=, read -r -a peer_list <<<"$peers"
IFS=, read -r -a scenario_list <<<"$scenarios"
IFS=, read -r -a rate_list <<<"$rates"

tmp=$(mktemp -d)
a=weft-bench-$$-a b=weft-bench-$$-b
endpoint_pids=()
cleanup() {
  for p in "${endpoint_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add veth-a netns "$a" type veth peer name veth-b netns "$b"
ip -n "$a" addr add 192.168.88.1/24 dev veth-a
ip -n "$b" addr add 192.168.88.2/24 dev veth-b
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set veth-a up
ip -n "$b" link set veth-b up

# CPU time of a (single-threaded) process in ns: /proc/PID/schedstat, else utime+stime in ticks.
if [ -r /proc/self/schedstat ]; then
  cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
else
  cpu_ns() { awk -v h="$(getconf CLK_TCK)" '{printf "%.0f\n", ($14 + $15) * 1e9 / h}' "/proc/$1/stat"; }
fi

# start_endpoints PEER: one endpoint in each namespace, wb0 configured; sets PID_A, PID_B.
start_endpoints() {
  local peer=$1 ns self other side
  for side in a b; do
    if [ $side = a ]; then ns=$a self=192.168.88.1 other=192.168.88.2; else ns=$b self=192.168.88.2 other=192.168.88.1; fi
    if [ "$peer" = weft ]; then
      ip netns exec "$ns" "$weft" --log-level warn tunnel tun:wb0 --listen "udp:5555:interface=$self" \
        --peer "$other:5555" --mtu 1400 >"$tmp/$peer-$side.out" 2>"$tmp/$peer-$side.log" &
    else
      ip netns exec "$ns" "$loop" wb0 "$self" 5555 "$other" 5555 1400 >"$tmp/$peer-$side.out" 2>"$tmp/$peer-$side.log" &
    fi
    local pid=$!
    endpoint_pids+=("$pid")
    if [ $side = a ]; then PID_A=$pid; else PID_B=$pid; fi
    for _ in $(seq 200); do
      ip netns exec "$ns" ss -Hlun "sport = :5555" | grep -q . && ip -n "$ns" link show wb0 >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || { echo "tunnel.sh: $peer endpoint $side did not start:"; cat "$tmp/$peer-$side.log"; exit 1; }
      sleep 0.02
    done
  done
  ip -n "$a" addr add 10.88.0.1/24 dev wb0
  ip -n "$b" addr add 10.88.0.2/24 dev wb0
  ip -n "$a" link set wb0 up
  ip -n "$b" link set wb0 up
  # The path works (and both queues are active) before anything is measured.
  ip netns exec "$a" ping -n -q -c 1 -W 2 10.88.0.2 >/dev/null || { echo "tunnel.sh: no path through $peer"; exit 1; }
}

stop_endpoints() {
  kill -TERM "$PID_A" "$PID_B"
  wait "$PID_A" "$PID_B" || true
  endpoint_pids=()
}

# forwarded LOG: "to the peer" and "from the peer" counts an endpoint reported at exit.
forwarded() { sed -n 's/.*: \([0-9]*\) packets to the peer, \([0-9]*\) from the peer.*/\1 \2/p' "$1" | tail -n 1; }

# traffic SIZE COUNT SECONDS [RATE]: B counts, A sends; prints "sent received bytes seconds".
traffic() {
  local size=$1 n=$2 limit=$3 rate=${4:-}
  ip netns exec "$b" "$blast" recv 10.88.0.2 9000 0.5 $((limit + 10)) >"$tmp/recv.out" 2>"$tmp/recv.err" &
  local receiver=$!
  for _ in $(seq 100); do grep -q ready "$tmp/recv.err" 2>/dev/null && break; sleep 0.02; done
  ip netns exec "$a" "$blast" send 10.88.0.2 9000 "$size" "$n" "$limit" $rate >"$tmp/send.out"
  wait "$receiver"
  local sent received bytes secs
  sent=$(sed -n 's/sent=\([0-9]*\).*/\1/p' "$tmp/send.out")
  received=$(sed -n 's/received=\([0-9]*\).*/\1/p' "$tmp/recv.out")
  bytes=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$tmp/recv.out")
  secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$tmp/recv.out")
  echo "$sent $received $bytes $secs"
}

size_of() { if [ "$1" = small ]; then echo 64; else echo 1372; fi; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

declare -A pps mbs cpua cpub
echo "tunnel.sh: $rounds round(s), rates $rates, ${step_seconds}s a step, at most ${max_loss}% lost; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at start"
for round in $(seq "$rounds"); do
  order=("${peer_list[@]}")
  shift_by=$(((round - 1) % ${#order[@]}))
  order=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
  for scenario in "${scenario_list[@]}"; do
    for peer in "${order[@]}"; do
      start_endpoints "$peer"
      best=0 best_mbs=0 steps=""
      for rate in "${rate_list[@]}"; do
        # A step that loses too much is run once more before the climb stops: the machine is shared.
        for attempt in 1 2; do
          ca0=$(cpu_ns "$PID_A") cb0=$(cpu_ns "$PID_B")
          read -r sent received bytes secs < <(traffic "$(size_of "$scenario")" $((rate * step_seconds)) $((step_seconds + 1)) "$rate")
          ca1=$(cpu_ns "$PID_A") cb1=$(cpu_ns "$PID_B")
          lost=$(awk -v n="$received" -v t="$sent" 'BEGIN {printf "%.2f", (t > 0 ? 100 * (1 - n / t) : 100)}')
          steps+="$rate:$lost% "
          awk -v l="$lost" -v m="$max_loss" 'BEGIN {exit !(l <= m)}' && break
        done
        if [ "$rate" = "$cpu_rate" ]; then
          key=$scenario,$peer
          cpua[$key]+="$(awk -v c=$((ca1 - ca0)) -v n="$received" 'BEGIN {printf "%.2f", (n > 0 ? c / 1e3 / n : 0)}') "
          cpub[$key]+="$(awk -v c=$((cb1 - cb0)) -v n="$received" 'BEGIN {printf "%.2f", (n > 0 ? c / 1e3 / n : 0)}') "
        fi
        awk -v l="$lost" -v m="$max_loss" 'BEGIN {exit !(l <= m)}' || break
        best=$rate
        best_mbs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.1f", (s > 0 ? b / s / 1e6 : 0)}')
      done
      stop_endpoints
      pps[$scenario,$peer]+="$best "
      mbs[$scenario,$peer]+="$best_mbs "
      echo "round $round $scenario $peer: sustained $best packets/s ($best_mbs MB/s); lost per step: $steps"
    done
  done
done

echo
echo "| scenario | peer | sustained packets/s | MB/s (payload) at that rate | CPU µs/packet at $cpu_rate/s, A (read device, send) | B (receive, write device) |"
echo "|---|---|---|---|---|---|"
for scenario in "${scenario_list[@]}"; do
  for peer in "${peer_list[@]}"; do
    key=$scenario,$peer
    printf '| %s | %s | %s | %s | %s | %s |\n' "$scenario" "$peer" \
      "$(tr ' ' '\n' <<<"${pps[$key]}" | grep . | median)" "$(tr ' ' '\n' <<<"${mbs[$key]}" | grep . | median)" \
      "$(tr ' ' '\n' <<<"${cpua[$key]:-}" | grep . | median)" "$(tr ' ' '\n' <<<"${cpub[$key]:-}" | grep . | median)"
  done
done
if [[ " ${peer_list[*]} " == *" weft "* && " ${peer_list[*]} " == *" c "* ]]; then
  ratio() {  # ratio ARRAY-NAME KEY-WEFT KEY-C
    local -n values=$1
    read -r -a w <<<"${values[$2]:-}"
    read -r -a c <<<"${values[$3]:-}"
    for i in "${!w[@]}"; do awk -v x="${w[$i]}" -v y="${c[$i]:-0}" 'BEGIN {if (y > 0) printf "%.3f\n", x / y}'; done
  }
  for scenario in "${scenario_list[@]}"; do
    echo "weft/C, $scenario: sustained packet rate $(ratio pps "$scenario,weft" "$scenario,c" | median) (rounds: $(ratio pps "$scenario,weft" "$scenario,c" | tr '\n' ' ')); CPU per packet A $(ratio cpua "$scenario,weft" "$scenario,c" | median), B $(ratio cpub "$scenario,weft" "$scenario,c" | median)"
  done
fi

[ "$syscalls" = 1 ] || exit 0
echo
# ---- system calls per packet ---------------------------------------------------------------------
events=raw_syscalls:sys_enter
for call in read write sendmsg sendto recvmmsg recvfrom epoll_wait poll; do events+=,syscalls:sys_enter_$call; done
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  echo "loaded ($cpu_rate small datagrams/s for ${step_seconds}s, perf stat on the syscall tracepoints): system calls per forwarded packet"
  echo "| peer | endpoint | packets | all | per call |"
  echo "|---|---|---|---|---|"
  for peer in "${peer_list[@]}"; do
    start_endpoints "$peer"
    perf stat -x, -e "$events" -p "$PID_A" -o "$tmp/perf-a" &
    perf_a=$!
    perf stat -x, -e "$events" -p "$PID_B" -o "$tmp/perf-b" &
    perf_b=$!
    sleep 0.3
    traffic 64 $((cpu_rate * step_seconds)) $((step_seconds + 1)) "$cpu_rate" >/dev/null
    kill -INT "$perf_a" "$perf_b"
    wait "$perf_a" "$perf_b" || true
    stop_endpoints
    read -r to_a _ < <(forwarded "$tmp/$peer-a.log")
    read -r _ from_b < <(forwarded "$tmp/$peer-b.log")
    for side in a b; do
      n=$([ $side = a ] && echo "$to_a" || echo "$from_b")
      detail=$(awk -F, -v n="$n" '$3 ~ /sys_enter/ && $1 > 0 {name=$3; sub(/.*sys_enter_?/, "", name); if (name != "") printf "%s %.2f, ", name, $1 / n}' "$tmp/perf-$side")
      all=$(awk -F, -v n="$n" '$3 == "raw_syscalls:sys_enter" {printf "%.2f", $1 / n}' "$tmp/perf-$side")
      echo "| $peer | $side | $n | $all | ${detail%, } |"
    done
  done
  echo
fi
if command -v strace >/dev/null; then
  echo "paced ($paced_count small datagrams at $paced_rate/s, strace -c -f): system calls per forwarded packet"
  echo "| peer | endpoint | packets | all | per call |"
  echo "|---|---|---|---|---|"
  for peer in "${peer_list[@]}"; do
    start_endpoints "$peer"
    strace -c -f -qq -o "$tmp/strace-a" -p "$PID_A" &
    st_a=$!
    strace -c -f -qq -o "$tmp/strace-b" -p "$PID_B" &
    st_b=$!
    sleep 0.5
    traffic 64 "$paced_count" $((paced_count / paced_rate + 5)) "$paced_rate" >/dev/null
    kill -INT "$st_a" "$st_b"
    wait "$st_a" "$st_b" || true
    stop_endpoints
    read -r to_a _ < <(forwarded "$tmp/$peer-a.log")
    read -r _ from_b < <(forwarded "$tmp/$peer-b.log")
    for side in a b; do
      n=$([ $side = a ] && echo "$to_a" || echo "$from_b")
      detail=$(awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "%s %.2f, ", $NF, $4 / n}' "$tmp/strace-$side")
      all=$(awk -v n="$n" '$NF == "total" {printf "%.2f", $4 / n}' "$tmp/strace-$side")
      echo "| $peer | $side | $n | $all | ${detail%, } |"
    done
  done
fi
