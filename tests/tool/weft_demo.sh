#!/usr/bin/env bash
# The weft tool's demo on each backend: it runs, stops by itself or on SIGTERM,
# lets its child (cat) echo every line and end before shutdown, and exits 0.
set -euo pipefail
weft=$1
for backend in epoll poll select; do
  out=$("$weft" --reactor "$backend" demo --seconds 0.6 2>&1)
  grep -q "tick 1 from a worker thread" <<<"$out" || { echo "$backend: no tick: $out"; exit 1; }
  grep -q "cat ended after echoing [1-9][0-9]* bytes: .*exit code 0" <<<"$out" || { echo "$backend: unclean end: $out"; exit 1; }
done
"$weft" demo > /tmp/weft_demo_$$.out 2>&1 &
pid=$!
sleep 0.8
kill -TERM "$pid"
wait "$pid"   # set -e: a non-zero exit fails the test
grep -q "stopped by signal 15" /tmp/weft_demo_$$.out || { cat /tmp/weft_demo_$$.out; exit 1; }
rm -f /tmp/weft_demo_$$.out
if "$weft" --reactor bogus demo >/dev/null 2>&1; then echo "bad --reactor accepted"; exit 1; fi
echo "weft demo OK"
