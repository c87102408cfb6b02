#!/usr/bin/env bash
# Serial-line throughput (issue #13): weft's SerialPort against pyserial 3.5 (python3-serial) on
# the same line and the same work, side by side in one run.
#
# The line is a pseudo-terminal: bench/serial_driver holds its master (plain blocking read/write,
# 64 KiB at a time) and starts the program under test on its slave at 115200 bps 8N1 (a pty
# moves bytes as fast as the kernel copies them; the speed setting does not pace it):
#   weft      build/release/bench/serial_weft (SerialPort on an epoll reactor, or --reactor R)
#   pyserial  bench/serial_pyserial.py under /usr/bin/python3 (Serial.read(65536) with
#             timeout=None; Serial.write of 64 KiB, then flush)
# Directions: in (the driver writes, the program receives and checks every byte) and out (the
# program writes, the driver receives and checks). The driver reports MB/s (10^6 bytes per
# second, from the program's "ready" to the last byte checked) and the program's own CPU time
# per MiB (from "ready" to "done", so interpreter start-up is not counted).
#
# Peers alternate within each round, in an order that rotates from round to round; the table
# shows medians over the rounds and the median of the per-round ratios weft/pyserial.
#
# Then, if strace is installed, system calls per MiB (deterministic): each peer moves --strace-mib
# and twice that under `strace -f -c`; calls per MiB = (calls at 2M - calls at M) / M, so the
# start-up (Python's imports) cancels out.
#
# Builds nothing. Build first (release preset):
#   cmake --preset release && cmake --build --preset release --target serial_weft serial_driver
#
# Usage: bench/serial.sh [options]
#   --build-dir DIR    where serial_weft and serial_driver are (default build/release)
#   --rounds R         rounds (default 5)
#   --mib M            MiB per run (default 256)
#   --reactor R        weft's reactor: epoll (default), poll or select
#   --strace-mib M     M for the system-call counts (default 16; 0 skips them)
#   --quick            1 round of 32 MiB, strace with 4 MiB
#   --out DIR          raw lines, tables and strace logs (default DIR/bench/serial)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build/release rounds=5 mib=256 reactor=epoll strace_mib=16 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2%/}; shift ;;
    --rounds) rounds=$2; shift ;;
    --mib) mib=$2; shift ;;
    --reactor) reactor=$2; shift ;;
    --strace-mib) strace_mib=$2; shift ;;
    --quick) rounds=1 mib=32 strace_mib=4 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "serial.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$build_dir/bench/serial}
bin=$build_dir/bench
python=/usr/bin/python3
for f in "$bin/serial_weft" "$bin/serial_driver"; do
  [ -x "$f" ] || { echo "serial.sh: $f is missing (build it first, see --help)" >&2; exit 2; }
done
"$python" -c 'import serial' 2>/dev/null || { echo "serial.sh: $python has no pyserial (apt-get install python3-serial)" >&2; exit 2; }
mkdir -p "$out"
raw=$out/raw.txt
: >"$raw"

# peerCommand PEER DIRECTION BYTES: the program under test ({} is the line).
peerCommand() {
  case "$1" in
    weft) echo "$bin/serial_weft --reactor $reactor --device {} --bytes $3 --direction $2" ;;
    pyserial) echo "$python bench/serial_pyserial.py --device {} --bytes $3 --direction $2" ;;
  esac
}

run() {  # run ROUND PEER DIRECTION
  local bytes=$((mib * 1024 * 1024)) line
  # shellcheck disable=SC2046
  line=$(timeout 300 "$bin/serial_driver" --bytes "$bytes" --direction "$3" --peer "$2" -- $(peerCommand "$2" "$3" "$bytes")) ||
    { echo "serial.sh: $2 $3 failed" >&2; exit 1; }
  echo "round=$1 $line" | tee -a "$raw"
}

echo "# $(date -u '+%F %T') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $mib MiB per run, $rounds rounds, weft on $reactor"
peers=(weft pyserial)
for ((r = 0; r < rounds; r++)); do
  for d in in out; do
    for ((k = 0; k < ${#peers[@]}; k++)); do
      run "$r" "${peers[$(((k + r) % ${#peers[@]}))]}" "$d"
    done
  done
done

"$python" - "$raw" <<'EOF' | tee "$out/table.md"
import collections, statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
by = collections.defaultdict(list)
for r in rows:
    by[(r["direction"], r["peer"])].append(r)
print()
print("| direction | peer | MB/s | CPU µs/MiB | weft/pyserial MB/s | weft/pyserial CPU per MiB |")
print("|---|---|---|---|---|---|")
for d in ("in", "out"):
    ratios_t, ratios_c = [], []
    rounds = sorted({r["round"] for r in rows if r["direction"] == d})
    for rd in rounds:
        w = [r for r in by[(d, "weft")] if r["round"] == rd]
        p = [r for r in by[(d, "pyserial")] if r["round"] == rd]
        if w and p:
            ratios_t.append(float(w[0]["MBps"]) / float(p[0]["MBps"]))
            ratios_c.append(float(w[0]["cpu_us_per_MiB"]) / float(p[0]["cpu_us_per_MiB"]))
    for peer in ("weft", "pyserial"):
        rs = by[(d, peer)]
        mbps = statistics.median(float(r["MBps"]) for r in rs)
        cpu = statistics.median(float(r["cpu_us_per_MiB"]) for r in rs)
        rt = "%.2f" % statistics.median(ratios_t) if peer == "weft" else "1.00"
        rc = "%.2f" % statistics.median(ratios_c) if peer == "weft" else "1.00"
        print(f"| {d} | {peer} | {mbps:.1f} | {cpu:.0f} | {rt} | {rc} |")
EOF

if [ "$strace_mib" -gt 0 ] && command -v strace >/dev/null; then
  for peer in weft pyserial; do
    for d in in out; do
      for m in "$strace_mib" $((strace_mib * 2)); do
        bytes=$((m * 1024 * 1024))
        # shellcheck disable=SC2046
        timeout 300 "$bin/serial_driver" --bytes "$bytes" --direction "$d" --peer "$peer" -- \
          strace -f -c -o "$out/strace-$peer-$d-$m.txt" $(peerCommand "$peer" "$d" "$bytes") >/dev/null ||
          { echo "serial.sh: strace $peer $d failed" >&2; exit 1; }
      done
    done
  done
  "$python" - "$out" "$strace_mib" <<'EOF' | tee "$out/syscalls.md"
import re, sys
out, m = sys.argv[1], int(sys.argv[2])
def counts(path):
    c = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and re.match(r"^[0-9.]+$", f[0]) and f[-1] != "total":
            c[f[-1]] = int(f[3])
    return c
print()
print("System calls per MiB ((calls at %d MiB - calls at %d MiB) / %d):" % (2 * m, m, m))
print()
print("| direction | peer | total per MiB | per system call |")
print("|---|---|---|---|")
for d in ("in", "out"):
    for peer in ("weft", "pyserial"):
        a = counts(f"{out}/strace-{peer}-{d}-{m}.txt")
        b = counts(f"{out}/strace-{peer}-{d}-{2 * m}.txt")
        per = {k: (b.get(k, 0) - a.get(k, 0)) / m for k in set(a) | set(b)}
        per = {k: v for k, v in per.items() if abs(v) >= 0.05}
        total = sum(per.values())
        detail = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        print(f"| {d} | {peer} | {total:.1f} | {detail} |")
EOF
fi
echo "raw lines, tables and strace logs: $out"
