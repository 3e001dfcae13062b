#include "live/head/head_impl.h"
#include "live/common/tls.h"

namespace orrery::live {

grpc::ServerUnaryReactor* HeadDaemon::Impl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                      const v1::SubmitJobRequest* req,
                                                      v1::SubmitJobReply* reply) {
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

grpc::ServerUnaryReactor* HeadDaemon::Impl::GetJob(grpc::CallbackServerContext* ctx,
                                                   const v1::GetJobRequest* req,
                                                   v1::JobInfo* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, req, reply] {
    if (!jobs_) return JobsUnavailable();
    auto job = jobs_->Get(req->submission_id());
    if (job.ok()) *reply = std::move(*job);
    return job.ok() ? grpc::Status::OK : ToGrpc(job.status());
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::ListJobs(grpc::CallbackServerContext* ctx,
                                                     const v1::ListJobsRequest*,
                                                     v1::ListJobsReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    if (!jobs_) return JobsUnavailable();
    for (auto& j : jobs_->List()) *reply->add_jobs() = std::move(j);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::StopJob(grpc::CallbackServerContext* ctx,
                                                    const v1::StopJobRequest* req,
                                                    v1::StopJobReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, req, reply] {
    if (!jobs_) return JobsUnavailable();
    auto stopped = jobs_->Stop(req->submission_id());
    if (stopped.ok()) reply->set_stopped(*stopped);
    return stopped.ok() ? grpc::Status::OK : ToGrpc(stopped.status());
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteJobRequest* req,
                                                      v1::DeleteJobReply*) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, req] {
    if (!jobs_) return JobsUnavailable();
    return ToGrpc(jobs_->Delete(req->submission_id()));
  });
}

grpc::ServerWriteReactor<v1::JobLogsChunk>* HeadDaemon::Impl::JobLogs(
    grpc::CallbackServerContext* ctx, const v1::JobLogsRequest* req) {
  auto w = StreamWriter<v1::JobLogsChunk>::Create(/*keep_latest_only=*/false);
  if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
  loop_.Post([this, w, r = *req] {
    if (!jobs_) return w->Close(JobsUnavailable());
    jobs_->StreamLog(r, w);
  });
  return w.get();
}

grpc::Status HeadDaemon::Impl::JobsUnavailable() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the head's job manager is not running");
}

Status HeadDaemon::Impl::StartJobs() {
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
  const std::string host = !options_.node_ip.empty()    ? options_.node_ip
                           : options_.bind == "0.0.0.0" ? "127.0.0.1"
                                                        : options_.bind;
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
    return t != tasks_.end() && IsTerminal(t->second.state());
  };
  // --- head fault tolerance: a driver's node, for reattaching to it (alive, or restored and
  // within its grace window).
  auto node_address = [this](const std::string& node_id) -> std::string {
    auto m = controller_.members().find(node_id);
    auto e = nodes_.find(node_id);
    if (m == controller_.members().end() || e == nodes_.end() || !m->second.node.IsAlive()) {
      return "";
    }
    return e->second.address;
  };
  o.resume = restored_;
  auto jobs = JobManager::Create(std::move(o), &loop_, entry_address, task_ended, node_address);
  if (!jobs.ok()) return jobs.status();
  JobManager* manager = jobs->get();
  loop_.RunSync([&] {
    jobs_ = std::move(*jobs);
    jobs_->ResumeJobs();
  });
  StartDashboard(host, manager);  // --- dashboard
  return Status::Ok();
}

std::string HeadDaemon::Impl::NotReady() {
  if (stopped_ || stop_requested_) return "head stopping";
  bool open = false;
  if (!loop_.RunSync([&] { open = jobs_ != nullptr && !shutting_down_; })) return "head stopping";
  return open ? "" : "the job store is not open";
}

void HeadDaemon::Impl::StopJobs() {
  StopDashboard();  // --- dashboard
  if (jobs_) jobs_->Shutdown();
  if (!private_log_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(private_log_dir_, ec);
  }
}

void HeadDaemon::Impl::Tick() {
  // Liveness (with the stall extension), placement fail-over and the broadcast version are
  // the controller's (core/agent/head_controller.h); the head fails over what it owns.
  if (!awaiting_.empty()) ProbeAwaited();  // --- head fault tolerance
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
    Emit("node_died", "ERROR",
         "node " + id + " died: no heartbeat for " +
             std::to_string(static_cast<int64_t>(death.silent_s * 1000)) + " ms",
         id);  // --- dashboard
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
  ExpireTransits();
  // --- actors: a RESTARTING actor the head marked and no driver reported on since.
  actors_.Expire(UnixNowMs(), kActorDriverGrace);
  if (!d.dead.empty()) actors_dirty_ = true;
  Persist();  // --- head fault tolerance: this tick's changes, one transaction off the loop
  UpdateMetrics();
  UpdateTargets();
  if (watchers_.empty()) return;
  v1::ClusterView v;
  BuildView(&v);
  std::erase_if(watchers_, [](const auto& w) { return w->done(); });
  for (auto& w : watchers_) w->Push(v);
}

void HeadDaemon::Impl::BuildView(v1::ClusterView* out) const {
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
    n->set_num_workers(e.num_workers);  // --- dashboard
    n->set_envs_cached(e.envs_cached);
    // A node restored after a restart of the head is "heard" in the future (its grace window).
    n->set_ms_since_heartbeat(
        std::max<int64_t>(0, static_cast<int64_t>((now_s - m.last_heard_s) * 1000)));
    for (const auto& d : e.pending) *n->add_pending() = d;
  }
}

}  // namespace orrery::live
