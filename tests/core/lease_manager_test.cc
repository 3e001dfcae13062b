// Lease state machine of one node: grant, spillback with a local estimate of the remote node,
// grant-or-reject, queueing with wait reasons, infeasible warnings, reports.
#include <gtest/gtest.h>

#include "core/lease/lease_manager.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::Req;
using K = LeaseReply::Kind;

std::unique_ptr<LeaseManager> Manager(const ClusterView& v, const std::string& local = "n0",
                                      SchedulerOptions o = {}) {
  o.hybrid.top_k_fraction = 0;
  auto m = LeaseManager::Create(local, v, o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

LeaseRequest Task(const std::string& id, const std::map<std::string, double>& res,
                  SchedulingStrategy st = {}) {
  LeaseRequest r;
  r.task_id = id;
  r.sched.resources = Req(res);
  r.sched.strategy = st;
  return r;
}

TEST(LeaseManager, GrantsLocallyWithDeviceIds) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 4}, {"GPU", 2}}).Build());
  Rng rng(1);
  LeaseReply r = m->RequestLease(Task("t1", {{"GPU", 1}}), rng);
  ASSERT_EQ(r.kind, K::kGranted) << r.reason;
  EXPECT_EQ(r.node, "n0");
  EXPECT_EQ(r.allocation.DeviceIds(), std::vector<int>{0});
  EXPECT_EQ(m->RequestLease(Task("t2", {{"GPU", 1}}), rng).allocation.DeviceIds(),
            std::vector<int>{1});
}

TEST(LeaseManager, SpillsToARemoteNodeAndChargesItsLocalEstimate) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Used({{"CPU", 1}})
               .Node("n1", {{"CPU", 1}}).Node("n2", {{"CPU", 1}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  LeaseReply a = m->RequestLease(Task("a", {{"CPU", 1}}), rng);
  ASSERT_EQ(a.kind, K::kSpillback);
  EXPECT_EQ(a.node, "n1");
  EXPECT_EQ(a.spillbacks, 1);
  EXPECT_TRUE(a.grant_or_reject);
  // Without a new report n1 now looks full, so the next one goes to n2, not n1 again.
  LeaseReply b = m->RequestLease(Task("b", {{"CPU", 1}}), rng);
  ASSERT_EQ(b.kind, K::kSpillback);
  EXPECT_EQ(b.node, "n2");
}

TEST(LeaseManager, AReportReplacesTheLocalEstimate) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Used({{"CPU", 1}})
               .Node("n1", {{"CPU", 1}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kSpillback);
  EXPECT_EQ(m->view().Find("n1")->resources.available().Get(kCPU), Quantity());
  ASSERT_TRUE(m->ApplyReport("n1", testing::Res({{"CPU", 1}}), NodeState::kAlive).ok());
  EXPECT_EQ(m->RequestLease(Task("b", {{"CPU", 1}}), rng).node, "n1");
}

TEST(LeaseManager, ReportsAboutTheLocalNodeAreIgnored) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 2}}).Build());
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 2}}), rng).kind, K::kGranted);
  ASSERT_TRUE(m->ApplyReport("n0", testing::Res({{"CPU", 2}}), NodeState::kAlive).ok());
  EXPECT_EQ(m->view().Find("n0")->resources.available().Get(kCPU), Quantity());
}

TEST(LeaseManager, AGrantOrRejectRequestIsRejectedWhenAnotherNodeHasRoom) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 8}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  LeaseRequest t = Task("a", {{"CPU", 1}});
  t.grant_or_reject = true;
  EXPECT_EQ(m->RequestLease(t, rng).kind, K::kGranted);
  LeaseRequest u = Task("b", {{"CPU", 1}});
  u.grant_or_reject = true;
  LeaseReply r = m->RequestLease(u, rng);
  EXPECT_EQ(r.kind, K::kRejected);
  EXPECT_TRUE(m->Pending().empty());
}

