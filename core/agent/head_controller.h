// HeadController: the head's control logic (DESIGN section 9), shared by the simulator and the
// live head. Membership and liveness, the cluster-view broadcast, placement groups through
// TwoPhaseReservation, and autoscaler rounds through a NodeProvider.
//
// Pure: no I/O, no clock, no threads. Every event carries the current time as seconds on the
// backend's clock (`now_s`); every handler answers with decisions as plain values that the backend
// carries out (RPCs in live/, timed events in sim/). Core never calls a backend, with one
// exception by design: an autoscaler round acts through the NodeProvider it is handed (the
// provider *is* the backend's actuator, DESIGN section 4).
//
// Event -> decision table
//
//   event                              decision(s)
//   ---------------------------------  ----------------------------------------------------------
//   OnNodeRegistered(node, now)        member added (alive, heard now); refused (AlreadyExists)
//                                      while an alive member has that id; view changed
//   OnNodeReport(id, avail, now)       heard now; availability replaced; refused (NotFound,
//                                      FailedPrecondition once declared dead); view changed
//   Drain(id)                          alive -> draining (still alive, not schedulable); changed
//   Tick(now)                          1. stall: if the previous Tick is older than StallS(), the
//                                         head itself was not running: every deadline moves by
//                                         the gap (minus one period); TickDecisions::stall_s > 0
//                                      2. liveness: a member not heard for DeadAfterS() is
//                                         declared dead (NodeDeath); its placement-group bundles
//                                         fail over (bundle commands + retry timers)
//                                      3. broadcast: version + 1; the ids changed since the last
//                                         Tick (ViewDelta), to every watcher
//   CreatePlacementGroup(id, ...)      placed on the members now (PlaceBundles): Prepare per
//                                      bundle, or Failed + a retry timer (RetryAt) after backoff;
//                                      AlreadyExists while a group of that id is not removed
//   OnBundleReply(cmd, ok, now)        TwoPhaseReservation's next step: Commits, Cancels, Created,
//                                      or Failed + RetryAt
//   RetryPlacementGroup(id, now)       (the backend's retry timer fired) placed again as above
//   RemovePlacementGroup(id)           Cancel for every held bundle; Removed (terminal)
//   node declared dead (from Tick),    TwoPhaseReservation::OnNodeDead for every group: what it
//   or OnNodeDead(node, now)           held elsewhere is cancelled, Prepares/Commits in flight
//                                      there count as refused, Failed + RetryAt
//   AddPlacementGroup +                as Create/Retry, placed on the backend's own view (the
//   RetryPlacementGroupOn(id, view)    simulator's truth); with infeasible_waits_for_node an
//                                      infeasible group gets no timer until the backend retries
//
// Who drives it: live/head/head.cc (every event above; bundle commands become PrepareBundle /
// CommitBundle / CancelBundle RPCs, RetryAt a loop timer) and sim/model.cc (placement groups:
// AddPlacementGroup, RetryPlacementGroupOn, OnBundleReply, OnNodeDead; the simulator knows
// crashes the instant they happen, so it does not use the heartbeat membership).
//
// Autoscaler rounds (free functions below): BuildAutoscalerInput turns the membership (as nodes of
// a view), the provider's node list, the pending demand and the unplaced groups into the planner's
// input; RunAutoscalerRound plans and acts through the provider. Both backends call exactly these.
//
// Thread safety: none. One event loop owns a HeadController.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/autoscaler/node_provider.h"
#include "core/autoscaler/planner.h"
#include "core/cluster_view.h"
#include "core/lease/lease_manager.h"
#include "core/placement/bundle_policy.h"
#include "core/placement/two_phase.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery::agent {

struct HeadControllerOptions {
  // The view broadcast period [0.1 s]: how often the backend calls Tick.
  double report_period_s = 0.1;
  // A node is health-checked once per period [1 s]; `health_check_failures` [5] missed checks in
  // a row and it is declared dead.
  double health_check_period_s = 1.0;
  int health_check_failures = 5;
  // Placement-group retry backoff [0.1 s -> 1 s, x1.5].
  RetryBackoffOptions pg_backoff;
  // An infeasible group (no node's totals could ever hold it) is not retried on a timer and uses
  // no backoff: it waits until the backend calls RetryPlacementGroup after a node joined [false:
  // retried on the backoff timer like any failure]. The simulator, which knows the instant a node
  // joins, sets it.
  bool infeasible_waits_for_node = false;

  double DeadAfterS() const { return health_check_period_s * health_check_failures; }
  // A gap between two Ticks longer than this is the head's own stall, not the nodes' silence:
  // at least ten periods and one health-check period (ordinary tick jitter is not a stall).
  double StallS() const {
    return health_check_period_s > 10 * report_period_s ? health_check_period_s
                                                        : 10 * report_period_s;
  }
};

// One member of the cluster as the head knows it.
struct Member {
  Node node;                   // id, state (alive / draining / dead), labels, resources
  double last_heard_s = 0.0;   // registration or the last report (moved on a stall)
};

