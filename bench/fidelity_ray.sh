#!/usr/bin/env bash
# The fidelity suite against real Ray (issue 15 "Done when"): every scenario of
# scenarios/fidelity/ (or the ones named) is expanded (`orrery sim expand`), replayed on real Ray
# RAY_RUNS times (bench/ray_replay.py: a local multi-node Ray cluster, one raylet per scenario
# node, warm workers), simulated SIM_RUNS times and run once on a live Orrery cluster; then
# `orrery compare --bars ray` judges the simulator and Orrery live against the mean of the Ray
# runs per class (25 % or 0.2 s, widened to 1.5x Ray's own spread, classes ranked the same way).
#   bench/fidelity_ray.sh [build/orrery] [results/fidelity/ray] [RAY_RUNS (2)] [PYTHON] [NAME...]
# PYTHON: an interpreter with ray installed (default: .venv-ray/bin/python; create it with
#   python3 -m venv .venv-ray && .venv-ray/bin/pip install ray==2.60.0).
# SIM_RUNS=M: the simulator runs M times with timing seeds 1..M and its mean is judged [40]
# (1: one run at the mean phases).
# REUSE_RAY=1: keep Ray runs already in OUT/<scenario>/ray-N (judge a new simulator or live run
# against the same Ray runs). Writes OUT/<scenario>/{sim_vs_ray.txt,live_vs_ray.txt,classes-*.csv,ray-N/tasks.csv,...},
# OUT/verdicts.csv and OUT/machine.txt. Exits 0 when every run completed (whatever the verdicts).
set -uo pipefail
cd "$(dirname "$0")/.."
given="$*"
bin="$(realpath "${1:-build/orrery}")"
out="${2:-results/fidelity/ray}"
runs="${3:-2}"
sim_runs="${SIM_RUNS:-40}"
py="${4:-.venv-ray/bin/python}"
shift 4 2>/dev/null || shift $#
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in scenarios/fidelity/*.yaml; do names+=("$(basename "$f" .yaml)"); done
fi
if ! "$py" -c 'import ray' 2>/dev/null; then
  echo "fidelity_ray.sh: $py cannot import ray (see the header of this script)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "ray: $("$py" -c 'import ray; print(ray.__version__)')"
  echo "command: SIM_RUNS=$sim_runs bench/fidelity_ray.sh $given  (ray runs: $runs, warm workers, sim runs: $sim_runs)"
} > "$out/machine.txt"
echo "scenario,candidate,pass,checks_ok,checks,verdict" > "$out/verdicts.csv"
failed=0
for name in "${names[@]}"; do
  f="scenarios/fidelity/$name.yaml"
  echo "== $name" >&2
  d="$out/$name"
  mkdir -p "$d"
  "$bin" sim expand "$f" --out "$tmp/$name.json" || { failed=1; continue; }
  sims=()
  sim_ok=1
  for k in $(seq 1 "$sim_runs"); do
    seed=(); [ "$sim_runs" -gt 1 ] && seed=(--timing-seed "$k")
    "$bin" sim run "$f" "${seed[@]}" --no-progress --out "$tmp/$name-sim-$k" > /dev/null || sim_ok=0
    sims+=(--sim-results "$tmp/$name-sim-$k")
  done
  [ $sim_ok = 1 ] || { failed=1; continue; }
  "$bin" live run "$f" --local --out "$tmp/$name-live" --temp-dir "$tmp/session" \
      > /dev/null 2> "$tmp/$name-live.err" || { failed=1; tail -3 "$tmp/$name-live.err" >&2; continue; }
  refs=()
  for k in $(seq 1 "$runs"); do
    if [ "${REUSE_RAY:-0}" = 1 ] && [ -f "$d/ray-$k/tasks.csv" ]; then
      refs+=(--live-results "$d/ray-$k")
      continue
    fi
    "$py" bench/ray_replay.py "$tmp/$name.json" "$d/ray-$k" --warmup 2> "$tmp/$name-ray-$k.err"
    if [ $? -ne 0 ] || [ ! -f "$d/ray-$k/tasks.csv" ]; then
      failed=1
      tail -5 "$tmp/$name-ray-$k.err" >&2
      continue
    fi
    refs+=(--live-results "$d/ray-$k")
  done
  [ ${#refs[@]} -eq 0 ] && continue
  for cand in sim live; do
    if [ $cand = sim ]; then cands=("${sims[@]}"); else cands=(--sim-results "$tmp/$name-live"); fi
    "$bin" compare "${cands[@]}" "${refs[@]}" --bars ray \
        --out "$tmp/$name-$cand-cmp" > "$d/${cand}_vs_ray.txt" 2>&1
    cp "$tmp/$name-$cand-cmp/classes.csv" "$d/classes-$cand-vs-ray.csv" 2>/dev/null
    cp "$tmp/$name-$cand-cmp/classes.svg" "$d/classes-$cand-vs-ray.svg" 2>/dev/null
    verdict=$(grep '^fidelity: ' "$d/${cand}_vs_ray.txt" | head -1)
    sed -n '/per class/,/^fidelity/p' "$d/${cand}_vs_ray.txt" >&2
    pass=$([[ "$verdict" == "fidelity: PASS"* ]] && echo 1 || echo 0)
    ok=$(sed -E 's/.*\(([0-9]+)\/([0-9]+) checks.*/\1/' <<< "$verdict")
    all=$(sed -E 's/.*\(([0-9]+)\/([0-9]+) checks.*/\2/' <<< "$verdict")
    echo "$name,$cand,$pass,$ok,$all,\"${verdict//\"/\"\"}\"" >> "$out/verdicts.csv"
  done
done
cat "$out/verdicts.csv"
exit $failed
