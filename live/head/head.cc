#include "live/head/head.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <cctype>
#include <iostream>
#include <map>
#include <optional>
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
#include "live/head/jobs/job_http.h"     // --- jobs
#include "live/head/jobs/job_manager.h"  // --- jobs
#include "live/head/package_store.h"
#include "live/head/log_hub.h"
#include "live/common/metrics.h"
#include "live/rpc/rpc_handler.h"
#include "live/rpc/rpc_util.h"
#include "live/common/port_check.h"
#include "live/common/session.h"  // --- jobs
#include "orrery.grpc.pb.h"

namespace orrery::live {

using Clock = std::chrono::steady_clock;

namespace {
// Logs go to the daemon's stderr (its log file in the session dir).
void Log(const std::string& line) { std::cerr << "[head] " << line << std::endl; }
}  // namespace

class HeadDaemon::Impl final : public v1::HeadService::CallbackService {
 public:
  explicit Impl(HeadOptions o) : options_(std::move(o)), controller_(ControllerOptions(options_)) {}

  static agent::HeadControllerOptions ControllerOptions(const HeadOptions& o) {
    agent::HeadControllerOptions c;
    c.report_period_s = std::chrono::duration<double>(o.report_period).count();
    c.health_check_period_s = std::chrono::duration<double>(o.health_check_period).count();
    c.health_check_failures = o.health_check_failures;
    return c;
  }

  Status Serve() {
    // --- runtime envs: the package store, ready before the first call.
    PackageServiceOptions po;
    po.token = options_.token;
    po.session_dir = options_.session_dir;
    auto packages = PackageService::Create(std::move(po));
    if (!packages.ok()) return packages.status();
    packages_ = std::move(*packages);
    grpc::ServerBuilder b;
    b.AddListeningPort(options_.bind + ":" + std::to_string(options_.port),
                       grpc::InsecureServerCredentials(), &port_);
    // Never share a port: gRPC turns SO_REUSEPORT on by default, and two daemons on one port
    // would each get a share of the connections.
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) {
      Status why = CheckPortFree(options_.bind, options_.port, "head");
      return why.ok() ? Status(StatusCode::kUnavailable, "cannot listen on " + options_.bind +
                                                              ":" + std::to_string(options_.port))
                      : why;
    }
    // After the gRPC port: an OS-chosen metrics port never takes the head's own port. No loop
    // closure reads the metrics members before Tick runs.
    ORRERY_RETURN_IF_ERROR(StartMetrics());
    UpdateTargets();
    loop_.Every(options_.report_period, [this] { Tick(); });
    ORRERY_RETURN_IF_ERROR(StartAutoscaler());  // --- autoscaler
    Log("listening on " + options_.bind + ":" + std::to_string(port_) + "; scheduling policy " +
        DescribeScheduling(options_.scheduler));
    return StartJobs();  // --- jobs
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    if (metrics_endpoint_) metrics_endpoint_->BeginStop();  // --- Metrics
    // Held calls first, so the server's shutdown does not wait for them.
    loop_.RunSync([this] {
      shutting_down_ = true;
      for (auto& w : watchers_)
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
      watchers_.clear();
    });
    log_hub_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
    if (autoscaler_) autoscaler_->Shutdown();  // --- autoscaler: no round runs once shutting down
    StopJobs();  // --- jobs
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    if (packages_) packages_->Stop();  // --- runtime envs
    // Bundle calls in flight post their replies to the loop: let them land first (bounded; each
    // has a deadline of bundle_call_timeout).
    const auto deadline = Clock::now() + kBundleCallTimeout + std::chrono::seconds(1);
    while (bundle_calls_.load() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    loop_.Stop();
    Log("stopped");
  }

  int port() const { return port_; }
  int metrics_port() const { return metrics_endpoint_ ? metrics_endpoint_->port() : 0; }
  std::string metrics_targets_path() const { return targets_->path().string(); }
  bool stop_requested() const { return stop_requested_.load(); }

  // ---- handlers: check the token, validate, post to the loop --------------------------------

  // --- runtime envs: packages (live/head/package_store.h does the work off the state loop).
  grpc::ServerReadReactor<v1::PackageChunk>* UploadPackage(grpc::CallbackServerContext* ctx,
                                                           v1::UploadPackageReply* reply) override {
    return packages_->Upload(ctx, reply);
  }
  grpc::ServerUnaryReactor* HasPackage(grpc::CallbackServerContext* ctx,
                                       const v1::HasPackageRequest* req,
                                       v1::HasPackageReply* reply) override {
    return packages_->Has(ctx, req, reply);
  }
  grpc::ServerWriteReactor<v1::PackageChunk>* DownloadPackage(
      grpc::CallbackServerContext* ctx, const v1::DownloadPackageRequest* req) override {
    return packages_->Download(ctx, req);
  }
  // --- end runtime envs

