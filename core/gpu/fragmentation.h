// The GPU fragmentation measure of Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
// Workloads with Fragmentation Gradient Descent" (USENIX ATC'23), section 4.
//
// Definition. A target workload is a distribution over pod shapes ("typical pods" t with
// popularity p_t). For one pod shape t, the GPU resources of a node that t cannot use are its
// fragment for t:
//   - all free GPU of the node if t cannot run there at all: t needs no GPU (a CPU-only pod cannot
//     use GPUs), the node's model is not one t accepts, the node lacks the CPU t asks for, or
//     fewer than num_gpus(t) devices each have gpu_milli(t) free;
//   - otherwise the free GPU on devices that each have less than gpu_milli(t) free (t fits the
//     node but those partial devices are useless to it).
// The node's fragmentation relative to the workload is the expectation over t:
//   F(n) = sum_t p_t * F(n, t)       (milli-GPU)
// and the cluster's is the sum over nodes. Only CPU and GPU decide whether t "can run" (memory is
// not part of the paper's definition, nor of its artifact's); placement itself checks memory.
//
// Typical pods. As in the paper's artifact (hkust-adsl/kubernetes-scheduler-simulator,
// GetTypicalPods): the workload's pods are grouped by shape (CPU, GPU count, GPU share, accepted
// models); the most frequent shapes are kept, in decreasing frequency, until they account for at
// least `coverage` [95 %] of the pods; their counts, renormalised, are the popularity weights.
//
// Arithmetic is exact: weights are pod counts, so F(n) * W (W = the kept shapes' total count) is an
// integer. Policies compare these integers, which makes ties exact and decisions reproducible.
//
// Thread safety: immutable after construction; safe to share between threads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/gpu/gpu_cluster.h"

namespace orrery::gpu {

// One pod shape of the target workload and its count (the unnormalised popularity).
struct TypicalPod {
  int64_t cpu_milli = 0;
  int32_t num_gpus = 0;
  int32_t gpu_milli = 0;
  ModelSet models = ModelSet::Any();
  int64_t count = 1;
  friend bool operator==(const TypicalPod&, const TypicalPod&) = default;
};

struct TypicalPodOptions {
  // Keep the most frequent shapes until they account for at least this fraction of the pods.
  // In (0, 1]. [0.95, the artifact's setting]
  double coverage = 0.95;
  // CPU-only pods belong to the target workload (they count, and every free GPU is a fragment
  // to them). [true, the artifact's setting]
  bool include_cpu_pods = true;
};

class TypicalPods {
 public:
  TypicalPods() = default;
  // From the pods of a workload (the paper uses the trace's pod list before inflation). Shapes
  // are kept by decreasing count; ties by larger CPU, then larger GPU share, more GPUs, then
  // model set. O(p log p).
  static TypicalPods FromPods(std::span<const GpuPod> pods, const TypicalPodOptions& o = {});
  // An explicit list (tests, what-if): every entry is kept; counts are the weights.
  // InvalidArgument if a count is < 1 or a shape is invalid (GpuPod::Validate).
  static StatusOr<TypicalPods> FromList(std::vector<TypicalPod> pods);

  const std::vector<TypicalPod>& pods() const { return pods_; }
  // The weight denominator W: the kept shapes' total count.
  int64_t total_count() const { return total_count_; }
  // Pods of the workload the shapes were drawn from (0 for FromList).
  int64_t workload_pods() const { return workload_pods_; }
  // Fraction of the workload's pods the kept shapes account for (1 for FromList).
  double coverage() const;

 private:
  std::vector<TypicalPod> pods_;
  int64_t total_count_ = 0;
  int64_t workload_pods_ = 0;
};

class FragmentationModel {
 public:
  FragmentationModel() = default;
  explicit FragmentationModel(const TypicalPods& typical);

  // F(n, t) in milli-GPU, straight from the definition above (the specification the fast path
  // is tested against). O(devices).
  static int64_t ForPod(const GpuNodeState& n, const TypicalPod& t);

  // W * F(n): the node's fragmentation times the weight denominator, exact. O(G * devices) for G
  // distinct (GPU share, GPU count, models) groups among the typical pods; 0 for a node without
  // free GPU.
  int64_t Weighted(const GpuNodeState& n) const {
    return Weighted(n.cpu_left, n.model, n.devices());
  }
  // The same for a hypothetical state of a node of model `model`: `cpu_left` milli-cores and the
  // given free milli-GPU per device.
  int64_t Weighted(int64_t cpu_left, ModelId model, std::span<const int16_t> device_left) const;
  // F(n) in milli-GPU.
  double Expected(const GpuNodeState& n) const {
    return weight() > 0 ? static_cast<double>(Weighted(n)) / static_cast<double>(weight()) : 0.0;
  }
  // W.
  int64_t weight() const { return weight_; }

 private:
  // Typical pods that need GPU, grouped by what decides their device fit; within a group, by
  // CPU ascending with cumulative counts.
  struct Group {
    int32_t gpu_milli = 0;
    int32_t num_gpus = 0;
    ModelSet models = ModelSet::Any();
    std::vector<int64_t> cpu;        // ascending
    std::vector<int64_t> cum_count;  // cum_count[i] = counts of entries 0..i
  };
  std::vector<Group> groups_;
  int64_t weight_ = 0;
};

}  // namespace orrery::gpu
