// AutoscalerLoop: head state -> planner input -> provider actions, once per period.
#include "live/autoscaler_loop.h"

#include <algorithm>
#include <utility>

#include "live/convert.h"
#include "orrery.pb.h"

namespace orrery::live {

using autoscaler::ProviderNodeState;

StatusOr<std::unique_ptr<AutoscalerLoop>> AutoscalerLoop::Create(
    const LiveAutoscalerConfig& config, std::unique_ptr<LocalProcessProvider> provider) {
  auto planner = autoscaler::AutoscalerPlanner::Create(config.planner);
  if (!planner.ok()) return planner.status();
  return std::unique_ptr<AutoscalerLoop>(
      new AutoscalerLoop(config, std::move(*planner), std::move(provider)));
}

AutoscalerLoop::AutoscalerLoop(LiveAutoscalerConfig config, autoscaler::AutoscalerPlanner planner,
                               std::unique_ptr<LocalProcessProvider> provider)
    : config_(std::move(config)), planner_(std::move(planner)), provider_(std::move(provider)) {}

AutoscalerRoundOutput AutoscalerLoop::Round(const AutoscalerRoundInput& in) {
  AutoscalerRoundOutput out;
  ++rounds_;
  if (!started_) {
    started_ = true;
    for (const auto& [type, n] : config_.initial) {
      if (Status s = provider_->Launch(type, n); !s.ok()) {
        out.log.push_back("autoscaler: initial launch of " + type + ": " + s.ToString());
      } else {
        launched_ += n;
        out.log.push_back("autoscaler: launching " + std::to_string(n) + " x " + type +
                          " (initial)");
      }
    }
  }
  // 1. The provider's view of its nodes, advanced by what the head sees.
  std::map<NodeId, ObservedNode> observed;
  int64_t alive = 0;
  for (const auto& h : in.nodes) {
    const bool is_alive = h.node.state != NodeState::kDead;
    alive += is_alive ? 1 : 0;
    const bool idle =
        is_alive && h.demand.empty() && h.node.resources.available() == h.node.resources.total();
    observed[h.node.id] = {is_alive, idle};
    if (!is_alive || !idle) {
      idle_since_.erase(h.node.id);
    } else {
      idle_since_.emplace(h.node.id, in.now_s);
    }
  }
  peak_nodes_ = std::max(peak_nodes_, alive);
  for (auto& line : provider_->Observe(observed)) out.log.push_back("autoscaler: " + line);
  auto list = provider_->List();
  if (!list.ok()) {
    last_error_ = list.status().ToString();
    return out;
  }
  last_list_ = *list;
  std::map<NodeId, const autoscaler::ProviderNode*> managed;
  for (const auto& p : last_list_) managed[p.id] = &p;

  // 2. The planner's input.
  autoscaler::AutoscalerInput pin;
  pin.now_s = in.now_s;
  std::map<std::string, std::pair<ResourceSet, int64_t>> demand;  // by shape text
  for (const auto& h : in.nodes) {
    if (h.node.state == NodeState::kDead) continue;
    autoscaler::SnapshotNode sn;
    sn.id = h.node.id;
    sn.total = h.node.resources.total();
    sn.available = h.node.resources.available();
    auto m = managed.find(h.node.id);
    if (m != managed.end()) {
      sn.type = m->second->type;
      sn.state = m->second->state == ProviderNodeState::kTerminating
                     ? ProviderNodeState::kTerminating
                     : ProviderNodeState::kRunning;
      sn.launch_time_s = m->second->launch_time_s;
    } else if (h.node.state == NodeState::kDraining) {
      sn.state = ProviderNodeState::kTerminating;  // not capacity
    }
    if (auto idle = idle_since_.find(h.node.id); idle != idle_since_.end()) {
      sn.idle_since_s = idle->second;
    }
    pin.nodes.push_back(std::move(sn));
    for (const auto& d : h.demand) {
      auto& e = demand[d.shape.ToString()];
      e.first = d.shape;
      e.second += d.count;
    }
  }
  for (const auto& p : last_list_) {  // launched, not registered yet
    if (observed.count(p.id) && observed[p.id].alive) continue;
    if (p.state == ProviderNodeState::kTerminating) continue;
    autoscaler::SnapshotNode sn;
    sn.id = p.id;
    sn.type = p.type;
    sn.state = ProviderNodeState::kPending;
    sn.total = config_.planner.node_types.at(p.type).resources;
    sn.available = sn.total;
    sn.launch_time_s = p.launch_time_s;
    pin.nodes.push_back(std::move(sn));
  }
  for (auto& [key, d] : demand) pin.demands.push_back({d.first, d.second});
  pin.gangs = in.gangs;
  last_gangs_ = in.gangs;

  // 3. Plan and act.
  auto plan = planner_.Plan(pin);
  if (!plan.ok()) {
    last_error_ = "round " + std::to_string(rounds_) + ": " + plan.status().ToString();
    out.log.push_back("autoscaler: " + last_error_);
    return out;
  }
  infeasible_ = plan->infeasible;
  deferred_ = plan->deferred;
  waiting_units_ = plan->waiting_units;
  for (const auto& l : plan->launches) {
    if (Status s = provider_->Launch(l.type, l.count); !s.ok()) {
      last_error_ = s.ToString();
      out.log.push_back("autoscaler: launch " + l.type + ": " + s.ToString());
      continue;
    }
    launched_ += l.count;
    out.log.push_back("autoscaler: launching " + std::to_string(l.count) + " x " + l.type +
                      " (min_workers " + std::to_string(l.for_min_workers) + ", gangs " +
                      std::to_string(l.for_gangs) + ", demand " + std::to_string(l.for_demands) +
                      ")");
  }
  std::vector<NodeId> ids;
  for (const auto& t : plan->terminations) {
    ids.push_back(t.node);
    out.log.push_back("autoscaler: terminating " + t.node + " (" +
                      autoscaler::TerminateReasonName(t.reason) + ": " + t.detail + ")");
    if (observed.count(t.node) && observed[t.node].alive) out.drain.push_back(t.node);
  }
  if (!ids.empty()) {
    if (Status s = provider_->Terminate(ids); !s.ok()) {
      out.log.push_back("autoscaler: terminate: " + s.ToString());
    }
    terminated_ += static_cast<int64_t>(ids.size());
    for (const auto& id : ids) idle_since_.erase(id);
  }
  if (auto l = provider_->List(); l.ok()) last_list_ = *l;
  return out;
}

void AutoscalerLoop::Counts(std::map<std::string, double>* active,
                            std::map<std::string, double>* pending) const {
  for (const auto& [type, t] : config_.planner.node_types) {
    (*active)[type] = 0;
    (*pending)[type] = 0;
  }
  for (const auto& p : last_list_) {
    if (p.state == ProviderNodeState::kPending) (*pending)[p.type] += 1;
    if (p.state == ProviderNodeState::kRunning) (*active)[p.type] += 1;
  }
}

void AutoscalerLoop::FillStatus(double now_s, v1::AutoscalerStatus* out) const {
  out->set_enabled(true);
  for (const auto& p : last_list_) {
    auto* n = out->add_nodes();
    n->set_node_id(p.id);
    n->set_node_type(p.type);
    n->set_state(autoscaler::ProviderNodeStateName(p.state));
    n->set_launched_s_ago(now_s - p.launch_time_s);
    n->set_pid(static_cast<int32_t>(provider_->PidOf(p.id)));
  }
  for (const auto& inf : infeasible_) {
    auto* i = out->add_infeasible();
    ToProto(inf.shape, i->mutable_shape());
    i->set_count(inf.count);
    i->set_gang(inf.gang >= 0);
  }
  out->set_launched(launched_);
  out->set_terminated(terminated_);
  out->set_peak_nodes(peak_nodes_);
  out->set_rounds(rounds_);
  out->set_last_error(last_error_);
  out->set_waiting_units(waiting_units_);
  for (const auto& [t, n] : deferred_) (*out->mutable_deferred())[t] = n;
  for (const auto& [t, c] : config_.planner.node_types)
    (*out->mutable_max_workers())[t] = c.max_workers;
  out->set_pending_gangs(static_cast<int64_t>(last_gangs_.size()));
}

void AutoscalerLoop::Shutdown() { provider_->Shutdown(); }

}  // namespace orrery::live
