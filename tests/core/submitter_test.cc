// The owner-side submitter: lease reuse per class, the pending-request limit, idle return,
// the spillback and rejection rules, and reuse off (one lease per task).
#include "core/agent/submitter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace orrery::agent {
namespace {

using Kind = SubmitDecision::Kind;
using Decisions = std::vector<SubmitDecision>;

std::vector<SubmitDecision> OfKind(const Decisions& ds, Kind k) {
  std::vector<SubmitDecision> r;
  for (const auto& d : ds) {
    if (d.kind == k) r.push_back(d);
  }
  return r;
}

SubmitterOptions Reuse(int pending, double idle_timeout = 0.0) {
  SubmitterOptions o;
  o.reuse_leases = true;
  o.max_pending_lease_requests_per_class = pending;
  o.idle_lease_timeout_s = idle_timeout;
  return o;
}

TEST(Submitter, GrantedLeaseRunsTheNextTaskOfItsClassWithoutANewRequest) {
  Submitter s(Reuse(1));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  s.Submit(3, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);  // one request: the pending limit is 1
  ASSERT_EQ(out[0].kind, Kind::kRequestLease);
  EXPECT_EQ(out[0].node, kEntryNode);
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 7, 1.0, &out);
  // Task 1 on the lease, and one more request for the two waiting.
  ASSERT_EQ(OfKind(out, Kind::kPushTask).size(), 1u);
  EXPECT_EQ(OfKind(out, Kind::kPushTask)[0].task, 1u);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 1u);
  out.clear();
  s.OnTaskFinished(l, 2.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kPushTask);
  EXPECT_EQ(out[0].lease, l);
  EXPECT_EQ(out[0].task, 2u);
  out.clear();
  s.OnTaskFinished(l, 3.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task, 3u);
  out.clear();
  // Nothing waits: idle timeout 0 gives the lease back at once.
  s.OnTaskFinished(l, 4.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(out[0].lease, l);
  EXPECT_EQ(s.GrantedLeases(0), 0);
}

TEST(Submitter, LeasesAreNotSharedBetweenClasses) {
  Submitter s(Reuse(4));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle l0 = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l0, 1, 0.0, &out);
  out.clear();
  s.Submit(2, 1, 0.0, &out);  // another class: a request of its own, even with l0 busy
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
  EXPECT_EQ(out[0].cls, 1u);
  out.clear();
  s.OnTaskFinished(l0, 1.0, &out);  // class 0 has nothing queued; task 2 does not go there
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
}

TEST(Submitter, PendingRequestsStayWithinTheLimitAndTheQueueLength) {
  Submitter s(Reuse(3));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 2u);  // no more requests than tasks
  for (TaskHandle t = 3; t <= 10; ++t) s.Submit(t, 0, 0.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 3u);
  EXPECT_EQ(s.PendingRequests(0), 3);
  EXPECT_EQ(s.Queued(0), 10u);
  // A grant frees a request slot: one more request goes out.
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 1.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kPushTask).size(), 1u);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 1u);
  EXPECT_EQ(s.PendingRequests(0), 3);
}

TEST(Submitter, PerClassPendingCapOverridesTheSubmitters) {
  Submitter s(Reuse(10));
  s.SetClassOptions(5, ClassOptions{0, 1});  // an actor: one request at a time
  Decisions out;
  for (TaskHandle t = 1; t <= 4; ++t) s.Submit(t, 5, 0.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 1u);
}

TEST(Submitter, MaxLeasesPerClassCountsGrantedAndRequested) {
  SubmitterOptions o = Reuse(10);
  o.max_leases_per_class = 2;
  Submitter s(o);
  Decisions out;
  for (TaskHandle t = 1; t <= 5; ++t) s.Submit(t, 0, 0.0, &out);
  ASSERT_EQ(OfKind(out, Kind::kRequestLease).size(), 2u);
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 0u);
}

