#include "core/scenario/scenario.h"

#include <unordered_map>

namespace orrery {

const char* WorkKindName(WorkKind k) { return k == WorkKind::kActor ? "actor" : "task"; }

agent::SubmitterOptions OwnerSubmitterOptions(const OwnerSpec& owner,
                                              agent::SubmitterOptions base) {
  base.reuse_leases = owner.reuse_leases;
  base.max_pending_lease_requests_per_class = owner.max_pending_lease_requests_per_class;
  base.idle_lease_timeout_s = owner.idle_lease_timeout_s;
  return base;
}

std::vector<uint32_t> SchedulingClasses(const Scenario& s, uint32_t* num_classes) {
  struct Key {
    uint32_t shape, strategy;
    int32_t pg, bundle, env;
    WorkKind kind;
    bool operator==(const Key& o) const {
      return shape == o.shape && strategy == o.strategy && pg == o.pg && bundle == o.bundle &&
             env == o.env && kind == o.kind;
    }
  };
  struct Hash {
    size_t operator()(const Key& k) const {
      uint64_t h = k.shape;
      h = h * 0x9E3779B97F4A7C15ULL + k.strategy;
      h = h * 0x9E3779B97F4A7C15ULL + static_cast<uint32_t>(k.pg);
      h = h * 0x9E3779B97F4A7C15ULL + static_cast<uint32_t>(k.bundle);
      h = h * 0x9E3779B97F4A7C15ULL + static_cast<uint32_t>(k.env);
      h = h * 0x9E3779B97F4A7C15ULL + static_cast<uint32_t>(k.kind);
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<Key, uint32_t, Hash> ids;
  std::vector<uint32_t> out;
  out.reserve(s.tasks.size());
  for (const TaskSpec& t : s.tasks) {
    const Key k{t.shape, t.strategy, t.placement_group, t.bundle, t.env, t.kind};
    out.push_back(ids.emplace(k, static_cast<uint32_t>(ids.size())).first->second);
  }
  if (num_classes != nullptr) *num_classes = static_cast<uint32_t>(ids.size());
  return out;
}

// scenario.h promises 64 bytes a task.
static_assert(sizeof(TaskSpec) <= 64);

}  // namespace orrery
