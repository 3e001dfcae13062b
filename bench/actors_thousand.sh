#!/usr/bin/env bash
# 1,000 concurrent actors on one node (issue 18 item 5): a local cluster (head + its node), one
# C++ API driver (bench/scale_driver.cc actors) creates N actors, calls each once, Gets every
# answer, holds them HOLD_S seconds and calls each again. Actors ask for zero resources (see
# results/scale/README.md: Orrery's actors default to {CPU: 1}, as Ray's do for scheduling; a
# node with 2 CPUs would then hold 2), so what bounds them is memory and process limits.
# bench/scale_sample.py samples every 2 s: RSS of head, node, driver, the workers' RSS and PSS.
#
#   bench/actors_thousand.sh [BUILD_DIR]    N=1000 CPUS=2 HOLD_S=20 OUT=results/scale
#
# Writes OUT/actors.csv, OUT/actors.json and the actors section of OUT/README.md.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
N=${N:-1000}
CPUS=${CPUS:-2}
HOLD_S=${HOLD_S:-20}
OUT=${OUT:-$root/results/scale}
source "$root/bench/scale_common.sh"
scale_check_built
py=$(scale_python)
work=$(mktemp -d /tmp/orrery_actors_XXXXXX)
trap 'scale_stop_cluster; rm -rf "$work"' EXIT
mkdir -p "$OUT"

scale_start_cluster "$work" "$CPUS" ${START_FLAGS:-} || exit 1
echo "cluster at $ORRERY_ADDRESS (head $HEAD_PID, node $NODE_PID); creating $N actors"
baseline="$(awk '/VmRSS/{print $2}' /proc/"$HEAD_PID"/status) $(awk '/VmRSS/{print $2}' /proc/"$NODE_PID"/status)"
"$build/bench/scale_driver" actors "$N" "$HOLD_S" "$work/progress" > "$work/driver.json" 2> "$work/driver.err" &
driver=$!
python3 "$root/bench/scale_sample.py" --out "$OUT/actors.csv" --head "$HEAD_PID" \
  --node "$NODE_PID" --driver "$driver" --progress "$work/progress" --interval 2 --pss \
  --orrery "$build/orrery" --temp-dir "$SCALE_TEMP" --cli
wait "$driver"
rc=$?
cat "$work/driver.json"
if [[ $rc -ne 0 ]]; then
  echo "driver failed (exit $rc):" >&2; tail -20 "$work/driver.err" >&2
  [[ -s $work/driver.json ]] || exit $rc
fi
limits="{\"ulimit_n\": \"$(ulimit -n)\", \"ulimit_u\": \"$(ulimit -u)\", \"pid_max\": \"$(cat /proc/sys/kernel/pid_max)\", \"threads_max\": \"$(cat /proc/sys/kernel/threads-max)\"}"
"$py" "$root/bench/scale_report.py" actors --csv "$OUT/actors.csv" --driver "$work/driver.json" \
  --baseline-kb "$baseline" --out "$OUT" --extra "$limits" \
  --command "bench/actors_thousand.sh (N=$N CPUS=$CPUS HOLD_S=$HOLD_S)" --machine "$(scale_machine)" || rc=1
exit $rc
