#include "live/head/head_impl.h"

namespace orrery::live {

grpc::ServerReadReactor<v1::PackageChunk>* HeadDaemon::Impl::UploadPackage(
    grpc::CallbackServerContext* ctx, v1::UploadPackageReply* reply) {
  return packages_->Upload(ctx, reply);
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::HasPackage(grpc::CallbackServerContext* ctx,
                                                       const v1::HasPackageRequest* req,
                                                       v1::HasPackageReply* reply) {
  return packages_->Has(ctx, req, reply);
}

grpc::ServerWriteReactor<v1::PackageChunk>* HeadDaemon::Impl::DownloadPackage(
    grpc::CallbackServerContext* ctx, const v1::DownloadPackageRequest* req) {
  return packages_->Download(ctx, req);
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::Ready(grpc::CallbackServerContext* ctx,
                                                  const v1::ReadyRequest*, v1::ReadyReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    reply->set_address((options_.node_ip.empty() ? options_.bind : options_.node_ip) + ":" +
                       std::to_string(port_));
    reply->set_pid(static_cast<int32_t>(getpid()));
    if (metrics_endpoint_) reply->set_metrics_address(metrics_endpoint_->address());
    reply->set_dashboard_url(dashboard_url_);  // --- dashboard
    int schedulable = 0;
    for (const auto& [id, m] : controller_.members()) {
      schedulable += m.node.IsSchedulable() ? 1 : 0;
    }
    reply->set_known_nodes(schedulable);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::RegisterNode(grpc::CallbackServerContext* ctx,
                                                         const v1::RegisterNodeRequest* req,
                                                         v1::RegisterNodeReply* reply) {
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
      NoteReported(id);  // --- head fault tolerance
      NodeEntry e;
      e.address = std::move(address);
      e.is_head_node = head;
      e.pid = pid;
      e.metrics_address = std::move(metrics_address);
      nodes_[id] = std::move(e);
      Emit("node_joined", "INFO", "node " + id + " joined at " + nodes_[id].address + " with " + total,
           id);  // --- dashboard
      BuildView(reply->mutable_view());
      reply->set_report_period_ms(options_.report_period.count());
      return grpc::Status::OK;
    });
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                      const v1::HeartbeatRequest* req,
                                                      v1::HeartbeatReply*) {
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
          NoteReported(req->node_id());  // --- head fault tolerance
          NodeEntry& e = nodes_[req->node_id()];
          e.pending.assign(req->pending().begin(), req->pending().end());
          e.num_workers = req->num_workers();  // --- dashboard
          e.envs_cached = req->envs_cached();
          e.env_cache_bytes = req->env_cache_bytes();
          e.scheduling_latency = req->scheduling_latency();
          for (const auto& t : req->task_updates()) UpsertTask(t);
          return grpc::Status::OK;
        });
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::GetClusterView(grpc::CallbackServerContext* ctx,
                                                           const v1::GetClusterViewRequest*,
                                                           v1::ClusterView* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    BuildView(reply);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::ClusterView>* HeadDaemon::Impl::WatchClusterView(
    grpc::CallbackServerContext* ctx, const v1::WatchClusterViewRequest*) {
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

grpc::ServerUnaryReactor* HeadDaemon::Impl::ListNodes(grpc::CallbackServerContext* ctx,
                                                      const v1::ListNodesRequest*,
                                                      v1::ListNodesReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    v1::ClusterView v;
    BuildView(&v);
    *reply->mutable_nodes() = std::move(*v.mutable_nodes());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::ListTasks(grpc::CallbackServerContext* ctx,
                                                      const v1::ListTasksRequest*,
                                                      v1::ListTasksReply* reply) {
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

grpc::ServerUnaryReactor* HeadDaemon::Impl::Shutdown(grpc::CallbackServerContext* ctx,
                                                     const v1::ShutdownRequest*,
                                                     v1::ShutdownReply*) {
  return AnswerNow(ctx, options_.token, [this] {
    Log("shutdown requested");
    stop_requested_ = true;
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::PublishLogs(grpc::CallbackServerContext* ctx,
                                                        const v1::PublishLogsRequest* req,
                                                        v1::PublishLogsReply*) {
  return AnswerNow(ctx, options_.token, [this, req] {
    log_hub_.Publish(*req);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::LogBatch>* HeadDaemon::Impl::SubscribeLogs(
    grpc::CallbackServerContext* ctx, const v1::SubscribeLogsRequest* req) {
  if (auto s = CheckToken(*ctx, options_.token); !s.ok()) return ClosedStream<v1::LogBatch>(s);
  return log_hub_.Subscribe(req->job_id());
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::ReportActor(grpc::CallbackServerContext* ctx,
                                                        const v1::ReportActorRequest* req,
                                                        v1::ReportActorReply*) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, info = req->actor()]() mutable {
    // No split brain (DESIGN section 11): an actor alive on a node the head declared dead is a
    // late report from the wrong side of a partition; the head already restarted or buried it.
    if (info.state() == v1::ACTOR_STATE_ALIVE && !info.node_id().empty()) {
      auto m = controller_.members().find(info.node_id());
      if (m != controller_.members().end() && m->second.node.state == NodeState::kDead) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "actor " + info.actor_id() + ": node " + info.node_id() +
                                " was declared dead; its reports are not accepted");
      }
    }
    actors_dirty_ = true;  // --- head fault tolerance: persisted on the next tick
    return ToGrpc(actors_.Report(std::move(info), UnixNowMs()));
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::ListActors(grpc::CallbackServerContext* ctx,
                                                       const v1::ListActorsRequest*,
                                                       v1::ListActorsReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    actors_.List(reply);
    return grpc::Status::OK;
  });
}

}  // namespace orrery::live
