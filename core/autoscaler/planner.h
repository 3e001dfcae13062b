// The autoscaler planner (DESIGN section 4, Ray autoscaler v2 semantics): given a snapshot of the
// cluster, the pending demand and the current time, decide which nodes to launch and which to
// terminate. Decisions are data (Launch, Terminate, InfeasibleDemand); a backend carries them out
// through its NodeProvider (node_provider.h). The planner keeps no state between rounds: every
// round is a pure function of (config, input).
//
// One round, in this order:
//   1. min_workers  Every type gets launches up to its min_workers (nodes counted: running and
//                   pending of that type). Not capped by the upscaling speed.
//   2. max_workers  A type above its max_workers, then the cluster above its max_workers, loses
//                   nodes in termination order: not-yet-running (pending) first, newest launch
//                   first; then idle nodes, longest idle first; then the least utilised
//                   (utilisation = max over the node's resources of used/total); ties by node id.
//                   The cluster limit never takes a type below its min_workers.
//   3. gangs        Each placement-group demand, in input order, is placed all or nothing: first
//                   onto the free resources of the nodes the round has (running, pending, and the
//                   nodes launched earlier in the round), then onto new nodes.
//                     PACK, SPREAD    bin-packed, bundles first-fit in demand order (below);
//                     STRICT_PACK     one demand, the sum of the bundles, on one node;
//                     STRICT_SPREAD   one bundle per distinct node; each bundle left over gets a
//                     new
//                                     node of its own, the type chosen for that bundle alone.
//                   If the group does not fit in full (a bundle fits no node type, or max_workers
//                   leaves no room) nothing of it is kept. Gang launches are not capped by the
//                   upscaling speed (they are bounded by max_workers).
//   4. demands      Task/actor shapes, identical shapes merged (counts added), are sorted by number
//                   of resource names, then total quantity (raw sum over names), descending, then
//                   by the quantities name by name (larger first) so the order does not depend on
//                   the input order. Each is first-fit onto the free resources of the round's nodes
//                   in node order (existing nodes by id, then new nodes in launch order); what is
//                   left goes onto new nodes.
//   5. upscaling    Launches for demands (step 4) of type t are cut so that pending nodes of t stay
//                   within max(5, floor(upscaling_speed * max(running nodes of t, 1))): they are at
//                   most max(0, that cap - pending - min_workers launches - gang launches of t).
//                   The nodes cut are the last chosen; their demand waits for a later round.
//   6. idle         Running nodes idle for more than idle_timeout_s are terminated, longest idle
//                   first, while their type keeps at least min_workers (counting this round's
//                   launches). A node that received demand in steps 3-4 is not terminated.
//
// New nodes are chosen one at a time: each node type with room left (its max_workers and the
// cluster max_workers, counting running, pending and this round's launches) is scored by fitting
// the remaining demands, in order, on one empty node of that type; a type that fits none is not a
// candidate. For every resource of the type with capacity >= 1, u = used / capacity and
// contribution = capacity * u^3; the score is compared lexicographically, higher wins:
//   (not a GPU type while no remaining demand asks for GPU,
//    number of the type's resources (capacity >= 1) that the remaining demands request,
//    min contribution, mean contribution),
// ties broken by type name in descending order. One node of the winner is added, the demands it
// takes are removed, and the next node is chosen. (When the same choice would provably repeat,
// because no candidate's packing changes, it is taken several times at once; the result is the
// same as choosing one node at a time.)
//
// Fit is checked on aggregate quantities (as Ray's autoscaler does): a node holds a demand when,
// for every name the demand requests, the node's free quantity is at least the request. The
// per-device layout of GPUs is not modelled here.
//
// Infeasible: a demand shape (or gang bundle; for STRICT_PACK the summed bundles) that fits the
// resources of no node type that may ever launch (max_workers > 0 and cluster max_workers > 0)
// nor the totals of any node in the snapshot. It is reported once per shape, never placed, and
// never stops the round; it is set aside before placing, so it is not one of the "remaining
// demands" of the score either (an infeasible GPU demand does not make GPU types acceptable for
// CPU work). A feasible demand that does not fit now (max_workers reached, launches
// cut by the upscaling speed) simply waits for a later round (AutoscalePlan::waiting_units).
//
// Thread safety: AutoscalerPlanner is immutable after Create(); Plan() is const and may run
// concurrently on one planner.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/autoscaler/node_provider.h"
#include "core/cluster_view.h"
#include "core/placement/bundle_policy.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery::autoscaler {

// "No limit" for max_workers.
inline constexpr int64_t kUnlimitedWorkers = std::numeric_limits<int32_t>::max();

// One kind of node the autoscaler may launch.
struct NodeTypeConfig {
  // What one node of this type offers.
  ResourceSet resources;
  // Labels a node of this type carries (passed through to the backend; not used for fitting).
  Labels labels;
  // Nodes of this type kept at all times. REQUIRES: 0 <= min_workers <= max_workers.
  int64_t min_workers = 0;
  // At most this many nodes of this type (running + pending). Default: only the cluster limit.
  int64_t max_workers = kUnlimitedWorkers;
};

