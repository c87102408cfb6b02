#!/usr/bin/env bash
# Lint (issue #10 item 5): outside src/sys, no library source (src/, include/)
# calls a system call directly. Every one goes through the seam, sys::ops
# (src/sys/syscalls.hpp), so the fault tests (tests/support/faults.hpp) reach it.
#
# A hit is `::name(` (a call qualified with the global scope, the project's
# spelling for a system call) for a name that is a member of sys::Ops (read
# from syscalls.hpp, so a new seam entry is checked as soon as it exists) or one
# of the other system calls listed below, which are not in the seam yet and must
# join it before a source uses them. `sys::kernelOps` outside src/sys is a hit
# too: it would bypass the injector. `//` comments are ignored.
#
# A line may opt out with the marker `// syscall-seam: exempt (reason)` when
# going through the seam is wrong, not merely inconvenient. There is one today,
# and more make this check fail until max_exempt is raised on purpose:
#   src/internet/base.cpp, the signal handler's write to the reactor's eventfd:
#   a handler may interrupt an injector hook holding its mutex, so it must not
#   call through a table of hooks (see src/sys/syscalls.hpp).
#
# Usage: no_direct_syscalls.sh [SOURCE_DIR]   (default: this repository)
#        no_direct_syscalls.sh --self-test    (checks that the check catches)
set -euo pipefail

max_exempt=1

# System calls outside the seam today; using one means adding it to sys::Ops.
extra=(accept pipe pipe2 dup dup2 dup3 socketpair sendto recvfrom sendmmsg ioctl fstat fstatat newfstatat
       openat creat lseek pread pwrite preadv pwritev ftruncate fsync fdatasync mkdir mkdirat rmdir rename renameat
       access faccessat chdir fchdir umask fchmod fchmodat chown fchown lchown link linkat symlinkat readlinkat
       unlinkat utimensat timerfd_create timerfd_settime timerfd_gettime signalfd inotify_init inotify_init1
       inotify_add_watch inotify_rm_watch epoll_create epoll_pwait ppoll pselect sigprocmask pthread_sigmask
       rt_sigprocmask waitpid waitid wait4 fork vfork execve execvp execv posix_spawn _exit getppid setsid setpgid
       getuid geteuid getgid getegid isatty tcgetattr tcsetattr mmap munmap nanosleep clock_nanosleep prctl syscall
       sendfile splice tee getrlimit setrlimit sched_yield gettid tgkill memfd_create flock fchownat mknod mknodat
       truncate statx)

self_test() {
  local here tmp out status
  here=$(cd "$(dirname "$0")/../.." && pwd)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/src/sys" "$tmp/src/internet" "$tmp/include/weft"
  cp "$here/src/sys/syscalls.hpp" "$tmp/src/sys/"
  printf 'int f(int fd) { return ::close(fd); }\n' >"$tmp/src/sys/inside.cpp"  # the seam itself may
  cat >"$tmp/src/internet/bad.cpp" <<'EOF'
void bad(int fd, int* p, Obj& obj) {
    ::close(fd);                                   // hit: an Ops member
    int x = ::fcntl (fd, F_GETFD);                 // hit: space before the parenthesis
    obj.close(fd);                                 // member call: no hit
    Foo::close(fd);                                // qualified name: no hit
    // ::unlink(path);                             (a comment: no hit)
    ::write(fd, p, 1);  // syscall-seam: exempt (the self-test's one exemption)
    ::kill(0, 0);  // syscall-seam: exempt
    sys::kernelOps.read(fd, p, 1);                 // hit: bypasses the injector
    ::pipe2(p, 0);                                 // hit: a system call not in the seam
    sys::ops.close(fd);                            // the seam: no hit
}
EOF
  printf 'inline int g() { return ::socket(1, 2, 3); }\n' >"$tmp/include/weft/bad.hpp"
  set +e
  out=$("$0" "$tmp" 2>&1)
  status=$?
  set -e
  local expected=("src/internet/bad.cpp:2:" "src/internet/bad.cpp:3:" "src/internet/bad.cpp:8:"
                  "src/internet/bad.cpp:9:" "src/internet/bad.cpp:10:" "include/weft/bad.hpp:1:")
  local hits ok=1
  hits=$(grep -v '^exempt: ' <<<"$out" | grep -c ':[0-9]*: ' || true)
  [ "$status" -ne 0 ] || { echo "self-test: the check passed a tree with direct calls"; ok=0; }
  for e in "${expected[@]}"; do
    grep -qF "$e" <<<"$out" || { echo "self-test: missed $e"; ok=0; }
  done
  [ "$hits" -eq "${#expected[@]}" ] || { echo "self-test: $hits hits, expected ${#expected[@]}"; ok=0; }
  grep -q 'exempt: src/internet/bad.cpp:7:' <<<"$out" || { echo "self-test: the exemption was not listed"; ok=0; }
  rm "$tmp/src/internet/bad.cpp" "$tmp/include/weft/bad.hpp"
  "$0" "$tmp" >/dev/null 2>&1 || { echo "self-test: the check failed a clean tree"; ok=0; }
  if [ "$ok" -ne 1 ]; then
    echo "--- output of the check on the bad tree:"; echo "$out"
    return 1
  fi
  echo "self-test passed"
}

