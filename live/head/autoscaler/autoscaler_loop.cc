// AutoscalerLoop: head state -> planner input -> provider actions, once per period.
#include "live/head/autoscaler/autoscaler_loop.h"

#include <algorithm>
#include <utility>

#include "core/agent/head_controller.h"
#include "live/rpc/convert.h"
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
    const bool is_alive = h.node.IsAlive();
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

  // 2. The planner's input, built as the simulator builds it (core/agent/head_controller.h).
  std::vector<agent::RoundMember> members;
  std::map<std::string, std::pair<ResourceSet, int64_t>> demand;  // by shape text
  for (const auto& h : in.nodes) {
    agent::RoundMember m;
    m.node = &h.node;
    if (auto idle = idle_since_.find(h.node.id); idle != idle_since_.end()) {
      m.idle_since_s = idle->second;
    }
    members.push_back(m);
    if (!h.node.IsAlive()) continue;
    for (const auto& d : h.demand) {
      auto& e = demand[d.shape.ToString()];
      e.first = d.shape;
      e.second += d.count;
    }
  }
  std::vector<autoscaler::ResourceDemand> demands;
  for (auto& [key, d] : demand) demands.push_back({d.first, d.second});
  last_gangs_ = in.gangs;

  // 3. Plan and act through the provider.
  const agent::AutoscalerRoundResult round = agent::RunAutoscalerRound(
      planner_,
      agent::BuildAutoscalerInput(members, last_list_, config_.planner, std::move(demands),
                                  in.gangs, in.now_s),
      *provider_);
  if (!round.status.ok()) {
    last_error_ = "round " + std::to_string(rounds_) + ": " + round.status.ToString();
    out.log.push_back("autoscaler: " + last_error_);
    return out;
  }
  if (!round.provider_error.empty()) last_error_ = round.provider_error;
  for (const auto& line : round.log) out.log.push_back("autoscaler: " + line);
  infeasible_ = round.plan.infeasible;
  deferred_ = round.plan.deferred;
  waiting_units_ = round.plan.waiting_units;
  launched_ += round.launched;
  terminated_ += round.terminated;
  for (const auto& t : round.plan.terminations) {
    if (observed.count(t.node) && observed[t.node].alive) out.drain.push_back(t.node);
    idle_since_.erase(t.node);
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
