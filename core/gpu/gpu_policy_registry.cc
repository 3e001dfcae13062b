#include "core/gpu/gpu_policy_registry.h"

#include <algorithm>

#include "core/gpu/baseline_policies.h"
#include "core/gpu/fgd_policy.h"
#include "core/gpu/ray_policies.h"

namespace orrery::gpu {

void RegisterBuiltinGpuPolicies(GpuPolicyRegistry& r) {
  r.Register("random", "uniform among nodes that fit; random device for a shared pod",
             [](const GpuPolicyContext&) { return std::make_unique<RandomFitPolicy>(); });
  r.Register(
      "dot-prod", "smallest dot product of free (CPU, GPU) and request; best-fit device",
      [](const GpuPolicyContext& c) { return std::make_unique<DotProductPolicy>(c.scores); });
  r.Register(
      "gpu-clustering", "gather pods of one GPU class on the same nodes",
      [](const GpuPolicyContext& c) { return std::make_unique<GpuClusteringPolicy>(c.scores); });
  r.Register(
      "gpu-packing", "partial GPUs first, then free GPUs of used nodes, then empty nodes",
      [](const GpuPolicyContext& c) { return std::make_unique<GpuPackingPolicy>(c.scores); });
  r.Register("best-fit", "least free CPU + GPU left after the pod; best-fit device",
             [](const GpuPolicyContext& c) { return std::make_unique<BestFitPolicy>(c.scores); });
  r.Register("fgd", "fragmentation gradient descent: least increase of GPU fragmentation",
             [](const GpuPolicyContext& c) {
               return std::make_unique<FgdPolicy>(c.fragmentation, c.scores);
             });
  r.Register("hybrid", "Ray's DEFAULT policy (critical utilisation, top-k) on per-device GPUs",
             [](const GpuPolicyContext& c) { return std::make_unique<HybridGpuPolicy>(c.hybrid); });
  r.Register("spread", "Ray's SPREAD policy (round-robin in node-id order) on per-device GPUs",
             [](const GpuPolicyContext&) { return std::make_unique<SpreadGpuPolicy>(); });
}

const GpuPolicyRegistry& GpuPolicyRegistry::Builtin() {
  static const GpuPolicyRegistry* const kRegistry = [] {
    auto* r = new GpuPolicyRegistry();
    RegisterBuiltinGpuPolicies(*r);
    return r;
  }();
  return *kRegistry;
}

void GpuPolicyRegistry::Register(std::string name, std::string description,
                                 GpuPolicyFactory factory) {
  entries_.push_back({std::move(name), std::move(description), std::move(factory)});
}

bool GpuPolicyRegistry::Contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.name == name; });
}

std::string GpuPolicyRegistry::Names() const {
  std::string out;
  for (const auto& e : entries_) out += (out.empty() ? "" : ", ") + e.name;
  return out;
}

StatusOr<std::unique_ptr<GpuPlacementPolicy>> GpuPolicyRegistry::Make(
    const std::string& name, const GpuPolicyContext& context) const {
  for (const auto& e : entries_) {
    if (e.name == name) return e.factory(context);
  }
  return NotFound("unknown GPU placement policy '" + name + "' (known: " + Names() + ")");
}

}  // namespace orrery::gpu
