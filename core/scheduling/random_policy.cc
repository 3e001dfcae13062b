#include "core/scheduling/random_policy.h"

#include <vector>

namespace orrery {

PolicyResult RandomPolicy::Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) {
  std::vector<int> candidates;
  bool any_feasible = false;
  for (int slot : view.ordered_slots()) {
    if (slot == req.excluded_slot) continue;
    const Node& n = view.at(slot);
    if (!IsCandidate(n, *req.resources)) continue;
    any_feasible = true;
    if (n.resources.IsAvailable(*req.resources)) candidates.push_back(slot);
  }
  if (candidates.empty()) {
    if (!any_feasible && !AnyFeasible(view, *req.resources)) {
      return PolicyResult::Infeasible("no alive node can ever hold " + req.resources->ToString());
    }
    return PolicyResult::Unavailable("no node has " + req.resources->ToString() +
                                     " available now");
  }
  size_t pick = candidates.size() > 1 ? rng.UniformIndex(candidates.size()) : 0;
  return PolicyResult::Chosen(candidates[pick], "drawn uniformly among " +
                                                    std::to_string(candidates.size()) +
                                                    " available nodes");
}

}  // namespace orrery
