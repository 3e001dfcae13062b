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
#include <vector>

#include "core/agent/node_agent.h"
#include "core/lease/lease_manager.h"
#include "core/placement/two_phase.h"
#include "core/rng.h"
#include "live/worker/worker.h"
#include "live/rpc/convert.h"
#include "live/node/task_output.h"
#include "live/node/gpu_detect.h"
#include "live/node/log_monitor.h"
#include "live/node/worker_log.h"
#include "live/rpc/event_loop.h"
#include "live/common/file_stream.h"
#include "live/common/metrics.h"
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

namespace {

int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsTerminal(v1::TaskState s) {
  return s == v1::TASK_STATE_FINISHED || s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_CANCELED;
}

}  // namespace

class NodeDaemon::Impl final : public v1::NodeService::CallbackService {
 public:
  explicit Impl(NodeOptions o) : options_(std::move(o)), rng_(options_.seed) {}

  // ---- lifecycle (controlling thread) --------------------------------------------------------

  Status Serve() {
    grpc::ServerBuilder b;
    b.AddListeningPort(options_.bind + ":" + std::to_string(options_.port),
                       grpc::InsecureServerCredentials(), &port_);
    // Never share a port: gRPC turns SO_REUSEPORT on by default, and two daemons on one port
    // would each get a share of the connections.
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) {
      Status why = CheckPortFree(options_.bind, options_.port, "node");
      return why.ok() ? Status(StatusCode::kUnavailable, "cannot listen on " + options_.bind +
                                                              ":" + std::to_string(options_.port))
                      : why;
    }
    const std::string host = options_.bind == "0.0.0.0" ? Hostname() : options_.bind;
    address_ = host + ":" + std::to_string(port_);
    node_id_ =
        options_.node_id.empty() ? Hostname() + "-" + std::to_string(port_) : options_.node_id;
    // The id names files (logs, runtime envs): never build a path from an unchecked name.
    if (Status s = ValidateNodeName(node_id_, "node id"); !s.ok()) return s;
    // --- Metrics: the endpoint is up before registering, so the head learns its address.
    if (options_.metrics_port >= 0) {
      auto m = MetricsEndpoint::Start(options_.bind, options_.metrics_port, host);
      if (!m.ok()) return m.status();
      metrics_endpoint_ = std::move(*m);
      metrics_ = std::make_unique<NodeMetrics>(metrics_endpoint_->registry(), node_id_);
    }
    // Objects live under the session (<session>/objects/<node id>), so `--temp-dir` holds all
    // of a cluster and the next `orrery start` can clean up after a killed node.
    std::string object_dir = options_.object_dir;
    if (object_dir.empty() && !options_.session_dir.empty()) {
      object_dir = (std::filesystem::path(options_.session_dir) / "objects" / node_id_).string();
    }
    auto store = ObjectStore::Open(object_dir, /*remove_on_close=*/true);
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    if (options_.reap_orphans) {
      ORRERY_RETURN_IF_ERROR(OrphanReaper::BecomeSubreaper());
      reaper_ = std::make_unique<OrphanReaper>([this](pid_t pid) {
        return supervisor_.IsChild(pid) || (agent_ && agent_->IsSetupProcess(pid));
      });
      loop_.Every(std::chrono::milliseconds(1000), [this] {
        for (const auto& what : reaper_->Sweep()) {
          Log("killed " + what + ": left behind by a task or a runtime-env setup");
        }
      });
    }
    // --- logging: workers write <session>/logs/worker-*.out|.err; the monitor publishes them.
    ORRERY_RETURN_IF_ERROR(StartLogMonitor());
    WorkerPoolOptions wo;
    wo.exe = options_.worker_exe.empty() ? SelfExe() : options_.worker_exe;
    wo.env = {{"ORRERY_NODE_ID", node_id_}};
    for (auto& kv : log_monitor_->WorkerEnv()) wo.env.push_back(kv);  // logging
    wo.max_idle_per_env = options_.max_idle_workers;
    pool_ = std::make_unique<WorkerPool>(&supervisor_, std::move(wo),
                                         [this](std::function<void()> f) { loop_.Post(f); });
    ApiWorkerPoolOptions ao;
    ao.exe = options_.worker_exe.empty() ? SelfExe() : options_.worker_exe;
    ao.bind_host = options_.bind == "0.0.0.0" ? Hostname() : options_.bind;
    ao.token = options_.token;
    ao.env = {{"ORRERY_NODE_ID", node_id_}};
    for (auto& kv : log_monitor_->WorkerEnv()) ao.env.push_back(kv);  // logging
    ao.max_idle = options_.max_idle_workers;
    api_pool_ = std::make_unique<ApiWorkerPool>(
        &supervisor_, std::move(ao), [this](std::function<void()> f) { loop_.Post(f); });
    head_ = v1::HeadService::NewStub(
        grpc::CreateChannel(options_.head_address, grpc::InsecureChannelCredentials()));
    ORRERY_RETURN_IF_ERROR(StartRuntimeEnvAgent());  // --- runtime envs
    auto reply = RegisterWithRetry(options_.register_timeout);
    if (!reply.ok()) return reply.status();
    // Policy is a cluster setting: decide with the head's (options_.scheduler only for a head
    // that sends none).
    if (reply->view().has_scheduler()) {
      auto cluster = SchedulerFromProto(reply->view().scheduler());
      if (!cluster.ok()) return cluster.status().WithContext("the head's scheduling setting");
      scheduler_ = std::move(*cluster);
    }
    Status init;
    loop_.RunSync([&] { init = InitManager(reply->view()); });
    ORRERY_RETURN_IF_ERROR(init);
    if (reply->report_period_ms() > 0) report_period_ = milliseconds(reply->report_period_ms());
    Log("registered with the head at " + options_.head_address + " as " + node_id_ + " (" +
        address_ + ", " + options_.total.ToString() + ")");
    heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
    watch_thread_ = std::thread([this] { WatchLoop(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    Log("stopping");
    if (metrics_endpoint_) metrics_endpoint_->BeginStop();  // --- Metrics
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
      if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
      if (fetch_ctx_ != nullptr) fetch_ctx_->TryCancel();
    }
    cv_.notify_all();
    loop_.RunSync([this] {
      shutting_down_ = true;
      for (auto& [task, w] : waiting_) {
        if (manager_) (void)node_agent_->CancelLease(task, "node stopping");
        w.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "node stopping"));
      }
      waiting_.clear();
    });
    // Exits are reported through the RunTask streams before the server goes away.
    supervisor_.KillAll(std::chrono::seconds(2));
    if (log_monitor_) log_monitor_->Stop();  // publishes the workers' last lines
    if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
    if (watch_thread_.joinable()) watch_thread_.join();
    fetch_loop_.Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    serve_loop_.Stop();
    loop_.Stop();
    StopRuntimeEnvAgent();  // --- runtime envs: after the loop, so no callback races it
    // Whatever a task or setup left behind (re-parented to this daemon) goes with it.
    if (reaper_) {
      if (const int n = reaper_->KillAll(std::chrono::seconds(2)); n > 0) {
        Log("killed " + std::to_string(n) + " process(es) left behind by tasks or setups");
      }
    }
  }

  // Logging: the monitor's thread publishes with its own stub (blocking, bounded by a deadline).
  Status StartLogMonitor() {
    // The workers read these; a bad value fails the node's start, not every worker later.
    for (const char* var : {"ORRERY_LOG_MAX_BYTES", "ORRERY_LOG_BACKUP_COUNT"}) {
      ORRERY_RETURN_IF_ERROR(LogBytesFromEnv(var, 1).status());
    }
    LogMonitorOptions lo;
    if (!options_.session_dir.empty()) {
      lo.dir = (std::filesystem::path(options_.session_dir) / "logs").string();
    }
    lo.node_id = node_id_;
    std::shared_ptr<v1::HeadService::Stub> stub = v1::HeadService::NewStub(
        grpc::CreateChannel(options_.head_address, grpc::InsecureChannelCredentials()));
    lo.publish = [stub, token = options_.token](std::vector<LogBatchData> batches) {
      v1::PublishLogsRequest req;
      for (auto& b : batches) {
        auto* m = req.add_batches();
        m->set_node_id(b.node_id);
        m->set_pid(b.pid);
        m->set_job_id(b.job_id);
        m->set_name(b.name);
        m->set_is_err(b.is_err);
        for (auto& line : b.lines) m->add_lines(std::move(line));
      }
      grpc::ClientContext ctx;
      AttachToken(&ctx, token);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      v1::PublishLogsReply reply;
      (void)stub->PublishLogs(&ctx, req, &reply);  // lost if the head is away: logs are best effort
    };
    auto m = LogMonitor::Start(std::move(lo));
    if (!m.ok()) return m.status();
    log_monitor_ = std::move(*m);
    return Status::Ok();
  }

  const std::string& node_id() const { return node_id_; }
  const std::string& address() const { return address_; }
  std::string metrics_address() const {
    return metrics_endpoint_ ? metrics_endpoint_->address() : std::string();
  }
  bool stop_requested() const { return stop_requested_.load(); }

  // ---- handlers: check the token, validate, post to the loop --------------------------------

  grpc::ServerUnaryReactor* Ready(grpc::CallbackServerContext* ctx, const v1::ReadyRequest*,
                                  v1::ReadyReply* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      reply->set_node_id(node_id_);
      reply->set_address(address_);
      reply->set_pid(static_cast<int32_t>(getpid()));
      reply->set_known_nodes(manager_ ? manager_->view().size() : 0);
      return manager_ ? grpc::Status::OK
                      : grpc::Status(grpc::StatusCode::UNAVAILABLE, "not registered yet");
    });
  }

  // ---- placement-group bundles (the node side of core/placement/two_phase.h) -----------------

  grpc::ServerUnaryReactor* PrepareBundle(grpc::CallbackServerContext* ctx,
                                          const v1::BundleRequest* req,
                                          v1::BundleReply* reply) override {
    return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kPrepare);
  }
  grpc::ServerUnaryReactor* CommitBundle(grpc::CallbackServerContext* ctx,
                                         const v1::BundleRequest* req,
                                         v1::BundleReply* reply) override {
    return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kCommit);
  }
  grpc::ServerUnaryReactor* CancelBundle(grpc::CallbackServerContext* ctx,
                                         const v1::BundleRequest* req,
                                         v1::BundleReply* reply) override {
    return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kCancel);
  }

  grpc::ServerUnaryReactor* OnBundle(grpc::CallbackServerContext* ctx, const v1::BundleRequest* req,
                                     v1::BundleReply* reply, TwoPhaseCommand::Kind kind) {
    return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [&]() -> Validated {
      auto resources = RequestFromProto(req->resources(), "resources");
      if (!resources.ok() || req->group_id().empty() || req->bundle_index() < 0) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            !resources.ok() ? resources.status().message()
                                            : "group_id empty or bundle_index negative");
      }
      return LoopHalf([this, reply, kind, group = req->group_id(), index = req->bundle_index(),
                       resources = std::move(*resources)] {
        if (!manager_ || shutting_down_) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              shutting_down_ ? "node stopping" : "node not registered yet");
        }
        std::string why;
        bool ok = true;
        switch (kind) {
          case TwoPhaseCommand::Kind::kPrepare:
            ok = PrepareBundleHere(group, index, resources, &why);
            break;
          case TwoPhaseCommand::Kind::kCommit:
            ok = CommitBundleHere(group, index, &why);
            break;
          case TwoPhaseCommand::Kind::kCancel:
            CancelBundleHere(group, index);
            break;
        }
        reply->set_ok(ok);
        reply->set_reason(why);
        return grpc::Status::OK;
      });
    });
  }

  grpc::ServerUnaryReactor* RequestWorkerLease(grpc::CallbackServerContext* ctx,
                                               const v1::RequestWorkerLeaseRequest* request,
                                               v1::RequestWorkerLeaseReply* reply) override {
    const uint64_t call_id = next_call_id_++;
    const std::string task_id = request->task_id();
    auto* r = new NotifyingUnaryReactor([this, task_id, call_id] {
      loop_.Post([this, task_id, call_id] { OnLeaseCallCanceled(task_id, call_id); });
    });
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    auto req = FromProto(*request);
    if (!req.ok()) {
      r->Finish(ToGrpc(req.status()));
      return r;
    }
    loop_.Post([this, r, reply, call_id, req = std::move(*req), name = request->name(),
                timeout = request->queue_timeout_ms(), task = request->task_id(),
                attempt = request->attempt()]() mutable {
      HandleLease(r, reply, call_id, std::move(req), name, timeout);
      // --- actors: a retried task's attempt number goes into its record.
      if (auto t = tasks_.find(task); attempt > 0 && t != tasks_.end()) {
        t->second.record.set_attempt(attempt);
      }
    });
    return r;
  }

  grpc::ServerUnaryReactor* ReturnWorkerLease(grpc::CallbackServerContext* ctx,
                                              const v1::ReturnWorkerLeaseRequest* req,
                                              v1::ReturnWorkerLeaseReply*) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    loop_.Post([this, r, task = req->task_id()] {
      auto it = tasks_.find(task);
      if (it == tasks_.end() || it->second.record.state() != v1::TASK_STATE_LEASED) {
        r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                               "no unused lease for task " + task + " on " + node_id_));
        return;
      }
      EndLease(it->second, v1::TASK_STATE_CANCELED, 0, "lease returned unused");
      r->Finish(grpc::Status::OK);
      RunPending();
    });
    return r;
  }

  grpc::ServerUnaryReactor* CancelWorkerLease(grpc::CallbackServerContext* ctx,
                                              const v1::CancelWorkerLeaseRequest* req,
                                              v1::CancelWorkerLeaseReply* reply) override {
    return AnswerOnLoop(
        ctx, options_.token, loop_,
        [this, reply, task = req->task_id(),
         reason = req->reason().empty() ? std::string("canceled by the caller") : req->reason()] {
          auto w = waiting_.find(task);
          if (w != waiting_.end() && manager_) {
            if (auto c = node_agent_->CancelLease(task, reason)) {
              SetTaskState(task, v1::TASK_STATE_CANCELED, reason);
              FinishWaiting(w, *c);
              reply->set_canceled(true);
            }
          }
          return grpc::Status::OK;
        });
  }

  grpc::ServerWriteReactor<v1::RunTaskReply>* RunTask(grpc::CallbackServerContext* ctx,
                                                      const v1::RunTaskRequest* req) override {
    const std::string task = req->task_id();
    auto w = StreamWriter<v1::RunTaskReply>::Create(
        false, [this, task] { loop_.Post([this, task] { KillTask(task); }); });
    w->SetBound(RunTaskOutputBound());  // a chatty process's output: bounded, oldest dropped
    if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
    // --- runtime envs: parsed here (bad input fails the call, the daemon is unaffected).
    auto renv = ParseRuntimeEnvJson(req->runtime_env_json(), "runtime_env_json");
    if (!renv.ok()) {
      w->Close(ToGrpc(renv.status()));
      return w.get();
    }
    if (req->has_workload()) {
      auto spec = ValidateWorkload(*req);
      if (!spec.ok()) {
        w->Close(ToGrpc(spec.status()));
        return w.get();
      }
      // --- live run: a built-in workload may run in a runtime env (pooled workers per env).
      loop_.Post([this, task, w, spec = std::move(*spec), req_copy = *req,
                  renv = std::move(*renv)]() mutable {
        StartWorkload(task, std::move(spec), req_copy, w, renv);
      });
      return w.get();
    }
    if (task.empty() || req->argv().empty() || req->argv(0).empty()) {
      w->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "task_id and argv are required"));
      return w.get();
    }
    ProcessSpec spec;
    spec.argv.assign(req->argv().begin(), req->argv().end());
    for (const auto& [k, v] : req->env()) {
      if (k.empty() || k.find('=') != std::string::npos) {
        w->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "env: bad name '" + k + "'"));
        return w.get();
      }
      spec.env.emplace_back(k, v);
    }
    std::sort(spec.env.begin(), spec.env.end());
    spec.cwd = req->cwd();
    loop_.Post([this, task, w, spec = std::move(spec), renv = std::move(*renv)]() mutable {
      StartTaskInEnv(task, std::move(spec), renv, w);
    });
    return w.get();
  }

  grpc::ServerWriteReactor<v1::ObjectChunk>* FetchObject(
      grpc::CallbackServerContext* ctx, const v1::FetchObjectRequest* req) override {
    auto w = StreamWriter<v1::ObjectChunk>::Create(false);
    if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
    if (auto s = ObjectStore::ValidateId(req->object_id(), "object_id"); !s.ok()) {
      w->Close(ToGrpc(s));
      return w.get();
    }
    // Reading the file is blocking work: the serve loop does it.
    serve_loop_.Post([this, w, id = req->object_id()] { ServeObject(id, w); });
    return w.get();
  }

  grpc::ServerUnaryReactor* PutObject(grpc::CallbackServerContext* ctx,
                                      const v1::PutObjectRequest* req,
                                      v1::PutObjectReply*) override {
    // Writing the file is blocking work: the serve loop does it.
    return ValidateThenAnswerOnLoop(ctx, options_.token, serve_loop_, [this, req]() -> Validated {
      if (auto s = ObjectStore::ValidateId(req->object_id(), "object_id"); !s.ok()) {
        return ToGrpc(s);
      }
      return LoopHalf([this, id = req->object_id(), bytes = req->bytes()] {
        return ToGrpc(store_->WriteSynthetic(id, bytes));
      });
    });
  }

  grpc::ServerWriteReactor<v1::AttachWorkerReply>* AttachWorker(
      grpc::CallbackServerContext* ctx, const v1::AttachWorkerRequest* req) override {
    const std::string task = req->task_id();
    // The caller canceling the call ends the lease (that is how a driver returns it).
    auto w = StreamWriter<v1::AttachWorkerReply>::Create(
        false, [this, task] { loop_.Post([this, task] { DetachWorker(task, ""); }); });
    if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
    ApiWorkerSpec spec;
    spec.library = req->code_library();
    spec.actor = req->actor();
    Status valid = Status::Ok();
    if (task.empty()) valid = InvalidArgument("task_id: empty");
    if (spec.library.empty() || spec.library[0] != '/') {
      valid = InvalidArgument("code_library: not an absolute path");
    }
    for (const auto& [k, v] : req->env()) {
      if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos ||
          v.find('\0') != std::string::npos) {
        valid = InvalidArgument("env: bad variable '" + k + "'");
      }
      spec.env.emplace_back(k, v);
    }
    auto renv = ParseRuntimeEnvJson(req->runtime_env_json(), "runtime_env_json");  // --- renv
    if (valid.ok() && !renv.ok()) valid = renv.status();
    if (!valid.ok()) {
      w->Close(ToGrpc(valid));
      return w.get();
    }
    // Logging: the worker names its log files after the job and marks its lines with it; the
    // env is part of the pool key, so workers are not shared between jobs (as in Ray).
    if (!req->job_id().empty()) spec.env.emplace_back("ORRERY_JOB_ID", req->job_id());
    std::sort(spec.env.begin(), spec.env.end());
    loop_.Post([this, task, w, spec = std::move(spec), renv = std::move(*renv)] {
      StartAttach(task, spec, w, renv);
    });
    return w.get();
  }

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ShutdownRequest*,
                                     v1::ShutdownReply*) override {
    return AnswerNow(ctx, options_.token, [this] {
      Log("shutdown requested");
      stop_requested_ = true;
      return grpc::Status::OK;
    });
  }

  // --- live run: the agent's cache counters, read on the loop that owns the agent.
  grpc::ServerUnaryReactor* GetRuntimeEnvCacheStats(grpc::CallbackServerContext* ctx,
                                                    const v1::RuntimeEnvCacheStatsRequest*,
                                                    v1::RuntimeEnvCacheStats* reply) override {
    return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
      reply->set_node_id(node_id_);
      if (agent_) {
        const auto& c = agent_->cache().counters();
        reply->set_hits(c.hits);
        reply->set_misses(c.misses);
        reply->set_evictions(c.evictions);
        reply->set_bytes_installed(c.bytes_installed);
        reply->set_total_bytes(agent_->cache().TotalBytes(kRuntimeEnvKind));
        reply->set_limit_bytes(agent_->cache().LimitBytes(kRuntimeEnvKind));
      }
      return grpc::Status::OK;
    });
  }

 private:
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
    WorkerEnv worker_env;
  };
  struct Waiting {
    uint64_t call_id = 0;
    NotifyingUnaryReactor* reactor = nullptr;
    v1::RequestWorkerLeaseReply* reply = nullptr;
    LeaseRequest request;  // to queue it again when the manager is rebuilt (bundle commit)
  };

  static std::string SelfExe() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("orrery") : p.string();
  }

  // A RunTask request for a built-in workload, checked (handler thread, no state touched).
  static StatusOr<WorkloadSpec> ValidateWorkload(const v1::RunTaskRequest& req) {
    if (req.task_id().empty()) return InvalidArgument("task_id: empty");
    if (req.task_id().find_first_of(" \n\t") != std::string::npos) {
      return InvalidArgument("task_id: has blanks");
    }
    if (!req.argv().empty()) return InvalidArgument("argv: set together with workload");
    const auto& wl = req.workload();
    if (wl.duration_ms() < 0) return InvalidArgument("workload.duration_ms: negative");
    WorkloadSpec spec;
    spec.duration_ms = wl.duration_ms();
    spec.bytes = wl.bytes();
    switch (wl.kind()) {
      case v1::Workload::SLEEP: spec.kind = WorkloadSpec::Kind::kSleep; break;
      case v1::Workload::CPU: spec.kind = WorkloadSpec::Kind::kCpu; break;
      case v1::Workload::MEMORY: spec.kind = WorkloadSpec::Kind::kMemory; break;
      case v1::Workload::PRODUCE: spec.kind = WorkloadSpec::Kind::kProduce; break;
      default: return InvalidArgument("workload.kind: unknown");
    }
    if (spec.kind == WorkloadSpec::Kind::kProduce) {
      ORRERY_RETURN_IF_ERROR(ObjectStore::ValidateId(req.output_object_id(), "output_object_id"));
    } else if (!req.output_object_id().empty()) {
      return InvalidArgument("output_object_id: only for PRODUCE");
    }
    for (int i = 0; i < req.args_size(); ++i) {
      ORRERY_RETURN_IF_ERROR(ObjectStore::ValidateId(
          req.args(i).object_id(), "args[" + std::to_string(i) + "].object_id"));
    }
    return spec;
  }

  static std::string Hostname() {
    char buf[256] = {0};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return "node";
    return buf;
  }
  void Log(const std::string& line) const {
    std::cerr << "[node " << node_id_ << "] " << line << std::endl;
  }

  // ---- the loop's state machine ----------------------------------------------------------------

  Status InitManager(const v1::ClusterView& v) {
    auto res = NodeResources::Create(options_.total);
    if (!res.ok()) return res.status();
    ClusterView view;
    Node self;
    self.id = node_id_;
    self.labels = options_.labels;
    self.resources = std::move(*res);
    ORRERY_RETURN_IF_ERROR(view.AddNode(std::move(self)));
    for (const auto& info : v.nodes()) {
      if (info.node_id() == node_id_) continue;
      auto n = NodeFromProto(info);
      if (!n.ok()) return n.status();
      addresses_[info.node_id()] = info.address();
      ORRERY_RETURN_IF_ERROR(view.AddNode(std::move(*n)));
    }
    node_agent_options_.scheduler = scheduler_;  // the cluster's setting (registration reply)
    // Tasks of a group ask for its committed bundle resources ("CPU_group_0_pg") by name.
    node_agent_options_.expose_committed_bundles = true;
    auto a = std::make_unique<agent::NodeAgent>(node_id_, &node_agent_options_);
    ORRERY_RETURN_IF_ERROR(a->CreateManager(std::move(view)));
    // A bundle commit rebuilds the manager and asks the held requests again.
    a->SetQueuedRequestLookup([this](const TaskId& task) -> const LeaseRequest* {
      auto w = waiting_.find(task);
      return w == waiting_.end() ? nullptr : &w->second.request;
    });
    node_agent_ = std::move(a);
    manager_ = node_agent_->manager();
    manager_->TrackWaitReasonChanges();  // RunPending updates records from the changes only
    return Status::Ok();
  }

  // A broadcast of the head: refresh every remote node's estimate (DESIGN section 3).
  void ApplyView(const v1::ClusterView& v) {
    if (!manager_ || shutting_down_) return;
    for (const auto& info : v.nodes()) {
      if (info.node_id() == node_id_) continue;
      auto n = NodeFromProto(info);
      if (!n.ok()) {
        Log("ignoring a bad view entry: " + n.status().ToString());
        continue;
      }
      addresses_[info.node_id()] = info.address();
      if (manager_->view().FindSlot(info.node_id()) < 0) {
        Log("learned of node " + info.node_id() + " at " + info.address());
        (void)node_agent_->AddNode(std::move(*n));
      } else if (!(n->resources.total() ==
                   manager_->view().at(manager_->view().FindSlot(n->id)).resources.total())) {
        // --- actors: its totals changed (bundles committed or cancelled there), so tasks of a
        // placement group can be spilled to the bundle's node.
        (void)node_agent_->ReplaceNodeResources(n->id, std::move(n->resources));
        if (manager_->view().at(manager_->view().FindSlot(n->id)).state != n->state) {
          (void)node_agent_->SetNodeState(n->id, n->state);
        }
      } else {
        (void)node_agent_->ApplyReport(n->id, n->resources.available(), n->state,
                                    n->resources.all_devices());
      }
    }
    (void)manager_->TakeEstimatedNodes();  // every estimate was just replaced by a report
    RunPending();
  }

  void HandleLease(NotifyingUnaryReactor* r, v1::RequestWorkerLeaseReply* reply, uint64_t call_id,
                   LeaseRequest req, const std::string& name, int64_t queue_timeout_ms) {
    if (!manager_ || shutting_down_) {
      r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             shutting_down_ ? "node stopping" : "node not registered yet"));
      return;
    }
    const std::string task = req.task_id;
    const bool known = tasks_.count(task) != 0;
    const ResourceRequest resources = req.sched.resources;
    const int spillbacks = req.spillbacks;
    LeaseRequest copy = req;
    LeaseReply lr = node_agent_->RequestLease(std::move(req), rng_);
    CountSpillback(lr);
    if (!known && (lr.kind == LeaseReply::Kind::kGranted || lr.kind == LeaseReply::Kind::kQueued ||
                   lr.kind == LeaseReply::Kind::kCanceled)) {
      Task t;
      t.record.set_task_id(task);
      t.record.set_name(name);
      t.record.set_node_id(node_id_);
      ToProto(resources.set(), t.record.mutable_resources());
      t.record.set_spillbacks(spillbacks);
      t.record.set_submit_unix_ms(UnixMs());
      t.received = Clock::now();
      tasks_[task] = std::move(t);
    }
    switch (lr.kind) {
      case LeaseReply::Kind::kGranted:
        OnGranted(lr);
        break;
      case LeaseReply::Kind::kCanceled:
        SetTaskState(task, v1::TASK_STATE_CANCELED, lr.reason);
        break;
      case LeaseReply::Kind::kQueued: {
        auto& t = tasks_.at(task);
        t.record.set_state(v1::TASK_STATE_PENDING);
        t.record.set_wait_reason(ToProto(lr.wait_reason));
        t.dirty = true;
        waiting_[task] = Waiting{call_id, r, reply, std::move(copy)};
        if (queue_timeout_ms > 0) {
          loop_.PostAfter(milliseconds(queue_timeout_ms),
                          [this, task, call_id] { OnQueueTimeout(task, call_id); });
        }
        return;  // the call is held
      }
      default:
        break;  // spillback, rejected: the task is not ours
    }
    ToProto(lr, AddressOf(lr.node), reply);
    r->Finish(grpc::Status::OK);
  }

  void OnGranted(const LeaseReply& lr) {
    auto& t = tasks_.at(lr.task_id);
    t.allocation = lr.allocation;
    t.lease_seq = ++lease_seq_;
    t.record.set_state(v1::TASK_STATE_LEASED);
    t.record.set_wait_reason(v1::WAIT_REASON_NONE);
    t.dirty = true;
    if (metrics_ && t.received != Clock::time_point{}) {
      metrics_->ObserveSchedulingLatency(
          std::chrono::duration<double>(Clock::now() - t.received).count());
    }
    loop_.PostAfter(options_.unused_lease_timeout, [this, task = lr.task_id, seq = t.lease_seq] {
      auto it = tasks_.find(task);
      if (it == tasks_.end() || it->second.lease_seq != seq ||
          it->second.record.state() != v1::TASK_STATE_LEASED || it->second.env_pending) {
        return;
      }
      Log("lease of task " + task + " was never used: returned");
      EndLease(it->second, v1::TASK_STATE_CANCELED, 0, "lease never used");
      RunPending();
    });
  }

  // Retries queued requests; finishes the held calls of those that left the queue.
  void RunPending() {
    if (!manager_ || shutting_down_) return;
    for (LeaseReply& lr : node_agent_->SchedulePending(rng_)) ApplyReply(lr);
    // Only what changed: walking every queued request after each pass is O(queue) per event
    // (a 100k-task burst at one node made every lease return cost 100k lookups).
    for (const auto& p : manager_->TakeWaitReasonChanges()) {
      auto it = tasks_.find(p.task_id);
      if (it != tasks_.end() && it->second.record.wait_reason() != ToProto(p.wait_reason)) {
        it->second.record.set_wait_reason(ToProto(p.wait_reason));
        it->second.dirty = true;
      }
    }
  }

  // A queued request left the queue (`lr`): records, held call, or a grant nobody waits for.
  void ApplyReply(const LeaseReply& lr) {
    CountSpillback(lr);
    const bool has_task = tasks_.count(lr.task_id) != 0;
    if (lr.kind == LeaseReply::Kind::kGranted && has_task) OnGranted(lr);
    if (lr.kind == LeaseReply::Kind::kCanceled) {
      SetTaskState(lr.task_id, v1::TASK_STATE_CANCELED, lr.reason);
    }
    if (lr.kind == LeaseReply::Kind::kSpillback) tasks_.erase(lr.task_id);
    auto w = waiting_.find(lr.task_id);
    if (w != waiting_.end()) {
      FinishWaiting(w, lr);
    } else if (lr.kind == LeaseReply::Kind::kGranted) {
      // Nobody is waiting for this grant any more: give it back.
      (void)node_agent_->ReturnLease(lr.task_id);
      tasks_.erase(lr.task_id);
    }
  }

  void FinishWaiting(std::map<TaskId, Waiting>::iterator w, const LeaseReply& lr) {
    ToProto(lr, AddressOf(lr.node), w->second.reply);
    w->second.reactor->Finish(grpc::Status::OK);
    waiting_.erase(w);
  }

  void OnQueueTimeout(const TaskId& task, uint64_t call_id) {
    auto w = waiting_.find(task);
    if (w == waiting_.end() || w->second.call_id != call_id || !manager_) return;
    const WaitReason reason = manager_->WaitReasonOf(task);
    if (!node_agent_->CancelLease(task, "queue timeout")) return;
    // The caller asks again; the record stays pending here until it does. A caller that does
    // not (the driver exited, or no longer needs the lease) leaves a record that is canceled,
    // so neither this node nor the head shows it pending forever.
    if (auto t = tasks_.find(task); t != tasks_.end()) {
      const uint64_t seq = ++t->second.ask_seq;
      loop_.PostAfter(kReaskGrace, [this, task, seq] {
        auto it = tasks_.find(task);
        if (it == tasks_.end() || it->second.ask_seq != seq || waiting_.count(task) != 0 ||
            it->second.record.state() != v1::TASK_STATE_PENDING) {
          return;
        }
        SetTaskState(task, v1::TASK_STATE_CANCELED,
                     "canceled: the driver that asked for this lease went away (it exited or "
                     "no longer needs it)");
      });
    }
    LeaseReply lr;
    lr.kind = LeaseReply::Kind::kQueued;
    lr.task_id = task;
    lr.wait_reason = reason;
    FinishWaiting(w, lr);
  }

  void OnLeaseCallCanceled(const TaskId& task, uint64_t call_id) {
    auto w = waiting_.find(task);
    if (w == waiting_.end() || w->second.call_id != call_id || !manager_) return;
    (void)node_agent_->CancelLease(task, "the caller went away");
    SetTaskState(task, v1::TASK_STATE_CANCELED, "the caller went away");
    w->second.reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "canceled"));
    waiting_.erase(w);
  }

  void StartTask(const TaskId& task, ProcessSpec spec,
                 std::shared_ptr<StreamWriter<v1::RunTaskReply>> w) {
    auto it = tasks_.find(task);
    if (shutting_down_ || it == tasks_.end() ||
        it->second.record.state() != v1::TASK_STATE_LEASED) {
      w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "no unused lease for task " + task + " on " + node_id_));
      return;
    }
    Task& t = it->second;
    if (w->done()) {  // --- jobs: the caller went away before the start (KillTask found no pid)
      EndLease(t, v1::TASK_STATE_CANCELED, 0, "the caller went away before the task started");
      RunPending();
      return;
    }
    spec.env.emplace_back("ORRERY_TASK_ID", task);
    spec.env.emplace_back("ORRERY_NODE_ID", node_id_);
    // The core's device grant decides which GPUs the task sees; on a node with GPUs, a task
    // that asked for none sees none.
    if (options_.total.Get(Predefined::kGPU) > Quantity()) {
      // Logical device ids from the core's grant, mapped to the physical ids this node may use
      // (its own CUDA_VISIBLE_DEVICES at start, if any).
      spec.env.emplace_back("CUDA_VISIBLE_DEVICES",
                            VisibleDevicesForGrant(t.allocation.DeviceIds(kGPU)));
    }
    t.record.set_name(t.record.name().empty() ? spec.argv[0] : t.record.name());
    ProcessCallbacks cb;
    cb.on_started = [w](pid_t pid) {
      v1::RunTaskReply m;
      m.set_started_pid(static_cast<int32_t>(pid));
      w->Push(std::move(m));
    };
    cb.on_stdout = [w](std::string_view chunk) {
      v1::RunTaskReply m;
      m.set_stdout_chunk(std::string(chunk));
      w->Push(std::move(m));
    };
    cb.on_stderr = [w](std::string_view chunk) {
      v1::RunTaskReply m;
      m.set_stderr_chunk(std::string(chunk));
      w->Push(std::move(m));
    };
    cb.on_exit = [this, w, task](int code, int sig) {
      v1::RunTaskReply m;
      m.mutable_exit()->set_exit_code(code);
      m.mutable_exit()->set_signal(sig);
      w->Push(std::move(m));
      w->Close(grpc::Status::OK);
      loop_.Post([this, task, code, sig] { OnTaskExited(task, code, sig); });
    };
    auto pid = supervisor_.Spawn(spec, std::move(cb));
    if (!pid.ok()) {
      // Like a shell: the command could not be started -> 127, with the reason on stderr.
      v1::RunTaskReply m;
      m.set_stderr_chunk("orrery: " + pid.status().message() + "\n");
      w->Push(std::move(m));
      v1::RunTaskReply e;
      e.mutable_exit()->set_exit_code(127);
      w->Push(std::move(e));
      w->Close(grpc::Status::OK);
      EndLease(t, v1::TASK_STATE_FAILED, 127, pid.status().message());
      RunPending();
      return;
    }
    t.pid = *pid;
    t.record.set_state(v1::TASK_STATE_RUNNING);
    t.record.set_start_unix_ms(UnixMs());
    t.dirty = true;
  }

  void OnTaskExited(const TaskId& task, int code, int sig) {
    auto it = tasks_.find(task);
    if (it == tasks_.end()) return;
    EndLease(it->second, code == 0 ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED, code,
             sig > 0 ? "killed by signal " + std::to_string(sig) : std::string());
    RunPending();
  }

  // ---- code workers (live/api) --------------------------------------------------------------

  void StartAttach(const TaskId& task, ApiWorkerSpec spec,
                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w, const RuntimeEnv& renv) {
    auto it = tasks_.find(task);
    if (shutting_down_ || it == tasks_.end() ||
        it->second.record.state() != v1::TASK_STATE_LEASED || it->second.api ||
        it->second.workload) {
      w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "no unused lease for task " + task + " on " + node_id_));
      return;
    }
    Task& t = it->second;
    t.api = true;
    t.actor = spec.actor;
    // --- GPUs: as for RunTask, the core's device grant decides what the worker sees (a lease
    // without GPUs on a GPU node sees none). A worker that holds GPUs is dedicated to this lease
    // (not reused by later GPU tasks, as in Ray).
    if (options_.total.Get(Predefined::kGPU) > Quantity()) {
      const std::vector<int> gpus = t.allocation.DeviceIds(kGPU);
      std::erase_if(spec.env, [](const auto& kv) { return kv.first == "CUDA_VISIBLE_DEVICES"; });
      spec.env.emplace_back("CUDA_VISIBLE_DEVICES", VisibleDevicesForGrant(gpus));
      std::sort(spec.env.begin(), spec.env.end());
      if (!gpus.empty()) spec.actor = true;
    }
    t.start_unix_ms = UnixMs();
    t.record.set_state(v1::TASK_STATE_RUNNING);
    t.record.set_start_unix_ms(t.start_unix_ms);
    t.dirty = true;
    if (w->done()) {  // canceled before we got here
      DetachWorker(task, "");
      return;
    }
    if (!renv.empty()) {  // --- runtime envs: install first, then start the worker in it
      AcquireTaskEnv(t, renv, [this, task, spec, w](StatusOr<AppliedEnv> a) {
        auto it = tasks_.find(task);
        if (it == tasks_.end() || !it->second.api ||
            it->second.record.state() != v1::TASK_STATE_RUNNING) {
          return;  // the lease ended meanwhile (its EndLease released the env)
        }
        if (!a.ok()) {
          w->Close(ToGrpc(a.status()));
          EndLease(it->second, v1::TASK_STATE_CANCELED, 1, a.status().message());
          RunPending();
          return;
        }
        if (w->done()) {
          DetachWorker(task, "");
          return;
        }
        ApiWorkerSpec in_env = spec;
        in_env.env = MergeEnv(a->env, spec.env);
        in_env.cwd = a->cwd;
        AttachInEnv(task, in_env, w);
      });
      return;
    }
    AttachInEnv(task, spec, w);
  }

  void AttachInEnv(const TaskId& task, const ApiWorkerSpec& spec,
                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w) {
    api_pool_->Acquire(
        task, spec,
        [this, task, w](StatusOr<std::pair<pid_t, std::string>> ready) {
          if (!ready.ok()) {
            w->Close(ToGrpc(ready.status()));
            DetachWorker(task, ready.status().message());
            return;
          }
          auto it = tasks_.find(task);
          if (it != tasks_.end()) it->second.pid = ready->first;
          v1::AttachWorkerReply m;
          m.set_worker_address(ready->second);
          m.set_pid(static_cast<int32_t>(ready->first));
          w->Push(std::move(m));
          if (w->done()) DetachWorker(task, "");
        },
        [this, task, w](const std::string& why) {
          w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, why));
          DetachWorker(task, why);
        });
  }

  // The lease of a code worker ends (the driver canceled, the worker died or failed to start).
  void DetachWorker(const TaskId& task, const std::string& error) {
    auto it = tasks_.find(task);
    if (it == tasks_.end() || !it->second.api ||
        it->second.record.state() != v1::TASK_STATE_RUNNING) {
      return;
    }
    api_pool_->Release(task);
    EndLease(it->second, error.empty() ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED,
             error.empty() ? 0 : 1, error);
    RunPending();
  }

  // ---- runtime envs (live/node/runtime_env_agent.h) ----------------------------------------------

  Status StartRuntimeEnvAgent() {
    std::filesystem::path root;
    if (options_.session_dir.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "orrery_renv_XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return Status(StatusCode::kUnavailable, "cannot create a temp dir for runtime envs");
      }
      root = tmpl;
      renv_owned_root_ = root;
    } else {
      // Per node: several nodes of one machine share the session dir.
      root = std::filesystem::path(options_.session_dir) / "runtime_envs" / node_id_;
    }
    RuntimeEnvAgentOptions ro;
    ro.root = root;
    ro.head_address = options_.head_address;
    ro.token = options_.token;
    ro.cache_bytes = options_.runtime_env_cache_bytes;
    ro.eviction = options_.runtime_env_eviction;
    ro.setup_timeout_s = options_.runtime_env_setup_timeout_s;
    ro.max_attempts = options_.runtime_env_max_attempts;  // --- live run
    auto agent =
        RuntimeEnvAgent::Create(std::move(ro), [this](std::function<void()> f) { loop_.Post(f); });
    if (!agent.ok()) return agent.status();
    agent_ = std::move(*agent);
    // Idle code workers started in an evicted env must not be reused: their cwd and PATH are gone.
    agent_->SetOnEvict([this](const std::string& dir) {
      api_pool_->RetireIdleWithEnv("ORRERY_RUNTIME_ENV_DIR", dir);
      pool_->RetireIdleWithEnv("ORRERY_RUNTIME_ENV_DIR", dir);  // --- live run
    });
    return Status::Ok();
  }

  void StopRuntimeEnvAgent() {
    if (agent_) agent_->Stop();
    if (!renv_owned_root_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(renv_owned_root_, ec);
    }
  }

  // `top` over `base`, by name (sorted).
  static std::vector<std::pair<std::string, std::string>> MergeEnv(
      const std::vector<std::pair<std::string, std::string>>& base,
      const std::vector<std::pair<std::string, std::string>>& top) {
    std::map<std::string, std::string> m(base.begin(), base.end());
    for (const auto& [k, v] : top) m[k] = v;
    return {m.begin(), m.end()};
  }

  // Asks the agent for `t`'s env; `done` runs on the loop once it is installed or failed, unless
  // the lease ends first (EndLease abandons the wait).
  void AcquireTaskEnv(Task& t, const RuntimeEnv& env, RuntimeEnvAgent::Done done) {
    const TaskId task = t.record.task_id();
    t.env_hash = InstallHash(env);
    t.env_pending = true;
    agent_->Acquire(env, task, [this, task, done = std::move(done)](StatusOr<AppliedEnv> a) {
      auto it = tasks_.find(task);
      if (it == tasks_.end()) {
        if (a.ok()) agent_->Release(a->hash);
        return;
      }
      it->second.env_pending = false;
      if (a.ok()) {
        it->second.env_held = true;
        it->second.env_hash = a->hash;
      }
      done(std::move(a));
    });
  }

  // `name` as the first executable found in `path` (colon-separated); `name` itself if it has a
  // slash or is found nowhere.
  static std::string LookUpInPath(const std::string& name, const std::string& path) {
    if (name.find('/') != std::string::npos) return name;
    size_t start = 0;
    while (start <= path.size()) {
      const size_t end = std::min(path.find(':', start), path.size());
      const std::string dir = path.substr(start, end - start);
      const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
        return candidate;
      }
      start = end + 1;
    }
    return name;
  }

  void ReleaseTaskEnv(Task& t) {
    if (agent_ && t.env_pending) agent_->Abandon(t.env_hash, t.record.task_id());
    if (agent_ && t.env_held) agent_->Release(t.env_hash);
    t.env_pending = false;
    t.env_held = false;
    t.env_hash.clear();
  }

  // A RunTask whose runtime env could not be set up: the caller sees why (stderr and the exit's
  // error), and the lease ends canceled.
  void FailRunTaskEnv(Task& t, const std::string& why,
                      const std::shared_ptr<StreamWriter<v1::RunTaskReply>>& w) {
    Log("task " + t.record.task_id() + ": " + why);
    v1::RunTaskReply m;
    m.set_stderr_chunk("orrery: " + why + "\n");
    w->Push(std::move(m));
    v1::RunTaskReply e;
    e.mutable_exit()->set_exit_code(1);
    e.mutable_exit()->set_error(why);
    w->Push(std::move(e));
    w->Close(grpc::Status::OK);
    EndLease(t, v1::TASK_STATE_CANCELED, 1, why);
    RunPending();
  }

  // RunTask with a runtime env: install it (the lease stays held, waiting for the runtime env),
  // then start the command inside it. A setup failure cancels the lease; the caller gets the
  // message on stderr and in TaskExit.error.
  void StartTaskInEnv(const TaskId& task, ProcessSpec spec, const RuntimeEnv& renv,
                      std::shared_ptr<StreamWriter<v1::RunTaskReply>> w) {
    if (renv.empty()) {
      StartTask(task, std::move(spec), w);
      return;
    }
    auto it = tasks_.find(task);
    if (shutting_down_ || it == tasks_.end() ||
        it->second.record.state() != v1::TASK_STATE_LEASED || it->second.env_pending ||
        it->second.env_held) {
      w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "no unused lease for task " + task + " on " + node_id_));
      return;
    }
    Task& t = it->second;
    t.record.set_wait_reason(v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV);
    t.dirty = true;
    AcquireTaskEnv(t, renv, [this, task, spec, w](StatusOr<AppliedEnv> a) {
      auto it = tasks_.find(task);
      if (it == tasks_.end() || it->second.record.state() != v1::TASK_STATE_LEASED) return;
      Task& t = it->second;
      t.record.set_wait_reason(v1::WAIT_REASON_NONE);
      t.dirty = true;
      if (!a.ok()) return FailRunTaskEnv(t, a.status().message(), w);
      if (w->done()) {
        EndLease(t, v1::TASK_STATE_CANCELED, 0, "the caller went away");
        RunPending();
        return;
      }
      ProcessSpec in_env = spec;
      in_env.env = MergeEnv(a->env, spec.env);
      if (!a->cwd.empty()) in_env.cwd = a->cwd;
      // posix_spawnp searches the daemon's PATH, not the child's: resolve argv[0] in the env's.
      for (const auto& [k, v] : in_env.env) {
        if (k == "PATH") in_env.argv[0] = LookUpInPath(in_env.argv[0], v);
      }
      StartTask(task, std::move(in_env), w);
    });
  }

  // ---- built-in workloads -------------------------------------------------------------------

  void StartWorkload(const TaskId& task, WorkloadSpec spec, const v1::RunTaskRequest& req,
                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w, const RuntimeEnv& renv) {
    auto it = tasks_.find(task);
    if (shutting_down_ || it == tasks_.end() ||
        it->second.record.state() != v1::TASK_STATE_LEASED || it->second.workload) {
      w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "no unused lease for task " + task + " on " + node_id_));
      return;
    }
    Task& t = it->second;
    t.workload = true;
    if (t.record.name().empty()) t.record.set_name(WorkloadKindName(spec.kind));
    if (renv.empty()) {
      PrepareWorkload(task, std::move(spec), req, w);
      return;
    }
    // --- live run: install the env first (the lease stays held, waiting for the runtime env),
    // then fetch the arguments and run on a pooled worker of the env. A setup failure cancels
    // the lease, as for a command task (StartTaskInEnv).
    t.record.set_wait_reason(v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV);
    t.dirty = true;
    AcquireTaskEnv(t, renv, [this, task, spec, req, w](StatusOr<AppliedEnv> a) mutable {
      auto it = tasks_.find(task);
      if (it == tasks_.end() || it->second.record.state() != v1::TASK_STATE_LEASED) return;
      Task& t = it->second;
      t.record.set_wait_reason(v1::WAIT_REASON_NONE);
      t.dirty = true;
      if (!a.ok()) return FailRunTaskEnv(t, a.status().message(), w);
      t.worker_env.env = a->env;
      t.worker_env.cwd = a->cwd;
      t.pool_key = a->hash;
      for (const auto& [k, v] : a->env) t.pool_key += std::string(1, '\0') + k + "=" + v;
      t.pool_key += std::string(1, '\0') + "cwd=" + a->cwd;
      if (w->done()) {
        FinishWorkload(t, w, 1, "the caller went away");
        return;
      }
      PrepareWorkload(task, std::move(spec), req, w);
    });
  }

  // The workload's lease is held and its env (if any) installed: fetch missing arguments, run.
  void PrepareWorkload(const TaskId& task, WorkloadSpec spec, const v1::RunTaskRequest& req,
                       std::shared_ptr<StreamWriter<v1::RunTaskReply>> w) {
    Task& t = tasks_.at(task);
    if (spec.kind == WorkloadSpec::Kind::kProduce) {
      spec.output_path = store_->PathOf(req.output_object_id()).string();
    }
    // Arguments not in the local store are fetched first (the lease stays held meanwhile).
    std::vector<v1::ObjectRef> missing;
    for (const auto& a : req.args()) {
      if (!store_->Contains(a.object_id())) missing.push_back(a);
    }
    if (missing.empty()) {
      LaunchWorkload(task, spec, w);
      return;
    }
    t.record.set_wait_reason(v1::WAIT_REASON_WAITING_FOR_ARGS);
    t.dirty = true;
    fetch_loop_.Post([this, task, spec, w, missing = std::move(missing)] {
      uint64_t bytes = 0;
      Status s = Status::Ok();
      for (const auto& a : missing) {
        // An earlier fetch (another task's) may have brought it meanwhile.
        if (store_->Contains(a.object_id())) continue;
        auto n = FetchFromPeer(a);
        if (!n.ok()) {
          s = n.status();
          break;
        }
        bytes += *n;
      }
      loop_.Post([this, task, spec, w, s, bytes] { OnArgsFetched(task, spec, w, s, bytes); });
    });
  }

  void OnArgsFetched(const TaskId& task, const WorkloadSpec& spec,
                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w, const Status& s,
                     uint64_t bytes) {
    auto it = tasks_.find(task);
    if (it == tasks_.end() || it->second.record.state() != v1::TASK_STATE_LEASED) return;
    Task& t = it->second;
    t.bytes_fetched = bytes;
    t.record.set_wait_reason(v1::WAIT_REASON_NONE);
    if (!s.ok() || w->done()) {
      const std::string why =
          !s.ok() ? "fetching the arguments failed: " + s.ToString() : "the caller went away";
      FinishWorkload(t, w, 1, why);
      return;
    }
    LaunchWorkload(task, spec, w);
  }

  void LaunchWorkload(const TaskId& task, const WorkloadSpec& spec,
                      std::shared_ptr<StreamWriter<v1::RunTaskReply>> w) {
    Task& t = tasks_.at(task);
    auto pid = pool_->Run(
        t.pool_key, task, spec,
        [this, task, w](int code, const std::string& error) {
          auto it = tasks_.find(task);
          if (it == tasks_.end()) return;
          FinishWorkload(it->second, w, code, error);
        },
        t.worker_env);
    if (!pid.ok()) {
      FinishWorkload(t, w, 127, pid.status().message());
      return;
    }
    v1::RunTaskReply m;
    m.set_started_pid(static_cast<int32_t>(*pid));
    w->Push(std::move(m));
    t.pid = *pid;
    t.start_unix_ms = UnixMs();
    t.record.set_state(v1::TASK_STATE_RUNNING);
    t.record.set_start_unix_ms(t.start_unix_ms);
    t.dirty = true;
  }

  void FinishWorkload(Task& t, const std::shared_ptr<StreamWriter<v1::RunTaskReply>>& w, int code,
                      const std::string& error) {
    v1::RunTaskReply m;
    m.mutable_exit()->set_exit_code(code);
    m.mutable_exit()->set_bytes_fetched(t.bytes_fetched);
    m.mutable_exit()->set_error(error);
    m.mutable_exit()->set_start_unix_ms(t.start_unix_ms);
    w->Push(std::move(m));
    w->Close(grpc::Status::OK);
    EndLease(t, code == 0 ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED, code, error);
    RunPending();
  }

  // Fetch thread: copies object `a` from its holder into the local store. Returns its size.
  StatusOr<uint64_t> FetchFromPeer(const v1::ObjectRef& a) {
    if (a.address().empty()) {
      return Status(StatusCode::kNotFound, "object " + a.object_id() + ": no holder address");
    }
    auto stub = v1::NodeService::NewStub(
        grpc::CreateChannel(a.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    AttachToken(&ctx, options_.token);
    // Generous: at least 30 s, plus 1 s per 20 MB.
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(30000) +
                     milliseconds(a.bytes() / 20000));
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return Status(StatusCode::kCancelled, "node stopping");
      fetch_ctx_ = &ctx;
    }
    v1::FetchObjectRequest req;
    req.set_object_id(a.object_id());
    auto reader = stub->FetchObject(&ctx, req);
    const std::filesystem::path dest = store_->PathOf(a.object_id());
    const std::string part = dest.string() + ".part";
    uint64_t n = 0;
    {
      std::ofstream out(part, std::ios::binary | std::ios::trunc);
      v1::ObjectChunk c;
      while (reader->Read(&c)) {
        out.write(c.data().data(), static_cast<std::streamsize>(c.data().size()));
        n += c.data().size();
      }
    }
    grpc::Status s = reader->Finish();
    {
      std::lock_guard<std::mutex> l(mu_);
      fetch_ctx_ = nullptr;
    }
    std::error_code ec;
    if (!s.ok()) {
      std::filesystem::remove(part, ec);
      return FromGrpc(s).WithContext("fetch " + a.object_id() + " from " + a.node_id());
    }
    std::filesystem::rename(part, dest, ec);
    if (ec) return Status(StatusCode::kUnavailable, "cannot store " + a.object_id());
    return n;
  }

  // Serve loop: streams object `id` in 1 MiB chunks, reading each only once the previous one
  // was written (flow control, live/common/file_stream.h).
  void ServeObject(const std::string& id, const std::shared_ptr<StreamWriter<v1::ObjectChunk>>& w) {
    StreamFileChunks<v1::ObjectChunk>(
        w, serve_loop_, store_->PathOf(id).string(), size_t{1} << 20,
        [](std::string_view data, bool first, uint64_t total) {
          v1::ObjectChunk c;
          c.set_data(data.data(), data.size());
          if (first) c.set_total_bytes(total);
          return c;
        },
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     "object " + id + " is not in the store of " + node_id_));
  }

  void KillTask(const TaskId& task) {
    auto it = tasks_.find(task);
    if (it != tasks_.end() && it->second.env_pending) {  // --- runtime envs
      Log("the caller of task " + task + " went away while its runtime env was being set up");
      EndLease(it->second, v1::TASK_STATE_CANCELED, 0, "the caller went away");
      RunPending();
      return;
    }
    if (it != tasks_.end() && it->second.record.state() == v1::TASK_STATE_RUNNING) {
      // --- jobs: SIGTERM to the task's process group first (a stopped job's driver may clean
      // up), SIGKILL to what is left after a grace period.
      Log("the caller of task " + task + " went away: stopping it");
      const pid_t pid = it->second.pid;
      supervisor_.Kill(pid, SIGTERM);
      loop_.PostAfter(kKillGrace, [this, task, pid] {
        auto t = tasks_.find(task);
        if (t != tasks_.end() && t->second.pid == pid &&
            t->second.record.state() == v1::TASK_STATE_RUNNING) {
          Log("task " + task + " outlived the grace period: killing it");
          supervisor_.Kill(pid, SIGKILL);
        }
      });
    }
  }
  static constexpr std::chrono::milliseconds kKillGrace{3000};  // --- jobs

  // The lease of `t` ends: resources back to the local node, record terminal.
  void EndLease(Task& t, v1::TaskState state, int exit_code, const std::string& error) {
    if (manager_) (void)node_agent_->ReturnLease(t.record.task_id());
    ReleaseTaskEnv(t);  // --- runtime envs
    t.record.set_state(state);
    t.record.set_exit_code(exit_code);
    t.record.set_end_unix_ms(UnixMs());
    if (!error.empty()) t.record.set_error(error);
    t.pid = 0;
    t.dirty = true;
  }

  void SetTaskState(const TaskId& task, v1::TaskState state, const std::string& error) {
    auto it = tasks_.find(task);
    if (it == tasks_.end()) return;
    it->second.record.set_state(state);
    if (!error.empty()) it->second.record.set_error(error);
    if (IsTerminal(state)) it->second.record.set_end_unix_ms(UnixMs());
    it->second.dirty = true;
  }

  // ---- bundles ----------------------------------------------------------------------------------

  // The node agent reserves, commits and cancels (core/agent); the daemon logs and re-runs the
  // queue. A commit adds the bundle's resources to the node, which rebuilds the manager: the
  // held requests it asked again are answered here.
  bool PrepareBundleHere(const std::string& group, int index, const ResourceRequest& resources,
                         std::string* why) {
    const bool held = node_agent_->HoldsBundle(group, index);
    if (!node_agent_->PrepareBundle(group, index, resources, rng_, why)) return false;
    if (!held) Log("prepared bundle " + std::to_string(index) + " of group " + group);
    return true;
  }

  bool CommitBundleHere(const std::string& group, int index, std::string* why) {
    const bool ok = node_agent_->CommitBundle(group, index, rng_, why);
    AfterResize();
    if (!ok) return false;
    Log("committed bundle " + std::to_string(index) + " of group " + group);
    RunPending();  // tasks of the group may be waiting for the bundle's resources
    return true;
  }

  void CancelBundleHere(const std::string& group, int index) {
    if (!node_agent_->CancelBundle(group, index, rng_)) return;
    AfterResize();
    Log("cancelled bundle " + std::to_string(index) + " of group " + group);
    RunPending();
  }

  // The agent may have rebuilt its manager (bundle resources added or removed): answer the held
  // requests it asked again (as in RunPending).
  void AfterResize() {
    manager_ = node_agent_->manager();
    for (const LeaseReply& lr : node_agent_->TakeReplies()) ApplyReply(lr);
  }

  std::string AddressOf(const NodeId& node) const {
    if (node == node_id_) return address_;
    auto it = addresses_.find(node);
    return it == addresses_.end() ? std::string() : it->second;
  }

  // What the next heartbeat carries. Terminal records leave the table once taken.
  void Snapshot(v1::HeartbeatRequest* req) {
    req->set_node_id(node_id_);
    if (!manager_) return;
    const Node& self = manager_->view().at(manager_->local_slot());
    ToProto(self.resources.available(), req->mutable_available());
    ToProto(self.resources.total(), req->mutable_total());
    ToProto(self.resources.all_devices(), req->mutable_devices());
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      if (it->second.dirty) {
        *req->add_task_updates() = it->second.record;
        it->second.dirty = false;
      }
      if (IsTerminal(it->second.record.state())) {
        ++ended_[it->second.record.state()];
        if (it->second.actor) ++actors_ended_;
        it = tasks_.erase(it);
      } else {
        ++it;
      }
    }
    // Pending demand by (shape, wait reason), in a defined order.
    std::map<std::pair<std::string, int>, std::pair<ResourceSet, int>> demand;
    for (const auto& p : manager_->Pending()) {
      auto t = tasks_.find(p.task_id);
      if (t == tasks_.end()) continue;
      auto shape = FromProto(t->second.record.resources(), "resources");
      if (!shape.ok()) continue;
      auto& d = demand[{shape->ToString(), static_cast<int>(p.wait_reason)}];
      d.first = *shape;
      ++d.second;
    }
    for (const auto& [key, d] : demand) {
      auto* out = req->add_pending();
      ToProto(d.first, out->mutable_shape());
      out->set_count(d.second);
      out->set_wait_reason(ToProto(static_cast<WaitReason>(key.second)));
    }
    UpdateMetrics();
  }

  // ---- metrics (live/common/metrics.h): on the loop, once per report period (from Snapshot) --------

  void CountSpillback(const LeaseReply& lr) {
    if (metrics_ && lr.kind == LeaseReply::Kind::kSpillback) metrics_->AddSpillbacks(1);
  }

  void UpdateMetrics() {
    if (!metrics_ || !manager_) return;
    // Label values as the simulator's timeseries.csv; terminal states count since start.
    std::map<std::string, double> tasks = {
        {"pending", 0},
        {"leased", 0},
        {"running", 0},
        {"finished", static_cast<double>(ended_[v1::TASK_STATE_FINISHED])},
        {"failed", static_cast<double>(ended_[v1::TASK_STATE_FAILED])},
        {"canceled", static_cast<double>(ended_[v1::TASK_STATE_CANCELED])}};
    std::map<std::string, double> reasons;
    for (int w = static_cast<int>(WaitReason::kInfeasible);
         w <= static_cast<int>(WaitReason::kWaitingForNode); ++w) {
      reasons[WaitReasonName(static_cast<WaitReason>(w))] = 0;
    }
    double actors_alive = 0, granted = 0;
    for (const auto& [id, t] : tasks_) {
      const auto st = t.record.state();
      if (st == v1::TASK_STATE_PENDING) ++tasks["pending"];
      if (st == v1::TASK_STATE_LEASED) ++tasks["leased"];
      if (st == v1::TASK_STATE_RUNNING) ++tasks["running"];
      if (st == v1::TASK_STATE_LEASED || st == v1::TASK_STATE_RUNNING) ++granted;
      if (t.actor && t.record.state() == v1::TASK_STATE_RUNNING) ++actors_alive;
      // Granted, but its arguments are still being fetched.
      if (t.record.state() == v1::TASK_STATE_LEASED &&
          t.record.wait_reason() == v1::WAIT_REASON_WAITING_FOR_ARGS) {
        ++reasons[WaitReasonName(WaitReason::kWaitingForArgs)];
      }
    }
    for (const auto& p : manager_->Pending()) {
      if (p.wait_reason != WaitReason::kNone) ++reasons[WaitReasonName(p.wait_reason)];
    }
    metrics_->SetTasks(tasks);
    metrics_->SetActors({{"alive", actors_alive}, {"dead", static_cast<double>(actors_ended_)}});
    metrics_->SetSchedulerTasks({{"queued", static_cast<double>(manager_->NumQueued())},
                                 {"granted", granted},
                                 {"infeasible", reasons[WaitReasonName(WaitReason::kInfeasible)]}});
    metrics_->SetUnschedulableTasks(reasons);
    if (agent_) {  // runtime envs: the node's install cache (core/envcache)
      metrics_->SetRuntimeEnvCache(agent_->cache().TotalBytes(),
                                   agent_->cache().counters().evictions);
    }
    const NodeResources& res = manager_->view().at(manager_->local_slot()).resources;
    std::map<std::string, std::pair<double, double>> by_name;
    for (const auto& name : res.total().Names()) {
      const double total = res.total().Get(name).ToDouble();
      const double available = res.available().Get(name).ToDouble();
      by_name[name] = {total - available, available};
    }
    metrics_->SetResources(by_name);
    const double cpu_total = res.total().Get(Predefined::kCPU).ToDouble();
    metrics_->SetCpuUtilization(
        cpu_total > 0 ? 1.0 - res.available().Get(Predefined::kCPU).ToDouble() / cpu_total : 0.0);
    std::vector<double> gpus;
    for (const Quantity& available : res.Devices(kGPU)) {
      gpus.push_back(1.0 - available.ToDouble());  // each device has capacity 1
    }
    metrics_->SetGpuUtilization(gpus);
  }

  // ---- head link (helper threads; blocking calls, no state of their own) -------------------

  StatusOr<v1::RegisterNodeReply> Register(milliseconds timeout) {
    v1::RegisterNodeRequest req;
    req.set_node_id(node_id_);
    req.set_address(address_);
    ToProto(options_.total, req.mutable_total());
    for (const auto& [k, v] : options_.labels) (*req.mutable_labels())[k] = v;
    req.set_is_head_node(options_.is_head_node);
    req.set_pid(static_cast<int32_t>(getpid()));
    if (metrics_endpoint_) req.set_metrics_address(metrics_endpoint_->address());
    grpc::ClientContext ctx;
    AttachToken(&ctx, options_.token);
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    v1::RegisterNodeReply reply;
    grpc::Status s = head_->RegisterNode(&ctx, req, &reply);
    if (!s.ok()) return FromGrpc(s);
    return reply;
  }

  StatusOr<v1::RegisterNodeReply> RegisterWithRetry(milliseconds total) {
    const auto deadline = Clock::now() + total;
    while (true) {
      auto r = Register(milliseconds(1000));
      if (r.ok()) return r;
      const StatusCode c = r.status().code();
      const bool retry = c == StatusCode::kUnavailable || c == StatusCode::kDeadlineExceeded;
      if (!retry || Clock::now() >= deadline) {
        return r.status().WithContext("cannot register with the head at " + options_.head_address);
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  bool WaitStopping(milliseconds d) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, d, [this] { return stopping_; });
  }

  void HeartbeatLoop() {
    std::map<std::string, v1::TaskRecord> unsent;  // updates a failed heartbeat did not deliver
    while (!WaitStopping(report_period_)) {
      v1::HeartbeatRequest req;
      if (!loop_.RunSync([&] { Snapshot(&req); })) return;
      for (const auto& t : req.task_updates()) unsent[t.task_id()] = t;
      req.clear_task_updates();
      for (const auto& [id, t] : unsent) *req.add_task_updates() = t;
      grpc::ClientContext ctx;
      AttachToken(&ctx, options_.token);
      ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(1000));
      v1::HeartbeatReply reply;
      grpc::Status s = head_->Heartbeat(&ctx, req, &reply);
      if (s.ok()) {
        unsent.clear();
        if (head_lost_since_) {
          Log("the head at " + options_.head_address + " answers again");
          head_lost_since_.reset();
        }
        continue;
      }
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        // The head declared this node dead: its results are no longer accepted, and its
        // leases were given up. It stops (DESIGN section 11: exit, or rejoin as a new node).
        Log("the head declared this node dead (" + s.error_message() + "): stopping");
        stop_requested_ = true;
        return;
      }
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        // The head does not know us (it restarted): register again.
        Log("the head does not know this node: registering again");
        auto r = Register(milliseconds(1000));
        if (r.ok()) {
          loop_.Post([this, v = r->view()] { ApplyView(v); });
          continue;
        }
      }
      NoteHeadLost(s);
    }
  }

  // The heartbeat failed: say so once when the head goes, then every 30 s while it stays gone
  // (the node keeps trying every report period).
  void NoteHeadLost(const grpc::Status& s) {
    const auto now = std::chrono::steady_clock::now();
    const bool first = !head_lost_since_;
    if (first) head_lost_since_ = now;
    if (!first && now - last_head_lost_log_ < std::chrono::seconds(30)) return;
    last_head_lost_log_ = now;
    const auto secs =
        std::chrono::duration_cast<std::chrono::seconds>(now - *head_lost_since_).count();
    std::string why = s.error_message();
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      why += " (a restarted head has a new token: restart this node with the new session's "
             "token)";
    }
    Log(std::string(first ? "lost the head" : "still no head") + " at " +
        options_.head_address + (first ? "" : " after " + std::to_string(secs) + " s") + ": " +
        why + "; retrying every " + std::to_string(report_period_.count()) + " ms");
  }

  void WatchLoop() {
    while (true) {
      grpc::ClientContext ctx;
      AttachToken(&ctx, options_.token);
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_) return;
        watch_ctx_ = &ctx;
      }
      v1::WatchClusterViewRequest req;
      req.set_node_id(node_id_);
      auto reader = head_->WatchClusterView(&ctx, req);
      v1::ClusterView v;
      while (reader->Read(&v)) {
        loop_.Post([this, v] { ApplyView(v); });
      }
      (void)reader->Finish();
      {
        std::lock_guard<std::mutex> l(mu_);
        watch_ctx_ = nullptr;
      }
      if (WaitStopping(milliseconds(200))) return;
    }
  }

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

  // Owned by loop_. The node's control logic (core/agent): the lease manager, the lease table
  // and the bundles held here; set once the node registered (InitManager).
  agent::NodeAgentOptions node_agent_options_;
  std::unique_ptr<agent::NodeAgent> node_agent_;
  LeaseManager* manager_ = nullptr;  // node_agent_'s manager (rebuilt when bundles resize it)
  Rng rng_;
  bool shutting_down_ = false;
  uint64_t lease_seq_ = 0;
  std::map<NodeId, std::string> addresses_;
  std::map<TaskId, Task> tasks_;
  std::map<TaskId, Waiting> waiting_;

  // --- Metrics. The endpoint (and its registry) outlives the families that live in it; the
  // counters below are owned by loop_.
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
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

NodeDaemon::NodeDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeDaemon::~NodeDaemon() { Stop(); }

StatusOr<std::unique_ptr<NodeDaemon>> NodeDaemon::Start(const NodeOptions& options) {
  if (options.token.empty()) return InvalidArgument("token: empty");
  if (options.head_address.empty()) return InvalidArgument("head address: empty");
  if (auto r = NodeResources::Create(options.total); !r.ok()) return r.status();
  auto impl = std::make_unique<Impl>(options);
  ORRERY_RETURN_IF_ERROR(impl->Serve());
  return std::unique_ptr<NodeDaemon>(new NodeDaemon(std::move(impl)));
}

const std::string& NodeDaemon::node_id() const { return impl_->node_id(); }
std::string NodeDaemon::address() const { return impl_->address(); }
bool NodeDaemon::StopRequested() const { return impl_->stop_requested(); }
std::string NodeDaemon::metrics_address() const { return impl_->metrics_address(); }
void NodeDaemon::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live
