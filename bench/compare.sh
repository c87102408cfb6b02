#!/usr/bin/env bash
# Whole-system echo benchmark (issue #4): `weft echo` against echo servers on libuv, asio,
# libevent and hand-written epoll loops (bench/peers/), all driven by bench/loadgen, over
# loopback TCP, UNIX stream sockets and loopback UDP.
#
# Each run starts one server pinned to core 0, runs loadgen pinned to core 1 (loadgen samples
# the server's CPU time and RSS from /proc at the edges of its measured window), then stops
# the server with SIGTERM. Servers alternate within each round (the order rotates from round
# to round); the table shows medians over the rounds and, for each server, the median of its
# per-round ratios to libuv measured in the same round. A server that lacks a scenario's
# transport is left out of it:
#   tcp   weft (tcp:PORT:interface=127.0.0.1), libuv, asio, libevent, epoll
#   unix  weft (unix:PATH), libuv, asio, libevent, epoll              (scenarios unix-*)
#   udp   weft (udp:PORT:interface=127.0.0.1), libuv (echo_libuv_udp), raw (echo_udp_raw)
#                                                                     (scenarios udp-*)
# weft takes part in the unix/udp scenarios only if a probe finds `weft echo unix:PATH` /
# `weft echo udp:PORT:interface=127.0.0.1` listening.
#
# Usage: bench/compare.sh [options]
#   --quick              one short round (about 2 min for every scenario); --rounds/--seconds
#                        still apply
#   --rounds N           rounds (default 4)
#   --seconds T          measured window per run (default 2; --quick 0.5)
#   --servers LIST       comma-separated subset of: weft,libuv,asio,libevent,epoll,raw
#   --scenarios LIST     comma-separated scenarios and groups (default: tcp,unix,udp):
#                        tcp  = pingpong-1,pingpong-64,pingpong-1000,pipeline-64x16,stream-16,
#                               connrate,idle-10k
#                        unix = unix-pingpong-64,unix-pipeline-64x16,unix-stream-16,unix-connrate
#                        udp  = udp-pingpong-1,udp-pingpong-64,udp-window-8x16,udp-window-64x16
#   --build-dir DIR      CMake build directory for loadgen and the peers (default build/release;
#                        configured with the release preset, or as a Release build elsewhere)
#   --weft PATH          the weft tool to measure (default: DIR/weft, built there first)
#   --weft-ref PATH      a second weft tool (say, an earlier commit's) measured in the same run as
#                        the server "weft-ref" (tcp and unix scenarios), for before/after ratios
#   --reactor R          run weft with --reactor R (epoll, poll or select)
#   --no-build           use the binaries already in DIR
#   --busy-poll          loadgen never sleeps in epoll_wait (fewer cross-core wake-ups)
#   --out DIR            where the raw lines and the table go (default DIR/bench/compare)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."

rounds=4 rounds_set=0 seconds=2 seconds_set=0 warmup=0.5 hold=1 quick=0 build=1 busy=()
servers_arg="weft,libuv,asio,libevent,epoll,raw"
scenarios_arg="tcp,unix,udp"
build_dir=build/release weft="" weft_ref="" reactor="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds=$2 rounds_set=1; shift ;;
    --seconds) seconds=$2 seconds_set=1; shift ;;
    --servers) servers_arg=$2; shift ;;
    --scenarios) scenarios_arg=$2; shift ;;
    --build-dir) build_dir=${2%/}; shift ;;
    --weft) weft=$2; shift ;;
    --weft-ref) weft_ref=$2; shift ;;
    --reactor) reactor=$2; shift ;;
    --no-build) build=0 ;;
    --busy-poll) busy=(--busy-poll) ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  warmup=0.2 hold=0.3
  [ "$rounds_set" = 1 ] || rounds=1
  [ "$seconds_set" = 1 ] || seconds=0.5