TEST(LeaseManager, WaitsLocallyWhenEveryNodeIsBusyAndRunsWhenALeaseReturns) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Used({{"CPU", 1}})
               .Build();
  auto m = Manager(v);
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kGranted);
  LeaseReply b = m->RequestLease(Task("b", {{"CPU", 1}}), rng);
  ASSERT_EQ(b.kind, K::kQueued);
  EXPECT_EQ(b.wait_reason, WaitReason::kWaitingForResources);
  EXPECT_EQ(m->WaitReasonOf("b"), WaitReason::kWaitingForResources);
  EXPECT_TRUE(m->SchedulePending(rng).empty());
  ASSERT_TRUE(m->ReturnLease("a").ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "b");
  EXPECT_EQ(out[0].kind, K::kGranted);
  EXPECT_TRUE(m->Pending().empty());
}

TEST(LeaseManager, InfeasibleRequestsQueueAndWarnOncePerShape) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 2}}).Build());
  Rng rng(1);
  EXPECT_EQ(m->RequestLease(Task("a", {{"GPU", 4}}), rng).wait_reason, WaitReason::kInfeasible);
  EXPECT_EQ(m->RequestLease(Task("b", {{"GPU", 4}}), rng).wait_reason, WaitReason::kInfeasible);
  EXPECT_EQ(m->RequestLease(Task("c", {{"CPU", 64}}), rng).wait_reason, WaitReason::kInfeasible);
  auto w = m->TakeWarnings();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("\"GPU\": 4"), std::string::npos) << w[0];
  EXPECT_TRUE(m->TakeWarnings().empty());
  m->SchedulePending(rng);
  EXPECT_TRUE(m->TakeWarnings().empty());
}

TEST(LeaseManager, InfeasibleRequestRunsOnceANodeThatFitsJoins) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 2}}).Build());
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"GPU", 1}}), rng).kind, K::kQueued);
  Node g;
  g.id = "g0";
  g.resources = *NodeResources::Create(testing::Res({{"CPU", 4}, {"GPU", 1}}));
  ASSERT_TRUE(m->AddNode(g).ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, K::kSpillback);
  EXPECT_EQ(out[0].node, "g0");
}

TEST(LeaseManager, HardAffinityToADeadNodeIsCanceledWithAReason) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 2}}, NodeState::kDead)
               .Build();
  auto m = Manager(v);
  Rng rng(1);
  LeaseReply r = m->RequestLease(Task("a", {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1")),
                                 rng);
  EXPECT_EQ(r.kind, K::kCanceled);
  EXPECT_NE(r.reason.find("n1 is dead"), std::string::npos) << r.reason;
}

TEST(LeaseManager, AffinityToABusyRemoteNodeIsSentToWaitThere) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 2}}).Used({{"CPU", 2}})
               .Build();
  auto m = Manager(v);
  Rng rng(1);
  LeaseReply r = m->RequestLease(Task("a", {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1")),
                                 rng);
  EXPECT_EQ(r.kind, K::kSpillback);
  EXPECT_EQ(r.node, "n1");
  EXPECT_FALSE(r.grant_or_reject);
}

TEST(LeaseManager, BlockedRequestsWaitWithTheirReasonUntilUnblocked) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 2}}).Build());
  Rng rng(1);
  LeaseRequest t = Task("a", {{"CPU", 1}});
  t.blocked_on = WaitReason::kWaitingForArgs;
  EXPECT_EQ(m->RequestLease(t, rng).wait_reason, WaitReason::kWaitingForArgs);
  EXPECT_TRUE(m->SchedulePending(rng).empty());
  ASSERT_TRUE(m->Block("a", WaitReason::kWaitingForRuntimeEnv).ok());
  EXPECT_EQ(m->WaitReasonOf("a"), WaitReason::kWaitingForRuntimeEnv);
  ASSERT_TRUE(m->Unblock("a").ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, K::kGranted);
}

TEST(LeaseManager, CancelRemovesAQueuedRequest) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 1}}).Build());
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"GPU", 1}}), rng).kind, K::kQueued);
  auto r = m->CancelLease("a", "placement group removed");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, K::kCanceled);
  EXPECT_EQ(r->reason, "placement group removed");
  EXPECT_TRUE(m->Pending().empty());
  EXPECT_FALSE(m->CancelLease("a", "again").has_value());
}

