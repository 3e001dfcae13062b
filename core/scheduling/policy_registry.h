// Policies selectable by name (`--policy NAME`, scenario `scheduler.policy`).
//
// To add a policy: write one file pair implementing SchedulingPolicy, then add one line to
// RegisterBuiltinPolicies() in policy_registry.cc. Nothing else changes.
//
// Thread safety: build once, then read-only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/scheduling/policy.h"
#include "core/status.h"

namespace orrery {

using PolicyFactory = std::function<std::unique_ptr<SchedulingPolicy>(const HybridOptions&)>;

class PolicyRegistry {
 public:
  // A registry holding every policy shipped with Orrery.
  static const PolicyRegistry& Builtin();

  // REQUIRES: `name` not yet registered.
  void Register(std::string name, std::string description, PolicyFactory factory);
  // NotFound (listing the known names) for an unknown name.
  StatusOr<std::unique_ptr<SchedulingPolicy>> Make(const std::string& name,
                                                   const HybridOptions& options) const;
  bool Contains(const std::string& name) const;
  struct Entry {
    std::string name;
    std::string description;
    PolicyFactory factory;
  };
  // By name.
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// Adds every built-in policy to `r`. One line per policy.
void RegisterBuiltinPolicies(PolicyRegistry& r);

}  // namespace orrery