fi
[ -n "$weft_ref" ] && [[ ",$servers_arg," != *,weft-ref,* ]] && servers_arg+=",weft-ref"
IFS=, read -r -a servers <<<"$servers_arg"
scenarios=()
for sc in ${scenarios_arg//,/ }; do
  case "$sc" in
    tcp) scenarios+=(pingpong-1 pingpong-64 pingpong-1000 pipeline-64x16 stream-16 connrate idle-10k) ;;
    unix) scenarios+=(unix-pingpong-64 unix-pipeline-64x16 unix-stream-16 unix-connrate) ;;
    udp) scenarios+=(udp-pingpong-1 udp-pingpong-64 udp-window-8x16 udp-window-64x16) ;;
    *) scenarios+=("$sc") ;;
  esac
done
out=${out:-$build_dir/bench/compare}
mkdir -p "$out"
raw=$out/raw.txt table=$out/table.md
: >"$raw"

# ---- build ---------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
  if [ ! -f "$build_dir/build.ninja" ]; then
    if [ "$build_dir" = build/release ]; then
      cmake --preset release >/dev/null
    else
      cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEFT_WERROR=ON \
            -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF >/dev/null
    fi
  fi
  echo "building loadgen and the peer servers in $build_dir ..."
  if ! cmake --build "$build_dir" -j1 --target bench_peers >"$out/build.log" 2>&1; then
    tail -30 "$out/build.log" >&2
    echo "compare.sh: build failed (is libbenchmark-dev installed? run bench/deps.sh)" >&2
    exit 1
  fi
  if [ -z "$weft" ] && [[ ",$servers_arg," == *,weft,* ]]; then
    echo "building the weft tool in $build_dir ..."
    cmake --build "$build_dir" -j1 --target weft_tool >>"$out/build.log" 2>&1 ||
      echo "compare.sh: the weft tool did not build; weft is skipped (see $out/build.log)" >&2
  fi
fi
weft=${weft:-$build_dir/weft}
loadgen=$build_dir/bench/loadgen
[ -x "$loadgen" ] || { echo "compare.sh: no $loadgen (build it, or drop --no-build)" >&2; exit 1; }

weft_args=()
[ -n "$reactor" ] && weft_args=(--reactor "$reactor")
weft_ok=0
if [ -x "$weft" ] && "$weft" "${weft_args[@]}" --help 2>&1 | grep -Eq '^[[:space:]]+echo([[:space:]]|$)' &&
   "$weft" "${weft_args[@]}" echo --help >/dev/null 2>&1; then
  weft_ok=1
fi
declare -A weft_transport=([tcp]=$weft_ok)  # unix and udp: set by a probe below

# The command line of server $1 serving transport $2 on $3 (a port on 127.0.0.1, or a UNIX
# socket path), or nothing if that server does not exist or lacks that transport.
server_cmd() {
  local bin=$build_dir/bench/peers/echo_$1
  case "$1|$2" in
    weft\|*) [ "${weft_transport[$2]:-0}" = 1 ] || return 0
      case "$2" in
        tcp) echo "$weft ${weft_args[*]} echo tcp:$3:interface=127.0.0.1:backlog=4096" ;;
        udp) echo "$weft ${weft_args[*]} echo udp:$3:interface=127.0.0.1" ;;
        unix) echo "$weft ${weft_args[*]} echo unix:$3:backlog=4096" ;;
      esac ;;
    weft-ref\|tcp) [ -x "$weft_ref" ] && echo "$weft_ref echo tcp:$3:interface=127.0.0.1:backlog=4096" ;;
    weft-ref\|unix) [ -x "$weft_ref" ] && echo "$weft_ref echo unix:$3:backlog=4096" ;;
    libuv\|udp) [ -x "${bin}_udp" ] && echo "${bin}_udp $3" ;;
    raw\|udp) bin=$build_dir/bench/peers/echo_udp_raw; [ -x "$bin" ] && echo "$bin $3" ;;
    libuv\|tcp|asio\|tcp|libevent\|tcp|epoll\|tcp) [ -x "$bin" ] && echo "$bin $3" ;;
    libuv\|unix|asio\|unix|libevent\|unix|epoll\|unix) [ -x "$bin" ] && echo "$bin unix:$3" ;;
  esac
  return 0
}

