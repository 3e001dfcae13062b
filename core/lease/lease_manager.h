// The lease state machine of one node (Ray's raylet "cluster lease manager"), backend-agnostic.
//
// A node decides from its *own* copy of the cluster view. The backend refreshes remote nodes in
// that copy every resource-report period (ApplyReport); in between, the copy is stale. After
// spilling a request to a remote node, the manager subtracts the request from its local estimate
// of that node until the next report, so a burst does not all spill to the same node.
//
// Outcomes of a request (DESIGN section 2):
//   Granted{node, devices}  the local node runs it now (resources taken from the local node);
//   Spillback{node}         the caller retries at that node, marking the retry grant_or_reject;
//   Rejected                a grant_or_reject request that does not fit here now while
//                           another node has room for it (in this node's view);
//   Canceled{reason}        refused for good (hard affinity to a dead/infeasible node, ...);
//   Queued{wait_reason}     kept here: waiting for resources, or infeasible (waits for the
//                           autoscaler; one warning per resource shape), or blocked on a
//                           dependency the backend reports (args, runtime env, placement group,
//                           node).
// A DEFAULT or SPREAD request is spilled to a node where it is available (in this node's
// estimate), and that node grants it or, when it no longer fits, rejects it. When every candidate
// is busy (Ray's GetBestSchedulableNode, SchedulerOptions::wait_at_best_node):
//   - if the policy's best node is this one, the request waits here;
//   - if it is another node and this is the request's first decision here, it is spilled there
//     (grant_or_reject, no estimate taken) to wait there: a GPU request whose driver's node has
//     no GPU waits at the GPU node, where a freed GPU is granted at once, not a report later;
//   - a spilled request that finds its target busy waits at the target when no other node has
//     room in the target's view (it is rejected when one has);
//   - a request that waits somewhere only leaves it for a node with room, so none bounces between
//     busy nodes.
// With wait_at_best_node false a request always waits at the node that decided. Node affinity
// sends a request to wait at its busy target either way.
// Queued requests are retried by SchedulePending() (below) when the backend thinks something
// changed (a lease returned, a report arrived, a dependency resolved).
//
// Scheduling classes (Ray's ClusterLeaseManager). Queued requests are kept FIFO per *scheduling
// class*: requests that the scheduler would treat identically, so that deciding one of them
// answers for all of them. The class key is everything Scheduler::Schedule reads from a request:
//   - the resource shape (ResourceRequest, compared by value);
//   - the strategy, in full: type, affinity target node, soft, spill_on_unavailable,
//     fail_on_unavailable (two affinity targets are two classes);
//   - the explicit preferred node, and the data-locality node ChooseLocalityNode(args) (the
//     preferred node the hybrid policy uses when the explicit one is absent or unknown); the
//     arguments themselves matter only through that node;
//   - zero-resource actor (actor_creation with an empty shape: the random policy decides),
//     force_spillback and require_available.
// The first request of a class is kept as the class's representative and is what the policy is
// asked about; the other members store only their id and spillback count.
// A request's `function` is part of its class too (Ray's scheduling class includes the function
// descriptor): two functions of the same shape queue apart.
// A pass visits the classes in order of class id (ids are handed out in order of first
// appearance and never reused, as Ray's scheduling-class ids), and within a class decides the
// requests FIFO until one cannot leave the queue: waiting for resources (every candidate busy, or
// the local node chosen but busy), infeasible, or unschedulable under require_available. Then the
// rest of that class is skipped for this pass and carries the head's wait reason. A request that
// is canceled (hard affinity to a dead node) leaves, and the next one of its class is decided.
// Fair granting (SchedulerOptions::fair_granting, Ray's local lease manager): while the CPU
// asked for by the queued requests of feasible CPU classes (members x CPU each) exceeds the node's
// total CPUs, a CPU class that holds more leases granted here than fair_share = (leases granted
// here to CPU classes) / (CPU classes queued here), integer division, is skipped by the pass
// (neither granted here nor spilled), so freed CPUs, here or at other nodes, go to classes below
// their share and a busy class cannot starve rare ones: its backlog waits. A new request of a class
// over its share may still spill to an available node but does not take a local grant. Leases
// granted to a request count for its class until returned (grant_or_reject grants included; adopted
// leases have no class). A pass is only run when something that could let a queued request leave
// changed since the last one (a lease returned, a report, resources or membership changed, a
// request unblocked); otherwise SchedulePending() returns at once. Blocked requests (args, runtime
// env, placement group, node) are not in any class queue; Unblock() appends them to the back of
// their class. A new request whose class already has queued requests joins the back of the class:
// the class's head was decided against the same view and stayed. With wait_at_best_node the policy
// is asked once more for it first (a random or round-robin pick may name another, busy node to wait
// at); without, no policy call. Cost of a pass: O(classes * policy + dispatched * policy); memory
// per queued request about 140 bytes (its id, an index entry and a list node), independent of the
// shape and strategy.
//
// Thread safety: none; the backend's event loop owns a LeaseManager.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cluster_view.h"
#include "core/rng.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery {

