#!/usr/bin/env bash
# Installs every Debian package and npm module that Portico's build, tests and benchmarks need.
# Idempotent: safe to run again; skips apt when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  build-essential cmake pkg-config
  libevent-dev libssl-dev libyaml-cpp-dev catch2 node-llhttp zlib1g-dev libsystemd-dev
  # test peers and tools
  python3 python3-websockets python3-django python3-django-channels python3-daphne
  curl openssl procps chromium redis-server
  # benchmarks
  wrk nginx haproxy libnginx-mod-nchan
  # packaging
  debhelper dpkg-dev lintian fakeroot
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The Debian nginx/haproxy/redis packages start system services on install; our benchmarks and
# tests start their own instances on free ports, so stop the system ones if they are running.
for svc in nginx haproxy redis-server; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
  pkill -x "${svc%-server}" 2>/dev/null || true
done

command -v npm >/dev/null || { apt-get install -y --no-install-recommends nodejs npm; }
# npm peers (express-ws, ws, playwright-core) pinned by tests/peers/package-lock.json.
if [ -f tests/peers/package.json ]; then
  (cd tests/peers && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
fi
