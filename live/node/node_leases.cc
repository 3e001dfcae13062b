#include "live/node/node_impl.h"

namespace orrery::live {

Status NodeDaemon::Impl::InitManager(const v1::ClusterView& v) {
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
  agent::NodeAgent& a = *node_agent_;  // created in Serve (it holds the env cache already)
  ORRERY_RETURN_IF_ERROR(a.CreateManager(std::move(view)));
  // A bundle commit rebuilds the manager and asks the held requests again.
  a.SetQueuedRequestLookup([this](const TaskId& task) -> const LeaseRequest* {
    auto w = waiting_.find(task);
    return w == waiting_.end() ? nullptr : &w->second.request;
  });
  manager_ = node_agent_->manager();
  manager_->TrackWaitReasonChanges();  // RunPending updates records from the changes only
  return Status::Ok();
}

void NodeDaemon::Impl::ApplyView(const v1::ClusterView& v) {
  if (!manager_ || shutting_down_) return;
  for (const auto& info : v.nodes()) {
    if (info.node_id() == node_id_) {
      // The head's view lists this node dead (a partition healed before a heartbeat was refused):
      // it stops, as on a refused heartbeat (DESIGN section 11), instead of granting more leases.
      if (info.state() == v1::NODE_STATE_DEAD && !declared_dead_.exchange(true)) {
        Log("the head's view lists this node dead: stopping");
        stop_requested_ = true;
      }
      continue;
    }
    auto n = NodeFromProto(info);
    if (!n.ok()) {
      Log("ignoring a bad view entry: " + n.status().ToString());
      continue;
    }
    addresses_[info.node_id()] = info.address();
    reported_at_[info.node_id()] = Clock::now() - milliseconds(info.ms_since_heartbeat());
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

void NodeDaemon::Impl::HandleLease(NotifyingUnaryReactor* r, v1::RequestWorkerLeaseReply* reply,
                                   uint64_t call_id, LeaseRequest req, const std::string& name,
                                   int64_t queue_timeout_ms) {
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
    case LeaseReply::Kind::kSpillback:
      // Not ours. A request this node had held (asked again after a queue timeout) moves on.
      if (known) MovedOn(task, lr.node);
      break;
    default:
      break;  // rejected: the task is not ours
  }
  ToProto(lr, AddressOf(lr.node), reply);
  StampViewAge(lr, reply);
  r->Finish(grpc::Status::OK);
}

void NodeDaemon::Impl::StampViewAge(const LeaseReply& lr,
                                    v1::RequestWorkerLeaseReply* reply) const {
  if (lr.kind != LeaseReply::Kind::kSpillback) return;
  auto it = reported_at_.find(lr.node);
  if (it == reported_at_.end()) return;
  reply->mutable_spillback()->set_view_age_us(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second).count());
}

void NodeDaemon::Impl::OnGranted(const LeaseReply& lr) {
  auto& t = tasks_.at(lr.task_id);
  t.allocation = lr.allocation;
  t.record.set_state(v1::TASK_STATE_LEASED);
  t.record.set_wait_reason(v1::WAIT_REASON_NONE);
  t.dirty = true;
  if (metrics_ && t.received != Clock::time_point{}) {
    metrics_->ObserveSchedulingLatency(
        std::chrono::duration<double>(Clock::now() - t.received).count());
  }
  ArmUnusedLeaseTimer(t);
}

void NodeDaemon::Impl::ArmUnusedLeaseTimer(Task& t) {
  t.lease_seq = ++lease_seq_;
  loop_.PostAfter(options_.unused_lease_timeout,
                  [this, task = t.record.task_id(), seq = t.lease_seq] {
                    auto it = tasks_.find(task);
                    if (it == tasks_.end() || it->second.lease_seq != seq ||
                        it->second.record.state() != v1::TASK_STATE_LEASED ||
                        it->second.env_pending || it->second.workload) {
                      return;
                    }
                    Log("lease of task " + task + " was never used: returned");
                    if (it->second.kept) {
                      EndKeptLease(it);
                    } else {
                      EndLease(it->second, v1::TASK_STATE_CANCELED, 0, "lease never used");
                    }
                    RunPending();
                  });
}

void NodeDaemon::Impl::EndKeptLease(std::map<TaskId, Task>::iterator it) {
  if (manager_) (void)node_agent_->ReturnLease(it->first);
  ReleaseTaskEnv(it->second);
  tasks_.erase(it);
}

void NodeDaemon::Impl::RunPending() {
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

void NodeDaemon::Impl::ApplyReply(const LeaseReply& lr) {
  CountSpillback(lr);
  const bool has_task = tasks_.count(lr.task_id) != 0;
  if (lr.kind == LeaseReply::Kind::kGranted && has_task) OnGranted(lr);
  if (lr.kind == LeaseReply::Kind::kCanceled) {
    SetTaskState(lr.task_id, v1::TASK_STATE_CANCELED, lr.reason);
  }
  if (lr.kind == LeaseReply::Kind::kSpillback) MovedOn(lr.task_id, lr.node);
  auto w = waiting_.find(lr.task_id);
  if (w != waiting_.end()) {
    FinishWaiting(w, lr);
  } else if (lr.kind == LeaseReply::Kind::kGranted) {
    // Nobody is waiting for this grant any more: give it back. The record ends CANCELED (the
    // next heartbeat takes it off the table): this node or one before it may have reported the
    // request pending, and a silent erase left that row pending at the head for good.
    (void)node_agent_->ReturnLease(lr.task_id);
    SetTaskState(lr.task_id, v1::TASK_STATE_CANCELED, "the caller went away before the grant");
  }
}

void NodeDaemon::Impl::MovedOn(const TaskId& task, const NodeId& to) {
  auto it = tasks_.find(task);
  if (it == tasks_.end()) return;
  // The head has a row for it if this node reported it, or if a node before this one did (it
  // came here by spillback, and that node's moved record points here). A request spilled on
  // arrival at its first node never had a row: nothing to say.
  if (it->second.reported || it->second.record.spillbacks() > 0) {
    v1::TaskRecord r = it->second.record;
    r.set_state(v1::TASK_STATE_PENDING);
    r.set_wait_reason(v1::WAIT_REASON_NONE);
    r.set_spillbacks(r.spillbacks() + 1);
    r.set_moved_to_node_id(to);
    final_records_.push_back(std::move(r));
  }
  tasks_.erase(it);
}

void NodeDaemon::Impl::FinishWaiting(std::map<TaskId, Waiting>::iterator w, const LeaseReply& lr) {
  ToProto(lr, AddressOf(lr.node), w->second.reply);
  StampViewAge(lr, w->second.reply);
  w->second.reactor->Finish(grpc::Status::OK);
  waiting_.erase(w);
}

void NodeDaemon::Impl::OnQueueTimeout(const TaskId& task, uint64_t call_id) {
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

void NodeDaemon::Impl::OnLeaseCallCanceled(const TaskId& task, uint64_t call_id) {
  auto w = waiting_.find(task);
  if (w == waiting_.end() || w->second.call_id != call_id || !manager_) return;
  (void)node_agent_->CancelLease(task, "the caller went away");
  SetTaskState(task, v1::TASK_STATE_CANCELED, "the caller went away");
  w->second.reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "canceled"));
  waiting_.erase(w);
}

void NodeDaemon::Impl::StartTask(const TaskId& task, ProcessSpec spec,
                                 std::shared_ptr<TaskStream> w) {
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

void NodeDaemon::Impl::OnTaskExited(const TaskId& task, int code, int sig) {
  ForgetDetachableLater(task);  // --- head fault tolerance: its exit stays readable a while
  auto it = tasks_.find(task);
  if (it == tasks_.end()) return;
  EndLease(it->second, code == 0 ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED, code,
           sig > 0 ? "killed by signal " + std::to_string(sig) : std::string());
  RunPending();
}

}  // namespace orrery::live
