#!/usr/bin/env bash
# Child-process throughput (issue #11 item 4): weft's spawnProcess against libuv's uv_spawn, Python's
# subprocess and Twisted's spawnProcess, side by side in one run.
#
# Builds nothing. Build the programs first (release preset):
#   cmake --preset release && cmake --build --preset release --target spawn_weft spawn_libuv write_zero
# The Python peers run with /usr/bin/python3 (Debian's, with python3-twisted; bench/deps.sh installs it).
#
# Scenarios (each peer, each round; every run bounded by `timeout`):
#   spawn-1          /bin/true 2000 times, 1 child in flight
#   spawn-32         /bin/true 2000 times, 32 in flight
#   ballast-1        1000 times, 1 in flight, from a parent that has written 1 GiB (--ballast-mib)
#   ballast-32       1000 times, 32 in flight, same parent
#   read             one child writes 1 GiB (bench/peers/write_zero) to its stdout; weft and libuv;
#                    the scheduler places reader and writer
#   read-same        the same, reader and writer pinned to core 0 (taskset)
#   read-cross       the same, reader on core 0, writer on core 1 (write_zero pins itself)
# Every child gets an empty environment, fd 1 a pipe the parent reads to EOF (libuv: a socketpair,
# what its UV_CREATE_PIPE makes), fds 0 and 2 one /dev/null descriptor of the parent's.
# Peers alternate within each round, in an order that rotates from round to round; the table shows
# medians over the rounds, and weft/peer ratios as medians of the per-round ratios.
#
# Then, if strace is installed, the system calls per spawn (deterministic): each of --strace-peers
# spawns 200 children (1 in flight, no ballast) under `strace -f`, and each call is counted as the
# parent's, the child's before its execve (execve included) or /bin/true's own (after the execve,
# the same for every peer, left out); likewise the parent's calls per MB read, for 64 MiB.
#
# Usage: bench/spawn.sh [options]
#   --build-dir DIR      where spawn_weft, spawn_libuv and write_zero are (default build/release)
#   --rounds R           rounds (default 3)
#   --quick              1 round, a tenth of the children, 256 MiB ballast and read
#   --peers LIST         subset of weft,weftsock,libuv,libuvpipe,python,twisted (default all;
#                        read scenarios only: weftsock is weft with ProcessOptions::socketOutputs,
#                        libuvpipe is libuv reading a kernel pipe, spawnProcess's kind of channel,
#                        instead of UV_CREATE_PIPE's socketpair)
#   --scenarios LIST     subset of spawn-1,spawn-32,ballast-1,ballast-32,read,read-same,read-cross
#                        (default all)
#   --ballast-mib M      the ballast (default 1024)
#   --read-mib M         what the read child writes (default 1024)
#   --stdio out|pipes    out (default): as above; pipes: three pipes per child (spawnProcess's and
#                        Twisted's default; libuv three socketpairs; Python three pipes)
#   --strace-peers LIST  peers counted with strace (default weft,libuv,python; "none" skips it)
#   --out DIR            raw lines and tables (default DIR/bench/spawn)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build/release rounds=3 quick=0 out="" ballast=1024 read_mib=1024 stdio=out
peers_arg=weft,weftsock,libuv,libuvpipe,python,twisted scenarios_arg=spawn-1,spawn-32,ballast-1,ballast-32,read,read-same,read-cross
strace_peers=weft,libuv,python
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2%/}; shift ;;
    --rounds) rounds=$2; shift ;;
    --quick) quick=1 ;;
    --peers) peers_arg=$2; shift ;;
    --scenarios) scenarios_arg=$2; shift ;;
    --ballast-mib) ballast=$2; shift ;;
    --read-mib) read_mib=$2; shift ;;
    --stdio) stdio=$2; shift ;;
    --strace-peers) strace_peers=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "spawn.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
n_small=2000 n_ballast=1000
if [ "$quick" = 1 ]; then rounds=1 n_small=200 n_ballast=100 ballast=256 read_mib=256; fi
out=${out:-$build_dir/bench/spawn}
mkdir -p "$out"
raw=$out/raw.txt
: >"$raw"

