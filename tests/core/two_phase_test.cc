// Two-phase reservation of placement groups: backoff, the event-driven state machine, and the
// synchronous driver against a ClusterView (no resource may leak).
#include "core/placement/two_phase.h"

#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/placement/bundle_policy.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::Req;
using testing::Res;
using State = ReservationState;
using Shape = std::map<std::string, double>;

std::vector<ResourceRequest> Bundles(const std::vector<Shape>& shapes) {
  std::vector<ResourceRequest> out;
  for (const auto& s : shapes) out.push_back(Req(s));
  return out;
}

// Availability and per-device detail of every node: equal before and after means nothing leaked.
std::string Snapshot(const ClusterView& view) {
  std::string out;
  for (int slot : view.ordered_slots()) {
    const NodeResources& r = view.at(slot).resources;
    out += view.at(slot).id + " " + r.available().ToString();
    for (const auto& [name, devs] : r.all_devices()) {
      out += " " + name + "[";
      for (Quantity d : devs) out += d.ToString() + ",";
      out += "]";
    }
    out += "\n";
  }
  return out;
}

// "prepare 0@n0" per command: compact expectations.
std::vector<std::string> Brief(const std::vector<TwoPhaseCommand>& cmds) {
  std::vector<std::string> out;
  for (const auto& c : cmds) {
    out.push_back(std::string(TwoPhaseCommandKindName(c.kind)) + " " + std::to_string(c.bundle) +
                  "@" + c.node);
  }
  return out;
}
std::vector<std::string> Brief(const StatusOr<std::vector<TwoPhaseCommand>>& cmds) {
  EXPECT_TRUE(cmds.ok()) << cmds.status().ToString();
  return cmds.ok() ? Brief(*cmds) : std::vector<std::string>{"<error>"};
}
using Briefs = std::vector<std::string>;

// A three-bundle group on n0, n1, n0 whose Prepares have just been sent.
TwoPhaseReservation Preparing3() {
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}, {{"CPU", 2}}, {{"CPU", 3}}}));
  EXPECT_EQ(Brief(g.Start({"n0", "n1", "n0"})),
            (Briefs{"prepare 0@n0", "prepare 1@n1", "prepare 2@n0"}));
  return g;
}

// The same group, Created.
TwoPhaseReservation Created3() {
  TwoPhaseReservation g = Preparing3();
  for (int b = 0; b < 3; ++b) (void)g.OnPrepared(b, true, 0.0);
  for (int b = 0; b < 3; ++b) (void)g.OnCommitted(b, true, 0.0);
  EXPECT_EQ(g.state(), State::kCreated);
  return g;
}

// ---- RetryBackoff

TEST(TwoPhaseBackoff, StartsAtATenthGrowsByHalfAndCapsAtOneSecond) {
  RetryBackoff b;
  const std::vector<double> expected = {0.1, 0.15, 0.225, 0.3375, 0.50625, 0.759375, 1.0, 1.0};
  for (double e : expected) EXPECT_NEAR(b.NextDelay(), e, 1e-12);
  EXPECT_EQ(b.failures(), 8);
}

TEST(TwoPhaseBackoff, ResetStartsOverAtTheInitialDelay) {
  RetryBackoff b;
  for (int i = 0; i < 20; ++i) (void)b.NextDelay();
  b.Reset();
  EXPECT_EQ(b.failures(), 0);
  EXPECT_NEAR(b.NextDelay(), 0.1, 1e-12);
  EXPECT_NEAR(b.NextDelay(), 0.15, 1e-12);
}

TEST(TwoPhaseBackoff, HonoursCustomOptions) {
  RetryBackoff b({.initial_s = 1.0, .multiplier = 2.0, .max_s = 5.0});
  for (double e : {1.0, 2.0, 4.0, 5.0, 5.0}) EXPECT_DOUBLE_EQ(b.NextDelay(), e);
}

// ---- Event-driven state machine

