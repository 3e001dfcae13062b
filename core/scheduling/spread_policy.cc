#include "core/scheduling/spread_policy.h"

namespace orrery {

PolicyResult SpreadPolicy::Schedule(const ClusterView& view, const PolicyRequest& req, Rng&) {
  const auto& ring = view.ordered_slots();
  const size_t n = ring.size();
  if (n == 0) return PolicyResult::Infeasible("the cluster has no nodes");
  const ResourceRequest& r = *req.resources;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1 && req.require_available) break;
    size_t idx = cursor_;
    for (size_t i = 0; i < n; ++i, ++idx) {
      int slot = ring[idx % n];
      if (slot == req.excluded_slot) continue;
      const Node& node = view.at(slot);
      if (!IsCandidate(node, r)) continue;
      if (pass == 0 && !node.resources.IsAvailable(r)) continue;
      cursor_ = (idx + 1) % n;
      return PolicyResult::Chosen(slot, pass == 0 ? "next node in the ring with it available"
                                                  : "next node in the ring where it is feasible");
    }
  }
  if (!AnyFeasible(view, r)) {
    return PolicyResult::Infeasible("no alive node can ever hold " + r.ToString());
  }
  return PolicyResult::Unavailable("no node has " + r.ToString() + " available now");
}

}  // namespace orrery
