#!/usr/bin/env bash
# The cost of mutual TLS (issue 17.3), plaintext and TLS side by side in one run on this machine:
# no-op task throughput and single-task round trip through the C++ client API on a local
# `orrery start --head` (bench/live_api_bench.cc, as in bench/live_vs_ray_dask.sh), and the raw
# gRPC unary ping. ROUNDS rounds, each runs plaintext then TLS (alternating, so drift in machine
# load hits both); the table gives the medians over rounds.
#
#   bench/live_tls_bench.sh [BUILD_DIR]        (default: build; needs orrery, bench/live_api_bench)
#   N_TASKS=10000 N_LAT=1000 CPUS=2 ROUNDS=5    (environment overrides)
#
# Writes results/tls/tls_bench.json (every round) and results/tls/tls_bench.md (medians).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
N_TASKS=${N_TASKS:-10000}
N_LAT=${N_LAT:-1000}
CPUS=${CPUS:-2}
ROUNDS=${ROUNDS:-5}
bench=$build/bench/live_api_bench
work=$(mktemp -d /tmp/orrery_tls_bench_XXXXXX)
trap 'ORRERY_TLS_DIR=$work/tls "$build/orrery" stop --temp-dir "$work/root" >/dev/null 2>&1; rm -rf "$work"' EXIT

for f in "$build/orrery" "$bench"; do
  [[ -x $f ]] || { echo "missing $f: build the orrery and live_api_bench targets" >&2; exit 2; }
done
if pgrep -f 'ninja|cc1plus' >/dev/null; then
  echo "warning: a build is running; numbers will be noisy" >&2
fi
unset ORRERY_TLS_DIR ORRERY_TLS_CERT ORRERY_TLS_KEY ORRERY_TLS_CA ORRERY_ADDRESS ORRERY_TOKEN
"$build/orrery" tls init "$work/tls" >/dev/null || exit 1

echo "== machine"
nproc; lscpu | grep 'Model name'

# One measurement: MODE plain|tls; prints one JSON object.
measure() {
  local mode=$1 tls_env=()
  [[ $mode == tls ]] && tls_env=(ORRERY_TLS_DIR="$work/tls")
  coproc PING { env "${tls_env[@]}" "$bench" ping-server; }
  local port ping oport tasks lat
  read -r port <&"${PING[0]}"
  ping=$(env "${tls_env[@]}" "$bench" ping "127.0.0.1:$port" "$N_LAT") || ping='{"error": "ping failed"}'
  exec {PING[1]}>&-
  wait "$PING_PID" 2>/dev/null
  oport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env "${tls_env[@]}" "$build/orrery" start --head --port "$oport" --num-cpus "$CPUS" \
    --dashboard-port 0 --temp-dir "$work/root" >/dev/null || { echo '{"error": "start failed"}'; return; }
  export ORRERY_ADDRESS=127.0.0.1:$oport
  ORRERY_TOKEN=$(cat "$work"/root/session_latest/token)
  export ORRERY_TOKEN
  tasks=$(env "${tls_env[@]}" "$bench" tasks "$N_TASKS") || tasks='{"error": "tasks failed"}'
  lat=$(env "${tls_env[@]}" "$bench" latency "$N_LAT") || lat='{"error": "latency failed"}'
  env "${tls_env[@]}" "$build/orrery" stop --temp-dir "$work/root" >/dev/null 2>&1
  unset ORRERY_ADDRESS ORRERY_TOKEN
  echo "{\"mode\": \"$mode\", \"ping\": $ping, \"tasks\": $tasks, \"latency\": $lat}"
}

rounds=()
for ((i = 1; i <= ROUNDS; ++i)); do
  for mode in plain tls; do
    echo "== round $i: $mode"
    r=$(measure "$mode")
    echo "$r"
    rounds+=("$r")
  done
done

mkdir -p "$root/results/tls"
printf '%s\n' "${rounds[@]}" >"$work/rounds.jsonl"
/usr/bin/python3 - "$root/results/tls" "$work/rounds.jsonl" <<PY
import json, statistics, subprocess, sys, datetime
out = sys.argv[1]
rounds = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
def med(mode, part, key):
    v = [r[part][key] for r in rounds if r["mode"] == mode and key in r[part]]
    return statistics.median(v) if v else None
m = {mode: {"tasks_per_s": med(mode, "tasks", "tasks_per_s"),
            "p50_us": med(mode, "latency", "p50_us"), "p99_us": med(mode, "latency", "p99_us"),
            "ping_calls_per_s": med(mode, "ping", "calls_per_s"),
            "ping_p50_us": med(mode, "ping", "p50_us")} for mode in ("plain", "tls")}
def rel(k):
    a, b = m["plain"][k], m["tls"][k]
    return round(100.0 * (b - a) / a, 1) if a and b else None
r = {"command": "bench/live_tls_bench.sh (N_TASKS=$N_TASKS N_LAT=$N_LAT CPUS=$CPUS ROUNDS=$ROUNDS)",
     "date": datetime.date.today().isoformat(),
     "machine": {"nproc": int(sh("nproc")), "cpu": sh("lscpu | grep 'Model name'").split(":", 1)[-1].strip()},
     "medians": m, "tls_change_percent": {k: rel(k) for k in m["plain"]}, "rounds": rounds}
json.dump(r, open(f"{out}/tls_bench.json", "w"), indent=2)
f = lambda v, fmt="%.0f": (fmt % v) if isinstance(v, (int, float)) else "n/a"
lines = [f"Medians of {len([x for x in rounds if x['mode']=='plain'])} rounds per mode, plaintext and TLS alternating in one run.", "",
  "| | no-op tasks/s | task round trip p50 (us) | p99 (us) | gRPC ping calls/s | ping p50 (us) |",
  "|---|---:|---:|---:|---:|---:|"]
for mode, name in (("plain", "plaintext"), ("tls", "mutual TLS")):
    x = m[mode]
    lines.append(f"| {name} | {f(x['tasks_per_s'])} | {f(x['p50_us'])} | {f(x['p99_us'])} | {f(x['ping_calls_per_s'])} | {f(x['ping_p50_us'])} |")
c = r["tls_change_percent"]
lines.append(f"| TLS change | {f(c['tasks_per_s'], '%+.1f')} % | {f(c['p50_us'], '%+.1f')} % | {f(c['p99_us'], '%+.1f')} % | {f(c['ping_calls_per_s'], '%+.1f')} % | {f(c['ping_p50_us'], '%+.1f')} % |")
open(f"{out}/tls_bench.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
