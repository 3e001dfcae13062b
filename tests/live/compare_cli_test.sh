#!/usr/bin/env bash
# End-to-end tests of `orrery compare` on the real binary.
#   compare_cli_test.sh ORRERY_BINARY SOURCE_DIR CASE
# CASE: parity (starts real daemons on loopback, ~20 s) | address (daemons via `orrery start`,
#       ~25 s) | results | bad_input | timeout | fidelity (three traced live runs of the fidelity
#       smoke scenario, ~50 s: the simulator must meet its bars against them, a simulator without
#       Ray's per-class fair granting must not, and every run's leases.csv must account for
#       every task)
set -u
bin="$1"; src="$2"; case_name="$3"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
parity="$src/scenarios/parity-tiny.yaml"
metrics="tasks.finished tasks.failed tasks.canceled makespan_s jct_s.p50 jct_s.p95
  queue_delay_s.p50 queue_delay_s.p95 utilization.CPU utilization.GPU spillbacks env_cache.hits
  env_cache.misses env_cache.evictions autoscaler.launched autoscaler.terminated
  autoscaler.peak_nodes node_seconds"

case "$case_name" in
fidelity)
  smoke="$src/scenarios/fidelity/smoke-3n.yaml"
  # Three live runs, judged as the bars are defined (against their mean; a class whose runs
  # differ by more than 10 % gets 1.5x their spread). The scenario has no 2-CPU class: one was
  # bimodal live (0.16 or 0.32-0.37 s mean queue delay, run to run) and failed CI when all three
  # runs landed in the mode the simulator does not predict; its classes now vary by < 0.03 s.
  # --trace: every run also writes leases.csv, and compare shows where the queue delay goes.
  # --sim-runs 3: the simulator's side is the mean of three runs with timing seeds 1..3.
  timeout 280 "$bin" compare "$smoke" --local --live-runs 3 --sim-runs 3 --trace --out "$tmp/f" \
      --temp-dir "$tmp/t" > "$tmp/stdout" 2> "$tmp/stderr"
  rc=$?
  check "exit 0 (got $rc)" "[ $rc -eq 0 ]"
  sed -n '/per class/,/^fidelity/p' "$tmp/stdout"
  [ $rc -eq 0 ] || cat "$tmp/stderr"
  check "the simulator meets its bars against live" "grep -q '^fidelity: PASS' '$tmp/stdout'"
  check "three simulator runs, judged on their mean" \
      "grep -q 'sim per class = mean of 3 simulator runs' '$tmp/stdout' && [ -f '$tmp/f/sim-3/tasks.csv' ]"
  check "each simulator run drew its own timer phases" \
      "! cmp -s '$tmp/f/sim/tasks.csv' '$tmp/f/sim-2/tasks.csv'"
  check "stderr names each simulator run's timing seed" "grep -q 'run 3 of 3 (timing seed 3)' '$tmp/stderr'"
  check "the per-lease table is printed" "grep -q 'where the queue delay goes' '$tmp/stdout'"
  check "legs.csv has a row per class and run (3 classes x 4 runs)" \
      "[ \$(tail -n +2 '$tmp/f/legs.csv' | wc -l) -eq 12 ]"
  for r in sim live live-2 live-3; do
    # Every finished task was pushed onto a lease exactly once, and every pushed lease was
    # granted after it was requested.
    check "$r: one push per finished task" "[ \$(awk -F, 'NR>1 && \$4==\"push\"' '$tmp/f/$r/leases.csv' | \
        wc -l) -eq \$(awk -F, 'NR>1 && \$9==\"finished\"' '$tmp/f/$r/tasks.csv' | wc -l) ]"
    check "$r: every lease that ran a task was requested, then granted, then pushed" "awk -F, '
        NR>1 && \$4==\"request\" && !(\$2 in req) { req[\$2]=NR }
        NR>1 && \$4==\"granted\" && !(\$2 in gr) { gr[\$2]=NR }
        NR>1 && \$4==\"push\" { if (!(\$2 in req) || !(\$2 in gr) || gr[\$2] < req[\$2]) bad=1 }
        END { exit bad }' '$tmp/f/$r/leases.csv'"
  done
  # A damaged trace is input: named by file and line.
  cp -r "$tmp/f/sim" "$tmp/badtrace"
  printf '1.5,x,busy,push,head,3,0,,\n' >> "$tmp/badtrace/leases.csv"
  "$bin" compare --sim-results "$tmp/badtrace" --live-results "$tmp/f/live" --out "$tmp/bt" \
      > /dev/null 2> "$tmp/bt.err"; rc=$?
  check "a bad leases.csv: exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "a bad leases.csv: the message names the file, line and field" \
      "grep -q 'badtrace/leases.csv:[0-9]*: lease: expected a non-negative integer' '$tmp/bt.err'"
  # The same live run judged against a simulator that drifted (queues first come, first served
  # across classes): the check must be able to fail.
  "$bin" sim run "$smoke" --set scheduler.fair_granting=false --no-progress --out "$tmp/drift" \
      > /dev/null 2>&1
  "$bin" compare --sim-results "$tmp/drift" --live-results "$tmp/f/live" \
      --live-results "$tmp/f/live-2" --live-results "$tmp/f/live-3" --out "$tmp/fd" \
      > "$tmp/drift.stdout" 2>&1
  grep '^fidelity' "$tmp/drift.stdout"
  check "a drifted simulator fails its bars" "grep -q '^fidelity: FAIL' '$tmp/drift.stdout'"
  ;;
