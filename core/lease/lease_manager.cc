#include "core/lease/lease_manager.h"

namespace orrery {

const char* WaitReasonName(WaitReason r) {
  switch (r) {
    case WaitReason::kNone: return "";
    case WaitReason::kInfeasible: return "infeasible";
    case WaitReason::kWaitingForResources: return "waiting_for_resources";
    case WaitReason::kWaitingForRuntimeEnv: return "waiting_for_runtime_env";
    case WaitReason::kWaitingForArgs: return "waiting_for_args";
    case WaitReason::kWaitingForPlacementGroup: return "waiting_for_placement_group";
    case WaitReason::kWaitingForNode: return "waiting_for_node";
  }
  return "";
}

const char* LeaseReplyKindName(LeaseReply::Kind k) {
  switch (k) {
    case LeaseReply::Kind::kGranted: return "granted";
    case LeaseReply::Kind::kSpillback: return "spillback";
    case LeaseReply::Kind::kRejected: return "rejected";
    case LeaseReply::Kind::kCanceled: return "canceled";
    case LeaseReply::Kind::kQueued: return "queued";
  }
  return "queued";
}

StatusOr<std::unique_ptr<LeaseManager>> LeaseManager::Create(NodeId local, ClusterView view,
                                                            const SchedulerOptions& options) {
  const int slot = view.FindSlot(local);
  if (slot < 0) return InvalidArgument("local node " + local + " is not in the cluster view");
  auto scheduler = Scheduler::Create(options);
  if (!scheduler.ok()) return scheduler.status();
  std::unique_ptr<LeaseManager> m(new LeaseManager());
  m->local_ = std::move(local);
  m->view_ = std::move(view);
  m->local_slot_ = slot;
  m->scheduler_ = std::move(scheduler).value();
  return m;
}

namespace {
LeaseReply Reply(LeaseReply::Kind kind, const LeaseRequest& req) {
  LeaseReply r;
  r.kind = kind;
  r.task_id = req.task_id;
  r.spillbacks = req.spillbacks;
  return r;
}
}  // namespace

LeaseReply LeaseManager::RequestLease(LeaseRequest req, Rng& rng) {
  if (queued_by_id_.count(req.task_id) != 0 || granted_.count(req.task_id) != 0) {
    LeaseReply r = Reply(LeaseReply::Kind::kRejected, req);
    r.reason = "duplicate lease request for task " + req.task_id;
    return r;
  }
  if (req.grant_or_reject) {
    // A spilled request: the sender chose us from its (possibly stale) view. Grant only if it
    // fits now; otherwise the sender re-decides with fresher information.
    const Node& self = view_.at(local_slot_);
    if (self.IsSchedulable()) {
      if (auto a = view_.Allocate(local_slot_, req.sched.resources)) {
        LeaseReply r = Reply(LeaseReply::Kind::kGranted, req);
        r.node = local_;
        r.allocation = *a;
        granted_.emplace(req.task_id, std::move(*a));
        return r;
      }
    }
    LeaseReply r = Reply(LeaseReply::Kind::kRejected, req);
    r.reason = "spilled to " + local_ + " but " + req.sched.resources.ToString() +
               " is not available here now";
    return r;
  }
  Queued q{std::move(req), WaitReason::kNone};
  if (q.req.blocked_on == WaitReason::kNone) {
    if (auto r = Decide(q, rng)) return *r;
  } else {
    q.wait_reason = q.req.blocked_on;
  }
  LeaseReply r = Reply(LeaseReply::Kind::kQueued, q.req);
  r.wait_reason = q.wait_reason;
  const TaskId id = q.req.task_id;
  queue_.push_back(std::move(q));
  queued_by_id_[id] = std::prev(queue_.end());
  return r;
}

std::optional<LeaseReply> LeaseManager::Decide(Queued& q, Rng& rng) {
  const ResourceRequest& res = q.req.sched.resources;
  Decision d = scheduler_->Schedule(view_, q.req.sched, local_slot_, rng);
  switch (d.outcome) {
    case Decision::Outcome::kGranted: {
      if (auto a = view_.Allocate(local_slot_, res)) {
        LeaseReply r = Reply(LeaseReply::Kind::kGranted, q.req);
        r.node = local_;
        r.allocation = *a;
        r.reason = d.reason;
        granted_.emplace(q.req.task_id, std::move(*a));
        return r;
      }
      q.wait_reason = WaitReason::kWaitingForResources;
      return std::nullopt;
    }
    case Decision::Outcome::kSpillback: {
      // Only a request sent to its own affinity target may wait there; one that fell through
      // (soft affinity) is an ordinary request.
      const bool affinity = q.req.sched.strategy.type == SchedulingStrategy::Type::kNodeAffinity &&
                            view_.at(d.slot).id == q.req.sched.strategy.node;
      if (!d.available && !affinity) {
        // Every candidate is busy: wait here and decide again when something frees up, rather
        // than send the task to a node that would have to reject it (or bounce it on).
        q.wait_reason = WaitReason::kWaitingForResources;
        return std::nullopt;
      }
      LeaseReply r = Reply(LeaseReply::Kind::kSpillback, q.req);
      r.node = view_.at(d.slot).id;
      r.spillbacks = q.req.spillbacks + 1;
      r.grant_or_reject = d.available;
      r.reason = d.reason;
      // Until the next report, assume the target took it.
      view_.SubtractEstimate(d.slot, res);
      estimated_.insert(r.node);
      return r;
    }
    case Decision::Outcome::kInfeasible:
      q.wait_reason = WaitReason::kInfeasible;
      WarnInfeasible(res);
      return std::nullopt;
    case Decision::Outcome::kUnschedulable:
      q.wait_reason = WaitReason::kWaitingForResources;
      return std::nullopt;
    case Decision::Outcome::kCanceled: {
      LeaseReply r = Reply(LeaseReply::Kind::kCanceled, q.req);
      r.reason = d.reason;
      return r;
    }
  }
  return std::nullopt;
}

std::vector<LeaseReply> LeaseManager::SchedulePending(Rng& rng) {
  std::vector<LeaseReply> out;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->req.blocked_on != WaitReason::kNone) {
      ++it;
      continue;
    }
    if (auto r = Decide(*it, rng)) {
      out.push_back(std::move(*r));
      queued_by_id_.erase(it->req.task_id);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

Status LeaseManager::ReturnLease(const TaskId& task) {
  auto it = granted_.find(task);
  if (it == granted_.end()) return NotFound("no lease granted to task " + task + " on " + local_);
  view_.Release(local_slot_, it->second);
  granted_.erase(it);
  return Status::Ok();
}

Status LeaseManager::AdoptLease(const TaskId& task, Allocation allocation) {
  if (granted_.count(task) != 0 || queued_by_id_.count(task) != 0) {
    return AlreadyExists("task " + task + " already has a lease or request on " + local_);
  }
  granted_.emplace(task, std::move(allocation));
  return Status::Ok();
}

std::optional<LeaseReply> LeaseManager::CancelLease(const TaskId& task, const std::string& reason) {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return std::nullopt;
  LeaseReply r = Reply(LeaseReply::Kind::kCanceled, it->second->req);
  r.reason = reason;
  queue_.erase(it->second);
  queued_by_id_.erase(it);
  return r;
}

Status LeaseManager::Block(const TaskId& task, WaitReason reason) {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return NotFound("task " + task + " is not queued on " + local_);
  it->second->req.blocked_on = reason;
  it->second->wait_reason = reason;
  return Status::Ok();
}

Status LeaseManager::Unblock(const TaskId& task) {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return NotFound("task " + task + " is not queued on " + local_);
  it->second->req.blocked_on = WaitReason::kNone;
  return Status::Ok();
}

Status LeaseManager::ApplyReport(
    const NodeId& node, const ResourceSet& available, NodeState state,
    const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices) {
  const int slot = view_.FindSlot(node);
  if (slot < 0) return NotFound("report from unknown node " + node);
  if (slot == local_slot_) return Status::Ok();
  view_.SetAvailable(slot, available, devices);
  if (view_.at(slot).state != state) view_.SetState(slot, state);
  return Status::Ok();
}

Status LeaseManager::ReplaceNodeResources(const NodeId& node, NodeResources resources) {
  const int slot = view_.FindSlot(node);
  if (slot < 0) return NotFound("unknown node " + node);
  if (slot == local_slot_) return Status::Ok();
  view_.SetResources(slot, std::move(resources));
  return Status::Ok();
}

Status LeaseManager::AddNode(Node node) { return view_.AddNode(std::move(node)); }

Status LeaseManager::SetNodeState(const NodeId& node, NodeState state) {
  const int slot = view_.FindSlot(node);
  if (slot < 0) return NotFound("unknown node " + node);
  view_.SetState(slot, state);
  return Status::Ok();
}

std::vector<NodeId> LeaseManager::TakeEstimatedNodes() {
  std::vector<NodeId> out(estimated_.begin(), estimated_.end());
  estimated_.clear();
  return out;
}

std::vector<PendingLease> LeaseManager::Pending() const {
  std::vector<PendingLease> out;
  out.reserve(queue_.size());
  for (const auto& q : queue_) out.push_back({q.req.task_id, q.wait_reason});
  return out;
}

WaitReason LeaseManager::WaitReasonOf(const TaskId& task) const {
  auto it = queued_by_id_.find(task);
  return it == queued_by_id_.end() ? WaitReason::kNone : it->second->wait_reason;
}

void LeaseManager::WarnInfeasible(const ResourceRequest& r) {
  const std::string shape = r.ToString();
  if (!warned_shapes_.insert(shape).second) return;
  warnings_.push_back("no node in the cluster can ever hold " + shape +
                      "; tasks of this shape stay pending (infeasible) until the autoscaler adds "
                      "a node that fits");
}

std::vector<std::string> LeaseManager::TakeWarnings() {
  std::vector<std::string> out;
  out.swap(warnings_);
  return out;
}

}  // namespace orrery
