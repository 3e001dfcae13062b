// Placement-group bundle placement (Ray's bundle scheduling policies) and the two-phase
// reservation that makes a placement real.
//
// Bundles are placed in a sorted order (more GPU first, then custom resources, object store,
// memory, CPU). A node's score for a bundle is the sum over the bundle's resources of
// (available - requested) / available (higher = more headroom; a resource not available makes the
// node ineligible); the best-scoring node wins, ties to the lowest node id.
//   PACK          first bundle on the best node, then greedily fill that node with the others.
//   SPREAD        prefer nodes this group does not use yet; fall back to used ones.
//   STRICT_PACK   one node for the summed bundles; Infeasible if no node's total could hold the sum.
//   STRICT_SPREAD distinct nodes; Infeasible if there are more bundles than schedulable nodes.
// Failed (retry later) is different from Infeasible (never). Placement works on a scratch copy of
// availability: the view is never modified and nothing leaks.
//
// Thread safety: pure functions / single-loop state machines.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery {

enum class PlacementStrategy : uint8_t { kPack, kSpread, kStrictPack, kStrictSpread };
const char* PlacementStrategyName(PlacementStrategy s);  // "PACK", "SPREAD", ...
// InvalidArgument naming the accepted spellings.
StatusOr<PlacementStrategy> ParsePlacementStrategy(const std::string& s);

struct PlacementResult {
  enum class Kind : uint8_t { kPlaced, kFailed, kInfeasible };
  Kind kind = Kind::kFailed;
  // kPlaced: slot per bundle, in the caller's bundle order.
  std::vector<int> slots;
  std::string reason;
};
const char* PlacementKindName(PlacementResult::Kind k);  // "placed" | "failed" | "infeasible"

// Chooses a node for every bundle, all or nothing. `soft_target` (STRICT_PACK only, as in Ray) is
// tried first when it can hold the summed bundles now. Does not modify `view`.
// Complexity: O(bundles * nodes * resources).
PlacementResult PlaceBundles(const ClusterView& view, const std::vector<ResourceRequest>& bundles,
                             PlacementStrategy strategy,
                             const std::optional<NodeId>& soft_target = std::nullopt);

}  // namespace orrery
