#!/usr/bin/env bash
# Installs the Debian 12 packages weft needs to build, test and benchmark.
# Quiet and quick when everything is already there.
set -euo pipefail
pkgs=(cmake ninja-build g++ clang libclang-rt-14-dev pkg-config python3 libfmt-dev libcli11-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      libssl-dev libidn2-dev      # TLS (OpenSSL 3) and IDNA 2008 host names
      openssl                     # a real TLS peer in the tests (s_client)
      ccache clang-format
      socat netcat-openbsd curl   # real clients in the tool tests (tests/tool/weft_tcp.sh)
      bc                          # a real child program for weft exec (tests/tool/weft_exec.sh)
      inotify-tools               # inotifywait: cross-check and peer for weft watch
      iproute2 iputils-ping       # ip netns/link/addr and ping for the tun/tap tests
      python3-serial)             # pyserial: the peer of the serial-line benchmark
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
