#include "core/scheduling/hybrid_policy.h"

#include <algorithm>
#include <cmath>

namespace orrery {

double HybridScore(const Node& n, double threshold) {
  double u = n.resources.CriticalUtilization();
  return u < threshold ? 0.0 : u;
}

int HybridTopK(const HybridOptions& o, int view_size) {
  auto frac = static_cast<int>(std::floor(o.top_k_fraction * view_size));
  return std::max({1, o.top_k_absolute, frac});
}

bool AnyFeasible(const ClusterView& view, const ResourceRequest& r) {
  for (int slot : view.ordered_slots()) {
    if (IsCandidate(view.at(slot), r)) return true;
  }
  return false;
}

PolicyResult HybridReferencePolicy::Schedule(const ClusterView& view, const PolicyRequest& req,
                                             Rng& rng) {
  if (options_.avoid_gpu_nodes && !req.resources->RequestsGpu()) {
    PolicyResult r = ScheduleImpl(view, req, /*require_available=*/true, Filter::kNonGpu, rng);
    if (r.chosen()) return r;
  }
  PolicyResult r = ScheduleImpl(view, req, req.require_available, Filter::kAny, rng);
  if (r.chosen()) return r;
  if (!AnyFeasible(view, *req.resources)) {
    return PolicyResult::Infeasible("no alive node can ever hold " + req.resources->ToString());
  }
  return PolicyResult::Unavailable("no node has " + req.resources->ToString() +
                                   " available now");
}

PolicyResult HybridReferencePolicy::ScheduleImpl(const ClusterView& view,
                                                 const PolicyRequest& req, bool require_available,
                                                 Filter filter, Rng& rng) const {
  struct Scored {
    int slot;
    double score;
  };
  std::vector<Scored> available;
  std::vector<Scored> feasible_only;
  bool preferred_available = false;
  bool preferred_feasible = false;
  double preferred_score = 0.0;
  // ordered_slots() is already by node id, which is the first sort key.
  for (int slot : view.ordered_slots()) {
    const Node& n = view.at(slot);
    if (!IsCandidate(n, *req.resources)) continue;
    if (filter == Filter::kNonGpu && n.HasGpu()) continue;
    if (slot == req.excluded_slot) continue;
    double score = HybridScore(n, options_.spread_threshold);
    bool is_available = n.resources.IsAvailable(*req.resources);
    if (slot == req.preferred_slot) {
      preferred_score = score;
      preferred_available = is_available;
      preferred_feasible = !is_available;
    }
    if (is_available) {
      available.push_back({slot, score});
    } else if (!require_available) {
      feasible_only.push_back({slot, score});
    }
  }
  std::vector<Scored>* cls = nullptr;
  bool preferred_in_class = false;
  const char* class_name = "";
  if (!available.empty()) {
    cls = &available;
    preferred_in_class = preferred_available;
    class_name = "available";
  } else if (!feasible_only.empty()) {
    cls = &feasible_only;
    preferred_in_class = preferred_feasible;
    class_name = "feasible";
  } else {
    return PolicyResult::Unavailable("no candidate node");
  }
  std::stable_sort(cls->begin(), cls->end(),
                   [](const Scored& a, const Scored& b) { return a.score < b.score; });
  if (preferred_in_class && preferred_score <= cls->front().score) {
    return PolicyResult::Chosen(req.preferred_slot,
                                std::string("preferred node is ") + class_name +
                                    " and scores as well as the best");
  }
  const size_t k = std::min<size_t>(cls->size(),
                                    static_cast<size_t>(HybridTopK(options_, view.size())));
  size_t pick = k > 1 ? rng.UniformIndex(k) : 0;
  return PolicyResult::Chosen((*cls)[pick].slot,
                              std::string("drawn among the top ") + std::to_string(k) + " " +
                                  class_name + " nodes by score");
}

const char* StrategyTypeName(SchedulingStrategy::Type t) {
  switch (t) {
    case SchedulingStrategy::Type::kDefault: return "DEFAULT";
    case SchedulingStrategy::Type::kSpread: return "SPREAD";
    case SchedulingStrategy::Type::kNodeAffinity: return "NODE_AFFINITY";
  }
  return "DEFAULT";
}

}  // namespace orrery
