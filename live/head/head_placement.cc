#include "live/head/head_impl.h"

namespace orrery::live {

grpc::ServerUnaryReactor* HeadDaemon::Impl::CreatePlacementGroup(
    grpc::CallbackServerContext* ctx, const v1::CreatePlacementGroupRequest* req,
    v1::CreatePlacementGroupReply* reply) {
  return ValidateThenAnswerOnLoop(ctx, options_.token, loop_, [&]() -> Validated {
    if (req->group_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "group_id: empty");
    }
    auto strategy = ParsePlacementStrategy(req->strategy().empty() ? "PACK" : req->strategy());
    if (!strategy.ok()) return ToGrpc(strategy.status());
    std::vector<ResourceRequest> bundles;
    for (int i = 0; i < req->bundles_size(); ++i) {
      auto b = RequestFromProto(req->bundles(i), "bundles[" + std::to_string(i) + "]");
      if (!b.ok()) return ToGrpc(b.status());
      bundles.push_back(std::move(*b));
    }
    return LoopHalf([this, reply, id = req->group_id(), strategy = *strategy,
                     bundles = std::move(bundles)]() mutable {
      // A removed group's name is free again (as in Ray); a live one's is not (the
      // controller says so). Its nodes must have answered every bundle call of the old group
      // first (a cancel still on its way would otherwise release a bundle of the new one).
      if (auto old = controller_.groups().find(id); old != controller_.groups().end() &&
                                                    old->second.reservation.state() ==
                                                        ReservationState::kRemoved &&
                                                    calls_in_flight_[id] > 0) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "placement group " + id +
                                " was just removed and its bundles are being returned; retry");
      }
      const size_t n = bundles.size();
      auto decisions = controller_.CreatePlacementGroup(id, strategy, std::move(bundles), NowS());
      if (!decisions.ok()) return ToGrpc(decisions.status());
      Log("placement group " + id + " created (" + PlacementStrategyName(strategy) + ", " +
          std::to_string(n) + " bundles)");
      Apply(*decisions);
      GroupToProto(id, controller_.groups().at(id), reply->mutable_group());
      return grpc::Status::OK;
    });
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::GetPlacementGroup(
    grpc::CallbackServerContext* ctx, const v1::GetPlacementGroupRequest* req,
    v1::PlacementGroupInfo* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply, id = req->group_id()] {
    auto it = controller_.groups().find(id);
    if (it == controller_.groups().end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no placement group " + id);
    }
    GroupToProto(id, it->second, reply);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::RemovePlacementGroup(
    grpc::CallbackServerContext* ctx, const v1::RemovePlacementGroupRequest* req,
    v1::RemovePlacementGroupReply*) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, id = req->group_id()] {
    auto it = controller_.groups().find(id);
    if (it == controller_.groups().end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no placement group " + id);
    }
    if (it->second.reservation.state() != ReservationState::kRemoved) {
      Log("placement group " + id + " removed");
    }
    auto decisions = controller_.RemovePlacementGroup(id);
    if (decisions.ok()) Apply(*decisions);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* HeadDaemon::Impl::ListPlacementGroups(
    grpc::CallbackServerContext* ctx, const v1::ListPlacementGroupsRequest*,
    v1::ListPlacementGroupsReply* reply) {
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    for (const auto& [id, g] : controller_.groups()) GroupToProto(id, g, reply->add_groups());
    return grpc::Status::OK;
  });
}

void HeadDaemon::Impl::Apply(const agent::PlacementDecisions& d) {
  Send(d.commands);
  for (const auto& id : d.created) Log("placement group " + id + " is created");
  for (const agent::RetryAt& r : d.retries) {
    const double delay_s = std::max(0.0, r.at_s - NowS());
    loop_.PostAfter(std::chrono::milliseconds(static_cast<int64_t>(delay_s * 1000.0) + 1),
                    [this, id = r.group] {
                      if (shutting_down_) return;
                      Apply(controller_.RetryPlacementGroup(id, NowS()));
                    });
  }
}

void HeadDaemon::Impl::Send(const std::vector<TwoPhaseCommand>& cmds) {
  for (const auto& cmd : cmds) {
    const agent::Member* member = controller_.FindMember(cmd.node);
    auto n = nodes_.find(cmd.node);
    if (member == nullptr || !member->node.IsAlive() || n == nodes_.end()) {
      // No node to ask: a failed answer (Cancels to a dead node are moot).
      if (cmd.kind != TwoPhaseCommand::Kind::kCancel) {
        loop_.Post([this, cmd] { OnBundleReply(cmd, false, "node unknown or dead"); });
      }
      continue;
    }
    ++calls_in_flight_[cmd.group];
    const std::string& address = n->second.address;
    auto [queue, idle] = bundle_queue_.try_emplace(address);
    queue->second.push_back(cmd);
    if (idle) SendNextBundleCall(address);
  }
}

