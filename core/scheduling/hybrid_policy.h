// Hybrid scheduling (Ray's DEFAULT strategy): pack onto nodes until they are half busy, then
// spread.
//
// When it wins: general task load where locality of warm workers matters and nodes should not run
// hot; below the spread threshold every node scores 0, so the preferred (local) node keeps work,
// above it the least-utilised nodes are chosen.
//
// Algorithm (DESIGN section 3): candidates are schedulable (alive, not draining) nodes where the
// request is feasible; nodes where it is available form the first class, the rest the second
// (skipped if availability is required). Within the class chosen (available if non-empty), score =
// critical utilisation truncated to 0 below spread_threshold; order by node id, then stable by
// score. The preferred node wins if it is in that class and scores <= the best. Otherwise one of
// the first k is drawn uniformly, k = max(top_k_absolute, floor(top_k_fraction * view size)).
// GPU avoidance: a request without GPU first runs over GPU-less nodes requiring availability.
//
// Two implementations share these semantics exactly (same node for the same view and Rng stream):
//  - HybridReferencePolicy: a plain O(n log n) scan written for clarity;
//  - HybridPolicy: the production one, backed by an incremental index (hybrid_index.h).
#pragma once

#include "core/scheduling/policy.h"

namespace orrery {

// Score of a node for the hybrid policy: critical utilisation, or 0 below `threshold`.
double HybridScore(const Node& n, double threshold);
// k for a view of `view_size` nodes.
int HybridTopK(const HybridOptions& o, int view_size);

// The reference implementation. Complexity O(n log n) per call.
class HybridReferencePolicy : public SchedulingPolicy {
 public:
  explicit HybridReferencePolicy(HybridOptions options = {}) : options_(options) {}
  std::string_view name() const override { return "hybrid-reference"; }
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
  const HybridOptions& options() const { return options_; }

 private:
  enum class Filter { kAny, kNonGpu };
  PolicyResult ScheduleImpl(const ClusterView& view, const PolicyRequest& req,
                            bool require_available, Filter filter, Rng& rng) const;
  HybridOptions options_;
};

}  // namespace orrery

namespace orrery {

// The production hybrid policy. PLACEHOLDER: same as the reference until the index lands.
class HybridPolicy : public HybridReferencePolicy {
 public:
  explicit HybridPolicy(HybridOptions options = {}) : HybridReferencePolicy(options) {}
  std::string_view name() const override { return "hybrid"; }
};

}  // namespace orrery