parity)
  # The timing-free parity scenario: both runs complete, every task lands on the same node.
  timeout 120 "$bin" compare "$parity" --local --out "$tmp/d" --temp-dir "$tmp/t" \
      > "$tmp/stdout" 2> "$tmp/stderr"
  rc=$?
  check "exit 0 (got $rc)" "[ $rc -eq 0 ]"
  [ $rc -eq 0 ] || { cat "$tmp/stdout" "$tmp/stderr"; }
  for b in sim live; do
    for f in summary.json tasks.csv timeseries.csv; do
      check "$b/$f written" "[ -s '$tmp/d/$b/$f' ]"
    done
    check "$b/summary.json says backend $b" "grep -q '\"backend\": \"$b\"' '$tmp/d/$b/summary.json'"
  done
  check "compare.csv header" "[ \"\$(head -1 '$tmp/d/compare.csv')\" = metric,sim,live,diff,diff_pct ]"
  for m in $metrics; do
    check "compare.csv row $m" "grep -q '^$m,[0-9.e+-]*,[0-9.e+-]*,' '$tmp/d/compare.csv'"
    check "table row $m" "grep -q '^  $m ' '$tmp/stdout'"
  done
  check "20 tasks finished in both" "grep -qx 'tasks.finished,20,20,0,0.0' '$tmp/d/compare.csv'"
  check "the same spillbacks in both" "grep -q '^spillbacks,7,7,0,' '$tmp/d/compare.csv'"
  check "placement agreement 100%" \
      "grep -q 'placement agreement: 20/20 task attempts on the same node (100.0%)' '$tmp/stdout'"
  check "placement.csv: 20 attempts, all the same" \
      "[ \$(tail -n +2 '$tmp/d/placement.csv' | grep -c ',1\$') -eq 20 ] && [ \$(wc -l < '$tmp/d/placement.csv') -eq 21 ]"
  check "compare.svg is an SVG with both runs" \
      "grep -q '<svg' '$tmp/d/compare.svg' && grep -q 'sim: JCT' '$tmp/d/compare.svg' && grep -q 'live: JCT' '$tmp/d/compare.svg'"
  check "progress on stderr" "grep -q simulating '$tmp/stderr' && grep -q 'running live' '$tmp/stderr'"
  check "nothing of the progress on stdout" "! grep -q simulating '$tmp/stdout'"
  ;;
