#!/usr/bin/env bash
# Deep lease queues (issue 11, items 4 and 5): bursts of one-second {CPU: 1} tasks submitted at
# t=0 (scenarios/burst-deep-queue.yaml) on 4 x 4-CPU nodes (10k, 20k, 40k) and 16 x 4-CPU nodes
# (200k, 1M). Records wall time, peak RSS (/usr/bin/time -v) and bytes per task into a CSV and
# prints a table. A run over LIMIT seconds is killed and recorded as "timeout".
#   bench/deep_queue.sh [build/orrery] [results/deep_queue/sim.csv] [LIMIT_S (600)] [SIZES...]
# SIZES default to "4:10000 4:20000 4:40000 16:200000 16:1000000" (nodes:tasks).
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-build/orrery}"
out="${2:-results/deep_queue/sim.csv}"
limit="${3:-600}"
shift 3 2>/dev/null || shift $#
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(4:10000 4:20000 4:40000 16:200000 16:1000000)
scn=scenarios/burst-deep-queue.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"

echo "nodes,tasks,wall_s,peak_rss_mib,bytes_per_task,makespan_s,finished,status" > "$out"
for s in "${sizes[@]}"; do
  nodes=${s%%:*}; tasks=${s##*:}
  rm -rf "$tmp/run"
  timeout "$limit" /usr/bin/time -v "$bin" sim run "$scn" \
      --set "cluster.node_types.0.count=$nodes" --set "workload.tasks.0.count=$tasks" \
      --out "$tmp/run" --no-progress > "$tmp/stdout" 2> "$tmp/time"
  rc=$?
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{split($2,a,":"); s=0; for(i=1;i<=length(a);i++) s=s*60+a[i]; print s}' "$tmp/time")
  rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$tmp/time")
  if [ "$rc" -ne 0 ] || [ ! -f "$tmp/run/summary.json" ]; then
    echo "$nodes,$tasks,${wall:-$limit},${rss:-},,,,timeout_or_error(rc=$rc)" >> "$out"
  else
    python3 - "$tmp/run/summary.json" "$nodes" "$tasks" "$wall" "$rss" >> "$out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
nodes, tasks, wall, rss = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"{nodes},{tasks},{wall:.2f},{rss},{rss*1048576/tasks:.0f},{s['makespan_s']:.1f},{s['tasks']['finished']},ok")
PY
  fi
  tail -n 1 "$out"
done
column -s, -t "$out"