void HeadDaemon::Impl::SendNextBundleCall(const std::string& address) {
  auto q = bundle_queue_.find(address);
  if (q == bundle_queue_.end()) return;
  // Calls whose node died while they waited behind another get Send's failed answer at once,
  // instead of each waiting out its deadline against a stopped node in turn.
  while (!q->second.empty() && !shutting_down_) {
    const agent::Member* member = controller_.FindMember(q->second.front().node);
    if (member != nullptr && member->node.IsAlive()) break;
    const TwoPhaseCommand cmd = std::move(q->second.front());
    q->second.pop_front();
    --calls_in_flight_[cmd.group];
    if (cmd.kind != TwoPhaseCommand::Kind::kCancel) {
      loop_.Post([this, cmd] { OnBundleReply(cmd, false, "node unknown or dead"); });
    }
  }
  if (q->second.empty() || shutting_down_) {
    bundle_queue_.erase(q);
    return;
  }
  const TwoPhaseCommand cmd = std::move(q->second.front());
  q->second.pop_front();
  auto& stub = stubs_[address];
  if (!stub) stub = v1::NodeService::NewStub(OpenChannel(address));
  struct Call {
    grpc::ClientContext ctx;
    v1::BundleRequest req;
    v1::BundleReply reply;
  };
  auto call = std::make_shared<Call>();
  AttachToken(&call->ctx, options_.token);
  call->ctx.set_deadline(std::chrono::system_clock::now() + kBundleCallTimeout);
  call->req.set_group_id(cmd.group);
  call->req.set_bundle_index(cmd.bundle);
  ToProto(cmd.resources.set(), call->req.mutable_resources());
  ++bundle_calls_;
  auto done = [this, call, cmd, address](grpc::Status s) {
    const bool ok = s.ok() && call->reply.ok();
    const std::string why = !s.ok() ? s.error_message() : call->reply.reason();
    loop_.Post([this, cmd, ok, why, address] {
      --calls_in_flight_[cmd.group];
      if (cmd.kind != TwoPhaseCommand::Kind::kCancel) OnBundleReply(cmd, ok, why);
      SendNextBundleCall(address);
    });
    --bundle_calls_;
  };
  switch (cmd.kind) {
    case TwoPhaseCommand::Kind::kPrepare:
      stub->async()->PrepareBundle(&call->ctx, &call->req, &call->reply, std::move(done));
      break;
    case TwoPhaseCommand::Kind::kCommit:
      stub->async()->CommitBundle(&call->ctx, &call->req, &call->reply, std::move(done));
      break;
    case TwoPhaseCommand::Kind::kCancel:
      stub->async()->CancelBundle(&call->ctx, &call->req, &call->reply, std::move(done));
      break;
  }
}

void HeadDaemon::Impl::OnBundleReply(const TwoPhaseCommand& cmd, bool ok, const std::string& why) {
  if (controller_.groups().count(cmd.group) == 0) return;
  if (!ok) {
    Log("placement group " + cmd.group + ": " + TwoPhaseCommandKindName(cmd.kind) +
        " of bundle " + std::to_string(cmd.bundle) + " on " + cmd.node + " failed: " + why);
  }
  auto next = controller_.OnBundleReply(cmd, ok, NowS());
  if (!next.ok()) {
    Log("placement group " + cmd.group + ": stale answer: " + next.status().ToString());
    return;
  }
  Apply(*next);
}

v1::PlacementGroupState HeadDaemon::Impl::StateToProto(const agent::PlacementGroupEntry& g) {
  switch (g.reservation.state()) {
    case ReservationState::kPending:
      return v1::PLACEMENT_GROUP_STATE_PENDING;
    case ReservationState::kPreparing:
      return v1::PLACEMENT_GROUP_STATE_PREPARING;
    case ReservationState::kCommitting:
      return v1::PLACEMENT_GROUP_STATE_COMMITTING;
    case ReservationState::kCreated:
      return v1::PLACEMENT_GROUP_STATE_CREATED;
    case ReservationState::kFailed:
      return g.infeasible ? v1::PLACEMENT_GROUP_STATE_INFEASIBLE
                          : v1::PLACEMENT_GROUP_STATE_FAILED;
    case ReservationState::kRemoved:
      return v1::PLACEMENT_GROUP_STATE_REMOVED;
  }
  return v1::PLACEMENT_GROUP_STATE_UNSPECIFIED;
}

void HeadDaemon::Impl::GroupToProto(const std::string& id, const agent::PlacementGroupEntry& g,
                                    v1::PlacementGroupInfo* out) {
  const TwoPhaseReservation& res = g.reservation;
  out->set_group_id(id);
  out->set_strategy(PlacementStrategyName(g.strategy));
  for (const auto& b : res.bundles()) ToProto(b.set(), out->add_bundles());
  out->set_state(StateToProto(g));
  for (const auto& n : res.placement()) out->add_bundle_nodes(n);
  out->set_attempts(res.attempts());
  out->set_reason(res.reason());
}

