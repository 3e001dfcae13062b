#include <algorithm>
#include <random>

#include "live/node/node_impl.h"

namespace orrery::live {

void NodeDaemon::Impl::CountSpillback(const LeaseReply& lr) {
  if (metrics_ && lr.kind == LeaseReply::Kind::kSpillback) metrics_->AddSpillbacks(1);
}

void NodeDaemon::Impl::UpdateMetrics() {
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
  // Runtime envs: the node agent's install cache.
  metrics_->SetRuntimeEnvCache(node_agent_->Envs().TotalBytes(),
                               node_agent_->EnvCounters().evictions);
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

StatusOr<v1::RegisterNodeReply> NodeDaemon::Impl::Register(milliseconds timeout) {
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

StatusOr<v1::RegisterNodeReply> NodeDaemon::Impl::RegisterWithRetry(milliseconds total) {
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

bool NodeDaemon::Impl::WaitStopping(milliseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, d, [this] { return stopping_; });
}

bool NodeDaemon::Impl::WaitStoppingUntil(Clock::time_point t) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_until(l, t, [this] { return stopping_; });
}

void NodeDaemon::Impl::HeartbeatLoop() {
  std::map<std::string, v1::TaskRecord> unsent;  // updates a failed heartbeat did not deliver
  // Fixed rate at a random phase, as independent timers are. Waiting a period after each reply
  // (as before) let the heartbeats lock onto the instant just after the head's broadcast (the
  // reply, and the snapshot behind the view just applied, come after it), so each view the
  // nodes got carried reports a full period old: the per-lease trace of poisson-16n saw spill
  // decisions on reports 90-200 ms old (mean 125 ms), where a view refreshed every period (Ray,
  // DESIGN section 3, the simulator's mean phase) is 0-100 ms old when it arrives.
  const auto period = std::chrono::duration_cast<Clock::duration>(report_period_);
  std::uniform_int_distribution<int64_t> phase(0, std::max<int64_t>(0, period.count() - 1));
  std::mt19937_64 rng(std::random_device{}());
  Clock::time_point next = Clock::now() + Clock::duration(phase(rng));
  while (!WaitStoppingUntil(next)) {
    next += period;
    // A heartbeat that ran late (a slow head, a paused process) skips the slots it missed
    // instead of sending them back to back.
    if (const auto now = Clock::now(); next <= now && period.count() > 0) {
      next += period * ((now - next) / period + 1);
    }
    v1::HeartbeatRequest req;
    if (!loop_.RunSync([&] { Snapshot(&req); })) return;
    // Newest per row: a moved record (spillback) replaces a kept pending one. A kept lease
    // (live run) carries several tasks' rows under its one id, each its display id.
    for (const auto& t : req.task_updates()) {
      unsent[t.display_task_id().empty() ? t.task_id() : t.display_task_id()] = t;
    }
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
      declared_dead_ = true;
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

void NodeDaemon::Impl::NoteHeadLost(const grpc::Status& s) {
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

void NodeDaemon::Impl::WatchLoop() {
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

}  // namespace orrery::live
