#!/usr/bin/env bash
# A partition (issue 17 item 2): host 1's cable is pulled while two 3 s tasks run there. The head
# declares n1 dead after its health-check timeout (here 500 ms x 4 = 2 s), fails its tasks, and
# `live run` (on host 3) retries them on n2. The tasks finish on n1 during the partition, so when
# the cable is back n1's buffered results reach the driver: they must not be accepted (the head
# declared n1 dead), and n1 is told it is dead and exits. A Counter actor (one restart) that ran on
# n1 is restarted on n2 with its state reset (its driver restarts it once the head lists n1
# dead). A restart of n1 rejoins as a new node.
# Usage: partition_test.sh ORRERY_BINARY COUNTER_EXAMPLE NET_ACTOR_DRIVER
set -u
ORRERY=$(realpath "$1")
ACTOR_DRIVER=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

net_up 4
H=$(addr 0)
HEAD="$H:6379"
PERIOD_MS=500
FAILURES=4
DEAD_AFTER_S=2 # PERIOD_MS x FAILURES

on 0 "$ORRERY" start --head --bind "$H" --node-name head --num-cpus 0 \
  --health-check-period-ms $PERIOD_MS --health-check-failures $FAILURES \
  --temp-dir "$(tmpdir 0)" >"$NET_TMP/start0.out" 2>&1 || { cat "$NET_TMP/start0.out"; fail "head"; }
export ORRERY_TOKEN
ORRERY_TOKEN=$(cat "$(tmpdir 0)"/session_latest/token)
for i in 1 2; do # n1: 2 CPUs for the tasks, 1 for the actor
  on "$i" "$ORRERY" start --address "$HEAD" --bind "$(addr "$i")" --node-name "n$i" --num-cpus $((4 - i)) \
    --temp-dir "$(tmpdir "$i")" >"$NET_TMP/start$i.out" 2>&1 ||
    { cat "$NET_TMP/start$i.out"; fail "n$i did not join"; }
done
N1_PID=$(grep -o 'pid [0-9]*' "$NET_TMP/start1.out" | tail -1 | cut -d' ' -f2)

cat >"$NET_TMP/part.yaml" <<'EOF'
name: net-partition
seed: 1
cluster:
  nodes:
    - {id: head, resources: {CPU: 0}}
    - {id: n1, resources: {CPU: 2}}
    - {id: n2, resources: {CPU: 2}}
  driver: head
workload:
  tasks:
    - {name: long, count: 2, duration: 3s, resources: {CPU: 1},
       strategy: {type: NODE_AFFINITY, node: n1, soft: true}}
    - {name: other, count: 2, duration: 1s, resources: {CPU: 1},
       strategy: {type: NODE_AFFINITY, node: n2}}
EOF
log "an actor with one restart on n1, its driver on host 3"
start_actor_driver n1
actor_on alive n1 || fail "the actor is not alive on n1: $(on 3 "$ORRERY" list actors --address "$HEAD")"

log "live run from host 3: two 3 s tasks on n1, two 1 s tasks on n2"
on 3 "$ORRERY" live run "$NET_TMP/part.yaml" --address "$HEAD" --out "$NET_TMP/run" --progress \
  >"$NET_TMP/run.out" 2>&1 &
RUN_PID=$!

running_on_n1() {
  [ "$(on 3 "$ORRERY" list tasks --address "$HEAD" --format json |
    python3 -c 'import json,sys; t=json.load(sys.stdin); t=t.get("tasks",t) if isinstance(t,dict) else t; print(sum(1 for x in t if x.get("node_id")=="n1" and x.get("state","").lower()=="running" and x.get("name","").startswith("long")))')" = 2 ]
}
net_wait 10 running_on_n1 || fail "the tasks never ran on n1: $(cat "$NET_TMP/run.out")"

log "partition: host 1's link goes down"
link_down 1
T0=$(date +%s.%N)
net_wait 10 node_dead n1 || fail "n1 was not declared dead within 10 s"
ELAPSED=$(python3 -c "print(round($(date +%s.%N) - $T0, 2))")
log "n1 declared dead after ${ELAPSED} s (timeout ${DEAD_AFTER_S} s)"
python3 -c "import sys; e=float('$ELAPSED'); sys.exit(0 if $DEAD_AFTER_S - 0.6 <= e <= $DEAD_AFTER_S + 2.0 else 1)" ||
  fail "n1 declared dead after ${ELAPSED} s, expected about ${DEAD_AFTER_S} s"
