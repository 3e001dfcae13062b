// Internal to live/node (not installed): NodeDaemon::Impl, the node daemon, declared here and
// defined across node.cc (lifecycle), node_rpc.cc, node_bundles.cc, node_leases.cc,
// node_envs.cc, node_workloads.cc and node_report.cc.
#pragma once

#include "live/node/node.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/agent/node_agent.h"
#include "core/lease/lease_manager.h"
#include "core/placement/two_phase.h"
#include "core/rng.h"
#include "live/worker/worker.h"
#include "live/rpc/convert.h"
#include "live/node/task_output.h"
#include "live/node/task_stream.h"
#include "live/node/gpu_detect.h"
#include "live/node/log_monitor.h"
#include "live/node/worker_log.h"
#include "live/rpc/event_loop.h"
#include "live/common/file_stream.h"
#include "live/common/health.h"
#include "live/common/metrics.h"
#include "live/common/node_address.h"
#include "live/node/object_store.h"
#include "live/node/orphan_reaper.h"
#include "live/common/port_check.h"
#include "live/common/session.h"
#include "live/common/process.h"
#include "live/rpc/rpc_handler.h"
#include "live/rpc/rpc_util.h"
#include "live/common/runtime_env.h"
#include "live/node/runtime_env_agent.h"
#include "live/node/worker_pool.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace node_internal {

inline int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace node_internal

using node_internal::UnixMs;

class NodeDaemon::Impl final : public v1::NodeService::CallbackService {
 public:
  explicit Impl(NodeOptions o) : options_(std::move(o)), rng_(options_.seed) {}

  // ---- lifecycle (controlling thread) --------------------------------------------------------

  Status Serve();

  void Stop();

  // Logging: the monitor's thread publishes with its own stub (blocking, bounded by a deadline).
  Status StartLogMonitor();

  const std::string& node_id() const { return node_id_; }
  const std::string& address() const { return address_; }
  std::string metrics_address() const;
  bool stop_requested() const { return stop_requested_.load(); }
  int health_port() const { return health_server_ ? health_server_->port() : 0; }
  std::string NotReady() const;  // --- health: why /readyz says 503; "" when ready

  // ---- handlers: check the token, validate, post to the loop --------------------------------

  grpc::ServerUnaryReactor* Ready(grpc::CallbackServerContext* ctx, const v1::ReadyRequest*,
                                  v1::ReadyReply* reply) override;

  // ---- placement-group bundles (the node side of core/placement/two_phase.h) -----------------

  grpc::ServerUnaryReactor* PrepareBundle(grpc::CallbackServerContext* ctx,
                                          const v1::BundleRequest* req,
                                          v1::BundleReply* reply) override;
  grpc::ServerUnaryReactor* CommitBundle(grpc::CallbackServerContext* ctx,
                                         const v1::BundleRequest* req,
                                         v1::BundleReply* reply) override;
  grpc::ServerUnaryReactor* CancelBundle(grpc::CallbackServerContext* ctx,
                                         const v1::BundleRequest* req,
                                         v1::BundleReply* reply) override;

  grpc::ServerUnaryReactor* OnBundle(grpc::CallbackServerContext* ctx, const v1::BundleRequest* req,
                                     v1::BundleReply* reply, TwoPhaseCommand::Kind kind);

  grpc::ServerUnaryReactor* RequestWorkerLease(grpc::CallbackServerContext* ctx,
                                               const v1::RequestWorkerLeaseRequest* request,
                                               v1::RequestWorkerLeaseReply* reply) override;

  grpc::ServerUnaryReactor* ReturnWorkerLease(grpc::CallbackServerContext* ctx,
                                              const v1::ReturnWorkerLeaseRequest* req,
                                              v1::ReturnWorkerLeaseReply*) override;

  grpc::ServerUnaryReactor* CancelWorkerLease(grpc::CallbackServerContext* ctx,
                                              const v1::CancelWorkerLeaseRequest* req,
                                              v1::CancelWorkerLeaseReply* reply) override;

  grpc::ServerWriteReactor<v1::RunTaskReply>* RunTask(grpc::CallbackServerContext* ctx,
                                                      const v1::RunTaskRequest* req) override;
  grpc::ServerWriteReactor<v1::RunTaskReply>* ReattachTask(
      grpc::CallbackServerContext* ctx, const v1::ReattachTaskRequest* req) override;
  grpc::ServerUnaryReactor* StopTask(grpc::CallbackServerContext* ctx,
                                     const v1::StopTaskRequest* req,
                                     v1::StopTaskReply* reply) override;