transport_of() {  # scenario -> tcp, udp or unix
  case "$1" in
    udp-*) echo udp ;;
    unix-*) echo unix ;;
    *) echo tcp ;;
  esac
}

# ---- scenarios: loadgen arguments | throughput key | unit | cost key | unit -------------------
scenario_spec() {
  local w=(--seconds "$seconds" --warmup "$warmup" "${busy[@]}")
  case "$1" in
    unix-pingpong-64)    echo "pingpong --conns 64 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    unix-pipeline-64x16) echo "pipeline --conns 64 --depth 16 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    unix-stream-16)      echo "stream --conns 16 --inflight 262144 --size 65536 ${w[*]}|MB_per_s|MB/s|server_us_per_MB|µs/MB" ;;
    unix-connrate)       echo "connrate --concurrency 32 ${w[*]}|conns_per_s|conn/s|server_us_per_msg|µs/conn" ;;
    udp-pingpong-1)      echo "udp --conns 1 --size 64 --window 1 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    udp-pingpong-64)     echo "udp --conns 64 --size 64 --window 1 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    udp-window-8x16)     echo "udp --conns 8 --size 64 --window 16 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    udp-window-64x16)    echo "udp --conns 64 --size 64 --window 16 --dgram-timeout 0.02 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    pingpong-1)     echo "pingpong --conns 1 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    pingpong-64)    echo "pingpong --conns 64 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    pingpong-1000)  echo "pingpong --conns 1000 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    pipeline-64x16) echo "pipeline --conns 64 --depth 16 --size 64 ${w[*]}|msgs_per_s|msg/s|server_us_per_msg|µs/msg" ;;
    stream-16)      echo "stream --conns 16 --inflight 262144 --size 65536 ${w[*]}|MB_per_s|MB/s|server_us_per_MB|µs/MB" ;;
    connrate)       echo "connrate --concurrency 32 ${w[*]}|conns_per_s|conn/s|server_us_per_msg|µs/conn" ;;
    idle-10k)       echo "idle --conns 10000 --hold $hold ${busy[*]}|bytes_per_conn|B/conn RSS|server_us_per_conn|µs/conn setup" ;;
    *) return 1 ;;
  esac
}
for sc in "${scenarios[@]}"; do
  scenario_spec "$sc" >/dev/null || { echo "compare.sh: unknown scenario $sc" >&2; exit 2; }
done
declare -A wanted_transport=()
for sc in "${scenarios[@]}"; do wanted_transport[$(transport_of "$sc")]=1; done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tmp=$(mktemp -d)  # also holds the UNIX sockets: short enough for sun_path
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# transport address: is something listening on 127.0.0.1:PORT (tcp), bound to it (udp), or
# listening on the UNIX socket PATH (unix)?
listening() {
  case "$1" in
    tcp)
      if [ "$have_ss" = 1 ]; then
        [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ]
      else  # /proc/net/tcp also lists every TIME_WAIT socket: slower after connrate
        awk -v p="$(printf ':%04X' "$2")" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
      fi ;;
    udp)
      if [ "$have_ss" = 1 ]; then
        [ -n "$(ss -Hlun "sport = :$2" 2>/dev/null)" ]
      else
        awk -v p="$(printf ':%04X' "$2")" '$2 ~ p"$" { found = 1 } END { exit !found }' /proc/net/udp
      fi ;;
    unix)  # a listening (__SO_ACCEPTCON) stream socket bound to that path
      awk -v p="$2" '$NF == p && $4 == "00010000" { found = 1 } END { exit !found }' /proc/net/unix ;;
  esac
}
have_ss=0
command -v ss >/dev/null && have_ss=1

port=18000 sockets=0 address=""
next_address() {  # transport: sets $address to a free port below the ephemeral range, or a fresh path
  if [ "$1" = unix ]; then
    sockets=$((sockets + 1))
    address=$tmp/echo$sockets.sock
    rm -f "$address" "$address.lock"
    return 0
  fi
  while :; do
    port=$((port + 1))
    [ "$port" -ge 32000 ] && port=18001
    listening "$1" "$port" || { address=$port; return 0; }
  done
}