TEST(LeaseManager, ReturningAnUnknownLeaseIsNotFoundAndChangesNothing) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 1}}).Build());
  EXPECT_EQ(m->ReturnLease("ghost").code(), StatusCode::kNotFound);
  EXPECT_EQ(m->view().Find("n0")->resources.available().Get(kCPU), Quantity::Whole(1));
}

TEST(LeaseManager, DuplicateRequestIsRejectedWithoutTakingResources) {
  auto m = Manager(ClusterBuilder().Node("n0", {{"CPU", 4}}).Build());
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kGranted);
  EXPECT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kRejected);
  EXPECT_EQ(m->view().Find("n0")->resources.available().Get(kCPU), Quantity::Whole(3));
}

TEST(LeaseManager, LocalNodeMustBeInTheView) {
  auto m = LeaseManager::Create("zz", ClusterBuilder().Node("n0", {{"CPU", 1}}).Build(), {});
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

TEST(WaitReason, NamesMatchTheDesign) {
  EXPECT_STREQ(WaitReasonName(WaitReason::kInfeasible), "infeasible");
  EXPECT_STREQ(WaitReasonName(WaitReason::kWaitingForResources), "waiting_for_resources");
  EXPECT_STREQ(WaitReasonName(WaitReason::kWaitingForRuntimeEnv), "waiting_for_runtime_env");
  EXPECT_STREQ(WaitReasonName(WaitReason::kWaitingForArgs), "waiting_for_args");
  EXPECT_STREQ(WaitReasonName(WaitReason::kWaitingForPlacementGroup),
               "waiting_for_placement_group");
  EXPECT_STREQ(WaitReasonName(WaitReason::kWaitingForNode), "waiting_for_node");
}

// Issue 11 item 4: a pass re-ran the policy for every queued request, so a burst of N tasks cost
// O(N^2). A deep queue of one class must cost one failed policy call per pass, plus one per
// request that actually leaves, and no call at all when nothing changed.
TEST(LeaseManager, DeepQueueOfOneClassCostsOnePolicyCallPerPass) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 2}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  for (int i = 0; i < 10000; ++i) m->RequestLease(Task("t" + std::to_string(i), {{"CPU", 1}}), rng);
  ASSERT_EQ(m->NumQueued(), 10000u - 4u);  // 2 granted here, 2 spilled to n1
  EXPECT_EQ(m->NumClasses(), 1u);
  EXPECT_TRUE(m->SchedulePending(rng).empty());  // nothing changed: no pass at all
  EXPECT_EQ(m->counters().pass_decisions, 0u);
  ASSERT_TRUE(m->ReturnLease("t0").ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "t4");  // FIFO within the class
  EXPECT_EQ(out[0].kind, K::kGranted);
  EXPECT_EQ(m->counters().passes, 1u);
  EXPECT_EQ(m->counters().pass_decisions, 2u);  // t4 granted, t5 stays: the class is skipped
}

TEST(LeaseManager, ABlockedClassDoesNotHoldBackAnotherClass) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}, {"GPU", 1}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("g0", {{"GPU", 1}}), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Task("c0", {{"CPU", 1}}), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Task("g1", {{"GPU", 1}}), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Task("c1", {{"CPU", 1}}), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Task("g2", {{"GPU", 1}}), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Task("c2", {{"CPU", 1}}), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Task("x", {{"CPU", 64}}), rng).wait_reason, WaitReason::kInfeasible);
  EXPECT_EQ(m->NumClasses(), 3u);
  ASSERT_TRUE(m->ReturnLease("c0").ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "c2");
  // Arrival order across classes, each with its class's wait reason.
  std::vector<std::string> ids;
  for (const auto& p : m->Pending()) ids.push_back(p.task_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"g1", "g2", "x"}));
  EXPECT_EQ(m->WaitReasonOf("g2"), WaitReason::kWaitingForResources);
  EXPECT_EQ(m->WaitReasonOf("x"), WaitReason::kInfeasible);
}

