#include "core/placement/bundle_policy.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <numeric>
#include <utility>

namespace orrery {
namespace {

// -1: `a` goes first, +1: `b` goes first, 0: tie. Larger quantities go first.
int LargerFirst(Quantity a, Quantity b) { return a > b ? -1 : (a < b ? 1 : 0); }

// Hard-to-place bundles are placed first so they get the pick of the nodes: GPUs are the
// scarcest, custom resources usually exist on few nodes, then the bulk resources.
bool PlacesBefore(const ResourceSet& a, const ResourceSet& b) {
  if (int c = LargerFirst(a.Get(Predefined::kGPU), b.Get(Predefined::kGPU)); c != 0) return c < 0;
  // Custom resources: walk the union of both (sorted) name lists, a missing name counting as 0,
  // so the comparison does not depend on which bundle happens to name a resource.
  const auto& ca = a.custom();
  const auto& cb = b.custom();
  size_t i = 0;
  size_t j = 0;
  while (i < ca.size() || j < cb.size()) {
    Quantity qa;
    Quantity qb;
    if (j == cb.size() || (i < ca.size() && ca[i].first < cb[j].first)) {
      qa = ca[i++].second;
    } else if (i == ca.size() || cb[j].first < ca[i].first) {
      qb = cb[j++].second;
    } else {
      qa = ca[i++].second;
      qb = cb[j++].second;
    }
    if (int c = LargerFirst(qa, qb); c != 0) return c < 0;
  }
  for (Predefined p : {Predefined::kObjectStoreMemory, Predefined::kMemory, Predefined::kCPU}) {
    if (int c = LargerFirst(a.Get(p), b.Get(p)); c != 0) return c < 0;
  }
  return false;
}

// Indexes of `bundles` in placement order (stable: equal bundles keep the caller's order).
std::vector<int> PlacementOrder(const std::vector<ResourceRequest>& bundles) {
  std::vector<int> order(bundles.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return PlacesBefore(bundles[x].set(), bundles[y].set()); });
  return order;
}

// Σ (available − requested) / available over the requested names: the headroom a node keeps
// after taking the request. Iteration is by name, so the floating-point sum is reproducible and
// equal inputs give bit-identical scores (ties are then broken by node id, not by rounding).
double HeadroomScore(const ResourceSet& request, const ResourceSet& available) {
  double score = 0.0;
  request.ForEach([&](std::string_view name, Quantity q) {
    Quantity a = available.Get(name);
    if (a.IsZero()) return;  // only reachable for q == 0, which ForEach never yields
    score += static_cast<double>((a - q).raw()) / static_cast<double>(a.raw());
  });
  return score;
}

// Per-call availability of the candidate nodes. Deductions go to private copies of the nodes
// actually touched, so the view is never written and nothing can leak. In "empty cluster" mode
// every node starts fully free: running a strategy that way tells whether it could *ever*
// succeed, which is how Infeasible is told apart from Failed for the strict strategies.
class Scratch {
 public:
  enum class Mode : uint8_t { kNow, kEmptyCluster };
  Scratch(const ClusterView& view, Mode mode) : view_(view), mode_(mode) {}

  const NodeResources& at(int slot) {
    auto it = touched_.find(slot);
    if (it != touched_.end()) return it->second;
    if (mode_ == Mode::kNow) return view_.at(slot).resources;
    return Materialise(slot);
  }
  // REQUIRES: at(slot).IsAvailable(r).
  void Take(int slot, const ResourceRequest& r) {
    auto it = touched_.find(slot);
    NodeResources& n = it != touched_.end() ? it->second : Materialise(slot);
    [[maybe_unused]] bool taken = n.Allocate(r).has_value();
    assert(taken);
  }

 private:
  NodeResources& Materialise(int slot) {
    NodeResources copy = view_.at(slot).resources;
    if (mode_ == Mode::kEmptyCluster) copy.SetAvailable(copy.total());
    return touched_.emplace(slot, std::move(copy)).first->second;
  }

