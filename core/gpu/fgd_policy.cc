#include "core/gpu/fgd_policy.h"

#include <cmath>

namespace orrery::gpu {

int64_t FgdPolicy::KubernetesScore(int64_t delta) const {
  const double w = model_.weight() > 0 ? static_cast<double>(model_.weight()) : 1.0;
  const double decrease_milli = -static_cast<double>(delta) / w;
  return static_cast<int64_t>(1.0 / (1.0 + std::exp(-decrease_milli / 1000.0)) * 100.0);
}

FgdPolicy::Move FgdPolicy::BestMove(const GpuNodeState& n, const GpuPod& pod) const {
  const int64_t before = model_.Weighted(n);
  const int64_t cpu_after = n.cpu_left - pod.cpu_milli;
  std::array<int16_t, kMaxDevicesPerNode> after = n.device_left;
  const std::span<const int16_t> devices(after.data(), size_t(n.num_gpus));
  Move best;
  if (!pod.IsShared()) {
    // CPU-only or whole GPUs: which free devices are taken does not change the state's shape.
    best.devices = BestFitDevices(n, pod);
    for (int8_t d : best.devices.view()) after[size_t(d)] = 0;
    best.delta = model_.Weighted(cpu_after, n.model, devices) - before;
    best.key = KeyOf(best.delta);
    return best;
  }
  // A shared pod: try every device that holds it. Devices with equal free shares lead to the same
  // state, so each distinct share is scored once, on its lowest-id device.
  std::array<int16_t, kMaxDevicesPerNode> scored{};
  int n_scored = 0;
  bool found = false;
  for (int d = 0; d < n.num_gpus; ++d) {
    const int16_t left = n.device_left[size_t(d)];
    if (left < pod.gpu_milli) continue;
    bool dup = false;
    for (int k = 0; k < n_scored; ++k) dup = dup || scored[size_t(k)] == left;
    if (dup) continue;
    scored[size_t(n_scored++)] = left;
    after[size_t(d)] = static_cast<int16_t>(left - pod.gpu_milli);
    const int64_t delta = model_.Weighted(cpu_after, n.model, devices) - before;
    after[size_t(d)] = left;
    const double key = KeyOf(delta);
    if (!found || key < best.key) {
      found = true;
      best.delta = delta;
      best.key = key;
      best.devices = DeviceList{};
      best.devices.Push(d);
    }
  }
  return best;
}

double FgdPolicy::Key(const GpuCluster& c, int node, const GpuPod& pod, std::vector<Entry>* row) {
  const GpuNodeState& n = c.node(node);
  if (row == nullptr) {
    ++stats_.moves_scored;
    return BestMove(n, pod).key;
  }
  Entry& e = (*row)[size_t(node)];
  if (e.version == n.version) {
    ++stats_.cache_hits;
    return e.move.key;
  }
  ++stats_.moves_scored;
  e.move = BestMove(n, pod);
  e.version = n.version;
  return e.move.key;
}

GpuDecision FgdPolicy::Choose(const GpuCluster& c, const GpuPod& pod, Rng& rng) {
  if (c.uid() != cluster_uid_) {  // another cluster (or a copy): nothing cached applies
    cluster_uid_ = c.uid();
    shape_rows_.clear();
    rows_.clear();
  }
  // The move depends on the pod's CPU and GPU only (memory and models filter, they do not score).
  std::vector<Entry>* row = nullptr;
  const auto key = std::make_tuple(pod.cpu_milli, pod.num_gpus, pod.gpu_milli);
  if (auto it = shape_rows_.find(key); it != shape_rows_.end()) {
    row = &rows_[it->second];
  } else if (rows_.size() < kMaxCachedShapes) {
    shape_rows_.emplace(key, rows_.size());
    rows_.emplace_back(size_t(c.size()));  // versions start at 1, so 0 marks "none"
    row = &rows_.back();
  }
  const int node = ties_.PickLowest(
      c, pod, [&](int i) { return Key(c, i, pod, row); }, rng);
  if (node < 0) return GpuDecision::Nowhere();
  return {node, BestMove(c.node(node), pod).devices};
}

}  // namespace orrery::gpu
