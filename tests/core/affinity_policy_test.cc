// Node affinity through the Scheduler: soft/hard, spill/fail on unavailable, draining, dead.
#include <gtest/gtest.h>

#include "core/scheduling/scheduler.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::IdOf;
using testing::Req;

struct AffinityCase {
  const char* intent;
  SchedulingStrategy strategy;
  const char* expect_outcome;  // granted | spillback | canceled | ...
  const char* expect_node;     // "" when none
};

// n0 (local): free. n1: busy (all 4 CPUs used). n2: dead. n3: draining. n4: small (1 CPU).
ClusterView Cluster() {
  return ClusterBuilder()
      .Node("n0", {{"CPU", 4}})
      .Node("n1", {{"CPU", 4}}).Used({{"CPU", 4}})
      .Node("n2", {{"CPU", 4}}, NodeState::kDead)
      .Node("n3", {{"CPU", 4}}, NodeState::kDraining)
      .Node("n4", {{"CPU", 1}})
      .Build();
}

class AffinityTest : public ::testing::TestWithParam<AffinityCase> {};

TEST_P(AffinityTest, Decides) {
  const auto& c = GetParam();
  ClusterView v = Cluster();
  auto s = *Scheduler::Create({});
  Rng rng(7);
  SchedulingRequest req{.resources = Req({{"CPU", 2}}), .strategy = c.strategy};
  Decision d = s->Schedule(v, req, v.FindSlot("n0"), rng);
  EXPECT_STREQ(OutcomeName(d.outcome), c.expect_outcome) << c.intent << ": " << d.reason;
  EXPECT_EQ(IdOf(v, d.slot), c.expect_node) << c.intent;
  EXPECT_FALSE(d.reason.empty());
}

using S = SchedulingStrategy;
INSTANTIATE_TEST_SUITE_P(
    Scheduler, AffinityTest,
    ::testing::Values(
        AffinityCase{"hard to an unknown node is canceled", S::NodeAffinity("n9"),
                     "canceled", ""},
        AffinityCase{"hard to the local free node is granted", S::NodeAffinity("n0"), "granted",
                     "n0"},
        AffinityCase{"hard to a busy node waits there", S::NodeAffinity("n1"), "spillback", "n1"},
        AffinityCase{"hard to a dead node is canceled", S::NodeAffinity("n2"), "canceled", ""},
        AffinityCase{"hard to a draining node is canceled", S::NodeAffinity("n3"), "canceled",
                     ""},
        AffinityCase{"hard to a node that can never fit is canceled", S::NodeAffinity("n4"),
                     "canceled", ""},
        AffinityCase{"soft to a dead node falls through to hybrid",
                     S::NodeAffinity("n2", /*soft=*/true), "granted", "n0"},
        AffinityCase{"soft to a draining node falls through to hybrid",
                     S::NodeAffinity("n3", true), "granted", "n0"},
        AffinityCase{"soft to a busy node still waits there", S::NodeAffinity("n1", true),
                     "spillback", "n1"},
        AffinityCase{"soft + spill_on_unavailable to a busy node falls through",
                     S::NodeAffinity("n1", true, /*spill=*/true), "granted", "n0"},
        AffinityCase{"hard + spill_on_unavailable to a busy node is canceled",
                     S::NodeAffinity("n1", false, true), "canceled", ""},
        AffinityCase{"fail_on_unavailable to a busy node is canceled",
                     S::NodeAffinity("n1", true, false, /*fail=*/true), "canceled", ""},
        AffinityCase{"fail_on_unavailable to a free node is granted there",
                     S::NodeAffinity("n0", false, false, true), "granted", "n0"}));

TEST(Affinity, HardCancelReasonSaysUnschedulable) {
  ClusterView v = Cluster();
  auto s = *Scheduler::Create({});
  Rng rng(1);
  SchedulingRequest req{.resources = Req({{"CPU", 1}}), .strategy = S::NodeAffinity("n2")};
  Decision d = s->Schedule(v, req, v.FindSlot("n0"), rng);
  EXPECT_NE(d.reason.find("unschedulable"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("dead"), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace orrery
