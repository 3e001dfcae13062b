// GPU placement policies selectable by name (`--policy NAME` in a gpu_placement scenario; listed by
// `orrery policies`).
//
// To add a policy: one file pair implementing GpuPlacementPolicy, then one line in
// RegisterBuiltinGpuPolicies() (gpu_policy_registry.cc).
//
// Thread safety: build once, then read-only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/gpu/fragmentation.h"
#include "core/gpu/gpu_policy.h"
#include "core/scheduling/policy.h"
#include "core/status.h"

namespace orrery::gpu {

// What a factory may use to build a policy.
struct GpuPolicyContext {
  // The target workload's fragmentation measure (fgd).
  FragmentationModel fragmentation;
  // Ray's hybrid options (hybrid).
  HybridOptions hybrid;
  // Score resolution and ties of the score-based policies (dot-prod, gpu-clustering,
  // gpu-packing, best-fit, fgd).
  ScoreOptions scores;
};

using GpuPolicyFactory =
    std::function<std::unique_ptr<GpuPlacementPolicy>(const GpuPolicyContext&)>;

class GpuPolicyRegistry {
 public:
  // Every GPU placement policy shipped with Orrery.
  static const GpuPolicyRegistry& Builtin();

  // REQUIRES: `name` not yet registered.
  void Register(std::string name, std::string description, GpuPolicyFactory factory);
  // NotFound (listing the known names) for an unknown name.
  StatusOr<std::unique_ptr<GpuPlacementPolicy>> Make(const std::string& name,
                                                     const GpuPolicyContext& context) const;
  bool Contains(const std::string& name) const;
  struct Entry {
    std::string name;
    std::string description;
    GpuPolicyFactory factory;
  };
  // In registration order (the paper's order, then Ray's).
  const std::vector<Entry>& entries() const { return entries_; }
  // "random, dot-prod, ..." in registration order.
  std::string Names() const;

 private:
  std::vector<Entry> entries_;
};

// Adds every built-in GPU policy to `r`. One line per policy.
void RegisterBuiltinGpuPolicies(GpuPolicyRegistry& r);

}  // namespace orrery::gpu
