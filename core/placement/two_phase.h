// Two-phase reservation of a placement group's bundles (DESIGN section 3, "Placement groups").
//
// A placement (one node per bundle, from PlaceBundles) becomes real in two phases:
//   1. Prepare: every bundle's node reserves the bundle's resources (all requests go out at once).
//   2. Commit:  once *every* Prepare succeeded, every node makes its reservation permanent.
// If any Prepare fails, every bundle that was prepared is cancelled (its resources returned) and
// the attempt fails; the group is retried after a backoff [100 ms, x1.5 per failure, capped at
// 1 s]. Invariant: once an attempt has settled, a group holds either all of its bundles (Created)
// or none of them (Pending, Failed, Removed). Failed means "retry later"; whether a group could
// *ever* fit is PlaceBundles' Infeasible, decided before an attempt starts.
//
// TwoPhaseReservation is the state machine of one group. It does no I/O and reads no clock: it is
// fed events (replies, node deaths, removal; the current time as seconds on the caller's clock)
// and answers with commands (TwoPhaseCommand) that the backend carries out: the simulator on its
// ClusterView, the live head as RPCs to node daemons. ViewBundleHost is the node side played
// against a ClusterView; ReserveOnView drives one attempt through it synchronously (core tests,
// the simulator, `orrery explain`).
//
// Node-side contract, for backends implementing the commands:
//   Prepare(group, bundle, resources)  reserve all of `resources` or nothing; answer ok or not.
//   Commit(group, bundle)              make the prepared reservation permanent; answer not-ok if
//                                      nothing is prepared for that bundle.
//   Cancel(group, bundle)              return whatever the bundle holds there, prepared or
//                                      committed; a no-op if nothing; needs no answer.
// The machine keeps at most one Prepare or Commit in flight per bundle and sends Cancel for a
// bundle only when nothing is in flight for it, so commands for one bundle never overtake each
// other, even over a transport that reorders messages.
//
// Thread safety: none. One event loop owns a TwoPhaseReservation, a ViewBundleHost and its view.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery {

// ---------------------------------------------------------------------------------------------
// Retry backoff

struct RetryBackoffOptions {
  double initial_s = 0.1;   // the first delay
  double multiplier = 1.5;  // growth per consecutive failure
  double max_s = 1.0;       // cap on any delay
};

// Exponential backoff between attempts: initial_s, initial_s * multiplier, ... capped at max_s.
// The default sequence is 0.1, 0.15, 0.225, 0.3375, 0.50625, 0.759375, 1, 1, ...
// A value type (copyable); no clock: callers add the delay to their own "now".
class RetryBackoff {
 public:
  // REQUIRES: 0 <= initial_s <= max_s and multiplier >= 1.
  explicit RetryBackoff(RetryBackoffOptions options = {});

  // Returns the delay to wait before the next attempt and grows the following one. O(1).
  double NextDelay();
  // Starts over at initial_s (after a success). O(1).
  void Reset();
  // Delays handed out since construction or the last Reset().
  int failures() const { return failures_; }
  const RetryBackoffOptions& options() const { return options_; }

 private:
  RetryBackoffOptions options_;
  double next_s_;
  int failures_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Resource names of committed bundles

// Ray's names for the resources a committed bundle exposes on its node, so that a task can ask
// for "any bundle of the group" or "bundle i of the group":
//   WildcardBundleResourceName("CPU", "pg1")     == "CPU_group_pg1"
//   IndexedBundleResourceName("CPU", 0, "pg1")   == "CPU_group_0_pg1"
// REQUIRES: bundle_index >= 0. O(length).
std::string WildcardBundleResourceName(std::string_view resource, std::string_view group_id);
std::string IndexedBundleResourceName(std::string_view resource, int bundle_index,
                                      std::string_view group_id);

// A marker resource every committed bundle carries (under both names), so a task that requests no
// resources can still be pinned to a group or a bundle.
inline constexpr std::string_view kBundleMarkerResource = "bundle";
inline constexpr Quantity kBundleMarkerQuantity = Quantity::Whole(1000);

// What bundle `bundle_index` of `group_id` adds to its node once committed: for every resource of
// `bundle` both names above with the bundle's quantity, plus the marker under both names.
// Several bundles of one group on one node add up (ResourceSet +=): the wildcard entries sum,
// the indexed ones stay apart. The names are plain custom resources (not unit-instance): the
// device ids a bundle owns are in its Allocation, and tasks inside it use those.
// REQUIRES: bundle_index >= 0. O(resources in bundle).
ResourceSet CommittedBundleResources(const ResourceRequest& bundle, int bundle_index,
                                     std::string_view group_id);

// ---------------------------------------------------------------------------------------------
// The state machine

enum class ReservationState : uint8_t {
  kPending,     // nothing held, no attempt made yet
  kPreparing,   // an attempt's Prepares are in flight
  kCommitting,  // every bundle is prepared; Commits are in flight
  kCreated,     // every bundle is committed
  kFailed,      // the last attempt failed; nothing held; retry at retry_at_s()
  kRemoved,     // terminal: removed; replies still in flight are answered with Cancel
};
// "pending" | "preparing" | "committing" | "created" | "failed" | "removed" (the `state` label of
// the orrery_placement_groups metric).
const char* ReservationStateName(ReservationState s);

// One instruction for one bundle's node.
struct TwoPhaseCommand {
  enum class Kind : uint8_t { kPrepare, kCommit, kCancel };
  Kind kind = Kind::kPrepare;
  std::string group;  // the group id
  int bundle = 0;     // index into the group's bundles
  NodeId node;        // where the bundle is (to be) reserved
  // The bundle's resources: what Prepare reserves (carried by every kind for convenience).
  ResourceRequest resources;
  friend bool operator==(const TwoPhaseCommand&, const TwoPhaseCommand&) = default;
};
const char* TwoPhaseCommandKindName(TwoPhaseCommand::Kind k);  // "prepare" | "commit" | "cancel"

// The two-phase reservation of one placement group. Events in, commands out (see the file
// comment for the protocol). Every event handler returns the commands to carry out now; any
// order of sending them is safe, since no two of them concern the same bundle.
class TwoPhaseReservation {
 public:
  // A group named `group_id` whose bundles are `bundles` (commands refer to them by index).
  TwoPhaseReservation(std::string group_id, std::vector<ResourceRequest> bundles,
                      RetryBackoffOptions backoff = {});