// A member declared dead by Tick.
struct NodeDeath {
  NodeId node;
  double silent_s = 0.0;  // how long it had not been heard
};

// What the watchers of the view are sent: the version and the members that changed (registered,
// reported, drained, died) since the previous broadcast, by id.
struct ViewDelta {
  int64_t version = 0;
  std::vector<NodeId> changed;
};

// "Call RetryPlacementGroup(group, ...) at at_s" (the backend keeps one timer per group).
struct RetryAt {
  std::string group;
  double at_s = 0.0;
};

// Bundle commands to send to nodes, and retry timers to arm.
struct PlacementDecisions {
  std::vector<TwoPhaseCommand> commands;
  std::vector<RetryAt> retries;
  // Groups that became Created in this step.
  std::vector<std::string> created;
};

struct TickDecisions {
  double stall_s = 0.0;  // > 0: the head stalled this long; every deadline was extended
  std::vector<NodeDeath> dead;
  PlacementDecisions placement;  // fail-over of the dead nodes' bundles
  ViewDelta broadcast;
};

// One placement group on the head.
struct PlacementGroupEntry {
  PlacementGroupEntry(PlacementStrategy s, TwoPhaseReservation r)
      : strategy(s), reservation(std::move(r)) {}
  PlacementStrategy strategy = PlacementStrategy::kPack;
  TwoPhaseReservation reservation;
  bool infeasible = false;   // the last PlaceBundles said never (as the cluster is now)
  bool retry_armed = false;  // a RetryAt was handed out and has not fired yet
};

class HeadController {
 public:
  explicit HeadController(HeadControllerOptions options = {}) : options_(options) {}

  // ---- membership and liveness

  // AlreadyExists if an alive (or draining) member has node.id; a dead one is replaced (a
  // restarted node registers anew). O(log members).
  Status OnNodeRegistered(Node node, double now_s);
  // A resource report (heartbeat). `total`, when given and different, replaces the node's totals
  // (committed bundles grow them). NotFound if unknown; FailedPrecondition if declared dead (its
  // work was failed over: nothing it reports is accepted); InvalidArgument if `available` exceeds
  // the total. O(log members + resources).
  Status OnNodeReport(const NodeId& id, const std::optional<ResourceSet>& total,
                      const ResourceSet& available,
                      const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices,
                      double now_s);
  // A member known from before a restart of the head (live/head/head_store.h): added as `node`
  // is (its state kept: a member declared dead stays dead), last heard at `last_heard_s`, so an
  // alive one is declared dead unless it reports before last_heard_s + DeadAfterS() (the backend
  // passes a time in the future to give re-registering nodes a grace window). AlreadyExists if
  // the id is a member already. O(log members).
  Status RestoreMember(Node node, double last_heard_s);
  // A restored member whose daemon is known to be gone (the backend found nothing listening at
  // its address) need not wait out its grace window: unless it reports first, the next Tick
  // declares it dead. NotFound if unknown; a no-op unless alive. O(log members).
  Status ExpireRestored(const NodeId& id, double now_s);
  // Alive -> draining (a draining node is alive but takes no new work). NotFound if unknown;
  // no-op unless alive. O(log members).
  Status Drain(const NodeId& id);
  // One period: stall extension, liveness, placement fail-over, broadcast (file comment).
  // O(members + groups * bundles per dead node).
  TickDecisions Tick(double now_s);

  // By id. A dead member stays (its id is refused on report until it registers again).
  const std::map<NodeId, Member>& members() const { return members_; }
  const Member* FindMember(const NodeId& id) const;
  // Alive members (draining included). O(members).
  int NumAlive() const;
  int64_t version() const { return version_; }
  // Every member (dead ones included, as the live view lists them), in id order.
  ClusterView View() const;

  // ---- placement groups

