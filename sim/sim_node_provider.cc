#include "sim/sim_node_provider.h"

#include "sim/model.h"

namespace orrery::sim {

Status SimNodeProvider::Launch(const std::string& type, int64_t count) {
  Model& m = model_;
  const auto& types = m.scenario_.autoscaler.node_types;
  int64_t left = count;
  for (size_t i = 0; i < m.nodes_.size() && left > 0; ++i) {
    Model::NodeRt& rt = m.nodes_[i];
    if (rt.life != Model::Life::kStandby || rt.type < 0 || types[rt.type].name != type) continue;
    m.Accumulate();
    rt.life = Model::Life::kPending;
    rt.launch_time = m.now_;
    ++rt.launch_gen;
    ++m.nodes_pending_;
    ++m.launched_;
    --left;
    m.last_activity_ = m.now_;
    m.Push(m.now_ + m.scenario_.autoscaler.boot_delay_s, Model::Ev::kBoot,
           static_cast<int32_t>(i), 0, rt.launch_gen);
  }
  return Status::Ok();
}

Status SimNodeProvider::Terminate(const std::vector<NodeId>& nodes) {
  Model& m = model_;
  std::string unknown;
  for (const NodeId& id : nodes) {
    const int slot = m.truth_.FindSlot(id);
    if (slot < 0) {
      unknown += (unknown.empty() ? "" : ", ") + id;
      continue;
    }
    m.TerminateNode(m.node_of_slot_[slot]);
  }
  return unknown.empty() ? Status::Ok() : NotFound("no such node: " + unknown);
}

StatusOr<std::vector<autoscaler::ProviderNode>> SimNodeProvider::List() {
  const Model& m = model_;
  const auto& types = m.scenario_.autoscaler.node_types;
  std::vector<autoscaler::ProviderNode> out;
  for (size_t i = 0; i < m.nodes_.size(); ++i) {
    const Model::NodeRt& rt = m.nodes_[i];
    if (rt.type < 0 || rt.life == Model::Life::kStandby) continue;
    if (rt.life == Model::Life::kRunning && !rt.up) continue;  // crashed: not capacity
    autoscaler::ProviderNode p;
    p.id = m.scenario_.nodes[i].id;
    p.type = types[rt.type].name;
    p.state = rt.life == Model::Life::kPending ? autoscaler::ProviderNodeState::kPending
                                               : autoscaler::ProviderNodeState::kRunning;
    p.launch_time_s = rt.launch_time;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace orrery::sim
