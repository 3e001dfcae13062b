// LocalProcessProvider: the live backend's node provider (core/autoscaler/node_provider.h) for
// one machine. Launch starts `orrery __node` daemons on this machine (as `orrery start
// --address` does): node id `<type>-<n>` (n counts up per type and is never reused by one
// provider), the type's resources and labels plus `node_type=<type>`, the cluster token in the
// environment (never on the command line). A node is pending from Launch until the head reports
// it registered and alive (Observe), then running. Terminate turns a node terminating; the owner
// drains it on the head (no new leases go there) and the provider sends SIGTERM once the node
// is idle (or was never registered, or after drain_timeout_s), then SIGKILL after kill_grace_s.
// A node disappears from List() when its process has exited (reaped by a ProcessSupervisor).
//
// Thread safety: every method is thread-safe (one mutex; the supervisor thread reports exits).
// Launch forks and execs (posix_spawn): a few milliseconds, fine on an event loop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/autoscaler/node_provider.h"
#include "core/autoscaler/planner.h"
#include "live/common/process.h"

namespace orrery::live {

struct LocalProcessProviderOptions {
  std::string orrery_exe;    // the `orrery` binary. REQUIRES: non-empty
  std::string head_address;  // HOST:PORT the nodes register with. REQUIRES: non-empty
  std::string token;         // the cluster token. REQUIRES: non-empty
  std::string session_dir;   // passed to the nodes; empty: each node uses a private temp dir
  // Node daemon output goes to <log_dir>/node-<id>.log; empty: discarded.
  std::string log_dir;
  // <pid_dir>/node-<pid>.pid while a node runs (so `orrery stop` finds it); empty: none.
  std::string pid_dir;
  std::map<std::string, autoscaler::NodeTypeConfig> node_types;
  std::map<std::string, int64_t> first_index;  // by type: the first <n> of <type>-<n> [0]
  // Seconds on the owner's clock (the clock of the planner's now_s). REQUIRES: set.
  std::function<double()> now_s;
  double drain_timeout_s = 30.0;  // a draining node still busy after this is stopped anyway
  double kill_grace_s = 5.0;      // SIGTERM -> SIGKILL
  double boot_timeout_s = 60.0;   // pending longer than this: terminated (it never registered)
};

// What the head sees of one node, for Observe.
struct ObservedNode {
  bool alive = false;  // registered and heartbeating
  bool idle = false;   // nothing leased or queued there
};

class LocalProcessProvider final : public autoscaler::NodeProvider {
 public:
  explicit LocalProcessProvider(LocalProcessProviderOptions options);
  // Shutdown(): no node process outlives the provider.
  ~LocalProcessProvider() override;

  Status Launch(const std::string& type, int64_t count) override;
  Status Terminate(const std::vector<NodeId>& nodes) override;
  StatusOr<std::vector<autoscaler::ProviderNode>> List() override;

  // Advances life cycles from the head's node table (by node id): pending -> running when the
  // node is alive; terminating nodes get SIGTERM / SIGKILL as described above; pending nodes
  // past boot_timeout_s are terminated. Returns lines worth logging (a node that exited early).
  std::vector<std::string> Observe(const std::map<NodeId, ObservedNode>& head_nodes);
  // SIGTERM to every node, SIGKILL to those left after `grace_s`; blocks up to that long.
  void Shutdown(double grace_s = 3.0);
  // The daemon's pid (0 if unknown).
  pid_t PidOf(const NodeId& id) const;

 private:
  struct Managed {
    std::string type;
    autoscaler::ProviderNodeState state = autoscaler::ProviderNodeState::kPending;
    double launch_time_s = 0;
    pid_t pid = 0;
    double terminate_at_s = -1;  // when Terminate asked
    double sigterm_at_s = -1;
    bool sigkill_sent = false;
    bool was_running = false;
  };
  std::vector<std::string> ArgvFor(const NodeId& id, const std::string& type) const;
  void OnExit(const NodeId& id, pid_t pid, int exit_code, int signal);

  const LocalProcessProviderOptions o_;
  mutable std::mutex mu_;
  std::map<NodeId, Managed> nodes_;            // guarded by mu_; not yet exited
  std::map<std::string, int64_t> next_index_;  // guarded by mu_; per type
  std::vector<std::string> exits_;             // guarded by mu_; early exits to report
  // Last: destroyed first, so no exit callback runs after the members above are gone.
  std::unique_ptr<ProcessSupervisor> supervisor_;
};

}  // namespace orrery::live
