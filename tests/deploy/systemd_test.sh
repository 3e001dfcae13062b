#!/usr/bin/env bash
# The systemd units of live/deploy/systemd/: `systemd-analyze verify` must print nothing (it
# exits 0 on unknown keys and bad values, so any output fails), `systemd-analyze security
# --offline` must rate the head at most 2.0 and the node at most 4.0 (the node runs user code:
# see its comments), and every flag of ExecStart/ExecStop must be one `orrery start|stop`
# knows. verify checks that ExecStart's binary exists, so the units are checked with
# /usr/local/bin/orrery replaced by the built binary.
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