  grpc::ServerUnaryReactor* Ready(grpc::CallbackServerContext* ctx, const v1::ReadyRequest*,
                                  v1::ReadyReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      reply->set_address(options_.bind + ":" + std::to_string(port_));
      reply->set_pid(static_cast<int32_t>(getpid()));
      if (metrics_endpoint_) reply->set_metrics_address(metrics_endpoint_->address());
      int schedulable = 0;
      for (const auto& [id, m] : controller_.members()) {
        schedulable += m.node.IsSchedulable() ? 1 : 0;
      }
      reply->set_known_nodes(schedulable);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* ctx,
                                         const v1::RegisterNodeRequest* req,
                                         v1::RegisterNodeReply* reply) override {
    return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [&]() -> Validated {
      if (Status s = ValidateNodeName(req->node_id(), "node_id"); !s.ok()) return ToGrpc(s);
      v1::NodeInfo info;
      info.set_node_id(req->node_id());
      *info.mutable_total() = req->total();
      *info.mutable_available() = req->total();
      *info.mutable_labels() = req->labels();
      auto node = NodeFromProto(info);
      if (!node.ok()) return ToGrpc(node.status());
      if (req->address().empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "address: empty");
      }
      return LoopHalf([this, reply, node = std::move(*node), address = req->address(),
                       head = req->is_head_node(), pid = req->pid(),
                       metrics_address = req->metrics_address()]() mutable {
        const std::string id = node.id;
        const std::string total = node.resources.total().ToString();
        if (Status s = controller_.OnNodeRegistered(std::move(node), NowS()); !s.ok()) {
          return ToGrpc(s);
        }
        Log("node " + id + " registered at " + address + " with " + total);
        NodeEntry e;
        e.address = std::move(address);
        e.is_head_node = head;
        e.pid = pid;
        e.metrics_address = std::move(metrics_address);
        nodes_[id] = std::move(e);
        BuildView(reply->mutable_view());
        reply->set_report_period_ms(options_.report_period.count());
        return grpc::Status::OK;
      });
    });
  }

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply*) override {
    return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [&]() -> Validated {
      auto available = FromProto(req->available(), "available");
      auto devices = FromProto(req->devices(), "devices");
      if (!available.ok() || !devices.ok()) {
        return ToGrpc(!available.ok() ? available.status() : devices.status());
      }
      // The request lives until Finish: the closure may read it.
      return LoopHalf(
          [this, req, available = std::move(*available), devices = std::move(*devices)] {
            // Committed placement-group bundles grow (and cancelled ones shrink) a node's totals.
            std::optional<ResourceSet> total;
            if (req->has_total() && !req->total().raw().empty()) {
              if (auto t = FromProto(req->total(), "total"); t.ok()) total = std::move(*t);
            }
            Status s = controller_.OnNodeReport(req->node_id(), total, available, devices, NowS());
            if (s.code() == StatusCode::kFailedPrecondition) {
              // Its work was failed over when it was declared dead: nothing it reports now is
              // accepted, and it is told so (it stops; a restart registers it anew).
              Log("node " + req->node_id() + " heartbeats after it was declared dead: refused");
            }
            if (!s.ok()) return ToGrpc(s);
            NodeEntry& e = nodes_[req->node_id()];
            e.pending.assign(req->pending().begin(), req->pending().end());
            for (const auto& t : req->task_updates()) UpsertTask(t);
            return grpc::Status::OK;
          });
    });
  }

  grpc::ServerUnaryReactor* GetClusterView(grpc::CallbackServerContext* ctx,
                                           const v1::GetClusterViewRequest*,
                                           v1::ClusterView* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      BuildView(reply);
      return grpc::Status::OK;
    });
  }

  grpc::ServerWriteReactor<v1::ClusterView>* WatchClusterView(
      grpc::CallbackServerContext* ctx, const v1::WatchClusterViewRequest*) override {
    auto w = StreamWriter<v1::ClusterView>::Create(/*keep_latest_only=*/true);
    if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
    loop_.Post([this, w] {
      if (shutting_down_) {
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
        return;
      }
      v1::ClusterView v;
      BuildView(&v);
      w->Push(std::move(v));
      watchers_.push_back(w);
    });
    return w.get();
  }

  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest*,
                                      v1::ListNodesReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      v1::ClusterView v;
      BuildView(&v);
      *reply->mutable_nodes() = std::move(*v.mutable_nodes());
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* ctx, const v1::ListTasksRequest*,
                                      v1::ListTasksReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      std::vector<const v1::TaskRecord*> sorted;
      for (const auto& [id, t] : tasks_) sorted.push_back(&t);
      std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
        return a->submit_unix_ms() < b->submit_unix_ms();
      });
      for (const auto* t : sorted) *reply->add_tasks() = *t;
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ShutdownRequest*,
                                     v1::ShutdownReply*) override {
    return AnswerNow(ctx, options_.token, [this] {
      Log("shutdown requested");
      stop_requested_ = true;
      return grpc::Status::OK;
    });
  }

  // ---- placement groups ---------------------------------------------------------------------

  grpc::ServerUnaryReactor* CreatePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const v1::CreatePlacementGroupRequest* req,
                                                 v1::CreatePlacementGroupReply* reply) override {
    return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [&]() -> Validated {
      if (req->group_id().empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "group_id: empty");
      }
      auto strategy = ParsePlacementStrategy(req->strategy().empty() ? "PACK" : req->strategy());
      if (!strategy.ok()) return ToGrpc(strategy.status());
      std::vector<ResourceRequest> bundles;
      for (int i = 0; i < req->bundles_size(); ++i) {
        auto b = RequestFromProto(req->bundles(i), "bundles[" + std::to_string(i) + "]");
        if (!b.ok()) return ToGrpc(b.status());
        bundles.push_back(std::move(*b));
      }
      return LoopHalf([this, reply, id = req->group_id(), strategy = *strategy,
                       bundles = std::move(bundles)]() mutable {
        // A removed group's name is free again (as in Ray); a live one's is not (the
        // controller says so). Its nodes must have answered every bundle call of the old group
        // first (a cancel still on its way would otherwise release a bundle of the new one).
        if (auto old = controller_.groups().find(id); old != controller_.groups().end() &&
                                                      old->second.reservation.state() ==
                                                          ReservationState::kRemoved &&
                                                      calls_in_flight_[id] > 0) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "placement group " + id +
                                  " was just removed and its bundles are being returned; retry");
        }
        const size_t n = bundles.size();
        auto decisions = controller_.CreatePlacementGroup(id, strategy, std::move(bundles), NowS());
        if (!decisions.ok()) return ToGrpc(decisions.status());
        Log("placement group " + id + " created (" + PlacementStrategyName(strategy) + ", " +
            std::to_string(n) + " bundles)");
        Apply(*decisions);
        GroupToProto(id, controller_.groups().at(id), reply->mutable_group());
        return grpc::Status::OK;
      });
    });
  }

  grpc::ServerUnaryReactor* GetPlacementGroup(grpc::CallbackServerContext* ctx,
                                              const v1::GetPlacementGroupRequest* req,
                                              v1::PlacementGroupInfo* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply, id = req->group_id()] {
      auto it = controller_.groups().find(id);
      if (it == controller_.groups().end()) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no placement group " + id);
      }
      GroupToProto(id, it->second, reply);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* RemovePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const v1::RemovePlacementGroupRequest* req,
                                                 v1::RemovePlacementGroupReply*) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, id = req->group_id()] {
      auto it = controller_.groups().find(id);
      if (it == controller_.groups().end()) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no placement group " + id);
      }
      if (it->second.reservation.state() != ReservationState::kRemoved) {
        Log("placement group " + id + " removed");
      }
      auto decisions = controller_.RemovePlacementGroup(id);
      if (decisions.ok()) Apply(*decisions);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ListPlacementGroups(grpc::CallbackServerContext* ctx,
                                                const v1::ListPlacementGroupsRequest*,
                                                v1::ListPlacementGroupsReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      for (const auto& [id, g] : controller_.groups()) GroupToProto(id, g, reply->add_groups());
      return grpc::Status::OK;
    });
  }

  // ---- logging: the log hub (live/head/log_hub.h) has its own lock and never waits ----------------

  grpc::ServerUnaryReactor* PublishLogs(grpc::CallbackServerContext* ctx,
                                        const v1::PublishLogsRequest* req,
                                        v1::PublishLogsReply*) override {
    return AnswerNow(ctx, options_.token, [this, req] {
      log_hub_.Publish(*req);
      return grpc::Status::OK;
    });
  }

  grpc::ServerWriteReactor<v1::LogBatch>* SubscribeLogs(
      grpc::CallbackServerContext* ctx, const v1::SubscribeLogsRequest* req) override {
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) return ClosedStream<v1::LogBatch>(s);
    return log_hub_.Subscribe(req->job_id());
  }

  // ---- actors: the directory (live/head/actor_directory.h) ---------------------------------------

  grpc::ServerUnaryReactor* ReportActor(grpc::CallbackServerContext* ctx,
                                        const v1::ReportActorRequest* req,
                                        v1::ReportActorReply*) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, info = req->actor()]() mutable {
      return ToGrpc(actors_.Report(std::move(info), UnixNowMs()));
    });
  }

  grpc::ServerUnaryReactor* ListActors(grpc::CallbackServerContext* ctx,
                                       const v1::ListActorsRequest*,
                                       v1::ListActorsReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      actors_.List(reply);
      return grpc::Status::OK;
    });
  }

  // ---- jobs (live/head/jobs/job_manager.h): thin handlers, the JobManager runs on the loop --------------

  int dashboard_port() const { return http_ ? http_->port() : 0; }

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* req,
                                      v1::SubmitJobReply* reply) override {
    return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [this, req, reply]() -> Validated {
      if (Status s = ValidateSubmitJob(*req); !s.ok()) return ToGrpc(s);
      return LoopHalf([this, req, reply] {
        if (!jobs_) return JobsUnavailable();
        auto id = jobs_->Submit(*req);
        if (id.ok()) reply->set_submission_id(*id);
        return id.ok() ? grpc::Status::OK : ToGrpc(id.status());
      });
    });
  }

  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::JobInfo* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, req, reply] {
      if (!jobs_) return JobsUnavailable();
      auto job = jobs_->Get(req->submission_id());
      if (job.ok()) *reply = std::move(*job);
      return job.ok() ? grpc::Status::OK : ToGrpc(job.status());
    });
  }

  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx, const v1::ListJobsRequest*,
                                     v1::ListJobsReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      if (!jobs_) return JobsUnavailable();
      for (auto& j : jobs_->List()) *reply->add_jobs() = std::move(j);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* StopJob(grpc::CallbackServerContext* ctx, const v1::StopJobRequest* req,
                                    v1::StopJobReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, req, reply] {
      if (!jobs_) return JobsUnavailable();
      auto stopped = jobs_->Stop(req->submission_id());
      if (stopped.ok()) reply->set_stopped(*stopped);
      return stopped.ok() ? grpc::Status::OK : ToGrpc(stopped.status());
    });
  }

  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* req,
                                      v1::DeleteJobReply*) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, req] {
      if (!jobs_) return JobsUnavailable();
      return ToGrpc(jobs_->Delete(req->submission_id()));
    });
  }

  grpc::ServerWriteReactor<v1::JobLogsChunk>* JobLogs(grpc::CallbackServerContext* ctx,
                                                      const v1::JobLogsRequest* req) override {
    auto w = StreamWriter<v1::JobLogsChunk>::Create(/*keep_latest_only=*/false);
    if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
    loop_.Post([this, w, r = *req] {
      if (!jobs_) return w->Close(JobsUnavailable());
      jobs_->StreamLog(r, w);
    });
    return w.get();
  }

 private:
  static grpc::Status JobsUnavailable() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the head's job manager is not running");
  }

  // Opens the job store, then serves the HTTP jobs API (if a port is set). Called once the gRPC
  // server listens (drivers get its address).
  Status StartJobs() {
    namespace fs = std::filesystem;
    JobManagerOptions o;
    o.store_path = options_.job_store;
    if (!options_.job_store.empty()) {
      o.log_dir = (fs::path(options_.job_store).parent_path() / "job_logs").string();
    } else if (!options_.session_dir.empty()) {
      o.log_dir = (fs::path(options_.session_dir) / "job_logs").string();
    } else {
      std::string tmpl = (fs::temp_directory_path() / "orrery_head_jobs_XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) return Internal("cannot create a job log dir");
      private_log_dir_ = o.log_dir = tmpl;
    }
    const std::string host = options_.bind == "0.0.0.0" ? "127.0.0.1" : options_.bind;
    o.head_address = host + ":" + std::to_string(port_);
    o.token = options_.token;
    o.max_running_jobs = options_.max_running_jobs;
    o.log = options_.job_log;
    // The driver's first lease request goes to the head node if alive, else the first alive
    // node by id (the node's policy may spill it elsewhere).
    auto entry_address = [this] {
      std::string first;
      for (const auto& [id, m] : controller_.members()) {
        if (!m.node.IsSchedulable()) continue;
        const NodeEntry& e = nodes_.at(id);
        if (e.is_head_node) return e.address;
        if (first.empty()) first = e.address;
      }
      return first;
    };
    auto task_ended = [this](const std::string& task_id) {
      auto t = tasks_.find(task_id);
      return t != tasks_.end() && (t->second.state() == v1::TASK_STATE_FINISHED ||
                                   t->second.state() == v1::TASK_STATE_FAILED ||
                                   t->second.state() == v1::TASK_STATE_CANCELED);
    };
    auto jobs = JobManager::Create(std::move(o), &loop_, entry_address, task_ended);
    if (!jobs.ok()) return jobs.status();
    JobManager* manager = jobs->get();
    loop_.RunSync([&] { jobs_ = std::move(*jobs); });
    if (options_.dashboard_port >= 0) {
      auto http = JobHttpServer::Start(
          JobHttpOptions{
              .bind = options_.bind, .port = options_.dashboard_port, .token = options_.token},
          [this](const std::function<void()>& fn) { return loop_.RunSync(fn); }, manager);
      if (!http.ok()) {
        Log("jobs API not served: " + http.status().message());
      } else {
        http_ = std::move(*http);
        if (!options_.session_dir.empty()) {
          (void)WriteFileAtomic(fs::path(options_.session_dir) / "dashboard_address",
                                host + ":" + std::to_string(http_->port()) + "\n");
        }
      }
    }
    return Status::Ok();
  }

  void StopJobs() {
    if (http_) http_->Stop();
    if (jobs_) jobs_->Shutdown();
    if (!private_log_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(private_log_dir_, ec);
    }
  }

  // What the head keeps of a member besides the controller's Member: transport and display.
  struct NodeEntry {
    std::string address;
    bool is_head_node = false;
    int pid = 0;
    std::vector<v1::Demand> pending;
    std::string metrics_address;  // --- Metrics: empty if the node serves none
  };

  // Loop thread: liveness and broadcast, once per report period.
  void Tick() {
    // Liveness (with the stall extension), placement fail-over and the broadcast version are
    // the controller's (core/agent/head_controller.h); the head fails over what it owns.
    agent::TickDecisions d = controller_.Tick(NowS());
    if (d.stall_s > 0) {
      Log("the head's loop stalled for " + std::to_string(static_cast<int64_t>(d.stall_s * 1000)) +
          " ms: node health deadlines extended");
    }
    for (const agent::NodeDeath& death : d.dead) {
      const NodeId& id = death.node;
      NodeEntry& e = nodes_[id];
      e.pending.clear();
      Log("node " + id + " missed its heartbeats for " +
          std::to_string(static_cast<int64_t>(death.silent_s * 1000)) + " ms: dead");
      // Tasks that were running there are lost with it.
      for (auto& [tid, t] : tasks_) {
        if (t.node_id() == id &&
            (t.state() == v1::TASK_STATE_RUNNING || t.state() == v1::TASK_STATE_LEASED ||
             t.state() == v1::TASK_STATE_PENDING)) {
          t.set_state(v1::TASK_STATE_FAILED);
          t.set_error("node " + id + " died");
        }
      }
      actors_.OnNodeDead(id, UnixNowMs());  // --- actors
      if (jobs_) jobs_->OnNodeDead(id, e.address);  // --- jobs
    }
    Apply(d.placement);
    // --- actors: a RESTARTING actor the head marked and no driver reported on since.
    actors_.Expire(UnixNowMs(), kActorDriverGrace);
    UpdateMetrics();
    UpdateTargets();
    if (watchers_.empty()) return;
    v1::ClusterView v;
    BuildView(&v);
    std::erase_if(watchers_, [](const auto& w) { return w->done(); });
    for (auto& w : watchers_) w->Push(v);
  }

  void BuildView(v1::ClusterView* out) const {
    const double now_s = NowS();
    out->set_version(controller_.version());
    ToProto(options_.scheduler, out->mutable_scheduler());
    for (const auto& [id, m] : controller_.members()) {  // std::map: by node id
      const NodeEntry& e = nodes_.at(id);
      auto* n = out->add_nodes();
      ToProto(m.node, n);
      n->set_address(e.address);
      n->set_is_head_node(e.is_head_node);
      n->set_pid(e.pid);
      n->set_metrics_address(e.metrics_address);
      n->set_ms_since_heartbeat(static_cast<int64_t>((now_s - m.last_heard_s) * 1000));
      for (const auto& d : e.pending) *n->add_pending() = d;
    }
  }

  // ---- placement groups: the loop's side of TwoPhaseReservation ------------------------------

  static constexpr std::chrono::milliseconds kBundleCallTimeout{5000};

  // Seconds on the head's own clock, for the controller (it reads none itself).
  double NowS() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

  // Carries out the controller's placement decisions: bundle calls now, retry timers later.
  void Apply(const agent::PlacementDecisions& d) {
    Send(d.commands);
    for (const auto& id : d.created) Log("placement group " + id + " is created");
    for (const agent::RetryAt& r : d.retries) {
      const double delay_s = std::max(0.0, r.at_s - NowS());
      loop_.PostAfter(std::chrono::milliseconds(static_cast<int64_t>(delay_s * 1000.0) + 1),
                      [this, id = r.group] {
                        if (shutting_down_) return;
                        Apply(controller_.RetryPlacementGroup(id, NowS()));
                      });
    }
  }

  // Carries out the state machine's commands as asynchronous calls; each reply is posted back
  // to the loop (OnBundleReply). Cancels need no answer.
  void Send(const std::vector<TwoPhaseCommand>& cmds) {
    for (const auto& cmd : cmds) {
      const agent::Member* member = controller_.FindMember(cmd.node);
      auto n = nodes_.find(cmd.node);
      if (member == nullptr || !member->node.IsAlive() || n == nodes_.end()) {
        // No node to ask: a failed answer (Cancels to a dead node are moot).
        if (cmd.kind != TwoPhaseCommand::Kind::kCancel) {
          loop_.Post([this, cmd] { OnBundleReply(cmd, false, "node unknown or dead"); });
        }
        continue;
      }
      auto& stub = stubs_[n->second.address];
      if (!stub) {
        stub = v1::NodeService::NewStub(
            grpc::CreateChannel(n->second.address, grpc::InsecureChannelCredentials()));
      }
      struct Call {
        grpc::ClientContext ctx;
        v1::BundleRequest req;
        v1::BundleReply reply;
      };
      auto call = std::make_shared<Call>();
      AttachToken(&call->ctx, options_.token);
      call->ctx.set_deadline(std::chrono::system_clock::now() + kBundleCallTimeout);
      call->req.set_group_id(cmd.group);
      call->req.set_bundle_index(cmd.bundle);
      ToProto(cmd.resources.set(), call->req.mutable_resources());
      ++bundle_calls_;
      ++calls_in_flight_[cmd.group];
      auto done = [this, call, cmd](grpc::Status s) {
        const bool ok = s.ok() && call->reply.ok();
        const std::string why = !s.ok() ? s.error_message() : call->reply.reason();
        loop_.Post([this, cmd, ok, why] {
          --calls_in_flight_[cmd.group];
          if (cmd.kind != TwoPhaseCommand::Kind::kCancel) OnBundleReply(cmd, ok, why);
        });
        --bundle_calls_;
      };
      switch (cmd.kind) {
        case TwoPhaseCommand::Kind::kPrepare:
          stub->async()->PrepareBundle(&call->ctx, &call->req, &call->reply, std::move(done));
          break;
        case TwoPhaseCommand::Kind::kCommit:
          stub->async()->CommitBundle(&call->ctx, &call->req, &call->reply, std::move(done));
          break;
        case TwoPhaseCommand::Kind::kCancel:
          stub->async()->CancelBundle(&call->ctx, &call->req, &call->reply, std::move(done));
          break;
      }
    }
  }

  void OnBundleReply(const TwoPhaseCommand& cmd, bool ok, const std::string& why) {
    if (controller_.groups().count(cmd.group) == 0) return;
    if (!ok) {
      Log("placement group " + cmd.group + ": " + TwoPhaseCommandKindName(cmd.kind) +
          " of bundle " + std::to_string(cmd.bundle) + " on " + cmd.node + " failed: " + why);
    }
    auto next = controller_.OnBundleReply(cmd, ok, NowS());
    if (!next.ok()) {
      Log("placement group " + cmd.group + ": stale answer: " + next.status().ToString());
      return;
    }
    Apply(*next);
  }

  static v1::PlacementGroupState StateToProto(const agent::PlacementGroupEntry& g) {
    switch (g.reservation.state()) {
      case ReservationState::kPending:
        return v1::PLACEMENT_GROUP_STATE_PENDING;
      case ReservationState::kPreparing:
        return v1::PLACEMENT_GROUP_STATE_PREPARING;
      case ReservationState::kCommitting:
        return v1::PLACEMENT_GROUP_STATE_COMMITTING;
      case ReservationState::kCreated:
        return v1::PLACEMENT_GROUP_STATE_CREATED;
      case ReservationState::kFailed:
        return g.infeasible ? v1::PLACEMENT_GROUP_STATE_INFEASIBLE
                            : v1::PLACEMENT_GROUP_STATE_FAILED;
      case ReservationState::kRemoved:
        return v1::PLACEMENT_GROUP_STATE_REMOVED;
    }
    return v1::PLACEMENT_GROUP_STATE_UNSPECIFIED;
  }

  static void GroupToProto(const std::string& id, const agent::PlacementGroupEntry& g,
                           v1::PlacementGroupInfo* out) {
    const TwoPhaseReservation& res = g.reservation;
    out->set_group_id(id);
    out->set_strategy(PlacementStrategyName(g.strategy));
    for (const auto& b : res.bundles()) ToProto(b.set(), out->add_bundles());
    out->set_state(StateToProto(g));
    for (const auto& n : res.placement()) out->add_bundle_nodes(n);
    out->set_attempts(res.attempts());
    out->set_reason(res.reason());
  }

  void UpsertTask(const v1::TaskRecord& t) {
    if (t.task_id().empty()) return;
    auto [it, inserted] = tasks_.try_emplace(t.task_id(), t);
    if (!inserted) {
      // Spillbacks accumulate across the nodes a task visited.
      const int hops = std::max(it->second.spillbacks(), t.spillbacks());
      it->second = t;
      it->second.set_spillbacks(hops);
    }
    if (inserted) order_.push_back(t.task_id());
    while (tasks_.size() > options_.max_tasks && !order_.empty()) {
      tasks_.erase(order_.front());
      order_.erase(order_.begin());
    }
  }

  // ---- metrics (live/common/metrics.h) ------------------------------------------------------------

  // Controlling thread, before Tick is scheduled.
  Status StartMetrics() {
    auto targets = MetricsTargetsWriter::Open(options_.session_dir);
    if (!targets.ok()) return targets.status();
    targets_ = std::move(*targets);
    if (options_.metrics_port < 0) return Status::Ok();
    std::string host = options_.bind;
    if (host == "0.0.0.0") {
      char buf[256] = {0};
      host = gethostname(buf, sizeof(buf) - 1) == 0 ? std::string(buf) : "127.0.0.1";
    }
    auto m = MetricsEndpoint::Start(options_.bind, options_.metrics_port, host);
    if (!m.ok()) return m.status();
    metrics_endpoint_ = std::move(*m);
    metrics_ = std::make_unique<HeadMetrics>(metrics_endpoint_->registry());
    Log("metrics at http://" + metrics_endpoint_->address() + "/metrics");
    return Status::Ok();
  }

  // Loop thread: the file_sd list (the head, then every alive node with an endpoint, by id).
  // The writer skips an unchanged list, so calling this every period costs no I/O.
  void UpdateTargets() {
    std::vector<MetricsTarget> targets;
    if (metrics_endpoint_) {
      targets.push_back({metrics_endpoint_->address(), {{"orrery_role", "head"}}});
    }
    for (const auto& [id, m] : controller_.members()) {
      const NodeEntry& e = nodes_.at(id);
      if (!m.node.IsAlive() || e.metrics_address.empty()) continue;
      targets.push_back({e.metrics_address, {{"orrery_role", "node"}, {"orrery_node", id}}});
    }
    targets_->Update(std::move(targets));
  }

  // "TASK_STATE_FINISHED" -> "finished": a proto enum name as the metrics' label value.
  static std::string StateLabel(std::string name, std::string_view prefix) {
    if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name;
  }

  // Loop thread, once per report period.
  void UpdateMetrics() {
    if (!metrics_) return;
    std::map<std::string, double> nodes = {{"alive", 0}, {"draining", 0}, {"dead", 0}};
    std::map<std::string, double> active, pending;
    for (const auto& [id, m] : controller_.members()) {
      ++nodes[NodeStateName(m.node.state)];
      auto type = m.node.labels.find("node_type");
      const std::string t = type == m.node.labels.end() ? "default" : type->second;
      pending[t] = 0;  // no live autoscaler launches nodes yet
      active[t] += m.node.IsAlive() ? 1 : 0;
    }
    if (autoscaler_) autoscaler_->Counts(&active, &pending);  // --- autoscaler
    metrics_->SetNodes(nodes);
    metrics_->SetAutoscalerNodes(active, pending);
    std::map<std::string, double> groups = {{"pending", 0}, {"preparing", 0}, {"committing", 0},
                                            {"created", 0}, {"failed", 0},    {"infeasible", 0},
                                            {"removed", 0}};
    for (const auto& [id, g] : controller_.groups()) {
      ++groups[StateLabel(v1::PlacementGroupState_Name(StateToProto(g)), "PLACEMENT_GROUP_STATE_")];
    }
    metrics_->SetPlacementGroups(groups);
    std::map<std::string, double> tasks = {{"pending", 0},  {"leased", 0}, {"running", 0},
                                           {"finished", 0}, {"failed", 0}, {"canceled", 0}};
    for (const auto& [id, t] : tasks_) {
      ++tasks[StateLabel(v1::TaskState_Name(t.state()), "TASK_STATE_")];
    }
    metrics_->SetTaskTable(tasks);
  }

  // --- autoscaler (live/head/autoscaler/autoscaler_loop.h) ------------------------------------------------------

  // Controlling thread, from Serve (after the port is known).
  Status StartAutoscaler() {
    if (!options_.autoscaler) return Status::Ok();
    LocalProcessProviderOptions po;
    po.orrery_exe = options_.autoscaler_exe;
    if (po.orrery_exe.empty()) {
      std::error_code ec;
      po.orrery_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
      if (ec) return Internal("autoscaler: cannot find this executable: " + ec.message());
    }
    const std::string host = options_.bind == "0.0.0.0" ? "127.0.0.1" : options_.bind;
    po.head_address = host + ":" + std::to_string(port_);
    po.token = options_.token;
    po.session_dir = options_.session_dir;
    if (!options_.session_dir.empty()) {
      po.log_dir = (std::filesystem::path(options_.session_dir) / "logs").string();
      po.pid_dir = (std::filesystem::path(options_.session_dir) / "pids").string();
    }
    po.node_types = options_.autoscaler->planner.node_types;
    po.first_index = options_.autoscaler->first_index;
    po.now_s = [this] { return NowS(); };
    auto loop = AutoscalerLoop::Create(*options_.autoscaler,
                                       std::make_unique<LocalProcessProvider>(std::move(po)));
    if (!loop.ok()) return loop.status().WithContext("autoscaler");
    autoscaler_ = std::move(*loop);
    const auto period = std::chrono::milliseconds(
        std::max<int64_t>(10, static_cast<int64_t>(options_.autoscaler->period_s * 1000 + 0.5)));
    loop_.Post([this] { AutoscalerRound(); });  // min_workers and initial nodes at once
    loop_.Every(period, [this] { AutoscalerRound(); });
    return Status::Ok();
  }

  // Loop thread: one planning round over the node table and the unplaced groups.
  void AutoscalerRound() {
    if (!autoscaler_ || shutting_down_) return;
    AutoscalerRoundInput in;
    in.now_s = NowS();
    for (const auto& [id, m] : controller_.members()) {
      const NodeEntry& e = nodes_.at(id);
      HeadNodeState h;
      h.node = m.node;
      for (const auto& d : e.pending) {
        if (d.wait_reason() != v1::WAIT_REASON_INFEASIBLE &&
            d.wait_reason() != v1::WAIT_REASON_WAITING_FOR_RESOURCES) {
          continue;
        }
        auto shape = FromProto(d.shape(), "pending.shape");
        if (shape.ok() && d.count() > 0) h.demand.push_back({*shape, d.count()});
      }
      in.nodes.push_back(std::move(h));
    }
    in.gangs = controller_.UnplacedGangs();
    const AutoscalerRoundOutput out = autoscaler_->Round(in);
    for (const auto& line : out.log) Log(line);
    for (const auto& id : out.drain) (void)controller_.Drain(id);
  }

  grpc::ServerUnaryReactor* GetAutoscalerStatus(grpc::CallbackServerContext* ctx,
                                                const v1::GetAutoscalerStatusRequest*,
                                                v1::AutoscalerStatus* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      if (autoscaler_) autoscaler_->FillStatus(NowS(), reply);
      return grpc::Status::OK;
    });
  }

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
  std::vector<std::string> order_;  // task ids by first report
  std::vector<std::shared_ptr<StreamWriter<v1::ClusterView>>> watchers_;
  const Clock::time_point started_ = Clock::now();
  std::map<std::string, int> calls_in_flight_;  // bundle RPCs not answered yet, by group id
  std::map<std::string, std::unique_ptr<v1::NodeService::Stub>> stubs_;  // by node address
  std::atomic<int> bundle_calls_{0};  // bundle RPCs in flight (any thread)
  // --- jobs: the manager is set on the loop once created (handlers check it there); the HTTP
  // server has its own thread. Both stop before the loop.
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<JobHttpServer> http_;
  std::string private_log_dir_;  // job logs of a head without a store or session dir
  std::unique_ptr<PackageService> packages_;  // --- runtime envs (thread-safe)
  // Logging: PublishLogs / SubscribeLogs (thread-safe; not owned by loop_).
  LogHub log_hub_;

  // --- actors. Owned by loop_. A driver restarting an actor reports within this.
  static constexpr std::chrono::milliseconds kActorDriverGrace{30000};
  static int64_t UnixNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  ActorDirectory actors_;
};

HeadDaemon::HeadDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HeadDaemon::~HeadDaemon() { Stop(); }

StatusOr<std::unique_ptr<HeadDaemon>> HeadDaemon::Start(const HeadOptions& options) {
  if (options.token.empty()) return InvalidArgument("token: empty");
  auto impl = std::make_unique<Impl>(options);
  ORRERY_RETURN_IF_ERROR(impl->Serve());
  return std::unique_ptr<HeadDaemon>(new HeadDaemon(std::move(impl)));
}

int HeadDaemon::port() const { return impl_->port(); }
int HeadDaemon::dashboard_port() const { return impl_->dashboard_port(); }  // --- jobs
int HeadDaemon::metrics_port() const { return impl_->metrics_port(); }
std::string HeadDaemon::metrics_targets_path() const { return impl_->metrics_targets_path(); }
bool HeadDaemon::StopRequested() const { return impl_->stop_requested(); }
void HeadDaemon::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live
