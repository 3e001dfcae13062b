// A GPU-sharing cluster for placement studies: nodes with CPU, memory and per-device GPUs of one
// model each, and the pods placed on them.
//
// This is the state the GPU placement policies (gpu_policy.h) read and the fragmentation measure
// (fragmentation.h) is defined on. It follows the device rules of DESIGN section 2 at the
// resolution of the Alibaba GPU trace: a GPU device holds 1000 milli-GPUs; a pod asks for either a
// share of one device (num_gpus == 1, gpu_milli < 1000) or k whole devices on one node
// (gpu_milli == 1000). CPU is in milli-cores and memory in MiB, both real constraints.
//
// Why not NodeResources/ClusterView: placement studies evaluate millions of hypothetical
// placements per run (fragmentation gradient descent scores every node and device for every pod),
// so the state is a flat array of small fixed-size records with the derived figures the policies
// need (free devices, largest free share, per-class pod counts) kept up to date on every change.
// ray_policies.h shows the decisions are the same as the core's hybrid and spread policies on the
// equivalent ClusterView.
//
// Incremental scoring: every node carries a version that changes whenever the node does, and the
// cluster an id that changes when it is copied, so a policy can cache per-node scores keyed by
// (uid, version) and rescore only the nodes that changed since it last looked.
//
// Thread safety: a value type; not synchronised. Distinct clusters may be used from distinct
// threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace orrery::gpu {

inline constexpr int32_t kMilliPerGpu = 1000;
// Devices per node; nodes with more are rejected by GpuCluster::Create.
inline constexpr int kMaxDevicesPerNode = 16;
// Distinct GPU models per cluster; more are rejected by GpuCluster::Create.
inline constexpr int kMaxModels = 64;

// Index into GpuCluster::models(); -1 = the node has no GPU model.
using ModelId = int16_t;

// The GPU models a pod accepts: any (no constraint) or a set of the cluster's models. A pod whose
// constraint names only models absent from the cluster has an empty set and fits no GPU node.
class ModelSet {
 public:
  static ModelSet Any() { return ModelSet(true, 0); }
  static ModelSet None() { return ModelSet(false, 0); }
  // REQUIRES: 0 <= m < kMaxModels.
  void Add(ModelId m) { mask_ |= uint64_t{1} << m; }
  bool any() const { return any_; }
  uint64_t mask() const { return mask_; }
  // A node of model `m` (-1 = no model) is acceptable.
  bool Contains(ModelId m) const { return any_ || (m >= 0 && ((mask_ >> m) & 1) != 0); }
  friend bool operator==(const ModelSet&, const ModelSet&) = default;
  friend auto operator<=>(const ModelSet&, const ModelSet&) = default;

 private:
  ModelSet(bool any, uint64_t mask) : any_(any), mask_(mask) {}
  bool any_ = true;
  uint64_t mask_ = 0;
};

// What a pod asks for. Value type.
struct GpuPod {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t num_gpus = 0;   // 0 = CPU-only
  int32_t gpu_milli = 0;  // per device: (0, 1000] if num_gpus == 1, else 1000 (0 if CPU-only)
  ModelSet models = ModelSet::Any();

  // A share of one device.
  bool IsShared() const { return num_gpus == 1 && gpu_milli < kMilliPerGpu; }
  int64_t TotalGpuMilli() const { return int64_t{num_gpus} * gpu_milli; }
  // Checks the shape rules above. `field` prefixes the message.
  Status Validate(const std::string& field = "pod") const;
};

// One node as the importer describes it.
struct GpuNodeSpec {
  std::string id;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t num_gpus = 0;
  std::string model;  // "" = none
};

// The live state of one node. Read-only to everything but GpuCluster.
struct GpuNodeState {
  int64_t cpu_total = 0, cpu_left = 0;  // milli-cores
  int64_t mem_total = 0, mem_left = 0;  // MiB
  ModelId model = -1;
  int8_t num_gpus = 0;
  int8_t free_devices = 0;      // devices with all 1000 milli free
  int16_t max_device_left = 0;  // the largest free share of one device (0 if none)
  int32_t gpu_left = 0;         // sum of device_left
  std::array<int16_t, kMaxDevicesPerNode> device_left{};  // milli free per device
  // Placed GPU pods by class, for gpu-clustering: [0] = shared-GPU pods, [k] = k-whole-GPU pods.
  std::array<int32_t, kMaxDevicesPerNode + 1> gpu_class_pods{};
  int8_t gpu_classes = 0;  // number of non-zero entries of gpu_class_pods
  uint64_t version = 0;    // changes whenever anything above changes

