// OrphanReaper: nothing a task or a runtime-env setup starts outlives it or the node.
//
// A command can leave its process group (`setsid sleep 777 &`), so killing the group at the end
// of a task or a setup misses it, and `orrery stop` used to leave it running. With the reaper,
// the node daemon is the child subreaper (prctl PR_SET_CHILD_SUBREAPER) of everything it starts:
// an orphan is re-parented to the daemon instead of init. Sweep() (called periodically) kills
// every direct child that the daemon does not know (`is_known(pid)` false) in two consecutive
// sweeps — the grace covers a child spawned but not yet registered — and reaps zombies of such
// children. KillAll() kills every remaining descendant at shutdown.
//
// Only for a daemon alone in its process: `orrery __node` (in-process nodes of `live run --local`
// share one process and would see each other's children as unknown).
// Thread safety: Sweep and KillAll from one thread (the node's loop / its Stop); `is_known` must
// be thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>

#include "core/status.h"

namespace orrery::live {

class OrphanReaper {
 public:
  // Makes this process the child subreaper. FailedPrecondition if the kernel refuses.
  static Status BecomeSubreaper();

  explicit OrphanReaper(std::function<bool(pid_t)> is_known) : is_known_(std::move(is_known)) {}

  // One sweep over /proc (O(processes on the machine)). Returns the command lines of the
  // processes it killed (for the daemon's log).
  std::vector<std::string> Sweep();
  // Kills every child (and, as they die, their re-parented descendants) and reaps them, for up
  // to `deadline`. Returns how many it killed.
  int KillAll(std::chrono::milliseconds deadline);

 private:
  std::function<bool(pid_t)> is_known_;
  std::set<pid_t> suspects_;  // unknown children seen in the previous sweep
};

// The direct children of this process, from /proc: (pid, state letter).
std::vector<std::pair<pid_t, char>> ChildrenOfSelf();

}  // namespace orrery::live
