#!/usr/bin/python3
"""spawn_twisted: the Twisted peer of bench/spawn_weft.cpp (issue #11 item 4, bench/spawn.sh).

    /usr/bin/python3 bench/spawn_twisted.py --children N --in-flight K [--ballast-mib M] [--stdio out|pipes]

reactor.spawnProcess (epollreactor; Twisted 22.4 from Debian 12 forks the child) of /bin/true N
times with K in flight: each processEnded starts the next. Empty environment (Twisted's default).
--stdio out (the default): childFDs {0: /dev/null, 1: "r", 2: /dev/null} (one /dev/null
descriptor of the parent's); --stdio pipes: Twisted's default childFDs {0: "w", 1: "r", 2: "r"},
stdin closed in connectionMade. With --ballast-mib M the parent first allocates a bytearray of
M MiB and writes every page of it (kept alive to the end).

Prints the same key=value line as spawn_weft (peer=twisted): latency is the time inside
spawnProcess, CPU is resource.getrusage over the window from the first spawnProcess to the last
processEnded. The reactor runs with its signal handlers (Twisted reaps children on SIGCHLD).
"""
import argparse
import os
import resource
import sys
import time

from twisted.internet import epollreactor

epollreactor.install()
from twisted.internet import protocol, reactor  # noqa: E402


def cpu(who):
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def make_ballast(mib):
    if mib <= 0:
        return None
    size = mib << 20
    ballast = bytearray(size)
    pages = len(range(0, size, 4096))
    ballast[0::4096] = b"\x01" * pages  # one write per page: every page present and private
    return ballast


class Child(protocol.ProcessProtocol):
    def __init__(self, run):
        self.run = run

    def connectionMade(self):
        if self.run.stdio == "pipes":
            self.transport.closeStdin()

    def processEnded(self, reason):
        code = getattr(reason.value, "exitCode", None)
        self.run.child_ended(code == 0)


class Run:
    def __init__(self, args, devnull):
        self.stdio = args.stdio
        self.total = args.children
        self.in_flight = min(args.in_flight, self.total)
        self.child_fds = {0: devnull, 1: "r", 2: devnull} if args.stdio == "out" else None
        self.started = self.ended = self.failures = 0
        self.latencies = []
        self.timed_out = False

    def start_one(self):
        self.started += 1
        t0 = time.perf_counter()
        try:
            reactor.spawnProcess(Child(self), "/bin/true", ["true"], env={}, childFDs=self.child_fds)
        except Exception as e:  # noqa: BLE001 - counted and reported
            print(f"spawn_twisted: spawnProcess: {e}", file=sys.stderr)
            self.latencies.append((time.perf_counter() - t0) * 1e6)
            self.child_ended(False)
            return
        self.latencies.append((time.perf_counter() - t0) * 1e6)

    def child_ended(self, ok):
        self.ended += 1
        if not ok:
            self.failures += 1
        if self.started < self.total:
            self.start_one()
        elif self.ended == self.total:
            reactor.stop()

    def timeout(self):
        self.timed_out = True
        print(f"spawn_twisted: timed out ({self.ended} of {self.total} ended)", file=sys.stderr)
        reactor.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, required=True)
    ap.add_argument("--in-flight", type=int, default=1)
    ap.add_argument("--ballast-mib", type=int, default=0)
    ap.add_argument("--stdio", choices=("out", "pipes"), default="out")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    keep = make_ballast(args.ballast_mib)
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    run = Run(args, devnull)
    deadline = reactor.callLater(args.timeout, run.timeout)
    marks = {}

    def begin():
        marks["cpu0"], marks["child0"] = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
        marks["t0"] = time.perf_counter()
        for _ in range(run.in_flight):
            run.start_one()

    reactor.callWhenRunning(begin)
    reactor.run()
    wall = time.perf_counter() - marks["t0"]
    cpu_self = cpu(resource.RUSAGE_SELF) - marks["cpu0"]
    cpu_children = cpu(resource.RUSAGE_CHILDREN) - marks["child0"]
    if deadline.active():
        deadline.cancel()

    lat = sorted(run.latencies)
    n = max(run.ended, 1)
    ok = not run.timed_out and run.failures == 0 and run.ended == run.total
    print(
        f"peer=twisted mode=spawn stdio={args.stdio} children={run.total} in_flight={run.in_flight} "
        f"ballast_mib={args.ballast_mib} wall_s={wall:.4f} spawns_per_s={run.ended / wall:.1f} "
        f"lat_mean_us={sum(lat) / len(lat):.1f} lat_p99_us={lat[min(len(lat) - 1, len(lat) * 99 // 100)]:.1f} "
        f"cpu_per_spawn_us={cpu_self * 1e6 / n:.1f} child_cpu_per_spawn_us={cpu_children * 1e6 / n:.1f} "
        f"failures={run.failures} ok={int(ok)}"
    )
    del keep
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
