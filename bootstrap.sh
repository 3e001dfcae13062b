#!/usr/bin/env bash
# Installs every Debian 12 package Orrery needs (idempotent, non-interactive),
# then configures and builds into build/ with 2 jobs.
#   ./bootstrap.sh            install + build
#   ./bootstrap.sh --test     install + build + run the whole test suite (ctest)
#   ./bootstrap.sh --deps     install only
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libsimgrid-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-graph-dev libboost-program-options-dev libboost-dev
  prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev
  libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev  # runtime envs: SHA-256 (libcrypto)
)
# Only for --test: the metrics integration test starts the real Prometheus server; the
# runtime-env test builds a Python venv offline (python3 -m venv needs python3-venv); the
# libFuzzer targets (tests/fuzz/run.sh, run by CI) need clang >= 15 with its runtime (Debian
# 12's default clang 14 cannot compile libstdc++ 12's string_view comparisons). The deploy
# tests (tests/deploy/) check the systemd units with systemd-analyze (package systemd), the
# scrape configs with promtool (prometheus) and the manifests in a venv (see below). The
# multi-host tests (tests/net) build hosts with iproute2 (ip netns, tc) and talk HTTP with curl.
# The dashboard's browser tests (tests/dashboard) drive headless chromium through chromium-driver.
TEST_PKGS=(prometheus python3 python3-venv clang-16 libclang-rt-16-dev systemd iproute2 curl
           chromium chromium-driver)
[ "${1:-}" = "--test" ] && PKGS+=("${TEST_PKGS[@]}")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--deps" ] && exit 0

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j 2

if [ "${1:-}" = "--test" ]; then
  # The test venv: pinned PyPI packages of tests/deploy/requirements.txt (kubernetes-validate,
  # selenium for the dashboard's browser tests).
  # Made again when the pins change (the venv keeps a copy of the file it was made from).
  if ! cmp -s tests/deploy/requirements.txt .venv-test/requirements.txt; then
    rm -rf .venv-test
    /usr/bin/python3 -m venv .venv-test
    .venv-test/bin/pip install -q --disable-pip-version-check -r tests/deploy/requirements.txt
    cp tests/deploy/requirements.txt .venv-test/requirements.txt
  fi
  # Trace-replay tests read the public traces from here (see README, "Traces").
  export ORRERY_TRACE_DIR="${ORRERY_TRACE_DIR:-$(cd .. && pwd)/shared/traces}"
  ctest --test-dir build --output-on-failure -j 2
fi