  // Starts an attempt on `placement` (the node of each bundle, in bundle order): one Prepare per
  // bundle; state Preparing. A group without bundles becomes Created at once. When to retry after
  // a failure is the caller's choice (normally at retry_at_s(), with a fresh PlaceBundles).
  // FailedPrecondition unless the state is Pending or Failed; InvalidArgument unless
  // placement.size() == bundles().size() and no node id is empty. O(bundles).
  StatusOr<std::vector<TwoPhaseCommand>> Start(const std::vector<NodeId>& placement);

  // Bundle `bundle`'s node answered its Prepare. When the last Prepare of the attempt has been
  // answered: all ok -> one Commit per bundle (Committing); otherwise one Cancel per prepared
  // bundle and Failed with retry_at_s() = now_s + backoff. After Remove(), ok is met with Cancel.
  // InvalidArgument if `bundle` is out of range; FailedPrecondition if no Prepare of it is in
  // flight (a duplicate or stale answer, or one after OnNodeDead for its node). O(bundles).
  StatusOr<std::vector<TwoPhaseCommand>> OnPrepared(int bundle, bool ok, double now_s);

  // Bundle `bundle`'s node answered its Commit. A failed Commit is answered with a Cancel for that
  // bundle at once (the node may still hold the prepared resources). When the last Commit has
  // been answered: all ok -> Created (and the backoff is reset); otherwise one Cancel per
  // committed bundle and Failed. After Remove(), every answer is met with Cancel.
  // Errors as OnPrepared. O(bundles).
  StatusOr<std::vector<TwoPhaseCommand>> OnCommitted(int bundle, bool ok, double now_s);

  // `node` died. What the group held there is gone (no Cancel goes to a dead node) and Prepares or
  // Commits in flight to it count as failed answers. A Created group that loses a bundle gives
  // back all the others and becomes Failed, to be placed again as a whole (Ray instead
  // re-places only the lost bundles; all-or-nothing keeps the invariant above). O(bundles).
  std::vector<TwoPhaseCommand> OnNodeDead(const NodeId& node, double now_s);

  // A restarted backend (the live head after a crash, live/head/head_store.h) recreates a group
  // that was Created before: every bundle committed on the node `placement` names, no command to
  // send (the nodes still hold them). `attempts` as recorded. FailedPrecondition unless Pending;
  // InvalidArgument as Start. O(bundles).
  Status RestoreCreated(const std::vector<NodeId>& placement, int attempts);
  // PlaceBundles found no placement now (kFailed): Failed, retry_at_s() = now_s + backoff, with
  // `reason` as the reason. FailedPrecondition unless the state is Pending or Failed. O(1).
  Status OnPlacementFailed(double now_s, std::string reason);

  // The group is removed: Cancel for every bundle that holds resources and has nothing in
  // flight; a bundle with a Prepare or Commit in flight is cancelled when its answer arrives.
  // State Removed (terminal). Idempotent. O(bundles).
  std::vector<TwoPhaseCommand> Remove();

  ReservationState state() const { return state_; }
  const std::string& group_id() const { return group_id_; }
  const std::vector<ResourceRequest>& bundles() const { return bundles_; }
  // The node of each bundle in the current or last attempt; empty before the first Start.
  const std::vector<NodeId>& placement() const { return placement_; }
  // Failed only: when to try again, in the caller's seconds.
  double retry_at_s() const { return retry_at_s_; }
  // Failed only: why the last attempt failed, one sentence. Empty otherwise.
  const std::string& reason() const { return reason_; }
  // Number of attempts started.
  int attempts() const { return attempts_; }
  const RetryBackoff& backoff() const { return backoff_; }
  // True if no Prepare or Commit is in flight (always true outside Preparing and Committing,
  // except just after a Remove() that interrupted them).
  bool Settled() const;
  // Indices of the bundles that hold, or have a command in flight that may make them hold,
  // resources on `node`: what a node daemon reconciles against after a reconnect. O(bundles).
  std::vector<int> BundlesOn(const NodeId& node) const;