address)
  # --address: the live half on a running cluster (parity-tiny's four nodes, started by hand).
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  trap '"$bin" stop --temp-dir "$tmp/t" > /dev/null 2>&1; rm -rf "$tmp"' EXIT
  common=(--num-gpus 0 --temp-dir "$tmp/t" --metrics-port -1)
  # Policy is a cluster setting: the head runs parity-tiny's (hybrid with top_k_fraction 0).
  "$bin" start --head --port "$port" --node-name head --num-cpus 8 --dashboard-port 0 \
      --head-metrics-port -1 --policy hybrid --set scheduler.top_k_fraction=0 \
      "${common[@]}" > "$tmp/start.log" 2>&1 &&
  "$bin" start --address "127.0.0.1:$port" --node-name w1 --num-cpus 8 "${common[@]}" >> "$tmp/start.log" 2>&1 &&
  "$bin" start --address "127.0.0.1:$port" --node-name w2 --num-cpus 8 "${common[@]}" >> "$tmp/start.log" 2>&1 &&
  "$bin" start --address "127.0.0.1:$port" --node-name w3 --num-cpus 4 --resources '{"special": 1}' \
      "${common[@]}" >> "$tmp/start.log" 2>&1
  check "cluster started" "[ $? -eq 0 ]" || cat "$tmp/start.log"
  timeout 120 "$bin" compare "$parity" --address "127.0.0.1:$port" --temp-dir "$tmp/t" \
      --out "$tmp/d" > "$tmp/stdout" 2> "$tmp/stderr"
  rc=$?
  check "exit 0 (got $rc)" "[ $rc -eq 0 ]"
  [ $rc -eq 0 ] || cat "$tmp/stdout" "$tmp/stderr"
  check "live/summary.json written" "grep -q '\"backend\": \"live\"' '$tmp/d/live/summary.json'"
  check "20 tasks finished in both" "grep -qx 'tasks.finished,20,20,0,0.0' '$tmp/d/compare.csv'"
  check "placement agreement 100%" \
      "grep -q 'placement agreement: 20/20 task attempts on the same node (100.0%)' '$tmp/stdout'"
  check "the cluster is still up afterwards" "'$bin' status --temp-dir '$tmp/t' > /dev/null 2>&1"
  check "status shows the cluster's policy" \
      "'$bin' status --temp-dir '$tmp/t' | grep -q 'Scheduling policy: hybrid (spread_threshold 0.5, top_k_absolute 1, top_k_fraction 0,'"
  # Asking for another policy than the cluster's is refused, naming both (nothing runs).
  timeout 60 "$bin" compare "$parity" --address "127.0.0.1:$port" --temp-dir "$tmp/t" \
      --policy spread --out "$tmp/s" > "$tmp/stdout2" 2> "$tmp/stderr2"
  rc=$?
  check "another policy: exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "another policy: names both" \
      "grep -q 'asks for policy spread but the cluster at 127.0.0.1:$port runs hybrid' '$tmp/stderr2'"
  check "another policy: no live run" "[ ! -e '$tmp/s/live/summary.json' ]"
  ;;
