#!/usr/bin/env bash
# The Prometheus scrape configs of live/deploy/ pass `promtool check config` (Debian package
# prometheus, installed by bootstrap.sh --test). promtool exits 0 with warnings for missing
# file_sd files (they exist only on a running head), so only FAILED output fails.
# Usage: prometheus_test.sh SOURCE_DIR          exit 77 (skipped): no promtool
set -u
src="$1"
command -v promtool > /dev/null || { echo "SKIP: promtool is not installed (Debian package prometheus)"; exit 77; }
n=0
for f in "$src/live/deploy/prometheus/prometheus.yml" "$src/live/deploy/k8s/monitoring/prometheus.yml"; do
  [ -f "$f" ] || { echo "FAIL: missing $f"; exit 1; }
  out=$(promtool check config "$f" 2>&1) || { echo "FAIL: promtool check config $f:"; echo "$out"; exit 1; }
  echo "$out" | grep -q SUCCESS || { echo "FAIL: no SUCCESS from promtool for $f: $out"; exit 1; }
  n=$((n + 1))
done
echo "ok: $n scrape configs pass promtool check config"
