// The idle worker processes of one pool (live/node WorkerPool, live/worker ApiWorkerPool), by the
// node's dense env id, most recently used last. Whether a worker goes on the list, and whether a
// task takes one, is the NodeAgent's decision (core/agent/node_agent.h); this only keeps which
// process is idle, so both pools pick and drop idle workers the same way.
//
// Thread safety: none; the node's state loop owns the pool that owns it.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace orrery::live {

class IdleWorkers {
 public:
  void Push(int64_t env, pid_t pid) { idle_[env].push_back(pid); }
  // The most recently idle worker of `env` for which usable(pid) holds, taken off the list (the
  // unusable ones met on the way are dropped); 0 if none. O(dropped + 1).
  template <typename F>
  pid_t PopMostRecent(int64_t env, F usable) {
    auto it = idle_.find(env);
    while (it != idle_.end() && !it->second.empty()) {
      const pid_t pid = it->second.back();
      it->second.pop_back();
      if (usable(pid)) return pid;
    }
    return 0;
  }
  // Takes `pid` off the list of `env`; true if it was there. O(idle of env).
  bool Take(pid_t pid, int64_t env) {
    auto it = idle_.find(env);
    return it != idle_.end() && std::erase(it->second, pid) > 0;
  }
  // Removes every idle worker for which drop(env, pid) holds. O(idle).
  template <typename F>
  void EraseIf(F drop) {
    for (auto& [env, q] : idle_) {
      std::erase_if(q, [&, env = env](pid_t pid) { return drop(env, pid); });
    }
  }
  size_t size() const {
    size_t n = 0;
    for (const auto& [env, q] : idle_) n += q.size();
    return n;
  }

 private:
  std::map<int64_t, std::vector<pid_t>> idle_;
};

}  // namespace orrery::live
