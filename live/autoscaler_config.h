// The live autoscaler's configuration file (`orrery start --head --autoscaler-config FILE.yaml`).
//
// The file uses the node-type schema of a scenario's `cluster.node_types` (sim/scenario.h,
// scenarios/README.md) plus the planner's cluster-wide options:
//
//   node_types:
//     - {name: cpu-2, resources: {CPU: 2, memory: 4GiB}, min_workers: 0, max_workers: 4}
//     - {name: gpu-1, resources: {CPU: 4, GPU: 1}, labels: {accelerator: T4}, max_workers: 1}
//   max_workers: 8          # cluster limit of autoscaled nodes       [unlimited]
//   idle_timeout_s: 60      # idle nodes beyond min_workers go after   [300]
//   upscaling_speed: 1.0    # pending launches per type <= max(5, speed * running) [1.0]
//   period_s: 1             # how often a planning round runs          [1]
//
// Every type is autoscaled, so max_workers is required on each; `count` (as in a scenario) is the
// number of nodes launched at start besides min_workers' (at most max_workers).
//
// Errors are InvalidArgument "FILE:LINE: FIELD: expected ..., got ..." (NotFound for a missing
// file); unknown fields are refused.
//
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>

#include "core/autoscaler/planner.h"
#include "core/status.h"
#include "sim/scenario.h"

namespace orrery::live {

struct LiveAutoscalerConfig {
  autoscaler::AutoscalerConfig planner;
  // Seconds between planning rounds on the head.
  double period_s = 1.0;
  // Nodes of each type launched when the autoscaler starts (a scenario's or the file's `count`).
  std::map<std::string, int64_t> initial;
  // Launched nodes of a type are named <type>-<n> from n = this on [0] (a scenario's fixed nodes
  // of the type hold the lower names).
  std::map<std::string, int64_t> first_index;
};

// Loads and validates `path` (see the file comment). The planner accepts the result.
StatusOr<LiveAutoscalerConfig> LoadAutoscalerConfig(const std::string& path);

// The autoscaler of a scenario (its managed node types and `autoscaler:` section). The scenario's
// initial nodes of a managed type (`count`) are not the autoscaler's: `live run --local` starts
// them as fixed nodes, and launched nodes are numbered after them.
// REQUIRES: scenario.autoscaler.enabled.
LiveAutoscalerConfig AutoscalerConfigOfScenario(const sim::Scenario& scenario);

}  // namespace orrery::live