 private:
  Status CheckPlacement(const std::vector<NodeId>& placement) const;
  // Where each bundle stands in the current attempt.
  enum class Phase : uint8_t { kNone, kPreparing, kPrepared, kCommitting, kCommitted };

  StatusOr<std::vector<TwoPhaseCommand>> OnAnswer(int bundle, bool ok, double now_s,
                                                  Phase expected);
  TwoPhaseCommand Command(TwoPhaseCommand::Kind kind, int bundle) const;
  void NoteFailure(std::string reason);
  void SettleIfDone(double now_s, std::vector<TwoPhaseCommand>& out);
  void FailAttempt(double now_s, std::vector<TwoPhaseCommand>& out);

  std::string group_id_;
  std::vector<ResourceRequest> bundles_;
  RetryBackoff backoff_;
  ReservationState state_ = ReservationState::kPending;
  std::vector<NodeId> placement_;
  std::vector<Phase> phase_;
  bool attempt_failed_ = false;
  double retry_at_s_ = 0.0;
  std::string reason_;
  int attempts_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Playing the node side against a ClusterView

// Carries out TwoPhaseCommands for every node of a ClusterView, synchronously: Prepare allocates
// the bundle on its node (ClusterView::Allocate, so GPU device ids are chosen there), Commit marks
// the reservation permanent, Cancel gives it back (ClusterView::Release). The Allocation of every
// held bundle is kept here, keyed by (group, bundle). The view's totals are not changed on
// commit: exposing CommittedBundleResources to tasks is up to the backend.
class ViewBundleHost {
 public:
  // REQUIRES: `view` outlives the host. Destroying the host gives nothing back.
  explicit ViewBundleHost(ClusterView& view) : view_(view) {}

  // Carries out `cmd` and returns the node's answer. Prepare: true if the node is in the view,
  // schedulable and has the bundle available (it is then taken), or if the bundle is already
  // held on that node (an idempotent repeat). Commit: true if the bundle is held on that node.
  // Cancel: releases the bundle if held (on whatever node) and returns true.
  // O(resources + devices + log held).
  bool Apply(const TwoPhaseCommand& cmd);

  // The allocation held for (group, bundle), prepared or committed; nullptr if none. The pointer
  // is valid until the next Apply.
  const Allocation* Find(const std::string& group, int bundle) const;
  bool IsCommitted(const std::string& group, int bundle) const;
  // Number of bundles holding resources, over all groups.
  int held() const { return static_cast<int>(held_.size()); }

 private:
  struct Held {
    NodeId node;
    Allocation allocation;
    bool committed = false;
  };
  ClusterView& view_;
  std::map<std::pair<std::string, int>, Held> held_;
};

// The outcome of one synchronous attempt on a view.
struct ViewReservation {
  bool reserved = false;
  // reserved: one Allocation per bundle, in bundle order (device ids inside).
  std::vector<Allocation> allocations;
  // !reserved: when to retry (now_s + backoff) and why.
  double retry_at_s = 0.0;
  std::string reason;
};

// Drives one attempt of `group` on `placement` to its end through `host`: every Prepare is carried
// out before any answer is fed back (as if all were sent at once), then the resulting Commits or
// Cancels. Afterwards `group` is Created (reserved) or Failed (nothing held). If Start refuses
// (see TwoPhaseReservation::Start), reserved is false and reason carries the Status message.
// O(bundles * (resources + devices + log held)).
ViewReservation ReserveOnView(ViewBundleHost& host, TwoPhaseReservation& group,
                              const std::vector<NodeId>& placement, double now_s);

// One-shot convenience for a placement in slots (PlaceBundles().slots): a fresh, unnamed group
// with the default backoff (so a failure retries at now_s + 0.1). On success the allocations
// belong to the caller; ReleaseOnView gives them back. On failure nothing is held.
// REQUIRES: placement.size() == bundles.size() (else reserved is false).
ViewReservation ReserveOnView(ClusterView& view, const std::vector<ResourceRequest>& bundles,
                              const std::vector<int>& placement, double now_s = 0.0);

// Gives back what a successful one-shot ReserveOnView took.
// REQUIRES: the same placement and the allocations it returned; the slots are still valid.
void ReleaseOnView(ClusterView& view, const std::vector<int>& placement,
                   const std::vector<Allocation>& allocations);

// Removes `group` and carries out the resulting Cancels on `host`: everything the group held on
// the view is returned. O(bundles * resources).
void RemoveOnView(ViewBundleHost& host, TwoPhaseReservation& group);

// The node id of each slot (empty for a slot not in the view). O(slots).
std::vector<NodeId> NodeIdsOf(const ClusterView& view, const std::vector<int>& slots);

}  // namespace orrery