py=/usr/bin/python3
weft_bin=$build_dir/bench/spawn_weft
libuv_bin=$build_dir/bench/peers/spawn_libuv
writer=$build_dir/bench/peers/write_zero
IFS=, read -ra peers <<<"$peers_arg"
IFS=, read -ra scenarios <<<"$scenarios_arg"
available=()
for p in "${peers[@]}"; do
  case "$p" in
    weft|weftsock) [ -x "$weft_bin" ] || { echo "skipping $p: no $weft_bin (build target spawn_weft)"; continue; } ;;
    libuv|libuvpipe) [ -x "$libuv_bin" ] || { echo "skipping $p: no $libuv_bin (libuv1-dev missing, or target spawn_libuv not built)"; continue; } ;;
    python) [ -x "$py" ] || { echo "skipping python: no $py"; continue; } ;;
    twisted) "$py" -c 'import twisted' 2>/dev/null || { echo "skipping twisted: $py has no twisted (apt-get install python3-twisted)"; continue; } ;;
    *) echo "spawn.sh: unknown peer $p" >&2; exit 2 ;;
  esac
  available+=("$p")
done
[ ${#available[@]} -gt 0 ] || { echo "spawn.sh: no peer to run" >&2; exit 1; }
[ -x "$writer" ] || { echo "spawn.sh: no $writer (build target write_zero)" >&2; exit 1; }

# The command of one peer in one scenario, in the array `cmd` (empty: the peer lacks the scenario);
# a third argument overrides the number of children (spawn) or of MiB written (read).
command_for() {
  local peer=$1 scenario=$2 n k m=0
  cmd=()
  case "$scenario" in
    spawn-1) n=${3:-$n_small} k=1 ;;
    spawn-32) n=${3:-$n_small} k=32 ;;
    ballast-1) n=${3:-$n_ballast} k=1 m=$ballast ;;
    ballast-32) n=${3:-$n_ballast} k=32 m=$ballast ;;
    read|read-same|read-cross)
      local bytes=$((${3:-$read_mib} << 20)) pin=() cross=()
      [ "$scenario" = read ] || pin=(taskset -c 0)
      [ "$scenario" = read-cross ] && cross=(--writer-cpu 1)
      case "$peer" in
        weft) cmd=("${pin[@]}" "$weft_bin" --read-bytes "$bytes" --writer "$writer" "${cross[@]}") ;;
        weftsock) cmd=("${pin[@]}" "$weft_bin" --read-bytes "$bytes" --writer "$writer" --socket-outputs "${cross[@]}") ;;
        libuv) cmd=("${pin[@]}" "$libuv_bin" --read-bytes "$bytes" --writer "$writer" "${cross[@]}") ;;
        libuvpipe) cmd=("${pin[@]}" "$libuv_bin" --read-bytes "$bytes" --writer "$writer" --channel pipe "${cross[@]}") ;;
      esac
      return ;;
    *) echo "spawn.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  local args=(--children "$n" --in-flight "$k" --ballast-mib "$m" --stdio "$stdio")
  case "$peer" in
    weft) cmd=("$weft_bin" "${args[@]}") ;;
    libuv) cmd=("$libuv_bin" "${args[@]}") ;;
    python) cmd=("$py" bench/spawn_python.py "${args[@]}") ;;
    twisted) cmd=("$py" bench/spawn_twisted.py "${args[@]}") ;;
  esac
}

