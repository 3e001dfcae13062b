#!/usr/bin/env bash
# Simulator scaling benchmark: {1k, 10k} nodes x {100k, 1M} tasks of scenarios/scale-10k-1m.yaml,
# scaled with --set so the offered load stays ~60 % of capacity. Records wall time, events/s and
# peak RSS (from /usr/bin/time -v) into results/sim_scale.csv and prints a table.
#   bench/sim_scale.sh [build/orrery] [results/sim_scale.csv]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-build/orrery}"
out="${2:-results/sim_scale.csv}"
scn=scenarios/scale-10k-1m.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "nodes,tasks,wall_s,sim_wall_s,events,events_per_s,peak_rss_mib,makespan_s,finished" > "$out"
for nodes in 1000 10000; do
  for tasks in 100000 1000000; do
    f=$(python3 -c "print($nodes/10000)")     # node scale
    g=$(python3 -c "print($tasks/1000000)")   # task-count scale
    sets=(
      --set "cluster.node_types.0.count=$(python3 -c "print(int(8000*$f))")"
      --set "cluster.node_types.1.count=$(python3 -c "print(int(1500*$f))")"
      --set "cluster.node_types.2.count=$(python3 -c "print(int(500*$f))")"
      --set "workload.tasks.0.count=$(python3 -c "print(int(890000*$g))")"
      --set "workload.tasks.1.count=$(python3 -c "print(int(100000*$g))")"
      --set "workload.tasks.2.count=$(python3 -c "print(int(10000*$g))")"
      --set "workload.tasks.0.arrival.rate=$(python3 -c "print(8900*$f)")"
      --set "workload.tasks.1.arrival.rate=$(python3 -c "print(1000*$f)")"
      --set "workload.tasks.2.arrival.rate=$(python3 -c "print(100*$f)")"
    )
    /usr/bin/time -v "$bin" sim run "$scn" "${sets[@]}" --out "$tmp/run" --no-progress \
      > "$tmp/stdout" 2> "$tmp/time"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/{split($2,a,":"); s=0; for(i=1;i<=length(a);i++) s=s*60+a[i]; print s}' "$tmp/time")
    rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$tmp/time")
    events=$(sed -n 's/.*; \([0-9]*\) events.*/\1/p' "$tmp/stdout")
    python3 - "$tmp/run/summary.json" "$nodes" "$tasks" "$wall" "$events" "$rss" >> "$out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
nodes, tasks, wall, events, rss = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f"{nodes},{tasks},{wall:.2f},{s['wall_s']:.2f},{events},{events/s['wall_s']:.0f},{rss},{s['makespan_s']:.1f},{s['tasks']['finished']}")
PY
    tail -n 1 "$out"
  done
done
column -s, -t "$out"
