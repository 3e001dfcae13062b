#include "core/scheduling/scheduler.h"

#include <map>

namespace orrery {

const char* OutcomeName(Decision::Outcome o) {
  switch (o) {
    case Decision::Outcome::kGranted: return "granted";
    case Decision::Outcome::kSpillback: return "spillback";
    case Decision::Outcome::kInfeasible: return "infeasible";
    case Decision::Outcome::kUnschedulable: return "unschedulable";
    case Decision::Outcome::kCanceled: return "canceled";
  }
  return "infeasible";
}

std::optional<NodeId> ChooseLocalityNode(const std::vector<ObjectArg>& args) {
  std::map<NodeId, uint64_t> bytes_on;
  uint64_t max_bytes = 0;
  std::optional<NodeId> best;
  for (const auto& arg : args) {
    for (const auto& node : arg.nodes) {
      uint64_t& b = bytes_on[node];
      b += arg.bytes;
      if (b > max_bytes) {
        max_bytes = b;
        best = node;
      }
    }
  }
  return best;
}

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options,
                                                       const PolicyRegistry& registry) {
  auto policy = registry.Make(options.policy, options.hybrid);
  if (!policy.ok()) return policy.status();
  std::unique_ptr<Scheduler> s(new Scheduler());
  s->options_ = options;
  s->default_ = std::move(policy).value();
  return s;
}

PolicyResult Scheduler::ScheduleAffinity(const ClusterView& view, const SchedulingRequest& req,
                                         PolicyRequest preq, Rng& rng) {
  const auto& st = req.strategy;
  const int target = view.FindSlot(st.node);
  std::string why;
  if (target < 0) {
    why = "node " + st.node + " is not in the cluster";
  } else {
    const Node& n = view.at(target);
    if (n.state == NodeState::kDead) {
      why = "node " + st.node + " is dead";
    } else if (n.state == NodeState::kDraining) {
      why = "node " + st.node + " is draining";
    } else if (!n.resources.IsFeasible(req.resources)) {
      why = "node " + st.node + " can never hold " + req.resources.ToString();
    } else if (n.resources.IsAvailable(req.resources)) {
      return PolicyResult::Chosen(target, "node affinity target has it available");
    } else if (!st.spill_on_unavailable && !st.fail_on_unavailable) {
      return PolicyResult::Chosen(target, "node affinity target is busy: the task waits there");
    } else if (st.fail_on_unavailable) {
      return PolicyResult::Canceled("node " + st.node +
                                    " is busy and fail_on_unavailable is set");
    } else {
      why = "node " + st.node + " is busy and spill_on_unavailable is set";
    }
  }
  if (!st.soft) return PolicyResult::Canceled("unschedulable: " + why + " (hard node affinity)");
  PolicyResult r = default_->Schedule(view, preq, rng);
  r.reason = why + "; soft affinity fell through to " + std::string(default_->name()) + ": " +
             r.reason;
  return r;
}

Decision Scheduler::Schedule(const ClusterView& view, const SchedulingRequest& req, int local_slot,
                             Rng& rng) {
  Decision d;
  PolicyRequest preq;
  preq.resources = &req.resources;
  preq.require_available = req.require_available;
  preq.excluded_slot = req.force_spillback ? local_slot : -1;
  preq.zero_resource_actor = req.actor_creation && req.resources.IsEmpty();
  int preferred = -1;
  if (req.preferred) preferred = view.FindSlot(*req.preferred);
  if (preferred < 0 && !req.args.empty()) {
    if (auto loc = ChooseLocalityNode(req.args)) preferred = view.FindSlot(*loc);
  }
  if (preferred < 0) preferred = local_slot;
  preq.preferred_slot = preferred;

  PolicyResult r;
  switch (req.strategy.type) {
    case SchedulingStrategy::Type::kNodeAffinity:
      d.policy = "node_affinity";
      r = ScheduleAffinity(view, req, preq, rng);
      break;
    case SchedulingStrategy::Type::kSpread:
      d.policy = std::string(spread_.name());
      r = spread_.Schedule(view, preq, rng);
      break;
    case SchedulingStrategy::Type::kDefault:
      if (preq.zero_resource_actor) {
        d.policy = std::string(random_.name());
        r = random_.Schedule(view, preq, rng);
      } else {
        d.policy = std::string(default_->name());
        d.preferred_slot = preferred;
        r = default_->Schedule(view, preq, rng);
      }
      break;
  }
  d.reason = std::move(r.reason);
  switch (r.kind) {
    case PolicyResult::Kind::kChosen:
      d.slot = r.slot;
      d.available = view.at(r.slot).resources.IsAvailable(req.resources);
      d.outcome = r.slot == local_slot ? Decision::Outcome::kGranted
                                       : Decision::Outcome::kSpillback;
      break;
    case PolicyResult::Kind::kUnavailable:
      d.outcome = Decision::Outcome::kUnschedulable;
      break;
    case PolicyResult::Kind::kInfeasible:
      d.outcome = Decision::Outcome::kInfeasible;
      break;
    case PolicyResult::Kind::kCanceled:
      d.outcome = Decision::Outcome::kCanceled;
      break;
  }
  return d;
}

}  // namespace orrery
