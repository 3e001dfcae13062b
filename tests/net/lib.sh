# tests/net/lib.sh: a multi-host network built from Linux network namespaces, for the tests in
# this directory (sourced, not run). Bash, because the tests drive the real `orrery` binary as a
# user on several machines would (`ip netns exec HOST orrery ...`); a gtest driver would only wrap
# the same commands in fork/setns calls.
#
#   net_up N        hosts h0..h(N-1): one network namespace each, eth0 = 198.18.0.(10+i)/24,
#                   linked by veth pairs to one Linux bridge that lives in its own namespace (the
#                   "switch"), so nothing is added to the machine's own network namespace.
#   on I CMD...     runs CMD on host I (its namespace); the host's address is $(addr I).
#   link_down I / link_up I      unplugs / replugs host I's cable at the switch (a partition).
#   netem I ARGS... tc qdisc netem on host I's eth0: what host I sends is delayed / lost (returns 1
#                   if the kernel lacks netem). On every host: each direction of a path once.
#   netem_user I DELAY_MS LOSS_PERCENT
#                   the same without the kernel's netem: host I's cable becomes two tap devices
#                   joined by netem_user.py, which delays and drops what host I sends; its counts
#                   ("sent dropped received write_errors" frames) are in $NET_TMP/netemI.stats.
#   cut_from I J / uncut_from I  (host I through netem_user) a partial partition: host I can no
#                   longer reach host J (nor J host I), every other path works.
#   skip MSG        exits 77 (ctest SKIP_RETURN_CODE) with the reason.
#
# Every name carries this run's id and the creating shell's pid (orrnet-<pid>-<id>-...), so parallel
# runs never clash, and namespaces left by a killed run (whose pid is gone) are removed by the next
# one (with their files, /tmp/orrnet-<pid>-<id>). Addresses come from the benchmarking range
# 198.18.0.0/15 only (DESIGN section 11); each run has its own bridge, so two runs may use the same
# addresses. An EXIT trap kills whatever still runs in the namespaces and deletes them (and the
# run's files), also when a check fails.
set -u

NET_PID=$$
NET_ID=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
NET_PREFIX="orrnet-${NET_PID}-${NET_ID}"
NET_HOSTS=0
NET_TMP=""
NET_FAILED=0
NET_BG_PIDS=()  # helpers running in the machine's own namespace (netem_user.py), killed at exit

skip() {
  echo "SKIP: $*"
  exit 77
}

fail() {
  echo "FAIL: $*" >&2
  NET_FAILED=1
  exit 1
}

log() { echo "[$(date +%H:%M:%S.%N | cut -c1-12)] $*"; }

ns() { echo "${NET_PREFIX}-h$1"; }
addr() { echo "198.18.0.$((10 + $1))"; }
on() {
  local i=$1
  shift
  ip netns exec "$(ns "$i")" "$@"
}

# Removes namespaces of earlier runs whose shell is gone (a run killed before its trap ran).
net_reap_leftovers() {
  local n pid
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^orrnet-' || true); do
    pid=$(echo "$n" | cut -d- -f2)
    # Gone, or a zombie nobody reaped yet (its trap never ran either).
    if [ -n "$pid" ] && { ! kill -0 "$pid" 2>/dev/null ||
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; }; then
      for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
      ip netns del "$n" 2>/dev/null || true
      rm -rf "/tmp/$(echo "$n" | cut -d- -f1-3)" # its files (the run's NET_TMP)
    fi
  done
}

