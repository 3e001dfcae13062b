// The head's side of the dashboard: its server and routes (live/dashboard/head_routes.h), the
// events it records and the metrics history it samples.
#include "live/head/head_impl.h"

#include <algorithm>

#include "live/common/tls.h"

namespace orrery::live {

namespace {
constexpr auto kNodeCallTimeout = std::chrono::seconds(3);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::shared_ptr<v1::NodeService::Stub> HeadDaemon::Impl::DashboardStub(
    const std::string& address) {
  std::lock_guard<std::mutex> l(dashboard_stubs_mu_);
  auto& stub = dashboard_stubs_[address];
  if (!stub) stub = v1::NodeService::NewStub(OpenChannel(address));
  return stub;
}

void HeadDaemon::Impl::StartDashboard(const std::string& host, JobManager* jobs) {
  if (options_.dashboard_port < 0) return;
  namespace fs = std::filesystem;
  auto run = [this](const std::function<void()>& fn) { return loop_.RunSync(fn); };
  if (jobs != nullptr) job_routes_ = std::make_unique<JobRoutes>(run, jobs);
  dashboard::HeadSource src;
  src.run_on_loop = run;
  src.view = [this](v1::ClusterView* v) { BuildView(v); };
  src.for_each_task = [this](const std::function<void(const v1::TaskRecord&)>& fn) {
    for (const auto& id : order_) {
      auto it = tasks_.find(id);
      if (it != tasks_.end()) fn(it->second);
    }
  };
  src.actors = [this](v1::ListActorsReply* out) { actors_.List(out); };
  src.groups = [this](v1::ListPlacementGroupsReply* out) {
    for (const auto& [id, g] : controller_.groups()) GroupToProto(id, g, out->add_groups());
  };
  src.autoscaler = [this](v1::AutoscalerStatus* out) {
    if (autoscaler_) autoscaler_->FillStatus(NowS(), out);
  };
  src.jobs = [this] { return jobs_ ? jobs_->List() : std::vector<v1::JobInfo>(); };
  auto call = [this](const std::string& address, auto method, const auto& req, auto* reply) {
    grpc::ClientContext ctx;
    AttachToken(&ctx, options_.token);
    ctx.set_deadline(std::chrono::system_clock::now() + kNodeCallTimeout);
    auto stub = DashboardStub(address);
    return FromGrpc((stub.get()->*method)(&ctx, req, reply));
  };
  src.node_detail = [call](const std::string& address, const v1::NodeDetailRequest& req,
                           v1::NodeDetailReply* reply) {
    return call(address, &v1::NodeService::Stub::GetNodeDetail, req, reply);
  };
  src.read_node_log = [call](const std::string& address, const v1::ReadNodeLogRequest& req,
                             v1::ReadNodeLogReply* reply) {
    return call(address, &v1::NodeService::Stub::ReadNodeLog, req, reply);
  };
  {  // the head's own log: where its stderr goes (`orrery start` points it at logs/head.log)
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/fd/2", ec);
    if (!ec && !options_.session_dir.empty() &&
        self.parent_path() == fs::path(options_.session_dir) / "logs") {
      src.head_log_dir = self.parent_path().string();
      src.head_log_name = self.filename().string();
    }
  }
  src.version = "0.1.0";
  src.head_address = host + ":" + std::to_string(port_);
  routes_ = std::make_unique<dashboard::HeadRoutes>(std::move(src), job_routes_.get(), &events_,
                                                    &metrics_history_, &log_hub_);
  const TlsConfig& tls = ProcessTls();  // --- TLS: HTTPS with the gRPC identity
  http::HttpServerOptions o;
  o.bind = options_.bind;
  o.port = options_.dashboard_port;
  o.token = options_.token;
  o.tls_cert_pem = tls.cert_pem;
  o.tls_key_pem = tls.key_pem;
  o.not_ready = [this] { return NotReady(); };
  o.index_asset = "index.html";
  o.login_hint =
      "Open the URL that `orrery start --head` printed (Dashboard: …/?token=…), or run `orrery "
      "status` on the head machine for the address and take the token from the session dir's "
      "'token' file (/tmp/orrery/session_latest/token), then open ADDRESS/?token=TOKEN.";
  o.stream = [this](const http::Request& r, std::shared_ptr<http::EventSink> sink) {
    return routes_->OpenStream(r, std::move(sink));
  };
  auto server = http::HttpServer::Start(o, [this](const http::Request& r) {
    return routes_->Handle(r);
  });
  if (!server.ok()) {
    Log("dashboard not served: " + server.status().message());
    return;
  }
  http_ = std::move(*server);
  const std::string scheme = tls.cert_pem.empty() ? "http://" : "https://";
  const std::string url = scheme + host + ":" + std::to_string(http_->port()) + "/";
  Log("dashboard and jobs API at " + url);
  loop_.RunSync([&] { dashboard_url_ = url; });
  if (!options_.session_dir.empty()) {
    (void)WriteFileAtomic(fs::path(options_.session_dir) / "dashboard_address",
                          host + ":" + std::to_string(http_->port()) + "\n");
  }
}

void HeadDaemon::Impl::StopDashboard() {
  if (http_) http_->Stop();
  if (routes_) routes_->Stop();
}

void HeadDaemon::Impl::Emit(const std::string& kind, const std::string& severity,
                            const std::string& message, const std::string& node_id,
                            const std::string& job_id, const std::string& actor_id) {
  dashboard::Event e;
  e.kind = kind;
  e.severity = severity;
  e.message = message;
  e.node_id = node_id;
  e.job_id = job_id;
  e.actor_id = actor_id;
  events_.Add(std::move(e));
}

void HeadDaemon::Impl::DashboardTick(const std::map<std::string, double>& nodes,
                                     const std::map<std::string, double>& tasks,
                                     const std::map<std::string, double>& groups,
                                     const std::map<std::string, double>& active,
                                     const std::map<std::string, double>& pending) {
  // ---- events from what changed since the last period
  if (jobs_) {
    for (const auto& j : jobs_->List()) {
      const std::string& id = j.submission_id();
      auto [it, fresh] = seen_jobs_.try_emplace(id, j.status());
      // The store's jobs that ended before this head started are history, not news.
      if (fresh && !jobs_primed_ && IsTerminal(j.status())) continue;
      if (fresh) {
        Emit("job_submitted", "INFO", "job " + id + " submitted: " + j.entrypoint().substr(0, 200),
             "", id);
      } else if (it->second == j.status()) {
        continue;
      }
      it->second = j.status();
      if (IsTerminal(j.status())) {
        const std::string status = JobStatusName(j.status());
        Emit("job_finished", j.status() == v1::JOB_STATUS_SUCCEEDED ? "INFO" : "WARNING",
             "job " + id + " " + status + (j.message().empty() ? "" : ": " + j.message()), "",
             id);
      }
    }
    jobs_primed_ = true;
  }
  v1::ListActorsReply actors;
  actors_.List(&actors);
  for (const auto& a : actors.actors()) {
    auto [it, fresh] = seen_actors_.try_emplace(a.actor_id(), a.state());
    if (!fresh && it->second == a.state()) continue;
    it->second = a.state();
    if (a.state() == v1::ACTOR_STATE_RESTARTING) {
      Emit("actor_restarted", "WARNING",
           "actor " + a.actor_id() + " (" + a.class_name() + ") restarting" +
               (a.death_cause().empty() ? "" : ": " + a.death_cause()),
           a.node_id(), a.job_id(), a.actor_id());
    } else if (a.state() == v1::ACTOR_STATE_DEAD) {
      Emit("actor_died", "ERROR",
           "actor " + a.actor_id() + " (" + a.class_name() + ") died" +
               (a.death_cause().empty() ? "" : ": " + a.death_cause()),
           a.node_id(), a.job_id(), a.actor_id());
    }
  }
  for (const auto& [id, g] : controller_.groups()) {
    const v1::PlacementGroupState s = StateToProto(g);
    auto [it, fresh] = seen_groups_.try_emplace(id, v1::PLACEMENT_GROUP_STATE_UNSPECIFIED);
    if (it->second == s) continue;
    it->second = s;
    v1::PlacementGroupInfo info;
    GroupToProto(id, g, &info);
    if (s == v1::PLACEMENT_GROUP_STATE_CREATED) {
      Emit("placement_group_created", "INFO", "placement group " + id + " created");
    } else if (s == v1::PLACEMENT_GROUP_STATE_FAILED || s == v1::PLACEMENT_GROUP_STATE_INFEASIBLE) {
      Emit("placement_group_failed", "WARNING",
           "placement group " + id + (s == v1::PLACEMENT_GROUP_STATE_INFEASIBLE
                                          ? " is infeasible"
                                          : " failed") +
               (info.reason().empty() ? "" : ": " + info.reason()));
    }
  }
  if (autoscaler_) {
    v1::AutoscalerStatus st;
    autoscaler_->FillStatus(NowS(), &st);
    for (const auto& n : st.nodes()) {
      auto [it, fresh] = seen_autoscaler_nodes_.try_emplace(n.node_id(), "");
      if (it->second == n.state()) continue;
      const bool was_known = !it->second.empty();
      it->second = n.state();
      if (!was_known) {
        Emit("autoscaler_launch", "INFO",
             "autoscaler launched node " + n.node_id() + " (type " + n.node_type() + ")",
             n.node_id());
      } else if (n.state() == "terminating") {
        Emit("autoscaler_terminate", "INFO",
             "autoscaler terminating node " + n.node_id() + " (type " + n.node_type() + ")",
             n.node_id());
      }
    }
  }
  // ---- one sample of the metrics history: the values the head's /metrics shows, plus each
  // node's utilisation and the cluster's resource totals.
  std::vector<dashboard::MetricsHistory::Sample> samples;
  auto add = [&](const std::string& metric, std::map<std::string, std::string> labels,
                 double v) { samples.push_back({metric, std::move(labels), v}); };
  for (const auto& [state, n] : nodes) add("orrery_nodes", {{"state", state}}, n);
  for (const auto& [state, n] : tasks) add("orrery_head_task_table", {{"state", state}}, n);
  for (const auto& [state, n] : groups) add("orrery_placement_groups", {{"state", state}}, n);
  for (const auto& [type, n] : active) {
    add("orrery_autoscaler_active_nodes", {{"node_type", type}}, n);
  }
  for (const auto& [type, n] : pending) {
    add("orrery_autoscaler_pending_nodes", {{"node_type", type}}, n);
  }
  v1::ClusterView view;
  BuildView(&view);
  std::map<std::string, std::pair<int64_t, int64_t>> cluster;  // used, total (raw)
  for (const auto& n : view.nodes()) {
    if (n.state() == v1::NODE_STATE_DEAD) continue;
    for (const auto& [k, total] : n.total().raw()) {
      auto a = n.available().raw().find(k);
      const int64_t used = total - (a == n.available().raw().end() ? 0 : a->second);
      cluster[k].first += used;
      cluster[k].second += total;
      if ((k == "CPU" || k == "GPU" || k == "memory") && total > 0) {
        add("orrery_node_utilization", {{"node", n.node_id()}, {"resource", k}},
            static_cast<double>(used) / static_cast<double>(total));
      }
    }
  }
  for (const auto& [k, ut] : cluster) {
    add("orrery_cluster_resource_used", {{"resource", k}},
        Quantity::FromRaw(ut.first).ToDouble());
    add("orrery_cluster_resource_total", {{"resource", k}},
        Quantity::FromRaw(ut.second).ToDouble());
  }
  // From the alive nodes' last heartbeats: each node's runtime-env cache bytes, and the
  // cluster's scheduling latency (the nodes' histograms added bucket by bucket; a node with
  // other bounds, an older build, is left out rather than mixed in).
  dashboard::MetricsHistory::Histogram latency{"orrery_scheduling_latency_seconds", {}, {}, 0, 0};
  for (const auto& n : view.nodes()) {
    if (n.state() == v1::NODE_STATE_DEAD) continue;
    auto it = nodes_.find(n.node_id());
    if (it == nodes_.end()) continue;
    const NodeEntry& e = it->second;
    add("orrery_runtime_env_cache_bytes", {{"node", n.node_id()}},
        static_cast<double>(e.env_cache_bytes));
    const v1::LatencyHistogram& h = e.scheduling_latency;
    if (h.upper_bounds_size() == 0 || h.upper_bounds_size() != h.cumulative_counts_size()) continue;
    if (latency.buckets.empty()) {
      for (double le : h.upper_bounds()) latency.buckets.emplace_back(le, 0);
    } else if (static_cast<size_t>(h.upper_bounds_size()) != latency.buckets.size() ||
               !std::equal(h.upper_bounds().begin(), h.upper_bounds().end(),
                           latency.buckets.begin(),
                           [](double le, const auto& b) { return le == b.first; })) {
      continue;
    }
    for (int i = 0; i < h.cumulative_counts_size(); ++i) {
      latency.buckets[static_cast<size_t>(i)].second += h.cumulative_counts(i);
    }
    latency.sum += h.sum();
    latency.count += h.count();
  }
  std::vector<dashboard::MetricsHistory::Histogram> histograms;
  if (!latency.buckets.empty()) histograms.push_back(std::move(latency));
  metrics_history_.Add(NowMs(), samples, std::move(histograms));
}

}  // namespace orrery::live
