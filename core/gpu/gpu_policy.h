// The GPU placement extension point: given a GPU-sharing cluster and a pod, choose a node and the
// devices on it.
//
// A policy is a function of (cluster, pod, rng) plus state it declares: a cache of per-node scores
// keyed by (cluster uid, node version) (see gpu_cluster.h), or a cursor. It never mutates the
// cluster, reads no clock and does no I/O; the caller applies the decision (GpuCluster::Place).
//
// Shape of every score-based policy here (STYLE: filter -> score -> select): filter = the nodes
// where the pod fits now (GpuCluster::Fits: CPU, memory, GPU model, devices); score = a per-node
// key; select = the best key, exact ties broken by a TieBreaker (tie_break.h: one seeded node
// order for the run, as the paper's artifact effectively does; node-id order; or a draw per
// decision); then a device rule picks the devices on that node. Ray's hybrid and spread keep
// their own node-id order semantics (ray_policies.h).
//
// Policies (gpu_policy_registry.cc): random, dot-prod, gpu-clustering, gpu-packing, best-fit
// (baseline_policies.h), fgd (fgd_policy.h), hybrid and spread (ray_policies.h).
//
// Thread safety: a policy instance is used by one thread at a time.
#pragma once

#include <string_view>

#include "core/gpu/gpu_cluster.h"
#include "core/gpu/tie_break.h"
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
  TieBreak tie_break = TieBreak::kPermuted;
  Scoring scoring = Scoring::kKubernetes;
  // Seeds the node order of TieBreak::kPermuted (TieBreaker). RunReplay (sim/gpu_replay) derives it
  // from the run's seed on a stream of its own, independent of the workload and policy draws. [0]
  uint64_t tie_seed = 0;
};

}  // namespace orrery::gpu
