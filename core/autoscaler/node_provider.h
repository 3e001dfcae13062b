// The node-provider extension point of the autoscaler (DESIGN section 4): what a backend offers so
// that an autoscaler plan can be carried out.
//
// The core never calls a provider. A backend's event loop asks its provider for the nodes it has
// (List), builds an AutoscalerInput from them plus the resource view and the pending demand, asks
// AutoscalerPlanner::Plan for decisions, and hands the decisions back to the provider (Launch,
// Terminate). The simulator implements it by adding and removing simulated hosts after a modelled
// start-up delay; the live backend by starting and stopping node daemons.
//
// Node life cycle as a provider reports it:
//   Launch -> pending (requested, not yet a member of the cluster) -> running -> terminating ->
//   gone.
// A pending node counts as capacity for the planner (it will come) and against max_workers.
//
// Thread safety: implementations say; the planner does not care (it never sees a provider).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cluster_view.h"
#include "core/status.h"

namespace orrery::autoscaler {

enum class ProviderNodeState : uint8_t { kPending, kRunning, kTerminating };
// "pending" | "running" | "terminating".
const char* ProviderNodeStateName(ProviderNodeState s);

// One node as a provider knows it.
struct ProviderNode {
  NodeId id;
  // The node type it was launched as (a key of AutoscalerConfig::node_types); "" for a node the
  // autoscaler does not manage (the head node, a node added by hand).
  std::string type;
  ProviderNodeState state = ProviderNodeState::kPending;
  // When Launch() asked for it, in seconds on the backend's clock (the same clock as `now_s`).
  double launch_time_s = 0.0;
};

// Launches and terminates nodes. Implemented by each backend (sim/, live/).
class NodeProvider {
 public:
  virtual ~NodeProvider() = default;

  // Asks for `count` new nodes of `type`; they appear in List() as pending at once.
  // REQUIRES: count >= 1 and `type` is a configured node type. Status: a real failure of the
  // provider (quota, API error); the next planning round sees fewer nodes and asks again.
  virtual Status Launch(const std::string& type, int64_t count) = 0;

  // Starts terminating `nodes` (they turn terminating, then disappear from List()). Unknown ids
  // are NotFound; the others are still terminated.
  virtual Status Terminate(const std::vector<NodeId>& nodes) = 0;

  // Every node not yet gone, by id.
  virtual StatusOr<std::vector<ProviderNode>> List() = 0;
};

}  // namespace orrery::autoscaler
