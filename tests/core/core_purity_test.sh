#!/usr/bin/env bash
# Fails if core/ (except its CLI front end, core/cli/) reaches for the world: clocks, sleeps,
# non-injected randomness, iostreams/stdio, threads, or a backend (SimGrid, gRPC, protobuf, Asio).
set -u
core="${1:?usage: core_purity_test.sh CORE_DIR}"
pattern='system_clock|steady_clock|high_resolution_clock|sleep_for|sleep_until|[^_[:alnum:]]rand\(|srand\(|random_device|std::cout|std::cerr|printf\(|fopen|ifstream|ofstream|<iostream>|<fstream>|<cstdio>|<stdio\.h>|<thread>|<chrono>|<random>|std::thread|simgrid|grpc|\.pb\.h|google/protobuf|boost/asio|<ctime>|time\(nullptr\)'
# Comment lines are skipped: a header may say *why* it avoids these.
hits=$(grep -rnE --include='*.h' --include='*.cc' "$pattern" "$core" | grep -v "^$core/cli/" |
       grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
if [ -n "$hits" ]; then
  echo "core/ must get clocks, randomness and I/O as arguments and must not include a backend:"
  echo "$hits"
  exit 1
fi
echo "core/ is pure: no clock, sleep, rand, stdio/iostream, threads or backend includes"
