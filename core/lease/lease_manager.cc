#include "core/lease/lease_manager.h"

#include <algorithm>

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
  m->fair_granting_ = options.fair_granting;
  m->wait_at_best_node_ = options.wait_at_best_node;
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

// The scheduling-class key: every field Scheduler::Schedule reads from a request (see the
// header). Resource quantities are fixed point, so their text is exact.
std::string ClassKey(const SchedulingRequest& r, const std::string& function) {
  const SchedulingStrategy& st = r.strategy;
  std::string k = r.resources.ToString();
  k += '|';
  k += StrategyTypeName(st.type);
  if (st.type == SchedulingStrategy::Type::kNodeAffinity) {
    k += ':' + st.node + (st.soft ? ":soft" : ":hard") + (st.spill_on_unavailable ? ":spill" : "") +
         (st.fail_on_unavailable ? ":fail" : "");
  }
  k += "|p=";
  if (r.preferred) k += *r.preferred;
  k += "|l=";
  if (!r.args.empty()) {
    if (auto loc = ChooseLocalityNode(r.args)) k += *loc;
  }
  if (r.actor_creation && r.resources.IsEmpty()) k += "|zero-resource-actor";
  if (r.force_spillback) k += "|force-spillback";
  if (r.require_available) k += "|require-available";
  if (!function.empty()) {
    k += "|f=";
    k += function;
  }
  return k;
}
}  // namespace

bool SpilledRequestWaits(const ClusterView& view, int slot, const ResourceRequest& r) {
  const Node& self = view.at(slot);
  if (!self.IsSchedulable() || !IsCandidate(self, r)) return false;
  for (int other : view.ordered_slots()) {
    if (other == slot) continue;
    const Node& n = view.at(other);
    if (IsCandidate(n, r) && n.resources.IsAvailable(r)) return false;
  }
  return true;
}

LeaseReply LeaseManager::RequestLease(LeaseRequest req, Rng& rng) {
  if (queued_by_id_.count(req.task_id) != 0 || granted_.count(req.task_id) != 0) {
    LeaseReply r = Reply(LeaseReply::Kind::kRejected, req);
    r.reason = "duplicate lease request for task " + req.task_id;
    return r;
  }
  bool first_decision = true;
  if (req.grant_or_reject) {
    // A spilled request: the sender chose us from its (possibly stale) view. Grant if it fits
    // now. Otherwise, if another node has room in our view, the sender re-decides with fresher
    // information (rejected); if none has (wait_at_best_node, as Ray's raylet prefers waiting
    // on the node a request was sent to), it waits here like a request of our own.
    const Node& self = view_.at(local_slot_);
    if (self.IsSchedulable()) {
      if (auto a = view_.Allocate(local_slot_, req.sched.resources)) {
        LeaseReply r = Reply(LeaseReply::Kind::kGranted, req);
        r.node = local_;
        r.allocation = *a;
        granted_.emplace(req.task_id, std::move(*a));
        if (!req.function.empty()) CountGrant(req.task_id, ClassOf(req.sched, req.function));
        return r;
      }
    }
    if (!wait_at_best_node_ || req.blocked_on != WaitReason::kNone ||
        !SpilledRequestWaits(view_, local_slot_, req.sched.resources)) {
      LeaseReply r = Reply(LeaseReply::Kind::kRejected, req);
      r.reason = "spilled to " + local_ + " but " + req.sched.resources.ToString() +
                 " is not available here now";
      return r;
    }
    req.grant_or_reject = false;
    first_decision = false;  // it waits here, not at yet another busy node
  }
  WaitReason wait = req.blocked_on;
  int32_t cls = -1;
  if (req.blocked_on == WaitReason::kNone) {
    cls = ClassOf(req.sched, req.function);
    auto c = classes_.find(cls);
    if (c != classes_.end()) {
      // Its class already waits: the head was decided against this view and stayed, so this
      // one would too. FIFO: it joins the back (a pass, if due, decides them in order), unless
      // on its first decision here it goes to wait at another, busy node (wait_at_best_node:
      // a policy with a random or round-robin pick, or a class infeasible here).
      wait = c->second.wait_reason;
      if (first_decision && wait_at_best_node_ && wait == WaitReason::kWaitingForResources) {
        if (auto r = Decide(req.task_id, req.spillbacks, req.sched, cls, /*may_grant=*/false,
                            DecideMode::kJoining, &wait, rng)) {
          return *r;
        }
      }
    } else if (auto r =
                   Decide(req.task_id, req.spillbacks, req.sched, cls, !OverFairShare(cls),
                          first_decision ? DecideMode::kFirst : DecideMode::kQueued, &wait, rng)) {
      return *r;
    }
  }
  LeaseReply r = Reply(LeaseReply::Kind::kQueued, req);
  r.wait_reason = wait;
  auto [it, inserted] = queued_by_id_.emplace(req.task_id, Waiting{});
  it->second.id = &it->first;
  it->second.seq = next_seq_++;
  it->second.spillbacks = req.spillbacks;
  it->second.blocked_on = req.blocked_on;
  if (cls >= 0) {
    Enqueue(it, cls, req.sched, wait);
  } else {
    blocked_.emplace(req.task_id, std::move(req));
  }
  return r;
}