  bool HasGpu() const { return num_gpus > 0; }
  int32_t gpu_total() const { return int32_t{num_gpus} * kMilliPerGpu; }
  std::span<const int16_t> devices() const { return {device_left.data(), size_t(num_gpus)}; }
};

// Devices granted to a pod on one node, by device id (ascending for whole-GPU pods).
struct DeviceList {
  int8_t size = 0;
  std::array<int8_t, kMaxDevicesPerNode> ids{};
  std::span<const int8_t> view() const { return {ids.data(), size_t(size)}; }
  void Push(int id) { ids[size_t(size++)] = static_cast<int8_t>(id); }
  friend bool operator==(const DeviceList& a, const DeviceList& b) {
    return a.size == b.size && std::equal(a.ids.begin(), a.ids.begin() + a.size, b.ids.begin());
  }
};

class GpuCluster {
 public:
  GpuCluster() : uid_(NextUid()) {}
  // Validates and builds. InvalidArgument (naming the node) for an empty or duplicate id, a
  // negative quantity, more than kMaxDevicesPerNode devices, or more than kMaxModels models.
  // Nodes keep the given order (their index); models are interned by name in order of appearance.
  static StatusOr<GpuCluster> Create(const std::vector<GpuNodeSpec>& nodes);

  // A copy has its own uid: caches keyed by the original's uid are not reused for it.
  GpuCluster(const GpuCluster& o);
  GpuCluster& operator=(const GpuCluster& o);
  GpuCluster(GpuCluster&&) noexcept = default;
  GpuCluster& operator=(GpuCluster&&) noexcept = default;

  int size() const { return static_cast<int>(nodes_.size()); }
  const GpuNodeState& node(int i) const { return nodes_[size_t(i)]; }
  const std::string& id(int i) const { return ids_[size_t(i)]; }
  // Position of node `i` in node-id order (byte-wise): the order Ray's policies iterate in.
  int rank(int i) const { return rank_[size_t(i)]; }
  // Nodes in node-id order.
  const std::vector<int>& by_id() const { return by_id_; }
  const std::vector<std::string>& models() const { return models_; }
  // Identifies this object's state history (see the file comment).
  uint64_t uid() const { return uid_; }

  // Resolves a '|'-separated list of model names ("V100M16|V100M32"; "" = any) to a ModelSet.
  // Names the cluster lacks are dropped; if none remains the set is empty.
  ModelSet ResolveModels(std::string_view spec) const;

  // The pod fits what node `i` has free now (CPU, memory, model, devices). O(1) for shared and
  // whole-GPU pods (uses the derived figures).
  bool Fits(int i, const GpuPod& pod) const { return FitsState(nodes_[size_t(i)], pod); }
  static bool FitsState(const GpuNodeState& n, const GpuPod& pod);
  // The pod would fit node `i` if it were empty. O(1).
  bool FitsEmpty(int i, const GpuPod& pod) const;
  // True if some node could ever hold the pod. O(n).
  bool AnyFitsEmpty(const GpuPod& pod) const;

  // Takes the pod's resources on node `i`, the GPU share from the listed devices.
  // InvalidArgument (nothing changes) unless the pod fits, the list names num_gpus distinct valid
  // devices and each has gpu_milli free. O(devices).
  Status Place(int i, const GpuPod& pod, const DeviceList& devices);
  // Returns what Place took. InvalidArgument (nothing changes) if it would exceed the totals.
  Status Remove(int i, const GpuPod& pod, const DeviceList& devices);

  // Cluster totals, kept up to date by Place/Remove.
  int64_t gpu_total_milli() const { return gpu_total_; }
  int64_t gpu_allocated_milli() const { return gpu_allocated_; }
  int64_t cpu_total_milli() const { return cpu_total_; }
  int64_t cpu_allocated_milli() const { return cpu_allocated_; }
  int64_t memory_total_mib() const { return mem_total_; }
  int64_t memory_allocated_mib() const { return mem_allocated_; }

 private:
  static uint64_t NextUid();
  static void Refresh(GpuNodeState& n);
  std::vector<GpuNodeState> nodes_;
  std::vector<std::string> ids_;
  std::vector<int> rank_;
  std::vector<int> by_id_;
  std::vector<std::string> models_;
  uint64_t uid_ = 0;
  int64_t gpu_total_ = 0, gpu_allocated_ = 0;
  int64_t cpu_total_ = 0, cpu_allocated_ = 0;
  int64_t mem_total_ = 0, mem_allocated_ = 0;
};

}  // namespace orrery::gpu
