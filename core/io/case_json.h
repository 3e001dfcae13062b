// The what-if case files of `orrery explain` (DESIGN section 8), mapped onto core types.
//
// This is the one place where the explainer's JSON meets the core: it validates every field
// strictly (types, ranges, unknown keys, references between fields) and builds a ClusterView and
// core requests. Evaluation lives in explain.cc; core/ itself never sees JSON.
//
// Accepted input (keys in brackets are optional; defaults in parentheses):
//   {"kind": "schedule" | "placement_group" | "autoscale" | "env_cache",
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
//    -- kind "autoscale" (one planning round, core/autoscaler/planner.h; `nodes` is optional):
//    "node_types": {NAME: {"resources": RES, ["min_workers": int (0)],
//                          ["max_workers": int (no limit of its own)], ["labels": {str: str}]}},
//    ["max_workers": int (no limit)], ["upscaling_speed": 0..1e6 (1)],
//    ["idle_timeout_s": 0..1e9 (300)], ["now_s": 0..1e12 (0)],
//    nodes[] may add ["type": NAME (absent: not managed by the autoscaler, e.g. the head node)],
//      ["status": "pending"|"running"|"terminating" ("running")], ["idle_s": seconds idle so far
//      (running nodes only; absent: busy)], ["launch_time_s": 0..1e12 (0)]; a "draining" node
//      counts as terminating and a "dead" one is left out,
//    ["demands": [RES | {"resources": RES, "count": 1..1e9}]],
//    ["gangs": [{"bundles": [RES...], ["strategy": "PACK"|"SPREAD"|"STRICT_PACK"|
//                "STRICT_SPREAD" ("PACK")]}]]
//    -- kind "env_cache" (one node's runtime-env cache, core/envcache/env_cache.h):
//    "limit_bytes": BYTES (the limit of every kind) | {KIND: BYTES},
//    ["policy": "arbitrary"|"lru"|"gdsf" ("arbitrary")],
//    "ops": [OP...] where OP is one of
//      ["add", URI, BYTES, [KIND ("default")]]  install URI and use it (one reference); if URI is
//                                               cached already, a hit: one more reference (BYTES
//                                               and KIND must match: a URI is a content hash)
//      ["used", URI]                            one more reference to a cached URI (a hit)
//      ["unused", URI]                          drop one reference; at zero it may be evicted
//    Installs succeed at once. After every op, while a kind's total is above its limit, unused
//    entries are evicted in the policy's order; entries in use never are. BYTES <= 1e15.
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

#include "core/autoscaler/planner.h"
#include "core/io/json_input.h"
#include "core/cluster_view.h"
#include "core/envcache/env_cache.h"
#include "core/placement/bundle_policy.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery::io {

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

// kind "autoscale": one round of the autoscaler planner.
struct AutoscaleCase {
  autoscaler::AutoscalerConfig config;
  autoscaler::AutoscalerInput input;
};

// One operation of an env_cache case.
struct EnvCacheOp {
  enum class Kind : uint8_t { kAdd, kUsed, kUnused };
  Kind kind = Kind::kAdd;
  envcache::Uri uri;
  uint64_t bytes = 0;      // kAdd only
  std::string cache_kind;  // kAdd only: the env's kind ("default" unless given)
};

// kind "env_cache": one node's cache driven by `ops`, in order.
struct EnvCacheCase {
  envcache::EnvCacheOptions options;
  std::vector<EnvCacheOp> ops;
};

using ExplainCase = std::variant<ScheduleCase, PlacementCase, AutoscaleCase, EnvCacheCase>;

// The kinds `orrery explain` evaluates (all that DESIGN section 8 names).
inline constexpr const char* kSupportedCaseKinds = "schedule|placement_group|autoscale|env_cache";

// Validates `doc` and builds the case. InvalidArgument naming the JSON path (and line) of the
// first offending field. An env_cache case is also run once through a scratch cache, so an op
// that does not make sense at its point (using a URI that was evicted, dropping a reference that
// is not held) is reported here, at its path. O(size of the document + nodes log nodes + ops log
// ops).
StatusOr<ExplainCase> ParseExplainCase(const JsonDocument& doc);

// Carries out one env_cache op on `cache` (the op semantics above); `waiter` names the user that
// takes a reference (the explainer passes "ops[i]"). InvalidArgument, saying why, for an op that
// does not apply to the cache's current state; nothing is changed then.
StatusOr<envcache::CacheDecisions> ApplyEnvCacheOp(envcache::EnvCache& cache, const EnvCacheOp& op,
                                                   const std::string& waiter);

}  // namespace orrery::io
