// Ray's hybrid (DEFAULT) and spread policies on a GPU-sharing cluster, so a placement study can
// ask how much GPU Ray's own scheduling strands.
//
// These are adapters with exactly the semantics of core/scheduling (DESIGN section 3) for one
// decision in which the pod must be placed now (require_available) and no node is preferred:
//  - hybrid: candidates are the nodes where the pod fits now; score = critical utilisation (max of
//    the CPU and memory used fractions, as NodeResources::CriticalUtilization computes it; GPU is
//    ignored, as in Ray), 0 below spread_threshold; order by node id, then stable by score; draw
//    uniformly among the first k = max(top_k_absolute, floor(top_k_fraction * nodes)). GPU
//    avoidance: a CPU-only pod first tries the GPU-less nodes.
//  - spread: a ring of the nodes in id order with a cursor kept between calls; the first node from
//    the cursor where the pod fits; the cursor moves past it.
// The GPU model constraint filters candidates first (as a Ray label selector does). Devices follow
// Ray's NodeResources::Allocate: best fit for a shared pod, lowest-id free devices otherwise.
// tests/gpu/ray_policies_test.cc checks the decisions equal HybridReferencePolicy's and
// SpreadPolicy's on the equivalent ClusterView, Rng draw for Rng draw. Both keep Ray's node-id
// order whatever ScoreOptions::tie_break says (it applies to the paper's score-based policies).
//
// Thread safety: as GpuPlacementPolicy.
#pragma once

#include <vector>

#include "core/gpu/gpu_policy.h"
#include "core/scheduling/policy.h"

namespace orrery::gpu {

// The hybrid score of a node: critical utilisation, 0 below `threshold`.
double HybridGpuScore(const GpuNodeState& n, double threshold);

// When it wins: general task load on CPU clusters (pack onto half-busy nodes, then spread). It is
// blind to GPU shares, so on GPU-sharing workloads it is a baseline, not a contender.
class HybridGpuPolicy : public GpuPlacementPolicy {
 public:
  explicit HybridGpuPolicy(HybridOptions options = {}) : options_(options) {}
  std::string_view name() const override { return "hybrid"; }
  // O(n) per pass (selection, not a sort); one Rng draw when k > 1.
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  struct Candidate {
    double score;
    int rank;
    int node;
  };
  int Pass(const GpuCluster& c, const GpuPod& pod, bool gpu_less_only, Rng& rng);
  HybridOptions options_;
  std::vector<Candidate> candidates_;
};

// When it wins: fault isolation and using every node at once; the opposite of packing.
class SpreadGpuPolicy : public GpuPlacementPolicy {
 public:
  std::string_view name() const override { return "spread"; }
  // O(n) worst case, O(1) typical.
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;
  // The ring position (a rank in node-id order) the next search starts from.
  size_t cursor() const { return cursor_; }

 private:
  size_t cursor_ = 0;
};

}  // namespace orrery::gpu