TEST(TwoPhaseEvents, StartSendsOnePrepareWithTheResourcesPerBundle) {
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}, {{"GPU", 1}}}));
  EXPECT_EQ(g.state(), State::kPending);
  auto cmds = g.Start({"n1", "n0"});
  ASSERT_TRUE(cmds.ok());
  ASSERT_EQ(cmds->size(), 2u);
  EXPECT_EQ((*cmds)[1], (TwoPhaseCommand{.kind = TwoPhaseCommand::Kind::kPrepare,
                                         .group = "pg",
                                         .bundle = 1,
                                         .node = "n0",
                                         .resources = Req({{"GPU", 1}})}));
  EXPECT_EQ(g.state(), State::kPreparing);
  EXPECT_EQ(g.attempts(), 1);
}

TEST(TwoPhaseEvents, CommitsOnlyAfterTheLastPrepareSucceeded) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(Brief(g.OnPrepared(2, true, 1.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnPrepared(0, true, 1.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnPrepared(1, true, 1.0)),
            (Briefs{"commit 0@n0", "commit 1@n1", "commit 2@n0"}));
  EXPECT_EQ(g.state(), State::kCommitting);
  EXPECT_EQ(Brief(g.OnCommitted(1, true, 1.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnCommitted(0, true, 1.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnCommitted(2, true, 1.0)), Briefs{});
  EXPECT_EQ(g.state(), State::kCreated);
  EXPECT_TRUE(g.reason().empty());
}

TEST(TwoPhaseEvents, APrepareFailureWaitsForEveryAnswerThenCancelsThePreparedBundles) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(Brief(g.OnPrepared(0, true, 2.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnPrepared(1, false, 2.0)), Briefs{}) << "bundle 2 is still in flight";
  EXPECT_EQ(Brief(g.OnPrepared(2, true, 2.5)), (Briefs{"cancel 0@n0", "cancel 2@n0"}));
  EXPECT_EQ(g.state(), State::kFailed);
  EXPECT_NEAR(g.retry_at_s(), 2.6, 1e-12);
  EXPECT_NE(g.reason().find("bundle 1"), std::string::npos) << g.reason();
  EXPECT_TRUE(g.BundlesOn("n0").empty());
}

TEST(TwoPhaseEvents, ACommitFailureCancelsThatBundleAtOnceAndTheOthersAtTheEnd) {
  TwoPhaseReservation g = Preparing3();
  for (int b = 0; b < 3; ++b) (void)g.OnPrepared(b, true, 0.0);
  EXPECT_EQ(Brief(g.OnCommitted(0, true, 3.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnCommitted(1, false, 3.0)), Briefs{"cancel 1@n1"});
  EXPECT_EQ(Brief(g.OnCommitted(2, true, 3.0)), (Briefs{"cancel 0@n0", "cancel 2@n0"}));
  EXPECT_EQ(g.state(), State::kFailed);
  EXPECT_NEAR(g.retry_at_s(), 3.1, 1e-12);
}

TEST(TwoPhaseEvents, ConsecutiveFailuresBackOffAndSuccessResetsTheBackoff) {
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}}));
  const std::vector<double> retry_at = {0.1, 1.15, 2.225};
  for (int attempt = 0; attempt < 3; ++attempt) {
    (void)g.Start({"n0"});
    (void)g.OnPrepared(0, false, attempt * 1.0);
    EXPECT_NEAR(g.retry_at_s(), retry_at[attempt], 1e-12) << "attempt " << attempt;
  }
  (void)g.Start({"n0"});
  (void)g.OnPrepared(0, true, 4.0);
  (void)g.OnCommitted(0, true, 4.0);
  EXPECT_EQ(g.state(), State::kCreated);
  EXPECT_EQ(g.attempts(), 4);
  EXPECT_EQ(g.backoff().failures(), 0);
}

