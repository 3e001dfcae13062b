#!/usr/bin/env bash
# Head recovery time (head fault tolerance, live/head/head_store.h): a local cluster (head + NODES
# more nodes, each a node daemon) is given a few actors' worth of state, the head process is
# SIGKILLed and resumed a second later with `orrery start --head --resume` (same store, session,
# port). A job printing a line every 50 ms runs through it. Per run:
#   nodes_ms        head process spawned -> the head's log says every node it restored from
#                   its store heartbeated again (the log is polled every 10 ms)
#   head_log_ms     the head's own number: "every restored node reported again N ms after the
#                   head started" (from its Impl construction, i.e. process start + init)
#   task_ms         head process spawned -> the first `orrery task run -- true` that succeeds
#                   (tries back to back; includes one CLI run, see task_baseline_ms)
#   task_baseline_ms  one `orrery task run -- true` on the healthy cluster before the kill
#   job_ms          head process spawned -> the running job's log grew again through the new
#                   head (its driver kept running on its node; -1 if the job was lost)
#   job_same_pid    1 if the job's driver pid after the restart is the one before
# RUNS runs (default 5), medians in the table.
#
#   bench/head_recovery.sh [BUILD_DIR]      (default: build; needs the orrery target)
#   RUNS=5 NODES=2                          (environment overrides)
#
# Writes results/head_ft/recovery.json (every run) and results/head_ft/recovery.md (medians).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
RUNS=${RUNS:-5}
NODES=${NODES:-2}
orrery=$build/orrery
[[ -x $orrery ]] || { echo "missing $orrery: build the orrery target" >&2; exit 2; }
work=$(mktemp -d /tmp/orrery_head_recovery_XXXXXX)
trap '"$orrery" stop --temp-dir "$work/root" >/dev/null 2>&1; rm -rf "$work"' EXIT
unset ORRERY_ADDRESS ORRERY_TOKEN
out_dir=$root/results/head_ft
mkdir -p "$out_dir"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Every node of the list alive and heard within 1 s: prints the count of such nodes.
# A field of a job's JSON status ("" if unknown).
job_field() {
  "$orrery" job status "$1" --format json --temp-dir "$work/root" 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
try: print(json.load(sys.stdin).get(sys.argv[1]) or "")
except Exception: print("")' "$2"
}
alive_nodes() {
  "$orrery" list nodes --format json --temp-dir "$work/root" 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
try: n=json.load(sys.stdin)
except Exception: print(0); sys.exit()
print(sum(1 for x in n if x["state"]=="alive" and x["ms_since_heartbeat"]<1000))'
}

echo "== machine"
nproc; lscpu | grep 'Model name'
echo "== command: bench/head_recovery.sh ${1:-build} (RUNS=$RUNS NODES=$NODES)"

