#include "core/scheduling/hybrid_policy.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <string>
#include <vector>

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

namespace {

// The outcome and reason of a pass's pick: one function for both implementations, so they cannot
// drift apart in wording. The reason names the rule that decided (preferred node, top-k draw)
// with the score it went by, and says when GPU avoidance narrowed the candidates.
PolicyResult ChosenResult(const HybridPick& p, HybridFilter filter, const ClusterView& view,
                          const HybridOptions& o) {
  const char* class_name = p.from_available ? "available" : "feasible";
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof(buf), HybridScore(view.at(p.slot), o.spread_threshold),
                                 std::chars_format::fixed, 3).ptr;
  const std::string score(buf, end);
  std::string reason;
  if (p.kind == HybridPick::Kind::kPreferred) {
    reason = std::string("preferred node (local or data-local) is ") + class_name +
             " and its score " + score + " is the lowest of the " + class_name + " nodes";
  } else {
    reason = std::string("drawn among the top ") + std::to_string(p.k) + " " + class_name +
             " nodes by score (lowest first, then node id); its score is " + score;
  }
  if (filter == HybridFilter::kNonGpu) {
    reason += "; GPU avoidance: a request without GPU tries GPU-less nodes first";
  }
  return PolicyResult::Chosen(p.slot, std::move(reason));
}

// Neither pass chose: "nothing ever" if no schedulable node could hold the request, else
// "nothing now".
PolicyResult NothingChosen(const ResourceRequest& r, bool any_feasible) {
  if (!any_feasible) {
    return PolicyResult::Infeasible("no alive node can ever hold " + r.ToString());
  }
  return PolicyResult::Unavailable("no node has " + r.ToString() + " available now");
}

}  // namespace

PolicyResult HybridReferencePolicy::Schedule(const ClusterView& view, const PolicyRequest& req,
                                             Rng& rng) {
  if (options_.avoid_gpu_nodes && !req.resources->RequestsGpu()) {
    HybridPick p = ScheduleImpl(view, req, /*require_available=*/true, HybridFilter::kNonGpu, rng);
    if (p.kind != HybridPick::Kind::kNone) return ChosenResult(p, HybridFilter::kNonGpu, view, options_);
  }
  HybridPick p = ScheduleImpl(view, req, req.require_available, HybridFilter::kAny, rng);
  if (p.kind != HybridPick::Kind::kNone) return ChosenResult(p, HybridFilter::kAny, view, options_);
  return NothingChosen(*req.resources, AnyFeasible(view, *req.resources));
}

HybridPick HybridReferencePolicy::ScheduleImpl(const ClusterView& view, const PolicyRequest& req,
                                               bool require_available, HybridFilter filter,
                                               Rng& rng) const {
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
    if (filter == HybridFilter::kNonGpu && n.HasGpu()) continue;
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
  HybridPick pick;
  if (!available.empty()) {
    cls = &available;
    preferred_in_class = preferred_available;
    pick.from_available = true;
  } else if (!feasible_only.empty()) {
    cls = &feasible_only;
    preferred_in_class = preferred_feasible;
    pick.from_available = false;
  } else {
    return {};  // no candidate node
  }
  std::stable_sort(cls->begin(), cls->end(),
                   [](const Scored& a, const Scored& b) { return a.score < b.score; });
  if (preferred_in_class && preferred_score <= cls->front().score) {
    pick.kind = HybridPick::Kind::kPreferred;
    pick.slot = req.preferred_slot;
    return pick;
  }
  const size_t k = std::min<size_t>(cls->size(),
                                    static_cast<size_t>(HybridTopK(options_, view.live_size())));
  size_t i = k > 1 ? rng.UniformIndex(k) : 0;
  pick.kind = HybridPick::Kind::kDrawn;
  pick.slot = (*cls)[i].slot;
  pick.k = k;
  return pick;
}

PolicyResult HybridPolicy::Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) {
  index_.Bind(view);
  const int shape = index_.Lookup(*req.resources);
  if (shape < 0) return reference_.Schedule(view, req, rng);
  // The same two passes as the reference, each answered by the index.
  if (options_.avoid_gpu_nodes && !req.resources->RequestsGpu()) {
    HybridPick p = index_.Pick(shape, HybridFilter::kNonGpu, req, /*require_available=*/true, rng);
    if (p.kind != HybridPick::Kind::kNone) return ChosenResult(p, HybridFilter::kNonGpu, view, options_);
  }
  HybridPick p = index_.Pick(shape, HybridFilter::kAny, req, req.require_available, rng);
  if (p.kind != HybridPick::Kind::kNone) return ChosenResult(p, HybridFilter::kAny, view, options_);
  return NothingChosen(*req.resources, index_.AnyFeasible(shape));
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