TEST(TwoPhaseEvents, PlacementFailuresBackOffLikeReservationFailures) {
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}}));
  ASSERT_TRUE(g.OnPlacementFailed(10.0, "no node has CPU free").ok());
  EXPECT_EQ(g.state(), State::kFailed);
  EXPECT_NEAR(g.retry_at_s(), 10.1, 1e-12);
  ASSERT_TRUE(g.OnPlacementFailed(10.1, "still none").ok());
  EXPECT_NEAR(g.retry_at_s(), 10.25, 1e-12);
  EXPECT_EQ(g.reason(), "still none");
  (void)g.Start({"n0"});
  EXPECT_EQ(g.OnPlacementFailed(11.0, "x").code(), StatusCode::kFailedPrecondition);
}

TEST(TwoPhaseEvents, RemoveDuringPrepareCancelsLateSuccessfulAnswers) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(Brief(g.OnPrepared(0, true, 0.0)), Briefs{});
  EXPECT_EQ(Brief(g.Remove()), Briefs{"cancel 0@n0"}) << "only bundles with nothing in flight";
  EXPECT_EQ(g.state(), State::kRemoved);
  EXPECT_FALSE(g.Settled());
  EXPECT_EQ(Brief(g.OnPrepared(1, true, 0.0)), Briefs{"cancel 1@n1"});
  EXPECT_EQ(Brief(g.OnPrepared(2, false, 0.0)), Briefs{}) << "a failed Prepare took nothing";
  EXPECT_TRUE(g.Settled());
  EXPECT_EQ(g.state(), State::kRemoved);
}

TEST(TwoPhaseEvents, RemoveDuringCommitCancelsEachBundleWhenItsAnswerArrives) {
  TwoPhaseReservation g = Preparing3();
  for (int b = 0; b < 3; ++b) (void)g.OnPrepared(b, true, 0.0);
  EXPECT_EQ(Brief(g.Remove()), Briefs{});
  EXPECT_EQ(Brief(g.OnCommitted(0, true, 0.0)), Briefs{"cancel 0@n0"});
  EXPECT_EQ(Brief(g.OnCommitted(1, false, 0.0)), Briefs{"cancel 1@n1"});
  EXPECT_EQ(Brief(g.OnCommitted(2, true, 0.0)), Briefs{"cancel 2@n0"});
  EXPECT_TRUE(g.Settled());
}

TEST(TwoPhaseEvents, RemovingACreatedGroupCancelsEveryBundleExactlyOnce) {
  TwoPhaseReservation g = Created3();
  EXPECT_EQ(Brief(g.Remove()), (Briefs{"cancel 0@n0", "cancel 1@n1", "cancel 2@n0"}));
  EXPECT_EQ(Brief(g.Remove()), Briefs{});
  EXPECT_EQ(g.state(), State::kRemoved);
}

TEST(TwoPhaseEvents, NodeDeathDuringPrepareFailsTheAttemptWithoutMessagingTheDeadNode) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(Brief(g.OnPrepared(1, true, 0.0)), Briefs{});
  EXPECT_EQ(Brief(g.OnNodeDead("n0", 5.0)), Briefs{"cancel 1@n1"});
  EXPECT_EQ(g.state(), State::kFailed);
  EXPECT_NEAR(g.retry_at_s(), 5.1, 1e-12);
  EXPECT_NE(g.reason().find("n0"), std::string::npos) << g.reason();
  EXPECT_EQ(g.OnPrepared(0, true, 5.0).status().code(), StatusCode::kFailedPrecondition)
      << "an answer from a node declared dead is stale";
}

TEST(TwoPhaseEvents, NodeDeathUnderACreatedGroupReleasesTheSurvivorsAndRetries) {
  TwoPhaseReservation g = Created3();
  EXPECT_EQ(Brief(g.OnNodeDead("n0", 7.0)), Briefs{"cancel 1@n1"});
  EXPECT_EQ(g.state(), State::kFailed);
  EXPECT_NEAR(g.retry_at_s(), 7.1, 1e-12) << "the backoff was reset when the group was created";
  EXPECT_EQ(Brief(g.OnNodeDead("n9", 7.0)), Briefs{});
}

TEST(TwoPhaseEvents, BundlesOnListsWhatANodeMayHold) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(g.BundlesOn("n0"), (std::vector<int>{0, 2}));
  (void)g.OnPrepared(2, false, 0.0);
  EXPECT_EQ(g.BundlesOn("n0"), (std::vector<int>{0}));
  EXPECT_TRUE(g.BundlesOn("n7").empty());
}

