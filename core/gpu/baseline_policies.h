// The baseline policies of Weng et al. (USENIX ATC'23), section 6.1, as its artifact
// (hkust-adsl/kubernetes-scheduler-simulator) defines them. Each is a score per node; the best
// score wins; ties are broken by ScoreOptions::tie_break (tie_break.h, TieBreaker). Scores are
// integers in [0, 100] under Scoring::kKubernetes (the artifact: Kubernetes score plugins return
// truncated integers) and continuous under Scoring::kExact; gpu-packing and gpu-clustering are
// integer tiers either way.
//
// Constants from the artifact: the largest node is taken as 128 CPU cores and 8 GPUs
// (MaxSpecCpu = 128000 milli, MaxSpecGpu = 8000 milli).
//
// Thread safety: as GpuPlacementPolicy. None of these keeps state between calls.
#pragma once

#include <cstdint>

#include "core/gpu/gpu_policy.h"

namespace orrery::gpu {

inline constexpr int64_t kMaxSpecCpuMilli = 128000;
inline constexpr int64_t kMaxSpecGpuMilli = 8000;

// random: a node drawn uniformly among those where the pod fits; a shared pod's device drawn
// uniformly among those that hold it. Ignores ScoreOptions.
// When it wins: never on packing; it is the floor every policy should beat.
class RandomFitPolicy : public GpuPlacementPolicy {
 public:
  std::string_view name() const override { return "random"; }
  // O(n), two Rng draws at most.
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  TieBreaker ties_{TieBreak::kRandom};
};

// dot-prod: the node whose free (CPU, GPU) vector, normalised by the largest node, has the
// smallest dot product with the pod's normalised request (Grandl et al., Tetris); best-fit device.
//   score = 100 * (1 - (cpu_left/128000 * cpu_req/128000 + gpu_left/8000 * gpu_req/8000) / 2)
// When it wins: multi-resource packing where CPU and GPU demands are correlated.
double DotProductScore(const GpuNodeState& n, const GpuPod& pod);
class DotProductPolicy : public GpuPlacementPolicy {
 public:
  explicit DotProductPolicy(ScoreOptions o = {}) : o_(o) {}
  std::string_view name() const override { return "dot-prod"; }
  // O(n).
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  ScoreOptions o_;
  TieBreaker ties_{o_.tie_break, o_.tie_seed};
};

// gpu-clustering: pods of one GPU class (shared, 1-GPU, 2-GPU, ...) gather on the same nodes;
// best-fit device. Score (higher wins), with pack = 25 * (8000 - gpu_left) / 8000 (integer):
//   node holds pods of the pod's class only        75 + pack
//   node holds the pod's class and other classes   50 + pack
//   node holds no GPU pod                          25 + pack
//   node holds only other classes                   0 + pack
//   CPU-only pod                                    0 everywhere
// When it wins: workloads of few, repeated GPU shapes; keeps shared pods off exclusive nodes.
int64_t GpuClusteringScore(const GpuNodeState& n, const GpuPod& pod);
class GpuClusteringPolicy : public GpuPlacementPolicy {
 public:
  explicit GpuClusteringPolicy(ScoreOptions o = {}) : o_(o) {}
  std::string_view name() const override { return "gpu-clustering"; }
  // O(n).
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  ScoreOptions o_;
  TieBreaker ties_{o_.tie_break, o_.tie_seed};
};

// gpu-packing: prefer partially used GPUs, then free GPUs on used nodes, then empty nodes;
// best-fit device. Score (higher wins), integer:
//   all the node's GPUs free                      max(33 - free GPUs, free GPUs)
//   must use f > 0 fully free GPUs                max(50 - f, 33)
//   fits on partially used GPUs only              max(100 - sum(left_d * 100 / 1000) / 10, 50)
//                                                 over the devices it would use (least free first)
//   CPU-only pod                                  0 everywhere
// When it wins: many small shared pods; leaves whole nodes free for multi-GPU pods.
int64_t GpuPackingScore(const GpuNodeState& n, const GpuPod& pod);
class GpuPackingPolicy : public GpuPlacementPolicy {
 public:
  explicit GpuPackingPolicy(ScoreOptions o = {}) : o_(o) {}
  std::string_view name() const override { return "gpu-packing"; }
  // O(n * devices).
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  ScoreOptions o_;
  TieBreaker ties_{o_.tie_break, o_.tie_seed};
};

// best-fit: the node with the least free resources left after the pod, CPU and GPU weighed
// equally after normalising by the largest node; best-fit device.
//   score = 100 * (1 - 0.5 (cpu_left - cpu_req)/128000 - 0.5 (gpu_left - gpu_req)/8000)
// When it wins: classic bin packing; strands little when pods are whole GPUs.
double BestFitScore(const GpuNodeState& n, const GpuPod& pod);
class BestFitPolicy : public GpuPlacementPolicy {
 public:
  explicit BestFitPolicy(ScoreOptions o = {}) : o_(o) {}
  std::string_view name() const override { return "best-fit"; }
  // O(n).
  GpuDecision Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) override;

 private:
  ScoreOptions o_;
  TieBreaker ties_{o_.tie_break, o_.tie_seed};
};

// A continuous score under `scoring`: truncated to an integer (kKubernetes) or as is (kExact).
inline double ApplyScoring(double score, Scoring scoring) {
  return scoring == Scoring::kKubernetes ? static_cast<double>(static_cast<int64_t>(score)) : score;
}

}  // namespace orrery::gpu
