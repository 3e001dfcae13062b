// The scheduling-policy extension point: given a cluster view and a request, choose a node.
//
// A policy is a function of (view, request, rng) plus any state it *declares* (the spread
// cursor, an index it keeps in step with the view). It never reads a clock, does no I/O and never
// mutates the view: applying a decision is the caller's job.
//
// Outcome vocabulary (DESIGN section 2): a policy answers with a node, with "nothing now"
// (kUnavailable: feasible nodes exist but none qualifies under the request's constraints),
// "nothing ever" (kInfeasible: no alive node could hold the request) or "refuse" (kCanceled: e.g.
// hard affinity to a dead node). Turning that into Granted / Spillback / queueing is done by the
// lease state machine relative to the deciding node.
//
// Thread safety: a policy instance is used by one event loop.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/rng.h"

namespace orrery {

// How a task asks to be placed.
struct SchedulingStrategy {
  enum class Type : uint8_t { kDefault, kSpread, kNodeAffinity };
  Type type = Type::kDefault;
  // kNodeAffinity only.
  NodeId node;
  bool soft = false;
  bool spill_on_unavailable = false;
  bool fail_on_unavailable = false;

  static SchedulingStrategy Default() { return {}; }
  static SchedulingStrategy Spread() { return {.type = Type::kSpread}; }
  static SchedulingStrategy NodeAffinity(NodeId node, bool soft = false,
                                         bool spill_on_unavailable = false,
                                         bool fail_on_unavailable = false) {
    return {.type = Type::kNodeAffinity,
            .node = std::move(node),
            .soft = soft,
            .spill_on_unavailable = spill_on_unavailable,
            .fail_on_unavailable = fail_on_unavailable};
  }
};
const char* StrategyTypeName(SchedulingStrategy::Type t);  // "DEFAULT" | "SPREAD" | "NODE_AFFINITY"

// Options of the hybrid policy (Ray's defaults).
struct HybridOptions {
  // Nodes whose critical utilisation is below this score 0 (they are all equally good).
  double spread_threshold = 0.5;
  // Candidates k = max(top_k_absolute, floor(top_k_fraction * nodes in view)).
  int top_k_absolute = 1;
  double top_k_fraction = 0.2;
  // A request without GPU first tries nodes without GPUs (requiring availability).
  bool avoid_gpu_nodes = true;
};

// One decision's input. Cheap to build; references must outlive the call.
struct PolicyRequest {
  const ResourceRequest* resources = nullptr;
  // The node the hybrid policy prefers when it is as good as the best: the deciding (local) node
  // or the locality-chosen node. -1 = none.
  int preferred_slot = -1;
  // A node that must not be chosen: the local node under force_spillback. -1 = none.
  int excluded_slot = -1;
  // Only nodes where the request is available now.
  bool require_available = false;
  // Zero-resource actor (a random-policy candidate).
  bool zero_resource_actor = false;
};

struct PolicyResult {
  enum class Kind : uint8_t { kChosen, kUnavailable, kInfeasible, kCanceled };
  Kind kind = Kind::kInfeasible;
  int slot = -1;  // kChosen only
  // Why: one human sentence for `orrery explain` and logs.
  std::string reason;

  static PolicyResult Chosen(int slot, std::string reason = {}) {
    return {Kind::kChosen, slot, std::move(reason)};
  }
  static PolicyResult Unavailable(std::string reason) {
    return {Kind::kUnavailable, -1, std::move(reason)};
  }
  static PolicyResult Infeasible(std::string reason) {
    return {Kind::kInfeasible, -1, std::move(reason)};
  }
  static PolicyResult Canceled(std::string reason) {
    return {Kind::kCanceled, -1, std::move(reason)};
  }
  bool chosen() const { return kind == Kind::kChosen; }
};

// A node-choosing policy for DEFAULT-strategy requests. Implementations: hybrid, spread, random,
// and user policies registered in policy_registry.cc.
class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual std::string_view name() const = 0;
  // REQUIRES: req.resources != nullptr; every slot in `req` is valid for `view`.
  virtual PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) = 0;
};

// Shared predicates (DESIGN section 2).
// Alive, not draining, and the request fits the node's totals.
inline bool IsCandidate(const Node& n, const ResourceRequest& r) {
  return n.IsSchedulable() && n.resources.IsFeasible(r);
}
// True if some schedulable node in the view could ever hold the request. O(n).
bool AnyFeasible(const ClusterView& view, const ResourceRequest& r);

}  // namespace orrery