TEST(TwoPhaseEvents, AnEmptyGroupIsCreatedAtOnce) {
  TwoPhaseReservation g("pg", {});
  EXPECT_EQ(Brief(g.Start({})), Briefs{});
  EXPECT_EQ(g.state(), State::kCreated);
}

struct BadStartCase {
  const char* intent;  // as a test name
  std::vector<NodeId> placement;
  bool already_started;
  StatusCode code;
};

void PrintTo(const BadStartCase& c, std::ostream* os) { *os << c.intent; }

class TwoPhaseBadStartTest : public ::testing::TestWithParam<BadStartCase> {};

TEST_P(TwoPhaseBadStartTest, IsRefusedWithoutChangingTheGroup) {
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}, {{"CPU", 1}}}));
  if (GetParam().already_started) (void)g.Start({"n0", "n1"});
  const State before = g.state();
  auto r = g.Start(GetParam().placement);
  ASSERT_FALSE(r.ok()) << GetParam().intent;
  EXPECT_EQ(r.status().code(), GetParam().code) << r.status().ToString();
  EXPECT_EQ(g.state(), before);
}

INSTANTIATE_TEST_SUITE_P(
    TwoPhase, TwoPhaseBadStartTest,
    ::testing::Values(
        BadStartCase{"FewerNodesThanBundles", {"n0"}, false, StatusCode::kInvalidArgument},
        BadStartCase{"AnEmptyNodeId", {"n0", ""}, false, StatusCode::kInvalidArgument},
        BadStartCase{
            "AnAttemptAlreadyInFlight", {"n0", "n1"}, true, StatusCode::kFailedPrecondition}),
    [](const ::testing::TestParamInfo<BadStartCase>& info) {
      return std::string(info.param.intent);
    });

