#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the build and tests need, builds, and runs every test (unit + integration).
#   scripts/test.sh              Release build in build/, warnings as errors
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, same tests
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DPORTICO_WERROR=ON)
ctest_args=()
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-asan
  cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_WERROR=ON -DPORTICO_SANITIZE=ON)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The sanitizer run skips the load-shaped tests (throughput, 10k connections): they measure
  # memory of a Release build and would take long under ASan.
  ctest_args=(-LE heavy)
fi

./scripts/install-deps.sh test
cmake -S . -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j2 "${ctest_args[@]}"
