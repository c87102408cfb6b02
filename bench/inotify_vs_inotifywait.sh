#!/usr/bin/env bash
# inotify events decoded and delivered per second (issue #13 item 5): weft against inotifywait -m
# (inotify-tools), side by side in one run, on the same work.
#
# Builds nothing. Build first (release preset):
#   cmake --preset release && cmake --build --preset release --target weft_tool inotify_drain
#
# The work: N files (default 100 000) created in one watched directory of a tmpfs (/dev/shm) while
# the consumer is stopped (SIGSTOP), so that all N events wait in the kernel's queue
# (/proc/sys/fs/inotify/max_queued_events is raised to 2N + 1024 for the run and put back on exit;
# needs root); then SIGCONT, and the clock runs until the consumer has handled the N-th event.
# One event per file: IN_CREATE (--events create,close_write: two per file).
#
# Peers (each run bounded by `timeout`; the order rotates from round to round):
#   inotifywait   inotifywait -m -e create DIR: one line per event on stdout ("DIR/ CREATE f…"),
#                 written and flushed line by line
#   weft          weft watch --events create DIR: one line per event ("create DIR/f…"), flushed per
#                 line, on the epoll reactor
#   weft-json     weft watch --json --events create DIR ({"path": …, "events": ["create"]})
#   weft-lib      build/…/bench/inotify_drain: INotify with a counting callback (decoding, the path,
#                 the callback; no output)
# Standard output goes to a file on the tmpfs. The driver polls it (every 0.2 ms) for the N-th line
# (weft-lib: the process's one line at the end).
#
# Figures: events/s = N / the wall time from SIGCONT to the N-th event handled; CPU µs/event = the
# consumer's CPU time (/proc/PID/task/*/schedstat, ns) over that window / N; medians over the rounds,
# and weft/inotifywait ratios as medians of the per-round ratios.
# Then, with strace installed, system calls per event: each peer on --strace-files files under
# `strace -c -f` (the same stop-create-continue sequence; start-up calls included, they are < 0.01
# per event at 20 000 files).
#
# Usage: bench/inotify_vs_inotifywait.sh [options]
#   --build-dir DIR     where weft and bench/inotify_drain are (default build/release)
#   --files N           files per run (default 100000)
#   --rounds R          rounds (default 5)
#   --peers LIST        subset of inotifywait,weft,weft-json,weft-lib (default all)
#   --events LIST       create (default) or create,close_write
#   --strace-files N    files for the system-call counts (default 20000; 0 skips them)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/release files=100000 rounds=5 peers=inotifywait,weft,weft-json,weft-lib events=create
strace_files=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2%/}; shift ;;
    --files) files=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --peers) peers=$2; shift ;;
    --events) events=$2; shift ;;
    --strace-files) strace_files=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "inotify_vs_inotifywait.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$events" in create|create,close_write) ;; *) echo "--events: create or create,close_write" >&2; exit 2 ;; esac
[ -x "$build_dir/weft" ] || { echo "no $build_dir/weft (build weft_tool)" >&2; exit 1; }
[ -x "$build_dir/bench/inotify_drain" ] || { echo "no $build_dir/bench/inotify_drain" >&2; exit 1; }
command -v inotifywait >/dev/null || { echo "inotifywait is not installed (inotify-tools)" >&2; exit 1; }

exec python3 - "$build_dir" "$files" "$rounds" "$peers" "$events" "$strace_files" <<'PY'
import os, shutil, signal, statistics, subprocess, sys, tempfile, time