TEST(Submitter, IdleLeaseIsReusedByALaterTaskAndReturnedAfterTheTimeout) {
  Submitter s(Reuse(1, /*idle_timeout=*/5.0));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  out.clear();
  s.OnTaskFinished(l, 1.0, &out);
  EXPECT_TRUE(out.empty());  // kept idle
  EXPECT_EQ(s.IdleLeases(0), 1);
  EXPECT_DOUBLE_EQ(s.NextIdleDeadline(), 6.0);
  s.Submit(2, 0, 2.0, &out);  // straight onto the idle lease: no request
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kPushTask);
  EXPECT_EQ(out[0].lease, l);
  out.clear();
  s.OnTaskFinished(l, 3.0, &out);
  s.Tick(7.9, &out);
  EXPECT_TRUE(out.empty());  // idle since 3.0: not yet
  s.Tick(8.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(s.GrantedLeases(0), 0);
  EXPECT_TRUE(std::isinf(s.NextIdleDeadline()));
}

TEST(Submitter, GrantWithNothingQueuedIsReturned) {
  Submitter s(Reuse(2));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 2u);
  const LeaseHandle a = out[0].lease, b = out[1].lease;
  out.clear();
  s.OnLeaseGranted(a, 0, 0.0, &out);  // takes task 1
  s.OnTaskFinished(a, 0.5, &out);     // takes task 2
  out.clear();
  s.OnLeaseGranted(b, 0, 1.0, &out);  // nothing left for it
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(out[0].lease, b);
}

TEST(Submitter, SpillbacksAreFollowedUpToTheLimitInARow) {
  SubmitterOptions o = Reuse(1);
  o.max_spillbacks_in_a_row = 2;
  Submitter s(o);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseSpilled(l, 4, true, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
  EXPECT_EQ(out[0].node, 4);
  EXPECT_TRUE(out[0].grant_or_reject);
  EXPECT_EQ(out[0].spillbacks, 1);
  out.clear();
  s.OnLeaseSpilled(l, 5, true, 0.0, &out);
  EXPECT_EQ(out.at(0).node, 5);
  out.clear();
  // A rejection restarts the chain at the entry node.
  s.OnLeaseRejected(l, 1.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].node, kEntryNode);
  EXPECT_FALSE(out[0].grant_or_reject);
  out.clear();
  s.OnLeaseSpilled(l, 4, true, 1.0, &out);
  s.OnLeaseSpilled(l, 5, true, 1.0, &out);
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 2u);
  out.clear();
  s.OnLeaseSpilled(l, 6, true, 1.0, &out);  // the third in a row: the class's tasks fail
  ASSERT_EQ(OfKind(out, Kind::kFailTask).size(), 2u);
  EXPECT_NE(out[0].reason.find("spillbacks"), std::string::npos);
  EXPECT_EQ(s.PendingRequests(0), 0);
  EXPECT_EQ(s.Queued(0), 0u);
}

TEST(Submitter, RejectionsBackOffAndFailPastTheLimit) {
  SubmitterOptions o = Reuse(1);
  o.max_rejections = 3;
  o.rejection_backoff = {0.01, 2.0, 0.025};
  Submitter s(o);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  std::vector<double> waits;
  for (int i = 0; i < 3; ++i) {
    out.clear();
    s.OnLeaseRejected(l, 10.0, &out);
    ASSERT_EQ(out.size(), 1u);
    waits.push_back(out[0].not_before - 10.0);
  }
  EXPECT_NEAR(waits[0], 0.01, 1e-12);
  EXPECT_NEAR(waits[1], 0.02, 1e-12);
  EXPECT_NEAR(waits[2], 0.025, 1e-12);  // capped
  out.clear();
  s.OnLeaseRejected(l, 10.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kFailTask);
  EXPECT_EQ(out[0].task, 1u);
}