if [ "${1:-}" = "--self-test" ]; then
  self_test
  exit
fi

root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
header="$root/src/sys/syscalls.hpp"
[ -f "$header" ] || { echo "no $header"; exit 2; }

# The seam's entries: `ret (*name)(...)` inside struct Ops.
mapfile -t seam < <(sed -n '/^struct Ops {/,/^};/p' "$header" | grep -oE '\(\*[A-Za-z_0-9]+\)' | tr -d '(*)')
if [ "${#seam[@]}" -lt 20 ]; then
  echo "read only ${#seam[@]} sys::Ops entries from $header; the parse is broken"
  exit 2
fi
names=$(printf '%s|' "${seam[@]}" "${extra[@]}")
names=${names%|}

mapfile -d '' files < <(find "$root/src" "$root/include" -type f \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' -o -name '*.ipp' \) \
  -not -path "$root/src/sys/*" -print0 | sort -z)

report=$(awk -v root="$root/" -v names="$names" '
  BEGIN {
    call = "(^|[^A-Za-z0-9_])::(" names ")[ \t]*\\("
    marker = "// syscall-seam: exempt \\([^)]+\\)"
  }
  {
    code = $0
    sub(/\/\/.*/, "", code)
    if (code !~ call && code !~ /kernelOps/) next
    file = substr(FILENAME, length(root) + 1)
    line = $0
    sub(/^[ \t]+/, "", line)
    if ($0 ~ marker && code !~ /kernelOps/) print "exempt: " file ":" FNR ": " line
    else print file ":" FNR ": " line
  }' "${files[@]}")

exempt=$(grep -c '^exempt: ' <<<"$report" || true)
hits=$(grep -v '^exempt: ' <<<"$report" | grep -c . || true)

echo "checked ${#files[@]} files for ${#seam[@]} seam entries and ${#extra[@]} other system calls"
[ "$exempt" -eq 0 ] || grep '^exempt: ' <<<"$report"
status=0
if [ "$hits" -gt 0 ]; then
  echo "direct system calls outside src/sys (call them through sys::ops; add an entry to sys::Ops if needed):"
  grep -v '^exempt: ' <<<"$report" | grep .
  status=1
fi
if [ "$exempt" -gt "$max_exempt" ]; then
  echo "$exempt exemptions, at most $max_exempt allowed: route the new one through sys::ops, or justify it and raise max_exempt"
  status=1
fi
[ "$status" -ne 0 ] || echo "no direct system calls outside src/sys"
exit "$status"
