#include "core/scenario/scenario.h"

#include <unordered_map>

namespace orrery {

const char* WorkKindName(WorkKind k) { return k == WorkKind::kActor ? "actor" : "task"; }

agent::SubmitterOptions OwnerSubmitterOptions(const OwnerSpec& owner,
                                              agent::SubmitterOptions base) {
  base.reuse_leases = owner.reuse_leases;
  base.max_pending_lease_requests_per_class = owner.max_pending_lease_requests_per_class;
  base.idle_lease_timeout_s = owner.idle_lease_timeout_s;
  base.lease_timeout_s = owner.lease_timeout_s;
  return base;
}

std::vector<uint32_t> SchedulingClasses(const Scenario& s, uint32_t* num_classes) {
  struct Key {
    uint32_t name, shape, strategy;
    int32_t pg, bundle, env;
    WorkKind kind;
    uint32_t args_begin, args_count;  // compared by content (the producers and objects)
  };
  struct Eq {
    const Scenario* s;
    bool operator()(const Key& a, const Key& b) const {
      if (a.name != b.name || a.shape != b.shape || a.strategy != b.strategy || a.pg != b.pg ||
          a.bundle != b.bundle || a.env != b.env || a.kind != b.kind ||
          a.args_count != b.args_count) {
        return false;
      }
      for (uint32_t i = 0; i < a.args_count; ++i) {
        const ArgSpec& x = s->args[a.args_begin + i];
        const ArgSpec& y = s->args[b.args_begin + i];
        if (x.producer != y.producer || x.node != y.node || x.bytes != y.bytes) return false;
      }
      return true;
    }
  };
  struct Hash {
    const Scenario* s;
    size_t operator()(const Key& k) const {
      auto mix = [](uint64_t h, uint64_t x) { return h * 0x9E3779B97F4A7C15ULL + x; };
      uint64_t h = k.name;
      h = mix(h, k.shape);
      h = mix(h, k.strategy);
      h = mix(h, static_cast<uint32_t>(k.pg));
      h = mix(h, static_cast<uint32_t>(k.bundle));
      h = mix(h, static_cast<uint32_t>(k.env));
      h = mix(h, static_cast<uint32_t>(k.kind));
      for (uint32_t i = 0; i < k.args_count; ++i) {
        const ArgSpec& a = s->args[k.args_begin + i];
        h = mix(h, static_cast<uint32_t>(a.producer));
        h = mix(h, static_cast<uint32_t>(a.node));
      }
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<Key, uint32_t, Hash, Eq> ids(16, Hash{&s}, Eq{&s});
  std::vector<uint32_t> out;
  out.reserve(s.tasks.size());
  for (const TaskSpec& t : s.tasks) {
    const Key k{t.name, t.shape, t.strategy, t.placement_group, t.bundle,
                t.env,  t.kind,  t.args_begin, t.args_count};
    out.push_back(ids.emplace(k, static_cast<uint32_t>(ids.size())).first->second);
  }
  if (num_classes != nullptr) *num_classes = static_cast<uint32_t>(ids.size());
  return out;
}

std::vector<agent::ClassOptions> SchedulingClassOptions(const Scenario& s,
                                                        const std::vector<uint32_t>& class_of,
                                                        uint32_t num_classes) {
  std::vector<agent::ClassOptions> out(num_classes);
  if (s.owner.gpu_tasks_per_lease <= 0) return out;
  for (size_t i = 0; i < s.tasks.size() && i < class_of.size(); ++i) {
    const TaskSpec& t = s.tasks[i];
    // Actors keep their one lease for life (the submitter's actor class options).
    if (t.kind == WorkKind::kTask && s.shapes[t.shape].RequestsGpu()) {
      out[class_of[i]].max_tasks_per_lease = s.owner.gpu_tasks_per_lease;
    }
  }
  return out;
}

// scenario.h promises 64 bytes a task.
static_assert(sizeof(TaskSpec) <= 64);

}  // namespace orrery
