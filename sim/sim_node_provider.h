// SimNodeProvider: the simulator's node provider (core/autoscaler/node_provider.h).
//
// Hosts cannot be added to a sealed SimGrid platform, so every node the autoscaler may ever launch
// exists from the start as a *standby* node of the model (sim/scenario.cc creates them from the
// node types' max_workers). Launch turns standby nodes of the type into pending ones (lowest node
// index first) and schedules their boot after the scenario's boot delay; a booted node joins the
// cluster (Model::OnBoot). Terminate returns a node to standby: a pending node's boot is
// cancelled; a running node with work is failed like a crash (its attempts are retried), an idle
// one just leaves. List reports the managed nodes that are pending or running and up (a crashed
// node is neither capacity nor counted, as the simulator has always done).
//
// The autoscaler round itself is core's: Model::OnAutoscale calls agent::BuildAutoscalerInput and
// agent::RunAutoscalerRound (core/agent/head_controller.h) with this provider, exactly as the live
// head does with its LocalProcessProvider.
//
// Thread safety: none; the model's driver loop. The provider borrows the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/autoscaler/node_provider.h"

namespace orrery::sim {

class Model;

class SimNodeProvider final : public autoscaler::NodeProvider {
 public:
  // REQUIRES: `model` outlives the provider.
  explicit SimNodeProvider(Model& model) : model_(model) {}

  // Launches up to `count` standby nodes of `type` (fewer if fewer are on standby). O(nodes).
  Status Launch(const std::string& type, int64_t count) override;
  // Terminates `nodes` in order; NotFound names the ids that are not nodes of the scenario.
  // O(nodes * log nodes).
  Status Terminate(const std::vector<NodeId>& nodes) override;
  // Managed nodes that are pending, or running and up, by node index. O(nodes).
  StatusOr<std::vector<autoscaler::ProviderNode>> List() override;

 private:
  Model& model_;
};

}  // namespace orrery::sim