  const ClusterView& view_;
  Mode mode_;
  std::map<int, NodeResources> touched_;  // slot -> working copy
};

// The candidate nodes: schedulable ones, in node-id order (the tie-break order).
std::vector<int> SchedulableSlots(const ClusterView& view) {
  std::vector<int> out;
  for (int slot : view.ordered_slots()) {
    if (view.at(slot).IsSchedulable()) out.push_back(slot);
  }
  return out;
}

// The highest-scoring candidate where `r` is available, skipping slots for which skip(slot) is
// true; ties go to the first in `candidates` (the lowest node id). -1 if none.
template <typename Skip>
int BestNode(const ResourceRequest& r, const std::vector<int>& candidates, Scratch& scratch,
             Skip&& skip) {
  int best = -1;
  double best_score = 0.0;
  for (int slot : candidates) {
    if (skip(slot)) continue;
    const NodeResources& n = scratch.at(slot);
    if (!n.IsAvailable(r)) continue;
    double score = HeadroomScore(r.set(), n.available());
    if (best < 0 || score > best_score) {
      best = slot;
      best_score = score;
    }
  }
  return best;
}

std::string Describe(int index, const ResourceRequest& r) {
  return "bundle " + std::to_string(index) + " " + r.ToString();
}

PlacementResult Placed(std::vector<int> slots, std::string reason) {
  return {PlacementResult::Kind::kPlaced, std::move(slots), std::move(reason)};
}
PlacementResult Failed(std::string reason) {
  return {PlacementResult::Kind::kFailed, {}, std::move(reason)};
}
PlacementResult Infeasible(std::string reason) {
  return {PlacementResult::Kind::kInfeasible, {}, std::move(reason)};
}

int DistinctCount(std::vector<int> slots) {
  std::sort(slots.begin(), slots.end());
  return static_cast<int>(std::unique(slots.begin(), slots.end()) - slots.begin());
}

// PACK and SPREAD can split the group over any nodes, so the group is Infeasible exactly when one
// bundle fits no schedulable node even when that node is empty.
std::optional<PlacementResult> CheckEachBundleFeasible(const ClusterView& view,
                                                       const std::vector<ResourceRequest>& bundles,
                                                       const std::vector<int>& candidates) {
  if (candidates.empty()) return Infeasible("no node is schedulable (alive and not draining)");
  for (size_t b = 0; b < bundles.size(); ++b) {
    bool feasible = std::any_of(candidates.begin(), candidates.end(), [&](int slot) {
      return view.at(slot).resources.IsFeasible(bundles[b]);
    });
    if (!feasible) {
      return Infeasible(Describe(static_cast<int>(b), bundles[b]) +
                        " does not fit the totals of any schedulable node");
    }
  }
  return std::nullopt;
}

PlacementResult PlacePack(const ClusterView& view, const std::vector<ResourceRequest>& bundles) {
  std::vector<int> candidates = SchedulableSlots(view);
  if (auto bad = CheckEachBundleFeasible(view, bundles, candidates)) return *bad;
  Scratch scratch(view, Scratch::Mode::kNow);
  std::vector<int> slots(bundles.size(), -1);
  std::vector<int> remaining = PlacementOrder(bundles);
  while (!remaining.empty()) {
    const int first = remaining.front();
    const int node = BestNode(bundles[first], candidates, scratch, [](int) { return false; });
    if (node < 0) {
      return Failed(Describe(first, bundles[first]) +
                    " is not available on any schedulable node after placing the bundles before "
                    "it; retry later");
    }
    // Fill the chosen node greedily, in placement order; the first bundle is taken by this loop
    // too, since BestNode checked that it is available there.
    std::vector<int> left;
    for (int b : remaining) {
      if (scratch.at(node).IsAvailable(bundles[b])) {
        scratch.Take(node, bundles[b]);
        slots[b] = node;
      } else {
        left.push_back(b);
      }
    }
    remaining = std::move(left);
  }
  const int used = DistinctCount(slots);
  return Placed(std::move(slots), "packed " + std::to_string(bundles.size()) + " bundles onto " +
                                      std::to_string(used) + " node(s), fullest first");
}

PlacementResult PlaceSpread(const ClusterView& view, const std::vector<ResourceRequest>& bundles) {
  std::vector<int> candidates = SchedulableSlots(view);
  if (auto bad = CheckEachBundleFeasible(view, bundles, candidates)) return *bad;
  Scratch scratch(view, Scratch::Mode::kNow);
  std::vector<int> slots(bundles.size(), -1);
  std::vector<bool> used(static_cast<size_t>(view.slot_capacity()), false);  // holds a bundle
  for (int b : PlacementOrder(bundles)) {
    int node = BestNode(bundles[b], candidates, scratch, [&](int s) { return used[s]; });
    if (node < 0) node = BestNode(bundles[b], candidates, scratch, [](int) { return false; });
    if (node < 0) {
      return Failed(Describe(b, bundles[b]) +
                    " is not available on any schedulable node after placing the bundles before "
                    "it; retry later");
    }
    scratch.Take(node, bundles[b]);
    slots[b] = node;
    used[node] = true;
  }
  const int distinct = DistinctCount(slots);
  return Placed(std::move(slots), "spread " + std::to_string(bundles.size()) + " bundles over " +
                                      std::to_string(distinct) + " node(s)");
}

// Whether every bundle can be taken, in placement order, from a copy of `node`. Checking bundle by
// bundle (rather than the summed request) keeps the per-device rule exact: two 0.6-GPU bundles
// need two devices even though 1.2 GPUs of aggregate may be free.
bool HoldsAll(NodeResources node, const std::vector<ResourceRequest>& bundles,
              const std::vector<int>& order) {
  for (int b : order) {
    if (!node.Allocate(bundles[b]).has_value()) return false;
  }
  return true;
}

PlacementResult PlaceStrictPack(const ClusterView& view,
                                const std::vector<ResourceRequest>& bundles,
                                const std::optional<NodeId>& soft_target) {
  std::vector<int> candidates = SchedulableSlots(view);
  ResourceSet sum;
  for (const auto& b : bundles) sum += b.set();
  const std::vector<int> order = PlacementOrder(bundles);
  const std::string shape = "the summed bundles " + sum.ToString();

  bool feasible = false;
  for (int slot : candidates) {
    const NodeResources& n = view.at(slot).resources;
    if (!sum.IsSubsetOf(n.total())) continue;
    NodeResources empty = n;
    empty.SetAvailable(empty.total());
    if (HoldsAll(std::move(empty), bundles, order)) {
      feasible = true;
      break;
    }
  }
  if (!feasible) return Infeasible("no schedulable node could ever hold " + shape);

  auto holds_now = [&](int slot) {
    const NodeResources& n = view.at(slot).resources;
    return sum.IsSubsetOf(n.available()) && HoldsAll(n, bundles, order);
  };
  // The soft target is a preference, not a constraint: it wins whenever it can take the group
  // now, whatever its score, and is silently skipped otherwise.
  if (soft_target.has_value()) {
    const int t = view.FindSlot(*soft_target);
    if (t >= 0 && view.at(t).IsSchedulable() && holds_now(t)) {
      return Placed(std::vector<int>(bundles.size(), t),
                    "all bundles fit together on the soft target " + *soft_target);
    }
  }
  int best = -1;
  double best_score = 0.0;
  for (int slot : candidates) {
    if (!holds_now(slot)) continue;
    double score = HeadroomScore(sum, view.at(slot).resources.available());
    if (best < 0 || score > best_score) {
      best = slot;
      best_score = score;
    }
  }
  if (best < 0) return Failed("no schedulable node has " + shape + " available now; retry later");
  return Placed(
      std::vector<int>(bundles.size(), best),
      "all bundles fit together on " + view.at(best).id + ", the node with most headroom");
}

// Each bundle, in placement order, on the best node the group does not use yet. Returns the slot
// per bundle, or the index of the first bundle that found no node.
std::pair<std::vector<int>, int> GreedyDistinct(const ClusterView& view,
                                                const std::vector<ResourceRequest>& bundles,
                                                const std::vector<int>& candidates,
                                                Scratch& scratch) {
  std::vector<int> slots(bundles.size(), -1);
  std::vector<bool> used(static_cast<size_t>(view.slot_capacity()), false);
  for (int b : PlacementOrder(bundles)) {
    const int node = BestNode(bundles[b], candidates, scratch, [&](int s) { return used[s]; });
    if (node < 0) return {{}, b};
    // Distinct nodes: no later bundle looks at this node again, so nothing needs deducting.
    slots[b] = node;
    used[node] = true;
  }
  return {std::move(slots), -1};
}

PlacementResult PlaceStrictSpread(const ClusterView& view,
                                  const std::vector<ResourceRequest>& bundles) {
  std::vector<int> candidates = SchedulableSlots(view);
  if (bundles.size() > candidates.size()) {
    return Infeasible(std::to_string(bundles.size()) + " bundles need distinct nodes but only " +
                      std::to_string(candidates.size()) + " node(s) are schedulable");
  }
  // Infeasible iff the same greedy assignment fails with every node empty: then waiting cannot
  // help, only new nodes can.
  Scratch empty(view, Scratch::Mode::kEmptyCluster);
  if (const int never = GreedyDistinct(view, bundles, candidates, empty).second; never >= 0) {
    return Infeasible(Describe(never, bundles[never]) +
                      " finds no distinct schedulable node that could ever hold it");
  }
  Scratch now(view, Scratch::Mode::kNow);
  auto [slots, bad] = GreedyDistinct(view, bundles, candidates, now);
  if (bad >= 0) {
    return Failed(Describe(bad, bundles[bad]) +
                  " is not available on any schedulable node unused by the group; retry later");
  }
  return Placed(std::move(slots),
                "placed " + std::to_string(bundles.size()) + " bundles on distinct nodes");
}

}  // namespace

