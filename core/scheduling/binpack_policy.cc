#include "core/scheduling/binpack_policy.h"

namespace orrery {

PolicyResult BinpackPolicy::Schedule(const ClusterView& view, const PolicyRequest& req, Rng&) {
  int best_available = -1, best_feasible = -1;
  double u_available = -1, u_feasible = -1;
  for (int slot : view.ordered_slots()) {
    if (slot == req.excluded_slot) continue;
    const Node& n = view.at(slot);
    if (!IsCandidate(n, *req.resources)) continue;
    double u = n.resources.CriticalUtilization();
    // Strictly greater keeps the lowest id on ties (slots come in id order).
    if (n.resources.IsAvailable(*req.resources)) {
      if (u > u_available) best_available = slot, u_available = u;
    } else if (u > u_feasible) {
      best_feasible = slot, u_feasible = u;
    }
  }
  if (best_available >= 0) return PolicyResult::Chosen(best_available, "most utilised available node");
  if (best_feasible >= 0 && !req.require_available) {
    return PolicyResult::Chosen(best_feasible, "most utilised feasible node (none available)");
  }
  if (best_feasible < 0) {
    return PolicyResult::Infeasible("no alive node can ever hold " + req.resources->ToString());
  }
  return PolicyResult::Unavailable("no node has " + req.resources->ToString() + " available now");
}

}  // namespace orrery
