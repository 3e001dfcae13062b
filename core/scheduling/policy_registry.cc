#include "core/scheduling/policy_registry.h"

#include <algorithm>

#include "core/scheduling/binpack_policy.h"
#include "core/scheduling/hybrid_policy.h"
#include "core/scheduling/random_policy.h"
#include "core/scheduling/spread_policy.h"

namespace orrery {

void RegisterBuiltinPolicies(PolicyRegistry& r) {
  r.Register("hybrid", "Ray's default: pack below the spread threshold, then spread (indexed)",
             [](const HybridOptions& o) { return std::make_unique<HybridPolicy>(o); });
  r.Register("hybrid-reference", "hybrid as a plain O(n) scan (for testing and benchmarks)",
             [](const HybridOptions& o) { return std::make_unique<HybridReferencePolicy>(o); });
  r.Register("spread", "round-robin over nodes in id order",
             [](const HybridOptions&) { return std::make_unique<SpreadPolicy>(); });
  r.Register("random", "uniform among nodes where the request is available",
             [](const HybridOptions&) { return std::make_unique<RandomPolicy>(); });
  r.Register("binpack", "example user policy: most utilised node that fits",
             [](const HybridOptions&) { return std::make_unique<BinpackPolicy>(); });
}

const PolicyRegistry& PolicyRegistry::Builtin() {
  static const PolicyRegistry* const kRegistry = [] {
    auto* r = new PolicyRegistry();
    RegisterBuiltinPolicies(*r);
    return r;
  }();
  return *kRegistry;
}

void PolicyRegistry::Register(std::string name, std::string description, PolicyFactory factory) {
  Entry e{std::move(name), std::move(description), std::move(factory)};
  auto it = std::lower_bound(entries_.begin(), entries_.end(), e.name,
                             [](const Entry& a, const std::string& n) { return a.name < n; });
  entries_.insert(it, std::move(e));
}

bool PolicyRegistry::Contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.name == name; });
}

StatusOr<std::unique_ptr<SchedulingPolicy>> PolicyRegistry::Make(
    const std::string& name, const HybridOptions& options) const {
  for (const auto& e : entries_) {
    if (e.name == name) return e.factory(options);
  }
  std::string known;
  for (const auto& e : entries_) known += (known.empty() ? "" : ", ") + e.name;
  return NotFound("unknown policy '" + name + "' (known: " + known + ")");
}

}  // namespace orrery
