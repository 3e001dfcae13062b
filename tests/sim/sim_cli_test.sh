#!/usr/bin/env bash
# End-to-end tests of `orrery sim run|compare` on the real binary.
#   sim_cli_test.sh ORRERY_BINARY SOURCE_DIR CASE
# CASE: determinism | golden | bad_input | outputs | compare
# Set UPDATE_GOLDEN=1 to rewrite the golden decision log after an intended behaviour change.
set -u
bin="$1"; src="$2"; case_name="$3"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

case "$case_name" in
determinism)
  # Same scenario and seed -> byte-identical tasks.csv and timeseries.csv; another seed differs.
  "$bin" sim run "$src/scenarios/quickstart.yaml" --seed 5 --out "$tmp/a" > /dev/null 2>&1
  "$bin" sim run "$src/scenarios/quickstart.yaml" --seed 5 --out "$tmp/b" > /dev/null 2>&1
  "$bin" sim run "$src/scenarios/quickstart.yaml" --seed 6 --out "$tmp/c" > /dev/null 2>&1
  check "same seed, same tasks.csv" "cmp -s '$tmp/a/tasks.csv' '$tmp/b/tasks.csv'"
  check "same seed, same timeseries.csv" "cmp -s '$tmp/a/timeseries.csv' '$tmp/b/timeseries.csv'"
  check "other seed, other tasks.csv" "! cmp -s '$tmp/a/tasks.csv' '$tmp/c/tasks.csv'"
  # --timing-seed: the same workload with the nodes' heartbeat phases drawn from the seed. The
  # same timing seed reproduces a run; another lines the timers up differently and some task
  # starts at another time; the submit times (the workload) stay the same.
  mixed="$src/scenarios/fidelity/mixed-6n.yaml"
  for r in t1 t1b t2; do
    ts=${r%b}; ts=${ts#t}
    "$bin" sim run "$mixed" --timing-seed "$ts" --no-progress --out "$tmp/$r" > /dev/null 2>&1
  done
  "$bin" sim run "$mixed" --no-progress --out "$tmp/t0" > /dev/null 2>&1
  check "same timing seed, same tasks.csv" "cmp -s '$tmp/t1/tasks.csv' '$tmp/t1b/tasks.csv'"
  check "other timing seed, other start times" "! cmp -s '$tmp/t1/tasks.csv' '$tmp/t2/tasks.csv'"
  check "timing seed against the mean phase: other start times" \
      "! cmp -s '$tmp/t0/tasks.csv' '$tmp/t1/tasks.csv'"
  # control_plane.worker_start_parallel: 1 -- three new workers (100 ms of start-up work each)
  # share one core: all three start 0.3 s after submission, where without the key each starts
  # after 0.1 s. Staggered: a start-up alone for 50 ms, then two sharing the core, then the
  # second alone: both tasks start 0.15 s after their submission.
  printf 'name: wsp\nseed: 1\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: 3}}\ncontrol_plane: {worker_start: 100ms%s}\nworkload:\n  tasks:\n    - {name: t, count: 3, arrival: {process: burst}, duration: 1s, resources: {CPU: 1}}\n' \
      ', worker_start_parallel: 1' > "$tmp/wsp1.yaml"
  printf 'name: wsp\nseed: 1\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: 3}}\ncontrol_plane: {worker_start: 100ms%s}\nworkload:\n  tasks:\n    - {name: t, count: 3, arrival: {process: burst}, duration: 1s, resources: {CPU: 1}}\n' \
      '' > "$tmp/wsp.yaml"
  printf 'name: wsp\nseed: 1\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: 3}}\ncontrol_plane: {worker_start: 100ms, worker_start_parallel: 1}\nworkload:\n  tasks:\n    - {name: t, count: 2, arrival: {process: uniform, interval: 50ms}, duration: 1s, resources: {CPU: 1}}\n' > "$tmp/wsps.yaml"
  "$bin" sim run "$tmp/wsps.yaml" --no-progress --out "$tmp/wsps" > /dev/null 2>&1
  sed 's/worker_start_parallel: 1/worker_start_parallel: 1, worker_start_shared: 0.5/' "$tmp/wsp1.yaml" > "$tmp/wsph.yaml"
  "$bin" sim run "$tmp/wsph.yaml" --no-progress --out "$tmp/wsph" > /dev/null 2>&1
  "$bin" sim run "$tmp/wsp1.yaml" --no-progress --out "$tmp/wsp1" > /dev/null 2>&1
  "$bin" sim run "$tmp/wsp.yaml" --no-progress --out "$tmp/wsp" > /dev/null 2>&1
  waits() { awk -F, 'NR>1 {printf "%.2f\n", $6-$5}' "$1/tasks.csv" | sort | tr '\n' ' '; }
  check "three start-ups share one core: all tasks start 0.3 s after submission" \
      "[ \"\$(waits '$tmp/wsp1')\" = '0.30 0.30 0.30 ' ]"
  check "half of each start-up shared (0.15 s for three), then its own 50 ms: all start after 0.2 s" \
      "[ \"\$(waits '$tmp/wsph')\" = '0.20 0.20 0.20 ' ]"
  check "staggered start-ups share the core while both run: both start after 0.15 s" \
      "[ \"\$(waits '$tmp/wsps')\" = '0.15 0.15 ' ]"
  check "unlimited start-ups: all three start after 0.1 s" "[ \"\$(waits '$tmp/wsp')\" = '0.10 0.10 0.10 ' ]"
  check "timing seeds keep the workload: the same submit times" \
      "cmp -s <(cut -d, -f1,2,5 '$tmp/t1/tasks.csv' | sort) <(cut -d, -f1,2,5 '$tmp/t2/tasks.csv' | sort)"
  ;;
golden)
  # The decision log of a small scenario must reproduce byte for byte.
  "$bin" sim run "$src/tests/sim/golden/tiny.yaml" --out "$tmp/g" \
      --decision-log "$tmp/g.log" > /dev/null 2>&1
  if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then cp "$tmp/g.log" "$src/tests/sim/golden/tiny.decisions.log"; fi
  if ! diff -u "$src/tests/sim/golden/tiny.decisions.log" "$tmp/g.log"; then
    echo "FAIL: golden decision log differs (UPDATE_GOLDEN=1 to accept an intended change)"; fail=1
  else echo "ok: golden decision log"; fi
  ;;
