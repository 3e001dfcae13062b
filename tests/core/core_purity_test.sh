#!/usr/bin/env bash
# Fails if core/ reaches for the world: clocks, sleeps, non-injected randomness, files, the
# environment, iostreams/stdio, threads, or a backend (SimGrid, gRPC, protobuf, Asio).
#
# Exactly these folders of core/ may touch files (and print), and nothing else does:
#   core/io   the file readers (YAML, JSON, CSV traces) and their field-reader kit: reading a
#             scenario, GPU scenario, autoscaler config or explain case is their whole job;
#   core/cli  the command-line front end (main, dispatch, explain): it reads arguments, calls the
#             readers and prints.
# Everything else (policies, lease manager, placement, autoscaler planner, env cache, the
# scenario model and its generator expansion, results rendering) gets its input as values.
set -u
core="${1:?usage: core_purity_test.sh CORE_DIR}"
may_touch_files=(io cli)
pattern='system_clock|steady_clock|high_resolution_clock|sleep_for|sleep_until|[^_[:alnum:]]rand\(|srand\(|random_device|std::cout|std::cerr|printf\(|fopen|ifstream|ofstream|<iostream>|<fstream>|<cstdio>|<stdio\.h>|<filesystem>|std::filesystem|getenv|<thread>|<chrono>|<random>|std::thread|simgrid|grpc|\.pb\.h|google/protobuf|boost/asio|<ctime>|time\(nullptr\)'
allowed=""
for d in "${may_touch_files[@]}"; do
  allowed="${allowed:+$allowed|}^$core/$d/"
  if [ ! -d "$core/$d" ]; then
    echo "core/$d is named as a folder that may touch files but does not exist"
    exit 1
  fi
done
# Comment lines are skipped: a header may say *why* it avoids these.
hits=$(grep -rnE --include='*.h' --include='*.cc' "$pattern" "$core" | grep -vE "$allowed" |
       grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
if [ -n "$hits" ]; then
  echo "core/ outside ${may_touch_files[*]/#/core/} must get clocks, randomness, files and I/O as"
  echo "arguments and must not include a backend:"
  echo "$hits"
  exit 1
fi
echo "core/ is pure outside ${may_touch_files[*]/#/core/}: no clock, sleep, rand, files," \
     "environment, stdio/iostream, threads or backend includes"
