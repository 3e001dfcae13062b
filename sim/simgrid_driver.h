// Runs a Scenario on SimGrid: one host per virtual node in a star network (one link per node with
// the scenario's bandwidth and latency), a control actor that feeds the Model its virtual time,
// and per-host pools of long-lived transfer actors that move object arguments as SimGrid Comms.
//
// SimGrid allows one simulation per process: RunOnSimGrid may be called once per process
// (FailedPrecondition otherwise). `orrery sim compare` runs each configuration in a child process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/results/run_record.h"
#include "core/status.h"
#include "sim/model.h"
#include "core/scenario/scenario.h"

namespace orrery::sim {

struct SimRunOptions {
  ModelOptions model;
  // Print a progress line to stderr about every 0.5 s of wall time (for TTYs).
  bool progress = false;
  // Keep the per-decision log (golden tests, debugging).
  bool decision_log = false;
  bool trace_leases = false;  // the record's lease_events (leases.csv)
};

struct SimRunResult {
  results::RunRecord record;
  std::vector<std::string> decision_log;
  uint64_t events = 0;
  std::vector<std::string> warnings;
};

StatusOr<SimRunResult> RunOnSimGrid(const Scenario& scenario, const SimRunOptions& options);

}  // namespace orrery::sim