TEST(TwoPhaseEvents, RejectsAnswersNobodyAskedFor) {
  TwoPhaseReservation g = Preparing3();
  EXPECT_EQ(g.OnPrepared(3, true, 0.0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.OnCommitted(0, true, 0.0).status().code(), StatusCode::kFailedPrecondition);
  (void)g.OnPrepared(0, true, 0.0);
  EXPECT_EQ(g.OnPrepared(0, true, 0.0).status().code(), StatusCode::kFailedPrecondition)
      << "duplicate answer";
}

// ---- Against a ClusterView

TEST(TwoPhaseView, ReserveTakesEveryBundleAndReportsItsGpuDeviceIds) {
  ClusterView view = ClusterBuilder()
                         .Node("n0", {{"CPU", 4}, {"GPU", 2}})
                         .Node("n1", {{"CPU", 4}, {"GPU", 3}})
                         .Used({{"GPU", 1}})
                         .Build();
  auto bundles = Bundles({{{"CPU", 1}, {"GPU", 2}}, {{"GPU", 1}}, {{"GPU", 0.5}}});
  std::vector<int> placement = {view.FindSlot("n0"), view.FindSlot("n1"), view.FindSlot("n1")};

  ViewReservation r = ReserveOnView(view, bundles, placement);

  ASSERT_TRUE(r.reserved) << r.reason;
  ASSERT_EQ(r.allocations.size(), 3u);
  EXPECT_EQ(r.allocations[0].DeviceIds(), (std::vector<int>{0, 1}));
  EXPECT_EQ(r.allocations[1].DeviceIds(), (std::vector<int>{1})) << "device 0 was in use";
  EXPECT_EQ(r.allocations[2].DeviceIds(), (std::vector<int>{2}));
  EXPECT_EQ(view.Find("n0")->resources.available(), Res({{"CPU", 3}}));
}

TEST(TwoPhaseView, AFractionalBundleGetsTheDeviceItPacksOnto) {
  ClusterView view = ClusterBuilder().Node("n0", {{"GPU", 2}}).Used({{"GPU", 0.5}}).Build();
  ViewReservation r = ReserveOnView(view, Bundles({{{"GPU", 0.25}}}), {view.FindSlot("n0")});
  ASSERT_TRUE(r.reserved) << r.reason;
  EXPECT_EQ(r.allocations[0].DeviceIds(), (std::vector<int>{0})) << "best fit: the busier device";
}

TEST(TwoPhaseView, APartialPrepareFailureReturnsEverythingThatWasTaken) {
  ClusterView view = ClusterBuilder()
                         .Node("n0", {{"CPU", 4}, {"GPU", 1}})
                         .Node("n1", {{"CPU", 4}})
                         .Used({{"CPU", 3}})
                         .Node("n2", {{"CPU", 4}})
                         .Build();
  const std::string before = Snapshot(view);
  // A stale placement: n1 no longer has 2 CPUs free, the other two bundles fit.
  auto bundles = Bundles({{{"CPU", 2}, {"GPU", 1}}, {{"CPU", 2}}, {{"CPU", 4}}});
  std::vector<int> placement = {view.FindSlot("n0"), view.FindSlot("n1"), view.FindSlot("n2")};

  ViewReservation r = ReserveOnView(view, bundles, placement, 20.0);

  EXPECT_FALSE(r.reserved);
  EXPECT_TRUE(r.allocations.empty());
  EXPECT_NEAR(r.retry_at_s, 20.1, 1e-12);
  EXPECT_NE(r.reason.find("bundle 1"), std::string::npos) << r.reason;
  EXPECT_EQ(Snapshot(view), before);
}

TEST(TwoPhaseView, APrepareOnADrainingNodeFails) {
  ClusterView view = ClusterBuilder()
                         .Node("n0", {{"CPU", 4}})
                         .Node("n1", {{"CPU", 4}}, NodeState::kDraining)
                         .Build();
  const std::string before = Snapshot(view);
  ViewReservation r = ReserveOnView(view, Bundles({{{"CPU", 1}}, {{"CPU", 1}}}),
                                    {view.FindSlot("n0"), view.FindSlot("n1")});
  EXPECT_FALSE(r.reserved);
  EXPECT_EQ(Snapshot(view), before);
}

TEST(TwoPhaseView, RemovingACreatedGroupReturnsEverything) {
  ClusterView view =
      ClusterBuilder().Node("n0", {{"CPU", 4}, {"GPU", 2}}).Node("n1", {{"CPU", 4}}).Build();
  const std::string before = Snapshot(view);
  ViewBundleHost host(view);
  TwoPhaseReservation g("pg1", Bundles({{{"CPU", 2}, {"GPU", 1}}, {{"CPU", 4}}}));

  ViewReservation r = ReserveOnView(host, g, {"n0", "n1"}, 0.0);
  ASSERT_TRUE(r.reserved) << r.reason;
  EXPECT_TRUE(host.IsCommitted("pg1", 0));
  EXPECT_EQ(host.held(), 2);
  EXPECT_NE(Snapshot(view), before);

  RemoveOnView(host, g);
  EXPECT_EQ(g.state(), State::kRemoved);
  EXPECT_EQ(host.held(), 0);
  EXPECT_EQ(Snapshot(view), before);
}

TEST(TwoPhaseView, RetriesBackOffUntilTheClusterHasRoom) {
  ClusterView view = ClusterBuilder().Node("n0", {{"CPU", 2}}).Build();
  auto blocker = view.Allocate(view.FindSlot("n0"), Req({{"CPU", 2}}));
  ViewBundleHost host(view);
  TwoPhaseReservation g("pg", Bundles({{{"CPU", 1}}}));

  double now = 0.0;
  for (double expected : {0.1, 0.25, 0.475}) {
    ViewReservation r = ReserveOnView(host, g, {"n0"}, now);
    ASSERT_FALSE(r.reserved);
    EXPECT_NEAR(r.retry_at_s, expected, 1e-12);
    now = r.retry_at_s;
  }
  view.Release(view.FindSlot("n0"), *blocker);
  EXPECT_TRUE(ReserveOnView(host, g, {"n0"}, now).reserved);
  EXPECT_EQ(g.backoff().failures(), 0);
}

class TwoPhaseStrategyTest : public ::testing::TestWithParam<PlacementStrategy> {};

TEST_P(TwoPhaseStrategyTest, APlacementReservesOnTheSameViewAndReleasesWithoutLeaks) {
  ClusterView view = ClusterBuilder()
                         .Node("n0", {{"CPU", 8}, {"GPU", 2}})
                         .Used({{"GPU", 0.5}})
                         .Node("n1", {{"CPU", 8}, {"memory", 16}})
                         .Node("n2", {{"CPU", 8}})
                         .Build();
  const std::string before = Snapshot(view);
  auto bundles = Bundles({{{"CPU", 2}}, {{"CPU", 1}, {"GPU", 0.5}}, {{"CPU", 2}}});

  PlacementResult p = PlaceBundles(view, bundles, GetParam());
  ASSERT_EQ(p.kind, PlacementResult::Kind::kPlaced) << p.reason;
  ViewReservation r = ReserveOnView(view, bundles, p.slots);
  ASSERT_TRUE(r.reserved) << r.reason;
  EXPECT_NE(Snapshot(view), before);

  ReleaseOnView(view, p.slots, r.allocations);
  EXPECT_EQ(Snapshot(view), before);
}

INSTANTIATE_TEST_SUITE_P(TwoPhase, TwoPhaseStrategyTest,
                         ::testing::Values(PlacementStrategy::kPack, PlacementStrategy::kSpread,
                                           PlacementStrategy::kStrictPack,
                                           PlacementStrategy::kStrictSpread),
                         [](const ::testing::TestParamInfo<PlacementStrategy>& info) {
                           return std::string(PlacementStrategyName(info.param));
                         });

// ---- Names

TEST(BundleResourceNames, FollowTheWildcardAndIndexedForms) {
  EXPECT_EQ(WildcardBundleResourceName("CPU", "pg1"), "CPU_group_pg1");
  EXPECT_EQ(IndexedBundleResourceName("CPU", 3, "pg1"), "CPU_group_3_pg1");
  EXPECT_EQ(CommittedBundleResources(Req({{"CPU", 2}, {"GPU", 0.5}}), 0, "pg1"),
            Res({{"CPU_group_pg1", 2},
                 {"CPU_group_0_pg1", 2},
                 {"GPU_group_pg1", 0.5},
                 {"GPU_group_0_pg1", 0.5},
                 {"bundle_group_pg1", 1000},
                 {"bundle_group_0_pg1", 1000}}));
}

TEST(BundleResourceNames, BundlesOfOneGroupOnOneNodeAddUpUnderTheWildcardName) {
  ResourceSet node = CommittedBundleResources(Req({{"CPU", 1}}), 0, "pg");
  node += CommittedBundleResources(Req({{"CPU", 2}}), 1, "pg");
  EXPECT_EQ(node.Get("CPU_group_pg"), Quantity::Whole(3));
  EXPECT_EQ(node.Get("CPU_group_0_pg"), Quantity::Whole(1));
  EXPECT_EQ(node.Get("CPU_group_1_pg"), Quantity::Whole(2));
  EXPECT_EQ(node.Get("bundle_group_pg"), Quantity::Whole(2000));
}

TEST(TwoPhaseNames, NameEveryStateAndCommandForMetricsAndLogs) {
  EXPECT_STREQ(ReservationStateName(State::kPending), "pending");
  EXPECT_STREQ(ReservationStateName(State::kPreparing), "preparing");
  EXPECT_STREQ(ReservationStateName(State::kCommitting), "committing");
  EXPECT_STREQ(ReservationStateName(State::kCreated), "created");
  EXPECT_STREQ(ReservationStateName(State::kFailed), "failed");
  EXPECT_STREQ(ReservationStateName(State::kRemoved), "removed");
  EXPECT_STREQ(TwoPhaseCommandKindName(TwoPhaseCommand::Kind::kCancel), "cancel");
}

}  // namespace
}  // namespace orrery
