// `orrery live run`: replays a scenario (sim/scenario.h, the same data the simulator runs) on a
// real cluster with built-in workloads, and renders the same result files (DESIGN section 6,
// backend "live", times in wall seconds from the run's start).
//
// How a scenario maps onto the cluster:
//   - every task is submitted at its submit time (wall clock from the run's start) by a driver
//     thread of its own, which waits for its producers (object arguments) first;
//   - the first lease request goes where the simulator sends it: the target of a NODE_AFFINITY
//     strategy, else the node holding most argument bytes (core's ChooseLocalityNode), else the
//     scenario's driver node; the request carries the arguments' locations, so the deciding
//     node's LeaseManager sees the same locality input as in the simulator;
//   - the task then runs a built-in workload on a pooled worker for its duration: PRODUCE of its
//     output size when it has an output (kept in the node's object store), else SLEEP (or CPU
//     burn with Workload::kCpu); arguments on other nodes are fetched before it starts;
//   - objects that exist at start (`args: [{node: X, bytes: N}]`) are created on X first.
// Not supported yet (CheckLiveSupport names the field): placement groups, failures, the
// autoscaler (managed node types), runtime envs and actors.
//
// Thread safety: RunScenario blocks its caller and uses its own threads; LocalCluster is owned
// by one thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/results/run_record.h"
#include "core/status.h"
#include "sim/scenario.h"

namespace orrery::live {

// InvalidArgument "FILE: FIELD: live run does not support ... yet" for the first unsupported
// feature the scenario uses; Ok otherwise.
Status CheckLiveSupport(const sim::Scenario& scenario);

class HeadDaemon;
class NodeDaemon;

// The scenario's cluster, started in this process on loopback: a head, and one node daemon per
// scenario node (id, resources as logical resources, labels as in the scenario; the driver node
// is the head's node), with the scenario's scheduler options and report period. The destructor
// stops every daemon (and so every worker process) and removes `dir`'s object stores.
class LocalCluster {
 public:
  // `dir`: where the nodes' object stores go (created; removed on destruction).
  static StatusOr<std::unique_ptr<LocalCluster>> Start(const sim::Scenario& scenario,
                                                       const std::filesystem::path& dir);
  ~LocalCluster();
  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

 private:
  LocalCluster() = default;
  std::string address_, token_;
  std::filesystem::path dir_;
  std::unique_ptr<HeadDaemon> head_;
  std::vector<std::unique_ptr<NodeDaemon>> nodes_;
};

struct LiveRunOptions {
  enum class Workload { kSleep, kCpu };
  Workload workload = Workload::kSleep;  // for tasks without an output
  double sample_period_s = 1.0;          // timeseries.csv sampling period (wall seconds)
  // How long to wait for every node to see all the others before the run starts.
  std::chrono::milliseconds view_timeout{10000};
  // Progress lines (one per finished task) go here when set.
  std::ostream* progress = nullptr;
};

// Replays `scenario` on the cluster whose head is at `address`. REQUIRES: CheckLiveSupport ok.
// FailedPrecondition if a scenario node is not an alive node of the cluster (by id).
StatusOr<results::RunRecord> RunScenario(const sim::Scenario& scenario, const std::string& address,
                                         const std::string& token, const LiveRunOptions& options);

}  // namespace orrery::live
