#!/usr/bin/env bash
# `weft watch` for real (issue #13): files and directories made by shell commands under
# `weft watch --json --recursive`, on every backend: create, modify, attribute change, delete,
# both halves of a move with one cookie (a file and a directory), a tree made with `mkdir -p`
# and filled at once; a kernel queue overflow provoked by shrinking
# /proc/sys/fs/inotify/max_queued_events (restored by a trap); plain lines; --events; a reader
# that goes away; bad input (a missing path, an unknown event name).
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

limit_file=/proc/sys/fs/inotify/max_queued_events
old_limit=$(cat "$limit_file")
restore_limit() { echo "$old_limit" >"$limit_file" 2>/dev/null || true; }
trap 'restore_limit; cleanup' EXIT

# watch NAME ARGS...: `weft ARGS...` in the background, stdout to $work/NAME.out, stderr to
# $work/NAME.err, until it says it is watching; sets PID.
watch() {
  local name=$1; shift
  "$weft" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  PID=$!
  pids+=("$PID")
  await_text "$work/$name.err" "watching" 200 && return 0
  echo "$name did not start:"; cat "$work/$name.err"; exit 1
}

# finish PID NAME: SIGTERM; it must exit 0 within 10 s.
finish() {
  kill -TERM "$1"
  local rc=0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || { echo "$2 exited with $rc"; cat "$work/$2.err"; exit 1; }
}

# expect FILE TIMEOUT CHECKS...: waits until every check holds for the JSON lines of FILE.
# A check is "PATH EVENT[,EVENT...]" (a line for PATH whose events include them all),
# "pair OLD NEW" (a moved_from line for OLD and a moved_to line for NEW with one non-zero
# cookie) or "overflow".
expect() {
  python3 - "$@" <<'PY'
import json, sys, time
path, timeout, checks = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def holds(lines, check):
    words = check.split(" ")
    if words[0] == "overflow":
        return any(l.get("overflow") is True for l in lines)
    if words[0] == "pair":
        froms = [l.get("cookie") for l in lines if l.get("path") == words[1] and "moved_from" in l.get("events", [])]
        tos = [l.get("cookie") for l in lines if l.get("path") == words[2] and "moved_to" in l.get("events", [])]
        return any(c and c in tos for c in froms)
    want = set(words[1].split(","))
    return any(l.get("path") == words[0] and want <= set(l.get("events", [])) for l in lines)
deadline = time.time() + timeout
while True:
    with open(path, "rb") as f:
        lines = [json.loads(x) for x in f.read().decode("utf-8", "surrogateescape").splitlines()]
    missing = [c for c in checks if not holds(lines, c)]
    if not missing:
        sys.exit(0)
    if time.time() > deadline:
        print("missing:", *missing, sep="\n  ")
        print("got:"); [print(" ", json.dumps(l)) for l in lines]
        sys.exit(1)
    time.sleep(0.05)
PY
}

for backend in epoll poll select; do
  t=$work/tree-$backend
  mkdir -p "$t/old"
  watch "json-$backend" --reactor "$backend" watch --json --recursive "$t"
  touch "$t/file"
  echo more >>"$t/file"
  chmod 600 "$t/file"
  mv "$t/file" "$t/renamed"
  rm "$t/renamed"
  mkdir "$t/dir"
  mv "$t/dir" "$t/dir2"
  rmdir "$t/dir2"
  mkdir -p "$t/p/q/r" && touch "$t/p/q/r/deep" && echo x >"$t/p/f1" && echo y >"$t/p/q/f2"
  touch "$t/old/existing"
  expect "$work/json-$backend.out" 10 \
    "$t/file create" "$t/file modify" "$t/file attrib" "$t/file close_write" "pair $t/file $t/renamed" \
    "$t/renamed delete" "$t/dir create,is_dir" "pair $t/dir $t/dir2" "$t/dir2 delete,is_dir" \
    "$t/p create,is_dir" "$t/p/q create,is_dir" "$t/p/q/r create,is_dir" "$t/p/q/r/deep create" \
    "$t/p/f1 create" "$t/p/q/f2 create" "$t/old/existing create" \
    || { echo "$backend: weft watch --json --recursive missed events"; exit 1; }
  # Every line is one JSON object; cookies only on moves.
  python3 - "$work/json-$backend.out" <<'PY' || { echo "$backend: malformed output"; exit 1; }
import json, sys
for raw in open(sys.argv[1], "rb").read().decode("utf-8", "surrogateescape").splitlines():
    line = json.loads(raw)
    assert set(line) <= {"path", "events", "cookie"}, raw
    moves = {"moved_from", "moved_to"} & set(line["events"])
    assert ("cookie" in line) == bool(moves), raw
PY
  finish "$PID" "json-$backend"
done

# Plain lines: the event names, comma-separated, a space, the full path; --events narrows them.
p=$work/plain
mkdir -p "$p"
watch plain watch --events create,delete "$p"
mkdir "$p/sub"
touch "$p/f"
rm "$p/f"
for _ in $(seq 100); do [ "$(wc -l <"$work/plain.out")" -ge 3 ] && break; sleep 0.05; done
printf 'create,is_dir %s\ncreate %s\ndelete %s\n' "$p/sub" "$p/f" "$p/f" | diff - "$work/plain.out" \
  || { echo "plain output differs"; exit 1; }
# A name holding a newline and an escape sequence stays on one line, with nothing raw.
: >"$p/"$'two\nlines\e[31mred'
for _ in $(seq 100); do [ "$(wc -l <"$work/plain.out")" -ge 4 ] && break; sleep 0.05; done
[ "$(sed -n 4p "$work/plain.out")" = "create $p/two\\nlines\\x1b[31mred" ] ||
  { echo "a control character in a name: $(sed -n '4,$p' "$work/plain.out" | od -c | head -5)"; exit 1; }
