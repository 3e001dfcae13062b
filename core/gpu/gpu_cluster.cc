#include "core/gpu/gpu_cluster.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <numeric>

namespace orrery::gpu {

Status GpuPod::Validate(const std::string& field) const {
  if (cpu_milli < 0) return InvalidArgument(field + ": cpu_milli must be >= 0");
  if (memory_mib < 0) return InvalidArgument(field + ": memory_mib must be >= 0");
  if (num_gpus < 0 || num_gpus > kMaxDevicesPerNode) {
    return InvalidArgument(field + ": num_gpus must be in [0, " +
                           std::to_string(kMaxDevicesPerNode) + "]");
  }
  if (num_gpus == 0 && gpu_milli != 0) {
    return InvalidArgument(field + ": gpu_milli must be 0 when num_gpus is 0");
  }
  if (num_gpus == 1 && (gpu_milli <= 0 || gpu_milli > kMilliPerGpu)) {
    return InvalidArgument(field + ": gpu_milli must be in [1, 1000] when num_gpus is 1");
  }
  if (num_gpus > 1 && gpu_milli != kMilliPerGpu) {
    return InvalidArgument(field + ": gpu_milli must be 1000 when num_gpus > 1 (whole devices)");
  }
  return Status::Ok();
}

uint64_t GpuCluster::NextUid() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

GpuCluster::GpuCluster(const GpuCluster& o)
    : nodes_(o.nodes_),
      ids_(o.ids_),
      rank_(o.rank_),
      by_id_(o.by_id_),
      models_(o.models_),
      uid_(NextUid()),
      gpu_total_(o.gpu_total_),
      gpu_allocated_(o.gpu_allocated_),
      cpu_total_(o.cpu_total_),
      cpu_allocated_(o.cpu_allocated_),
      mem_total_(o.mem_total_),
      mem_allocated_(o.mem_allocated_) {}

GpuCluster& GpuCluster::operator=(const GpuCluster& o) {
  if (this == &o) return *this;
  GpuCluster copy(o);
  *this = std::move(copy);
  return *this;
}

StatusOr<GpuCluster> GpuCluster::Create(const std::vector<GpuNodeSpec>& specs) {
  GpuCluster c;
  std::map<std::string, int, std::less<>> seen;
  c.nodes_.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const GpuNodeSpec& s = specs[i];
    const std::string field = "nodes[" + std::to_string(i) + "] '" + s.id + "'";
    if (s.id.empty()) return InvalidArgument("nodes[" + std::to_string(i) + "]: empty node id");
    if (auto [it, fresh] = seen.emplace(s.id, static_cast<int>(i)); !fresh) {
      return InvalidArgument(field + ": duplicate node id (first at nodes[" +
                             std::to_string(it->second) + "])");
    }
    if (s.cpu_milli < 0 || s.memory_mib < 0) {
      return InvalidArgument(field + ": negative CPU or memory");
    }
    if (s.num_gpus < 0 || s.num_gpus > kMaxDevicesPerNode) {
      return InvalidArgument(field + ": GPU count must be in [0, " +
                             std::to_string(kMaxDevicesPerNode) + "]");
    }
    GpuNodeState n;
    n.cpu_total = n.cpu_left = s.cpu_milli;
    n.mem_total = n.mem_left = s.memory_mib;
    n.num_gpus = static_cast<int8_t>(s.num_gpus);
    if (!s.model.empty()) {
      auto it = std::find(c.models_.begin(), c.models_.end(), s.model);
      if (it == c.models_.end()) {
        if (static_cast<int>(c.models_.size()) == kMaxModels) {
          return InvalidArgument(field + ": more than " + std::to_string(kMaxModels) +
                                 " GPU models in one cluster");
        }
        c.models_.push_back(s.model);
        it = c.models_.end() - 1;
      }
      n.model = static_cast<ModelId>(it - c.models_.begin());
    }
    for (int d = 0; d < s.num_gpus; ++d) n.device_left[size_t(d)] = kMilliPerGpu;
    Refresh(n);
    c.gpu_total_ += n.gpu_total();
    c.cpu_total_ += n.cpu_total;
    c.mem_total_ += n.mem_total;
    c.nodes_.push_back(n);
    c.ids_.push_back(s.id);
  }
  c.by_id_.resize(c.nodes_.size());
  std::iota(c.by_id_.begin(), c.by_id_.end(), 0);
  std::sort(c.by_id_.begin(), c.by_id_.end(),
            [&](int a, int b) { return c.ids_[size_t(a)] < c.ids_[size_t(b)]; });
  c.rank_.resize(c.nodes_.size());
  for (size_t r = 0; r < c.by_id_.size(); ++r) c.rank_[size_t(c.by_id_[r])] = static_cast<int>(r);
  return c;
}

ModelSet GpuCluster::ResolveModels(std::string_view spec) const {
  ModelSet set = ModelSet::None();
  bool named = false;
  size_t b = 0;
  while (b <= spec.size()) {
    size_t e = spec.find('|', b);
    if (e == std::string_view::npos) e = spec.size();
    std::string_view name = spec.substr(b, e - b);
    if (!name.empty()) {
      named = true;
      auto it = std::find(models_.begin(), models_.end(), name);
      if (it != models_.end()) set.Add(static_cast<ModelId>(it - models_.begin()));
    }
    b = e + 1;
  }
  return named ? set : ModelSet::Any();
}