using TaskId = std::string;

enum class WaitReason : uint8_t {
  kNone,
  kInfeasible,
  kWaitingForResources,
  kWaitingForRuntimeEnv,
  kWaitingForArgs,
  kWaitingForPlacementGroup,
  kWaitingForNode,
};
// "infeasible", "waiting_for_resources", ... ("" for kNone).
const char* WaitReasonName(WaitReason r);

struct LeaseRequest {
  TaskId task_id;
  SchedulingRequest sched;
  // Set on a request that was spilled here: grant it now or reject it, never queue or re-spill.
  bool grant_or_reject = false;
  // How many times this request was spilled before reaching this node (kept in replies).
  int spillbacks = 0;
  // The task's function (Ray: part of the scheduling class): requests of different functions
  // queue in different classes and fair granting counts leases per class. "" = by shape only.
  std::string function;
  // A dependency the backend has not resolved yet; the request is queued with this reason and
  // not scheduled until Unblock(). kNone = ready.
  WaitReason blocked_on = WaitReason::kNone;
};

struct LeaseReply {
  enum class Kind : uint8_t { kGranted, kSpillback, kRejected, kCanceled, kQueued };
  Kind kind = Kind::kQueued;
  TaskId task_id;
  NodeId node;            // kGranted: local node; kSpillback: target
  Allocation allocation;  // kGranted
  WaitReason wait_reason = WaitReason::kNone;  // kQueued
  int spillbacks = 0;     // kSpillback: count including this hop
  // kSpillback: the target had it available in our estimate, so the retry there must be
  // grant_or_reject. False when the task is sent to wait at a busy target (node affinity).
  bool grant_or_reject = true;
  std::string reason;
};
const char* LeaseReplyKindName(LeaseReply::Kind k);  // "granted", "spillback", ...

struct PendingLease {
  TaskId task_id;
  WaitReason wait_reason;
};

// The wait_at_best_node rule for a grant_or_reject request of `r` that does not fit at `slot`
// now: it waits there if that node is schedulable and could ever hold `r`, and no other node has
// `r` available in `view` (else it is rejected). O(nodes).
bool SpilledRequestWaits(const ClusterView& view, int slot, const ResourceRequest& r);

class LeaseManager {
 public:
  // InvalidArgument if `local` is not in `view`; NotFound for an unknown policy.
  static StatusOr<std::unique_ptr<LeaseManager>> Create(NodeId local, ClusterView view,
                                                        const SchedulerOptions& options);

  // Handles a new lease request. O(policy) (plus O(log classes) when its class already has
  // queued requests and it joins the back; without wait_at_best_node that case makes no policy
  // call). A grant_or_reject request that does not fit adds O(nodes) (SpilledRequestWaits).
  // Duplicates are rejected.
  LeaseReply RequestLease(LeaseRequest req, Rng& rng);

