#include "core/agent/head_controller.h"

#include <algorithm>
#include <utility>

namespace orrery::agent {

using autoscaler::ProviderNodeState;

// ---------------------------------------------------------------------------------------------
// Membership and liveness

void HeadController::MarkChanged(const NodeId& id) {
  if (changed_set_.insert(id).second) changed_.push_back(id);
}

Status HeadController::OnNodeRegistered(Node node, double now_s) {
  auto it = members_.find(node.id);
  if (it != members_.end() && it->second.node.IsAlive()) {
    return Status(StatusCode::kAlreadyExists,
                  "node name " + node.id + " is taken: an alive node is already registered as " +
                      node.id + " (pick another --node-name, or stop that node first)");
  }
  const NodeId id = node.id;
  node.state = NodeState::kAlive;
  members_[id] = Member{std::move(node), now_s};
  MarkChanged(id);
  return Status::Ok();
}

Status HeadController::RestoreMember(Node node, double last_heard_s) {
  if (members_.count(node.id) != 0) {
    return Status(StatusCode::kAlreadyExists, "node " + node.id + " is a member already");
  }
  const NodeId id = node.id;
  members_[id] = Member{std::move(node), last_heard_s};
  MarkChanged(id);
  return Status::Ok();
}

Status HeadController::ExpireRestored(const NodeId& id, double now_s) {
  auto it = members_.find(id);
  if (it == members_.end()) return NotFound("node " + id + " is not a member");
  Member& m = it->second;
  if (!m.node.IsAlive()) return Status::Ok();
  m.last_heard_s = std::min(m.last_heard_s, now_s - options_.DeadAfterS() - 1e-6);
  return Status::Ok();
}

Status HeadController::OnNodeReport(
    const NodeId& id, const std::optional<ResourceSet>& total, const ResourceSet& available,
    const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices, double now_s) {
  auto it = members_.find(id);
  if (it == members_.end()) return NotFound("node " + id + " is not registered");
  Member& m = it->second;
  // Committed placement-group bundles grow (and cancelled ones shrink) a node's totals.
  if (total && !(*total == m.node.resources.total())) {
    auto resized = NodeResources::Create(*total);
    if (resized.ok()) m.node.resources = std::move(*resized);
  }
  if (!available.IsSubsetOf(m.node.resources.total())) {
    return InvalidArgument("available: exceeds the node's total");
  }
  if (m.node.state == NodeState::kDead) {
    return Status(StatusCode::kFailedPrecondition,
                  "node " + id +
                      " was declared dead after missing its health checks; its results are not "
                      "accepted");
  }
  m.last_heard_s = now_s;
  m.node.resources.SetAvailable(available, devices);
  MarkChanged(id);
  return Status::Ok();
}

Status HeadController::Drain(const NodeId& id) {
  auto it = members_.find(id);
  if (it == members_.end()) return NotFound("node " + id + " is not registered");
  if (it->second.node.state == NodeState::kAlive) {
    it->second.node.state = NodeState::kDraining;
    MarkChanged(id);
  }
  return Status::Ok();
}

TickDecisions HeadController::Tick(double now_s) {
  TickDecisions out;
  // The head itself was not running (SIGSTOP, swap, an overloaded machine): the silence was
  // ours, not the nodes'. Shift every deadline by the gap, so a stalled head does not declare the
  // whole cluster dead when it resumes.
  if (last_tick_s_ && now_s - *last_tick_s_ > options_.StallS()) {
    out.stall_s = now_s - *last_tick_s_;
    const double gap = out.stall_s - options_.report_period_s;
    for (auto& [id, m] : members_) m.last_heard_s += gap;
  }
  last_tick_s_ = now_s;
  const double dead_after = options_.DeadAfterS();
  for (auto& [id, m] : members_) {
    if (m.node.state == NodeState::kDead || now_s - m.last_heard_s <= dead_after) continue;
    m.node.state = NodeState::kDead;
    MarkChanged(id);
    out.dead.push_back({id, now_s - m.last_heard_s});
  }
  for (const NodeDeath& d : out.dead) NodeDied(d.node, now_s, out.placement);
  out.broadcast.version = ++version_;
  out.broadcast.changed = std::move(changed_);
  changed_.clear();
  changed_set_.clear();
  return out;
}

const Member* HeadController::FindMember(const NodeId& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

int HeadController::NumAlive() const {
  int n = 0;
  for (const auto& [id, m] : members_) n += m.node.IsAlive() ? 1 : 0;
  return n;
}

ClusterView HeadController::View() const {
  ClusterView view;
  for (const auto& [id, m] : members_) (void)view.AddNode(m.node);
  return view;
}

// ---------------------------------------------------------------------------------------------
// Placement groups

StatusOr<PlacementDecisions> HeadController::CreatePlacementGroup(
    const std::string& id, PlacementStrategy strategy, std::vector<ResourceRequest> bundles,
    double now_s) {
  ORRERY_RETURN_IF_ERROR(AddPlacementGroup(id, strategy, std::move(bundles)));
  return RetryPlacementGroup(id, now_s);
}

Status HeadController::AddPlacementGroup(const std::string& id, PlacementStrategy strategy,
                                         std::vector<ResourceRequest> bundles) {
  if (id.empty()) return InvalidArgument("group_id: empty");
  // A removed group's name is free again (as in Ray); a live one's is not.
  if (auto old = groups_.find(id); old != groups_.end()) {
    if (old->second.reservation.state() != ReservationState::kRemoved) {
      return Status(StatusCode::kAlreadyExists,
                    "placement group " + id + " exists; remove it first");
    }
    groups_.erase(old);
  }
  groups_.emplace(id, PlacementGroupEntry(strategy, TwoPhaseReservation(id, std::move(bundles),
                                                                         options_.pg_backoff)));
  return Status::Ok();
}

Status HeadController::RestorePlacementGroup(const std::string& id, PlacementStrategy strategy,
                                             std::vector<ResourceRequest> bundles,
                                             const std::vector<NodeId>& placement, int attempts) {
  ORRERY_RETURN_IF_ERROR(AddPlacementGroup(id, strategy, std::move(bundles)));
  Status s = groups_.at(id).reservation.RestoreCreated(placement, attempts);
  if (!s.ok()) groups_.erase(id);
  return s;
}

PlacementDecisions HeadController::RetryPlacementGroup(const std::string& id, double now_s) {
  if (groups_.count(id) == 0) return {};
  return Place(id, View(), now_s);
}

PlacementDecisions HeadController::RetryPlacementGroupOn(const std::string& id,
                                                         const ClusterView& view, double now_s) {
  return Place(id, view, now_s);
}

PlacementDecisions HeadController::OnNodeDead(const NodeId& node, double now_s) {
  PlacementDecisions out;
  NodeDied(node, now_s, out);
  return out;
}

PlacementDecisions HeadController::Place(const std::string& id, const ClusterView& view,
                                         double now_s) {
  PlacementDecisions out;
  auto it = groups_.find(id);
  if (it == groups_.end()) return out;
  PlacementGroupEntry& g = it->second;
  g.retry_armed = false;
  TwoPhaseReservation& res = g.reservation;
  if (res.state() != ReservationState::kPending && res.state() != ReservationState::kFailed) {
    return out;
  }
  const PlacementResult placed = PlaceBundles(view, res.bundles(), g.strategy);
  g.infeasible = placed.kind == PlacementResult::Kind::kInfeasible;
  if (g.infeasible && options_.infeasible_waits_for_node) return out;
  if (placed.kind != PlacementResult::Kind::kPlaced) {
    (void)res.OnPlacementFailed(now_s, placed.reason);
  } else {
    auto cmds = res.Start(NodeIdsOf(view, placed.slots));
    if (cmds.ok()) {
      out.commands = std::move(*cmds);
      if (res.state() == ReservationState::kCreated) out.created.push_back(id);
    }
  }
  ArmRetry(id, out);
  return out;
}

void HeadController::ArmRetry(const std::string& id, PlacementDecisions& out) {
  PlacementGroupEntry& g = groups_.at(id);
  if (g.reservation.state() != ReservationState::kFailed || g.retry_armed) return;
  g.retry_armed = true;
  out.retries.push_back({id, g.reservation.retry_at_s()});
}

StatusOr<PlacementDecisions> HeadController::OnBundleReply(const TwoPhaseCommand& cmd, bool ok,
                                                           double now_s) {
  auto it = groups_.find(cmd.group);
  if (it == groups_.end()) return NotFound("no placement group " + cmd.group);
  TwoPhaseReservation& res = it->second.reservation;
  if (cmd.kind == TwoPhaseCommand::Kind::kCancel) return PlacementDecisions{};
  const ReservationState before = res.state();
  auto next = cmd.kind == TwoPhaseCommand::Kind::kPrepare ? res.OnPrepared(cmd.bundle, ok, now_s)
                                                          : res.OnCommitted(cmd.bundle, ok, now_s);
  if (!next.ok()) return next.status();
  PlacementDecisions out;
  out.commands = std::move(*next);
  if (res.state() == ReservationState::kCreated && before != ReservationState::kCreated) {
    out.created.push_back(cmd.group);
  }
  ArmRetry(cmd.group, out);
  return out;
}

StatusOr<PlacementDecisions> HeadController::RemovePlacementGroup(const std::string& id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return NotFound("no placement group " + id);
  PlacementDecisions out;
  out.commands = it->second.reservation.Remove();
  return out;
}

void HeadController::NodeDied(const NodeId& node, double now_s, PlacementDecisions& out) {
  for (auto& [id, g] : groups_) {
    for (auto& cmd : g.reservation.OnNodeDead(node, now_s)) out.commands.push_back(std::move(cmd));
    ArmRetry(id, out);
  }
}

std::vector<autoscaler::GangDemand> HeadController::UnplacedGangs() const {
  std::vector<autoscaler::GangDemand> gangs;
  for (const auto& [id, g] : groups_) {
    const auto st = g.reservation.state();
    if (st != ReservationState::kPending && st != ReservationState::kFailed) continue;
    autoscaler::GangDemand gang;
    gang.strategy = g.strategy;
    for (const auto& b : g.reservation.bundles()) gang.bundles.push_back(b.set());
    if (!gang.bundles.empty()) gangs.push_back(std::move(gang));
  }
  return gangs;
}

// ---------------------------------------------------------------------------------------------
// Autoscaler rounds

autoscaler::AutoscalerInput BuildAutoscalerInput(
    const std::vector<RoundMember>& members,
    const std::vector<autoscaler::ProviderNode>& provider_nodes,
    const autoscaler::AutoscalerConfig& config, std::vector<autoscaler::ResourceDemand> demands,
    std::vector<autoscaler::GangDemand> gangs, double now_s) {
  autoscaler::AutoscalerInput in;
  in.now_s = now_s;
  std::map<NodeId, const autoscaler::ProviderNode*> managed;
  for (const auto& p : provider_nodes) managed[p.id] = &p;
  std::set<NodeId> alive;
  in.nodes.reserve(members.size() + provider_nodes.size());
  for (const RoundMember& rm : members) {
    const Node& n = *rm.node;
    if (!n.IsAlive()) continue;
    alive.insert(n.id);
    autoscaler::SnapshotNode sn;
    sn.id = n.id;
    sn.total = n.resources.total();
    sn.available = n.resources.available();
    if (auto m = managed.find(n.id); m != managed.end()) {
      sn.type = m->second->type;
      sn.state = m->second->state == ProviderNodeState::kTerminating
                     ? ProviderNodeState::kTerminating
                     : ProviderNodeState::kRunning;
      sn.launch_time_s = m->second->launch_time_s;
    } else if (n.state == NodeState::kDraining) {
      sn.state = ProviderNodeState::kTerminating;  // not capacity
    }
    sn.idle_since_s = rm.idle_since_s;
    in.nodes.push_back(std::move(sn));
  }
  for (const auto& p : provider_nodes) {  // launched, not a member yet
    if (alive.count(p.id) || p.state == ProviderNodeState::kTerminating) continue;
    autoscaler::SnapshotNode sn;
    sn.id = p.id;
    sn.type = p.type;
    sn.state = ProviderNodeState::kPending;
    sn.total = config.node_types.at(p.type).resources;
    sn.available = sn.total;
    sn.launch_time_s = p.launch_time_s;
    in.nodes.push_back(std::move(sn));
  }
  in.demands = std::move(demands);
  in.gangs = std::move(gangs);
  return in;
}

AutoscalerRoundResult RunAutoscalerRound(const autoscaler::AutoscalerPlanner& planner,
                                         const autoscaler::AutoscalerInput& input,
                                         autoscaler::NodeProvider& provider) {
  AutoscalerRoundResult r;
  auto plan = planner.Plan(input);
  if (!plan.ok()) {
    r.status = plan.status();
    return r;
  }
  r.plan = std::move(*plan);
  for (const auto& l : r.plan.launches) {
    if (Status s = provider.Launch(l.type, l.count); !s.ok()) {
      r.provider_error = s.ToString();
      r.log.push_back("launch " + l.type + ": " + s.ToString());
      continue;
    }
    r.launched += l.count;
    r.log.push_back("launching " + std::to_string(l.count) + " x " + l.type + " (min_workers " +
                    std::to_string(l.for_min_workers) + ", gangs " +
                    std::to_string(l.for_gangs) + ", demand " + std::to_string(l.for_demands) +
                    ")");
  }
  std::vector<NodeId> ids;
  ids.reserve(r.plan.terminations.size());
  for (const auto& t : r.plan.terminations) {
    ids.push_back(t.node);
    r.log.push_back("terminating " + t.node + " (" + autoscaler::TerminateReasonName(t.reason) +
                    ": " + t.detail + ")");
  }
  if (!ids.empty()) {
    if (Status s = provider.Terminate(ids); !s.ok()) r.log.push_back("terminate: " + s.ToString());
    r.terminated = static_cast<int64_t>(ids.size());
  }
  return r;
}

bool IsAutoscalerDemand(WaitReason wait, bool in_placement_group) {
  return !in_placement_group &&
         (wait == WaitReason::kInfeasible || wait == WaitReason::kWaitingForResources);
}

bool IsPlacementGroupShape(const ResourceSet& shape) {
  for (const auto& [name, q] : shape.custom()) {
    if (name.find("_group_") != std::string::npos) return true;
  }
  return false;
}

}  // namespace orrery::agent