results)
  # --sim-results/--live-results compare existing dirs; a moved task and a changed metric show.
  mk() {  # mk DIR BACKEND NODE_OF_TASK_1 MAKESPAN
    mkdir -p "$1"
    cat > "$1/summary.json" <<J
{"scenario": "mini", "backend": "$2", "tasks": {"finished": 2, "failed": 0, "canceled": 0},
 "makespan_s": $4, "jct_s": {"p50": 1.0, "p95": 2.0}, "utilization": {"CPU": 0.5},
 "spillbacks": 1, "node_seconds": 4}
J
    printf 'task_id,name,job_id,kind,submit_s,start_s,end_s,node_id,state,attempt,spillbacks,wait_reason\n' > "$1/tasks.csv"
    printf '0,a,default,task,0,0,1,n0,finished,0,0,\n' >> "$1/tasks.csv"
    printf '1,"b,c",default,task,0,0.5,2,%s,finished,0,1,\n' "$3" >> "$1/tasks.csv"
  }
  mk "$tmp/s" sim n0 2.0
  mk "$tmp/l" live n1 3.0
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l" --out "$tmp/o" > "$tmp/stdout" 2>&1
  rc=$?
  check "exit 0 although values differ (got $rc)" "[ $rc -eq 0 ]"
  check "makespan diff and percent" "grep -qx 'makespan_s,2,3,1,50.0' '$tmp/o/compare.csv'"
  check "absent metric reads 0, no percent" "grep -qx 'utilization.GPU,0,0,0,' '$tmp/o/compare.csv'"
  check "agreement 1/2" "grep -q 'placement agreement: 1/2 task attempts on the same node (50.0%)' '$tmp/stdout'"
  check "the differing task is listed" "grep -Eq '^  1 +0 +b,c +n0 +n1\$' '$tmp/stdout'"
  check "placement.csv quotes names" "grep -qx '1,0,\"b,c\",n0,n1,0' '$tmp/o/placement.csv'"
  check "no warning for the same scenario" "! grep -q 'warning:' '$tmp/stdout'"
  # Issue 11.14: results of two different scenarios are compared with a warning naming both.
  mk "$tmp/other" live n1 3.0
  sed -i 's/"scenario": "mini"/"scenario": "other"/' "$tmp/other/summary.json"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/other" --out "$tmp/o2" > "$tmp/stdout2" 2>&1
  check "a different scenario is warned about" "grep -q 'warning: the runs differ in scenario: \"mini\"' '$tmp/stdout2'"
  # More than 10 differences: ten listed, the rest counted.
  for i in $(seq 2 13); do printf '%d,x,default,task,0,0,1,n0,finished,0,0,\n' $i >> "$tmp/s/tasks.csv"
                          printf '%d,x,default,task,0,0,1,n1,finished,0,0,\n' $i >> "$tmp/l/tasks.csv"; done
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l" --out "$tmp/o" > "$tmp/stdout" 2>&1
  check "at most 10 listed" "grep -q '\.\.\. 3 more in placement.csv' '$tmp/stdout'"
  # Per class against two live runs: classes.csv, the table and one verdict line.
  mk "$tmp/l2" live n1 3.4
  sed -i 's/^1,"b,c",default,task,0,0.5,2,/1,"b,c",default,task,0,1.5,3,/' "$tmp/l2/tasks.csv"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l" --live-results "$tmp/l2" \
      --out "$tmp/o3" > "$tmp/stdout3" 2>&1
  rc=$?
  check "two live runs: exit 0 (got $rc)" "[ $rc -eq 0 ]"
  check "classes.csv: b,c against the mean of 0.5 and 1.5 s, spread 1, widened bar 1.5" \
      "grep -qx '\"b,c\",1,0.5,0.5,1,1,1,2,2,2.5,2.5,1.5,1' '$tmp/o3/classes.csv'"
  check "table says mean of 2 runs" "grep -q 'live = mean of 2 runs' '$tmp/stdout3'"
  check "one verdict line: makespan 2 vs 3.2 misses" \
      "grep -q '^fidelity: FAIL .*worst: makespan_s 2 vs 3.2' '$tmp/stdout3'"
  check "classes.svg is written" "grep -q '<svg' '$tmp/o3/classes.svg'"
  # Two sim runs (e.g. two timing seeds): the verdict judges their mean, the table says so.
  mk "$tmp/s2" sim n0 2.4
  sed -i 's/^1,"b,c",default,task,0,0.5,2,/1,"b,c",default,task,0,1.5,3,/' "$tmp/s2/tasks.csv"
  "$bin" compare --sim-results "$tmp/s" --sim-results "$tmp/s2" --live-results "$tmp/l" \
      --live-results "$tmp/l2" --out "$tmp/o7" > "$tmp/stdout7" 2>&1
  rc=$?
  check "two sim runs: exit 0 (got $rc)" "[ $rc -eq 0 ]"
  check "two sim runs: b,c judged on the sim mean 1 s against the live mean 1 s" \
      "grep -qx '\"b,c\",1,1,1,1,1,1,2.5,2.5,2.5,2.5,1.5,1' '$tmp/o7/classes.csv'"
  check "two sim runs: the table says the sim side is a mean" \
      "grep -q 'sim per class = mean of 2 simulator runs' '$tmp/stdout7'"
  check "two sim runs: makespan judged on the mean 2.2 against 3.2" \
      "grep -q '^fidelity: FAIL .*worst: makespan_s 2.2 vs 3.2' '$tmp/stdout7'"
  "$bin" compare --sim-results "$tmp/s" --sim-results "$tmp/nowhere" --live-results "$tmp/l" \
      --out "$tmp/o8" > "$tmp/stdout8" 2>&1
  rc=$?
  check "a missing second sim dir: exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "a missing second sim dir is named" "grep -q 'nowhere/summary.json: cannot read' '$tmp/stdout8'"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/s" --out "$tmp/o4" > "$tmp/stdout4" 2>&1
  check "a run against itself passes" "grep -q '^fidelity: PASS' '$tmp/stdout4'"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l" --live-results "$tmp/nowhere" \
      --out "$tmp/o5" > "$tmp/stdout5" 2>&1
  rc=$?
  check "a missing second live dir: exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "a missing second live dir is named" "grep -q 'nowhere/summary.json: cannot read' '$tmp/stdout5'"
  # An attempt that never started (empty start_s/end_s, as live run writes a task that failed
  # before it ran) is read, not refused; it has no queue delay.
  printf '99,never,default,task,0,,,n0,failed,0,0,\n' >> "$tmp/l2/tasks.csv"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l2" --out "$tmp/o6" > "$tmp/stdout6" 2>&1
  rc=$?
  check "never-started attempt: exit 0 (got $rc)" "[ $rc -eq 0 ]"
  check "never-started attempt: its class is listed, missing from sim" "grep -qx 'never,1,,,0,0,0,,,0,0,0.1,0' '$tmp/o6/classes.csv'"
  # A malformed result file is bad input: exit 2 naming the file, line and field.
  printf '14,x,default,task,0,0,1,n0,finished,first,0,\n' >> "$tmp/l/tasks.csv"
  "$bin" compare --sim-results "$tmp/s" --live-results "$tmp/l" --out "$tmp/o" > "$tmp/stdout" 2>&1
  rc=$?
  check "bad attempt: exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "bad attempt: names file, line and field" "grep -q 'l/tasks.csv:16: attempt: expected' '$tmp/stdout'"
  ;;
