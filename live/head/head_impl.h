// Internal to live/head (not installed): HeadDaemon::Impl, the head daemon, declared here and
// defined across head.cc (lifecycle), head_rpc.cc, head_placement.cc, head_jobs.cc and
// head_report.cc.
#pragma once

#include "live/head/head.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <cctype>
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "core/agent/head_controller.h"
#include "core/placement/bundle_policy.h"
#include "core/placement/two_phase.h"
#include "core/scheduling/scheduler_settings.h"
#include "live/head/actor_directory.h"
#include "live/head/autoscaler/autoscaler_loop.h"  // --- autoscaler
#include "live/rpc/convert.h"
#include "live/rpc/event_loop.h"
#include "live/dashboard/head_routes.h"  // --- dashboard
#include "live/dashboard/head_state.h"   // --- dashboard
#include "live/dashboard/http_server.h"  // --- dashboard
#include "live/head/jobs/job_http.h"     // --- jobs
#include "live/head/jobs/job_manager.h"  // --- jobs
#include "live/head/package_store.h"
#include "live/head/head_store.h"
#include "live/head/log_hub.h"
#include "live/common/metrics.h"
#include "live/rpc/rpc_handler.h"
#include "live/rpc/rpc_util.h"
#include "live/common/port_check.h"
#include "live/common/session.h"  // --- jobs
#include "orrery.grpc.pb.h"

namespace orrery::live {

using Clock = std::chrono::steady_clock;

namespace head_internal {
// Logs go to the daemon's stderr (its log file in the session dir).
inline void Log(const std::string& line) { std::cerr << "[head] " << line << std::endl; }
}  // namespace head_internal

using head_internal::Log;

class HeadDaemon::Impl final : public v1::HeadService::CallbackService {
 public:
  explicit Impl(HeadOptions o) : options_(std::move(o)), controller_(ControllerOptions(options_)) {}

  static agent::HeadControllerOptions ControllerOptions(const HeadOptions& o);

  Status Serve();

  void Stop();

  int port() const { return port_; }
  int metrics_port() const { return metrics_endpoint_ ? metrics_endpoint_->port() : 0; }
  std::string metrics_targets_path() const { return targets_->path().string(); }
  bool stop_requested() const { return stop_requested_.load(); }

  // ---- handlers: check the token, validate, post to the loop --------------------------------

  // --- runtime envs: packages (live/head/package_store.h does the work off the state loop).
  grpc::ServerReadReactor<v1::PackageChunk>* UploadPackage(grpc::CallbackServerContext* ctx,
                                                           v1::UploadPackageReply* reply) override;
  grpc::ServerUnaryReactor* HasPackage(grpc::CallbackServerContext* ctx,
                                       const v1::HasPackageRequest* req,
                                       v1::HasPackageReply* reply) override;
  grpc::ServerWriteReactor<v1::PackageChunk>* DownloadPackage(
      grpc::CallbackServerContext* ctx, const v1::DownloadPackageRequest* req) override;
  // --- end runtime envs

