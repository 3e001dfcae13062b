// HeadDaemon: the live cluster's head. Keeps the node table (alive / dead by heartbeat timeout),
// the task table behind `orrery list tasks`, and broadcasts the cluster view to every node daemon
// once per report period. It makes no scheduling decision: node daemons decide, each from its own
// (stale) copy of the view, through core's LeaseManager.
//
// Placement groups: the head places a group's bundles on its view (core PlaceBundles) and drives
// core's TwoPhaseReservation, turning its commands into asynchronous PrepareBundle / CommitBundle
// / CancelBundle calls to the nodes; replies are posted back to the loop and fed to the state
// machine; a failed attempt is retried at the machine's backoff (a loop timer). Groups are kept
// in memory only.
//
// Threading (STYLE rule 13): gRPC's callback API runs the handlers on gRPC's threads; a handler
// checks the token, validates and converts the request, and posts a closure to `loop_`, the one
// thread that owns the node and task tables. The closure updates the tables and finishes the call.
// Nothing in a handler blocks. WatchClusterView calls are StreamWriters held by the loop; every
// report period the loop marks nodes whose heartbeat is older than the timeout dead and pushes
// the view to each watcher (a slow watcher gets the newest view, not a backlog).
// Logging: PublishLogs / SubscribeLogs go to the LogHub (live/head/log_hub.h), its own state behind a
// short lock, apart from the loop.
//
// Thread safety: Start/Stop/Wait from one controlling thread; StopRequested is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "core/scheduling/scheduler.h"
#include "core/status.h"
#include "live/head/jobs/job_log.h"

namespace orrery::live {

struct LiveAutoscalerConfig;  // --- autoscaler (live/head/autoscaler/autoscaler_config.h)

struct HeadOptions {
  std::string bind = "127.0.0.1";                    // listen address
  // The address other machines reach the head at (--node-ip, live/common/node_address.h); empty:
  // `bind` (a wildcard bind: 127.0.0.1 for local clients, the hostname for metrics, as before).
  std::string node_ip;
  int port = 6379;                                   // 0: the OS picks one (see HeadDaemon::port())
  std::string token;                                 // REQUIRES: non-empty
  std::chrono::milliseconds report_period{100};      // view broadcast period (DESIGN section 3)
  // Liveness, as Ray's GCS health check: a node fails a check when no heartbeat arrived within
  // one period; after `health_check_failures` failed checks in a row it is declared dead, its
  // tasks fail over and later heartbeats from it are refused. Defaults [1 s x 5] survive a
  // loaded 2-core machine and multi-second pauses (SIGSTOP, swap, a long GC).
  std::chrono::milliseconds health_check_period{1000};
  int health_check_failures = 5;
  std::chrono::milliseconds DeadAfter() const { return health_check_period * health_check_failures; }
  // The cluster's scheduling policy and options (`orrery start --head --policy`): sent to every
  // node in the registration reply and the view; every node decides with it.
  SchedulerOptions scheduler;
  size_t max_tasks = 10000;  // finished tasks beyond this are forgotten, oldest first
  // The session directory (live/common/session.h): logs/, the job store, uploaded packages, the metrics
  // target list. Empty: a private temp dir, removed on Stop (tests, `live run --local`).
  std::string session_dir;
  // --- jobs (live/head/jobs/job_manager.h, live/head/jobs/job_http.h)
  // The job store (SQLite). Empty: jobs are kept in memory only. Job logs go to job_logs/ next
  // to it (or in the session dir, or a private temp dir, when it is empty).
  std::string job_store;
  // --- head fault tolerance (live/head/head_store.h): the SQLite file that keeps nodes, actors
  // and placement groups across a crash of the head. Empty: <session_dir>/head_store.sqlite
  // (one per session: two heads on one temp dir never share it); no session dir either:
  // nothing is kept. A head started again with the same store and session dir takes the state
  // over; a store recorded by another session is discarded, and a clean Stop clears it.
  std::string head_store;
  // After such a restart, how long a node the store lists has to report again before it is
  // declared dead (as Ray's gcs_rpc_server_reconnect_timeout_s, 60 s).
  std::chrono::milliseconds reconnect_grace{60000};
  int max_running_jobs = 16;  // drivers running at once; more wait PENDING (JobManagerOptions)
  JobLogOptions job_log;      // per-job log cap and rotation (live/head/jobs/job_log.h)
  // Port of the HTTP/JSON jobs API (0: the OS picks one; -1: none). The actual address is
  // written to <session_dir>/dashboard_address. A port that cannot be bound is logged, not fatal.
  int dashboard_port = -1;
  // --- Metrics: Prometheus /metrics on bind:metrics_port (live/common/metrics.h). 0: an OS-chosen
  // port; -1: no endpoint. The file_sd list of all alive nodes' endpoints (and this one) is
  // kept at <session_dir>/metrics/prometheus_targets.json either way.
  int metrics_port = 0;
  // --- autoscaler (live/head/autoscaler/autoscaler_loop.h): set = the head runs the autoscaler on its loop every
  // config period and launches node daemons on this machine with the `orrery` binary at
  // autoscaler_exe (empty: this process's own executable). Stop() stops every node it launched.
  std::shared_ptr<const LiveAutoscalerConfig> autoscaler;
  std::string autoscaler_exe;
};

class HeadDaemon {
 public:
  // Binds and starts serving. Unavailable if the port cannot be bound.
  static StatusOr<std::unique_ptr<HeadDaemon>> Start(const HeadOptions& options);
  ~HeadDaemon();

  int port() const;
  // The jobs API port; 0 if it is not serving.
  int dashboard_port() const;
  // The Prometheus endpoint's port (0 if disabled) and the file_sd target list's path.
  int metrics_port() const;
  std::string metrics_targets_path() const;
  // Set once a Shutdown RPC was received: the owner should call Stop().
  bool StopRequested() const;
  // Finishes held calls (watchers), shuts the server down (waits up to 1 s for calls in flight)
  // and stops the loop. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit HeadDaemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::live
