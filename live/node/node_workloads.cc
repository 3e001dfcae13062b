#include "live/node/node_impl.h"

namespace orrery::live {

void NodeDaemon::Impl::StartWorkload(const TaskId& task, WorkloadSpec spec,
                                     const v1::RunTaskRequest& req,
                                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w,
                                     const RuntimeEnv& renv) {
  auto it = tasks_.find(task);
  if (shutting_down_ || it == tasks_.end() ||
      it->second.record.state() != v1::TASK_STATE_LEASED || it->second.workload) {
    w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "no unused lease for task " + task + " on " + node_id_));
    return;
  }
  Task& t = it->second;
  t.workload = true;
  t.keep_lease = req.keep_lease();
  if (t.record.name().empty()) t.record.set_name(WorkloadKindName(spec.kind));
  if (!req.display_task_id().empty() && req.display_task_id() != t.record.task_id()) {
    // A reused owner lease runs this task: the task table shows the task, not the lease.
    t.record.set_display_task_id(req.display_task_id());
    t.record.set_attempt(req.attempt());
    t.dirty = true;
  }
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
    if (!a.ok()) return FailRunTaskEnv(t, a.status().message(), TaskStream::Direct(w));
    t.worker_env.env = a->env;
    t.worker_env.cwd = a->cwd;
    t.pool_key = a->hash;
    for (const auto& [k, v] : a->env) t.pool_key += std::string(1, '\0') + k + "=" + v;
    t.pool_key += std::string(1, '\0') + "cwd=" + a->cwd;
    t.env_id = EnvIdOf(t.pool_key);
    if (w->done()) {
      FinishWorkload(t, w, 1, "the caller went away");
      return;
    }
    PrepareWorkload(task, std::move(spec), req, w);
  });
}