TEST(LeaseManager, ANewRequestQueuesBehindItsWaitingClass) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Task("b", {{"CPU", 1}}), rng).kind, K::kQueued);
  ASSERT_TRUE(m->ReturnLease("a").ok());
  // Resources freed but no pass yet: the newcomer must not overtake b.
  LeaseReply c = m->RequestLease(Task("c", {{"CPU", 1}}), rng);
  EXPECT_EQ(c.kind, K::kQueued);
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "b");
}

TEST(LeaseManager, AffinityTargetsAndLocalityNodesAreSeparateClasses) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  auto a = Task("a", {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n0"));
  auto b =
      Task("b", {{"CPU", 1}},
           SchedulingStrategy::NodeAffinity("n1", /*soft=*/true, /*spill_on_unavailable=*/true));
  auto c = Task("c", {{"CPU", 1}});
  c.sched.args = {{100, {"n1"}}};
  auto d = Task("d", {{"CPU", 1}});
  for (auto* t : {&a, &b, &c, &d}) t->sched.require_available = true;
  m->RequestLease(Task("busy0", {{"CPU", 1}}), rng);
  m->RequestLease(Task("busy1", {{"CPU", 1}}), rng);
  for (auto* t : {&a, &b, &c, &d}) EXPECT_EQ(m->RequestLease(*t, rng).kind, K::kQueued);
  EXPECT_EQ(m->NumClasses(), 4u);
}

// A backend keeps per-task wait reasons current from the changes alone (the live node used to
// walk the whole queue after every pass): Block, Unblock and a class whose reason a pass moved.
TEST(LeaseManager, WaitReasonChangesListOnlyWhatChanged) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 1}}).Build();
  auto m = Manager(v);
  m->TrackWaitReasonChanges();
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kGranted);
  for (int i = 0; i < 100; ++i) m->RequestLease(Task("q" + std::to_string(i), {{"CPU", 1}}), rng);
  EXPECT_TRUE(m->TakeWaitReasonChanges().empty()) << "replies carry the first reasons";
  ASSERT_TRUE(m->Block("q5", WaitReason::kWaitingForArgs).ok());
  auto changes = m->TakeWaitReasonChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].task_id, "q5");
  EXPECT_EQ(changes[0].wait_reason, WaitReason::kWaitingForArgs);
  ASSERT_TRUE(m->Unblock("q5").ok());
  changes = m->TakeWaitReasonChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].wait_reason, WaitReason::kWaitingForResources);
  // A pass that grants one and leaves the class waiting for the same reason lists nothing.
  ASSERT_TRUE(m->ReturnLease("a").ok());
  ASSERT_EQ(m->SchedulePending(rng).size(), 1u);
  EXPECT_TRUE(m->TakeWaitReasonChanges().empty());
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

LeaseRequest Fn(const std::string& id, const std::string& function, double cpus) {
  LeaseRequest r = Task(id, {{"CPU", cpus}});
  r.function = function;
  return r;
}

// Ray's fair granting: while the queued CPU demand exceeds the node's CPUs, a class holding more
// leases here than the average per queued CPU class is skipped, so a freed CPU goes to the rare
// class even though the busy class is first in class order.
TEST(LeaseManager, FairGrantingGivesAFreedCpuToTheClassBelowItsShare) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Build();
  for (bool fair : {true, false}) {
    SchedulerOptions o;
    o.fair_granting = fair;
    auto m = Manager(v, "n0", o);
    Rng rng(1);
    ASSERT_EQ(m->RequestLease(Fn("b1", "busy", 1), rng).kind, K::kGranted);
    ASSERT_EQ(m->RequestLease(Fn("b2", "busy", 1), rng).kind, K::kGranted);
    ASSERT_EQ(m->RequestLease(Fn("b3", "busy", 1), rng).kind, K::kQueued);
    ASSERT_EQ(m->RequestLease(Fn("b4", "busy", 1), rng).kind, K::kQueued);
    ASSERT_EQ(m->RequestLease(Fn("r1", "rare", 1), rng).kind, K::kQueued);
    EXPECT_EQ(m->NumClasses(), 2u);  // same shape, two functions
    ASSERT_TRUE(m->ReturnLease("b1").ok());
    auto out = m->SchedulePending(rng);
    ASSERT_EQ(out.size(), 1u);
    // busy holds 1 lease, fair share = 1 / 2 classes = 0: busy is over it, rare is not.
    EXPECT_EQ(out[0].task_id, fair ? "r1" : "b3") << "fair_granting " << fair;
  }
}

