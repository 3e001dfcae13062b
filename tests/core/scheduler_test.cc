// Scheduler dispatch: locality, zero-resource actors, outcome relative to the local node,
// selectable policies.
#include <gtest/gtest.h>

#include <set>

#include "core/scheduling/scheduler.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::IdOf;
using testing::Req;

TEST(Locality, MostArgumentBytesWins) {
  std::vector<ObjectArg> args = {{100, {"n1"}}, {60, {"n2"}}, {50, {"n2", "n3"}}};
  EXPECT_EQ(ChooseLocalityNode(args), "n2");  // n2 has 110
}

TEST(Locality, TiesGoToTheFirstNodeToReachTheMaximum) {
  std::vector<ObjectArg> args = {{10, {"b"}}, {10, {"a"}}};
  EXPECT_EQ(ChooseLocalityNode(args), "b");
}

TEST(Locality, NoLocationsOrZeroBytesMeansNoPreference) {
  EXPECT_EQ(ChooseLocalityNode({}), std::nullopt);
  EXPECT_EQ(ChooseLocalityNode({{0, {"a"}}}), std::nullopt);
}

TEST(Scheduler, LocalityChosenNodeIsThePreferredNodeForHybrid) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  SchedulingRequest req{.resources = Req({{"CPU", 1}}), .args = {{1 << 20, {"n1"}}}};
  Decision d = s->Schedule(v, req, v.FindSlot("n0"), rng);
  EXPECT_EQ(d.outcome, Decision::Outcome::kSpillback);
  EXPECT_EQ(IdOf(v, d.slot), "n1");
  EXPECT_EQ(IdOf(v, d.preferred_slot), "n1");
}

TEST(Scheduler, ExplicitPreferredNodeOverridesArguments) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  SchedulingRequest req{.resources = Req({{"CPU", 1}}), .preferred = "n0",
                        .args = {{1 << 20, {"n1"}}}};
  EXPECT_EQ(IdOf(v, s->Schedule(v, req, v.FindSlot("n0"), rng).slot), "n0");
}

TEST(Scheduler, SpreadOverridesLocality) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  SchedulingRequest req{.resources = Req({{"CPU", 1}}), .strategy = SchedulingStrategy::Spread(),
                        .args = {{1 << 20, {"n1"}}}};
  EXPECT_EQ(IdOf(v, s->Schedule(v, req, v.FindSlot("n1"), rng).slot), "n0");
}

TEST(Scheduler, ZeroResourceActorsArePlacedRandomlyAmongAvailableNodes) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 1}}).Node("b", {{"CPU", 1}})
               .Node("c", {{"CPU", 1}}, NodeState::kDead).Build();
  auto s = *Scheduler::Create({});
  Rng rng(3);
  std::set<std::string> seen;
  SchedulingRequest req{.resources = ResourceRequest(), .actor_creation = true};
  for (int i = 0; i < 40; ++i) {
    Decision d = s->Schedule(v, req, v.FindSlot("a"), rng);
    EXPECT_EQ(d.policy, "random");
    seen.insert(IdOf(v, d.slot));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b"}));
}

TEST(Scheduler, ZeroResourceTasksStillUseHybrid) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 1}}).Node("b", {{"CPU", 1}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(3);
  SchedulingRequest req{.resources = ResourceRequest()};
  Decision d = s->Schedule(v, req, v.FindSlot("b"), rng);
  EXPECT_EQ(d.policy, "hybrid");
  EXPECT_EQ(IdOf(v, d.slot), "b");
}

TEST(Scheduler, OutcomeIsRelativeToTheLocalNode) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"GPU", 1}, {"CPU", 1}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  EXPECT_EQ(s->Schedule(v, {.resources = Req({{"CPU", 1}})}, v.FindSlot("n0"), rng).outcome,
            Decision::Outcome::kGranted);
  EXPECT_EQ(s->Schedule(v, {.resources = Req({{"GPU", 1}})}, v.FindSlot("n0"), rng).outcome,
            Decision::Outcome::kSpillback);
  EXPECT_EQ(s->Schedule(v, {.resources = Req({{"GPU", 2}})}, v.FindSlot("n0"), rng).outcome,
            Decision::Outcome::kInfeasible);
  EXPECT_EQ(s->Schedule(v, {.resources = Req({{"CPU", 1}}), .require_available = true},
                        v.FindSlot("n0"), rng).outcome,
            Decision::Outcome::kGranted);
}

TEST(Scheduler, ForceSpillbackExcludesTheLocalNodeEvenForSpread) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Build();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  SchedulingRequest req{.resources = Req({{"CPU", 1}}), .strategy = SchedulingStrategy::Spread(),
                        .force_spillback = true};
  EXPECT_EQ(IdOf(v, s->Schedule(v, req, v.FindSlot("n0"), rng).slot), "n1");
  EXPECT_EQ(IdOf(v, s->Schedule(v, req, v.FindSlot("n0"), rng).slot), "n1");
}

TEST(Scheduler, UnknownPolicyNameIsNotFoundAndListsKnownOnes) {
  auto s = Scheduler::Create({.policy = "nope"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().message().find("hybrid"), std::string::npos);
}

TEST(Scheduler, ExamplePolicyIsSelectableByName) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Used({{"CPU", 3}})
               .Build();
  auto s = *Scheduler::Create({.policy = "binpack"});
  Rng rng(1);
  Decision d = s->Schedule(v, {.resources = Req({{"CPU", 1}})}, v.FindSlot("n0"), rng);
  EXPECT_EQ(d.policy, "binpack");
  EXPECT_EQ(IdOf(v, d.slot), "n1");
}

TEST(Scheduler, DefaultStrategyCanUseSpreadPolicyByName) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Build();
  auto s = *Scheduler::Create({.policy = "spread"});
  Rng rng(1);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    got.push_back(IdOf(v, s->Schedule(v, {.resources = Req({{"CPU", 1}})}, 0, rng).slot));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"n0", "n1", "n0"}));
}

}  // namespace
}  // namespace orrery