TEST(Submitter, ARequestNoLongerNeededIsDroppedInsteadOfFollowed) {
  Submitter s(Reuse(2));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle a = out.at(0).lease, b = out.at(1).lease;
  out.clear();
  s.OnLeaseGranted(a, 0, 0.0, &out);
  s.OnTaskFinished(a, 0.1, &out);  // task 2 runs on `a` too
  EXPECT_FALSE(s.StillNeeded(b));
  out.clear();
  s.OnLeaseSpilled(b, 3, true, 0.2, &out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(s.PendingRequests(0), 0);
}

TEST(Submitter, ReuseOffRequestsOneLeasePerTaskAndReturnsItAfterTheTask) {
  SubmitterOptions o;
  o.reuse_leases = false;
  o.max_pending_lease_requests_per_class = 0;  // unlimited
  Submitter s(o);
  Decisions out;
  for (TaskHandle t = 1; t <= 3; ++t) s.Submit(t, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].kind, Kind::kRequestLease);
    EXPECT_EQ(out[i].task, i + 1);  // bound to its task
  }
  const LeaseHandle l1 = out[0].lease, l3 = out[2].lease;
  out.clear();
  s.OnLeaseGranted(l3, 0, 1.0, &out);  // grants come in any order; each runs its own task
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task, 3u);
  out.clear();
  s.OnTaskFinished(l3, 2.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  out.clear();
  s.OnLeaseRejected(l1, 2.0, &out);  // a rejected bound request fails only its own task
  s.OnLeaseRequestFailed(l1, "canceled: infeasible", 2.0, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].kind, Kind::kFailTask);
  EXPECT_EQ(out[1].task, 1u);
  EXPECT_EQ(out[1].reason, "canceled: infeasible");
  EXPECT_EQ(s.PendingRequests(0), 1);  // task 2's
}

TEST(Submitter, LateRepliesForAForgottenLeaseAreIgnored) {
  SubmitterOptions o;
  o.reuse_leases = false;
  Submitter s(o);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle old = out.at(0).lease;
  s.CancelLease(old);
  out.clear();
  s.Submit(2, 0, 0.0, &out);  // recycles the slot under a new generation
  const LeaseHandle fresh = out.at(0).lease;
  EXPECT_NE(old, fresh);
  out.clear();
  s.OnLeaseGranted(old, 0, 1.0, &out);
  EXPECT_TRUE(out.empty());
  s.OnLeaseGranted(fresh, 0, 1.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task, 2u);
}

TEST(Submitter, TasksPerLeaseCapReturnsTheLeaseAfterItsTask) {
  SubmitterOptions o = Reuse(1);
  o.max_leases_per_class = 1;
  Submitter s(o);
  s.SetClassOptions(0, ClassOptions{1, 0});  // GPU class: one task per lease
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);  // task 1; no second lease (one per class)
  out.clear();
  s.OnTaskFinished(l, 1.0, &out);  // not fed task 2: back, and a new lease for task 2
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(out[1].kind, Kind::kRequestLease);
  EXPECT_EQ(out[1].task, 2u);
}

