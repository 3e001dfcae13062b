#!/usr/bin/env bash
# Runs one browser test file of tests/dashboard/ (unittest) in the test venv that
# `./bootstrap.sh --test` makes (selenium), with Debian's chromium + chromium-driver.
# Usage: run.sh TEST_FILE.py ORRERY_BINARY SOURCE_DIR [FIXTURE_BINARY]
#   venv: $ORRERY_TEST_VENV, else SOURCE_DIR/.venv-test
#   screenshots: $ORRERY_DASHBOARD_SCREENSHOTS, else ./dashboard-screenshots (the ctest dir);
#   ORRERY_DASHBOARD_SCREENSHOTS=results/dashboard refreshes the committed ones.
# Exit 77 (skipped, the reason printed) when chromium, chromedriver or the venv with selenium is
# missing; under CI (CI=true, where bootstrap.sh --test installs them) that is a failure instead.
set -u
here=$(cd "$(dirname "$0")" && pwd)
test_file="$1"; orrery=$(readlink -f "$2"); src=$(readlink -f "$3"); fixture="${4:-}"
venv="${ORRERY_TEST_VENV:-$src/.venv-test}"
skip() {
  [ "${CI:-}" = true ] && { echo "FAIL: $1 (bootstrap.sh --test installs it)"; exit 1; }
  echo "SKIP: $1"; exit 77
}
command -v chromium > /dev/null || command -v chromium-browser > /dev/null ||
  skip "no chromium (Debian package chromium)"
command -v chromedriver > /dev/null || [ -x /usr/lib/chromium/chromedriver ] ||
  skip "no chromedriver (Debian package chromium-driver)"
"$venv/bin/python" -c 'import selenium' 2> /dev/null ||
  skip "no test venv with selenium at $venv (./bootstrap.sh --test creates it)"
export ORRERY_BINARY="$orrery" ORRERY_SOURCE_DIR="$src"
export ORRERY_DASHBOARD_FIXTURE="${fixture:+$(readlink -f "$fixture")}"
export ORRERY_DASHBOARD_SCREENSHOTS="${ORRERY_DASHBOARD_SCREENSHOTS:-$PWD/dashboard-screenshots}"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/$test_file" -v