TEST(LeaseManager, FairGrantingOnlyActsWhenQueuedCpuExceedsTheNode) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Build();
  auto m = Manager(v);
  Rng rng(1);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(m->RequestLease(Fn("b" + std::to_string(i), "busy", 1), rng).kind, K::kGranted);
  }
  ASSERT_EQ(m->RequestLease(Fn("w", "wide", 2), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Fn("b4", "busy", 1), rng).kind, K::kQueued);
  // Queued CPU = 2 + 1 = 3 <= 4 CPUs: no fairness, class order: wide cannot fit, busy takes it.
  ASSERT_TRUE(m->ReturnLease("b0").ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "b4");
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// A queued class over its fair share is skipped by the pass: it does not spill to a node that
// frees up either, the class below its share does (Ray's local lease manager skips the class
// before trying a grant or a spillback).
TEST(LeaseManager, AQueuedClassOverItsShareDoesNotSpillEither) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 1}}).Used({{"CPU", 1}})
               .Build();
  auto m = Manager(v);
  Rng rng(1);
  ASSERT_EQ(m->RequestLease(Fn("b1", "busy", 1), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Fn("b2", "busy", 1), rng).kind, K::kGranted);
  ASSERT_EQ(m->RequestLease(Fn("b3", "busy", 1), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Fn("b4", "busy", 1), rng).kind, K::kQueued);
  ASSERT_EQ(m->RequestLease(Fn("r1", "rare", 1), rng).kind, K::kQueued);
  // n1 frees its CPU: busy (2 leases here, share 2 / 2 = 1) is skipped, rare spills there.
  ASSERT_TRUE(m->ApplyReport("n1", Req({{"CPU", 1}}).set(), NodeState::kAlive).ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "r1");
  EXPECT_EQ(out[0].kind, K::kSpillback);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// wait_at_best_node (Ray's GetBestSchedulableNode): with no node free, a GPU request at a node
// without GPUs goes to wait at the GPU node, which grants it as soon as its GPU frees, before
// any report could reach the node that decided. Off: it waits where it was decided.
TEST(LeaseManager, AGpuRequestGoesToWaitAtTheBusyGpuNode) {
  auto v = ClusterBuilder()
               .Node("cpu", {{"CPU", 4}})
               .Node("gpu", {{"CPU", 2}, {"GPU", 1}})
               .Used({{"CPU", 1}, {"GPU", 1}})
               .Build();
  auto entry = Manager(v, "cpu");
  auto target = Manager(
      ClusterBuilder().Node("cpu", {{"CPU", 4}}).Node("gpu", {{"CPU", 2}, {"GPU", 1}}).Build(),
      "gpu");
  Rng rng(1);
  ASSERT_EQ(target->RequestLease(Task("running", {{"CPU", 1}, {"GPU", 1}}), rng).kind, K::kGranted);
  LeaseReply r = entry->RequestLease(Task("g", {{"CPU", 1}, {"GPU", 1}}), rng);
  ASSERT_EQ(r.kind, K::kSpillback) << r.reason;
  EXPECT_EQ(r.node, "gpu");
  EXPECT_TRUE(r.grant_or_reject);
  EXPECT_NE(r.reason.find("it waits there"), std::string::npos) << r.reason;
  // A busy target takes no estimate: the view of gpu is unchanged.
  EXPECT_EQ(entry->view().Find("gpu")->resources.available().Get(kCPU), Quantity::Whole(1));
  LeaseRequest there = Task("g", {{"CPU", 1}, {"GPU", 1}});
  there.grant_or_reject = true;
  there.spillbacks = r.spillbacks;
  LeaseReply q = target->RequestLease(there, rng);
  ASSERT_EQ(q.kind, K::kQueued) << q.reason;
  EXPECT_EQ(q.wait_reason, WaitReason::kWaitingForResources);
  ASSERT_TRUE(target->ReturnLease("running").ok());
  auto out = target->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "g");
  EXPECT_EQ(out[0].kind, K::kGranted);

  SchedulerOptions off;
  off.wait_at_best_node = false;
  auto old_entry = Manager(v, "cpu", off);
  EXPECT_EQ(old_entry->RequestLease(Task("g", {{"CPU", 1}, {"GPU", 1}}), rng).kind, K::kQueued);
  auto old_target = Manager(v, "gpu", off);
  EXPECT_EQ(old_target->RequestLease(there, rng).kind, K::kRejected);
}

