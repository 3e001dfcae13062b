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
//   Rejected                a grant_or_reject request that does not fit here now;
//   Canceled{reason}        refused for good (hard affinity to a dead/infeasible node, ...);
//   Queued{wait_reason}     kept here: waiting for resources, or infeasible (waits for the
//                           autoscaler; one warning per resource shape), or blocked on a
//                           dependency the backend reports (args, runtime env, placement group,
//                           node).
// A DEFAULT or SPREAD request is only ever spilled to a node where it is available (in this
// node's estimate), and that node may only grant or reject it. When the best node is a busy one
// (every candidate busy), the request stays queued here, waiting for resources, and is decided
// again when something frees up: no request bounces between busy nodes. Only node affinity sends
// a request to wait at a busy target.
// Queued requests are retried by SchedulePending(), in arrival order, whenever the backend thinks
// something changed (a lease returned, a report arrived, a dependency resolved).
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

class LeaseManager {
 public:
  // InvalidArgument if `local` is not in `view`; NotFound for an unknown policy.
  static StatusOr<std::unique_ptr<LeaseManager>> Create(NodeId local, ClusterView view,
                                                        const SchedulerOptions& options);

  // Handles a new lease request. O(policy). AlreadyExists-like duplicates are canceled.
  LeaseReply RequestLease(LeaseRequest req, Rng& rng);

  // Retries every queued, unblocked request in arrival order. Returns the replies of requests
  // that left the queue (granted, spilled, canceled); the rest stay queued with an updated
  // wait reason. O(queued * policy).
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

  // Queued requests in arrival order, with their wait reasons.
  std::vector<PendingLease> Pending() const;
  // kNone if the task is not queued here.
  WaitReason WaitReasonOf(const TaskId& task) const;
  // Granted leases currently held on this node.
  size_t NumGranted() const { return granted_.size(); }
  size_t NumQueued() const { return queue_.size(); }
  // Infeasible-shape warnings produced since the last call (one per shape, ever).
  std::vector<std::string> TakeWarnings();

  const ClusterView& view() const { return view_; }
  const NodeId& local() const { return local_; }
  int local_slot() const { return local_slot_; }

 private:
  struct Queued {
    LeaseRequest req;
    WaitReason wait_reason;
  };
  LeaseManager() = default;
  // Decides one request that may stay queued. Returns nullopt if it stays (wait reason updated).
  std::optional<LeaseReply> Decide(Queued& q, Rng& rng);
  void WarnInfeasible(const ResourceRequest& r);

  NodeId local_;
  int local_slot_ = -1;
  ClusterView view_;
  std::unique_ptr<Scheduler> scheduler_;
  std::list<Queued> queue_;
  std::unordered_map<TaskId, std::list<Queued>::iterator> queued_by_id_;  // lookup only
  std::unordered_map<TaskId, Allocation> granted_;                       // lookup only
  std::set<std::string> warned_shapes_;
  std::set<NodeId> estimated_;
  std::vector<std::string> warnings_;
};

}  // namespace orrery
