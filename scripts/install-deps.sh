#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages (and npm modules) one kind of work on Portico needs.
#
#   scripts/install-deps.sh [GROUP...]
#
#   run       build and run Portico (the default): compiler, CMake, the libraries it links
#   test      run + what the test suite needs: Catch2, Python peers, Chromium, Redis, clang and
#             libFuzzer's runtime for the fuzz targets, nginx for the differential check, the
#             packaging tools (the package test builds the .deb), npm peers, tcpdump and
#             tshark (the key log test decrypts a capture)
#   bench     run + the peers the benchmarks compare against: nginx, HAProxy, nchan, wrk,
#             python3-matplotlib for the charts (bench/charts.py); liburing-dev (the io_uring
#             tunnel, and ws_load relay --uring) is in run
#   package   run + debhelper, dpkg-dev, lintian, fakeroot
#
# Idempotent: packages already installed are skipped. It never stops, restarts or reconfigures
# a service that is already on the machine. Debian starts some daemons when their package is
# first installed (nginx, haproxy, redis-server); the tests and benchmarks start their own
# instances on free ports, so while this script installs packages it asks invoke-rc.d not to
# start them (a temporary policy-rc.d, only when the machine has none of its own).
set -euo pipefail
cd "$(dirname "$0")/.."

run_packages=(build-essential cmake pkg-config
  libevent-dev libssl-dev libyaml-cpp-dev node-llhttp zlib1g-dev libsystemd-dev libhiredis-dev libnghttp2-dev liburing-dev)
test_packages=(catch2 python3 python3-websockets python3-django python3-django-channels python3-daphne
  python3-jsonschema python3-yaml python3-h2 nghttp2-client
  curl openssl procps chromium redis-server clang libclang-rt-dev nginx
  debhelper dpkg-dev lintian fakeroot tcpdump tshark iproute2 gunicorn)
bench_packages=(wrk nginx haproxy libnginx-mod-nchan python3-matplotlib)
package_packages=(debhelper dpkg-dev lintian fakeroot)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(run)
packages=("${run_packages[@]}")
want_npm=0
for group in "${groups[@]}"; do
  case "$group" in
    run) ;;
    test) packages+=("${test_packages[@]}"); want_npm=1 ;;
    bench) packages+=("${bench_packages[@]}") ;;
    package) packages+=("${package_packages[@]}") ;;
    -h|--help) sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown group '$group' (run, test, bench, package)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    # Exit code 101 tells invoke-rc.d "action not allowed": packages get installed, their
    # daemons are not started. Removed again when this script ends.
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  # wireshark-common asks whether non-root users may capture (a setuid dumpcap); answer "no"
  # up front so the install never stops at a prompt. tcpdump as root is what the tests use.
  if printf '%s\n' "${missing[@]}" | grep -qx 'tshark'; then
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  fi
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$want_npm" = 1 ]; then
  command -v npm >/dev/null || apt-get install -y --no-install-recommends nodejs npm
  # npm peers (express-ws, ws, playwright-core) pinned by tests/peers/package-lock.json.
  (cd tests/peers && npm ci --no-audit --no-fund)
fi