outputs)
  "$bin" sim run "$src/scenarios/quickstart.yaml" --out "$tmp/q" > "$tmp/stdout" 2>&1
  check "exit 0" "[ $? -eq 0 ]"
  check "summary.json has the schema" "python3 - '$tmp/q/summary.json' <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
need = ['scenario','backend','policy','seed','tasks','makespan_s','jct_s','queue_delay_s',
        'utilization','node_seconds','spillbacks','bytes_transferred','env_cache','autoscaler',
        'nodes','wall_s','orrery_version']
missing = [k for k in need if k not in s]
assert not missing, missing
assert s['backend'] == 'sim' and s['tasks']['total'] == s['tasks']['finished'] > 0, s['tasks']
for k in ('mean','p50','p95','p99'): assert k in s['jct_s'] and k in s['queue_delay_s']
for k in ('CPU','GPU','memory'): assert 0 <= s['utilization'][k] <= 1
assert s['nodes']['initial'] == 16
PY"
  check "tasks.csv header" "head -1 '$tmp/q/tasks.csv' | grep -qx 'task_id,name,job_id,kind,submit_s,start_s,end_s,node_id,state,attempt,spillbacks,wait_reason'"
  check "one row per task" "[ \$(( \$(wc -l < '$tmp/q/tasks.csv') - 1 )) -eq 2000 ]"
  check "timeseries metric names" "grep -q ',orrery_tasks,state=running,' '$tmp/q/timeseries.csv' && grep -q ',orrery_resources,\"name=CPU,state=used\",' '$tmp/q/timeseries.csv'"
  check "summary table on stdout" "grep -q 'queue delay' '$tmp/stdout'"
  check "timeseries plot" "grep -q '<svg' '$tmp/q/timeseries.svg' && grep -q 'tasks running' '$tmp/q/timeseries.svg'"
  ;;