TEST(Submitter, LostLeaseLeadsToANewRequestWhileTasksWait) {
  SubmitterOptions o = Reuse(4);
  o.max_leases_per_class = 1;
  Submitter s(o);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  out.clear();
  s.Submit(2, 0, 0.0, &out);
  EXPECT_TRUE(out.empty());  // the class holds its one lease
  s.OnLeaseLost(l, 1.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
  EXPECT_EQ(out[0].task, 2u);
  EXPECT_EQ(s.GrantedLeases(0), 0);
}

TEST(LeaseRequestsToSend, StaysBelowEachCap) {
  struct Case {
    size_t queued;
    int pending, granted, pending_cap, lease_cap, want;
  };
  const Case cases[] = {
      {10, 0, 0, 3, 0, 3},   // the pending cap
      {2, 0, 0, 3, 0, 2},    // no more requests than queued tasks
      {10, 2, 0, 3, 0, 1},   // requests in flight count
      {10, 0, 4, 10, 5, 1},  // granted leases count against the lease cap
      {10, 3, 0, 2, 0, 0},   // over a cap: none (never negative)
      {5, 0, 0, 0, 0, 5},    // no caps: one per queued task
      {0, 0, 0, 3, 0, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(LeaseRequestsToSend(c.queued, c.pending, c.granted, c.pending_cap, c.lease_cap),
              c.want)
        << c.queued << " " << c.pending << " " << c.granted;
  }
}

// --- pipelining (max_tasks_in_flight_per_lease > 1) and the per-class options of the C++ API.

SubmitterOptions Pipelined(int depth, int pending, int max_leases, double idle_timeout = 0.0) {
  SubmitterOptions o = Reuse(pending, idle_timeout);
  o.max_tasks_in_flight_per_lease = depth;
  o.max_leases_per_class = max_leases;
  return o;
}

std::vector<TaskHandle> PushedTasks(const Decisions& ds, LeaseHandle lease) {
  std::vector<TaskHandle> r;
  for (const auto& d : ds) {
    if (d.kind == Kind::kPushTask && d.lease == lease) r.push_back(d.task);
  }
  return r;
}

TEST(SubmitterPipelining, AtTheLeaseCapAGrantedLeaseTakesUpToDepthTasks) {
  Submitter s(Pipelined(/*depth=*/2, /*pending=*/1, /*max_leases=*/1));
  Decisions out;
  for (TaskHandle t = 1; t <= 5; ++t) s.Submit(t, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 1.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{1, 2}));  // depth 2, in order
  EXPECT_EQ(OfKind(out, Kind::kRequestLease).size(), 0u);           // the cap: one lease
  EXPECT_EQ(s.InFlight(l), 2);
  EXPECT_EQ(s.Queued(0), 3u);
  out.clear();
  s.OnTaskFinished(l, 2.0, &out);  // one slot frees: exactly one more
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{3}));
  EXPECT_EQ(s.InFlight(l), 2);
  out.clear();
  s.OnTaskFinished(l, 3.0, &out);
  s.OnTaskFinished(l, 3.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{4, 5}));
  out.clear();
  s.OnTaskFinished(l, 4.0, &out);
  EXPECT_TRUE(out.empty());  // task 5 still runs on it: no return yet
  s.OnTaskFinished(l, 4.0, &out);
  ASSERT_EQ(out.size(), 1u);  // nothing runs or waits: back (idle timeout 0)
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(s.GrantedLeases(0), 0);
}

TEST(SubmitterPipelining, BelowTheLeaseCapABusyLeaseTakesMoreOnlyUnderABacklog) {
  Submitter s(Pipelined(/*depth=*/2, /*pending=*/1, /*max_leases=*/0));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{1}));
  out.clear();
  // One task waiting, one lease: 1 < depth x granted = 2, so it waits for a new lease.
  s.Submit(2, 0, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
  out.clear();
  // Two waiting: a backlog, the busy lease takes the front one.
  s.Submit(3, 0, 0.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{2}));
  EXPECT_EQ(s.InFlight(l), 2);
  EXPECT_EQ(s.Queued(0), 1u);
}

TEST(SubmitterPipelining, BusyLeasesWithRoomAreServedRoundRobin) {
  Submitter s(Pipelined(/*depth=*/3, /*pending=*/2, /*max_leases=*/2));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  ASSERT_EQ(OfKind(out, Kind::kRequestLease).size(), 2u);
  const LeaseHandle a = out[0].lease, b = out[1].lease;
  out.clear();
  s.OnLeaseGranted(a, 0, 0.0, &out);
  s.OnLeaseGranted(b, 0, 0.0, &out);
  EXPECT_EQ(PushedTasks(out, a), (std::vector<TaskHandle>{1}));
  EXPECT_EQ(PushedTasks(out, b), (std::vector<TaskHandle>{2}));
  out.clear();
  for (TaskHandle t = 3; t <= 6; ++t) s.Submit(t, 0, 0.0, &out);  // at the cap: alternate
  EXPECT_EQ(PushedTasks(out, a), (std::vector<TaskHandle>{3, 5}));
  EXPECT_EQ(PushedTasks(out, b), (std::vector<TaskHandle>{4, 6}));
  out.clear();
  s.Submit(7, 0, 0.0, &out);  // both full
  EXPECT_TRUE(out.empty());
  s.OnTaskFinished(b, 1.0, &out);
  EXPECT_EQ(PushedTasks(out, b), (std::vector<TaskHandle>{7}));
}

