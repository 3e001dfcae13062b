#include "live/node/node_impl.h"

namespace orrery::live {

grpc::ServerUnaryReactor* NodeDaemon::Impl::PrepareBundle(grpc::CallbackServerContext* ctx,
                                                          const v1::BundleRequest* req,
                                                          v1::BundleReply* reply) {
  return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kPrepare);
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::CommitBundle(grpc::CallbackServerContext* ctx,
                                                         const v1::BundleRequest* req,
                                                         v1::BundleReply* reply) {
  return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kCommit);
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::CancelBundle(grpc::CallbackServerContext* ctx,
                                                         const v1::BundleRequest* req,
                                                         v1::BundleReply* reply) {
  return OnBundle(ctx, req, reply, TwoPhaseCommand::Kind::kCancel);
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::OnBundle(grpc::CallbackServerContext* ctx,
                                                     const v1::BundleRequest* req,
                                                     v1::BundleReply* reply,
                                                     TwoPhaseCommand::Kind kind) {
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

bool NodeDaemon::Impl::PrepareBundleHere(const std::string& group, int index,
                                         const ResourceRequest& resources, std::string* why) {
  const bool held = node_agent_->HoldsBundle(group, index);
  if (!node_agent_->PrepareBundle(group, index, resources, rng_, why)) return false;
  if (!held) Log("prepared bundle " + std::to_string(index) + " of group " + group);
  return true;
}

bool NodeDaemon::Impl::CommitBundleHere(const std::string& group, int index, std::string* why) {
  const bool ok = node_agent_->CommitBundle(group, index, rng_, why);
  AfterResize();
  if (!ok) return false;
  Log("committed bundle " + std::to_string(index) + " of group " + group);
  RunPending();  // tasks of the group may be waiting for the bundle's resources
  return true;
}

void NodeDaemon::Impl::CancelBundleHere(const std::string& group, int index) {
  if (!node_agent_->CancelBundle(group, index, rng_)) return;
  AfterResize();
  Log("cancelled bundle " + std::to_string(index) + " of group " + group);
  RunPending();
}

void NodeDaemon::Impl::AfterResize() {
  manager_ = node_agent_->manager();
  for (const LeaseReply& lr : node_agent_->TakeReplies()) ApplyReply(lr);
}

std::string NodeDaemon::Impl::AddressOf(const NodeId& node) const {
  if (node == node_id_) return address_;
  auto it = addresses_.find(node);
  return it == addresses_.end() ? std::string() : it->second;
}

void NodeDaemon::Impl::Snapshot(v1::HeartbeatRequest* req) {
  req->set_node_id(node_id_);
  // --- dashboard: counts for the node list (the lists: GetNodeDetail).
  req->set_num_workers(static_cast<int32_t>((pool_ ? pool_->num_workers() : 0) +
                                            (api_pool_ ? api_pool_->num_workers() : 0)));
  if (node_agent_) {
    req->set_envs_cached(static_cast<int32_t>(node_agent_->Envs().Uris().size()));
    req->set_env_cache_bytes(static_cast<int64_t>(node_agent_->Envs().TotalBytes()));
  }
  if (metrics_) {  // the head charts the cluster's scheduling latency from these
    const NodeMetrics::HistogramSnapshot h = metrics_->SchedulingLatency();
    auto* out = req->mutable_scheduling_latency();
    for (const auto& [le, n] : h.buckets) {
      out->add_upper_bounds(le);
      out->add_cumulative_counts(n);
    }
    out->set_sum(h.sum);
    out->set_count(h.count);
  }
  if (!manager_) return;
  const Node& self = manager_->view().at(manager_->local_slot());
  ToProto(self.resources.available(), req->mutable_available());
  ToProto(self.resources.total(), req->mutable_total());
  ToProto(self.resources.all_devices(), req->mutable_devices());
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (it->second.dirty) {
      *req->add_task_updates() = it->second.record;
      it->second.dirty = false;
      it->second.reported = true;
    }
    if (IsTerminal(it->second.record.state())) {
      ++ended_[it->second.record.state()];
      if (it->second.actor) ++actors_ended_;
      it = tasks_.erase(it);
    } else {
      ++it;
    }
  }
  for (v1::TaskRecord& r : final_records_) *req->add_task_updates() = std::move(r);
  final_records_.clear();
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

}  // namespace orrery::live
