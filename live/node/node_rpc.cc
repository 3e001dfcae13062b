#include "live/node/node_impl.h"

namespace orrery::live {

grpc::ServerUnaryReactor* NodeDaemon::Impl::Ready(grpc::CallbackServerContext* ctx,
                                                  const v1::ReadyRequest*, v1::ReadyReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    reply->set_node_id(node_id_);
    reply->set_address(address_);
    reply->set_pid(static_cast<int32_t>(getpid()));
    reply->set_known_nodes(manager_ ? manager_->view().size() : 0);
    return manager_ ? grpc::Status::OK
                    : grpc::Status(grpc::StatusCode::UNAVAILABLE, "not registered yet");
  });
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::RequestWorkerLease(
    grpc::CallbackServerContext* ctx, const v1::RequestWorkerLeaseRequest* request,
    v1::RequestWorkerLeaseReply* reply) {
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
              attempt = request->attempt(), display = request->display_task_id(),
              job = request->job_id()]() mutable {
    HandleLease(r, reply, call_id, std::move(req), name, timeout);
    // --- dashboard: the job the task belongs to (the job page lists its tasks).
    if (auto t = tasks_.find(task); !job.empty() && t != tasks_.end() &&
                                    t->second.record.job_id().empty()) {
      t->second.record.set_job_id(job);
      t->second.dirty = true;
    }
    // --- actors: a retried task's attempt number goes into its record.
    if (auto t = tasks_.find(task); attempt > 0 && t != tasks_.end()) {
      t->second.record.set_attempt(attempt);
    }
    // --- live run (owner lease reuse): the row names the task the lease was asked for.
    if (auto t = tasks_.find(task); !display.empty() && t != tasks_.end() &&
                                    t->second.record.display_task_id().empty()) {
      t->second.record.set_display_task_id(display);
      t->second.dirty = true;
    }
  });
  return r;
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::ReturnWorkerLease(
    grpc::CallbackServerContext* ctx, const v1::ReturnWorkerLeaseRequest* req,
    v1::ReturnWorkerLeaseReply*) {
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
    if (it->second.kept) {
      EndKeptLease(it);
    } else {
      EndLease(it->second, v1::TASK_STATE_CANCELED, 0, "lease returned unused");
    }
    r->Finish(grpc::Status::OK);
    RunPending();
  });
  return r;
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::CancelWorkerLease(
    grpc::CallbackServerContext* ctx, const v1::CancelWorkerLeaseRequest* req,
    v1::CancelWorkerLeaseReply* reply) {
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

grpc::ServerWriteReactor<v1::RunTaskReply>* NodeDaemon::Impl::RunTask(
    grpc::CallbackServerContext* ctx, const v1::RunTaskRequest* req) {
  const std::string task = req->task_id();
  auto w = TaskWriter(task, false);
  w->SetBound(RunTaskOutputBound());  // a chatty process's output: bounded, oldest dropped
  if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
  if (req->detachable() && req->has_workload()) {
    w->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "detachable: only a command (argv) task can outlive its caller"));
    return w.get();
  }
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
  std::shared_ptr<TaskStream> stream = req->detachable()
                                           ? TaskStream::Detachable(w, kRunTaskOutputBufferBytes)
                                           : TaskStream::Direct(w);
  loop_.Post([this, task, stream, spec = std::move(spec), renv = std::move(*renv)]() mutable {
    if (stream->detachable()) {
      // --- head fault tolerance: known from now on, for ReattachTask and StopTask (a task id
      // that is already running here keeps its own stream: StartTask refuses this call).
      if (!detachable_.count(task) || detachable_[task].stream->closed()) {
        detachable_[task] = {stream, ++detachable_seq_};
      }
    }
    StartTaskInEnv(task, std::move(spec), renv, stream);
  });
  return w.get();
}

std::shared_ptr<StreamWriter<v1::RunTaskReply>> NodeDaemon::Impl::TaskWriter(const TaskId& task,
                                                                             bool reattach) {
  auto self = std::make_shared<std::weak_ptr<TaskStream::Writer>>();  // the writer, once made
  auto w = StreamWriter<v1::RunTaskReply>::Create(false, [this, task, self, reattach] {
    loop_.Post([this, task, w = *self, reattach] { OnRunTaskCallerGone(task, w, reattach); });
  });
  *self = w;
  return w;
}

void NodeDaemon::Impl::OnRunTaskCallerGone(const TaskId& task,
                                           const std::weak_ptr<TaskStream::Writer>& writer,
                                           bool reattach) {
  auto d = detachable_.find(task);
  if (d == detachable_.end()) {
    if (!reattach) KillTask(task);
    return;
  }
  if (d->second.stream->Detach(writer) && !d->second.stream->closed()) {
    Log("the caller of task " + task + " went away: it runs on, detached (ReattachTask)");
  }
}

