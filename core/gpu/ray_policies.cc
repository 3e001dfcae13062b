#include "core/gpu/ray_policies.h"

#include <algorithm>

#include "core/scheduling/hybrid_policy.h"

namespace orrery::gpu {

double HybridGpuScore(const GpuNodeState& n, double threshold) {
  // As NodeResources::CriticalUtilization: 1 - available/total per resource, totals of 0 skipped.
  // The core divides fixed-point raw values (CPU milli * 10, memory MiB * 2^20 * 10^4); scaling
  // numerator and denominator by the same exact factor leaves the correctly rounded quotient
  // unchanged, so this is bit-identical.
  double u = 0.0;
  if (n.cpu_total > 0) {
    u = std::max(u, 1.0 - static_cast<double>(n.cpu_left) / static_cast<double>(n.cpu_total));
  }
  if (n.mem_total > 0) {
    u = std::max(u, 1.0 - static_cast<double>(n.mem_left) / static_cast<double>(n.mem_total));
  }
  return u < threshold ? 0.0 : u;
}

int HybridGpuPolicy::Pass(const GpuCluster& c, const GpuPod& pod, bool gpu_less_only, Rng& rng) {
  candidates_.clear();
  for (int i = 0; i < c.size(); ++i) {
    const GpuNodeState& n = c.node(i);
    if (gpu_less_only && n.HasGpu()) continue;
    if (!c.Fits(i, pod)) continue;
    candidates_.push_back({HybridGpuScore(n, options_.spread_threshold), c.rank(i), i});
  }
  if (candidates_.empty()) return -1;
  const size_t k =
      std::min<size_t>(candidates_.size(), static_cast<size_t>(HybridTopK(options_, c.size())));
  const size_t pick = k > 1 ? size_t(rng.UniformIndex(k)) : 0;
  // "Sort by node id, then stable by score" is the order (score, id); only the pick-th is needed.
  std::nth_element(candidates_.begin(), candidates_.begin() + std::ptrdiff_t(pick),
                   candidates_.end(), [](const Candidate& a, const Candidate& b) {
                     return a.score != b.score ? a.score < b.score : a.rank < b.rank;
                   });
  return candidates_[pick].node;
}

GpuDecision HybridGpuPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  int node = -1;
  if (options_.avoid_gpu_nodes && pod.num_gpus == 0) node = Pass(c, pod, true, rng);
  if (node < 0) node = Pass(c, pod, false, rng);
  if (node < 0) return GpuDecision::Nowhere();
  return {node, BestFitDevices(c.node(node), pod)};
}

GpuDecision SpreadGpuPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng&) {
  const auto& ring = c.by_id();
  const size_t n = ring.size();
  size_t idx = cursor_;
  for (size_t i = 0; i < n; ++i, ++idx) {
    const int node = ring[idx % n];
    if (!c.Fits(node, pod)) continue;
    cursor_ = (idx + 1) % n;
    return {node, BestFitDevices(c.node(node), pod)};
  }
  return GpuDecision::Nowhere();
}

}  // namespace orrery::gpu