bad_input)
  expect2() {  # description, expected message part, args...
    local what="$1" part="$2"; shift 2
    "$bin" "$@" > "$tmp/out" 2> "$tmp/err"; local rc=$?
    if [ $rc -ne 2 ] || ! grep -qF -- "$part" "$tmp/err"; then
      echo "FAIL: $what: exit $rc, stderr:"; cat "$tmp/err"; fail=1
    else echo "ok: $what"; fi
  }
  printf '' > "$tmp/empty.yaml"
  printf 'name: x\ncluster: [unclosed\n' > "$tmp/malformed.yaml"
  head -c 2000 /dev/urandom > "$tmp/binary.yaml"
  printf 'name: x\nseed: 1\ncluster:\n  node_types:\n    - {name: a, count: 1, resources: {CPU: 1}}\nworkload:\n  trace: [{file: nowhere.csv}]\n' > "$tmp/notrace.yaml"
  expect2 "missing file" "no-such.yaml" sim run "$tmp/no-such.yaml"
  expect2 "empty file" "empty.yaml" sim run "$tmp/empty.yaml"
  expect2 "malformed YAML" "malformed.yaml:" sim run "$tmp/malformed.yaml"
  expect2 "binary file" "binary.yaml" sim run "$tmp/binary.yaml"
  expect2 "missing trace file" "nowhere.csv" sim run "$tmp/notrace.yaml"
  expect2 "unknown --set path" "scheduler.polcy" sim run "$src/scenarios/quickstart.yaml" --set scheduler.polcy=spread
  expect2 "unknown policy" "nope" sim run "$src/scenarios/quickstart.yaml" --policy nope
  expect2 "negative seed" "seed" sim run "$src/scenarios/quickstart.yaml" --seed -3
  expect2 "negative timing seed" "--timing-seed" sim run "$src/scenarios/quickstart.yaml" --timing-seed -1
  expect2 "text timing seed" "timing-seed" sim run "$src/scenarios/quickstart.yaml" --timing-seed soon
  printf 'name: x\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: 1}}\ncontrol_plane: {worker_start_parallel: 0}\n' > "$tmp/wsp0.yaml"
  printf 'name: x\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: 1}}\ncontrol_plane: {worker_start_shared: 1.5}\n' > "$tmp/wss.yaml"
  expect2 "a shared fraction above 1" "wss.yaml:5: control_plane.worker_start_shared: expected" sim run "$tmp/wss.yaml"
  expect2 "no worker start-up at all" "wsp0.yaml:5: control_plane.worker_start_parallel: expected a whole number in [1" sim run "$tmp/wsp0.yaml"
  expect2 "missing scenario argument" "missing SCENARIO" sim run
  expect2 "unknown subcommand" "unknown subcommand" sim frobnicate
  expect2 "compare without policies" "--policies" sim compare "$src/scenarios/quickstart.yaml"
  # Issue 11.14: a tiny rate gives a short number, not 300 digits.
  "$bin" sim run "$src/scenarios/quickstart.yaml" --set workload.tasks.0.arrival.rate=1e-300/s \
      > "$tmp/out" 2> "$tmp/err"
  if grep -qE '[0-9]{40}' "$tmp/err" || ! grep -qF 'would be submitted at' "$tmp/err"; then
    echo "FAIL: tiny rate message"; cat "$tmp/err"; fail=1
  else echo "ok: tiny rate message"; fi
  ;;
compare)
  "$bin" sim compare "$src/tests/sim/golden/tiny.yaml" --policies hybrid,spread --seeds 2 \
      --out "$tmp/cmp" > "$tmp/stdout" 2>&1
  check "exit 0" "[ $? -eq 0 ]"
  check "four runs in compare.csv" "[ \$(( \$(wc -l < '$tmp/cmp/compare.csv') - 1 )) -eq 4 ]"
  check "per-run result dirs" "[ -f '$tmp/cmp/spread-seed2/summary.json' ]"
  ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
exit $fail
