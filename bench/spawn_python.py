#!/usr/bin/python3
"""spawn_python: the Python subprocess peer of bench/spawn_weft.cpp (issue #11 item 4, bench/spawn.sh).

    /usr/bin/python3 bench/spawn_python.py --children N --in-flight K [--ballast-mib M] [--stdio out|pipes]

subprocess.Popen of /bin/true N times with K in flight (oldest first: each child's pipes are read to
EOF and closed, then it is waited for, then the next is started). Empty environment. --stdio out (the
default): stdout=PIPE, stdin and stderr one /dev/null descriptor of the parent's; --stdio pipes: three
pipes (stdin closed at once). close_fds=True (Popen's default). With --ballast-mib M the parent
first allocates a bytearray of M MiB and writes every page of it (kept alive to the end).

Prints the same key=value line as spawn_weft (peer=python): latency is the time inside Popen(),
CPU is resource.getrusage over the window from the first Popen to the last wait().
"""
import argparse
import collections
import os
import resource
import subprocess
import sys
import time


def cpu(who):
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def make_ballast(mib):
    if mib <= 0:
        return None
    size = mib << 20
    ballast = bytearray(size)  # calloc: fresh pages, not yet present
    pages = len(range(0, size, 4096))
    ballast[0::4096] = b"\x01" * pages  # one write per page: every page present and private
    return ballast


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, required=True)
    ap.add_argument("--in-flight", type=int, default=1)
    ap.add_argument("--ballast-mib", type=int, default=0)
    ap.add_argument("--stdio", choices=("out", "pipes"), default="out")
    args = ap.parse_args()

    keep = make_ballast(args.ballast_mib)
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    if args.stdio == "out":
        streams = dict(stdin=devnull, stdout=subprocess.PIPE, stderr=devnull)
    else:
        streams = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    total = args.children
    in_flight = min(args.in_flight, total)
    latencies = []
    running = collections.deque()
    started = ended = failures = 0

    def start_one():
        nonlocal started
        started += 1
        t0 = time.perf_counter()
        p = subprocess.Popen(["/bin/true"], env={}, **streams)
        latencies.append((time.perf_counter() - t0) * 1e6)
        if p.stdin is not None:
            p.stdin.close()
        running.append(p)

    cpu0, child0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for _ in range(in_flight):
        start_one()
    while running:
        p = running.popleft()
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.read()
                f.close()
        if p.wait() != 0:
            failures += 1
        ended += 1
        if started < total:
            start_one()
    wall = time.perf_counter() - t0
    cpu_self = cpu(resource.RUSAGE_SELF) - cpu0
    cpu_children = cpu(resource.RUSAGE_CHILDREN) - child0

    latencies.sort()
    mean = sum(latencies) / len(latencies)
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]
    ok = failures == 0 and ended == total
    print(
        f"peer=python mode=spawn stdio={args.stdio} children={total} in_flight={in_flight} "
        f"ballast_mib={args.ballast_mib} wall_s={wall:.4f} spawns_per_s={ended / wall:.1f} "
        f"lat_mean_us={mean:.1f} lat_p99_us={p99:.1f} cpu_per_spawn_us={cpu_self * 1e6 / ended:.1f} "
        f"child_cpu_per_spawn_us={cpu_children * 1e6 / ended:.1f} failures={failures} ok={int(ok)}"
    )
    del keep
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