build, files, rounds, peers, events, strace_files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4].split(","), sys.argv[5], int(sys.argv[6])
per_file = 2 if events == "create,close_write" else 1
limit_file = "/proc/sys/fs/inotify/max_queued_events"
old_limit = open(limit_file).read().strip()
tmp = tempfile.mkdtemp(prefix="weft-inotify-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)

def command(peer, d, n_events):
    iw_events = ["-e", "create"] + (["-e", "close_write"] if per_file == 2 else [])
    return {
        "inotifywait": ["inotifywait", "-m", *iw_events, d],
        "weft": [f"{build}/weft", "watch", "--events", events, d],
        "weft-json": [f"{build}/weft", "watch", "--json", "--events", events, d],
        "weft-lib": [f"{build}/bench/inotify_drain", d, str(n_events)]
                    + (["--mask", events] if per_file == 2 else []),
    }[peer]

def cpu_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return total

def one(peer, n, wrap=()):
    d = os.path.join(tmp, f"w-{peer}")
    shutil.rmtree(d, ignore_errors=True)
    os.mkdir(d)
    out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
    want_lines = 1 if peer == "weft-lib" else n * per_file
    cmd = command(peer, d, n * per_file)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(["timeout", "300", *wrap, *cmd], stdout=out, stderr=err)
    deadline = time.time() + 10
    while True:
        text = open(err_path, "rb").read()
        if b"Watches established" in text or b"watching" in text:  # inotifywait's, weft's
            break
        if p.poll() is not None or time.time() > deadline:
            sys.exit(f"{peer} did not start: {text.decode(errors='replace')}")
        time.sleep(0.01)
    # The process doing the work: the child of timeout (and of strace, when wrapped).
    def leaf(pid):
        while True:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
            if not kids:
                return pid
            pid = int(kids[0])
    time.sleep(0.05)
    target = leaf(p.pid)
    os.kill(target, signal.SIGSTOP)
    for i in range(n):
        path = os.path.join(d, f"f{i:07d}")
        if per_file == 2:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        else:
            os.mknod(path, 0o644)  # IN_CREATE only, no open or close
    c0 = cpu_ns(target)
    t0 = time.perf_counter()
    os.kill(target, signal.SIGCONT)
    seen = 0
    with open(out_path, "rb") as f:
        while seen < want_lines:
            chunk = f.read()
            if chunk:
                seen += chunk.count(b"\n")
                continue
            if p.poll() is not None and peer != "weft-lib":
                sys.exit(f"{peer} ended early: {open(err_path, 'rb').read().decode(errors='replace')}")
            if time.perf_counter() - t0 > 120:
                sys.exit(f"{peer}: only {seen} of {want_lines} lines after 120 s")
            time.sleep(0.0002)
    t1 = time.perf_counter()
    c1 = cpu_ns(target) if os.path.exists(f"/proc/{target}") else None
    if peer == "weft-lib":
        p.wait(timeout=30)
        if p.returncode != 0:
            sys.exit(f"weft-lib exited {p.returncode}: {open(err_path, 'rb').read().decode(errors='replace')}")
    else:
        os.kill(target, signal.SIGTERM)
        p.wait(timeout=30)
    if peer != "weft-lib" and seen != want_lines:
        sys.exit(f"{peer}: {seen} lines, expected {want_lines}")
    shutil.rmtree(d, ignore_errors=True)
    return t1 - t0, (c1 - c0) if c1 is not None else None

try:
    with open(limit_file, "w") as f:
        f.write(str(2 * files * per_file + 1024))
    results = {peer: [] for peer in peers}
    for r in range(rounds):
        order = peers[r % len(peers):] + peers[:r % len(peers)]
        for peer in order:
            wall, cpu = one(peer, files)
            results[peer].append((wall, cpu))
            print(f"round {r + 1} {peer}: {files * per_file / wall:,.0f} events/s"
                  + (f", {cpu / 1e3 / (files * per_file):.2f} CPU µs/event" if cpu else ""), file=sys.stderr)
    n_events = files * per_file
    print(f"\n{n_events:,} events ({files:,} files, {events}), {rounds} rounds; medians")
    print("| peer | events/s | CPU µs/event | events/s vs inotifywait | CPU per event vs inotifywait |")
    print("|---|---|---|---|---|")
    base = results.get("inotifywait")
    for peer in peers:
        walls = [w for w, _ in results[peer]]
        cpus = [c for _, c in results[peer] if c is not None]
        rate = n_events / statistics.median(walls)
        cpu = statistics.median(cpus) / 1e3 / n_events if cpus else float("nan")
        if base and peer != "inotifywait":
            ratio = statistics.median(bw / w for (w, _), (bw, _) in zip(results[peer], base))
            cratio = statistics.median(c / bc for (_, c), (_, bc) in zip(results[peer], base) if c and bc)
            extra = f"{ratio:.2f} | {cratio:.2f}"
        else:
            extra = "1.00 | 1.00" if peer == "inotifywait" else "– | –"
        print(f"| {peer} | {rate:,.0f} | {cpu:.2f} | {extra} |")

    if strace_files > 0 and shutil.which("strace"):
        print(f"\nSystem calls per event ({strace_files * per_file:,} events, strace -c -f, start-up included)")
        counts = {}
        for peer in peers:
            log = os.path.join(tmp, f"strace-{peer}")
            one(peer, strace_files, wrap=("strace", "-c", "-f", "-qq", "-o", log))
            time.sleep(0.2)
            calls = {}
            for line in open(log):
                parts = line.split()
                if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
                    # % time, seconds, usecs/call, calls, [errors], syscall
                    calls[parts[-1]] = int(parts[3])
            counts[peer] = calls
        names = sorted({c for calls in counts.values() for c in calls},
                       key=lambda c: -max(counts[p].get(c, 0) for p in peers))
        print("| system call | " + " | ".join(peers) + " |")
        print("|---|" + "---|" * len(peers))
        n = strace_files * per_file
        for name in names:
            vals = [counts[p].get(name, 0) / n for p in peers]
            if max(vals) < 0.001:
                continue
            print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
        print("| **total** | " + " | ".join(f"{sum(counts[p].values()) / n:.4f}" for p in peers) + " |")
finally:
    with open(limit_file, "w") as f:
        f.write(old_limit)
    shutil.rmtree(tmp, ignore_errors=True)
PY
