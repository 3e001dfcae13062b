#!/usr/bin/env bash
# Soak (issue 18 item 5): a local cluster (head + its node) under a steady light load for
# DURATION_S seconds, sampling the RSS of every daemon every 10 s; no daemon may grow.
#   - one C++ API driver (bench/scale_driver.cc soak) submits RATE no-op tasks a second, one in
#     ten printing a log line (worker log -> node log monitor -> head log hub -> driver);
#   - a job every JOB_EVERY_S seconds (`orrery job submit`) whose entrypoint prints JOB_LINES
#     lines (job log files, the job store, a driver process per job).
# The verdict: a least-squares line through each daemon's RSS (head, node, driver) over the
# second half of the run; growth above THRESHOLD_MIB_PER_H fails (exit 1).
#
#   bench/soak.sh DURATION_S [BUILD_DIR]        (default: 3600, build)
#   RATE=20 CPUS=2 JOB_EVERY_S=30 JOB_LINES=50 THRESHOLD_MIB_PER_H=10 OUT=results/soak
#
# Writes OUT/rss.csv (every sample), OUT/rss.png, OUT/verdict.json, OUT/verdict.txt and the soak
# section of OUT/README.md (bench/scale_report.py soak).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-3600}
build=$(cd "${2:-$root/build}" && pwd)
RATE=${RATE:-20}
CPUS=${CPUS:-2}
JOB_EVERY_S=${JOB_EVERY_S:-30}
JOB_LINES=${JOB_LINES:-50}
THRESHOLD=${THRESHOLD_MIB_PER_H:-10}
OUT=${OUT:-$root/results/soak}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 20 ]] || { echo "soak: DURATION_S: expected an integer >= 20, got '$DURATION'" >&2; exit 2; }
source "$root/bench/scale_common.sh"
scale_check_built
py=$(scale_python)
work=$(mktemp -d /tmp/orrery_soak_XXXXXX)
jobs_pid=
cleanup() {
  [[ -n $jobs_pid ]] && kill "$jobs_pid" 2> /dev/null
  scale_stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$OUT"

scale_start_cluster "$work" "$CPUS" || exit 1
echo "soak: cluster at $ORRERY_ADDRESS (head $HEAD_PID, node $NODE_PID), $DURATION s, $RATE tasks/s, a job every $JOB_EVERY_S s"
"$build/bench/scale_driver" soak "$DURATION" "$RATE" "$work/progress" > /dev/null 2> "$work/driver.err" &
driver=$!
# The jobs: each prints JOB_LINES lines; submitted without waiting (the head runs them).
(
  i=0
  while sleep "$JOB_EVERY_S"; do
    i=$((i + 1))
    "$build/orrery" job submit --temp-dir "$SCALE_TEMP" --no-wait --submission-id "soak-$i" -- \
      bash -c "for k in \$(seq $JOB_LINES); do echo soak job $i line \$k; done" \
      >> "$work/jobs.log" 2>&1 || echo "job $i: submit failed" >> "$work/jobs.log"
  done
) &
jobs_pid=$!
python3 "$root/bench/scale_sample.py" --out "$OUT/rss.csv" --head "$HEAD_PID" --node "$NODE_PID" \
  --driver "$driver" --progress "$work/progress" --interval 10 --duration "$DURATION" \
  --orrery "$build/orrery" --temp-dir "$SCALE_TEMP" --cli
wait "$driver"
rc=$?
kill "$jobs_pid" 2> /dev/null
wait "$jobs_pid" 2> /dev/null
jobs_pid=
[[ $rc -ne 0 ]] && { echo "soak: driver failed (exit $rc):" >&2; tail -20 "$work/driver.err" >&2; }
failed_jobs=$(grep -c "submit failed" "$work/jobs.log" 2> /dev/null)
jobs_json=$("$build/orrery" job list --temp-dir "$SCALE_TEMP" --format json 2> /dev/null || echo '[]')
succeeded=$(echo "$jobs_json" | python3 -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin) if str(j.get("status","")).upper()=="SUCCEEDED"))' 2> /dev/null || echo '?')
total_jobs=$(echo "$jobs_json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2> /dev/null || echo '?')
"$py" "$root/bench/scale_report.py" soak --csv "$OUT/rss.csv" --out "$OUT" \
  --threshold-mb-per-h "$THRESHOLD" --machine "$(scale_machine)" \
  --command "nice -n 19 bench/soak.sh $DURATION (RATE=$RATE CPUS=$CPUS JOB_EVERY_S=$JOB_EVERY_S JOB_LINES=$JOB_LINES)" \
  --extra "{\"jobs_submitted\": \"$total_jobs\", \"jobs_succeeded\": \"$succeeded\", \"job_submit_failures\": \"$failed_jobs\"}"
vrc=$?
[[ $rc -ne 0 ]] && exit $rc
exit $vrc
