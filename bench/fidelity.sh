#!/usr/bin/env bash
# The fidelity suite (issue 15 item 5): every scenario in scenarios/fidelity/ through
# `orrery compare --local --live-runs N --sim-runs M` (the simulator M times with timing seeds
# 1..M, live N times on a fresh loopback cluster each), collecting each verdict and per-class
# table into OUT_DIR:
#   OUT_DIR/<scenario>/{classes.csv,classes.svg,compare.csv,compare.svg,legs.csv,stdout.txt}
# (every run traced: legs.csv says where each class's queue delay goes, sim beside live)
#   OUT_DIR/verdicts.csv   scenario,pass,checks_ok,checks,verdict
#   OUT_DIR/machine.txt    where and when it ran
#   bench/fidelity.sh [build/orrery] [results/fidelity] [LIVE_RUNS (2)] [SET...]
# SET: extra `--set dotted.path=value` overrides for every scenario (e.g. owner.reuse_leases=true).
# Environment: SIM_RUNS=M simulator runs per scenario [40] (1: one run at the mean heartbeat
# phase, the suite before 2026-12-07); KEEP_RUNS=DIR keeps every run's result directory there.
# Exits 0 when every run completed (whatever the verdicts), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
given="$*"
bin="$(realpath "${1:-build/orrery}")"
out="${2:-results/fidelity}"
runs="${3:-2}"
sim_runs="${SIM_RUNS:-40}"
keep="${KEEP_RUNS:-}"
shift 3 2>/dev/null || shift $#
sets=()
for s in "$@"; do sets+=(--set "$s"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "command: SIM_RUNS=$sim_runs bench/fidelity.sh $given  (live runs: $runs, sim runs: $sim_runs)"
} > "$out/machine.txt"
echo "scenario,pass,checks_ok,checks,verdict" > "$out/verdicts.csv"
failed=0
for f in scenarios/fidelity/*.yaml; do
  name=$(basename "$f" .yaml)
  echo "== $name" >&2
  "$bin" compare "$f" --local --live-runs "$runs" --sim-runs "$sim_runs" --trace "${sets[@]}" \
      --out "$tmp/$name" \
      --temp-dir "$tmp/session" > "$tmp/$name.stdout" 2> "$tmp/$name.stderr"
  rc=$?
  mkdir -p "$out/$name"
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$tmp/$name" "$keep/"; fi
  cp "$tmp/$name.stdout" "$out/$name/stdout.txt"
  for x in classes.csv classes.svg compare.csv compare.svg legs.csv; do
    [ -f "$tmp/$name/$x" ] && cp "$tmp/$name/$x" "$out/$name/"
  done
  verdict=$(grep '^fidelity: ' "$tmp/$name.stdout" | head -1)
  if [ "$rc" -ne 0 ] || [ -z "$verdict" ]; then
    failed=1
    echo "$name,,,,run failed (exit $rc): $(tail -3 "$tmp/$name.stderr" | tr '\n,' '  ')" >> "$out/verdicts.csv"
    continue
  fi
  sed -n '/per class/,/^fidelity/p' "$tmp/$name.stdout" >&2
  pass=$([[ "$verdict" == "fidelity: PASS"* ]] && echo 1 || echo 0)
  ok=$(sed -E 's/.*\(([0-9]+)\/([0-9]+) checks.*/\1/' <<< "$verdict")
  all=$(sed -E 's/.*\(([0-9]+)\/([0-9]+) checks.*/\2/' <<< "$verdict")
  echo "$name,$pass,$ok,$all,\"${verdict//\"/\"\"}\"" >> "$out/verdicts.csv"
done
cat "$out/verdicts.csv"
exit $failed
