// The scheduler: turns a task's strategy into one policy call and classifies the answer relative
// to the deciding (local) node.
//
// Dispatch (DESIGN section 3):
//  - NODE_AFFINITY: target schedulable and feasible -> target (it waits there if busy), unless the
//    target is busy and spill_on_unavailable (fall through) or fail_on_unavailable (canceled).
//    Fall-through: soft -> the default policy; hard -> canceled as unschedulable.
//  - SPREAD: the spread policy (its cursor lives in this Scheduler).
//  - DEFAULT: a zero-resource actor -> random; otherwise the configured default policy (hybrid
//    unless the user picked another) with the preferred node = the explicit preferred node, else
//    the locality-chosen node (most argument bytes), else the local node.
//
// Thread safety: one event loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/scheduling/policy.h"
#include "core/scheduling/policy_registry.h"
#include "core/scheduling/random_policy.h"
#include "core/scheduling/spread_policy.h"

namespace orrery {

struct SchedulerOptions {
  // Policy for DEFAULT-strategy requests; a name in the PolicyRegistry.
  std::string policy = "hybrid";
  HybridOptions hybrid;
  // Fair granting between scheduling classes at each node (Ray's local lease manager): while the
  // CPU asked for by a node's queued requests exceeds its CPUs, a class holding more granted
  // leases there than the average per queued CPU class waits, so a rare class is not starved by
  // a busy one. See core/lease/lease_manager.h.
  bool fair_granting = true;
  // Where a request waits when no node has room for it now (Ray's raylet: the best feasible node
  // by the policy, GetBestSchedulableNode). true: a request whose best node is another, busy one
  // is sent there on its first decision and waits there (a spilled request that finds its target
  // busy waits there too, unless another node has room in the target's view: then it is
  // rejected); false: it waits at the node that decided until some node has room.
  // See core/lease/lease_manager.h.
  bool wait_at_best_node = true;
};

// An object argument of a task: its size and the nodes holding a copy.
struct ObjectArg {
  uint64_t bytes = 0;
  std::vector<NodeId> nodes;
};

// Data locality: the node holding the most argument bytes; ties go to the node that reached the
// maximum first (arguments in order, locations in order). nullopt if no argument has a location
// or all sizes are zero. O(total locations).
std::optional<NodeId> ChooseLocalityNode(const std::vector<ObjectArg>& args);

// What a task asks for.
struct SchedulingRequest {
  ResourceRequest resources;
  SchedulingStrategy strategy;
  // Explicit preferred node (e.g. chosen by the submitter's locality logic).
  std::optional<NodeId> preferred;
  std::vector<ObjectArg> args;
  bool actor_creation = false;
  bool force_spillback = false;
  bool require_available = false;
};

// A decision relative to the deciding node.
struct Decision {
  enum class Outcome : uint8_t {
    kGranted,        // the local node (may have to wait there if not available now)
    kSpillback,      // another node
    kInfeasible,     // no alive node could ever hold it: wait for the autoscaler
    kUnschedulable,  // feasible somewhere, but no node qualifies now (require_available)
    kCanceled,       // refused for good (hard affinity to a dead/infeasible node, ...)
  };
  Outcome outcome = Outcome::kInfeasible;
  int slot = -1;                // chosen node (granted / spillback)
  bool available = false;       // the request is available on the chosen node now
  int preferred_slot = -1;      // the preferred node used, if any
  std::string policy;           // which policy decided
  std::string reason;
};
const char* OutcomeName(Decision::Outcome o);  // "granted", "spillback", ...

class Scheduler {
 public:
  // NotFound if options.policy is not registered.
  static StatusOr<std::unique_ptr<Scheduler>> Create(
      const SchedulerOptions& options, const PolicyRegistry& registry = PolicyRegistry::Builtin());

  // Decides one request. `local_slot` is the deciding node (-1 for a global decider such as the
  // head). REQUIRES: local_slot is -1 or valid in `view`. Does not modify the view.
  Decision Schedule(const ClusterView& view, const SchedulingRequest& req, int local_slot,
                    Rng& rng);

  const SchedulerOptions& options() const { return options_; }
  const SchedulingPolicy& default_policy() const { return *default_; }

 private:
  Scheduler() = default;
  PolicyResult ScheduleAffinity(const ClusterView& view, const SchedulingRequest& req,
                                PolicyRequest preq, Rng& rng);
  SchedulerOptions options_;
  std::unique_ptr<SchedulingPolicy> default_;
  SpreadPolicy spread_;
  RandomPolicy random_;
};

}  // namespace orrery