on 3 "$ORRERY" list tasks --address "$HEAD" --format json | grep -q 'node n1 died' ||
  fail "the head did not fail n1's tasks"
# The head marks the actor restarting; its driver (polling the head's node list) restarts it on
# n2 as soon as it sees n1 dead, so it may already be alive there.
actor_on restarting n1 || actor_on alive n2 ||
  fail "the head did not mark the actor restarting: $(on 3 "$ORRERY" list actors --address "$HEAD")"

log "the tasks finish on n1 during the partition; the link comes back 1.5 s later"
sleep 2.5
link_up 1
net_wait 10 bash -c "! kill -0 $N1_PID 2>/dev/null" ||
  fail "n1 did not exit after the head told it it was dead"
grep -Eq "the head declared this node dead|lists this node dead" "$(tmpdir 1)"/session_latest/logs/node-n1.log ||
  fail "n1's log does not say it was declared dead"

wait "$RUN_PID"
rc=$?
[ "$rc" = 0 ] || fail "live run exit $rc: $(cat "$NET_TMP/run.out")"
python3 - "$NET_TMP/run" <<'EOF' || fail "results: $(cat "$NET_TMP/run/tasks.csv")"
import csv, json, sys
d = sys.argv[1]
s = json.load(open(d + "/summary.json"))
assert s["tasks"]["finished"] == 4 and s["tasks"]["failed"] == 0, s["tasks"]
rows = list(csv.DictReader(open(d + "/tasks.csv")))
done = {r["task_id"]: r for r in rows if r["state"] == "finished"}
# Nothing n1 produced after the head declared it dead was accepted: every long task finished on n2
# in a second attempt; its first attempt on n1 failed.
longs = [r for r in done.values() if r["name"] == "long"]
assert len(longs) == 2 and all(r["node_id"] == "n2" and r["attempt"] == "1" for r in longs), longs
lost = [r for r in rows if r["name"] == "long" and r["attempt"] == "0"]
assert len(lost) == 2 and all(r["node_id"] == "n1" and r["state"] == "failed" for r in lost), lost
EOF
# The run says why: n1's buffered results reached the driver and were refused, or (a race with
# n1 learning it is dead and stopping when the link heals; seen in CI under load) n1 stopped
# first and its streams broke, and the attempts count as lost with the node.
grep -Eq "not accepted|task [01] \(long\) failed on n1 \(node died\), retrying" "$NET_TMP/run.out" ||
  fail "live run did not say why n1's results were lost or refused: $(cat "$NET_TMP/run.out")"

log "the actor's next call: restarted on n2 (state reset), per its one restart"
echo call >&7
second_call_restarted() { [ "$(grep -c '^got: net got 1$' "$NET_TMP/actor.out")" = 2 ]; }
net_wait 30 second_call_restarted ||
  fail "actor after the partition: $(cat "$NET_TMP/actor.out")"
net_wait 5 actor_on alive n2 || fail "the actor is not alive on n2: $(on 3 "$ORRERY" list actors --address "$HEAD")"
exec 7>&-

log "n1 restarted rejoins as a new node"
on 1 "$ORRERY" start --address "$HEAD" --bind "$(addr 1)" --node-name n1 --num-cpus 2 \
  --temp-dir "$(tmpdir 1)" >"$NET_TMP/restart1.out" 2>&1 || { cat "$NET_TMP/restart1.out"; fail "rejoin"; }
# (the head's node hears of the rejoin with the next view broadcast, 100 ms later)
net_wait 5 on 3 "$ORRERY" task run --address "$HEAD" --strategy node:n1 -- true ||
  fail "no task runs on the rejoined n1"

for i in 2 1 0; do on "$i" "$ORRERY" stop --temp-dir "$(tmpdir "$i")" >/dev/null || fail "stop $i"; done
for i in 0 1 2 3; do [ -z "$(host_pids "$i")" ] || fail "host $i still runs processes"; done
log "PASS"