  // AlreadyExists if a group `id` exists and is not removed (a removed one is replaced).
  // InvalidArgument if `id` is empty. Places it on the members now (see RetryPlacementGroup).
  StatusOr<PlacementDecisions> CreatePlacementGroup(const std::string& id,
                                                    PlacementStrategy strategy,
                                                    std::vector<ResourceRequest> bundles,
                                                    double now_s);
  // As CreatePlacementGroup, but the group is only recorded (Pending); the first placement is
  // the backend's RetryPlacementGroup call.
  Status AddPlacementGroup(const std::string& id, PlacementStrategy strategy,
                           std::vector<ResourceRequest> bundles);
  // A group that was Created before a restart of the head: recorded as Created with its bundles
  // on `placement` (TwoPhaseReservation::RestoreCreated); nothing is sent. Errors as
  // AddPlacementGroup and RestoreCreated. O(bundles).
  Status RestorePlacementGroup(const std::string& id, PlacementStrategy strategy,
                               std::vector<ResourceRequest> bundles,
                               const std::vector<NodeId>& placement, int attempts);
  // A retry timer fired (or the backend wants to try now): if the group is Pending or Failed,
  // PlaceBundles on the alive members: placed -> Prepares; not -> Failed + RetryAt (infeasible
  // noted; see infeasible_waits_for_node). Otherwise nothing. O(bundles * members * resources).
  PlacementDecisions RetryPlacementGroup(const std::string& id, double now_s);
  // The same, placing on `view` (a backend whose view of the cluster is its own, the simulator's
  // truth) instead of the members.
  PlacementDecisions RetryPlacementGroupOn(const std::string& id, const ClusterView& view,
                                           double now_s);
  // The backend learnt that `node` is gone (the simulator's crash; Tick does this for members
  // declared dead): every group gives up what it held there (TwoPhaseReservation::OnNodeDead).
  PlacementDecisions OnNodeDead(const NodeId& node, double now_s);
  // A node answered a Prepare or Commit (ok or not; "no node to ask" is a failed answer).
  // Answers to Cancels are not fed back. FailedPrecondition for a stale answer, NotFound for an
  // unknown group. O(bundles).
  StatusOr<PlacementDecisions> OnBundleReply(const TwoPhaseCommand& cmd, bool ok, double now_s);
  // NotFound if unknown. Idempotent. O(bundles).
  StatusOr<PlacementDecisions> RemovePlacementGroup(const std::string& id);
  // By id; removed groups stay.
  const std::map<std::string, PlacementGroupEntry>& groups() const { return groups_; }
  // Groups still to be placed (Pending or Failed) as the autoscaler's gang demands, by id.
  std::vector<autoscaler::GangDemand> UnplacedGangs() const;

  const HeadControllerOptions& options() const { return options_; }

 private:
  void MarkChanged(const NodeId& id);
  void ArmRetry(const std::string& id, PlacementDecisions& out);
  void NodeDied(const NodeId& id, double now_s, PlacementDecisions& out);
  PlacementDecisions Place(const std::string& id, const ClusterView& view, double now_s);

  HeadControllerOptions options_;
  std::map<NodeId, Member> members_;
  std::vector<NodeId> changed_;  // since the last broadcast, in order of first change
  std::set<NodeId> changed_set_;
  int64_t version_ = 0;
  std::optional<double> last_tick_s_;
  std::map<std::string, PlacementGroupEntry> groups_;
};

// ---------------------------------------------------------------------------------------------
// Autoscaler rounds

// A member of the cluster as an autoscaler round sees it: the node (its state, totals and free
// resources) and since when it has been idle (nullopt: busy).
struct RoundMember {
  const Node* node = nullptr;
  std::optional<double> idle_since_s;
};

// The planner's input, built the same way by both backends:
//   - every member not dead is capacity: its total and available; if the provider manages it, its
//     type and launch time, and terminating if the provider is terminating it; an unmanaged
//     draining member counts as terminating (not capacity); idle_since as given;
//   - every provider node that is not an alive member and not terminating is pending, with its
//     type's resources free;
//   - demands and gangs as given.
// Members come first (in the given order), then the pending provider nodes (in list order).
// REQUIRES: every provider node's type is a key of config.node_types. O(members + provider
// nodes) map look-ups.
autoscaler::AutoscalerInput BuildAutoscalerInput(
    const std::vector<RoundMember>& members,
    const std::vector<autoscaler::ProviderNode>& provider_nodes,
    const autoscaler::AutoscalerConfig& config, std::vector<autoscaler::ResourceDemand> demands,
    std::vector<autoscaler::GangDemand> gangs, double now_s);

// Whether a queued request is demand the autoscaler adds nodes for, in both backends: it waits
// for cluster resources (infeasible, or waiting for resources) and is not a placement-group task
// (a group's demand is its unplaced bundles, the gangs above; as in Ray). O(1).
bool IsAutoscalerDemand(WaitReason wait, bool in_placement_group);
// A shape that asks for a committed bundle's resources ("CPU_group_0_pg1", "bundle_group_pg1"):
// how live's head recognises a placement-group task in a node's pending report (Ray's autoscaler
// filters "_group_" names the same way). O(custom resources).
bool IsPlacementGroupShape(const ResourceSet& shape);

// What one round did.
struct AutoscalerRoundResult {
  Status status;  // the planner refused the input (nothing was done)
  autoscaler::AutoscalePlan plan;
  int64_t launched = 0;    // nodes the provider accepted to launch
  int64_t terminated = 0;  // nodes handed to the provider's Terminate
  // Human lines: launches, terminations and provider failures, in the order they happened.
  std::vector<std::string> log;
  // The last provider failure of the round (Status text); empty if none.
  std::string provider_error;
};

// Plans `input` and carries the plan out through `provider`: Launch per type (a failed launch is
// logged and the next type still launched), then one Terminate with every node to terminate, in
// plan order (a NotFound there is logged, the others are still terminated).
AutoscalerRoundResult RunAutoscalerRound(const autoscaler::AutoscalerPlanner& planner,
                                         const autoscaler::AutoscalerInput& input,
                                         autoscaler::NodeProvider& provider);

}  // namespace orrery::agent
