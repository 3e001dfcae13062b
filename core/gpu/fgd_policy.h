// fgd: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23, section 5).
//
// Places each pod where it increases the cluster's GPU fragmentation (fragmentation.h) the least:
// for every node where the pod fits and, for a shared pod, every device that holds it, the
// fragmentation of the node after the placement minus before; the smallest increase wins (it may
// be negative: filling a partial GPU removes fragment). The device is the one with the smallest
// increase on the chosen node (lowest id on ties); a whole-GPU pod takes the lowest-id free
// devices. Under Scoring::kKubernetes (default) the comparison is on the artifact's integer score
// int(100 * sigmoid(-increase / 1000 milli-GPU)), under kExact on the increase itself; ties
// between nodes follow ScoreOptions::tie_break.
//
// When it wins: GPU-sharing workloads with a stable mix of shapes. By steering every pod towards
// the state where the *typical* future pods still fit, it strands the least GPU of the policies
// here on every pod list of the paper's trace (results/README.md, section gpu). Its ties are
// frequent (a whole-GPU pod often changes every candidate's fragmentation equally); breaking them
// in one node order fixed for the run (TieBreak::kPermuted, what the paper's artifact effectively
// does, or kLowestId) turns them into first-fit packing and is part of why it packs well; a fresh
// draw per decision (kRandom) undoes that.
//
// Incremental scoring: only fragmentation changes matter, and placing a pod changes one node. The
// policy caches, per pod shape (CPU, GPU count, GPU share) and node, the best move and the node's
// version; a later pod of the same shape rescores only the nodes that changed since. Costs per
// Choose: O(n) cache checks + O(c * D * G) for the c changed nodes (D devices, G groups of typical
// pods). Memory: O(shapes * n), at most kMaxCachedShapes shapes (others are scored uncached).
//
// Thread safety: as GpuPlacementPolicy (the cache is per instance).
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "core/gpu/fragmentation.h"
#include "core/gpu/gpu_policy.h"

namespace orrery::gpu {

class FgdPolicy : public GpuPlacementPolicy {
 public:
  static constexpr size_t kMaxCachedShapes = 4096;

  explicit FgdPolicy(FragmentationModel model, ScoreOptions o = {})
      : model_(std::move(model)), o_(o) {}
  std::string_view name() const override { return "fgd"; }
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

  // The best placement of `pod` on a node in state `n`: the change of W * F (fragmentation times
  // the weight denominator) it causes, the comparison key (lower wins: the increase, or minus the
  // integer score) and the devices. REQUIRES: GpuCluster::FitsState(n, pod).
  struct Move {
    int64_t delta = 0;
    double key = 0;
    DeviceList devices;
  };
  Move BestMove(const GpuNodeState& n, const GpuPod& pod) const;

  const FragmentationModel& model() const { return model_; }
  // The artifact's score of a change of W * F: int(100 * sigmoid(-(delta / W) / 1000)).
  int64_t KubernetesScore(int64_t delta) const;
  struct Stats {
    uint64_t moves_scored = 0;  // BestMove evaluations
    uint64_t cache_hits = 0;    // node scores reused
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    uint64_t version = 0;  // node version the move was computed for; 0 = none
    Move move;
  };
  // The best move's key for node `node`, from `row` (the shape's cache; null = uncached).
  double KeyOf(int64_t delta) const {
    return o_.scoring == Scoring::kExact ? static_cast<double>(delta)
                                         : -static_cast<double>(KubernetesScore(delta));
  }
  double Key(const GpuCluster& c, int node, const GpuPod& pod, std::vector<Entry>* row);

  FragmentationModel model_;
  ScoreOptions o_;
  uint64_t cluster_uid_ = 0;
  std::map<std::tuple<int64_t, int32_t, int32_t>, size_t> shape_rows_;
  std::vector<std::vector<Entry>> rows_;
  TieBreaker ties_{o_.tie_break, o_.tie_seed};
  Stats stats_;
};

}  // namespace orrery::gpu
