// Example user policy: bin-packing. Shows how to add a policy in one file pair plus one line in
// policy_registry.cc (see README, "Writing a policy").
//
// When it wins: keeping as many nodes idle as possible so the autoscaler can remove them (cost),
// or leaving whole nodes free for large requests. It loses on tail latency under bursty load
// because busy nodes get busier.
//
// Algorithm: among schedulable nodes where the request is available, the one with the highest
// critical utilisation; ties to the lowest node id. If none is available, the same rule among
// feasible nodes (the task queues there), unless availability is required.
#pragma once

#include "core/scheduling/policy.h"

namespace orrery {

class BinpackPolicy : public SchedulingPolicy {
 public:
  std::string_view name() const override { return "binpack"; }
  // O(n).
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
};

}  // namespace orrery