  grpc::ServerUnaryReactor* Ready(grpc::CallbackServerContext* ctx, const v1::ReadyRequest*,
                                  v1::ReadyReply* reply) override;

  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* ctx,
                                         const v1::RegisterNodeRequest* req,
                                         v1::RegisterNodeReply* reply) override;

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply*) override;

  grpc::ServerUnaryReactor* GetClusterView(grpc::CallbackServerContext* ctx,
                                           const v1::GetClusterViewRequest*,
                                           v1::ClusterView* reply) override;

  grpc::ServerWriteReactor<v1::ClusterView>* WatchClusterView(
      grpc::CallbackServerContext* ctx, const v1::WatchClusterViewRequest*) override;

  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest*,
                                      v1::ListNodesReply* reply) override;

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* ctx, const v1::ListTasksRequest*,
                                      v1::ListTasksReply* reply) override;

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ShutdownRequest*,
                                     v1::ShutdownReply*) override;

  // ---- placement groups ---------------------------------------------------------------------

  grpc::ServerUnaryReactor* CreatePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const v1::CreatePlacementGroupRequest* req,
                                                 v1::CreatePlacementGroupReply* reply) override;

  grpc::ServerUnaryReactor* GetPlacementGroup(grpc::CallbackServerContext* ctx,
                                              const v1::GetPlacementGroupRequest* req,
                                              v1::PlacementGroupInfo* reply) override;

  grpc::ServerUnaryReactor* RemovePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const v1::RemovePlacementGroupRequest* req,
                                                 v1::RemovePlacementGroupReply*) override;

  grpc::ServerUnaryReactor* ListPlacementGroups(grpc::CallbackServerContext* ctx,
                                                const v1::ListPlacementGroupsRequest*,
                                                v1::ListPlacementGroupsReply* reply) override;

  // ---- logging: the log hub (live/head/log_hub.h) has its own lock and never waits ----------------

  grpc::ServerUnaryReactor* PublishLogs(grpc::CallbackServerContext* ctx,
                                        const v1::PublishLogsRequest* req,
                                        v1::PublishLogsReply*) override;

  grpc::ServerWriteReactor<v1::LogBatch>* SubscribeLogs(
      grpc::CallbackServerContext* ctx, const v1::SubscribeLogsRequest* req) override;

  // ---- actors: the directory (live/head/actor_directory.h) ---------------------------------------

  grpc::ServerUnaryReactor* ReportActor(grpc::CallbackServerContext* ctx,
                                        const v1::ReportActorRequest* req,
                                        v1::ReportActorReply*) override;

  grpc::ServerUnaryReactor* ListActors(grpc::CallbackServerContext* ctx,
                                       const v1::ListActorsRequest*,
                                       v1::ListActorsReply* reply) override;

  // ---- jobs (live/head/jobs/job_manager.h): thin handlers, the JobManager runs on the loop --------------

  int dashboard_port() const { return http_ ? http_->port() : 0; }
  // --- health (/readyz on the dashboard port): "" when the head accepts RPCs (its loop answers)
  // with the job store open; else why not. Called on an HTTP handler thread.
  std::string NotReady();

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* req,
                                      v1::SubmitJobReply* reply) override;

  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::JobInfo* reply) override;

  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx, const v1::ListJobsRequest*,
                                     v1::ListJobsReply* reply) override;

  grpc::ServerUnaryReactor* StopJob(grpc::CallbackServerContext* ctx, const v1::StopJobRequest* req,
                                    v1::StopJobReply* reply) override;

  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* req,
                                      v1::DeleteJobReply*) override;

  grpc::ServerWriteReactor<v1::JobLogsChunk>* JobLogs(grpc::CallbackServerContext* ctx,
                                                      const v1::JobLogsRequest* req) override;

 private:
  static grpc::Status JobsUnavailable();

  // Opens the job store, then serves the HTTP jobs API (if a port is set). Called once the gRPC
  // server listens (drivers get its address).
  Status StartJobs();

  void StopJobs();

  // What the head keeps of a member besides the controller's Member: transport and display.
  struct NodeEntry {
    std::string address;
    bool is_head_node = false;
    int pid = 0;
    std::vector<v1::Demand> pending;
    std::string metrics_address;  // --- Metrics: empty if the node serves none
    int num_workers = 0, envs_cached = 0;  // --- dashboard: from its last heartbeat
    int64_t env_cache_bytes = 0;
    v1::LatencyHistogram scheduling_latency;
  };

  // ---- head fault tolerance (live/head/head_store.h; head.cc) ---------------------------------

  // Controlling thread, before the server starts: opens the store and takes over its state if
  // it belongs to this session (else clears it). An unreadable store is an error.
  Status OpenStore();
  // Loop thread: what the store held, as members, actors and groups.
  void Restore(const HeadStoreSnapshot& snap);
  // Loop thread, every Tick: the rows that changed since the last call, as one batch.
  void Persist();
  // Loop thread: node `id` reported; logs the recovery time once every restored node has.
  void NoteReported(const NodeId& id);
  // Every restored node reported again or was declared dead: the recovery's log line.
  void LogRecovered();

  // Loop thread: liveness and broadcast, once per report period.
  void Tick();

  void BuildView(v1::ClusterView* out) const;

  // ---- placement groups: the loop's side of TwoPhaseReservation ------------------------------

  static constexpr std::chrono::milliseconds kBundleCallTimeout{5000};

  // Seconds on the head's own clock, for the controller (it reads none itself).
  double NowS() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

  // Carries out the controller's placement decisions: bundle calls now, retry timers later.
  void Apply(const agent::PlacementDecisions& d);

  // Carries out the state machine's commands as asynchronous calls; each reply is posted back
  // to the loop (OnBundleReply). Cancels need no answer. A node gets its bundle calls one at a
  // time, in the order the controller issued them: two groups placed on the same view reach a
  // node in creation order, as in the simulator (concurrent RPCs may otherwise be served in
  // either order, and a later group could take what an earlier one was placed on).
  void Send(const std::vector<TwoPhaseCommand>& cmds);
  void SendNextBundleCall(const std::string& address);

  void OnBundleReply(const TwoPhaseCommand& cmd, bool ok, const std::string& why);

  static v1::PlacementGroupState StateToProto(const agent::PlacementGroupEntry& g);

  static void GroupToProto(const std::string& id, const agent::PlacementGroupEntry& g,
                           v1::PlacementGroupInfo* out);

  static bool IsStaleTaskUpdate(const v1::TaskRecord& row, const v1::TaskRecord& in);
  void UpsertTask(const v1::TaskRecord& t);
  // A node's last record of a lease request that left it by spillback (moved_to_node_id set).
  void MoveTask(const v1::TaskRecord& t);
  // Ends the rows that stayed in transit past their deadline (from Tick).
  void ExpireTransits();

  // ---- dashboard (live/dashboard/head_routes.h; head_dashboard.cc) -------------------------------

  // Controlling thread, from StartJobs: the dashboard server with the head's routes and the
  // jobs routes (`jobs` may be null).
  void StartDashboard(const std::string& host, JobManager* jobs);
  void StopDashboard();
  // Loop thread: an event now.
  void Emit(const std::string& kind, const std::string& severity, const std::string& message,
            const std::string& node_id = "", const std::string& job_id = "",
            const std::string& actor_id = "");
  // Loop thread, each report period: events found by comparing jobs, actors, groups and the
  // autoscaler's nodes with the last period; a sample of the metrics into the history.
  void DashboardTick(const std::map<std::string, double>& nodes,
                     const std::map<std::string, double>& tasks,
                     const std::map<std::string, double>& groups,
                     const std::map<std::string, double>& active,
                     const std::map<std::string, double>& pending);
  // Any thread: a node's stub for the dashboard's calls (its own cache, apart from the loop's).
  std::shared_ptr<v1::NodeService::Stub> DashboardStub(const std::string& address);

  // ---- metrics (live/common/metrics.h) ------------------------------------------------------------

  // Controlling thread, before Tick is scheduled.
  Status StartMetrics();

  // Loop thread: the file_sd list (the head, then every alive node with an endpoint, by id).
  // The writer skips an unchanged list, so calling this every period costs no I/O.
  void UpdateTargets();

  // "TASK_STATE_FINISHED" -> "finished": a proto enum name as the metrics' label value.
  static std::string StateLabel(std::string name, std::string_view prefix);

  // Loop thread, once per report period.
  void UpdateMetrics();

  // --- autoscaler (live/head/autoscaler/autoscaler_loop.h) ------------------------------------------------------

  // Controlling thread, from Serve (after the port is known).
  Status StartAutoscaler();

  // Loop thread: one planning round over the node table and the unplaced groups.
  void AutoscalerRound();

  grpc::ServerUnaryReactor* GetAutoscalerStatus(grpc::CallbackServerContext* ctx,
                                                const v1::GetAutoscalerStatusRequest*,
                                                v1::AutoscalerStatus* reply) override;

  std::unique_ptr<AutoscalerLoop> autoscaler_;  // set by Serve; used on loop_ (Shutdown: Stop)
  // --- end autoscaler

  const HeadOptions options_;
  // --- Metrics: set up by Serve before Tick is scheduled; the families live in the
  // endpoint's registry, so metrics_ goes first (declared after it).
  std::unique_ptr<MetricsTargetsWriter> targets_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<HeadMetrics> metrics_;
  EventLoop loop_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stop_requested_{false};
  // Owned by loop_.
  bool shutting_down_ = false;
  agent::HeadController controller_;  // membership, liveness, view version, placement groups
  std::map<NodeId, NodeEntry> nodes_;  // by id: what the controller's members need for transport
  std::map<std::string, v1::TaskRecord> tasks_;
  std::deque<std::string> order_;  // task ids by first report (evicted from the front, O(1))
  // Rows that follow a spilled lease request to a node that has not reported it yet: task id ->
  // the move's sequence number; expiries in deadline order (deadlines grow with the time of the
  // move). An entry goes when that node, or any other, reports the task.
  struct Transit {
    double deadline_s = 0;
    std::string task_id;
    uint64_t seq = 0;
  };
  std::map<std::string, uint64_t> in_transit_;
  std::deque<Transit> transit_expiries_;
  uint64_t transit_seq_ = 0;
  std::vector<std::shared_ptr<StreamWriter<v1::ClusterView>>> watchers_;
  const Clock::time_point started_ = Clock::now();
  std::map<std::string, int> calls_in_flight_;  // bundle RPCs not answered yet, by group id
  // Bundle calls waiting for their node's previous one, by node address (present while one is
  // in flight to it).
  std::map<std::string, std::deque<TwoPhaseCommand>> bundle_queue_;
  std::map<std::string, std::unique_ptr<v1::NodeService::Stub>> stubs_;  // by node address
  std::atomic<int> bundle_calls_{0};  // bundle RPCs in flight (any thread)
  // --- jobs: the manager is set on the loop once created (handlers check it there); the HTTP
  // server has its own thread. Both stop before the loop.
  std::unique_ptr<JobManager> jobs_;
  // --- dashboard: the server (its own threads), its routes (a pump thread) and what the head
  // keeps for them (own locks). The server and routes stop before the loop.
  dashboard::EventRing events_;
  static constexpr double kDashboardSampleS = 1;  // DashboardTick's period (at least)
  double next_dashboard_tick_s_ = 0;               // owned by loop_
  dashboard::MetricsHistory metrics_history_{
      15 * 60 * 1000,
      std::max(kDashboardSampleS, std::chrono::duration<double>(options_.report_period).count())};
  std::unique_ptr<JobRoutes> job_routes_;
  std::unique_ptr<dashboard::HeadRoutes> routes_;
  std::unique_ptr<http::HttpServer> http_;
  std::mutex dashboard_stubs_mu_;
  std::map<std::string, std::shared_ptr<v1::NodeService::Stub>> dashboard_stubs_;
  // Owned by loop_: what the last DashboardTick saw.
  std::map<std::string, v1::JobStatus> seen_jobs_;
  bool jobs_primed_ = false;  // the job store's records were seen once
  std::map<std::string, v1::ActorState> seen_actors_;
  std::map<std::string, v1::PlacementGroupState> seen_groups_;
  std::map<std::string, std::string> seen_autoscaler_nodes_;  // node id -> state
  std::string dashboard_url_;  // owned by loop_: "http(s)://HOST:PORT/" (ReadyReply)
  std::string private_log_dir_;  // job logs of a head without a store or session dir
  std::unique_ptr<PackageService> packages_;  // --- runtime envs (thread-safe)
  // Logging: PublishLogs / SubscribeLogs (thread-safe; not owned by loop_).
  LogHub log_hub_;

  // --- head fault tolerance: the store (null: none) and, owned by loop_, the bytes last
  // written per row (by table, then id), so a tick writes only what changed.
  std::unique_ptr<HeadStore> store_;
  std::map<HeadStore::Table, std::map<std::string, std::string>> persisted_;
  bool actors_dirty_ = true;  // an actor report since the last Persist
  double next_actor_sweep_s_ = 0;  // actor rows are compared at least once a second
  bool restored_ = false;  // this head took over a crashed head's state
  double restore_s_ = -1;  // NowS() of the restore; -1 if none
  std::set<NodeId> awaiting_;  // restored alive nodes that have not reported since
  int awaited_dead_ = 0;       // restored nodes declared dead before they reported
  // A connect to each awaited node's address: one that refuses (its daemon is gone, e.g. it
  // died with the head's machine) is declared dead at once instead of after its grace window.
  std::map<NodeId, std::unique_ptr<ConnectProbe>> probes_;
  void ProbeAwaited();

  // --- actors. Owned by loop_. A driver restarting an actor reports within this.
  static constexpr std::chrono::milliseconds kActorDriverGrace{30000};
  static int64_t UnixNowMs();
  ActorDirectory actors_;
};

}  // namespace orrery::live