// Options of the planner. Defaults are Ray's.
struct AutoscalerConfig {
  // By type name (byte-wise order, which is also the order in which types are reported).
  std::map<std::string, NodeTypeConfig> node_types;
  // At most this many managed nodes (all types, running + pending). REQUIRES: >= the sum of the
  // types' min_workers.
  int64_t max_workers = kUnlimitedWorkers;
  // Pending launches of a type for demand stay within max(5, upscaling_speed * running of it).
  double upscaling_speed = 1.0;
  // A running node idle for longer than this is terminated (beyond min_workers).
  double idle_timeout_s = 300.0;
};

// One node of the cluster at the start of the round.
struct SnapshotNode {
  NodeId id;
  // Its node type; "" = not managed by the autoscaler (the head node, a hand-added node): it is
  // capacity for demands but never counted against max_workers nor terminated.
  std::string type;
  // Terminating nodes are ignored (neither capacity nor counted).
  ProviderNodeState state = ProviderNodeState::kRunning;
  ResourceSet total;
  // Free now. For a pending node, normally its type's resources.
  ResourceSet available;
  // Since when the node has run nothing (seconds, the clock of `now_s`); nullopt = busy.
  std::optional<double> idle_since_s;
  // When it was launched; orders pending nodes for termination (newest first).
  double launch_time_s = 0.0;
};

// `count` tasks or actors each asking for `shape`. An empty shape needs no node and is ignored.
struct ResourceDemand {
  ResourceSet shape;
  int64_t count = 1;
};

// A placement group waiting to be placed: all bundles or none.
struct GangDemand {
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::vector<ResourceSet> bundles;
};

struct AutoscalerInput {
  std::vector<SnapshotNode> nodes;
  std::vector<ResourceDemand> demands;
  std::vector<GangDemand> gangs;
  // The current time on the backend's clock (seconds).
  double now_s = 0.0;
};

// Launch `count` nodes of `type` (count = for_min_workers + for_gangs + for_demands).
struct Launch {
  std::string type;
  int64_t count = 0;
  int64_t for_min_workers = 0;
  int64_t for_gangs = 0;
  int64_t for_demands = 0;
  friend bool operator==(const Launch&, const Launch&) = default;
};

enum class TerminateReason : uint8_t { kMaxWorkersPerType, kMaxWorkersCluster, kIdle };
// "max_workers_per_type" | "max_workers_cluster" | "idle".
const char* TerminateReasonName(TerminateReason r);

// Terminate `node`.
struct Terminate {
  NodeId node;
  TerminateReason reason = TerminateReason::kIdle;
  // One human sentence: "type cpu4 has 3 nodes, max_workers 2; pending".
  std::string detail;
};

// A demand that no node type (nor any existing node) could ever hold.
struct InfeasibleDemand {
  ResourceSet shape;
  // Units of this shape (for a gang: bundles of this shape in the group, or 1 for STRICT_PACK).
  int64_t count = 0;
  // Index of the gang in AutoscalerInput::gangs, or -1 for a task/actor demand.
  int gang = -1;
};

// The decisions of one round.
struct AutoscalePlan {
  // By type name; only types with count > 0.
  std::vector<Launch> launches;
  // In decision order: max_workers per type (types by name), the cluster max_workers, then idle.
  std::vector<Terminate> terminations;
  // Gangs first (input order), then task/actor shapes in input order of first appearance.
  std::vector<InfeasibleDemand> infeasible;
  // Node launches for demand held back by the upscaling-speed cap, by type.
  std::map<std::string, int64_t> deferred;
  // Feasible task/actor units that this round places nowhere (no room, or their node was
  // deferred); they wait for a later round.
  int64_t waiting_units = 0;
  // Indexes of feasible gangs that could not be placed in full this round (no room).
  std::vector<int> waiting_gangs;

  // Count of `type` in `launches` (0 if absent).
  int64_t LaunchCount(const std::string& type) const;
};

class AutoscalerPlanner {
 public:
  // InvalidArgument if a type name is empty, a type's resources are negative, min_workers < 0,
  // max_workers < min_workers, min_workers > 1,000,000, the cluster max_workers < 0 or below the
  // sum of min_workers, upscaling_speed is negative or not finite, or idle_timeout_s is negative
  // or not finite.
  static StatusOr<AutoscalerPlanner> Create(AutoscalerConfig config);

  // One planning round. InvalidArgument if a node id is empty or repeated, a node names a type
  // that is not configured (other than ""), a quantity is negative, a demand count is negative, a
  // gang has no bundle, or now_s is not finite. Deterministic: the same input gives the same plan.
  // Complexity, with N nodes, S distinct demand shapes, T types and L new nodes chosen:
  // O(N log N + S * N + L * T * S) resource comparisons, each over the names the demand requests.
  StatusOr<AutoscalePlan> Plan(const AutoscalerInput& input) const;

  const AutoscalerConfig& config() const { return config_; }

 private:
  explicit AutoscalerPlanner(AutoscalerConfig config) : config_(std::move(config)) {}
  AutoscalerConfig config_;
};

}  // namespace orrery::autoscaler
