#!/usr/bin/env bash
# A cluster over a real (virtual) network: head on host 0, nodes on hosts 1 and 2, every client
# command from host 3 (issue 17 item 1). Usage: cluster_test.sh ORRERY_BINARY COUNTER_EXAMPLE
# Covers: node join with the token (and a wrong token refused), spillback and object fetch across
# hosts (`live run`), a job whose actor runs on another host, the jobs API, metrics and health
# endpoints reached from another host, and `orrery stop` on every host leaving no process.
set -u
ORRERY=$(realpath "$1")
COUNTER=$(realpath "$2")
. "$(dirname "$0")/lib.sh"

net_up 4
H=$(addr 0)
HEAD="$H:6379"

log "head on host 0 ($H), no CPUs of its own: every task and actor has to cross the network"
on 0 "$ORRERY" start --head --bind "$H" --port 6379 --dashboard-port 8265 --node-name head \
  --num-cpus 0 --health-check-period-ms 500 --health-check-failures 4 --temp-dir "$(tmpdir 0)" \
  >"$NET_TMP/start0.out" 2>&1 || { cat "$NET_TMP/start0.out"; fail "head did not start"; }
TOKEN=$(cat "$(tmpdir 0)"/session_latest/token)
grep -q "Started the Orrery head at $HEAD" "$NET_TMP/start0.out" ||
  fail "start --head did not print the head's address $HEAD: $(cat "$NET_TMP/start0.out")"

log "a node with a wrong token is refused with a clear message"
out=$(on 1 env ORRERY_TOKEN=not-the-token "$ORRERY" start --address "$HEAD" --bind "$(addr 1)" \
  --node-name n1 --temp-dir "$(tmpdir 1)" 2>&1)
rc=$?
[ "$rc" = 2 ] || fail "wrong token: expected exit 2, got $rc: $out"
echo "$out" | grep -q "refused the cluster token" || fail "wrong token: unclear message: $out"

log "nodes join from hosts 1 and 2 with the token"
on 1 env ORRERY_TOKEN="$TOKEN" "$ORRERY" start --address "$HEAD" --bind "$(addr 1)" \
  --node-ip "$(addr 1)" --node-name n1 \
  --num-cpus 2 --health-port 8300 --temp-dir "$(tmpdir 1)" >"$NET_TMP/start1.out" 2>&1 ||
  { cat "$NET_TMP/start1.out"; fail "node n1 did not join"; }
on 2 env ORRERY_TOKEN="$TOKEN" "$ORRERY" start --address "$HEAD" --bind 0.0.0.0 \
  --node-ip "$(addr 2)" --node-name n2 \
  --num-cpus 2 --resources '{"special": 1}' --temp-dir "$(tmpdir 2)" >"$NET_TMP/start2.out" 2>&1 ||
  { cat "$NET_TMP/start2.out"; fail "node n2 did not join"; }
grep -q "Started node n1 at $(addr 1):" "$NET_TMP/start1.out" ||
  fail "n1 does not advertise its own address: $(cat "$NET_TMP/start1.out")"

log "orrery status and list from host 3"
export ORRERY_TOKEN="$TOKEN" ORRERY_ADDRESS="$HEAD"
on 3 "$ORRERY" list nodes --format json >"$NET_TMP/nodes.json" || fail "list nodes from host 3"
for n in head:0 n1:1 n2:2; do
  id=${n%:*}
  a=$(addr "${n#*:}")
  python3 - "$NET_TMP/nodes.json" "$id" "$a" <<'EOF' || fail "node $id is not alive at $a"
import json, sys
nodes = json.load(open(sys.argv[1]))
nodes = nodes.get("nodes", nodes) if isinstance(nodes, dict) else nodes
n = [x for x in nodes if x["node_id"] == sys.argv[2]]
assert n and n[0]["state"] == "alive" and n[0]["address"].startswith(sys.argv[3] + ":"), n
EOF
done
on 3 "$ORRERY" status >"$NET_TMP/status.out" || fail "status from host 3"
grep -q n2 "$NET_TMP/status.out" || fail "status does not show n2: $(cat "$NET_TMP/status.out")"

log "live run from host 3: spillback from the head's node, an 8 MB object fetched n1 -> n2"
cat >"$NET_TMP/net.yaml" <<'EOF'
name: net-cluster
seed: 1
cluster:
  nodes:
    - {id: head, resources: {CPU: 0}}
    - {id: n1, resources: {CPU: 2}}
    - {id: n2, resources: {CPU: 2, special: 1}}
  driver: head
workload:
  tasks:
    - {name: spill, count: 2, duration: 300ms, resources: {CPU: 1, special: 1}}
    - {name: producer, count: 1, duration: 200ms, resources: {CPU: 1}, output: 8MB,
       strategy: {type: NODE_AFFINITY, node: n1}}
    - {name: consumer, count: 1, start: 100ms, duration: 200ms, resources: {CPU: 1},
       args: [{from: producer, count: 1, pick: same_index}],
       strategy: {type: NODE_AFFINITY, node: n2}}
