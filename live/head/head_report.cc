#include "live/head/head_impl.h"

namespace orrery::live {

Status HeadDaemon::Impl::StartMetrics() {
  auto targets = MetricsTargetsWriter::Open(options_.session_dir);
  if (!targets.ok()) return targets.status();
  targets_ = std::move(*targets);
  if (options_.metrics_port < 0) return Status::Ok();
  std::string host = options_.node_ip.empty() ? options_.bind : options_.node_ip;
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

void HeadDaemon::Impl::UpdateTargets() {
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

std::string HeadDaemon::Impl::StateLabel(std::string name, std::string_view prefix) {
  if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return name;
}

void HeadDaemon::Impl::UpdateMetrics() {
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
  if (metrics_) {
    metrics_->SetNodes(nodes);
    metrics_->SetAutoscalerNodes(active, pending);
  }
  std::map<std::string, double> groups = {{"pending", 0}, {"preparing", 0}, {"committing", 0},
                                          {"created", 0}, {"failed", 0},    {"infeasible", 0},
                                          {"removed", 0}};
  for (const auto& [id, g] : controller_.groups()) {
    ++groups[StateLabel(v1::PlacementGroupState_Name(StateToProto(g)), "PLACEMENT_GROUP_STATE_")];
  }
  if (metrics_) metrics_->SetPlacementGroups(groups);
  std::map<std::string, double> tasks = {{"pending", 0},  {"leased", 0}, {"running", 0},
                                         {"finished", 0}, {"failed", 0}, {"canceled", 0}};
  for (const auto& [id, t] : tasks_) {
    ++tasks[StateLabel(v1::TaskState_Name(t.state()), "TASK_STATE_")];
  }
  if (metrics_) metrics_->SetTaskTable(tasks);
  // --- dashboard: events by comparison and a metrics sample, once a second (not every report
  // period: the actor and job lists are copied for the comparison).
  if (NowS() >= next_dashboard_tick_s_) {
    next_dashboard_tick_s_ = NowS() + kDashboardSampleS;
    DashboardTick(nodes, tasks, groups, active, pending);
  }
}

Status HeadDaemon::Impl::StartAutoscaler() {
  if (!options_.autoscaler) return Status::Ok();
  LocalProcessProviderOptions po;
  po.orrery_exe = options_.autoscaler_exe;
  if (po.orrery_exe.empty()) {
    std::error_code ec;
    po.orrery_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return Internal("autoscaler: cannot find this executable: " + ec.message());
  }
  const std::string host = !options_.node_ip.empty()    ? options_.node_ip
                           : options_.bind == "0.0.0.0" ? "127.0.0.1"
                                                        : options_.bind;
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

void HeadDaemon::Impl::AutoscalerRound() {
  if (!autoscaler_ || shutting_down_) return;
  AutoscalerRoundInput in;
  in.now_s = NowS();
  for (const auto& [id, m] : controller_.members()) {
    const NodeEntry& e = nodes_.at(id);
    HeadNodeState h;
    h.node = m.node;
    for (const auto& d : e.pending) {
      auto shape = FromProto(d.shape(), "pending.shape");
      if (!shape.ok() || d.count() <= 0) continue;
      if (!agent::IsAutoscalerDemand(FromProto(d.wait_reason()),
                                     agent::IsPlacementGroupShape(*shape))) {
        continue;
      }
      h.demand.push_back({*shape, d.count()});
    }
    in.nodes.push_back(std::move(h));
  }
  in.gangs = controller_.UnplacedGangs();
  const AutoscalerRoundOutput out = autoscaler_->Round(in);
  for (const auto& line : out.log) Log(line);
  for (const auto& id : out.drain) {
    if (controller_.Drain(id).ok()) {
      Emit("node_draining", "INFO", "node " + id + " draining (autoscaler: idle)", id);
    }
  }
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::GetAutoscalerStatus(
    grpc::CallbackServerContext* ctx, const v1::GetAutoscalerStatusRequest*,
    v1::AutoscalerStatus* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    if (autoscaler_) autoscaler_->FillStatus(NowS(), reply);
    return grpc::Status::OK;
  });
}

int64_t HeadDaemon::Impl::UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace orrery::live