// Reports of one task come from every node it visited (a spillback moves its lease request on),
// each node's in order, but nodes' reports are not ordered among themselves: a node keeps the
// updates its heartbeats could not deliver (the head was down) and sends them once the head
// answers again, possibly after the node the task moved on to reported it ended. Such a
// record (not ended, from another node, of the same attempt, asked for there before the task
// ended) is older than the row and would leave it pending for good.
bool HeadDaemon::Impl::IsStaleTaskUpdate(const v1::TaskRecord& row, const v1::TaskRecord& in) {
  return IsTerminal(row.state()) && !IsTerminal(in.state()) && in.node_id() != row.node_id() &&
         in.attempt() <= row.attempt() && row.end_unix_ms() > 0 &&
         in.submit_unix_ms() <= row.end_unix_ms();
}

void HeadDaemon::Impl::UpsertTask(const v1::TaskRecord& in) {
  if (in.task_id().empty()) return;
  v1::TaskRecord renamed;
  if (!in.display_task_id().empty() && in.display_task_id() != in.task_id()) {
    // A reused owner lease (live run): the row is the task's; the lease's own row goes (its
    // stale id in order_ is skipped when it reaches the front, erasing nothing).
    tasks_.erase(in.task_id());
    renamed = in;
    renamed.set_task_id(in.display_task_id());
    renamed.clear_display_task_id();
  }
  const v1::TaskRecord& t = renamed.task_id().empty() ? in : renamed;
  if (!renamed.task_id().empty()) {
    // Several leases of a reused owner class may be asked for under one task's name, but only
    // one runs it (a retry is a new attempt id): once a lease ran it to its end, the others'
    // records (returned unused, canceled, moved on) do not replace that end.
    auto row = tasks_.find(t.task_id());
    auto ran = [](v1::TaskState s) {
      return s == v1::TASK_STATE_FINISHED || s == v1::TASK_STATE_FAILED;
    };
    if (row != tasks_.end() && ran(row->second.state()) && !ran(t.state())) return;
  }
  if (!t.moved_to_node_id().empty()) {
    MoveTask(t);
    return;
  }
  in_transit_.erase(t.task_id());  // reported (by the node it went to, or another)
  auto [it, inserted] = tasks_.try_emplace(t.task_id(), t);
  if (!inserted && IsStaleTaskUpdate(it->second, t)) return;
  if (!inserted) {
    // Spillbacks accumulate across the nodes a task visited.
    const int hops = std::max(it->second.spillbacks(), t.spillbacks());
    it->second = t;
    it->second.set_spillbacks(hops);
  }
  if (inserted) order_.push_back(t.task_id());
  while (tasks_.size() > options_.max_tasks && !order_.empty()) {
    tasks_.erase(order_.front());
    order_.pop_front();  // a vector's erase(begin) moved every id: O(max_tasks) per report
  }
}

void HeadDaemon::Impl::MoveTask(const v1::TaskRecord& t) {
  auto it = tasks_.find(t.task_id());
  // Another node reported the request since it left the sender (the node it went to, or one
  // after): the row is newer than this record.
  if (it != tasks_.end() && it->second.node_id() != t.node_id()) return;
  v1::TaskRecord row = t;
  row.set_node_id(t.moved_to_node_id());
  row.clear_moved_to_node_id();
  row.set_state(v1::TASK_STATE_PENDING);
  if (it == tasks_.end()) {
    tasks_.emplace(t.task_id(), std::move(row));
    order_.push_back(t.task_id());
  } else {
    row.set_spillbacks(std::max(it->second.spillbacks(), t.spillbacks()));
    it->second = std::move(row);
  }
  // The node it went to reports it within a report period if the driver asks there; a node that
  // went silent is declared dead (and its rows failed) within DeadAfter. A row still in transit
  // after that was never asked for there.
  const uint64_t seq = ++transit_seq_;
  in_transit_[t.task_id()] = seq;
  transit_expiries_.push_back(
      {NowS() + std::chrono::duration<double>(options_.DeadAfter()).count(), t.task_id(), seq});
}

void HeadDaemon::Impl::ExpireTransits() {
  const double now = NowS();
  while (!transit_expiries_.empty() && transit_expiries_.front().deadline_s <= now) {
    const Transit x = std::move(transit_expiries_.front());
    transit_expiries_.pop_front();
    auto in = in_transit_.find(x.task_id);
    if (in == in_transit_.end() || in->second != x.seq) continue;  // reported, or moved again
    in_transit_.erase(in);
    auto it = tasks_.find(x.task_id);
    if (it == tasks_.end() || it->second.state() != v1::TASK_STATE_PENDING) continue;
    v1::TaskRecord& row = it->second;
    row.set_state(v1::TASK_STATE_CANCELED);
    row.set_end_unix_ms(UnixNowMs());
    row.set_error("canceled: the lease request was spilled to node " + row.node_id() +
                  ", which never reported it (its driver no longer needed the lease, or went "
                  "away)");
  }
}

}  // namespace orrery::live
