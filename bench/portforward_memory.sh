#!/usr/bin/env bash
# 1 GiB through `weft portforward` to `weft echo` and back to a deliberately
# slow reader (it sleeps 1 ms after every 64 KiB it reads, so the backlog is
# always in weft's hands): prints the peak RSS of both weft processes and
# checks the data byte for byte (SHA-256).  Usage: bench/portforward_memory.sh [weft] [MiB]
set -euo pipefail
weft=${1:-build/release/weft}
mib=${2:-1024}
log=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$log"' EXIT
port() { for _ in $(seq 100); do p=$(sed -n "s/.* on IPv4Address(TCP, '127.0.0.1', \([0-9]*\)).*/\1/p" "$1" | head -1); [ -n "$p" ] && { echo "$p"; return; }; sleep 0.05; done; exit 1; }
"$weft" echo tcp:0:interface=127.0.0.1 >"$log/echo" 2>&1 & echoPid=$!
echoPort=$(port "$log/echo")
"$weft" portforward tcp:0:interface=127.0.0.1 --to "tcp:127.0.0.1:$echoPort" >"$log/fwd" 2>&1 & fwdPid=$!
fwdPort=$(port "$log/fwd")
python3 - "$fwdPort" "$fwdPid" "$echoPid" "$mib" <<'PY'
import socket, sys, threading, time, hashlib
port, fwd, echo, mib = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
total = mib << 20
block = bytes((i * 7) & 0xff for i in range(1 << 16))
sent = hashlib.sha256(); got = hashlib.sha256()
s = socket.create_connection(("127.0.0.1", port))
def send():
    left = total
    while left:
        chunk = block[: min(len(block), left)]
        s.sendall(chunk); sent.update(chunk); left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key): return int(line.split()[1])
n = 0; start = time.time()
while True:
    data = s.recv(65536)
    if not data: break
    got.update(data); n += len(data)
    time.sleep(0.001)
t.join()
secs = time.time() - start
ok = n == total and got.hexdigest() == sent.hexdigest()
print(f"{n} bytes ({n >> 20} MiB) of {mib} MiB back in {secs:.1f} s ({n / secs / 1e6:.0f} MB/s), byte-exact: {ok}")
for name, pid in (("portforward", fwd), ("echo", echo)):
    print(f"{name}: peak RSS {status(pid, 'VmHWM:')} KiB, RSS now {status(pid, 'VmRSS:')} KiB")
sys.exit(0 if ok else 1)
PY
