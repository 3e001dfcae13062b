#!/usr/bin/env bash
# Health and identity over a real (virtual) network (issue 17 item 4): /healthz and /readyz on the
# head's dashboard port and a node's --health-port, --node-ip advertised and validated, and clear
# errors for an address the machine does not own, a clashing node name and a wrong token.
# Usage: identity_test.sh ORRERY_BINARY [COUNTER_EXAMPLE (unused)]
set -u
ORRERY=$(realpath "$1")
. "$(dirname "$0")/lib.sh"

net_up 3
H=$(addr 0)
HEAD="$H:6379"

# expect_error HOST RC PATTERN CMD...: CMD on HOST exits RC and says PATTERN.
expect_error() {
  local host=$1 want=$2 pattern=$3 out rc
  shift 3
  out=$(on "$host" "$@" 2>&1)
  rc=$?
  [ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* -> $out"
  echo "$out" | grep -q -- "$pattern" || fail "expected '$pattern' from: $* -> $out"
  log "  refused as expected: $(echo "$out" | grep -- "$pattern" | head -1)"
}

log "--node-ip must be an address of this machine, reachable where the daemons listen"
expect_error 0 2 "--node-ip 198.18.0.99: this machine does not have that address" \
  "$ORRERY" start --head --bind 0.0.0.0 --node-ip 198.18.0.99 --temp-dir "$(tmpdir 0)"
expect_error 0 2 "--node-ip $(addr 1): this machine does not have that address" \
  "$ORRERY" start --head --bind 0.0.0.0 --node-ip "$(addr 1)" --temp-dir "$(tmpdir 0)"
expect_error 0 2 "--node-ip 127.0.0.1: the daemons listen on --bind $H only" \
  "$ORRERY" start --head --bind "$H" --node-ip 127.0.0.1 --temp-dir "$(tmpdir 0)"
expect_error 0 2 "--node-ip: expected an IPv4 or IPv6 address" \
  "$ORRERY" start --head --node-ip not-an-ip --temp-dir "$(tmpdir 0)"
expect_error 0 2 "--bind 198.18.0.77: this machine does not have that address" \
  "$ORRERY" start --head --bind 198.18.0.77 --temp-dir "$(tmpdir 0)"
[ -z "$(host_pids 0)" ] || fail "a refused start left processes on host 0"

log "head listens everywhere, advertises --node-ip"
on 0 "$ORRERY" start --head --bind 0.0.0.0 --node-ip "$H" --node-name head --num-cpus 1 \
  --health-check-period-ms 200 --health-check-failures 5 --temp-dir "$(tmpdir 0)" \
  >"$NET_TMP/start0.out" 2>&1 || { cat "$NET_TMP/start0.out"; fail "head did not start"; }
grep -q "Started the Orrery head at $HEAD" "$NET_TMP/start0.out" ||
  fail "head does not advertise --node-ip: $(cat "$NET_TMP/start0.out")"
grep -q "Started node head at $H:" "$NET_TMP/start0.out" ||
  fail "head's node does not advertise --node-ip: $(cat "$NET_TMP/start0.out")"
TOKEN=$(cat "$(tmpdir 0)"/session_latest/token)

log "head probes from host 2, without the token"
[ "$(on 2 curl -s "http://$H:8265/healthz")" = ok ] || fail "head /healthz"
[ "$(on 2 curl -s "http://$H:8265/readyz")" = ok ] || fail "head /readyz body"
[ "$(on 2 curl -s -o /dev/null -w '%{http_code}' "http://$H:8265/readyz")" = 200 ] || fail "head /readyz"
[ "$(on 2 curl -s -o /dev/null -w '%{http_code}' -X POST "http://$H:8265/readyz")" = 405 ] ||
  fail "POST /readyz: expected 405"
[ "$(on 2 curl -s -o /dev/null -w '%{http_code}' "http://$H:8265/api/jobs/")" = 401 ] ||
  fail "the jobs API still needs the token"

log "a wrong token and a clashing name are refused with clear errors"
expect_error 1 2 "the head refused the cluster token" env ORRERY_TOKEN=wrong \
  "$ORRERY" start --address "$HEAD" --bind "$(addr 1)" --temp-dir "$(tmpdir 1)"
on 1 env ORRERY_TOKEN="$TOKEN" "$ORRERY" start --address "$HEAD" --bind 0.0.0.0 \
  --node-ip "$(addr 1)" --node-name n1 --num-cpus 1 --health-port 8300 --temp-dir "$(tmpdir 1)" \
  >"$NET_TMP/start1.out" 2>&1 || { cat "$NET_TMP/start1.out"; fail "n1 did not join"; }
grep -q "Started node n1 at $(addr 1):" "$NET_TMP/start1.out" || fail "n1 address: $(cat "$NET_TMP/start1.out")"
grep -q "health: http://$(addr 1):8300/readyz" "$NET_TMP/start1.out" ||
  fail "start does not print the node's health endpoint: $(cat "$NET_TMP/start1.out")"
expect_error 2 2 "--node-name n1: an alive node of that name is already registered at $(addr 1):" \
  env ORRERY_TOKEN="$TOKEN" "$ORRERY" start --address "$HEAD" --bind "$(addr 2)" \
  --node-name n1 --temp-dir "$(tmpdir 2)"
expect_error 2 2 "--node-name head: an alive node of that name" env ORRERY_TOKEN="$TOKEN" \
  "$ORRERY" start --address "$HEAD" --bind "$(addr 2)" --node-name head --temp-dir "$(tmpdir 2)"
# The daemon itself (what a start racing another one with the same name meets at the head).
mkdir -p "$(tmpdir 2)/direct"
expect_error 2 1 "node name n1 is taken: an alive node is already registered as n1" \
  env ORRERY_TOKEN="$TOKEN" "$ORRERY" __node --address "$HEAD" --bind "$(addr 2)" \
  --node-name n1 --num-cpus 1 --session-dir "$(tmpdir 2)/direct"
expect_error 2 1 "cannot register with the head at $HEAD: .*token" \
  env ORRERY_TOKEN=wrong "$ORRERY" __node --address "$HEAD" --bind "$(addr 2)" \
  --node-name n2 --num-cpus 1 --session-dir "$(tmpdir 2)/direct"

log "node probes from host 2: ready; 404 elsewhere"
[ "$(on 2 curl -s "http://$(addr 1):8300/healthz")" = ok ] || fail "node /healthz"
[ "$(on 2 curl -s "http://$(addr 1):8300/readyz")" = ok ] || fail "node /readyz body"
[ "$(on 2 curl -s -o /dev/null -w '%{http_code}' "http://$(addr 1):8300/readyz")" = 200 ] ||
  fail "node /readyz"
[ "$(on 2 curl -s -o /dev/null -w '%{http_code}' "http://$(addr 1):8300/metrics")" = 404 ] ||
  fail "the health port serves only the probes"

log "a node whose head does not answer is alive but not ready, then ready once registered"
HEAD_PID=$(cat "$(tmpdir 0)"/session_latest/pids/head.pid)
kill -STOP "$HEAD_PID"
ip netns exec "$(ns 2)" env ORRERY_TOKEN="$TOKEN" "$ORRERY" __node --address "$HEAD" \
  --bind "$(addr 2)" --node-name n2 --num-cpus 1 --health-port 8300 \
  --session-dir "$(tmpdir 2)/direct" >"$NET_TMP/n2.log" 2>&1 &
N2_PID=$! # ip netns exec and env exec the daemon: this is its pid
net_wait 5 on 0 curl -sf -o /dev/null "http://$(addr 2):8300/healthz" || fail "n2 /healthz never answered"
out=$(on 0 curl -s -w '|%{http_code}' "http://$(addr 2):8300/readyz")
kill -CONT "$HEAD_PID"
[ "$out" = "not ready: registering with the head at $HEAD
|503" ] || fail "n2 /readyz while registering: $out"
net_wait 10 on 0 curl -sf -o /dev/null "http://$(addr 2):8300/readyz" ||
  fail "n2 never became ready: $(cat "$NET_TMP/n2.log")"

log "a node declared dead (stopped by SIGSTOP) stops when it resumes; the head stays ready"
kill -STOP "$N2_PID"
ready_dead() {
  on 0 "$ORRERY" list nodes --address "$HEAD" --format json | grep -A3 '"n2"' | grep -q dead
}
ORRERY_TOKEN="$TOKEN" net_wait 10 ready_dead || fail "n2 was not declared dead while stopped"
kill -CONT "$N2_PID"
net_wait 10 bash -c "! kill -0 $N2_PID" || fail "n2 did not stop after the head declared it dead"
grep -q "the head declared this node dead" "$NET_TMP/n2.log" || fail "n2 log: $(cat "$NET_TMP/n2.log")"
[ "$(on 1 curl -s -o /dev/null -w '%{http_code}' "http://$H:8265/readyz")" = 200 ] || fail "head /readyz"

log "orrery stop on every host"
for i in 1 0; do on "$i" "$ORRERY" stop --temp-dir "$(tmpdir "$i")" >/dev/null || fail "stop on host $i"; done
for i in 0 1 2; do [ -z "$(host_pids "$i")" ] || fail "host $i still runs processes"; done
log "PASS"
