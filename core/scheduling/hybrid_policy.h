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
// the first k is drawn uniformly, k = max(top_k_absolute, floor(top_k_fraction * live nodes)), live
// nodes = nodes in the view that are not dead (Ray drops dead nodes from its view).
// GPU avoidance: a request without GPU first runs over GPU-less nodes requiring availability.
//
// Two implementations share these semantics exactly (same node for the same view and Rng stream):
//  - HybridReferencePolicy: a plain O(n log n) scan written for clarity;
//  - HybridPolicy: the production one, backed by an incremental index (hybrid_index.h).
#pragma once

#include <string_view>

#include "core/scheduling/hybrid_index.h"
#include "core/scheduling/policy.h"

namespace orrery {

// Score of a node for the hybrid policy: critical utilisation, or 0 below `threshold`.
double HybridScore(const Node& n, double threshold);
// k for a view of `view_size` nodes that are not dead (dead nodes leave Ray's view).
int HybridTopK(const HybridOptions& o, int view_size);

// The reference implementation: the semantics, written for clarity.
// Complexity O(n log n) per call. Thread safety: none (one event loop); it keeps no state.
class HybridReferencePolicy : public SchedulingPolicy {
 public:
  explicit HybridReferencePolicy(HybridOptions options = {}) : options_(options) {}
  std::string_view name() const override { return "hybrid-reference"; }
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
  const HybridOptions& options() const { return options_; }

 private:
  HybridPick ScheduleImpl(const ClusterView& view, const PolicyRequest& req,
                          bool require_available, HybridFilter filter, Rng& rng) const;
  HybridOptions options_;
};

// The production hybrid policy: the same decisions as HybridReferencePolicy (same node, same
// outcome, same reason, same Rng draws) from an incremental index (hybrid_index.h).
//
// It works with any view passed to Schedule(): the index binds to the view on first use and
// rebinds (rebuilding lazily) when another view object is passed; a view destroyed while bound
// unbinds itself. Alternating between two views therefore rebuilds on every switch: keep one
// policy per view where that matters.
//
// Complexity per Schedule(), n nodes in the view: O(c * (log n + 128) + log n) for an indexed
// request shape, where c = nodes changed since the shape's last query; O(n log n) for a shape's
// first two queries (a scan, then the build), after a node is added or removed, and after binding
// to another view. Memory O(indexed shapes * n).
// Thread safety: none; one event loop owns the policy and the views it is given.
class HybridPolicy : public SchedulingPolicy {
 public:
  explicit HybridPolicy(HybridOptions options = {}, HybridIndexOptions index_options = {})
      : options_(options), reference_(options), index_(options, index_options) {}
  std::string_view name() const override { return "hybrid"; }
  // REQUIRES: as SchedulingPolicy. Nothing about the lifetime of `view`: a view destroyed while
  // bound tells the index (ClusterViewObserver::OnViewDestroyed).
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
  const HybridOptions& options() const { return options_; }
  const HybridIndex::Stats& index_stats() const { return index_.stats(); }

 private:
  HybridOptions options_;
  HybridReferencePolicy reference_;  // answers for request shapes the index does not hold (yet)
  HybridIndex index_;
};

}  // namespace orrery
