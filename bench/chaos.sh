#!/usr/bin/env bash
# Chaos under load (issue 18.2): a C++ API workload (tests/chaos/chaos_driver: N tasks with
# retries, K actors with unlimited restarts and task retries) on a real local cluster (a head
# node plus W worker nodes, separate `orrery` daemons on 127.0.0.1) while a seeded loop SIGKILLs a
# random worker node daemon every PERIOD seconds and starts a replacement node (a new name: a
# node the head declared dead never comes back under its old identity, DESIGN section 11).
#
# Checks, each a count in the summary (the run fails unless all hold):
#   lost     calls whose result never came (or came wrong)            == 0
#   leaked   alive nodes whose available != total once idle (30 s)   == 0
#   orphans  processes of a killed node (its workers, found by their
#            ORRERY_NODE_ID) still alive 3 s after the run             == 0
#            (workers_on_killed_nodes: how many the same scan saw just before the kills)
#   stuck    `list tasks` records neither FINISHED, FAILED nor CANCELED  == 0
#   kills    SIGKILLs done while the workload ran                      >= KILLS (if given)
#   witness  with --head-every: a job printing numbered lines through the whole run (its driver
#            on the head node) ends SUCCEEDED with every line once, in order  == ok
# With --head-every H, every H-th chaos event SIGKILLs the head instead of a worker node and
# resumes it a second later (`orrery start --head --resume`): head_kills counts them (>= 1).
# and records retries (`orrery list tasks`: leases with attempt > 0) and actor restarts
# (`orrery list actors`: sum of num_restarts).
#
# usage: bench/chaos.sh ORRERY_BIN CHAOS_DRIVER [--tasks N] [--task-ms MS] [--actors K]
#          [--calls C] [--call-ms MS] [--workers W] [--period S] [--kills K] [--seed S] [--out DIR]
#          [--head-every H]
# Writes DIR/summary.json (and the driver's output, the final node/task/actor listings).
# Only the processes this script starts are ever signalled.
set -u
ORRERY=${1:?usage: chaos.sh ORRERY_BIN CHAOS_DRIVER [flags]}
DRIVER=${2:?usage: chaos.sh ORRERY_BIN CHAOS_DRIVER [flags]}
shift 2
TASKS=10000 TASK_MS=10 ACTORS=8 CALLS=200 CALL_MS=10 WORKERS=3 PERIOD=3 KILLS=0 SEED=1 OUT=""
HEAD_EVERY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) TASKS=$2 ;;
    --task-ms) TASK_MS=$2 ;;
    --actors) ACTORS=$2 ;;
    --calls) CALLS=$2 ;;
    --call-ms) CALL_MS=$2 ;;
    --workers) WORKERS=$2 ;;
    --period) PERIOD=$2 ;;
    --kills) KILLS=$2 ;;
    --seed) SEED=$2 ;;
    --out) OUT=$2 ;;
    --head-every) HEAD_EVERY=$2 ;;
    *) echo "chaos.sh: unknown flag '$1'" >&2; exit 2 ;;
  esac
  case "${2-}" in "") echo "chaos.sh: $1 needs a value" >&2; exit 2 ;; esac
  shift 2
done
for v in TASKS TASK_MS ACTORS CALLS CALL_MS WORKERS KILLS SEED HEAD_EVERY; do
  case "${!v}" in ''|*[!0-9]*) echo "chaos.sh: --${v,,}: expected a non-negative integer, got '${!v}'" | tr _ - >&2; exit 2 ;; esac
