// Reads the live autoscaler's configuration file (`orrery start --head --autoscaler-config
// FILE.yaml`) with the field-reader kit (yaml_fields.h). The file uses the node-type schema of a
// scenario's `cluster.node_types` (scenarios/README.md) plus the planner's cluster-wide options:
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
// file); unknown keys are refused. The result passes AutoscalerPlanner::Create.
//
// Thread safety: free functions; they read the file they are given.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/autoscaler/planner.h"
#include "core/cluster_view.h"
#include "core/io/yaml_fields.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery::io {

struct AutoscalerFile {
  autoscaler::AutoscalerConfig planner;
  double period_s = 1.0;                   // seconds between planning rounds
  std::map<std::string, int64_t> initial;  // nodes of a type launched at start (`count` > 0)
};

StatusOr<AutoscalerFile> LoadAutoscalerFile(const std::string& path);

// One entry of a `node_types` list: the part that a scenario's cluster.node_types and this file
// share (one reader for both). The rules for count, min_workers and max_workers differ (a
// scenario type is autoscaled only when it has max_workers; here every type is), so the caller
// reads those from the same MapView.
struct NodeTypeEntry {
  std::string name;
  Field name_field;  // where the name is written, for "duplicate name" errors
  ResourceSet total;
  Labels labels;
};
// Reads the required `name` and `resources` (a map of quantities that NodeResources::Create
// accepts as a node's total) and the optional `labels` of `m`. Errors name the field:
// "FILE:LINE: PATH.resources: expected a map of resource quantities, got ...".
Status ReadNodeTypeEntry(const FieldContext& c, const MapView& m, NodeTypeEntry* out);

}  // namespace orrery::io