runs=()
for ((r = 1; r <= RUNS; ++r)); do
  rm -rf "$work/root"
  port=$(free_port)
  "$orrery" start --head --port "$port" --num-cpus 2 --dashboard-port 0 --node-name head \
    --temp-dir "$work/root" >/dev/null || { echo "start failed" >&2; exit 1; }
  for ((n = 1; n <= NODES; ++n)); do
    ok=0
    for _ in 1 2 3; do  # a loaded machine: a join may time out once
      if "$orrery" start --address "127.0.0.1:$port" --num-cpus 2 --node-name "n$n" \
        --temp-dir "$work/root" >"$work/node.out" 2>&1; then ok=1; break; fi
      sleep 0.5
    done
    ((ok)) || { cat "$work/node.out" >&2; echo "node start failed" >&2; exit 1; }
  done
  want=$((NODES + 1))
  for _ in $(seq 200); do [[ $(alive_nodes) == "$want" ]] && break; sleep 0.05; done
  session=$(readlink -f "$work/root/session_latest")
  t0=$(now_ms)
  "$orrery" task run --temp-dir "$work/root" -- true >/dev/null 2>&1 || { echo "task failed" >&2; exit 1; }
  baseline=$(( $(now_ms) - t0 ))
  job=bench_job_$r
  "$orrery" job submit --no-wait --submission-id "$job" --temp-dir "$work/root" -- \
    'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo "tick $i"; sleep 0.05; done' >/dev/null ||
    { echo "job submit failed" >&2; exit 1; }
  job_pid=0
  for _ in $(seq 200); do
    job_pid=$(job_field "$job" driver_pid)
    [[ $job_pid =~ ^[1-9][0-9]*$ ]] && break
    sleep 0.05
  done
  pid=$(cat "$session/pids/head.pid")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  sleep 1  # the head is gone for a second: nodes notice and retry
  # Resume, as a user would: the latest session's head with its recorded command line.
  t_start=$(now_ms)
  "$orrery" start --head --resume --temp-dir "$work/root" >/dev/null 2>&1 ||
    { echo "resume failed" >&2; tail -20 "$session/logs/head.log" >&2; exit 1; }
  # Every restored node heartbeated again: the head logs it once (polled every 10 ms).
  nodes_ms=-1
  for _ in $(seq 3000); do
    if grep -q 'every restored node reported again' "$session/logs/head.log"; then
      nodes_ms=$(( $(now_ms) - t_start )); break
    fi
    sleep 0.01
  done
  task_ms=-1
  for _ in $(seq 300); do
    if "$orrery" task run --temp-dir "$work/root" -- true >/dev/null 2>&1; then
      task_ms=$(( $(now_ms) - t_start )); break
    fi
  done
  # The job's log grows again through the resumed head (its driver never stopped).
  job_ms=-1
  before=$("$orrery" job logs "$job" --temp-dir "$work/root" 2>/dev/null | wc -l)
  for _ in $(seq 1000); do
    now=$("$orrery" job logs "$job" --temp-dir "$work/root" 2>/dev/null | wc -l)
    if [[ $(job_field "$job" status) == RUNNING ]] && ((now > before)); then
      job_ms=$(( $(now_ms) - t_start )); break
    fi
    sleep 0.01
  done
  job_same_pid=0
  [[ $(job_field "$job" driver_pid) == "$job_pid" ]] && kill -0 "$job_pid" 2>/dev/null && job_same_pid=1
  "$orrery" job stop "$job" --temp-dir "$work/root" >/dev/null 2>&1
  head_log_ms=$(grep -o 'every restored node reported again [0-9]* ms' "$session/logs/head.log" |
                tail -1 | grep -o '[0-9]*' || echo -1)
  head_log_ms=${head_log_ms:--1}
  [[ -n ${KEEP_LOGS:-} ]] && cp "$session/logs/head.log" "$KEEP_LOGS/head_$r.log"
  "$orrery" stop --temp-dir "$work/root" >/dev/null 2>&1
  run="{\"run\": $r, \"nodes_ms\": $nodes_ms, \"head_log_ms\": $head_log_ms, \"task_ms\": $task_ms, \"task_baseline_ms\": $baseline, \"job_ms\": $job_ms, \"job_same_pid\": $job_same_pid}"
  echo "$run"
  runs+=("$run")
done

json="[$(IFS=,; echo "${runs[*]}")]"
echo "$json" | /usr/bin/python3 -m json.tool >"$out_dir/recovery.json"
/usr/bin/python3 - "$out_dir/recovery.json" "$out_dir/recovery.md" "$RUNS" "$NODES" <<'EOF'
import json, statistics, sys, subprocess
runs = json.load(open(sys.argv[1]))
def med(k):
    v = [r[k] for r in runs if r[k] >= 0]
    return f"{statistics.median(v):.0f}" if v else "n/a"
cpu = subprocess.run("lscpu | grep 'Model name' | sed 's/.*: *//'", shell=True,
                     capture_output=True, text=True).stdout.strip()
with open(sys.argv[2], "w") as f:
    f.write(f"# Head recovery time (medians of {sys.argv[3]} runs, head + {sys.argv[4]} nodes)\n\n")
    f.write("Command: `bench/head_recovery.sh build` (RUNS=%s NODES=%s)\n\n" % (sys.argv[3], sys.argv[4]))
    f.write(f"Machine: {cpu}, 2-core shared VM, others building.\n\n")
    f.write("| measure | median ms |\n|---|---|\n")
    for k, what in [("nodes_ms", "head spawned -> every restored node heartbeated again"),
                    ("head_log_ms", "head's own log: all restored nodes reported"),
                    ("task_ms", "head spawned -> first `orrery task run -- true` done"),
                    ("task_baseline_ms", "one `orrery task run -- true`, healthy cluster"),
                    ("job_ms", "head spawned -> a running job's log grows again")]:
        f.write(f"| {what} | {med(k)} |\n")
    kept = sum(r.get("job_same_pid", 0) for r in runs)
    f.write(f"\nThe running job kept its driver (same pid) in {kept} of {len(runs)} runs.\n")
    f.write("\nEvery run: recovery.json.\n")
EOF
cat "$out_dir/recovery.md"
