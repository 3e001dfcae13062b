// The what-if case files of `orrery explain` (DESIGN section 8), mapped onto core types.
//
// This is the one place where the explainer's JSON meets the core: it validates every field
// strictly (types, ranges, unknown keys, references between fields) and builds a ClusterView and
// core requests. Evaluation lives in explain.cc; core/ itself never sees JSON.
//
// Accepted input (keys in brackets are optional; defaults in parentheses):
//   {"kind": "schedule" | "placement_group",
//    "nodes": [{"id": ID, "total": RES, ["available": RES (= total)], ["devices": {"GPU": [q...]}],
//               ["labels": {str: str}], ["state": "alive"|"draining"|"dead" ("alive")]}],
//    -- kind "schedule":
//    "local": ID,
//    ["options": {["policy": NAME ("hybrid")], ["spread_threshold": 0..1 (0.5)],
//                 ["top_k_absolute": int >= 1 (1)], ["top_k_fraction": 0..1 (0.2)],
//                 ["avoid_gpu_nodes": bool (true)], ["force_spillback": bool (false)],
//                 ["require_available": bool (false)], ["seed": uint64 (0)]}],
//    "requests": [{"resources": RES,
//                  ["strategy": {"type": "DEFAULT"|"SPREAD"|"NODE_AFFINITY", -- NODE_AFFINITY only:
//                                "node": ID, ["soft"], ["spill_on_unavailable"],
//                                ["fail_on_unavailable"]: bool (false)}],
//                  ["preferred": ID], ["args": [{"bytes": uint64, "nodes": [ID...]}]],
//                  ["actor": bool (false)], ["force_spillback": bool (options)],
//                  ["require_available": bool (options)]}]
//    -- kind "placement_group":
//    "bundles": [RES...], ["strategy": "PACK"|"SPREAD"|"STRICT_PACK"|"STRICT_SPREAD" ("PACK")],
//    ["soft_target": ID]  (STRICT_PACK only)}
// RES is {name: quantity}: finite numbers in [0, 1e14], rounded to 4 decimals (a non-zero value
// that rounds to 0 is rejected); GPU totals are whole; a GPU request is <= 1 or whole; a bundle
// requests at least one resource. `available` lists what is free now: a name it leaves out has
// nothing free, a name it lists must be in `total` and not above it.
// `devices` (an extension) gives per-device availability of GPU, one entry in [0, 1] per device;
// without it the aggregate is spread over devices from the lowest id. Every node reference must
// name a node in `nodes`, except an affinity target, which may name a node that left the view.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/cli/json_input.h"
#include "core/cluster_view.h"
#include "core/placement/bundle_policy.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery::cli {

// kind "schedule": requests decided in order by one Scheduler against one view.
struct ScheduleCase {
  ClusterView view;
  NodeId local;
  SchedulerOptions scheduler;
  uint64_t seed = 0;
  // force_spillback / require_available already resolved (per-request value, else options).
  std::vector<SchedulingRequest> requests;
};

// kind "placement_group": one group placed all-or-nothing.
struct PlacementCase {
  ClusterView view;
  std::vector<ResourceRequest> bundles;
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::optional<NodeId> soft_target;
};

using ExplainCase = std::variant<ScheduleCase, PlacementCase>;

// The kinds `orrery explain` evaluates today (DESIGN also names autoscale and env_cache).
inline constexpr const char* kSupportedCaseKinds = "schedule|placement_group";

// Validates `doc` and builds the case. InvalidArgument naming the JSON path (and line) of the
// first offending field; Unimplemented, naming `kind`, for a kind DESIGN lists but Orrery does not
// explain yet. O(size of the document + nodes log nodes).
StatusOr<ExplainCase> ParseExplainCase(const JsonDocument& doc);

}  // namespace orrery::cli