echo "# spawn.sh $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "rounds=$rounds stdio=$stdio ballast=${ballast}MiB read=${read_mib}MiB" | tee "$out/header.txt"
start=$(date +%s)
errors=0
for ((round = 1; round <= rounds; round++)); do
  echo "round $round (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for scenario in "${scenarios[@]}"; do
    if [ "$scenario" = read-cross ] && [ "$(nproc)" -lt 2 ]; then
      [ "$round" = 1 ] && echo "skipping read-cross: one core"
      continue
    fi
    n=${#available[@]}
    for ((i = 0; i < n; i++)); do
      peer=${available[$(((i + round - 1) % n))]}
      command_for "$peer" "$scenario"
      [ ${#cmd[@]} -gt 0 ] || continue
      if line=$(timeout 300 "${cmd[@]}" 2>"$out/stderr.txt"); then
        echo "round=$round scenario=$scenario $line" | tee -a "$raw"
      else
        rc=$?
        errors=$((errors + 1))
        echo "round=$round scenario=$scenario peer=$peer FAILED (exit $rc): $(head -c 300 "$out/stderr.txt")" | tee -a "$raw"
      fi
    done
  done
done
echo "# $(($(date +%s) - start)) s, $errors failed runs, load at the end $(cut -d' ' -f1-3 /proc/loadavg)" |
  tee -a "$out/header.txt"

"$py" - "$raw" <<'EOF' | tee "$out/table.md"
import collections, statistics, sys

runs = collections.defaultdict(dict)  # (scenario, round) -> peer -> fields
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if "FAILED" in line or f.get("ok") != "1":
        continue
    runs[(f["scenario"], int(f["round"]))][f["peer"]] = f

def med(xs):
    return statistics.median(xs) if xs else None

order = ["spawn-1", "spawn-32", "ballast-1", "ballast-32", "read", "read-same", "read-cross"]
peers = ["weft", "weftsock", "libuv", "libuvpipe", "python", "twisted"]
def label(sc, f):
    if sc.startswith("read"):
        where = {"read": "placed by the scheduler", "read-same": "both on core 0", "read-cross": "reader core 0, writer core 1"}[sc]
        return f"{int(f['bytes']) >> 20} MiB from a child, {where}"
    text = f"{f['children']} × /bin/true, {f['in_flight']} in flight"
    return text + (f", {f['ballast_mib']} MiB parent" if int(f["ballast_mib"]) > 0 else "")
def fmt(x, d=1):
    return "–" if x is None else (f"{x:.{d}f}" if x < 1000 else f"{x:,.0f}".replace(",", " "))

print("| scenario | peer | spawns/s | latency mean µs | latency p99 µs | parent CPU µs/spawn | children CPU µs/spawn | weft/peer spawns/s | weft/peer parent CPU |")
print("|---|---|---|---|---|---|---|---|---|")
read_rows = []
for sc in order:
    rounds = sorted(r for (s, r) in runs if s == sc)
    if not rounds:
        continue
    for p in peers:
        vals = [runs[(sc, r)][p] for r in rounds if p in runs[(sc, r)]]
        if not vals:
            continue
        get = lambda k: med([float(v[k]) for v in vals])
        def ratio(k, num="weft"):
            rs = [float(runs[(sc, r)][num][k]) / float(runs[(sc, r)][p][k]) for r in rounds
                  if p in runs[(sc, r)] and num in runs[(sc, r)] and float(runs[(sc, r)][p][k]) > 0]
            return med(rs)
        if sc.startswith("read"):
            # The same kernel object on both sides: weft's pipe against libuv on a pipe, weft's
            # socket pair (socketOutputs) against libuv's (UV_CREATE_PIPE).
            same = {"libuv": "weftsock", "libuvpipe": "weft"}.get(p)
            read_rows.append((label(sc, vals[0]), p, get("mb_per_s"), get("cpu_per_mb_us"), ratio("mb_per_s"), ratio("cpu_per_mb_us"),
                              same, same and ratio("mb_per_s", same), same and ratio("cpu_per_mb_us", same)))
            continue
        print(f"| {label(sc, vals[0])} | {p} | {fmt(get('spawns_per_s'))} | {fmt(get('lat_mean_us'))} | {fmt(get('lat_p99_us'))} "
              f"| {fmt(get('cpu_per_spawn_us'))} | {fmt(get('child_cpu_per_spawn_us'))} | {fmt(ratio('spawns_per_s'), 2)} "
              f"| {fmt(ratio('cpu_per_spawn_us'), 2)} |")
if read_rows:
    print()
    print("| child output | peer | MB/s | parent CPU µs/MB | weft/peer MB/s | weft/peer CPU per MB | same channel: weft side/peer MB/s, CPU per MB |")
    print("|---|---|---|---|---|---|---|")
    for what, p, mbs, cpu, rr, rc, same, sr, sc_ in read_rows:
        pair = f"{same}/{p}: {fmt(sr, 2)}, {fmt(sc_, 2)}" if same else "–"
        print(f"| {what} | {p} | {fmt(mbs)} | {fmt(cpu)} | {fmt(rr, 2)} | {fmt(rc, 2)} | {pair} |")
EOF

# ---- system calls per spawn, per MB read (strace -f) ---------------------------------------------
[ "$strace_peers" = none ] && exit $((errors > 0))
command -v strace >/dev/null || { echo "strace is not installed: no system-call counts"; exit $((errors > 0)); }
IFS=, read -ra speers <<<"$strace_peers"
traces=()
for p in "${speers[@]}"; do
  printf '%s\n' "${available[@]}" | grep -qx "$p" || continue
  command_for "$p" spawn-1 200  # 200 children, 1 in flight, no ballast
  timeout 300 strace -f -qq -o "$out/strace-spawn-$p.txt" "${cmd[@]}" >/dev/null 2>&1 || echo "strace of $p failed"
  traces+=("spawn:$p:200:$out/strace-spawn-$p.txt")
  command_for "$p" read 64
  if [ ${#cmd[@]} -gt 0 ]; then
    timeout 300 strace -f -qq -o "$out/strace-read-$p.txt" "${cmd[@]}" >/dev/null 2>&1 || echo "strace of $p (read) failed"
    traces+=("read:$p:67.108864:$out/strace-read-$p.txt")
  fi
done
[ ${#traces[@]} -gt 0 ] || exit $((errors > 0))
"$py" - "${traces[@]}" <<'EOF' | tee "$out/syscalls.md"
import collections, re, sys

line_re = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
def count(path):
    """Counts per system call: the parent's, each child's up to its execve (included), after it."""
    parent = None
    parent_c, pre_c, post_c = collections.Counter(), collections.Counter(), collections.Counter()
    exec_done = set()
    for line in open(path):
        m = line_re.match(line)
        if not m or m.group(2):  # "<... x resumed>" was counted when it started
            continue
        pid, name = int(m.group(1)), m.group(3)
        if parent is None:
            parent = pid
        if pid == parent:
            parent_c[name] += 1
        elif pid in exec_done:
            post_c[name] += 1
        else:
            pre_c[name] += 1
            if name == "execve":
                exec_done.add(pid)
    return parent_c, pre_c, post_c

spawn, read = {}, {}
for spec in sys.argv[1:]:
    kind, peer, per, path = spec.split(":", 3)
    (spawn if kind == "spawn" else read)[peer] = (float(per), count(path))

def table(title, data, unit, parts):
    peers = list(data)
    names = sorted({n for p in peers for i in parts for n in data[p][1][i]})
    cols = [(p, i) for i in parts for p in peers]
    part_name = {0: "parent", 1: "child before exec"}
    print(f"\n{title}\n")
    print("| system call | " + " | ".join(f"{p} {part_name[i]}" for p, i in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for n in names:
        cells = []
        for p, i in cols:
            v = data[p][1][i][n] / data[p][0]
            cells.append("–" if v == 0 else f"{v:.2f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{sum(data[p][1][i].values()) / data[p][0]:.2f}**" for p, i in cols) + " |")

if spawn:
    table("System calls per spawn (strace -f, 200 × /bin/true, 1 in flight; /bin/true's own calls after execve left out):",
          spawn, "spawn", (0, 1))
if read:
    table("Parent's system calls per MB read (strace -f, one child writing 64 MiB):", read, "MB", (0,))
EOF
exit $((errors > 0))