bool GpuCluster::FitsState(const GpuNodeState& n, const GpuPod& pod) {
  if (n.cpu_left < pod.cpu_milli || n.mem_left < pod.memory_mib) return false;
  if (!pod.models.Contains(n.model)) return false;
  if (pod.num_gpus == 0) return true;
  if (pod.IsShared()) return n.max_device_left >= pod.gpu_milli;
  return n.free_devices >= pod.num_gpus;
}

bool GpuCluster::FitsEmpty(int i, const GpuPod& pod) const {
  const GpuNodeState& n = nodes_[size_t(i)];
  if (n.cpu_total < pod.cpu_milli || n.mem_total < pod.memory_mib) return false;
  if (!pod.models.Contains(n.model)) return false;
  return n.num_gpus >= pod.num_gpus;
}

bool GpuCluster::AnyFitsEmpty(const GpuPod& pod) const {
  for (int i = 0; i < size(); ++i) {
    if (FitsEmpty(i, pod)) return true;
  }
  return false;
}

void GpuCluster::Refresh(GpuNodeState& n) {
  int32_t sum = 0;
  int16_t mx = 0;
  int8_t free = 0;
  for (int d = 0; d < n.num_gpus; ++d) {
    const int16_t v = n.device_left[size_t(d)];
    sum += v;
    mx = std::max(mx, v);
    if (v == kMilliPerGpu) ++free;
  }
  n.gpu_left = sum;
  n.max_device_left = mx;
  n.free_devices = free;
  int8_t classes = 0;
  for (int32_t c : n.gpu_class_pods) classes = static_cast<int8_t>(classes + (c > 0 ? 1 : 0));
  n.gpu_classes = classes;
  ++n.version;
}

namespace {
// The gpu_class_pods slot of a GPU pod.
size_t ClassOf(const GpuPod& pod) { return pod.IsShared() ? 0 : size_t(pod.num_gpus); }

Status CheckDevices(const GpuNodeState& n, const GpuPod& pod, const DeviceList& devices) {
  if (devices.size != pod.num_gpus) {
    return InvalidArgument("the pod needs " + std::to_string(pod.num_gpus) + " device(s), " +
                           std::to_string(devices.size) + " given");
  }
  uint32_t seen = 0;
  for (int8_t d : devices.view()) {
    if (d < 0 || d >= n.num_gpus) return InvalidArgument("no device " + std::to_string(d));
    if ((seen >> d) & 1) return InvalidArgument("device " + std::to_string(d) + " given twice");
    seen |= 1u << d;
  }
  return Status::Ok();
}
}  // namespace

Status GpuCluster::Place(int i, const GpuPod& pod, const DeviceList& devices) {
  GpuNodeState& n = nodes_[size_t(i)];
  if (!FitsState(n, pod)) return InvalidArgument("the pod does not fit node " + ids_[size_t(i)]);
  ORRERY_RETURN_IF_ERROR(CheckDevices(n, pod, devices));
  for (int8_t d : devices.view()) {
    if (n.device_left[size_t(d)] < pod.gpu_milli) {
      return InvalidArgument("device " + std::to_string(d) + " of node " + ids_[size_t(i)] +
                             " has only " + std::to_string(n.device_left[size_t(d)]) +
                             " milli-GPU free");
    }
  }
  for (int8_t d : devices.view()) {
    n.device_left[size_t(d)] = static_cast<int16_t>(n.device_left[size_t(d)] - pod.gpu_milli);
  }
  n.cpu_left -= pod.cpu_milli;
  n.mem_left -= pod.memory_mib;
  if (pod.num_gpus > 0) ++n.gpu_class_pods[ClassOf(pod)];
  Refresh(n);
  gpu_allocated_ += pod.TotalGpuMilli();
  cpu_allocated_ += pod.cpu_milli;
  mem_allocated_ += pod.memory_mib;
  return Status::Ok();
}

Status GpuCluster::Remove(int i, const GpuPod& pod, const DeviceList& devices) {
  GpuNodeState& n = nodes_[size_t(i)];
  ORRERY_RETURN_IF_ERROR(CheckDevices(n, pod, devices));
  if (n.cpu_left + pod.cpu_milli > n.cpu_total || n.mem_left + pod.memory_mib > n.mem_total ||
      (pod.num_gpus > 0 && n.gpu_class_pods[ClassOf(pod)] == 0)) {
    return InvalidArgument("node " + ids_[size_t(i)] + " does not hold such a pod");
  }
  for (int8_t d : devices.view()) {
    if (n.device_left[size_t(d)] + pod.gpu_milli > kMilliPerGpu) {
      return InvalidArgument("device " + std::to_string(d) + " of node " + ids_[size_t(i)] +
                             " does not hold the pod's share");
    }
  }
  for (int8_t d : devices.view()) {
    n.device_left[size_t(d)] = static_cast<int16_t>(n.device_left[size_t(d)] + pod.gpu_milli);
  }
  n.cpu_left += pod.cpu_milli;
  n.mem_left += pod.memory_mib;
  if (pod.num_gpus > 0) --n.gpu_class_pods[ClassOf(pod)];
  Refresh(n);
  gpu_allocated_ -= pod.TotalGpuMilli();
  cpu_allocated_ -= pod.cpu_milli;
  mem_allocated_ -= pod.memory_mib;
  return Status::Ok();
}

}  // namespace orrery::gpu
