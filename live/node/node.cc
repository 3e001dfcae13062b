#include "live/node/node_impl.h"
#include "live/common/tls.h"

namespace orrery::live {

Status NodeDaemon::Impl::Serve() {
  auto server = StartDaemonServer(options_.bind, options_.port, this, "node", &port_);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  // Others dial `host` (--node-ip, else the bind address, else the hostname for a wildcard).
  const std::string host = AdvertisedHost(options_.node_ip, options_.bind, Hostname());
  address_ = host + ":" + std::to_string(port_);
  node_id_ =
      options_.node_id.empty() ? Hostname() + "-" + std::to_string(port_) : options_.node_id;
  // The id names files (logs, runtime envs): never build a path from an unchecked name.
  if (Status s = ValidateNodeName(node_id_, "node id"); !s.ok()) return s;
  // --- health probes: up before registering, so /readyz says what the node waits for.
  if (options_.health_port >= 0) {
    const TlsConfig& tls = ProcessTls();  // --- TLS: the probes speak HTTPS as the head's port
    auto h = HealthServer::Start(options_.bind, options_.health_port, [this] { return NotReady(); },
                                 tls.cert_pem, tls.key_pem);
    if (!h.ok()) return h.status();
    health_server_ = std::move(*h);
  }
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
  // The node's control logic; its manager comes with the head's view (InitManager).
  ORRERY_RETURN_IF_ERROR(ConfigureEnvCache());
  node_agent_options_.max_idle_workers_per_env =
      static_cast<int>(std::min<size_t>(options_.max_idle_workers, 1 << 20));
  // Tasks of a group ask for its committed bundle resources ("CPU_group_0_pg") by name.
  node_agent_options_.expose_committed_bundles = true;
  loop_.RunSync([this] {
    node_agent_ = std::make_unique<agent::NodeAgent>(node_id_, &node_agent_options_);
  });
  // --- logging: workers write <session>/logs/worker-*.out|.err; the monitor publishes them.
  ORRERY_RETURN_IF_ERROR(StartLogMonitor());
  WorkerPoolOptions wo;
  wo.exe = options_.worker_exe.empty() ? SelfExe() : options_.worker_exe;
  wo.env = {{"ORRERY_NODE_ID", node_id_}};
  for (auto& kv : log_monitor_->WorkerEnv()) wo.env.push_back(kv);  // logging
  // Reuse and keep-idle are the agent's decisions; the pool runs the processes.
  WorkerPoolHooks hooks;
  hooks.keep_idle = [this](int64_t env, bool gpu) {
    return !shutting_down_ && node_agent_->ReleaseWorker(env, gpu);
  };
  hooks.idle_gone = [this](int64_t env) { (void)node_agent_->IdleWorkerGone(env); };
  pool_ = std::make_unique<WorkerPool>(
      &supervisor_, std::move(wo), [this](std::function<void()> f) { loop_.Post(f); },
      std::move(hooks));
  ApiWorkerPoolOptions ao;
  ao.exe = options_.worker_exe.empty() ? SelfExe() : options_.worker_exe;
  ao.bind_host = host;  // code workers listen at, and advertise, the node's address
  ao.token = options_.token;
  ao.env = {{"ORRERY_NODE_ID", node_id_}};
  for (auto& kv : log_monitor_->WorkerEnv()) ao.env.push_back(kv);  // logging
  // As many workers starting at once as the machine has cores (Ray's maximum_startup_concurrency).
  ao.max_starting = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // As for pool_: reuse and keep-idle are the agent's decisions (its own env ids: ApiEnvIdOf).
  ApiWorkerPoolHooks api_hooks;
  api_hooks.keep_idle = [this](int64_t env, bool gpu, agent::WorkerKind kind) {
    return !shutting_down_ && node_agent_->ReleaseWorker(env, gpu, kind);
  };
  api_hooks.idle_gone = [this](int64_t env) { (void)node_agent_->IdleWorkerGone(env); };
  api_hooks.post_after = [this](std::chrono::milliseconds d, std::function<void()> f) {
    loop_.PostAfter(d, std::move(f));
  };
  api_pool_ = std::make_unique<ApiWorkerPool>(
      &supervisor_, std::move(ao), [this](std::function<void()> f) { loop_.Post(f); },
      std::move(api_hooks));
  // --- head fault tolerance: after the head went away, gRPC's default reconnect backoff (1 s,
  // x1.6, up to 120 s) would keep this node away from a restarted head for seconds; retry
  // connecting every 100 ms to 1 s instead (the head is one connection per node). Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC uses it as each connection attempt's timeout, and
  // 100 ms made every join over a 200 ms round trip fail (found by net.netem).
  grpc::ChannelArguments head_args;
  head_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  head_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  head_ = v1::HeadService::NewStub(OpenChannel(options_.head_address, head_args));
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
  registered_ = true;
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
  return Status::Ok();
}

void NodeDaemon::Impl::Stop() {
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
  if (health_server_) health_server_->Stop();  // --- health probes: last, /readyz said "stopping"
  // Whatever a task or setup left behind (re-parented to this daemon) goes with it.
  if (reaper_) {
    if (const int n = reaper_->KillAll(std::chrono::seconds(2)); n > 0) {
      Log("killed " + std::to_string(n) + " process(es) left behind by tasks or setups");
    }
  }
}

Status NodeDaemon::Impl::StartLogMonitor() {
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
      OpenChannel(options_.head_address));
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

std::string NodeDaemon::Impl::NotReady() const {
  if (declared_dead_) {
    return "the head declared this node dead (missed health checks); it stops (restart it to "
           "rejoin as a new node)";
  }
  if (stopped_ || stop_requested_) return "node stopping";
  if (!registered_) return "registering with the head at " + options_.head_address;
  return "";
}

std::string NodeDaemon::Impl::metrics_address() const {
  return metrics_endpoint_ ? metrics_endpoint_->address() : std::string();
}

std::string NodeDaemon::Impl::SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("orrery") : p.string();
}

std::string NodeDaemon::Impl::Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "node";
  return buf;
}

void NodeDaemon::Impl::Log(const std::string& line) const {
  std::cerr << "[node " << node_id_ << "] " << line << std::endl;
}

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
int NodeDaemon::health_port() const { return impl_->health_port(); }
void NodeDaemon::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live