done
case "$PERIOD" in ''|*[!0-9.]*) echo "chaos.sh: --period: expected seconds, got '$PERIOD'" >&2; exit 2 ;; esac
[ -x "$ORRERY" ] || { echo "chaos.sh: $ORRERY is not an executable" >&2; exit 2; }
[ -x "$DRIVER" ] || { echo "chaos.sh: $DRIVER is not an executable" >&2; exit 2; }
command -v jq >/dev/null || { echo "chaos.sh: needs jq" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orrery_chaos_XXXXXX")
[ -n "$OUT" ] || OUT="$WORK/out"
mkdir -p "$OUT"
ROOT="$WORK/root"
TAG="cx$$"   # node names unique to this run (workers are found by ORRERY_NODE_ID)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
log() { echo "[chaos $(date +%T)] $*" >&2; }

DRIVER_PID=""
cleanup() {
  [ -n "$DRIVER_PID" ] && kill -9 "$DRIVER_PID" 2>/dev/null
  "$ORRERY" stop --temp-dir "$ROOT" >/dev/null 2>&1
  # Anything of ours still there (our sessions' pid files only).
  for f in "$ROOT"/session_*/pids/*.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  [ -n "${CHAOS_KEEP_ROOT:-}" ] || rm -rf "$WORK/root"
}
trap cleanup EXIT

o() { "$ORRERY" "$@" --temp-dir "$ROOT"; }
nodes_json() { o list nodes --format json 2>/dev/null || echo '[]'; }
# Pids of the processes (workers) started by node $1: they carry ORRERY_NODE_ID=$1.
procs_of_node() {
  grep -lzx "ORRERY_NODE_ID=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
}
pid_of_node() { nodes_json | jq -r --arg n "$1" '.[] | select(.node_id==$n) | .pid'; }

o start --head --port "$PORT" --node-name "$TAG-head" --num-cpus 2 --dashboard-port 0 \
  --health-check-period-ms 100 --health-check-failures 5 >/dev/null ||
  { echo "chaos.sh: the head did not start" >&2; exit 1; }
next=0
alive=()
add_worker() {
  local name="$TAG-w$next"
  next=$((next + 1))
  if o start --address "$ADDR" --node-name "$name" --num-cpus 2 >/dev/null; then
    alive+=("$name")
  else
    log "could not start $name"
  fi
}
for _ in $(seq "$WORKERS"); do add_worker; done
TOKEN=$(cat "$ROOT/session_latest/token")

# The witness job (with --head-every): numbered lines every 50 ms until told to stop.
STOPFILE="$WORK/witness.stop"
if [ "$HEAD_EVERY" -gt 0 ]; then
  "$ORRERY" job submit --temp-dir "$ROOT" --no-wait --submission-id witness -- \
    "i=0; while [ ! -e '$STOPFILE' ]; do i=\$((i+1)); echo \"tick \$i\"; sleep 0.05; done; echo \"ticks \$i\"" \
    >/dev/null || { echo "chaos.sh: the witness job was refused" >&2; exit 1; }
fi

RANDOM=$SEED
T0=$(date +%s.%N)
ORRERY_ADDRESS=$ADDR ORRERY_TOKEN=$TOKEN ORRERY_LOG_TO_DRIVER=0 "$DRIVER" --tasks "$TASKS" \
  --task-ms "$TASK_MS" --actors "$ACTORS" --calls "$CALLS" --call-ms "$CALL_MS" >"$OUT/driver.json" 2>"$OUT/driver.err" &
DRIVER_PID=$!
killed=()
kills=0
gone=0
victim_workers=0
head_kills=0
event=0
while kill -0 "$DRIVER_PID" 2>/dev/null; do
  # PERIOD +- 50 %, seeded.
  sleep "$(awk -v p="$PERIOD" -v r=$((RANDOM % 1000)) 'BEGIN { printf "%.3f", p * (0.5 + r / 1000) }')"
  kill -0 "$DRIVER_PID" 2>/dev/null || break
  event=$((event + 1))
  if [ "$HEAD_EVERY" -gt 0 ] && [ $((event % HEAD_EVERY)) -eq 0 ]; then
    hpid=$(cat "$ROOT/session_latest/pids/head.pid" 2>/dev/null)
    if [ -n "$hpid" ] && kill -9 "$hpid" 2>/dev/null; then
      while kill -0 "$hpid" 2>/dev/null; do sleep 0.01; done
      head_kills=$((head_kills + 1))
      log "head kill #$head_kills (pid $hpid)"
      sleep 1
      o start --head --resume >/dev/null 2>&1 || { log "the head did not resume"; break; }
    fi
    continue
  fi
  [ "${#alive[@]}" -gt 0 ] || break
  i=$((RANDOM % ${#alive[@]}))
  victim=${alive[$i]}
  pid=$(pid_of_node "$victim")
  if [ -z "$pid" ] || [ "$pid" = "0" ]; then log "no pid for $victim"; continue; fi
  # Its workers now, so the orphan check below is known to see them (victim_workers > 0).
  victim_workers=$((victim_workers + $(procs_of_node "$victim" | wc -l)))
  killed+=("$victim")
  if ! kill -9 "$pid" 2>/dev/null; then
    # Gone by itself: the head declared it dead (missed heartbeats on a loaded machine) and it
    # exited, as a node the head gave up on must. Replaced like a killed one; not a kill.
    gone=$((gone + 1))
    alive=("${alive[@]:0:$i}" "${alive[@]:$((i + 1))}")
    log "$victim (pid $pid) was already gone"
    add_worker
    continue
  fi
  kills=$((kills + 1))
  alive=("${alive[@]:0:$i}" "${alive[@]:$((i + 1))}")
  log "kill #$kills: $victim (pid $pid)"
  add_worker
done
wait "$DRIVER_PID"
DRIVER_RC=$?
DRIVER_PID=""
WALL=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
log "driver exited $DRIVER_RC after ${WALL}s, $kills kills"

# The witness job: every line once, in order, and SUCCEEDED.
witness=skipped
if [ "$HEAD_EVERY" -gt 0 ]; then
  touch "$STOPFILE"
  witness=not_ended
  for _ in $(seq 150); do
    st=$(o job status witness --format json 2>/dev/null | jq -r '.status' 2>/dev/null)
    [ "$st" = "SUCCEEDED" ] && { witness=ok; break; }
    case "$st" in FAILED|STOPPED) witness=$st; break ;; esac
    sleep 0.2
  done
  o job logs witness >"$OUT/witness.log" 2>/dev/null
  if [ "$witness" = ok ] && ! awk '/^tick /{ if ($2 != NR) bad=1; n=$2; next }
       /^ticks /{ if ($2 != n || NR != n + 1) bad=1; done=1; next } { bad=1 }
       END { exit (bad || !done) }' "$OUT/witness.log"; then
    witness=log_differs
  fi
  log "witness job: $witness ($(grep -c '^tick ' "$OUT/witness.log") lines)"
fi

# Leaks: every alive node idle (available == total) within 30 s.
leaked=-1
for _ in $(seq 150); do
  nodes_json >"$OUT/nodes.json"
  leaked=$(jq '[.[] | select((.state | ascii_downcase) == "alive") | select(.available != .total)] | length' "$OUT/nodes.json")
  [ "$leaked" = "0" ] && break
  sleep 0.2
done
# Orphans: a process still carrying a killed node's id 3 s after the last kill (a worker gets
# SIGKILL from PR_SET_PDEATHSIG the moment its node daemon dies).
sleep 3
orphans=0
: >"$OUT/orphans.txt"
for n in "${killed[@]}"; do
  for p in $(procs_of_node "$n"); do
    orphans=$((orphans + 1))
    echo "$p ($n): $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" >>"$OUT/orphans.txt"
  done
done
o list tasks --format json >"$OUT/tasks.json" 2>/dev/null || echo '[]' >"$OUT/tasks.json"
o list actors --format json >"$OUT/actors.json" 2>/dev/null || echo '[]' >"$OUT/actors.json"
retried=$(jq '[.[] | select(.attempt > 0)] | length' "$OUT/tasks.json")
# No lease record left running or pending once the driver is gone (a dead node's are FAILED).
stuck=$(jq '[.[] | select(.state != "FINISHED" and .state != "FAILED" and .state != "CANCELED")] | length' "$OUT/tasks.json")
if [ "${stuck:-0}" != 0 ]; then  # what they are, for a failed CI run
  jq -c '.[] | select(.state != "FINISHED" and .state != "FAILED" and .state != "CANCELED")' \
    "$OUT/tasks.json" | head -5 | sed 's/^/[chaos] stuck record: /' >&2
fi
restarts=$(jq --slurpfile d "$OUT/driver.json" \
  '[.[] | select(.actor_id as $a | ($d[0].actors // []) | index($a)) | .num_restarts] | add // 0' \
  "$OUT/actors.json" 2>/dev/null || echo -1)
lost=$(jq '.lost + .wrong' "$OUT/driver.json" 2>/dev/null || echo -1)
[ -n "$lost" ] || lost=-1

jq -n --argjson tasks "$TASKS" --argjson actors "$ACTORS" --argjson calls "$CALLS" \
  --argjson workers "$WORKERS" --arg period "$PERIOD" --argjson seed "$SEED" \
  --argjson kills "$kills" --argjson head_kills "$head_kills" --arg witness "$witness" --argjson gone "$gone" --argjson stuck "${stuck:-0}" --argjson vw "$victim_workers" --argjson retried "${retried:-0}" --argjson restarts "${restarts:-0}" \
  --argjson lost "$lost" --argjson leaked "$leaked" --argjson orphans "$orphans" \
  --argjson driver_rc "$DRIVER_RC" --arg wall "$WALL" --slurpfile d "$OUT/driver.json" \
  --arg command "bench/chaos.sh --tasks $TASKS --task-ms $TASK_MS --actors $ACTORS --calls $CALLS --call-ms $CALL_MS --workers $WORKERS --period $PERIOD --seed $SEED --head-every $HEAD_EVERY" \
  --arg machine "$(nproc) cores, $(uname -sr)" \
  '{tasks: $tasks, actor_calls: ($actors * $calls), actors: $actors, workers: $workers,
    period_s: ($period | tonumber), seed: $seed, nodes_killed: $kills, nodes_gone_by_themselves: $gone,
    head_kills: $head_kills, witness_job: $witness,
    workers_on_killed_nodes: $vw,
    task_leases_retried: $retried, actor_restarts: $restarts, lost: $lost, leaked: $leaked,
    orphans: $orphans, stuck_task_records: $stuck, driver_exit: $driver_rc, wall_s: ($wall | tonumber),
    driver_wall_s: ($d[0].wall_s // null), first_errors: ($d[0].first_errors // []),
    command: $command, machine: $machine}' >"$OUT/summary.json"
cat "$OUT/summary.json"
[ "$lost" = "0" ] && [ "$leaked" = "0" ] && [ "$orphans" = "0" ] && [ "$DRIVER_RC" = "0" ] &&
  [ "${stuck:-1}" = "0" ] && { [ "$witness" = ok ] || [ "$witness" = skipped ]; } &&
  { [ "$HEAD_EVERY" = 0 ] || [ "$head_kills" -ge 1 ]; } &&
  [ "$kills" -ge "$KILLS" ]
