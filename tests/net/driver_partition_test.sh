#!/usr/bin/env bash
# A partial partition (issue 17 item 2, no split brain): node n1 loses the head but not the
# driver. The head declares n1 dead after its health-check timeout (500 ms x 4 = 2 s) and marks
# the Counter actor that ran there restarting; n1 itself keeps running (it has not heard it is
# dead) and still answers the driver. The driver (C++ API, on host 3) must stop using n1 as soon as
# the head lists it dead: the actor's next call runs on a restarted incarnation on n2 (state reset:
# "net got 1"), never on the old one on n1 ("net got 2" would be split brain). When the cut heals
# n1 is told it is dead and exits.
# Host 1's cable goes through tests/net/netem_user.py (no delay, no loss), which drops what passes
# between host 1 and the head while its block file names the head.
# Usage: driver_partition_test.sh ORRERY_BINARY COUNTER_EXAMPLE NET_ACTOR_DRIVER
set -u
ORRERY=$(realpath "$1")
ACTOR_DRIVER=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

net_up 4
[ -c /dev/net/tun ] || skip "needs /dev/net/tun for netem_user.py (the partial partition)"
netem_user 1 0 0 || fail "netem_user on host 1"
H=$(addr 0)
HEAD="$H:6379"
on 0 "$ORRERY" start --head --bind "$H" --node-name head --num-cpus 0 \
  --health-check-period-ms 500 --health-check-failures 4 \
  --temp-dir "$(tmpdir 0)" >"$NET_TMP/start0.out" 2>&1 || { cat "$NET_TMP/start0.out"; fail "head"; }
export ORRERY_TOKEN
ORRERY_TOKEN=$(cat "$(tmpdir 0)"/session_latest/token)
for i in 1 2; do
  on "$i" "$ORRERY" start --address "$HEAD" --bind "$(addr "$i")" --node-name "n$i" --num-cpus 1 \
    --temp-dir "$(tmpdir "$i")" >"$NET_TMP/start$i.out" 2>&1 ||
    { cat "$NET_TMP/start$i.out"; fail "n$i did not join"; }
done
N1_PID=$(grep -o 'pid [0-9]*' "$NET_TMP/start1.out" | tail -1 | cut -d' ' -f2)

start_actor_driver n1
actor_on alive n1 || fail "the actor is not alive on n1: $(on 3 "$ORRERY" list actors --address "$HEAD")"

log "partial partition: n1 loses the head, keeps the driver"
cut_from 1 0
net_wait 10 node_dead n1 || fail "n1 was not declared dead within 10 s"
kill -0 "$N1_PID" 2>/dev/null || fail "n1 exited; the test needs it running, cut off from the head only"
# The driver learns of it by polling the head's node list (every 250 ms) and cuts its link to n1
# then; a call sent before that can still reach the old actor (the documented window).
net_wait 5 grep -q "was declared dead by the head" "$NET_TMP/actor.out" ||
  fail "the driver did not notice that the head declared n1 dead: $(cat "$NET_TMP/actor.out")"
log "n1 declared dead and the driver has cut its link; the actor's next call"
echo call >&7
second_call() { [ "$(grep -c '^got: \|^error: ' "$NET_TMP/actor.out")" -ge 2 ]; }
net_wait 30 second_call || fail "no answer to the second call: $(cat "$NET_TMP/actor.out")"
tail -1 "$NET_TMP/actor.out" | grep -q '^got: net got 1$' ||
  fail "split brain: the second call was answered by the old actor on n1 the head declared dead: $(cat "$NET_TMP/actor.out")"
net_wait 5 actor_on alive n2 || fail "the actor is not alive on n2: $(on 3 "$ORRERY" list actors --address "$HEAD")"
exec 7>&-
log "the cut heals: n1 hears it is dead and exits"
uncut_from 1
net_wait 10 bash -c "! kill -0 $N1_PID 2>/dev/null" || fail "n1 did not exit after the cut healed"
for i in 2 0; do on "$i" "$ORRERY" stop --temp-dir "$(tmpdir "$i")" >/dev/null || fail "stop $i"; done
on 1 "$ORRERY" stop --temp-dir "$(tmpdir 1)" >/dev/null 2>&1
for i in 0 1 2 3; do [ -z "$(host_pids "$i")" ] || fail "host $i still runs processes"; done
log "PASS"