int32_t LeaseManager::ClassOf(const SchedulingRequest& sched, const std::string& function) {
  auto [it, inserted] =
      class_ids_.emplace(ClassKey(sched, function), static_cast<int32_t>(class_ids_.size()));
  if (inserted) class_uses_cpu_[it->second] = !sched.resources.set().Get(Predefined::kCPU).IsZero();
  return it->second;
}

void LeaseManager::CountGrant(const TaskId& id, int32_t cls) {
  if (cls < 0) return;
  granted_class_[id] = cls;
  ++granted_per_class_[cls];
  if (class_uses_cpu_[cls]) ++cpu_class_grants_;
}

bool LeaseManager::OverFairShare(int32_t cls) const {
  if (!fair_granting_ || cls < 0) return false;
  auto uses = class_uses_cpu_.find(cls);
  if (uses == class_uses_cpu_.end() || !uses->second) return false;
  auto g = granted_per_class_.find(cls);
  if (g == granted_per_class_.end() || g->second == 0) return false;  // never over a share >= 0
  // The CPU asked for by the queued requests of CPU classes, and how many such classes queue
  // (this one counts even before its request is queued). O(classes queued).
  double cpu_asked = 0;
  int64_t cpu_classes = 0;
  bool self_queued = false;
  for (const auto& [id, cq] : classes_) {
    // Infeasible classes wait apart (Ray's infeasible queue), not for this node's CPUs.
    if (cq.wait_reason == WaitReason::kInfeasible) continue;
    const double cpu = cq.sched.resources.set().Get(Predefined::kCPU).ToDouble();
    if (cpu <= 0) continue;
    cpu_asked += cpu * static_cast<double>(cq.fifo.size());
    ++cpu_classes;
    self_queued |= id == cls;
  }
  if (!self_queued) ++cpu_classes;
  const double cpus = view_.at(local_slot_).resources.total().Get(Predefined::kCPU).ToDouble();
  if (cpu_asked <= cpus) return false;
  const int64_t fair_share = cpu_class_grants_ / cpu_classes;
  return g->second > fair_share;
}

void LeaseManager::Enqueue(QueuedMap::iterator it, int32_t cls, const SchedulingRequest& sched,
                           WaitReason wait) {
  auto [c, created] = classes_.try_emplace(cls);
  if (created) {
    c->second.sched = sched;
    c->second.wait_reason = wait;
  }
  Waiting& w = it->second;
  w.cls = cls;
  w.pos = c->second.fifo.insert(c->second.fifo.end(), &w);
}

void LeaseManager::Unlink(Waiting& w) {
  auto c = classes_.find(w.cls);
  c->second.fifo.erase(w.pos);
  if (c->second.fifo.empty()) classes_.erase(c);
  w.cls = -1;
}

void LeaseManager::Forget(QueuedMap::iterator it) {
  if (it->second.cls >= 0) {
    Unlink(it->second);
  } else {
    blocked_.erase(it->first);
  }
  queued_by_id_.erase(it);
}

