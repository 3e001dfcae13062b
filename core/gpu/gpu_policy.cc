#include "core/gpu/gpu_policy.h"

namespace orrery::gpu {

const char* ScoringName(Scoring s) { return s == Scoring::kExact ? "exact" : "kubernetes"; }

DeviceList BestFitDevices(const GpuNodeState& n, const GpuPod& pod) {
  DeviceList out;
  if (pod.num_gpus == 0) return out;
  if (pod.IsShared()) {
    int best = -1;
    for (int d = 0; d < n.num_gpus; ++d) {
      const int16_t left = n.device_left[size_t(d)];
      if (left >= pod.gpu_milli && (best < 0 || left < n.device_left[size_t(best)])) best = d;
    }
    if (best >= 0) out.Push(best);
    return out;
  }
  for (int d = 0; d < n.num_gpus && out.size < pod.num_gpus; ++d) {
    if (n.device_left[size_t(d)] == kMilliPerGpu) out.Push(d);
  }
  return out;
}

DeviceList RandomFitDevices(const GpuNodeState& n, const GpuPod& pod, Rng& rng) {
  if (!pod.IsShared()) return BestFitDevices(n, pod);
  std::array<int, kMaxDevicesPerNode> fitting{};
  int count = 0;
  for (int d = 0; d < n.num_gpus; ++d) {
    if (n.device_left[size_t(d)] >= pod.gpu_milli) fitting[size_t(count++)] = d;
  }
  DeviceList out;
  if (count == 0) return out;
  out.Push(fitting[size_t(count == 1 ? 0 : rng.UniformIndex(uint64_t(count)))]);
  return out;
}

}  // namespace orrery::gpu
