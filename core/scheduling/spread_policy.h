// Spread scheduling (Ray's SPREAD strategy): round-robin over nodes in id order.
//
// When it wins: many similar long tasks or actors that should not share a node (fault isolation,
// memory bandwidth), or to use every node of a fresh cluster at once.
//
// Algorithm: nodes sorted by id form a ring; a cursor is kept between calls (declared state). The
// first pass takes the first schedulable node from the cursor where the request is available; the
// second pass (unless availability is required) the first where it is feasible. The cursor moves
// just past the pick. force_spillback excludes the preferred node.
#pragma once

#include "core/scheduling/policy.h"

namespace orrery {

class SpreadPolicy : public SchedulingPolicy {
 public:
  std::string_view name() const override { return "spread"; }
  // O(n) worst case, O(1) typical when the next node fits.
  PolicyResult Schedule(const ClusterView& view, const PolicyRequest& req, Rng& rng) override;
  // The ring position the next search starts from (a rank in node-id order).
  size_t cursor() const { return cursor_; }

 private:
  size_t cursor_ = 0;
};

}  // namespace orrery