void NodeDaemon::Impl::PrepareWorkload(const TaskId& task, WorkloadSpec spec,
                                       const v1::RunTaskRequest& req,
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

void NodeDaemon::Impl::OnArgsFetched(const TaskId& task, const WorkloadSpec& spec,
                                     std::shared_ptr<StreamWriter<v1::RunTaskReply>> w,
                                     const Status& s, uint64_t bytes) {
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

int64_t NodeDaemon::Impl::EnvIdOf(const std::string& pool_key) {
  if (pool_key.empty()) return -1;
  return env_ids_.try_emplace(pool_key, static_cast<int64_t>(env_ids_.size())).first->second;
}

void NodeDaemon::Impl::LaunchWorkload(const TaskId& task, const WorkloadSpec& spec,
                                      std::shared_ptr<StreamWriter<v1::RunTaskReply>> w) {
  Task& t = tasks_.at(task);
  // The agent decides reuse or start (GPU work: a fresh worker); the pool picks the process.
  const bool gpu = !t.allocation.resources.Get(Predefined::kGPU).IsZero();
  const agent::WorkerAction action = node_agent_->AcquireWorker(t.env_id, gpu);
  auto pid = pool_->Run(
      t.env_id, action, gpu, task, spec,
      // The task starts when its worker begins it: a new worker's start-up (tens of ms) is part
      // of the wait, as the simulator and Ray count it. Until then the process exists (RUNNING,
      // killable) but the caller has not been told it started.
      [this, task, w] {
        auto it = tasks_.find(task);
        if (it == tasks_.end() || it->second.pid == 0) return;
        Task& b = it->second;
        v1::RunTaskReply m;
        m.set_started_pid(static_cast<int32_t>(b.pid));
        w->Push(std::move(m));
        b.start_unix_ms = UnixMs();
        b.record.set_start_unix_ms(b.start_unix_ms);
        b.dirty = true;
      },
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
  t.pid = *pid;
  t.record.set_state(v1::TASK_STATE_RUNNING);
  t.dirty = true;
}

void NodeDaemon::Impl::FinishWorkload(Task& t,
                                      const std::shared_ptr<StreamWriter<v1::RunTaskReply>>& w,
                                      int code, const std::string& error) {
  v1::RunTaskReply m;
  m.mutable_exit()->set_exit_code(code);
  m.mutable_exit()->set_bytes_fetched(t.bytes_fetched);
  m.mutable_exit()->set_error(error);
  m.mutable_exit()->set_start_unix_ms(t.start_unix_ms);
  const bool keep = t.keep_lease && !w->done() && !shutting_down_ && manager_ != nullptr;
  w->Push(std::move(m));
  w->Close(grpc::Status::OK);
  const v1::TaskState state = code == 0 ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED;
  if (keep) {
    // --- live run: the task's record ends (under its display id); the lease stays granted for
    // the owner's next task, its resources held, as a Ray worker lease is between tasks.
    v1::TaskRecord done = t.record;
    done.set_state(state);
    done.set_exit_code(code);
    done.set_end_unix_ms(UnixMs());
    if (!error.empty()) done.set_error(error);
    final_records_.push_back(std::move(done));
    ++ended_[state];
    ReleaseTaskEnv(t);
    t.record.set_state(v1::TASK_STATE_LEASED);
    t.record.clear_display_task_id();
    t.record.clear_error();
    t.record.set_exit_code(0);
    t.record.set_start_unix_ms(0);
    t.record.set_end_unix_ms(0);
    t.record.set_wait_reason(v1::WAIT_REASON_NONE);
    t.dirty = false;
    t.workload = false;
    t.keep_lease = false;
    t.kept = true;
    t.pid = 0;
    t.bytes_fetched = 0;
    t.start_unix_ms = 0;
    ArmUnusedLeaseTimer(t);
    return;
  }
  EndLease(t, state, code, error);
  RunPending();
}

StatusOr<uint64_t> NodeDaemon::Impl::FetchFromPeer(const v1::ObjectRef& a) {
  if (a.address().empty()) {
    return Status(StatusCode::kNotFound, "object " + a.object_id() + ": no holder address");
  }
  auto stub = v1::NodeService::NewStub(
      OpenChannel(a.address()));
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

void NodeDaemon::Impl::ServeObject(const std::string& id,
                                   const std::shared_ptr<StreamWriter<v1::ObjectChunk>>& w) {
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

void NodeDaemon::Impl::KillTask(const TaskId& task, const std::string& why) {
  auto it = tasks_.find(task);
  if (it != tasks_.end() && it->second.env_pending) {  // --- runtime envs
    Log("task " + task + ": " + why + " while its runtime env was being set up");
    // A detachable task's stream is told here (no process will report an exit).
    if (auto d = detachable_.find(task); d != detachable_.end()) {
      v1::RunTaskReply e;
      e.mutable_exit()->set_exit_code(1);
      e.mutable_exit()->set_error(why);
      d->second.stream->Push(std::move(e));
      d->second.stream->Close(grpc::Status::OK);
      ForgetDetachableLater(task);
    }
    EndLease(it->second, v1::TASK_STATE_CANCELED, 0, why);
    RunPending();
    return;
  }
  if (it != tasks_.end() && it->second.record.state() == v1::TASK_STATE_RUNNING) {
    // --- jobs: SIGTERM to the task's process group first (a stopped job's driver may clean
    // up), SIGKILL to what is left after a grace period.
    Log("task " + task + ": " + why + ": stopping it");
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

void NodeDaemon::Impl::EndLease(Task& t, v1::TaskState state, int exit_code,
                                const std::string& error) {
  if (manager_) (void)node_agent_->ReturnLease(t.record.task_id());
  ReleaseTaskEnv(t);  // --- runtime envs
  t.record.set_state(state);
  t.record.set_exit_code(exit_code);
  t.record.set_end_unix_ms(UnixMs());
  if (!error.empty()) t.record.set_error(error);
  t.pid = 0;
  t.dirty = true;
}

void NodeDaemon::Impl::SetTaskState(const TaskId& task, v1::TaskState state,
                                    const std::string& error) {
  auto it = tasks_.find(task);
  if (it == tasks_.end()) return;
  it->second.record.set_state(state);
  if (!error.empty()) it->second.record.set_error(error);
  if (IsTerminal(state)) it->second.record.set_end_unix_ms(UnixMs());
  it->second.dirty = true;
}

}  // namespace orrery::live