# weft's UNIX and UDP echo: measured only if `weft echo` starts serving them (probed once).
probe_weft() {  # transport
  local cmd pid ok=0 _
  next_address "$1"
  weft_transport[$1]=1
  cmd=$(server_cmd weft "$1" "$address")
  # shellcheck disable=SC2086
  $cmd >"$tmp/probe.log" 2>&1 &
  pid=$!
  for _ in $(seq 60); do
    listening "$1" "$address" && { ok=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$1" = unix ] && rm -f "$address" "$address.lock"
  weft_transport[$1]=$ok
  if [ "$ok" = 0 ]; then
    echo "compare.sh: '${cmd//  / }' did not serve $1; weft is skipped in the $1 scenarios" >&2
    sed 's/^/    | /' "$tmp/probe.log" | head -3 >&2
  fi
  return 0
}
if [ "$weft_ok" = 1 ] && [[ ",$servers_arg," == *,weft,* ]]; then
  for t in unix udp; do
    [ -n "${wanted_transport[$t]:-}" ] && probe_weft "$t"
  done
fi

declare -A runs_on=()  # transport -> the available servers that serve it, in --servers order
available=()
for s in "${servers[@]}"; do
  any=0
  for t in tcp unix udp; do
    if [ -n "${wanted_transport[$t]:-}" ] && [ -n "$(server_cmd "$s" "$t" /probe)" ]; then
      runs_on[$t]+="$s "
      any=1
    fi
  done
  if [ "$any" = 1 ]; then available+=("$s")
  else echo "compare.sh: $s is not available for these scenarios, skipped" >&2
  fi
done
[ ${#available[@]} -gt 0 ] || { echo "compare.sh: no server to measure" >&2; exit 1; }

declare -A results   # "scenario|server" -> the loadgen lines of its rounds, one per line
failures=0

run_one() {  # scenario server round
  local sc=$1 sv=$2 round=$3 spec args cmd line rc status tr target
  spec=$(scenario_spec "$sc")
  args=${spec%%|*}
  tr=$(transport_of "$sc")
  next_address "$tr"
  cmd=$(server_cmd "$sv" "$tr" "$address")
  if [ "$tr" = unix ]; then target=(--unix "$address"); else target=(--port "$address"); fi
  # shellcheck disable=SC2086  # the command lines hold no spaces inside words
  taskset -c 0 $cmd >"$tmp/server.log" 2>&1 &
  server_pid=$!
  local _
  for _ in $(seq 100); do
    listening "$tr" "$address" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! listening "$tr" "$address"; then
    echo "  $sc $sv: the server did not listen on $tr $address" >&2
    sed 's/^/    | /' "$tmp/server.log" | tail -5 >&2
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    failures=$((failures + 1))
    return
  fi
  rc=0
  # shellcheck disable=SC2086
  line=$(taskset -c 1 "$loadgen" $args "${target[@]}" --server-pid "$server_pid" 2>"$tmp/loadgen.err") || rc=$?
  kill -TERM "$server_pid" 2>/dev/null || true
  status=0
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "  $sc $sv: the server ignored SIGTERM for 5 s; killed" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || status=$?
  server_pid=""
  [ "$tr" = unix ] && rm -f "$address" "$address.lock"
  echo "server=$sv run=$sc round=$round $line" >>"$raw"
  if [ "$rc" != 0 ]; then
    echo "  $sc $sv: loadgen failed (exit $rc): $line" >&2
    sed 's/^/    | /' "$tmp/loadgen.err" | head -5 >&2
    failures=$((failures + 1))
    return
  fi
  [ "$status" = 0 ] || echo "  $sc $sv: the server exited with status $status after SIGTERM" >&2
  results["$sc|$sv"]+="round=$round $line"$'\n'
  printf '  %-15s %-9s %s\n' "$sc" "$sv" "$(echo "$line" | tr ' ' '\n' |
    grep -E '^(msgs_per_s|MB_per_s|conns_per_s|bytes_per_conn|lost_pct|server_us_per_msg|server_us_per_MB|server_us_per_conn|server_cpu_pct|client_cpu_pct)=' |
    tr '\n' ' ')"
}

start=$(date +%s)
echo "servers: ${available[*]}; scenarios: ${scenarios[*]}; rounds: $rounds; window ${seconds}s"
for t in tcp unix udp; do
  [ -n "${wanted_transport[$t]:-}" ] && echo "  $t servers: ${runs_on[$t]:-none}"
done
[ "$weft_ok" = 1 ] && echo "weft: $weft ${weft_args[*]} ($(stat -c %y "$weft" | cut -d. -f1))"
for ((r = 0; r < rounds; r++)); do
  echo "round $((r + 1))/$rounds"
  for sc in "${scenarios[@]}"; do
    read -r -a these <<<"${runs_on[$(transport_of "$sc")]:-}"
    n=${#these[@]}
    for ((k = 0; k < n; k++)); do
      run_one "$sc" "${these[$(((k + r) % n))]}" "$r"
    done
  done
done

# ---- the table of medians ------------------------------------------------------------------
value() {  # key, lines on stdin -> the values, one per line
  tr ' ' '\n' | sed -n "s/^$1=//p"
}
median() {  # numbers on stdin -> their median ("-" if none)
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt() {  # a number, shortened for the table
  awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else if (x >= 1000) printf "%.0f\n", x; else if (x >= 10) printf "%.1f\n", x; else printf "%.3g\n", x }'
}
pct() {
  awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.0f%%\n", x }'
}
paired_ratio() {  # scenario server key -> median over rounds of server/libuv in the same round
  { printf '%s' "${results["$1|$2"]:-}" | sed 's/^/A /'
    printf '%s' "${results["$1|libuv"]:-}" | sed 's/^/B /'; } |
  awk -v key="$3" '{
      r = ""; v = ""
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "round") r = kv[2]; if (kv[1] == key) v = kv[2] }
      if (r == "" || v == "") next
      if ($1 == "A") a[r] = v; else b[r] = v
    } END { for (r in a) if ((r in b) && b[r] > 0) printf "%.4f\n", a[r] / b[r] }' | median |
  awk '{ if ($1 == "-") print "-"; else printf "%.2f\n", $1 }'
}

