#!/usr/bin/env bash
# Installs (only if missing) the Debian 12 packages bench/compare.sh needs: weft's own build
# dependencies (scripts/deps.sh, which includes libbenchmark-dev: bench/ is only configured
# when Google Benchmark is found) and the peer servers' libraries. taskset comes with
# util-linux, which every Debian system has. bench/spawn.sh also runs Debian's Twisted
# (python3-twisted, for /usr/bin/python3) and counts system calls with strace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
pkgs=(libuv1-dev libasio-dev libevent-dev pkg-config util-linux python3-twisted strace
      valgrind)  # callgrind for bench/instructions.sh
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
