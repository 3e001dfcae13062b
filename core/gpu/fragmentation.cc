#include "core/gpu/fragmentation.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace orrery::gpu {

TypicalPods TypicalPods::FromPods(std::span<const GpuPod> pods, const TypicalPodOptions& o) {
  // Shape -> count. A std::map keeps the construction independent of hash order.
  using Key = std::tuple<int64_t, int32_t, int32_t, ModelSet>;
  std::map<Key, int64_t> counts;
  int64_t considered = 0;
  for (const GpuPod& p : pods) {
    if (p.num_gpus == 0 && !o.include_cpu_pods) continue;
    ++counts[Key{p.cpu_milli, p.num_gpus, p.gpu_milli, p.models}];
    ++considered;
  }
  std::vector<TypicalPod> all;
  all.reserve(counts.size());
  for (const auto& [k, n] : counts) {
    all.push_back({.cpu_milli = std::get<0>(k),
                   .num_gpus = std::get<1>(k),
                   .gpu_milli = std::get<2>(k),
                   .models = std::get<3>(k),
                   .count = n});
  }
  // Decreasing count; ties to the "larger" shape, as the artifact's reversed sort does.
  std::sort(all.begin(), all.end(), [](const TypicalPod& a, const TypicalPod& b) {
    return std::tie(b.count, b.cpu_milli, b.gpu_milli, b.num_gpus, b.models) <
           std::tie(a.count, a.cpu_milli, a.gpu_milli, a.num_gpus, a.models);
  });
  TypicalPods t;
  t.workload_pods_ = considered;
  const double target = o.coverage * static_cast<double>(considered);
  for (const TypicalPod& p : all) {
    if (static_cast<double>(t.total_count_) >= target && !t.pods_.empty()) break;
    t.pods_.push_back(p);
    t.total_count_ += p.count;
  }
  return t;
}

StatusOr<TypicalPods> TypicalPods::FromList(std::vector<TypicalPod> pods) {
  TypicalPods t;
  for (size_t i = 0; i < pods.size(); ++i) {
    const TypicalPod& p = pods[i];
    const std::string field = "typical_pods[" + std::to_string(i) + "]";
    if (p.count < 1) return InvalidArgument(field + ": count must be >= 1");
    GpuPod shape{.cpu_milli = p.cpu_milli, .num_gpus = p.num_gpus, .gpu_milli = p.gpu_milli};
    ORRERY_RETURN_IF_ERROR(shape.Validate(field));
    t.total_count_ += p.count;
  }
  t.pods_ = std::move(pods);
  t.workload_pods_ = t.total_count_;
  return t;
}

double TypicalPods::coverage() const {
  return workload_pods_ > 0
             ? static_cast<double>(total_count_) / static_cast<double>(workload_pods_)
             : 1.0;
}

FragmentationModel::FragmentationModel(const TypicalPods& typical) {
  weight_ = typical.total_count();
  // (share, count, models) -> (cpu -> count)
  std::map<std::tuple<int32_t, int32_t, ModelSet>, std::map<int64_t, int64_t>> by_group;
  for (const TypicalPod& t : typical.pods()) {
    if (t.num_gpus == 0) continue;  // a CPU-only pod uses no GPU: all free GPU is its fragment
    by_group[{t.gpu_milli, t.num_gpus, t.models}][t.cpu_milli] += t.count;
  }
  for (const auto& [key, cpus] : by_group) {
    Group g;
    g.gpu_milli = std::get<0>(key);
    g.num_gpus = std::get<1>(key);
    g.models = std::get<2>(key);
    int64_t cum = 0;
    for (const auto& [cpu, n] : cpus) {
      cum += n;
      g.cpu.push_back(cpu);
      g.cum_count.push_back(cum);
    }
    groups_.push_back(std::move(g));
  }
}

int64_t FragmentationModel::ForPod(const GpuNodeState& n, const TypicalPod& t) {
  int64_t free = 0;
  int64_t free_on_fitting = 0;  // free GPU on devices with at least t.gpu_milli free
  int fitting = 0;
  for (int16_t left : n.devices()) {
    free += left;
    if (t.num_gpus > 0 && left >= t.gpu_milli) {
      free_on_fitting += left;
      ++fitting;
    }
  }
  const bool runs = t.num_gpus > 0 && t.models.Contains(n.model) && n.cpu_left >= t.cpu_milli &&
                    fitting >= t.num_gpus;
  return runs ? free - free_on_fitting : free;
}

int64_t FragmentationModel::Weighted(int64_t cpu_left, ModelId model,
                                     std::span<const int16_t> device_left) const {
  // Free shares in decreasing order and their prefix sums: the devices able to hold a share of
  // m are a prefix of this order.
  std::array<int16_t, kMaxDevicesPerNode> sorted{};
  const int nd = static_cast<int>(device_left.size());
  int64_t free = 0;
  for (int i = 0; i < nd; ++i) {
    int16_t v = device_left[size_t(i)];
    free += v;
    int j = i;
    while (j > 0 && sorted[size_t(j - 1)] < v) {
      sorted[size_t(j)] = sorted[size_t(j - 1)];
      --j;
    }
    sorted[size_t(j)] = v;
  }
  if (free == 0) return 0;
  std::array<int64_t, kMaxDevicesPerNode + 1> prefix{};
  for (int i = 0; i < nd; ++i) prefix[size_t(i + 1)] = prefix[size_t(i)] + sorted[size_t(i)];

  // W * F = sum_t count_t * (free - [t runs] * free_on_fitting(t)).
  int64_t usable = 0;
  for (const Group& g : groups_) {
    if (!g.models.Contains(model)) continue;
    int fitting = 0;
    while (fitting < nd && sorted[size_t(fitting)] >= g.gpu_milli) ++fitting;
    if (fitting < g.num_gpus || fitting == 0) continue;
    // Entries whose CPU request is at most cpu_left run here.
    const auto it = std::upper_bound(g.cpu.begin(), g.cpu.end(), cpu_left);
    if (it == g.cpu.begin()) continue;
    usable += prefix[size_t(fitting)] * g.cum_count[size_t(it - g.cpu.begin() - 1)];
  }
  return free * weight_ - usable;
}

}  // namespace orrery::gpu
