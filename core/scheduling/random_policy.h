// Random scheduling: uniform among schedulable nodes where the request is available.
//
// When it wins: zero-resource actors (Ray places them randomly so they do not pile onto one node),
// and as a baseline in policy comparisons.
#pragma once

#include "core/scheduling/policy.h"

namespace orrery {

class RandomPolicy : public SchedulingPolicy {
 public:
  std::string_view name() const override { return "random"; }
  // O(n).
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
};

}  // namespace orrery
