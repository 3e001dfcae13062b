#!/usr/bin/env bash
# The systemd units of live/deploy/systemd/: `systemd-analyze verify` must print nothing (it
# exits 0 on unknown keys and bad values, so any output fails), `systemd-analyze security
# --offline` must rate the head at most 2.0 and the node at most 4.0 (the node runs user code:
# see its comments), and every flag of ExecStart/ExecStop must be one `orrery start|stop`
# knows (verify checks that ExecStart's binary exists, so the units are checked with
# /usr/local/bin/orrery replaced by the built binary). Then the units' ExecStart lines run a
# head and a node that joins it, and their ExecStop lines end both with exit 0.
# Usage: systemd_test.sh ORRERY_BINARY SOURCE_DIR          exit 77 (skipped): no systemd-analyze
set -u
orrery=$(readlink -f "$1"); src="$2"
command -v systemd-analyze > /dev/null || { echo "SKIP: systemd-analyze is not installed (Debian package systemd)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
source "$src/tests/deploy/flags.sh"

for unit in orrery-head orrery-node; do
  f="$src/live/deploy/systemd/$unit.service"
  [ -f "$f" ] || fail "missing $f"
  sed "s|/usr/local/bin/orrery|$orrery|g" "$f" > "$tmp/$unit.service"
  out=$(systemd-analyze verify "$tmp/$unit.service" 2>&1)
  [ -z "$out" ] || fail "systemd-analyze verify $unit.service: $out"
  for key in Restart=on-failure "ExecStop=/usr/local/bin/orrery stop" NoNewPrivileges=yes \
             ProtectSystem=strict PrivateTmp=yes ReadWritePaths=/var/lib/orrery User=orrery; do
    grep -q "^$key" "$f" || fail "$unit.service lacks $key"
  done
  score=$(systemd-analyze security --offline=true --no-pager "$tmp/$unit.service" 2>&1 |
          sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "systemd-analyze security printed no exposure level for $unit"
  limit=2.0; [ "$unit" = orrery-node ] && limit=4.0
  awk -v s="$score" -v l="$limit" 'BEGIN {exit !(s <= l)}' || fail "$unit: exposure $score > $limit"
  # ExecStart / ExecStop command lines (continuations joined): their flags must exist.
  for key in ExecStart ExecStop; do
    line=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$f" | sed -n "s|^$key=/usr/local/bin/orrery ||p")
    [ -n "$line" ] || fail "$unit.service: no $key running /usr/local/bin/orrery"
    check_flags "$orrery" "$unit.service $key" $line || fail "$unit.service $key: unknown flag"
  done
  echo "ok: $unit.service verifies, exposure $score (limit $limit)"
done

# The units' own ExecStart/ExecStop lines, run here as systemd would run them, with
# orrery.env.example as the EnvironmentFile: ${VAR} is one word, $VAR splits on spaces, %d is
# the credentials directory (a copy of the token here). Rewritten only where this machine
# differs: the binary, 127.0.0.1 for the example addresses, free ports for the pinned ones,
# a temp root for /var/lib/orrery. Contract flags this build lacks are left out (see above).
while IFS= read -r l; do  # systemd's EnvironmentFile: VAR=value, the value up to the line end
  case "$l" in '#'*|'') continue ;; esac
  [[ "$l" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || fail "orrery.env.example: not VAR=value: $l"
  printf -v "${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"
done < "$src/live/deploy/systemd/orrery.env.example"
start_help=$("$orrery" start --help 2>&1)
mkdir -m 0700 "$tmp/cred"   # %d: the credentials (token, and the TLS files once the build has TLS)
python3 -c "import secrets; print(secrets.token_hex(32))" > "$tmp/cred/token"
tls=()
if grep -q -- "--tls-dir\b" <<< "$start_help"; then
  "$orrery" tls init "$tmp/tlsgen" > /dev/null 2>&1 || fail "orrery tls init"
  cp "$tmp/tlsgen/ca.crt" "$tmp/tlsgen/tls.crt" "$tmp/tlsgen/tls.key" "$tmp/cred/"
  tls=(--tls-dir "$tmp/cred")
fi
declare -A ports
pids=()
cleanup_units() { "$orrery" stop --temp-dir "$tmp/state-head" > /dev/null 2>&1; "$orrery" stop --temp-dir "$tmp/state-node" > /dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup_units EXIT
unit_words() {  # UNIT KEY: the command words, as systemd expands them, rewritten (array cmd)
  local unit=$1 key=$2 line w skip=0
  line=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$src/live/deploy/systemd/$unit.service" | sed -n "s|^$key=||p")
  cmd=()
  for w in $line; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$w" in
      '${'*'}') v=${w#\$\{}; v=${v%\}}; w=${!v} ;;                          # one word
      '$'[A-Z]*) v=${w#\$}; read -r -a split <<< "${!v}"; cmd+=("${split[@]}"); continue ;;
    esac
    case "$w" in
      /usr/local/bin/orrery) w="$orrery" ;;
      /var/lib/orrery) w="$tmp/state-${unit#orrery-}" ;;
      %d/token) w="$tmp/cred/token" ;;
      %d) w="$tmp/cred" ;;
      198.18.*:*) w="127.0.0.1:${ports[head:${w##*:}]}" ;;
      198.18.*|0.0.0.0) w=127.0.0.1 ;;
    esac
    prev=""; [ ${#cmd[@]} -gt 0 ] && prev=${cmd[${#cmd[@]}-1]}
    case "$prev" in
      --port|--dashboard-port|--head-metrics-port|--node-port|--metrics-port|--health-port)
        k="${unit#orrery-}:$w"; [ -n "${ports[$k]:-}" ] || ports[$k]=$(free_port); w=${ports[$k]} ;;
    esac
    if [[ "$w" == --* ]] && ! grep -q -- "$w\b" <<< "$start_help$("$orrery" stop --help 2>&1)"; then
      skip=1; continue  # a contract flag this build lacks, and its value
    fi
    cmd+=("$w")
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for unit in orrery-head orrery-node; do
  unit_words "$unit" ExecStart
  "${cmd[@]}" > "$tmp/$unit.out" 2> "$tmp/$unit.err" &
  pids+=($!)
  for _ in $(seq 200); do grep -q "Blocking until" "$tmp/$unit.out" 2> /dev/null && break; sleep 0.1; done
  grep -q "Blocking until" "$tmp/$unit.out" ||
    { cat "$tmp/$unit.out" "$tmp/$unit.err"; fail "$unit ExecStart did not come up: ${cmd[*]}"; }
done
ORRERY_TOKEN=$(cat "$tmp/cred/token") "$orrery" list nodes --format json \
  --address "127.0.0.1:${ports[head:6379]}" "${tls[@]}" > "$tmp/nodes" || fail "orrery list nodes on the units' cluster"
alive=$(python3 -c 'import json, sys; print(sum(n["state"] == "alive" for n in json.load(open(sys.argv[1]))))' "$tmp/nodes")
[ "$alive" = 2 ] || fail "expected the head's node and the node unit's alive, got $alive: $(cat "$tmp/nodes")"
echo "ok: the units' ExecStart lines run a head and a node that joins it"
for i in 1 0; do
  unit=$([ $i = 0 ] && echo orrery-head || echo orrery-node)
  unit_words "$unit" ExecStop
  "${cmd[@]}" > /dev/null 2>&1 || fail "$unit ExecStop failed: ${cmd[*]}"
  for _ in $(seq 200); do kill -0 "${pids[$i]}" 2> /dev/null || break; sleep 0.1; done
  kill -0 "${pids[$i]}" 2> /dev/null && fail "$unit: ExecStart outlived ExecStop"
  wait "${pids[$i]}"; rc=$?
  [ "$rc" = 0 ] || fail "$unit: ExecStart exited $rc after ExecStop, expected 0 (systemd would mark it failed)"
done
echo "ok: ExecStop ends both ExecStart processes with 0"