std::optional<LeaseReply> LeaseManager::Decide(const TaskId& id, int spillbacks,
                                               const SchedulingRequest& sched, int32_t cls,
                                               bool may_grant, DecideMode mode, WaitReason* wait,
                                               Rng& rng) {
  auto reply = [&](LeaseReply::Kind kind) {
    LeaseReply r;
    r.kind = kind;
    r.task_id = id;
    r.spillbacks = spillbacks;
    return r;
  };
  const ResourceRequest& res = sched.resources;
  Decision d = scheduler_->Schedule(view_, sched, local_slot_, rng);
  // Every candidate busy and the best is another node: on a request's first decision here
  // (wait_at_best_node), it goes to wait there (Ray's raylet sends it to the best feasible node,
  // where a spilled request waits when no node has room). A queued request is decided again
  // when something frees up and only ever leaves for a node with room, so none bounces between
  // busy nodes.
  const bool affinity = d.outcome == Decision::Outcome::kSpillback &&
                        sched.strategy.type == SchedulingStrategy::Type::kNodeAffinity &&
                        view_.at(d.slot).id == sched.strategy.node;
  const bool go_wait = d.outcome == Decision::Outcome::kSpillback && !d.available && !affinity &&
                       mode != DecideMode::kQueued && wait_at_best_node_ && d.slot != local_slot_;
  // Joining a class that waits here: only going to wait elsewhere leaves before the older ones.
  if (mode == DecideMode::kJoining && !go_wait) return std::nullopt;
  switch (d.outcome) {
    case Decision::Outcome::kGranted: {
      if (!may_grant) {  // fair granting: this class is over its share here now
        *wait = WaitReason::kWaitingForResources;
        return std::nullopt;
      }
      if (auto a = view_.Allocate(local_slot_, res)) {
        LeaseReply r = reply(LeaseReply::Kind::kGranted);
        r.node = local_;
        r.allocation = *a;
        r.reason = d.reason;
        granted_.emplace(id, std::move(*a));
        CountGrant(id, cls);
        return r;
      }
      *wait = WaitReason::kWaitingForResources;
      return std::nullopt;
    }
    case Decision::Outcome::kSpillback: {
      // Only a request sent to its own affinity target may wait there (one that fell through,
      // soft affinity, is an ordinary request), or one that goes to wait at its best node.
      if (!d.available && !affinity && !go_wait) {
        *wait = WaitReason::kWaitingForResources;
        return std::nullopt;
      }
      LeaseReply r = reply(LeaseReply::Kind::kSpillback);
      r.node = view_.at(d.slot).id;
      r.spillbacks = spillbacks + 1;
      r.grant_or_reject = d.available || go_wait;
      r.reason = go_wait ? d.reason + "; no node has room now: it waits there" : d.reason;
      // Until the next report, assume the target took it (a busy target: nothing to take).
      if (d.available) {
        view_.SubtractEstimate(d.slot, res);
        estimated_.insert(r.node);
      }
      return r;
    }
    case Decision::Outcome::kInfeasible:
      *wait = WaitReason::kInfeasible;
      WarnInfeasible(res);
      return std::nullopt;
    case Decision::Outcome::kUnschedulable:
      *wait = WaitReason::kWaitingForResources;
      return std::nullopt;
    case Decision::Outcome::kCanceled: {
      LeaseReply r = reply(LeaseReply::Kind::kCanceled);
      r.reason = d.reason;
      return r;
    }
  }
  return std::nullopt;
}

std::vector<LeaseReply> LeaseManager::SchedulePending(Rng& rng) {
  std::vector<LeaseReply> out;
  if (!dirty_) {
    // Nothing that could let a request leave changed since the last pass: every class head
    // would be decided against the same view and stay.
    ++counters_.skipped_passes;
    return out;
  }
  dirty_ = false;
  ++counters_.passes;
  for (auto c = classes_.begin(); c != classes_.end();) {
    ClassQueue& cq = c->second;
    const WaitReason before = cq.wait_reason;
    bool emptied = false;
    // Fair granting is judged once per class and pass (as Ray's local lease manager does): a
    // class over its share is skipped, neither granted nor spilled; one under it may take every
    // grant that fits now.
    if (OverFairShare(c->first)) {
      ++c;
      continue;
    }
    // FIFO within the class until the head has to stay; the rest of the class waits with it.
    while (true) {
      const Waiting* head = cq.fifo.front();
      ++counters_.pass_decisions;
      auto r = Decide(*head->id, head->spillbacks, cq.sched, c->first, /*may_grant=*/true,
                      DecideMode::kQueued, &cq.wait_reason, rng);
      if (!r) break;
      out.push_back(std::move(*r));
      cq.fifo.pop_front();
      queued_by_id_.erase(out.back().task_id);
      if (cq.fifo.empty()) {
        emptied = true;
        break;
      }
    }
    if (track_wait_changes_ && !emptied && cq.wait_reason != before) {
      // Every member waits for the same reason as its head: O(class size), only on a change.
      for (const Waiting* w : cq.fifo) wait_changes_.push_back({*w->id, cq.wait_reason});
    }
    c = emptied ? classes_.erase(c) : std::next(c);
  }
  return out;
}

