#include "core/gpu/baseline_policies.h"

#include <algorithm>
#include <array>

namespace orrery::gpu {
namespace {

GpuDecision At(const GpuCluster& c, int node, const GpuPod& pod) {
  if (node < 0) return GpuDecision::Nowhere();
  return {node, BestFitDevices(c.node(node), pod)};
}

// Higher score wins: PickLowest on the negated score.
template <typename ScoreFn>
int PickHighest(const GpuCluster& c, const GpuPod& pod, ScoreFn&& score, TieBreaker& ties,
                Rng& rng) {
  return ties.PickLowest(
      c, pod, [&](int i) { return -score(i); }, rng);
}

}  // namespace

GpuDecision RandomFitPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  const int node = ties_.PickLowest(
      c, pod, [](int) { return 0; }, rng);
  if (node < 0) return GpuDecision::Nowhere();
  return {node, RandomFitDevices(c.node(node), pod, rng)};
}

double DotProductScore(const GpuNodeState& n, const GpuPod& pod) {
  // Evaluated in the artifact's order of operations, so truncation agrees with it.
  const double cpu = (static_cast<double>(n.cpu_left) / double(kMaxSpecCpuMilli)) *
                     (static_cast<double>(pod.cpu_milli) / double(kMaxSpecCpuMilli));
  const double gpu = (static_cast<double>(n.gpu_left) / double(kMaxSpecGpuMilli)) *
                     (static_cast<double>(pod.TotalGpuMilli()) / double(kMaxSpecGpuMilli));
  return 100.0 * (1.0 - (0.0 + cpu + gpu) / 2.0);
}

GpuDecision DotProductPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  return At(
      c,
      PickHighest(
          c, pod, [&](int i) { return ApplyScoring(DotProductScore(c.node(i), pod), o_.scoring); },
          ties_, rng),
      pod);
}

int64_t GpuClusteringScore(const GpuNodeState& n, const GpuPod& pod) {
  if (pod.num_gpus == 0) return 0;
  // Integer arithmetic left to right, as the artifact: 100/4 * (8000 - left) / 8000.
  const int64_t pack = 25 * (kMaxSpecGpuMilli - n.gpu_left) / kMaxSpecGpuMilli;
  const size_t cls = pod.IsShared() ? 0 : size_t(pod.num_gpus);
  if (n.gpu_class_pods[cls] > 0) return (n.gpu_classes == 1 ? 75 : 50) + pack;
  return (n.gpu_classes == 0 ? 25 : 0) + pack;
}

GpuDecision GpuClusteringPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  return At(c,
            PickHighest(
                c, pod, [&](int i) { return GpuClusteringScore(c.node(i), pod); }, ties_, rng),
            pod);
}

int64_t GpuPackingScore(const GpuNodeState& n, const GpuPod& pod) {
  if (pod.TotalGpuMilli() <= 0) return 0;
  const int64_t free = n.free_devices;
  if (free == n.num_gpus) return std::max<int64_t>(100 / 3 - free, free);
  // The devices it would use, least free first (stable by id).
  std::array<int, kMaxDevicesPerNode> order{};
  for (int d = 0; d < n.num_gpus; ++d) order[size_t(d)] = d;
  std::stable_sort(order.begin(), order.begin() + n.num_gpus, [&](int a, int b) {
    return n.device_left[size_t(a)] < n.device_left[size_t(b)];
  });
  int need = pod.num_gpus;
  int64_t fully_free_used = 0;
  int64_t free_ratio_sum = 0;  // sum over used devices of left * 100 / 1000 (integer)
  for (int k = 0; k < n.num_gpus && need > 0; ++k) {
    const int16_t left = n.device_left[size_t(order[size_t(k)])];
    if (left < pod.gpu_milli) continue;
    --need;
    if (left == kMilliPerGpu) ++fully_free_used;
    free_ratio_sum += int64_t{left} * 100 / kMilliPerGpu;
  }
  if (need > 0) return 0;
  if (fully_free_used > 0) return std::max<int64_t>(100 / 2 - fully_free_used, 100 / 3);
  return std::max<int64_t>(100 - free_ratio_sum / 10, 100 / 2);
}

GpuDecision GpuPackingPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  return At(c,
            PickHighest(
                c, pod, [&](int i) { return GpuPackingScore(c.node(i), pod); }, ties_, rng),
            pod);
}

double BestFitScore(const GpuNodeState& n, const GpuPod& pod) {
  // The artifact's order of operations: sum of 0.5 * (free - request) / max over CPU then GPU.
  double s = 0;
  s += static_cast<double>(n.cpu_left - pod.cpu_milli) / double(kMaxSpecCpuMilli) * 0.5;
  s += static_cast<double>(n.gpu_left - pod.TotalGpuMilli()) / double(kMaxSpecGpuMilli) * 0.5;
  return (1.0 - s) * 100.0;
}

GpuDecision BestFitPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  return At(
      c,
      PickHighest(
          c, pod, [&](int i) { return ApplyScoring(BestFitScore(c.node(i), pod), o_.scoring); },
          ties_, rng),
      pod);
}

}  // namespace orrery::gpu