finish "$PID" plain

# A relative PATH is reported by its full path too (it printed "rel/f"), and two spellings of one
# directory are one watch (every event came twice).
mkdir -p "$work/rel"
( cd "$work" && exec "$weft" watch --events create rel/ "$work//rel/../rel" >"$work/rel.out" 2>"$work/rel.err" ) &
PID=$!
pids+=("$PID")
await_text "$work/rel.err" "watching 1 path" 200 || { echo "relative: did not start"; cat "$work/rel.err"; exit 1; }
touch "$work/rel/f"
for _ in $(seq 100); do [ -s "$work/rel.out" ] && break; sleep 0.05; done
sleep 0.2
[ "$(cat "$work/rel.out")" = "create $work/rel/f" ] || { echo "relative path: $(cat "$work/rel.out")"; exit 1; }
finish "$PID" rel

# A non-UTF-8 name comes back byte-exact through --json (surrogateescape).
u=$work/utf
mkdir -p "$u"
watch utf watch --json --events create "$u"
touch "$u/$(printf 'n\xffa\xe2\x82\xacb')"
python3 - "$work/utf.out" "$u" <<'PY' || { echo "a non-UTF-8 name did not round-trip"; exit 1; }
import json, os, sys, time
for _ in range(100):
    text = open(sys.argv[1], "rb").read()
    if text:
        break
    time.sleep(0.05)
line = json.loads(text.splitlines()[0])
assert os.fsencode(line["path"]) == os.fsencode(sys.argv[2]) + b"/n\xffa\xe2\x82\xacb", line
PY
finish "$PID" utf

# A reader that goes away ends the watch with status 0 (as SIGPIPE ends inotifywait).
h=$work/head
mkdir -p "$h"
( "$weft" watch --events create "$h" 2>"$work/head.err" | head -n 1 >"$work/head.out"; echo "${PIPESTATUS[0]}" >"$work/head.rc" ) &
pids+=($!)
for _ in $(seq 100); do grep -q watching "$work/head.err" 2>/dev/null && break; sleep 0.05; done
for i in 1 2 3 4 5; do touch "$h/f$i"; sleep 0.05; done
for _ in $(seq 100); do [ -s "$work/head.rc" ] && break; sleep 0.05; done
[ "$(cat "$work/head.rc" 2>/dev/null)" = 0 ] || { echo "weft watch | head: status $(cat "$work/head.rc" 2>/dev/null)"; exit 1; }
grep -qx "create $h/f1" "$work/head.out" || { echo "weft watch | head: got $(cat "$work/head.out")"; exit 1; }

# Overflow: an instance made while max_queued_events is 64 overflows when 200 events happen while
# it is stopped (SIGSTOP); it reports {"overflow": true}.
o=$work/overflow
mkdir -p "$o"
if echo 64 >"$limit_file" 2>/dev/null; then
  watch overflow watch --json "$o"
  restore_limit  # the kernel took the limit when the instance was made
  kill -STOP "$PID"
  for i in $(seq 200); do : >"$o/f$i"; done
  kill -CONT "$PID"
  expect "$work/overflow.out" 10 overflow || { echo "no overflow reported"; exit 1; }
  [ "$(grep -c '"path"' "$work/overflow.out")" -eq 64 ] || { echo "expected 64 events before the overflow"; exit 1; }
  finish "$PID" overflow
else
  echo "skipped the overflow check: cannot write $limit_file (needs root)"
fi

# Bad input.
set +e
"$weft" watch "$work/missing" >"$work/bad.out" 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "a missing path exited 0"; exit 1; }
grep -q "cannot watch '$work/missing': No such file or directory" "$work/bad.err" \
  || { echo "missing path: $(cat "$work/bad.err")"; exit 1; }
[ ! -s "$work/bad.out" ] || { echo "a missing path printed events"; exit 1; }
set +e
"$weft" watch --events create,nonsense "$work" 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "an unknown event name exited $rc"; exit 1; }
grep -q "unknown event 'nonsense'" "$work/bad.err" || { echo "unknown event: $(cat "$work/bad.err")"; exit 1; }
# A flag is not an event: one_shot, is_dir, mask_add … would change or silence the watch; an empty
# list is no list (it fell back to the default).
for events in create,one_shot is_dir only_dir,create mask_add ''; do
  set +e
  "$weft" watch --events "$events" "$work" >"$work/bad.out" 2>"$work/bad.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "--events '$events' exited $rc"; exit 1; }
  [ "$(wc -l <"$work/bad.err")" -eq 1 ] || { echo "--events '$events': $(cat "$work/bad.err")"; exit 1; }
done
"$weft" watch --help | grep -q "^Event names: access, .*move_self, unmount\.$" || { echo "--help lists flags as events"; exit 1; }
# The default the help shows is a list --events takes (it named unmount, which --events refused).
default=$("$weft" watch --help | sed -n 's/.*(default: \([a-z_,]*\)).*/\1/p')
[ -n "$default" ] || { echo "--help shows no default for --events"; exit 1; }
"$weft" watch --events "$default" "$work" >"$work/default.out" 2>"$work/default.err" &
defaultPid=$!
sleep 0.5
kill -TERM "$defaultPid" 2>/dev/null || true
set +e
wait "$defaultPid"
rc=$?
set -e
[ "$rc" -eq 0 ] || { echo "--events '$default' (the default) exited $rc: $(cat "$work/default.err")"; exit 1; }
! "$weft" watch --help | grep -q "one_shot" || { echo "--help lists one_shot"; exit 1; }
set +e
"$weft" watch >/dev/null 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "no path exited 0"; exit 1; }
echo "weft watch: all checks passed"
