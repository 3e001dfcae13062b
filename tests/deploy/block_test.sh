#!/usr/bin/env bash
# `orrery start --block` and `--token-file`, as the systemd units and Kubernetes pods of
# live/deploy/ run them: the head uses the operator's token, a node joins with it from a file,
# `orrery stop` (ExecStop, preStop) ends a blocked start with 0, SIGTERM (systemd, kubelet)
# too, and a daemon that dies by itself ends it with 1 (so Restart=on-failure / the pod's
# restart policy starts it again) without leaving a daemon behind.
# Usage: block_test.sh ORRERY_BINARY
set -u
orrery="$1"
tmp=$(mktemp -d)
root="$tmp/root"
blocked=()
cleanup() {
  "$orrery" stop --temp-dir "$root" > /dev/null 2>&1
  for p in "${blocked[@]}"; do kill "$p" 2> /dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.out "$tmp"/*.err; do [ -s "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
daemons_left() { pgrep -f -- "--session-dir $root/" | wc -l; }
# Waits up to 20 s for our background job $1 to exit; sets rc to its exit code.
wait_exit() {
  for _ in $(seq 200); do kill -0 "$1" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2> /dev/null; then rc=timeout; return; fi
  wait "$1"; rc=$?
}
wait_line() {  # FILE PATTERN: up to 20 s
  for _ in $(seq 200); do grep -q "$2" "$1" 2> /dev/null && return 0; sleep 0.1; done
  return 1
}

python3 -c "import secrets; print(secrets.token_hex(32))" > "$tmp/token" && chmod 600 "$tmp/token"
echo short > "$tmp/short"
printf 'has space in it 0123456789\n' > "$tmp/spaced"

# Bad token files: exit 2 naming the flag and the file, nothing started.
for bad in "$tmp/short" "$tmp/spaced" "$tmp/missing" "$tmp"; do
  out=$("$orrery" start --head --temp-dir "$root" --token-file "$bad" 2>&1); rc=$?
  [ "$rc" = 2 ] || fail "--token-file $bad: exit $rc, expected 2: $out"
  echo "$out" | grep -q -- "--token-file: $bad" || fail "--token-file $bad: message does not name flag and file: $out"
done
[ "$(daemons_left)" = 0 ] || fail "a bad --token-file started a daemon"
out=$("$orrery" start --head --temp-dir "$root" --node-port 70000 2>&1); rc=$?
[ "$rc" = 2 ] && echo "$out" | grep -q -- "--node-port: expected 0..65535" || fail "--node-port 70000: exit $rc: $out"
echo "ok: bad --token-file / --node-port refused"

# 1. The head takes the operator's token; a node joins from the token file on a pinned port;
#    `orrery stop` ends the blocked head start with 0.
port=$(free_port); nport=$(free_port)
"$orrery" start --head --port "$port" --dashboard-port 0 --temp-dir "$root" --num-cpus 1 \
  --token-file "$tmp/token" --block > "$tmp/head.out" 2> "$tmp/head.err" &
head_pid=$!; blocked+=("$head_pid")
wait_line "$tmp/head.out" "Blocking until" || fail "the blocked head start did not come up"
cmp -s <(cat "$root/session_latest/token") "$tmp/token" || fail "the head does not use --token-file's token"
root2="$tmp/root2"
env -u ORRERY_TOKEN "$orrery" start --address "127.0.0.1:$port" --temp-dir "$root2" --node-name joined \
  --node-port "$nport" --num-cpus 1 --token-file "$tmp/token" --block > "$tmp/node.out" 2> "$tmp/node.err" &
node_pid=$!; blocked+=("$node_pid")
wait_line "$tmp/node.out" "Blocking until" || fail "the node did not join with --token-file"
grep -q "Started node joined at 127.0.0.1:$nport" "$tmp/node.out" || fail "the node is not on --node-port $nport"
ORRERY_TOKEN=$(cat "$tmp/token") "$orrery" status --address "127.0.0.1:$port" | grep -q joined ||
  fail "status does not list the joined node"
echo "ok: head on the operator's token; a node joined with --token-file on --node-port"

"$orrery" stop --temp-dir "$root" > /dev/null
wait_exit "$head_pid"; [ "$rc" = 0 ] || fail "head start --block after orrery stop: exit $rc, expected 0"
grep -q "stopped by \`orrery stop\`" "$tmp/head.out" || fail "no 'stopped by orrery stop' line"
echo "ok: orrery stop -> blocked start exits 0"

# 2. SIGTERM (systemd stop, kubelet) to the blocked node start: it stops its daemon, exit 0.
kill -TERM "$node_pid"
wait_exit "$node_pid"; [ "$rc" = 0 ] || fail "node start --block after SIGTERM: exit $rc, expected 0"
[ "$(pgrep -f -- "--session-dir $root2/" | wc -l)" = 0 ] || fail "SIGTERM left the node daemon running"
echo "ok: SIGTERM -> daemons stopped, exit 0"

# 3. A daemon killed behind its back: the blocked start stops the rest and exits 1, naming it.
"$orrery" start --head --port 0 --dashboard-port 0 --temp-dir "$root" --num-cpus 1 --block \
  > "$tmp/crash.out" 2> "$tmp/crash.err" &
crash_pid=$!; blocked+=("$crash_pid")
wait_line "$tmp/crash.out" "Blocking until" || fail "the second blocked start did not come up"
node=$(cat "$root"/session_latest/pids/node-*.pid)
kill -KILL "$node"
wait_exit "$crash_pid"; [ "$rc" = 1 ] || fail "a killed node: blocked start exit $rc, expected 1"
grep -q "the node daemon (pid $node) was killed by signal 9" "$tmp/crash.err" || fail "the failure does not name the killed node"
[ "$(daemons_left)" = 0 ] || fail "the head outlived its killed node's blocked start"
echo "ok: a killed node -> the head stopped too, exit 1"

# 4. A node the head declares dead (stopped past the health-check timeout, like a partition)
#    stops by itself when it is heard again: its blocked start exits 1, so it is restarted.
port=$(free_port)
"$orrery" start --head --port "$port" --dashboard-port 0 --temp-dir "$root" --num-cpus 1 \
  --health-check-period-ms 100 --health-check-failures 5 > "$tmp/dead-head.out" 2>&1 ||
  fail "start a head with a short health check"
"$orrery" start --address "127.0.0.1:$port" --temp-dir "$root" --node-name cut --num-cpus 1 --block \
  > "$tmp/dead.out" 2> "$tmp/dead.err" &
dead_pid=$!; blocked+=("$dead_pid")
wait_line "$tmp/dead.out" "Blocking until" || fail "the node start did not come up"
node=$(grep -o 'Started node cut at [^ ]* with .* (pid [0-9]*)' "$tmp/dead.out" | sed 's/.*pid \([0-9]*\))/\1/')
[ -n "$node" ] || fail "no node pid in the start output"
kill -STOP "$node"; sleep 2.5; kill -CONT "$node"   # 5 x 100 ms without a heartbeat: dead
wait_exit "$dead_pid"; [ "$rc" = 1 ] || fail "a node declared dead: blocked start exit $rc, expected 1"
grep -q "the node daemon (pid $node) exited with code 0 without \`orrery stop\`" "$tmp/dead.err" ||
  fail "the failure does not say the node exited by itself"
# What the restart does: the same command joins again under the same name.
"$orrery" start --address "127.0.0.1:$port" --temp-dir "$root" --node-name cut --num-cpus 1 \
  > "$tmp/rejoin.out" 2>&1 || fail "the node did not rejoin after being declared dead: $(cat "$tmp/rejoin.out")"
"$orrery" list nodes --temp-dir "$root" --format json | python3 -c '
import json, sys
nodes = {n.get("node_id"): n for n in json.load(sys.stdin)}
state = str(nodes.get("cut", {}).get("state", "")).lower()
sys.exit(0 if "alive" in state else 1)' || fail "the rejoined node is not alive: $("$orrery" list nodes --temp-dir "$root")"
"$orrery" stop --temp-dir "$root" > /dev/null
echo "ok: a node declared dead stops; its blocked start exits 1; the same command rejoins it"

# 5. A restart after that failure (what Restart=on-failure does) comes up again on the root.
"$orrery" start --head --port 0 --dashboard-port 0 --temp-dir "$root" --num-cpus 1 --block \
  > "$tmp/again.out" 2> "$tmp/again.err" &
again_pid=$!; blocked+=("$again_pid")
wait_line "$tmp/again.out" "Blocking until" || fail "a restart after the failure did not come up"
"$orrery" stop --temp-dir "$root" > /dev/null
wait_exit "$again_pid"; [ "$rc" = 0 ] || fail "restarted start: exit $rc after stop"
echo "ok: restarted after the failure"