net_cleanup() {
  local rc=$?
  local n p
  for p in "${NET_BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${NET_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NET_PREFIX}-" || true); do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NET_PREFIX}-" || true); do
    ip netns del "$n" 2>/dev/null || true
  done
  if [ -n "$NET_TMP" ] && [ -d "$NET_TMP" ]; then
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
      # Keep what explains a failure in the ctest log: the daemons' last lines.
      for f in "$NET_TMP"/h*/session_2*/logs/*.log; do
        [ -f "$f" ] || continue
        echo "---- ${f#"$NET_TMP"/} (last 15 lines)"
        tail -n 15 "$f"
      done
    fi
    rm -rf "$NET_TMP"
  fi
  exit "$rc"
}

# Checks that this machine lets us build the network; skips (77) with the reason otherwise.
net_require() {
  [ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (run as root, as CI does)"
  command -v ip >/dev/null || skip "needs iproute2's ip"
  local probe="${NET_PREFIX}-probe"
  if ! ip netns add "$probe" 2>/dev/null; then
    skip "cannot create a network namespace here (ip netns add failed: no CAP_SYS_ADMIN or no netns support)"
  fi
  if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null ||
    ! ip -n "$probe" link add b0 type bridge 2>/dev/null; then
    ip netns del "$probe"
    skip "cannot create veth pairs or a bridge in a network namespace (kernel without veth/bridge)"
  fi
  ip netns del "$probe"
}

net_up() {
  local n=$1 i sw h
  net_reap_leftovers
  net_require
  trap net_cleanup EXIT
  trap 'exit 130' INT TERM
  NET_TMP="/tmp/${NET_PREFIX}"
  mkdir -m 0700 "$NET_TMP"
  sw="${NET_PREFIX}-sw"
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for ((i = 0; i < n; i++)); do
    h=$(ns "$i")
    ip netns add "$h"
    ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$h"
    ip -n "$sw" link set "p$i" master br0 up
    ip -n "$h" link set lo up
    ip -n "$h" addr add "$(addr "$i")/24" dev eth0
    ip -n "$h" link set eth0 up
    mkdir -m 0700 "$NET_TMP/h$i"
  done
  NET_HOSTS=$n
  log "network up: $n hosts ${NET_PREFIX}-h0..h$((n - 1)) on $(addr 0)..$(addr $((n - 1)))"
}

# The session root of host I (each host has its own, as separate machines would).
tmpdir() { echo "$NET_TMP/h$1"; }

link_down() { ip -n "${NET_PREFIX}-sw" link set "p$1" down; }
link_up() { ip -n "${NET_PREFIX}-sw" link set "p$1" up; }

netem() {
  local i=$1
  shift
  tc -n "$(ns "$i")" qdisc add dev eth0 root netem "$@" 2>/dev/null
}

netem_user() {
  local i=$1 delay_ms=$2 loss=$3 h sw t
  h=$(ns "$i")
  sw="${NET_PREFIX}-sw"
  # Interface names: at most 15 characters, unique on the machine while they sit in its own
  # namespace (the run id keeps parallel runs apart).
  local th="ot${NET_ID}h$i" ts="ot${NET_ID}s$i"
  ip -n "$sw" link del "p$i" # the veth pair, both ends (eth0 in host I goes too)
  python3 "$(dirname "${BASH_SOURCE[0]}")/netem_user.py" --host-tap "$th" --switch-tap "$ts" \
    --delay-ms "$delay_ms" --loss-percent "$loss" --seed "$((i + 1))" \
    --ready "$NET_TMP/netem$i.ready" --parent "$NET_PID" --stats "$NET_TMP/netem$i.stats" \
    --block-file "$NET_TMP/netem$i.block" 2>"$NET_TMP/netem$i.log" &
  NET_BG_PIDS+=($!)
  for t in $(seq 50); do [ -f "$NET_TMP/netem$i.ready" ] && break; sleep 0.1; done
  [ -f "$NET_TMP/netem$i.ready" ] || { cat "$NET_TMP/netem$i.log"; return 1; }
  ip link set "$th" netns "$h" && ip -n "$h" link set "$th" name eth0 &&
    ip -n "$h" addr add "$(addr "$i")/24" dev eth0 && ip -n "$h" link set eth0 up &&
    ip link set "$ts" netns "$sw" && ip -n "$sw" link set "$ts" name "p$i" &&
    ip -n "$sw" link set "p$i" master br0 up
}

cut_from() { addr "$2" >"$NET_TMP/netem$1.block.tmp" && mv "$NET_TMP/netem$1.block.tmp" "$NET_TMP/netem$1.block"; }
uncut_from() { rm -f "$NET_TMP/netem$1.block"; }

# net_wait SECONDS CMD...: runs CMD every 0.2 s until it succeeds; 1 if it never did.
net_wait() {
  local until=$((SECONDS + $1))
  shift
  while ((SECONDS < until)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# start_actor_driver NODE: tests/net/actor_driver.cc ($ACTOR_DRIVER) on host 3 against $HEAD, its
# Counter placed on NODE; `echo call >&7` makes one call, answers go to $NET_TMP/actor.out. Waits
# for the first call's answer ("net got 1").
start_actor_driver() {
  mkfifo "$NET_TMP/actor.in"
  ip netns exec "$(ns 3)" env ORRERY_ADDRESS="$HEAD" "$ACTOR_DRIVER" "$1" <"$NET_TMP/actor.in" \
    >"$NET_TMP/actor.out" 2>&1 &
  exec 7>"$NET_TMP/actor.in"
  echo call >&7
  net_wait 20 grep -q "got: net got 1" "$NET_TMP/actor.out" || fail "actor: $(cat "$NET_TMP/actor.out")"
}

# node_dead NAME: the head ($HEAD, asked from host 3) lists node NAME dead.
node_dead() {
  on 3 "$ORRERY" list nodes --address "$HEAD" --format json | grep -A4 "\"$1\"" | grep -q '"dead"'
}

# actor_on STATE NODE: the head ($HEAD, asked from host 3 with $ORRERY) lists exactly one actor,
# in STATE on NODE.
actor_on() {
  on 3 "$ORRERY" list actors --address "$HEAD" --format json | python3 -c "
import json, sys
a = json.load(sys.stdin); a = a.get('actors', a) if isinstance(a, dict) else a
sys.exit(0 if len(a) == 1 and a[0]['state'].lower() == '$1' and a[0]['node_id'] == '$2' else 1)"
}

# Processes still running on host I (its namespace): none after `orrery stop`.
host_pids() { ip netns pids "$(ns "$1")" 2>/dev/null; }
