// AutoscalerLoop: the live autoscaler (DESIGN section 4). Owned by the head daemon and run on its
// event loop on a period: each round turns the head's state (node table, the pending demand the
// nodes report in their heartbeats, the head's unplaced placement groups) into an
// autoscaler::AutoscalerInput, asks core's AutoscalerPlanner (the same planner the simulator
// drives) for a plan, and carries it out through a LocalProcessProvider. It never blocks: a
// launch is a fork/exec, a termination a drain request plus signals sent in later rounds.
//
// Node types: a node is managed (counted against max_workers, eligible for termination) when
// the provider launched it; its type is the provider's (the node also carries the label
// node_type=<type>). Every other node (the head node, nodes added by hand) is capacity only.
// Idle: a node with everything free and nothing queued; idle since the first round that saw it so.
// Demand: per alive node, its pending lease requests that are infeasible or waiting for
// resources, merged by shape; gangs: the head's groups that are pending or failed, all bundles.
//
// Thread safety: Round, Fill* and counters from the owning loop only; Shutdown from the
// controlling thread once no round can run any more.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/autoscaler/planner.h"
#include "core/cluster_view.h"
#include "live/head/autoscaler/autoscaler_config.h"
#include "live/head/autoscaler/local_process_provider.h"

namespace orrery::v1 {
class AutoscalerStatus;
}

namespace orrery::live {

// One node of the head's table, as a round needs it.
struct HeadNodeState {
  Node node;  // id, state (alive / draining / dead), resources total and available, labels
  // Pending demand reported by the node: (shape, count) for tasks that are infeasible or wait
  // for resources.
  std::vector<autoscaler::ResourceDemand> demand;
};

struct AutoscalerRoundInput {
  std::vector<HeadNodeState> nodes;
  std::vector<autoscaler::GangDemand> gangs;
  double now_s = 0;  // the head's clock, seconds
};

struct AutoscalerRoundOutput {
  std::vector<NodeId> drain;     // registered nodes to mark draining on the head
  std::vector<std::string> log;  // lines for the head's log (launches, terminations, problems)
};

class AutoscalerLoop {
 public:
  // InvalidArgument if the planner refuses the config.
  static StatusOr<std::unique_ptr<AutoscalerLoop>> Create(
      const LiveAutoscalerConfig& config, std::unique_ptr<LocalProcessProvider> provider);

  // One planning round (see the file comment). The first round also launches config.initial.
  AutoscalerRoundOutput Round(const AutoscalerRoundInput& in);

  // Managed nodes by type for the metrics: pending (launched, not registered) and active
  // (running); every configured type appears.
  void Counts(std::map<std::string, double>* active, std::map<std::string, double>* pending) const;
  // Everything `orrery status` shows; `now_s` on the clock of Round's now_s.
  void FillStatus(double now_s, v1::AutoscalerStatus* out) const;
  // Stops every launched node (blocks up to a few seconds).
  void Shutdown();

  const LiveAutoscalerConfig& config() const { return config_; }

 private:
  AutoscalerLoop(LiveAutoscalerConfig config, autoscaler::AutoscalerPlanner planner,
                 std::unique_ptr<LocalProcessProvider> provider);

  const LiveAutoscalerConfig config_;
  const autoscaler::AutoscalerPlanner planner_;
  std::unique_ptr<LocalProcessProvider> provider_;
  bool started_ = false;
  std::map<NodeId, double> idle_since_;  // nodes seen idle, since when
  std::vector<autoscaler::ProviderNode> last_list_;
  std::vector<autoscaler::InfeasibleDemand> infeasible_;
  std::vector<autoscaler::GangDemand> last_gangs_;
  std::map<std::string, int64_t> deferred_;
  int64_t waiting_units_ = 0;
  int64_t launched_ = 0, terminated_ = 0, peak_nodes_ = 0, rounds_ = 0;
  std::string last_error_;
};

}  // namespace orrery::live