bad_input)
  # Bad usage or input: exit 2 and a message naming the problem; no run starts.
  printf 'name: bad\ncluster:\n  nodes:\n    - {id: n0, resources: {CPU: two}}\n' > "$tmp/bad.yaml"
  mkdir -p "$tmp/empty"
  while IFS='|' read -r args msg; do
    eval "set -- $args"
    "$bin" compare "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?
    check "compare $args: exit 2 (got $rc)" "[ $rc -eq 2 ]"
    check "compare $args: message names '$msg'" "grep -qF -- '$msg' '$tmp/err'"
    check "compare $args: no run started" "! grep -q simulating '$tmp/err'"
  done <<CASES
'$tmp/missing.yaml' --local --out '$tmp/o'|missing.yaml
'$parity' --out '$tmp/o'|exactly one of --local and --address
'$parity' --local --address 127.0.0.1:1 --out '$tmp/o'|exactly one of --local and --address
'$tmp/bad.yaml' --local --out '$tmp/o'|bad.yaml
'$parity' --local --set cluster.bogus=1 --out '$tmp/o'|bogus
'$parity' --local --policy nope --out '$tmp/o'|unknown policy
'$parity' --local --seed -3 --out '$tmp/o'|--seed
'$parity' --local --timeout 0 --out '$tmp/o'|--timeout
'$parity' --local --live-runs 0 --out '$tmp/o'|--live-runs
'$parity' --local --sim-runs 0 --out '$tmp/o'|--sim-runs
'$parity' --local --sim-runs 101 --out '$tmp/o'|--sim-runs
--sim-results '$tmp/empty' --live-results '$tmp/empty' --sim-runs 2|go together
--sim-results '$tmp/empty' --live-results '$tmp/empty' --live-runs 2|go together
'$parity' --local --frobnicate|frobnicate
--local|missing SCENARIO.yaml
--sim-results '$tmp/empty' --live-results '$tmp/empty'|$tmp/empty/summary.json
--sim-results '$tmp/empty'|go together
'$parity' --local --bars ray --out '$tmp/o'|--bars goes with --sim-results
--sim-results '$tmp/empty' --live-results '$tmp/empty' --bars rey|expected live or ray
CASES
  ;;
timeout)
  # A run that outlives --timeout is stopped: exit 1, the reason and the log tail on stderr.
  timeout 60 "$bin" compare "$parity" --local --timeout 2 --out "$tmp/d" --temp-dir "$tmp/t" \
      > "$tmp/out" 2> "$tmp/err"
  rc=$?
  check "exit 1 (got $rc)" "[ $rc -eq 1 ]"
  check "says the live run timed out" "grep -q 'the live run failed: timed out after 2 s' '$tmp/err'"
  check "no comparison written" "[ ! -e '$tmp/d/compare.csv' ]"
  ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
exit $fail
