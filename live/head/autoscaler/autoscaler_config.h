// The live autoscaler's configuration: from its file (`orrery start --head --autoscaler-config
// FILE.yaml`, format and errors in core/io/autoscaler_config.h) or from a scenario's autoscaler
// section (`live run --local`).
//
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>

#include "core/autoscaler/planner.h"
#include "core/scenario/scenario.h"
#include "core/status.h"

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

// Loads and validates `path` (core/io/autoscaler_config.h). The planner accepts the result.
StatusOr<LiveAutoscalerConfig> LoadAutoscalerConfig(const std::string& path);

// The autoscaler of a scenario (its managed node types and `autoscaler:` section). The scenario's
// initial nodes of a managed type (`count`) are not the autoscaler's: `live run --local` starts
// them as fixed nodes, and launched nodes are numbered after them.
// REQUIRES: scenario.autoscaler.enabled.
LiveAutoscalerConfig AutoscalerConfigOfScenario(const Scenario& scenario);

}  // namespace orrery::live
