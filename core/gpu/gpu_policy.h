// The GPU placement extension point: given a GPU-sharing cluster and a pod, choose a node and the
// devices on it.
//
// A policy is a function of (cluster, pod, rng) plus state it declares: a cache of per-node scores
// keyed by (cluster uid, node version) (see gpu_cluster.h), or a cursor. It never mutates the
// cluster, reads no clock and does no I/O; the caller applies the decision (GpuCluster::Place).
//
// Shape of every policy here (STYLE: filter -> score -> select): filter = the nodes where the pod
// fits now (GpuCluster::Fits: CPU, memory, GPU model, devices); score = a per-node key; select =
// the best key, exact ties broken by node id (as the paper's artifact does) or drawn with the Rng
// (TieBreak); then a device rule picks the devices on that node.
//
// Policies (gpu_policy_registry.cc): random, dot-prod, gpu-clustering, gpu-packing, best-fit
// (baseline_policies.h), fgd (fgd_policy.h), hybrid and spread (ray_policies.h).
//
// Thread safety: a policy instance is used by one thread at a time.
#pragma once

#include <string_view>
#include <vector>

#include "core/gpu/gpu_cluster.h"
#include "core/rng.h"

namespace orrery::gpu {

// A policy's answer: a node and its devices, or nowhere (node == -1: the pod fits no node now).
struct GpuDecision {
  int node = -1;
  DeviceList devices;
  bool placed() const { return node >= 0; }
  static GpuDecision Nowhere() { return {}; }
};

class GpuPlacementPolicy {
 public:
  virtual ~GpuPlacementPolicy() = default;
  virtual std::string_view name() const = 0;
  // A node where `pod` fits now and devices on it that GpuCluster::Place accepts, or Nowhere().
  // REQUIRES: pod.Validate().ok(); pod.models was resolved by this cluster's ResolveModels.
  virtual GpuDecision Choose(const GpuCluster& cluster, const GpuPod& pod, Rng& rng) = 0;
};

// Device rules. Each REQUIRES GpuCluster::FitsState(n, pod).
// Best fit (Ray's NodeResources::Allocate and the artifact's "best" GPU selection): a shared pod
// takes the device with the least free share that holds it, lowest id on ties; a whole-GPU pod
// takes the lowest-id free devices; a CPU-only pod no device. O(devices).
DeviceList BestFitDevices(const GpuNodeState& n, const GpuPod& pod);
// A shared pod takes a device drawn uniformly among those that hold it (one Rng draw); otherwise
// as BestFitDevices. O(devices).
DeviceList RandomFitDevices(const GpuNodeState& n, const GpuPod& pod, Rng& rng);

// How a score-based policy chooses among nodes with exactly the best score.
enum class TieBreak : uint8_t {
  // The node that comes first in node-id order. The paper's artifact patches the Kubernetes
  // scheduler this way "for reproducibility"; it also makes every scoring policy fill nodes in id
  // order among equals, which matters (see README, GPU fragmentation study). [default]
  kLowestId,
  // A uniform draw among them (the stock Kubernetes scheduler's reservoir sampling).
  kRandom,
};
const char* TieBreakName(TieBreak t);  // "id" | "random"

// The resolution of the scores of dot-prod, best-fit and fgd (gpu-packing and gpu-clustering are
// integer tiers by definition).
enum class Scoring : uint8_t {
  // Integer node scores in [0, 100], truncated, as the Kubernetes score plugins of the paper's
  // artifact return them; equal integers are ties (TieBreak). Reproduces the paper's figures.
  // [default]
  kKubernetes,
  // The continuous score: only exactly equal scores tie.
  kExact,
};
const char* ScoringName(Scoring s);  // "kubernetes" | "exact"

// Options of the score-based policies. Defaults reproduce the paper's artifact.
struct ScoreOptions {
  TieBreak tie_break = TieBreak::kLowestId;
  Scoring scoring = Scoring::kKubernetes;
};

// Select: the node (among those where the pod fits now) with the lowest key(node index) wins;
// exact ties are broken by `tie` (kRandom: one Rng draw when there are several). Returns -1 if the
// pod fits nowhere. `Key` is any totally ordered type. O(n) keys.
template <typename KeyFn>
int PickLowest(const GpuCluster& c, const GpuPod& pod, KeyFn&& key, TieBreak tie, Rng& rng,
               std::vector<int>& ties) {
  ties.clear();
  using K = decltype(key(0));
  K best{};
  int chosen = -1;
  for (int i = 0; i < c.size(); ++i) {
    if (!c.Fits(i, pod)) continue;
    const K k = key(i);
    if (chosen < 0 || k < best) {
      best = k;
      chosen = i;
      ties.clear();
      ties.push_back(i);
    } else if (!(best < k)) {
      if (c.rank(i) < c.rank(chosen)) chosen = i;
      if (tie == TieBreak::kRandom) ties.push_back(i);
    }
  }
  if (chosen < 0 || tie == TieBreak::kLowestId || ties.size() == 1) return chosen;
  return ties[size_t(rng.UniformIndex(ties.size()))];
}

}  // namespace orrery::gpu