const char* PlacementStrategyName(PlacementStrategy s) {
  switch (s) {
    case PlacementStrategy::kPack:
      return "PACK";
    case PlacementStrategy::kSpread:
      return "SPREAD";
    case PlacementStrategy::kStrictPack:
      return "STRICT_PACK";
    case PlacementStrategy::kStrictSpread:
      return "STRICT_SPREAD";
  }
  return "PACK";
}

StatusOr<PlacementStrategy> ParsePlacementStrategy(const std::string& s) {
  for (PlacementStrategy p : {PlacementStrategy::kPack, PlacementStrategy::kSpread,
                              PlacementStrategy::kStrictPack, PlacementStrategy::kStrictSpread}) {
    if (s == PlacementStrategyName(p)) return p;
  }
  return InvalidArgument("unknown placement strategy \"" + s +
                         "\"; expected PACK, SPREAD, STRICT_PACK or STRICT_SPREAD");
}

const char* PlacementKindName(PlacementResult::Kind k) {
  switch (k) {
    case PlacementResult::Kind::kPlaced:
      return "placed";
    case PlacementResult::Kind::kFailed:
      return "failed";
    case PlacementResult::Kind::kInfeasible:
      return "infeasible";
  }
  return "failed";
}

PlacementResult PlaceBundles(const ClusterView& view, const std::vector<ResourceRequest>& bundles,
                             PlacementStrategy strategy, const std::optional<NodeId>& soft_target) {
  if (bundles.empty()) return Placed({}, "the group has no bundles; nothing to place");
  switch (strategy) {
    case PlacementStrategy::kPack:
      return PlacePack(view, bundles);
    case PlacementStrategy::kSpread:
      return PlaceSpread(view, bundles);
    case PlacementStrategy::kStrictPack:
      return PlaceStrictPack(view, bundles, soft_target);
    case PlacementStrategy::kStrictSpread:
      return PlaceStrictSpread(view, bundles);
  }
  return Failed("unknown placement strategy");
}

}  // namespace orrery