{
  echo "| scenario | server | throughput | server CPU | server core | loadgen core | throughput / libuv | CPU / libuv |"
  echo "|---|---|---|---|---|---|---|---|"
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r _ tkey tunit ckey cunit <<<"$(scenario_spec "$sc")"
    read -r -a these <<<"${runs_on[$(transport_of "$sc")]:-}"
    for sv in "${these[@]}"; do
      lines=${results["$sc|$sv"]:-}
      t=$(printf '%s' "$lines" | value "$tkey" | median)
      lost=$(printf '%s' "$lines" | value lost_pct | median)
      if [ "$lost" = - ]; then lost=""; else lost=", $(awk -v x="$lost" 'BEGIN { printf "%.2g", x }')% lost"; fi
      c=$(printf '%s' "$lines" | value "$ckey" | median)
      spct=$(printf '%s' "$lines" | value server_cpu_pct | median)
      cpct=$(printf '%s' "$lines" | value client_cpu_pct | median)
      echo "| $sc | $sv | $(fmt "$t") $tunit$lost | $(fmt "$c") $cunit | $(pct "$spct") | $(pct "$cpct") | $(paired_ratio "$sc" "$sv" "$tkey") | $(paired_ratio "$sc" "$sv" "$ckey") |"
    done
  done
} >"$table"

echo
cat "$table"
echo
echo "medians of $rounds round(s); ratios are medians of per-round ratios to libuv (same round)."
echo "idle-10k: 'throughput' is the server's RSS per idle connection (lower is better). Server CPU is"
echo "utime+stime per unit in the measured window; core columns are % of one core. udp-*: '% lost' is"
echo "the median share of datagrams not echoed within loadgen's --dgram-timeout. Raw lines: $raw"
echo "total $(($(date +%s) - start)) s"
[ "$failures" = 0 ] || { echo "compare.sh: $failures run(s) failed" >&2; exit 1; }