  // One scheduling pass over the queued, unblocked requests, class by class (see the top of
  // this file). Returns the replies of requests that left the queue (granted, spilled,
  // canceled), in decision order; the rest stay queued with an updated wait reason. Returns
  // nothing, without calling the policy, if nothing changed since the last pass.
  // O(classes * policy + dispatched * policy).
  std::vector<LeaseReply> SchedulePending(Rng& rng);

  // The task holding a granted lease finished: its resources return to the local node.
  // NotFound if no such lease.
  Status ReturnLease(const TaskId& task);
  // Registers resources already taken from the local node outside this manager (e.g. granted
  // before the manager existed) as a lease, so ReturnLease(task) gives them back.
  // AlreadyExists if `task` holds a lease or is queued.
  Status AdoptLease(const TaskId& task, Allocation allocation);
  // Removes a queued request. Returns the Canceled reply, or nullopt if it was not queued here.
  std::optional<LeaseReply> CancelLease(const TaskId& task, const std::string& reason);
  // Marks a queued request blocked on / released from a dependency. NotFound if not queued.
  Status Block(const TaskId& task, WaitReason reason);
  Status Unblock(const TaskId& task);

  // A resource report of a remote node arrived: its availability (and state) replace the local
  // estimate. Reports about the local node are ignored (it knows itself). NotFound if unknown.
  Status ApplyReport(const NodeId& node, const ResourceSet& available, NodeState state,
                     const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices =
                         {});
  // Nodes whose availability this manager has *estimated* (charged a spillback to) since the
  // last call, by id order. A backend refreshes these at the next report even if the node itself
  // reported no change, so an estimate never outlives one report period.
  std::vector<NodeId> TakeEstimatedNodes();
  // A remote node's totals changed (placement-group bundles committed or cancelled there): its
  // resources (totals, availability, devices) are replaced by `resources`. Ignored for the local
  // node; NotFound if unknown. O(1) plus the view's observers.
  Status ReplaceNodeResources(const NodeId& node, NodeResources resources);
  // Membership changes seen by this node.
  Status AddNode(Node node);
  Status SetNodeState(const NodeId& node, NodeState state);

  // Queued requests (blocked ones included) in arrival order, with their wait reasons.
  // O(queued log queued): for explain and dashboards, not for hot paths.
  std::vector<PendingLease> Pending() const;
  // Queued requests whose wait reason changed since the last call (a pass moved their class to
  // another reason, Block, Unblock), in the order of the changes; a request may appear more
  // than once (the last entry wins). Lets a backend keep per-task records current without
  // walking the whole queue after every pass. O(changes). Recorded only after
  // TrackWaitReasonChanges() (a backend that never takes them pays nothing).
  std::vector<PendingLease> TakeWaitReasonChanges();
  void TrackWaitReasonChanges() { track_wait_changes_ = true; }
  // kNone if the task is not queued here.
  WaitReason WaitReasonOf(const TaskId& task) const;
  // Granted leases currently held on this node.
  size_t NumGranted() const { return granted_.size(); }
  // The granted leases and what each holds (unordered: for re-adoption, not for decisions).
  const std::unordered_map<TaskId, Allocation>& granted() const { return granted_; }
  size_t NumQueued() const { return queued_by_id_.size(); }
  // Scheduling classes that have queued, unblocked requests now.
  size_t NumClasses() const { return classes_.size(); }

  // What the passes cost so far (for tests and benchmarks): passes run (not skipped),
  // and policy calls made by passes (RequestLease's own call is not counted).
  struct Counters {
    uint64_t passes = 0;
    uint64_t skipped_passes = 0;
    uint64_t pass_decisions = 0;
  };
  const Counters& counters() const { return counters_; }
  // Infeasible-shape warnings produced since the last call (one per shape, ever).
  std::vector<std::string> TakeWarnings();

  const ClusterView& view() const { return view_; }
  const NodeId& local() const { return local_; }
  int local_slot() const { return local_slot_; }

