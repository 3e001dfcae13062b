// NodeDaemon: one machine's node of a live cluster. Registers with the head, heartbeats its
// resources every report period, keeps its own copy of the cluster view from the head's
// broadcast, and makes every lease decision through core's LeaseManager (policies unchanged: the
// same code the simulator runs). A granted lease runs a shell-command task as a real child
// process (ProcessSupervisor) with CUDA_VISIBLE_DEVICES set from the core's GPU device grant; the
// lease returns when the process exits.
//
// Lease protocol (NodeService):
//   RequestWorkerLease -> granted{node, devices} | spillback{node, address} | rejected |
//                         canceled{reason} | queued{wait reason}
//   A queued request's call is held open until the manager decides it (granted, spilled,
//   canceled), the caller cancels, or queue_timeout_ms passes (then the request leaves the queue
//   and the reply is `queued` with its wait reason). A spilled request is retried by the caller at
//   the target with grant_or_reject. RunTask(task_id) starts the command on a granted lease and
//   streams its output; ReturnWorkerLease gives an unused lease back. A lease not used by RunTask
//   within unused_lease_timeout is returned.
//   A RunTask caller that goes away ends its task (SIGTERM, SIGKILL after kKillGrace) unless
//   the task is `detachable` (--- head fault tolerance: a job's driver): that one runs on, its
//   output kept for ReattachTask (live/node/task_stream.h); StopTask ends any task.
//
// The lease decisions and the bundle accounting are the node agent's (core/agent/node_agent.h),
// the same one the simulator drives; this daemon carries them out (replies, records, processes).
// Placement-group bundles (the node side of core/placement/two_phase.h): PrepareBundle takes the
// bundle's resources as a grant-or-reject lease "pg:<group>:<i>" through the LeaseManager (all or
// nothing); CommitBundle adds CommittedBundleResources to the local node's totals and availability
// (the LeaseManager is rebuilt on the resized view: held leases adopted, queued requests asked
// again in order); CancelBundle returns the lease and removes what the commit added.
//
// Threading (STYLE rule 13): gRPC callback handlers check the token, validate and convert, and
// post to `loop_`, the one thread that owns the LeaseManager, the task table and the held calls;
// nothing in a handler blocks. Two helper threads talk to the head with blocking calls (they own
// no state): the heartbeat thread (each period it snapshots the state on the loop, then sends the
// Heartbeat) and the watch thread (reads the WatchClusterView stream and posts each view to the
// loop). The ProcessSupervisor thread reads children's pipes; output goes straight to the RunTask
// stream (a thread-safe StreamWriter) and exits are posted to the loop. Two more loops do the
// blocking object I/O, so the state loop never waits on disk or network: `serve_loop_` reads
// objects for FetchObject and writes PutObject objects, `fetch_loop_` fetches task arguments
// from other nodes (one at a time) and posts the outcome back.
// Logging: the LogMonitor thread (live/node/log_monitor.h) tails the workers' log files in
// <session_dir>/logs/ and publishes new lines to the head; it touches no daemon state.
//
// Runtime envs (live/node/runtime_env_agent.h): a RunTask or AttachWorker with runtime_env_json waits
// (the lease held, wait reason waiting_for_runtime_env) until the node's RuntimeEnvAgent has the
// env installed, then starts the process in it (env_vars, PATH, cwd); the reference is released
// when the lease ends. A setup failure cancels the lease with the agent's message. The agent's
// install threads post back to `loop_`.
//
// Thread safety: Start/Stop from one controlling thread; StopRequested is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery::live {

struct NodeOptions {
  std::string head_address;  // HOST:PORT. REQUIRES: non-empty
  std::string token;         // REQUIRES: non-empty
  std::string bind = "127.0.0.1";
  int port = 0;  // 0: the OS picks one
  // Default: "<hostname>-<port>".
  std::string node_id;
  ResourceSet total;  // GPU (whole) becomes that many devices
  Labels labels;
  bool is_head_node = false;  // started with the head: the CLI's default entry node
  SchedulerOptions scheduler;
  uint64_t seed = 0;  // the lease manager's Rng
  std::chrono::milliseconds register_timeout{10000};
  std::chrono::milliseconds unused_lease_timeout{30000};
  // The node-local object store's directory; empty: a private temp dir. Removed on Stop.
  std::string object_dir;
  // The binary whose `__worker` entry point runs pooled workers; empty: this process's binary.
  std::string worker_exe;
  size_t max_idle_workers = 16;  // idle pooled workers kept per runtime env
  // The session directory on this machine (live/common/session.h): workers' log files go to its logs/,
  // runtime envs are installed under it. Empty: a private temp dir, removed on Stop.
  std::string session_dir;
  // --- runtime envs (live/node/runtime_env_agent.h): installs go to <session_dir>/runtime_envs/.
  uint64_t runtime_env_cache_bytes = uint64_t{10} << 30;  // unused installs evicted beyond this
  std::string runtime_env_eviction = "arbitrary";         // arbitrary | lru | gdsf
  // Per setup command; an env's setup_timeout_s may only be lower (this is the maximum).
  double runtime_env_setup_timeout_s = 600.0;
  // live/node/orphan_reaper.h: the daemon adopts and kills what tasks and setups leave behind
  // (`setsid cmd &`), and everything left at Stop(). Only for a daemon alone in its process
  // (`orrery __node`); in-process nodes (`live run --local`, tests) leave it off.
  bool reap_orphans = false;
  int runtime_env_max_attempts = 3;  // --- live run: attempts per install, then tasks canceled
  // --- Metrics: Prometheus /metrics on bind:metrics_port (live/common/metrics.h). 0: an OS-chosen
  // port; -1: no metrics endpoint. Its address is reported to the head at registration.
  int metrics_port = 0;
  // --- Issue 17. The address other machines reach this node at (live/common/node_address.h);
  // empty: `bind`, or the hostname when bind is 0.0.0.0 / ::. REQUIRES: CheckNodeIp passed.
  std::string node_ip;
  // GET /healthz and /readyz on bind:health_port (live/common/health.h): ready once registered
  // with the head and until it declares this node dead or it stops. 0: an OS-chosen port; -1: none.
  int health_port = -1;
};

class NodeDaemon {
 public:
  // Binds, registers with the head (retrying until register_timeout), then serves.
  static StatusOr<std::unique_ptr<NodeDaemon>> Start(const NodeOptions& options);
  ~NodeDaemon();

  const std::string& node_id() const;
  std::string address() const;
  // Set once a Shutdown RPC was received: the owner should call Stop().
  bool StopRequested() const;
  // HOST:PORT of the Prometheus endpoint; empty if disabled (metrics_port -1).
  std::string metrics_address() const;
  // The health probes' port; 0 if disabled (health_port -1).
  int health_port() const;
  // Cancels held calls, terminates running tasks (SIGTERM, SIGKILL after 2 s), stops the helper
  // threads and the server. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit NodeDaemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::live
