#!/usr/bin/env bash
# The scale benchmarks' scripts end to end at a tiny size (issue 18 item 5): they start a real
# cluster, run bench/scale_driver, sample it and write their CSV, JSON and README section. The
# figures are not checked (timings belong to the bench runs); what is: every task and actor call
# finished, the CSV has samples with the daemons' RSS, the report has its fields, bad input is
# refused with a usage line.
#   scale_bench_test.sh BUILD_DIR SOURCE_DIR CASE      CASE: million | actors | soak | bad_input
set -uo pipefail
build=$1 src=$2 case=$3
out=$(mktemp -d /tmp/orrery_scale_test_XXXXXX)
trap 'rm -rf "$out"' EXIT
export SCALE_NO_PLOT=1 OUT=$out
fail() { echo "FAIL: $*" >&2; exit 1; }
# json FILE EXPR: prints EXPR evaluated on the JSON object in FILE (python3, standard library).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

case $case in
  million)
    # Enough tasks, sampled often enough, that a sample sees them queued (3,000 tasks finished
    # between two 1-s samples on an idle machine: no queue seen, no bytes per task).
    N=20000 ROWS=200 INTERVAL=0.2 "$src/bench/driver_million.sh" "$build" > "$out/log" 2>&1 || { cat "$out/log"; fail "driver_million.sh exited $?"; }
    [[ $(json "$out/million.json" 'd["driver"]["tasks"], d["driver"]["failed"]') == "20000 0" ]] ||
      fail "not every task finished: $(cat "$out/million.json")"
    [[ $(json "$out/million.json" 'd["peak_queued"] > 0 and d["bytes_per_queued_task"]["driver"] is not None') == True ]] ||
      fail "no bytes per queued task"
    [[ $(json "$out/million.json" 'd["cli"]["status_ms"]["n"] > 0 and d["cli"]["status_ms"]["failed"] == 0 and d["cli"]["list_ms"]["failed"] == 0') == True ]] ||
      fail "orrery status/list were not timed, or failed"
    awk -F, 'NR > 1 && $7 > 0 && $8 > 0 && $9 > 0 { ok = 1 } END { exit !ok }' "$out/million.csv" ||
      fail "no sample with head, node and driver RSS"
    [[ $(json "$out/million.json" 'd["table"]["leases"], d["table"]["rows_max"] > 0') == "200 True" ]] ||
      fail "the task table phase: $(cat "$out/million.json")"
    grep -q '<!-- million -->' "$out/README.md" || fail "no README section"
    ;;
  actors)
    N=12 HOLD_S=4 "$src/bench/actors_thousand.sh" "$build" > "$out/log" 2>&1 || { cat "$out/log"; fail "actors_thousand.sh exited $?"; }
    [[ $(json "$out/actors.json" 'd["driver"]["actors"], d["driver"]["failed"], d["driver"]["alive_after_hold"]') == "12 0 12" ]] ||
      fail "not every actor answered twice: $(cat "$out/actors.json")"
    [[ $(json "$out/actors.json" 'd["workers"] >= 12 and d["worker_pss_kb_mean"] > 0') == True ]] ||
      fail "the actors' workers were not counted: $(cat "$out/actors.json")"
    ;;
  soak)
    RATE=10 JOB_EVERY_S=5 "$src/bench/soak.sh" 20 "$build" > "$out/log" 2>&1
    rc=$?
    [[ -s $out/verdict.txt ]] || { cat "$out/log"; fail "no verdict (exit $rc)"; }
    grep -q '^VERDICT: ' "$out/verdict.txt" || fail "verdict line: $(cat "$out/verdict.txt")"
    [[ $(json "$out/verdict.json" 'd["failed"], d["samples"] >= 2') == "0 True" ]] ||
      fail "soak tasks failed or too few samples: $(cat "$out/verdict.json")"
    [[ $(json "$out/verdict.json" 'int(d["jobs_succeeded"]) >= 1') == True ]] || fail "no job succeeded"
    ;;
  bad_input)
    "$build/bench/scale_driver" million many "$out/p" > /dev/null 2> "$out/err"
    [[ $? -eq 2 ]] && grep -q "bad number" "$out/err" || fail "a bad N: $(cat "$out/err")"
    "$build/bench/scale_driver" fly 1 "$out/p" > /dev/null 2> "$out/err"
    [[ $? -eq 2 ]] && grep -q "usage" "$out/err" || fail "an unknown mode: $(cat "$out/err")"
    "$src/bench/soak.sh" 5s "$build" > /dev/null 2> "$out/err"
    [[ $? -eq 2 ]] && grep -q "DURATION_S" "$out/err" || fail "soak.sh 5s: $(cat "$out/err")"
    ;;
  *) fail "unknown case $case" ;;
esac
echo "PASS $case"