 private:
  // One queued request. Lives in queued_by_id_ (node-based: its address is stable); a
  // dispatchable one is also linked into its class's FIFO through `pos`.
  struct Waiting {
    const TaskId* id = nullptr;  // its key in queued_by_id_
    uint64_t seq = 0;            // arrival order here (for Pending())
    int32_t spillbacks = 0;
    int32_t cls = -1;  // class id; -1 while blocked
    WaitReason blocked_on = WaitReason::kNone;
    std::list<Waiting*>::iterator pos;  // valid when cls >= 0
  };
  struct ClassQueue {
    SchedulingRequest sched;  // the representative request (the first member's)
    WaitReason wait_reason = WaitReason::kWaitingForResources;  // of every member
    std::list<Waiting*> fifo;
  };
  using QueuedMap = std::unordered_map<TaskId, Waiting>;

  LeaseManager() = default;
  // Decides `sched` for the request `id`. Returns the reply if it leaves the queue; otherwise
  // nullopt and *wait is set to why it stays.
  // A local grant is counted for class `cls` (-1: none); with `may_grant` false a local grant
  // waits instead (fair granting), a spillback still leaves.
  // kFirst: the request is new here (neither queued, nor spilled here to wait): with
  // wait_at_best_node it may go to wait at a busy best node. kJoining: the same, for a new
  // request whose class already waits here: it leaves only to wait elsewhere, else stays
  // (*wait untouched). kQueued: a queued request, leaving only for a node with room.
  enum class DecideMode : uint8_t { kQueued, kFirst, kJoining };
  std::optional<LeaseReply> Decide(const TaskId& id, int spillbacks, const SchedulingRequest& sched,
                                   int32_t cls, bool may_grant, DecideMode mode, WaitReason* wait,
                                   Rng& rng);
  // The class id of `sched` + `function` (assigned on first sight, never reused).
  int32_t ClassOf(const SchedulingRequest& sched, const std::string& function);
  // Records / releases a lease granted here to class `cls`.
  void CountGrant(const TaskId& id, int32_t cls);
  // Fair granting: whether class `cls` is over its share now (see the top of this file).
  bool OverFairShare(int32_t cls) const;
  // Links a queued, unblocked request to the back of class `cls` (created with `sched` as its
  // representative if it has no queued members).
  void Enqueue(QueuedMap::iterator it, int32_t cls, const SchedulingRequest& sched,
               WaitReason wait);
  // Takes a dispatchable request out of its class's FIFO (erasing the class if it empties).
  void Unlink(Waiting& w);
  // Forgets a queued request, blocked or not.
  void Forget(QueuedMap::iterator it);
  void WarnInfeasible(const ResourceRequest& r);

  NodeId local_;
  int local_slot_ = -1;
  ClusterView view_;
  std::unique_ptr<Scheduler> scheduler_;
  QueuedMap queued_by_id_;                            // every queued request
  std::unordered_map<TaskId, LeaseRequest> blocked_;  // blocked ones' full requests
  std::map<std::string, int32_t> class_ids_;          // class key -> id, never erased
  std::map<int32_t, ClassQueue> classes_;             // classes with queued requests
  uint64_t next_seq_ = 0;
  bool dirty_ = false;  // something changed that a pass should look at
  Counters counters_;
  std::unordered_map<TaskId, Allocation> granted_;  // lookup only
  // Fair granting: the class of each lease granted here (classed grants only), the number per
  // class, and how many of them are of CPU classes.
  std::unordered_map<TaskId, int32_t> granted_class_;
  std::unordered_map<int32_t, int32_t> granted_per_class_;
  std::unordered_map<int32_t, bool> class_uses_cpu_;  // by class id, filled on first sight
  int64_t cpu_class_grants_ = 0;
  bool fair_granting_ = true;
  bool wait_at_best_node_ = true;
  std::set<std::string> warned_shapes_;
  std::set<NodeId> estimated_;
  std::vector<std::string> warnings_;
  std::vector<PendingLease> wait_changes_;  // since the last TakeWaitReasonChanges()
  bool track_wait_changes_ = false;
};

}  // namespace orrery