std::vector<PendingLease> LeaseManager::TakeWaitReasonChanges() {
  std::vector<PendingLease> out;
  out.swap(wait_changes_);
  return out;
}

Status LeaseManager::ReturnLease(const TaskId& task) {
  auto it = granted_.find(task);
  if (it == granted_.end()) return NotFound("no lease granted to task " + task + " on " + local_);
  view_.Release(local_slot_, it->second);
  granted_.erase(it);
  if (auto g = granted_class_.find(task); g != granted_class_.end()) {
    const int32_t cls = g->second;
    if (--granted_per_class_[cls] == 0) granted_per_class_.erase(cls);
    if (class_uses_cpu_[cls]) --cpu_class_grants_;
    granted_class_.erase(g);
  }
  dirty_ = true;
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
  LeaseReply r;
  r.kind = LeaseReply::Kind::kCanceled;
  r.task_id = task;
  r.spillbacks = it->second.spillbacks;
  r.reason = reason;
  Forget(it);
  return r;
}

Status LeaseManager::Block(const TaskId& task, WaitReason reason) {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return NotFound("task " + task + " is not queued on " + local_);
  Waiting& w = it->second;
  if (w.cls >= 0) {
    // It leaves its class queue; its full request is kept until Unblock().
    LeaseRequest req;
    req.task_id = task;
    req.sched = classes_.at(w.cls).sched;
    req.spillbacks = w.spillbacks;
    Unlink(w);
    blocked_.emplace(task, std::move(req));
  }
  w.blocked_on = reason;
  blocked_.at(task).blocked_on = reason;
  if (track_wait_changes_) wait_changes_.push_back({task, reason});
  return Status::Ok();
}

Status LeaseManager::Unblock(const TaskId& task) {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return NotFound("task " + task + " is not queued on " + local_);
  Waiting& w = it->second;
  if (w.cls >= 0) return Status::Ok();  // not blocked
  auto b = blocked_.find(task);
  LeaseRequest req = std::move(b->second);
  blocked_.erase(b);
  w.blocked_on = WaitReason::kNone;
  // Ray moves a task whose dependencies resolved to the back of its class's dispatch queue.
  Enqueue(it, ClassOf(req.sched, req.function), req.sched, WaitReason::kWaitingForResources);
  if (track_wait_changes_) wait_changes_.push_back({task, classes_.at(w.cls).wait_reason});
  dirty_ = true;
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
  dirty_ = true;
  return Status::Ok();
}

Status LeaseManager::ReplaceNodeResources(const NodeId& node, NodeResources resources) {
  const int slot = view_.FindSlot(node);
  if (slot < 0) return NotFound("unknown node " + node);
  if (slot == local_slot_) return Status::Ok();
  view_.SetResources(slot, std::move(resources));
  dirty_ = true;
  return Status::Ok();
}

Status LeaseManager::AddNode(Node node) {
  dirty_ = true;
  return view_.AddNode(std::move(node));
}

Status LeaseManager::SetNodeState(const NodeId& node, NodeState state) {
  const int slot = view_.FindSlot(node);
  if (slot < 0) return NotFound("unknown node " + node);
  view_.SetState(slot, state);
  dirty_ = true;
  return Status::Ok();
}

std::vector<NodeId> LeaseManager::TakeEstimatedNodes() {
  std::vector<NodeId> out(estimated_.begin(), estimated_.end());
  estimated_.clear();
  return out;
}

std::vector<PendingLease> LeaseManager::Pending() const {
  std::vector<std::pair<uint64_t, PendingLease>> by_seq;
  by_seq.reserve(queued_by_id_.size());
  for (const auto& [id, w] : queued_by_id_) by_seq.push_back({w.seq, {id, WaitReasonOf(id)}});
  std::sort(by_seq.begin(), by_seq.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<PendingLease> out;
  out.reserve(by_seq.size());
  for (auto& [seq, p] : by_seq) out.push_back(std::move(p));
  return out;
}

WaitReason LeaseManager::WaitReasonOf(const TaskId& task) const {
  auto it = queued_by_id_.find(task);
  if (it == queued_by_id_.end()) return WaitReason::kNone;
  const Waiting& w = it->second;
  return w.cls >= 0 ? classes_.at(w.cls).wait_reason : w.blocked_on;
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