void NodeDaemon::Impl::ForgetDetachableLater(const TaskId& task) {
  auto d = detachable_.find(task);
  if (d == detachable_.end()) return;
  const uint64_t seq = d->second.seq;
  const bool attached = d->second.stream->attached();
  // Its caller got the exit: keep only what may still be on its way there (memory per ended
  // driver, over the minute it is kept).
  if (attached) d->second.stream->Trim(kDetachedTrimAttached);
  const auto keep = attached ? std::chrono::seconds(kDetachedKeepAttached)
                             : std::chrono::seconds(kDetachedKeepDetached);
  loop_.PostAfter(keep, [this, task, seq] {
    auto d = detachable_.find(task);
    if (d != detachable_.end() && d->second.seq == seq) detachable_.erase(d);
  });
}

grpc::ServerWriteReactor<v1::RunTaskReply>* NodeDaemon::Impl::ReattachTask(
    grpc::CallbackServerContext* ctx, const v1::ReattachTaskRequest* req) {
  const std::string task = req->task_id();
  auto w = TaskWriter(task, true);
  // Room for the whole replay (at most kRunTaskOutputBufferBytes) and as much again.
  w->SetBound(RunTaskOutputBound(2 * kRunTaskOutputBufferBytes));
  if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
  if (task.empty()) {
    w->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "task_id is required"));
    return w.get();
  }
  loop_.Post([this, task, w, from = req->output_offset()] {
    auto d = detachable_.find(task);
    if (d == detachable_.end()) {
      return w->Close(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       "no detachable task " + task + " on node " + node_id_ +
                           " (it never ran here, the node restarted, or it ended long ago)"));
    }
    Log("task " + task + ": a caller reattached from output byte " + std::to_string(from));
    d->second.stream->Attach(w, from);
  });
  return w.get();
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::StopTask(grpc::CallbackServerContext* ctx,
                                                     const v1::StopTaskRequest* req,
                                                     v1::StopTaskReply* reply) {
  return AnswerOnLoop(
      ctx, options_.token, loop_,
      [this, reply, task = req->task_id(),
       why = "stopped: " + (req->reason().empty() ? std::string("by the caller") : req->reason())] {
        auto it = tasks_.find(task);
        if (it == tasks_.end()) return grpc::Status::OK;
        const v1::TaskState st = it->second.record.state();
        if (st == v1::TASK_STATE_LEASED && !it->second.env_pending && it->second.pid == 0) {
          EndLease(it->second, v1::TASK_STATE_CANCELED, 0, why);  // granted, never started
          RunPending();
          reply->set_found(true);
        } else if (st == v1::TASK_STATE_RUNNING || it->second.env_pending) {
          KillTask(task, why);
          reply->set_found(true);
        }
        return grpc::Status::OK;
      });
}

grpc::ServerWriteReactor<v1::ObjectChunk>* NodeDaemon::Impl::FetchObject(
    grpc::CallbackServerContext* ctx, const v1::FetchObjectRequest* req) {
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

grpc::ServerUnaryReactor* NodeDaemon::Impl::PutObject(grpc::CallbackServerContext* ctx,
                                                      const v1::PutObjectRequest* req,
                                                      v1::PutObjectReply*) {
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

grpc::ServerWriteReactor<v1::AttachWorkerReply>* NodeDaemon::Impl::AttachWorker(
    grpc::CallbackServerContext* ctx, const v1::AttachWorkerRequest* req) {
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

grpc::ServerUnaryReactor* NodeDaemon::Impl::Shutdown(grpc::CallbackServerContext* ctx,
                                                     const v1::ShutdownRequest*,
                                                     v1::ShutdownReply*) {
  return AnswerNow(ctx, options_.token, [this] {
    Log("shutdown requested");
    stop_requested_ = true;
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::GetRuntimeEnvCacheStats(
    grpc::CallbackServerContext* ctx, const v1::RuntimeEnvCacheStatsRequest*,
    v1::RuntimeEnvCacheStats* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    reply->set_node_id(node_id_);
    if (node_agent_) {  // the node agent's install cache (RuntimeEnvAgent carries it out)
      const envcache::CacheCounters c = node_agent_->EnvCounters();
      reply->set_hits(c.hits);
      reply->set_misses(c.misses);
      reply->set_evictions(c.evictions);
      reply->set_bytes_installed(c.bytes_installed);
      reply->set_total_bytes(node_agent_->Envs().TotalBytes(kRuntimeEnvKind));
      reply->set_limit_bytes(node_agent_->Envs().LimitBytes(kRuntimeEnvKind));
    }
    return grpc::Status::OK;
  });
}

StatusOr<WorkloadSpec> NodeDaemon::Impl::ValidateWorkload(const v1::RunTaskRequest& req) {
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

}  // namespace orrery::live
