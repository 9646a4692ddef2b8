#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for a fixed time on a copy
# of the committed corpus (tests/fuzz/corpus/<target> and tests/fuzz/regressions/<target>).
#
#   scripts/fuzz.sh [--time SECONDS] [--jobs N] [TARGET...]
#
#   --time SECONDS   how long each target runs (default 60)
#   --jobs N         targets run at once (default: the number of CPUs)
#   TARGET           http_request, ws_codec, ... (default: every target in tests/fuzz/CMakeLists.txt)
#
# Any crash, sanitizer report, failed FUZZ_CHECK, leak, timeout (an input taking over 10 s) or
# out-of-memory (over 2 GiB) fails the script; it names the input libFuzzer saved and says how to
# replay it and keep it as a regression. Runs leave build-fuzz/fuzz-run/<target>/ behind: the
# corpus as it grew (corpus/), what was found (artifacts/) and libFuzzer's log (fuzz.log).
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=$(nproc)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  # The one list of targets: tests/fuzz/CMakeLists.txt.
  read -r -a targets < <(sed -n 's/^set(PORTICO_FUZZ_NAMES \(.*\))$/\1/p' tests/fuzz/CMakeLists.txt)
fi

build=build-fuzz
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_FUZZ=ON \
  -DPORTICO_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
echo "fuzz.sh: built in $(($(date +%s) - start)) s; running ${#targets[@]} targets for ${seconds} s each, $jobs at once"

# Sanitizer reports end the run with the stack; leaks count as failures (libFuzzer's default).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_target() {
  local what=$1
  local dir=$build/fuzz-run/$what
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp tests/fuzz/corpus/"$what"/* "$dir/corpus/"
  if [ -d tests/fuzz/regressions/"$what" ]; then
    find tests/fuzz/regressions/"$what" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$dir/corpus/" \;
  fi
  local dict=()
  [ -f tests/fuzz/"$what".dict ] && dict=(-dict=tests/fuzz/"$what".dict)
  # Seeds and regressions come first as inputs to replay; the corpus folder then grows.
  "$build"/tests/fuzz/fuzz_"$what" "$dir/corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" >"$dir/fuzz.log" 2>&1
}

report() {
  local what=$1 status=$2
  local dir=$build/fuzz-run/$what
  local stats
  stats=$(grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$dir/fuzz.log" | tail -2 | tr '\n' ' ')
  local found
  found=$(find "$dir/artifacts" -type f | sort)
  if [ "$status" -eq 0 ] && [ -z "$found" ]; then
    echo "fuzz.sh: $what: ok ($stats)"
    return 0
  fi
  echo "fuzz.sh: $what: FAILED (exit $status)" >&2
  grep -E 'ERROR|FUZZ_CHECK|runtime error|SUMMARY|Test unit written|deadly signal|timeout|out-of-memory' \
    "$dir/fuzz.log" | head -20 >&2 || true
  echo "  full log: $dir/fuzz.log" >&2
  for input in $found; do
    cat >&2 <<EOF
  crashing input: $input
    replay it:        $build/tests/fuzz/fuzz_$what $input
    keep it:          cp $input tests/fuzz/regressions/$what/<what-it-breaks>
                      (then every ctest run replays it: ctest -R fuzz_$what)
EOF
  done
  return 1
}

failed=0
pids=()
names=()
flush_one() {
  local status=0
  wait "${pids[0]}" || status=$?
  report "${names[0]}" "$status" || failed=1
  pids=("${pids[@]:1}")
  names=("${names[@]:1}")
}
for what in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/fuzz_$what" ] || { echo "fuzz.sh: no target fuzz_$what" >&2; exit 2; }
  [ ${#pids[@]} -ge "$jobs" ] && flush_one
  run_target "$what" &
  pids+=($!)
  names+=("$what")
done
while [ ${#pids[@]} -gt 0 ]; do flush_one; done

echo "fuzz.sh: $(($(date +%s) - start)) s in all"
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: failures above; docs/fuzzing.md says how to fix and keep a regression" >&2
  exit 1
fi
