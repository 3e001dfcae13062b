#!/usr/bin/env bash
# Side by side on this machine, in one run: no-op task throughput and single-task round trip of
# Orrery (C++ client API on a local `orrery start --head`), Ray, Dask distributed, and a raw gRPC
# unary ping (the latency floor). Same CPU count for all (CPUS, default 2).
#
#   bench/live_vs_ray_dask.sh [BUILD_DIR]          (default: build; needs orrery and
#                                                   bench/live_api_bench built there)
#   N_TASKS=20000 N_LAT=2000 CPUS=2                 (environment overrides)
#
# Ray is pip-installed into bench/.venv-ray (gitignored) if missing; if that fails the Ray row
# says so and the rest still runs. Dask is Debian's python3-distributed under /usr/bin/python3.
# Writes results/live_bench.json and results/live_bench.md (the table, with ratios).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
N_TASKS=${N_TASKS:-20000}
N_LAT=${N_LAT:-2000}
CPUS=${CPUS:-2}
bench=$build/bench/live_api_bench
venv=$root/bench/.venv-ray
work=$(mktemp -d /tmp/orrery_bench_XXXXXX)
trap '"$build/orrery" stop --temp-dir "$work/root" >/dev/null 2>&1; rm -rf "$work"' EXIT

for f in "$build/orrery" "$bench"; do
  [[ -x $f ]] || { echo "missing $f: build the orrery and live_api_bench targets" >&2; exit 2; }
done
if pgrep -f 'ninja|cc1plus' >/dev/null; then
  echo "warning: a build is running; numbers will be noisy" >&2
fi

echo "== machine"
nproc; lscpu | grep 'Model name'; free -g | head -2

echo "== raw gRPC unary ping"
coproc PING { "$bench" ping-server; }
read -r port <&"${PING[0]}"
ping_json=$("$bench" ping "127.0.0.1:$port" "$N_LAT") || ping_json='{"error": "ping failed"}'
exec {PING[1]}>&-
wait "$PING_PID" 2>/dev/null
echo "$ping_json"

echo "== orrery"
oport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/orrery" start --head --port "$oport" --num-cpus "$CPUS" --temp-dir "$work/root" >/dev/null
export ORRERY_ADDRESS=127.0.0.1:$oport
ORRERY_TOKEN=$(cat "$work"/root/session_latest/token)
export ORRERY_TOKEN
orrery_tasks=$("$bench" tasks "$N_TASKS") || orrery_tasks='{"error": "orrery tasks failed"}'
orrery_lat=$("$bench" latency "$N_LAT") || orrery_lat='{"error": "orrery latency failed"}'
"$build/orrery" stop --temp-dir "$work/root" >/dev/null 2>&1
unset ORRERY_ADDRESS ORRERY_TOKEN
echo "$orrery_tasks"; echo "$orrery_lat"

echo "== ray"
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import ray' 2>/dev/null; then
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q ray; } >"$work/pip.log" 2>&1 ||
    echo "pip could not install Ray: $(tail -1 "$work/pip.log")"
fi
if "$venv/bin/python" -c 'import ray' 2>/dev/null; then
  ray_json=$("$venv/bin/python" "$root/bench/live_ray_dask.py" ray --cpus "$CPUS" \
             --tasks "$N_TASKS" --latency "$N_LAT" 2>"$work/ray.err") ||
    ray_json="{\"error\": \"ray run failed: $(tail -1 "$work/ray.err" | tr -d '"')\"}"
else
  ray_json='{"error": "Ray is not installed (pip install ray failed; see above)"}'
fi
echo "$ray_json"

echo "== dask"
dask_json=$(/usr/bin/python3 "$root/bench/live_ray_dask.py" dask --cpus "$CPUS" \
            --tasks "$N_TASKS" --latency "$N_LAT" 2>"$work/dask.err") ||
  dask_json="{\"error\": \"dask run failed: $(tail -1 "$work/dask.err" | tr -d '"')\"}"
echo "$dask_json"

mkdir -p "$root/results"
/usr/bin/python3 - "$root/results" <<PY
import json, subprocess, sys, datetime
out = sys.argv[1]
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
r = {
  "command": "bench/live_vs_ray_dask.sh (N_TASKS=$N_TASKS N_LAT=$N_LAT CPUS=$CPUS)",
  "date": datetime.date.today().isoformat(),
  "machine": {"nproc": int(sh("nproc")), "cpu": sh("lscpu | grep 'Model name'").split(":", 1)[-1].strip(),
              "mem_gib": sh("free -g | awk '/Mem:/ {print \$2}'")},
  "cpus": $CPUS,
  "grpc_ping": json.loads('''$ping_json'''),
  "orrery": {"throughput": json.loads('''$orrery_tasks'''), "latency": json.loads('''$orrery_lat''')},
  "ray": json.loads('''$ray_json'''),
  "dask": json.loads('''$dask_json'''),
}
def tps(x): return x.get("tasks_per_s")
o_tps, o_p50 = tps(r["orrery"]["throughput"]), r["orrery"]["latency"].get("p50_us")
ping_p50 = r["grpc_ping"].get("p50_us")
goals = {}
if o_tps and tps(r["ray"]): goals["orrery_vs_ray_tasks_per_s"] = round(o_tps / tps(r["ray"]), 2)
if o_tps and tps(r["dask"]): goals["orrery_vs_dask_tasks_per_s"] = round(o_tps / tps(r["dask"]), 2)
if o_p50 and ping_p50: goals["orrery_p50_vs_ping_p50"] = round(o_p50 / ping_p50, 2)
r["ratios"] = goals
r["goals"] = {"ahead_of_ray": goals.get("orrery_vs_ray_tasks_per_s", 0) > 1,
              "ten_x_dask": goals.get("orrery_vs_dask_tasks_per_s", 0) >= 10,
              "p50_within_3x_ping": 0 < goals.get("orrery_p50_vs_ping_p50", 99) <= 3}
json.dump(r, open(f"{out}/live_bench.json", "w"), indent=2)
def row(name, t, l):
    f = lambda v, fmt: (fmt % v) if isinstance(v, (int, float)) else "n/a"
    return f"| {name} | {f(t.get('tasks_per_s') if t else None, '%.0f')} | {f(l.get('p50_us'), '%.0f')} | {f(l.get('p99_us'), '%.0f')} |"
lines = ["| System | no-op tasks/s | round trip p50 (us) | p99 (us) |", "|---|---:|---:|---:|",
  row("Orrery (C++ API)", r["orrery"]["throughput"], r["orrery"]["latency"]),
  row("Ray " + r["ray"].get("version", "(" + r["ray"].get("error", "?") + ")"), r["ray"], r["ray"]),
  row("Dask distributed " + r["dask"].get("version", "(" + r["dask"].get("error", "?") + ")"), r["dask"], r["dask"]),
  row("raw gRPC unary ping (sync, sequential)", {"tasks_per_s": r["grpc_ping"].get("calls_per_s")}, r["grpc_ping"]),
  "", "Ratios: " + ", ".join(f"{k} = {v}" for k, v in goals.items()),
  "Goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in r["goals"].items())]
open(f"{out}/live_bench.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
