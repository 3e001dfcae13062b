#!/usr/bin/env bash
# Scale of one node and one driver (issue 18 item 5): a local cluster (head + its node, CPUS
# CPUs), one C++ API driver (bench/scale_driver.cc) submits N no-op tasks as fast as it can, all
# queued at once, and Gets them in order. Every second bench/scale_sample.py records tasks
# finished, the RSS of head, node and driver (and the node's workers), and how long
# `orrery status` and `orrery list tasks` take.
#
#   bench/driver_million.sh [BUILD_DIR]     (default build; needs the orrery and scale_driver targets)
#   N=1000000 CPUS=2 OUT=results/scale INTERVAL=1   (environment overrides; INTERVAL: sampling, s)
#
# Then, on the same cluster, the head's task table at its bound: the C++ API shows the head one
# row per lease, not per task (a reused lease runs many tasks), so the million leave a handful of
# rows; `scale_driver leases ROWS` runs ROWS tasks each on a lease of its own, a row each, past
# the head's limit (HeadOptions::max_tasks, 10,000), sampling `orrery list tasks` as it fills.
#
# Writes OUT/million.csv (the samples), OUT/table.csv (the table filling), OUT/million.json (the
# driver's summary and the figures below), OUT/million.png (plot) and the "million" section of
# OUT/README.md via bench/scale_report.py: bytes per queued task per daemon, throughput in the
# first and last 10 % of tasks, status/list p50 and max, and whether head + node + driver stayed
# within 2 GiB.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
N=${N:-1000000}
ROWS=${ROWS:-12000}
CPUS=${CPUS:-2}
OUT=${OUT:-$root/results/scale}
source "$root/bench/scale_common.sh"
scale_check_built
py=$(scale_python)
work=$(mktemp -d /tmp/orrery_million_XXXXXX)
trap 'scale_stop_cluster; rm -rf "$work"' EXIT
mkdir -p "$OUT"

scale_start_cluster "$work" "$CPUS" || exit 1
echo "cluster at $ORRERY_ADDRESS (head $HEAD_PID, node $NODE_PID); submitting $N tasks"
baseline="$(awk '/VmRSS/{print $2}' /proc/"$HEAD_PID"/status) $(awk '/VmRSS/{print $2}' /proc/"$NODE_PID"/status)"
"$build/bench/scale_driver" million "$N" "$work/progress" > "$work/driver.json" 2> "$work/driver.err" &
driver=$!
python3 "$root/bench/scale_sample.py" --out "$OUT/million.csv" --head "$HEAD_PID" \
  --node "$NODE_PID" --driver "$driver" --progress "$work/progress" --interval "${INTERVAL:-1}" \
  --orrery "$build/orrery" --temp-dir "$SCALE_TEMP" --cli
wait "$driver"
rc=$?
cat "$work/driver.json"
[[ $rc -ne 0 ]] && { echo "driver failed (exit $rc):" >&2; tail -20 "$work/driver.err" >&2; }
echo "filling the head's task table: $ROWS tasks, a lease each"
"$build/bench/scale_driver" leases "$ROWS" "$work/progress2" > "$work/leases.json" 2> "$work/leases.err" &
driver=$!
python3 "$root/bench/scale_sample.py" --out "$OUT/table.csv" --head "$HEAD_PID" \
  --node "$NODE_PID" --driver "$driver" --progress "$work/progress2" --interval 1 \
  --orrery "$build/orrery" --temp-dir "$SCALE_TEMP" --cli
wait "$driver" || { echo "leases driver failed:" >&2; tail -20 "$work/leases.err" >&2; rc=1; }
"$py" "$root/bench/scale_report.py" million --csv "$OUT/million.csv" --driver "$work/driver.json" \
  --table-csv "$OUT/table.csv" --baseline-kb "$baseline" --out "$OUT" \
  --command "bench/driver_million.sh (N=$N ROWS=$ROWS CPUS=$CPUS)" --machine "$(scale_machine)" || rc=1
exit $rc
