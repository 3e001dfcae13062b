#!/usr/bin/env bash
# Delay and loss (issue 17 item 2): every host sends through `tc qdisc netem delay 100ms loss 1%`
# on its eth0 (100 ms each way, 200 ms round trips, 1 % of the packets lost in each direction), and a workload with spillback and an object
# fetched across hosts still finishes with nothing lost, no node declared dead under the default
# health check (1000 ms x 5), and `orrery stop` leaves nothing. Without the kernel's netem the
# userspace stand-in netem_user.py shapes the same (see lib.sh). Usage: netem_test.sh ORRERY_BINARY [COUNTER_EXAMPLE (unused)]
set -u
ORRERY=$(realpath "$1")
. "$(dirname "$0")/lib.sh"

net_up 4
command -v tc >/dev/null || skip "needs iproute2's tc for netem"
# The kernel's netem qdisc where there is one (Debian ships it as the sch_netem module); else
# (ORRERY_NET_USER_NETEM=1 forces it) the userspace stand-in netem_user.py, the same shaping of
# what each host sends. Either way every host's egress: 100 ms delay, 1 % loss.
EMU="tc qdisc netem"
if [ "${ORRERY_NET_USER_NETEM:-0}" = 1 ] || ! netem 0 delay 100ms loss 1%; then
  EMU="netem_user.py (this kernel has no netem qdisc)"
  [ -c /dev/net/tun ] || skip "no netem qdisc and no /dev/net/tun for the userspace stand-in"
  for i in 0 1 2 3; do netem_user "$i" 100 1 || fail "netem_user on host $i"; done
else
  for i in 1 2 3; do netem "$i" delay 100ms loss 1% || fail "netem on host $i"; done
fi
log "every host's eth0 through $EMU: delay 100ms loss 1%"
H=$(addr 0)
HEAD="$H:6379"

T0=$SECONDS
on 0 "$ORRERY" start --head --bind "$H" --node-name head --num-cpus 0 --temp-dir "$(tmpdir 0)" \
  >"$NET_TMP/start0.out" 2>&1 || { cat "$NET_TMP/start0.out"; fail "head"; }
export ORRERY_TOKEN
ORRERY_TOKEN=$(cat "$(tmpdir 0)"/session_latest/token)
for i in 1 2; do
  on "$i" "$ORRERY" start --address "$HEAD" --bind "$(addr "$i")" --node-name "n$i" --num-cpus 4 \
    --resources "{\"r$i\": 100}" --temp-dir "$(tmpdir "$i")" >"$NET_TMP/start$i.out" 2>&1 ||
    { cat "$NET_TMP/start$i.out"; fail "n$i did not join over the slow network"; }
done
log "cluster up in $((SECONDS - T0)) s over the slow network"
# The shaping is real: a TCP connect from host 3 to the head is one round trip, >= 200 ms.
RTT_MS=$(on 3 python3 -c '
import socket, sys, time
t = time.monotonic()
socket.create_connection((sys.argv[1], 6379), timeout=10).close()
print(int((time.monotonic() - t) * 1000))' "$H") || fail "connect to the head from host 3"
log "TCP connect host 3 -> head: ${RTT_MS} ms"
[ "$RTT_MS" -ge 190 ] || fail "a round trip took ${RTT_MS} ms: the 100 ms delay each way is not in effect"

cat >"$NET_TMP/netem.yaml" <<'EOF'
name: net-netem
seed: 1
cluster:
  nodes:
    - {id: head, resources: {CPU: 0}}
    - {id: n1, resources: {CPU: 4, r1: 100}}
    - {id: n2, resources: {CPU: 4, r2: 100}}
  driver: head
workload:
  tasks:
    - {name: a, count: 8, arrival: {process: uniform, interval: 100ms}, duration: 500ms,
       resources: {CPU: 1, r1: 1}}
    - {name: b, count: 8, arrival: {process: uniform, interval: 100ms}, duration: 500ms,
       resources: {CPU: 1, r2: 1}}
    - {name: producer, count: 2, duration: 200ms, resources: {CPU: 1, r1: 1}, output: 2MB}
    - {name: consumer, count: 2, start: 100ms, duration: 200ms, resources: {CPU: 1, r2: 1},
       args: [{from: producer, count: 1, pick: same_index}]}
EOF
T1=$SECONDS
on 3 "$ORRERY" live run "$NET_TMP/netem.yaml" --address "$HEAD" --out "$NET_TMP/run" \
  >"$NET_TMP/run.out" 2>&1 || { cat "$NET_TMP/run.out"; fail "live run under delay and loss"; }
log "live run finished in $((SECONDS - T1)) s"
python3 - "$NET_TMP/run" <<'EOF' || fail "results: $(cat "$NET_TMP/run/summary.json")"
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
assert s["tasks"]["total"] == 20 and s["tasks"]["finished"] == 20, s["tasks"]
assert s["bytes_transferred"] >= 4_000_000, s["bytes_transferred"]
# The head has no CPUs: every class's leases spilled to n1 or n2 at least once (same-class tasks
# may then reuse a spilled lease, so fewer spillbacks than tasks).
assert s["spillbacks"] >= 4, s["spillbacks"]
import csv
rows = list(csv.DictReader(open(sys.argv[1] + "/tasks.csv")))
want = {"a": "n1", "b": "n2", "producer": "n1", "consumer": "n2"}
assert all(r["node_id"] == want[r["name"]] for r in rows), [(r["name"], r["node_id"]) for r in rows]
EOF
on 3 "$ORRERY" list nodes --address "$HEAD" --format json | grep -q '"dead"' &&
  fail "a node was declared dead under 100 ms delay and 1 % loss"
on 3 "$ORRERY" job submit --address "$HEAD" -- 'echo over-netem' >"$NET_TMP/job.out" 2>&1 ||
  fail "job under delay and loss: $(cat "$NET_TMP/job.out")"
grep -q over-netem "$NET_TMP/job.out" || fail "job output lost: $(cat "$NET_TMP/job.out")"

if [ "$EMU" != "tc qdisc netem" ]; then
  DROPPED=$(cat "$NET_TMP"/netem*.stats | awk '{d += $2; s += $1} END {print d " of " d + s}')
  log "frames dropped by netem_user.py on the hosts' egress: $DROPPED"
  [ "${DROPPED%% *}" -gt 0 ] || fail "no frame was dropped: the 1 % loss is not in effect"
fi
for i in 2 1 0; do on "$i" "$ORRERY" stop --temp-dir "$(tmpdir "$i")" >/dev/null || fail "stop $i"; done
for i in 0 1 2 3; do [ -z "$(host_pids "$i")" ] || fail "host $i still runs processes"; done
log "PASS"
