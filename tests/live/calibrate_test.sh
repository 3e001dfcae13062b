#!/usr/bin/env bash
# `orrery calibrate` on the real binary (~10 s): it measures a private 2-node cluster, writes a
# control_plane block with plausible numbers, a scenario includes the file and simulates with it
# (slower starts than without it), and bad flags or an unreachable cluster are clear errors.
#   calibrate_test.sh ORRERY_BINARY SOURCE_DIR
set -u
bin="$1"; src="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
value() { sed -n "s/^  $1: \([0-9.e+-]*\).*/\1/p" "$tmp/cal.yaml"; }
between() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "" && x >= lo && x <= hi) }'; }

timeout 120 "$bin" calibrate --local --samples 40 --out "$tmp/cal.yaml" 2> "$tmp/err"
rc=$?
check "calibrate --local exits 0 (got $rc)" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || cat "$tmp/err"
cat "$tmp/cal.yaml"
check "progress lines name each measurement" "grep -q 'calibrate: lease_request: n=40' '$tmp/err'"
# Loopback gRPC round trips take tens of microseconds to milliseconds; a worker start takes
# milliseconds; the view changes about once per 100 ms report period.
check "lease_request in (10 us, 200 ms)" "between '$(value lease_request)' 0.00001 0.2"
check "spillback measured on two nodes" "between '$(value spillback)' 0.00001 0.2"
check "task_start in (10 us, 200 ms)" "between '$(value task_start)' 0.00001 0.2"
check "worker_start in (0, 5 s)" "between '$(value worker_start)' 0 5"
check "report_period near 100 ms" "between '$(value report_period)' 0.05 0.3"
check "resources_visible_remote in (0, 1 s)" "between '$(value resources_visible_remote)' 0 1"
check "object_bandwidth in Gbps" "grep -Eq '^  object_bandwidth: [0-9.e+-]+Gbps' '$tmp/cal.yaml'"
# A batch of start-ups at once on a node ends later than one alone (they share its cores), and
# the part of a start-up that is shared CPU work is derived from the two.
batch=$(sed -n 's/^# measured, not a parameter: [0-9]* worker start-ups at once on one node end after mean \([0-9.]*\)ms.*/\1/p' "$tmp/cal.yaml")
check "worker_start_shared in [0, 1]" "between '$(value worker_start_shared)' 0 1"
check "a batch of start-ups at once ends after mean $batch ms, later than one ($(value worker_start) s)" \
  "awk -v b='$batch' -v w='$(value worker_start)' 'BEGIN { exit !(b != \"\" && b / 1000 > w) }'"
check "the header says how it was measured" "grep -q '^# Measured by .orrery calibrate --local' '$tmp/cal.yaml'"

# A scenario includes the file (relative path); the simulation runs with the calibrated legs
# (the network and report period are the scenario's own, so only the legs differ: same-node
# legs, free without calibration, now cost half a lease round trip).
mkdir -p "$tmp/scn"
cp "$tmp/cal.yaml" "$tmp/scn/cal.yaml"
cat > "$tmp/scn/base.yaml" <<'YAML'
cluster:
  node_types: [{name: cpu, count: 2, resources: {CPU: 1}}]
  network: {latency: 0.5ms}
scheduler: {report_period: 100ms}
workload:
  tasks: [{name: a, count: 20, duration: 10ms}]
YAML
{ cat "$tmp/scn/base.yaml"; echo "control_plane: cal.yaml"; } > "$tmp/scn/cal-scn.yaml"
"$bin" sim run "$tmp/scn/base.yaml" --no-progress --out "$tmp/r0" > /dev/null 2>&1
"$bin" sim run "$tmp/scn/cal-scn.yaml" --no-progress --out "$tmp/r1" > "$tmp/sim.out" 2>&1
rc=$?
check "a scenario including the calibration simulates (got $rc)" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || cat "$tmp/sim.out"
m0=$(grep -o '"makespan_s": *[0-9.e+-]*' "$tmp/r0/summary.json" | grep -o '[0-9.e+-]*$')
m1=$(grep -o '"makespan_s": *[0-9.e+-]*' "$tmp/r1/summary.json" | grep -o '[0-9.e+-]*$')
check "calibrated makespan ($m1) is longer than the uncalibrated one ($m0)" \
  "awk -v a='$m0' -v b='$m1' 'BEGIN { exit !(b > a) }'"

# Bad input.
"$bin" calibrate --local --samples 5 > /dev/null 2> "$tmp/e1"; rc=$?
check "--samples 5 is a usage error (exit 2, got $rc)" "[ $rc -eq 2 ] && grep -q 'samples' '$tmp/e1'"
"$bin" calibrate --local --address 127.0.0.1:1 > /dev/null 2> "$tmp/e2"; rc=$?
check "--local with --address is a usage error (exit 2, got $rc)" "[ $rc -eq 2 ]"
"$bin" calibrate --local --out "$tmp/no/such/dir/f.yaml" > /dev/null 2> "$tmp/e3"; rc=$?
check "an unwritable --out fails naming it (exit 1, got $rc)" "[ $rc -eq 1 ] && grep -q 'no/such/dir' '$tmp/e3'"
ORRERY_TOKEN=x timeout 60 "$bin" calibrate --address 127.0.0.1:1 --samples 20 > /dev/null 2> "$tmp/e4"; rc=$?
check "an unreachable head fails naming it (exit 2 as for status, got $rc)" "[ $rc -eq 2 ] && grep -q '127.0.0.1:1' '$tmp/e4'"
cat "$tmp/e4"
exit $fail