TEST(SubmitterPipelining, TasksPerLeaseCapCountsPushedTasksAndWaitsForTheLastToFinish) {
  Submitter s(Pipelined(/*depth=*/4, /*pending=*/1, /*max_leases=*/1));
  ClassOptions one;
  one.max_tasks_per_lease = 1;  // a GPU class of the C++ API
  s.SetClassOptions(0, one);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{1}));  // no room past one task
  out.clear();
  s.OnTaskFinished(l, 1.0, &out);
  ASSERT_GE(out.size(), 2u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(out[1].kind, Kind::kRequestLease);  // task 2 gets a fresh lease
  EXPECT_EQ(out[1].task, 2u);
}

TEST(SubmitterPipelining, AnActorClassHoldsOneLeaseTakingEveryCallAndKeepsItIdle) {
  Submitter s(Pipelined(/*depth=*/4, /*pending=*/10, /*max_leases=*/64, /*idle=*/0.5));
  ClassOptions actor;
  actor.max_pending_lease_requests = 1;
  actor.max_leases = 1;
  actor.max_tasks_in_flight_per_lease = std::numeric_limits<int>::max();
  actor.keep_idle_leases = true;
  s.SetClassOptions(3, actor);
  Decisions out;
  for (TaskHandle t = 1; t <= 100; ++t) s.Submit(t, 3, 0.0, &out);
  ASSERT_EQ(out.size(), 1u);  // one request
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  const std::vector<TaskHandle> pushed = PushedTasks(out, l);
  ASSERT_EQ(pushed.size(), 100u);  // every call at once, in submission order
  for (size_t i = 0; i < pushed.size(); ++i) EXPECT_EQ(pushed[i], i + 1);
  EXPECT_EQ(out.size(), 100u);  // and no second lease
  out.clear();
  for (int i = 0; i < 100; ++i) s.OnTaskFinished(l, 1.0, &out);
  s.Tick(1e9, &out);
  EXPECT_TRUE(out.empty());  // kept idle, whatever the timeout
  EXPECT_EQ(s.IdleLeases(3), 1);
  EXPECT_TRUE(std::isinf(s.NextIdleDeadline()));
  s.Submit(101, 3, 2.0, &out);
  EXPECT_EQ(PushedTasks(out, l), (std::vector<TaskHandle>{101}));
  out.clear();
  s.CancelLease(l);  // the caller ends it
  s.Submit(102, 3, 3.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
}

TEST(SubmitterPipelining, ALostLeaseForgetsItsTasksAndLateFinishesAreIgnored) {
  Submitter s(Pipelined(/*depth=*/2, /*pending=*/1, /*max_leases=*/1));
  Decisions out;
  for (TaskHandle t = 1; t <= 3; ++t) s.Submit(t, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  out.clear();
  s.OnLeaseLost(l, 1.0, &out);
  ASSERT_EQ(out.size(), 1u);  // task 3 waits: a new request
  EXPECT_EQ(out[0].kind, Kind::kRequestLease);
  const LeaseHandle l2 = out[0].lease;
  out.clear();
  s.OnTaskFinished(l, 1.0, &out);  // a late reply on the lost lease
  EXPECT_TRUE(out.empty());
  // The caller resubmits the two that ran, ahead of task 3.
  const TaskHandle again[] = {1, 2};
  s.SubmitFront(again, 2, 0, 1.0, &out);
  EXPECT_TRUE(out.empty());  // the request is already out
  s.OnLeaseGranted(l2, 0, 2.0, &out);
  EXPECT_EQ(PushedTasks(out, l2), (std::vector<TaskHandle>{1, 2}));
  EXPECT_EQ(s.Queued(0), 1u);
}

TEST(Submitter, SubmitFrontGoesAheadOfTheQueueInItsOwnOrder) {
  Submitter s(Reuse(1));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  const TaskHandle front[] = {8, 9};
  s.SubmitFront(front, 2, 0, 0.0, &out);
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  std::vector<TaskHandle> order = PushedTasks(out, l);
  for (int i = 0; i < 3; ++i) {
    out.clear();
    s.OnTaskFinished(l, 1.0, &out);
    for (TaskHandle t : PushedTasks(out, l)) order.push_back(t);
  }
  EXPECT_EQ(order, (std::vector<TaskHandle>{8, 9, 1, 2}));
}

TEST(Submitter, TakeQueuedEmptiesTheClassAndItsRequestsAreNoLongerNeeded) {
  Submitter s(Reuse(1));
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out.at(0).lease;
  EXPECT_TRUE(s.StillNeeded(l));
  std::vector<TaskHandle> taken;
  s.TakeQueued(0, &taken);
  EXPECT_EQ(taken, (std::vector<TaskHandle>{1, 2}));
  EXPECT_EQ(s.Queued(0), 0u);
  EXPECT_FALSE(s.StillNeeded(l));
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);  // granted anyway: nothing to run, back at once
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
}

TEST(SubmitterPipelining, ManyShortLivedPipelinedLeasesComeAndGoCleanly) {
  // Many short-lived leases, never a backlog: the round robin must not grow with them.
  Submitter s(Pipelined(/*depth=*/4, /*pending=*/1, /*max_leases=*/0));
  Decisions out;
  for (int round = 0; round < 10000; ++round) {
    out.clear();
    s.Submit(round + 1, 0, 0.0, &out);
    const LeaseHandle l = out.at(0).lease;
    out.clear();
    s.OnLeaseGranted(l, 0, 0.0, &out);
    out.clear();
    s.OnTaskFinished(l, 0.0, &out);
    ASSERT_EQ(out.at(0).kind, Kind::kReturnLease);
  }
  EXPECT_EQ(s.GrantedLeases(0), 0);
  EXPECT_EQ(s.PendingRequests(0), 0);
}

}  // namespace
}  // namespace orrery::agent

