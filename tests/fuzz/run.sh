#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang + ASan + UBSan) into build-fuzz/ and runs each
# from its committed seed corpus (tests/fuzz/corpus/<target>, copied: the committed one is never
# changed) for SECONDS, or for RUNS executions when RUNS > 0 with SECONDS as each target's cap
# (whichever comes first; it was a fixed 600 s). Writes a CSV line per target:
#   target,seconds,executions,exec_per_s,corpus_in,corpus_out,crashes
# and keeps crash inputs (and their sanitizer report) in ARTIFACTS/. Exit 1 if any target found a
# crash, a leak, a sanitizer report or a timeout; each is a bug to turn into a regression test.
#   tests/fuzz/run.sh [SECONDS (20)] [OUT_CSV (build-fuzz/fuzz.csv)] [ARTIFACTS (build-fuzz/crashes)] [RUNS (0)]
# FUZZ_SEED=N fixes libFuzzer's seed (CI: 1) so a run can be repeated; 0 (default) picks one.
# FUZZ_TARGETS="scenario_yaml unpack ..." builds and runs only those targets (default: all).
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
out="${2:-build-fuzz/fuzz.csv}"
artifacts="${3:-build-fuzz/crashes}"
runs="${4:-0}"
cxx=""
for c in clang++-16 clang++-15 clang++; do
  if command -v "$c" > /dev/null && "$c" --version | grep -qE 'version (1[5-9]|[2-9][0-9])'; then
    cxx="$c"; break
  fi
done
if [ -z "$cxx" ]; then
  echo "fuzz: no clang++ >= 15 with libFuzzer (apt-get install clang-16 libclang-rt-16-dev)" >&2
  exit 1
fi
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DORRERY_FUZZ=ON -DORRERY_WERROR=OFF -DORRERY_BUILD_TESTS=OFF -DORRERY_BUILD_BENCH=OFF \
  "${launcher[@]}" > /dev/null || exit 1
only=(${FUZZ_TARGETS:-})
build_targets=(fuzz_targets)
[ ${#only[@]} -gt 0 ] && build_targets=("${only[@]/%/_fuzz}")
cmake --build build-fuzz -j 2 --target "${build_targets[@]}" > build-fuzz/build.log 2>&1 || {
  tail -30 build-fuzz/build.log; exit 1; }
mkdir -p "$artifacts" "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "target,seconds,executions,exec_per_s,corpus_in,corpus_out,crashes" > "$out"
bad=0
for exe in build-fuzz/fuzz/*_fuzz; do
  name=$(basename "$exe" _fuzz)
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $name "* ]]; then continue; fi
  seed="tests/fuzz/corpus/$name"
  work="$tmp/$name"
  mkdir -p "$work"
  [ -d "$seed" ] && cp -r "$seed/." "$work/"
  in=$(ls "$work" | wc -l)
  limit=(-max_total_time="$seconds")
  [ "$runs" -gt 0 ] && limit=(-runs="$runs" -max_total_time="$seconds")
  t0=$(date +%s.%N)
  TMPDIR="$tmp" ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$exe" "$work" "${limit[@]}" -seed="${FUZZ_SEED:-0}" -timeout=20 -rss_limit_mb=3072 \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" > "$tmp/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  execs=$(awk '/stat::number_of_executed_units/{print $NF}' "$tmp/$name.log" | tail -1)
  n_out=$(ls "$work" | wc -l)
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1; bad=1
    cp "$tmp/$name.log" "$artifacts/$name.log"
    echo "fuzz: $name FAILED (exit $rc); report in $artifacts/$name.log:" >&2
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$tmp/$name.log" | head -8 >&2
  fi
  awk -v n="$name" -v s="$t0" -v e="$t1" -v x="${execs:-0}" -v i="$in" -v o="$n_out" -v c="$crashes" \
    'BEGIN { d = e - s; printf "%s,%.0f,%d,%.0f,%d,%d,%d\n", n, d, x, (d > 0 ? x / d : 0), i, o, c }' >> "$out"
done
cat "$out"
exit $bad