EOF
on 3 "$ORRERY" live run "$NET_TMP/net.yaml" --address "$HEAD" --out "$NET_TMP/run" \
  >"$NET_TMP/run.out" 2>&1 || { cat "$NET_TMP/run.out"; fail "live run across hosts failed"; }
python3 - "$NET_TMP/run" <<'EOF' || fail "live run results: $(cat "$NET_TMP/run/summary.json")"
import csv, json, sys
d = sys.argv[1]
s = json.load(open(d + "/summary.json"))
assert s["tasks"]["finished"] == 4 and s["tasks"]["failed"] == 0, s["tasks"]
# The two spill tasks share a scheduling class: the driver's lease, spilled from the head's node
# to n2 once, runs them one after the other (owner lease reuse); both must have crossed.
assert s["spillbacks"] >= 1, ("no spillback", s["spillbacks"])
spill = [r for r in csv.DictReader(open(d + "/tasks.csv")) if r["name"] == "spill"]
assert len(spill) == 2 and all(r["node_id"] == "n2" for r in spill), spill
assert s["bytes_transferred"] >= 8_000_000, ("object not fetched", s["bytes_transferred"])
rows = {r["name"]: r for r in csv.DictReader(open(d + "/tasks.csv"))}
assert max(int(r["spillbacks"]) for r in spill) >= 1, spill
assert rows["producer"]["node_id"] == "n1" and rows["consumer"]["node_id"] == "n2", rows
EOF

log "a job submitted from host 3: driver on the head's host, its actor on another host"
on 3 "$ORRERY" job submit --submission-id net-counter \
  --runtime-env-json '{"env_vars": {"counter_name": "net_counter"}}' -- "$COUNTER" \
  >"$NET_TMP/job.out" 2>&1 || { cat "$NET_TMP/job.out"; fail "job with an actor failed"; }
grep -q "net_counter got 5" "$NET_TMP/job.out" || fail "job output: $(cat "$NET_TMP/job.out")"
on 3 "$ORRERY" list actors --format json >"$NET_TMP/actors.json" || fail "list actors"
grep -Eq '"node_id": *"n[12]"' "$NET_TMP/actors.json" ||
  fail "the actor did not run on n1/n2: $(cat "$NET_TMP/actors.json")"

log "a driver on host 3 itself: the actor on n1/n2 answers a driver on another host"
on 3 "$COUNTER" --counter-name direct >"$NET_TMP/direct.out" 2>&1 ||
  { cat "$NET_TMP/direct.out"; fail "counter driver on host 3 failed"; }
grep -q "direct got 5" "$NET_TMP/direct.out" || fail "driver output: $(cat "$NET_TMP/direct.out")"

log "HTTP from host 3: jobs API (token), head and node metrics, health"
code=$(on 3 curl -s -o /dev/null -w '%{http_code}' "http://$H:8265/api/jobs/")
[ "$code" = 401 ] || fail "jobs API without the token: expected 401, got $code"
on 3 curl -sf -H "Authorization: Bearer $TOKEN" "http://$H:8265/api/jobs/net-counter" |
  grep -q '"SUCCEEDED"' || fail "jobs API from host 3 does not show the job SUCCEEDED"
head_metrics=$(grep -o 'head metrics: http://[^ ]*' "$NET_TMP/start0.out" | cut -d' ' -f3)
n1_metrics=$(grep -o 'metrics: http://[^ ]*' "$NET_TMP/start1.out" | head -1 | cut -d' ' -f2)
case "$head_metrics $n1_metrics" in
*127.0.0.1*) fail "metrics advertised on loopback: $head_metrics $n1_metrics" ;;
esac
on 3 curl -sf "$head_metrics" | grep -q '^orrery_nodes{state="alive"} 3' ||
  fail "head metrics from host 3 ($head_metrics) do not count 3 alive nodes"
on 3 curl -sf "$n1_metrics" | grep -q 'orrery_tasks{.*node="n1"' ||
  fail "n1 metrics from host 3 ($n1_metrics)"
[ "$(on 3 curl -s "http://$H:8265/healthz")" = ok ] || fail "head /healthz from host 3"
[ "$(on 3 curl -s -o /dev/null -w '%{http_code}' "http://$H:8265/readyz")" = 200 ] ||
  fail "head /readyz from host 3"
[ "$(on 3 curl -s "http://$(addr 1):8300/readyz")" = ok ] || fail "n1 /readyz from host 3"

log "orrery stop on every host: no process left in any host's namespace"
for i in 2 1 0; do
  on "$i" "$ORRERY" stop --temp-dir "$(tmpdir "$i")" >/dev/null || fail "orrery stop on host $i"
done
for i in 0 1 2 3; do
  left=$(host_pids "$i")
  [ -z "$left" ] || fail "host $i still runs: $(for p in $left; do echo "$p: $(tr '\0' ' ' <"/proc/$p/cmdline")"; done)"
done
log "PASS"