  grpc::ServerWriteReactor<v1::ObjectChunk>* FetchObject(
      grpc::CallbackServerContext* ctx, const v1::FetchObjectRequest* req) override;

  grpc::ServerUnaryReactor* PutObject(grpc::CallbackServerContext* ctx,
                                      const v1::PutObjectRequest* req,
                                      v1::PutObjectReply*) override;

  grpc::ServerWriteReactor<v1::AttachWorkerReply>* AttachWorker(
      grpc::CallbackServerContext* ctx, const v1::AttachWorkerRequest* req) override;

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ShutdownRequest*,
                                     v1::ShutdownReply*) override;

  // --- live run: the agent's cache counters, read on the loop that owns the agent.
  grpc::ServerUnaryReactor* GetRuntimeEnvCacheStats(grpc::CallbackServerContext* ctx,
                                                    const v1::RuntimeEnvCacheStatsRequest*,
                                                    v1::RuntimeEnvCacheStats* reply) override;

  // A RunTask request for a built-in workload, checked (handler thread, no state touched).
  // Public for the handler fuzz target (tests/fuzz/grpc_handlers_fuzz.cc).
  static StatusOr<WorkloadSpec> ValidateWorkload(const v1::RunTaskRequest& req);

  // --- dashboard (live/node/node_dashboard.cc): workers, envs and log files; a log file read.
  // Files are listed and read on the gRPC thread, never on the loop.
  grpc::ServerUnaryReactor* GetNodeDetail(grpc::CallbackServerContext* ctx,
                                          const v1::NodeDetailRequest*,
                                          v1::NodeDetailReply* reply) override;
  grpc::ServerUnaryReactor* ReadNodeLog(grpc::CallbackServerContext* ctx,
                                        const v1::ReadNodeLogRequest* req,
                                        v1::ReadNodeLogReply* reply) override;

 private:
  // --- dashboard: whether `name` in the log dir is this node's (its workers' files, its own
  // daemon log); thread-safe.
  bool IsOwnLogFile(const std::string& name) const;

  // How long a queued lease request that timed out stays pending without its caller asking
  // again (callers re-ask at once, every queue_timeout_ms) before it is canceled.
  static constexpr milliseconds kReaskGrace{3000};

  struct Task {
    v1::TaskRecord record;
    Allocation allocation;
    pid_t pid = 0;
    uint64_t lease_seq = 0;  // tells an unused-lease timer which grant it was armed for
    uint64_t ask_seq = 0;    // tells a re-ask timer which queue timeout it was armed for
    bool dirty = true;       // to be sent with the next heartbeat
    bool reported = false;   // sent with a heartbeat at least once (the head has a row for it)
    // --- live run: keep the lease when the running workload ends (RunTaskRequest.keep_lease);
    // kept: it ran a task and is held for the owner's next (it has no row of its own).
    bool keep_lease = false;
    bool kept = false;
    // A built-in workload on a pooled worker (pid is then the worker's).
    bool workload = false;
    uint64_t bytes_fetched = 0;
    int64_t start_unix_ms = 0;
    // A code worker (live/api) holds the lease until the driver cancels AttachWorker.
    bool api = false;
    // --- runtime envs: the install this task waits for (env_pending) or holds a reference to
    // (env_held); EndLease releases it.
    std::string env_hash;
    bool env_pending = false;
    bool env_held = false;
    // --- Metrics: when the lease request arrived (scheduling latency); an actor's lease.
    Clock::time_point received{};
    bool actor = false;
    // --- live run: a built-in workload in a runtime env runs on pooled workers of this key
    // (install hash + the env's variables and cwd), started in this env.
    std::string pool_key;
    int64_t env_id = -1;  // the node agent's id of pool_key (-1: no env)
    WorkerEnv worker_env;
  };
  struct Waiting {
    uint64_t call_id = 0;
    NotifyingUnaryReactor* reactor = nullptr;
    v1::RequestWorkerLeaseReply* reply = nullptr;
    LeaseRequest request;  // to queue it again when the manager is rebuilt (bundle commit)
  };

  static std::string SelfExe();

  static std::string Hostname();
  void Log(const std::string& line) const;

  // ---- the loop's state machine ----------------------------------------------------------------

  Status InitManager(const v1::ClusterView& v);

  // A broadcast of the head: refresh every remote node's estimate (DESIGN section 3).
  void ApplyView(const v1::ClusterView& v);

  void HandleLease(NotifyingUnaryReactor* r, v1::RequestWorkerLeaseReply* reply, uint64_t call_id,
                   LeaseRequest req, const std::string& name, int64_t queue_timeout_ms);

  void OnGranted(const LeaseReply& lr);

  // Retries queued requests; finishes the held calls of those that left the queue.
  void RunPending();

  // A queued request left the queue (`lr`): records, held call, or a grant nobody waits for.
  void ApplyReply(const LeaseReply& lr);
  // A lease request of `task` left this node for `to` (spillback): forget it, and tell the head
  // where it went if the head may have a row for it (final_records_).
  void MovedOn(const TaskId& task, const NodeId& to);
  // Returns the node's unused grant `task` after unused_lease_timeout unless it is used (or
  // granted again) first.
  void ArmUnusedLeaseTimer(Task& t);
  // Ends a kept lease (it ran a task and its owner returns it, or never used it again): the
  // resources go back; no record (the head shows the tasks that ran on it, not the lease).
  void EndKeptLease(std::map<TaskId, Task>::iterator it);

  void FinishWaiting(std::map<TaskId, Waiting>::iterator w, const LeaseReply& lr);

  void OnQueueTimeout(const TaskId& task, uint64_t call_id);

  void OnLeaseCallCanceled(const TaskId& task, uint64_t call_id);

  void StartTask(const TaskId& task, ProcessSpec spec, std::shared_ptr<TaskStream> w);

  void OnTaskExited(const TaskId& task, int code, int sig);

  // ---- code workers (live/api) --------------------------------------------------------------

  void StartAttach(const TaskId& task, ApiWorkerSpec spec,
                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w, const RuntimeEnv& renv);

  // Asks the node agent whether the lease reuses an idle code worker of its key or starts one;
  // api_pool_ carries that out.
  void AttachInEnv(const TaskId& task, const ApiWorkerSpec& spec,
                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w);

  // The agent's env id of a code worker's pool key (ApiWorkerPool::KeyOf): dense ids from -2
  // down, apart from EnvIdOf's (built-in workload workers), so the two pools' idle counts in the
  // agent never mix.
  int64_t ApiEnvIdOf(const std::string& api_key);

  // The lease of a code worker ends (the driver canceled, the worker died or failed to start).
  void DetachWorker(const TaskId& task, const std::string& error);

  // ---- runtime envs (live/node/runtime_env_agent.h) ----------------------------------------------

  // The node agent's install cache options from the node's flags (validated: Envs() creates the
  // cache from them on first use).
  Status ConfigureEnvCache();

  Status StartRuntimeEnvAgent();

  void StopRuntimeEnvAgent();

  // `top` over `base`, by name (sorted).
  static std::vector<std::pair<std::string, std::string>> MergeEnv(
      const std::vector<std::pair<std::string, std::string>>& base,
      const std::vector<std::pair<std::string, std::string>>& top);

  // Asks the agent for `t`'s env; `done` runs on the loop once it is installed or failed, unless
  // the lease ends first (EndLease abandons the wait).
  void AcquireTaskEnv(Task& t, const RuntimeEnv& env, RuntimeEnvAgent::Done done);

  // `name` as the first executable found in `path` (colon-separated); `name` itself if it has a
  // slash or is found nowhere.
  static std::string LookUpInPath(const std::string& name, const std::string& path);

  void ReleaseTaskEnv(Task& t);

  // A RunTask whose runtime env could not be set up: the caller sees why (stderr and the exit's
  // error), and the lease ends canceled.
  void FailRunTaskEnv(Task& t, const std::string& why, const std::shared_ptr<TaskStream>& w);

  // RunTask with a runtime env: install it (the lease stays held, waiting for the runtime env),
  // then start the command inside it. A setup failure cancels the lease; the caller gets the
  // message on stderr and in TaskExit.error.
  void StartTaskInEnv(const TaskId& task, ProcessSpec spec, const RuntimeEnv& renv,
                      std::shared_ptr<TaskStream> w);

  // ---- built-in workloads -------------------------------------------------------------------

  void StartWorkload(const TaskId& task, WorkloadSpec spec, const v1::RunTaskRequest& req,
                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w, const RuntimeEnv& renv);

  // The workload's lease is held and its env (if any) installed: fetch missing arguments, run.
  void PrepareWorkload(const TaskId& task, WorkloadSpec spec, const v1::RunTaskRequest& req,
                       std::shared_ptr<StreamWriter<v1::RunTaskReply>> w);

  void OnArgsFetched(const TaskId& task, const WorkloadSpec& spec,
                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w, const Status& s,
                     uint64_t bytes);

  // The node agent keys envs by int64: a dense id per pooled-worker key (install hash + the
  // env's variables and cwd); "" (no env) is -1.
  int64_t EnvIdOf(const std::string& pool_key);

  void LaunchWorkload(const TaskId& task, const WorkloadSpec& spec,
                      std::shared_ptr<StreamWriter<v1::RunTaskReply>> w);

  void FinishWorkload(Task& t, const std::shared_ptr<StreamWriter<v1::RunTaskReply>>& w, int code,
                      const std::string& error);

  // Fetch thread: copies object `a` from its holder into the local store. Returns its size.
  StatusOr<uint64_t> FetchFromPeer(const v1::ObjectRef& a);

  // Serve loop: streams object `id` in 1 MiB chunks, reading each only once the previous one
  // was written (flow control, live/common/file_stream.h).
  void ServeObject(const std::string& id, const std::shared_ptr<StreamWriter<v1::ObjectChunk>>& w);

  // Ends the task: a running one gets SIGTERM, then SIGKILL after kKillGrace; one waiting for
  // its runtime env is canceled. `why` is logged ("the caller went away", "stopped: ...").
  void KillTask(const TaskId& task, const std::string& why = "the caller went away");
  // The caller of RunTask/ReattachTask for `task` went away: a detachable task's stream is
  // detached (the process runs on), any other task is killed.
  // `reattach`: the caller was a ReattachTask, which never kills.
  void OnRunTaskCallerGone(const TaskId& task, const std::weak_ptr<TaskStream::Writer>& writer,
                           bool reattach);
  // A RunTask/ReattachTask writer whose cancellation calls OnRunTaskCallerGone with itself.
  std::shared_ptr<StreamWriter<v1::RunTaskReply>> TaskWriter(const TaskId& task, bool reattach);
  // --- head fault tolerance: the detachable tasks' streams (a job's driver), kept after the
  // task ended for kDetachedKeepAttached (its caller got the exit) or kDetachedKeepDetached
  // (nobody was attached), so that a restarted head can still read the exit.
  struct DetachableEntry {
    std::shared_ptr<TaskStream> stream;
    uint64_t seq = 0;  // tells a removal timer which entry it was armed for
  };
  std::map<TaskId, DetachableEntry> detachable_;
  uint64_t detachable_seq_ = 0;
  static constexpr std::chrono::seconds kDetachedKeepAttached{60};
  static constexpr std::chrono::seconds kDetachedKeepDetached{3600};
  static constexpr size_t kDetachedTrimAttached = size_t{1} << 20;
  void ForgetDetachableLater(const TaskId& task);
  static constexpr std::chrono::milliseconds kKillGrace{3000};  // --- jobs

  // The lease of `t` ends: resources back to the local node, record terminal.
  void EndLease(Task& t, v1::TaskState state, int exit_code, const std::string& error);

  void SetTaskState(const TaskId& task, v1::TaskState state, const std::string& error);

  // ---- bundles ----------------------------------------------------------------------------------

  // The node agent reserves, commits and cancels (core/agent); the daemon logs and re-runs the
  // queue. A commit adds the bundle's resources to the node, which rebuilds the manager: the
  // held requests it asked again are answered here.
  bool PrepareBundleHere(const std::string& group, int index, const ResourceRequest& resources,
                         std::string* why);

  bool CommitBundleHere(const std::string& group, int index, std::string* why);

  void CancelBundleHere(const std::string& group, int index);

  // The agent may have rebuilt its manager (bundle resources added or removed): answer the held
  // requests it asked again (as in RunPending).
  void AfterResize();

  std::string AddressOf(const NodeId& node) const;

  // What the next heartbeat carries. Terminal records leave the table once taken.
  void Snapshot(v1::HeartbeatRequest* req);

  // ---- metrics (live/common/metrics.h): on the loop, once per report period (from Snapshot) --------

  void CountSpillback(const LeaseReply& lr);

  void UpdateMetrics();

  // ---- head link (helper threads; blocking calls, no state of their own) -------------------

  StatusOr<v1::RegisterNodeReply> Register(milliseconds timeout);

  StatusOr<v1::RegisterNodeReply> RegisterWithRetry(milliseconds total);

  bool WaitStopping(milliseconds d);
  bool WaitStoppingUntil(Clock::time_point t);

  void HeartbeatLoop();

  // The heartbeat failed: say so once when the head goes, then every 30 s while it stays gone
  // (the node keeps trying every report period).
  void NoteHeadLost(const grpc::Status& s);

  void WatchLoop();

  const NodeOptions options_;
  // The scheduling setting every LeaseManager here is built with: the cluster's, from the
  // registration reply (the head's --policy); options_.scheduler until then.
  SchedulerOptions scheduler_ = options_.scheduler;
  std::string node_id_;
  std::string address_;
  milliseconds report_period_{100};
  std::unique_ptr<v1::HeadService::Stub> head_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stop_requested_{false};
  // --- health (/readyz): registered with the head; the head declared this node dead.
  std::atomic<bool> registered_{false};
  std::atomic<bool> declared_dead_{false};
  std::atomic<uint64_t> next_call_id_{1};
  int port_ = 0;

  // Helper-thread coordination.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  grpc::ClientContext* watch_ctx_ = nullptr;
  grpc::ClientContext* fetch_ctx_ = nullptr;
  std::thread heartbeat_thread_;
  std::thread watch_thread_;
  std::unique_ptr<OrphanReaper> reaper_;  // set before the loop runs; used on the loop and Stop
  // Heartbeat thread only: when the head stopped answering (unset while it answers).
  std::optional<std::chrono::steady_clock::time_point> head_lost_since_;
  std::chrono::steady_clock::time_point last_head_lost_log_;

  // Owned by loop_. The node's control logic (core/agent): the lease manager (created once the
  // node registered, InitManager), the lease table, the bundles held here, the runtime-env
  // install cache (RuntimeEnvAgent carries out its decisions) and the worker-reuse decisions
  // (the WorkerPool carries them out). Created in Serve, before the pools.
  agent::NodeAgentOptions node_agent_options_;
  std::unique_ptr<agent::NodeAgent> node_agent_;
  std::unordered_map<std::string, int64_t> env_ids_;  // pooled-worker key -> the agent's env id
  std::unordered_map<std::string, int64_t> api_env_ids_;  // code-worker key -> env id (<= -2)
  LeaseManager* manager_ = nullptr;  // node_agent_'s manager (rebuilt when bundles resize it)
  Rng rng_;
  bool shutting_down_ = false;
  uint64_t lease_seq_ = 0;
  std::map<NodeId, std::string> addresses_;
  // When the head heard each remote node's report that the last applied view carried (the
  // view's ms_since_heartbeat before its arrival): a spillback reply says how old it was.
  std::unordered_map<NodeId, Clock::time_point> reported_at_;
  void StampViewAge(const LeaseReply& lr, v1::RequestWorkerLeaseReply* reply) const;
  std::map<TaskId, Task> tasks_;
  // Last records of leases this node no longer tracks under them, for the next heartbeat:
  // - a lease request that left for another node (spillback), naming the node it went to
  //   (TaskRecord.moved_to_node_id): the head's row follows the request, so it neither stays
  //   pending here for good when the driver never asks the next node (it no longer needed the
  //   lease) nor outlives that node if it dies; it also replaces an update of the task that a
  //   failed heartbeat kept (HeartbeatLoop);
  // - the end of a task that ran on a kept lease (live run), the lease itself staying granted.
  std::vector<v1::TaskRecord> final_records_;
  std::map<TaskId, Waiting> waiting_;

  // --- Metrics. The endpoint (and its registry) outlives the families that live in it; the
  // counters below are owned by loop_.
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<HealthServer> health_server_;  // --- health probes; null without --health-port
  std::unique_ptr<NodeMetrics> metrics_;
  std::map<v1::TaskState, uint64_t> ended_;  // tasks that ended here, by terminal state
  uint64_t actors_ended_ = 0;

  // Thread-safe; used by all three loops. Destroyed last (removes the store's directory).
  std::unique_ptr<ObjectStore> store_;
  // Owned by loop_; the supervisor's worker callbacks call into it, so it outlives supervisor_.
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<ApiWorkerPool> api_pool_;
  // --- runtime envs: owned by loop_ (its install threads post there); stopped after loop_.
  std::unique_ptr<RuntimeEnvAgent> agent_;
  std::filesystem::path renv_owned_root_;  // a private root when there is no session dir

  // Logging: tails the workers' log files and publishes to the head (its own thread).
  std::unique_ptr<LogMonitor> log_monitor_;

  // Declared last: destroyed first. The supervisor's callbacks post to loop_, and the server's
  // handlers post to loop_; loop_ is stopped in Stop() before either goes.
  EventLoop loop_;
  ProcessSupervisor supervisor_;
  std::unique_ptr<grpc::Server> server_;
  // Blocking object I/O (they post to loop_; stopped before it in Stop()).
  EventLoop serve_loop_;
  EventLoop fetch_loop_;
};

}  // namespace orrery::live