namespace orrery::agent {
namespace {

// Ray's worker_lease_timeout: a lease held longer than lease_timeout_s since its grant goes back
// when its task finishes even though its class has more queued, and the class asks again.
TEST(Submitter, AnExpiredLeaseGoesBackAfterItsTaskAndTheClassAsksAgain) {
  SubmitterOptions o = Reuse(1);
  o.lease_timeout_s = 0.5;
  Submitter s(o);
  Decisions out;
  for (TaskHandle t = 1; t <= 3; ++t) s.Submit(t, 0, 0.0, &out);
  ASSERT_EQ(OfKind(out, Kind::kRequestLease).size(), 1u);
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.1, &out);  // expires at 0.6
  ASSERT_EQ(OfKind(out, Kind::kPushTask).size(), 1u);
  EXPECT_EQ(OfKind(out, Kind::kPushTask)[0].task, 1u);
  ASSERT_EQ(OfKind(out, Kind::kRequestLease).size(), 1u);  // two still queued: one more request
  const LeaseHandle l2 = OfKind(out, Kind::kRequestLease)[0].lease;
  out.clear();
  s.OnTaskFinished(l, 0.4, &out);  // held 0.3 s: not expired, runs the next one
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kPushTask);
  EXPECT_EQ(out[0].task, 2u);
  out.clear();
  s.OnTaskFinished(l, 0.7, &out);  // held 0.6 s: back; task 3 waits for the other request
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kReturnLease);
  EXPECT_EQ(out[0].lease, l);
  EXPECT_EQ(s.Queued(0), 1u);
  EXPECT_EQ(s.GrantedLeases(0), 0);
  EXPECT_EQ(s.PendingRequests(0), 1);
  out.clear();
  s.OnLeaseGranted(l2, 0, 0.8, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kPushTask);
  EXPECT_EQ(out[0].task, 3u);
}

TEST(Submitter, ClassesThatKeepIdleLeasesNeverExpire) {
  SubmitterOptions o = Reuse(1);
  o.lease_timeout_s = 0.5;
  Submitter s(o);
  ClassOptions actor;
  actor.keep_idle_leases = true;
  s.SetClassOptions(0, actor);
  Decisions out;
  s.Submit(1, 0, 0.0, &out);
  s.Submit(2, 0, 0.0, &out);
  const LeaseHandle l = out[0].lease;
  out.clear();
  s.OnLeaseGranted(l, 0, 0.0, &out);
  out.clear();
  s.OnTaskFinished(l, 10.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kPushTask);
  EXPECT_EQ(out[0].task, 2u);
}

}  // namespace
}  // namespace orrery::agent