// A spilled request that finds its target full waits there only while no node has room in the
// target's view; and once waiting it leaves only for a node with room (no bounce between busy
// nodes).
TEST(LeaseManager, ASpilledRequestWaitsAtItsBusyTargetOnlyWhileNoNodeHasRoom) {
  auto v = ClusterBuilder()
               .Node("n0", {{"CPU", 1}})
               .Used({{"CPU", 1}})
               .Node("n1", {{"CPU", 1}})
               .Used({{"CPU", 1}})
               .Node("n2", {{"CPU", 2}})
               .Used({{"CPU", 1}})
               .Build();
  auto m = Manager(v, "n0");
  Rng rng(1);
  LeaseRequest a = Task("a", {{"CPU", 1}});
  a.grant_or_reject = true;
  LeaseReply r = m->RequestLease(a, rng);
  EXPECT_EQ(r.kind, K::kRejected) << "n2 has room";
  ASSERT_TRUE(m->ApplyReport("n2", Req({{"CPU", 0}}).set(), NodeState::kAlive).ok());
  r = m->RequestLease(a, rng);
  ASSERT_EQ(r.kind, K::kQueued) << r.reason;
  // n1 is just as busy: a pass does not send it there.
  ASSERT_TRUE(m->ApplyReport("n1", Req({{"CPU", 0}}).set(), NodeState::kAlive).ok());
  EXPECT_TRUE(m->SchedulePending(rng).empty());
  // n2 frees a CPU: it leaves for n2, a node with room.
  ASSERT_TRUE(m->ApplyReport("n2", Req({{"CPU", 1}}).set(), NodeState::kAlive).ok());
  auto out = m->SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, K::kSpillback);
  EXPECT_EQ(out[0].node, "n2");
}

// A new SPREAD request whose class already waits here is still asked about once: the ring names
// another busy node, and it goes to wait there rather than behind its class.
TEST(LeaseManager, ANewRequestMayGoToWaitElsewhereInsteadOfJoiningItsClass) {
  auto v =
      ClusterBuilder().Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Used({{"CPU", 1}}).Build();
  auto m = Manager(v, "n0");
  Rng rng(1);
  const SchedulingStrategy spread = SchedulingStrategy::Spread();
  ASSERT_EQ(m->RequestLease(Task("s0", {{"CPU", 1}}, spread), rng).kind, K::kGranted);
  // Every node busy; the ring's next feasible node: n1 goes first... then n0, by turns.
  std::vector<std::string> where;
  for (int i = 1; i <= 4; ++i) {
    LeaseReply r = m->RequestLease(Task("s" + std::to_string(i), {{"CPU", 1}}, spread), rng);
    where.push_back(r.kind == K::kSpillback ? r.node : std::string(LeaseReplyKindName(r.kind)));
  }
  EXPECT_EQ(where, (std::vector<std::string>{"n1", "queued", "n1", "queued"}));
  EXPECT_EQ(m->NumQueued(), 2u);
}

}  // namespace
}  // namespace orrery
