// Hybrid policy (Ray's DEFAULT): every behaviour of DESIGN section 3, run against both the
// reference scan and the indexed production policy.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "core/scheduling/hybrid_policy.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::IdOf;
using testing::Req;
using testing::Slot;

enum class Impl { kReference, kIndexed };

std::unique_ptr<SchedulingPolicy> Make(Impl impl, HybridOptions o) {
  if (impl == Impl::kReference) return std::make_unique<HybridReferencePolicy>(o);
  return std::make_unique<HybridPolicy>(o);
}

HybridOptions K1() {
  HybridOptions o;
  o.top_k_fraction = 0.0;
  return o;
}

struct Call {
  const ClusterView* view;
  ResourceRequest req;
  std::string preferred;
  std::string excluded;
  bool require_available = false;
};

class HybridTest : public ::testing::TestWithParam<Impl> {
 protected:
  PolicyResult Run(const ClusterView& v, const ResourceRequest& r, const std::string& preferred,
                   HybridOptions o = K1(), const std::string& excluded = "",
                   bool require_available = false, uint64_t seed = 1) {
    auto p = Make(GetParam(), o);
    Rng rng(seed);
    PolicyRequest pr;
    pr.resources = &r;
    pr.preferred_slot = preferred.empty() ? -1 : Slot(v, preferred);
    pr.excluded_slot = excluded.empty() ? -1 : Slot(v, excluded);
    pr.require_available = require_available;
    return p->Schedule(v, pr, rng);
  }
  std::string Pick(const ClusterView& v, const ResourceRequest& r, const std::string& preferred,
                   HybridOptions o = K1()) {
    PolicyResult res = Run(v, r, preferred, o);
    return res.chosen() ? IdOf(v, res.slot) : "<none>";
  }
};

TEST_P(HybridTest, BelowThresholdEveryNodeScoresZeroSoTheLocalNodeKeepsWork) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 10}}).Used({{"CPU", 4}})
               .Node("n1", {{"CPU", 10}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0"), "n0");
}

TEST_P(HybridTest, AboveThresholdTheLeastUtilisedNodeWins) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 10}}).Used({{"CPU", 6}})
               .Node("n1", {{"CPU", 10}}).Used({{"CPU", 1}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0"), "n1");
}

TEST_P(HybridTest, PreferredNodeWinsWhenItsScoreEqualsTheBest) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 10}}).Used({{"CPU", 7}})
               .Node("n1", {{"CPU", 10}}).Used({{"CPU", 7}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n1"), "n1");
}

TEST_P(HybridTest, TiesAmongNonPreferredNodesGoToTheLowestId) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}).Node("b", {{"CPU", 4}})
               .Node("c", {{"CPU", 4}}).Used({{"CPU", 3}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "c"), "a");
}

TEST_P(HybridTest, CriticalUtilisationIsTheMaxOfCpuMemoryAndObjectStore) {
  auto v = ClusterBuilder()
               .Node("n0", {{"CPU", 10}, {"memory", 100}}).Used({{"CPU", 1}, {"memory", 90}})
               .Node("n1", {{"CPU", 10}, {"memory", 100}}).Used({{"CPU", 6}, {"memory", 10}})
               .Build();
  // n0: max(0.1, 0.9) = 0.9 ; n1: max(0.6, 0.1) = 0.6.
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0"), "n1");
}

TEST_P(HybridTest, AvailableNodesBeatFeasibleOnes) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Used({{"CPU", 2}})
               .Node("n1", {{"CPU", 10}}).Used({{"CPU", 9}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0"), "n1");
}

TEST_P(HybridTest, WhenNothingIsAvailableTheLocalFeasibleNodeWinsIfAsGoodAsTheBest) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Used({{"CPU", 2}})
               .Node("n1", {{"CPU", 2}}).Used({{"CPU", 2}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n1"), "n1");
}

TEST_P(HybridTest, WhenNothingIsAvailableTheLeastUtilisedFeasibleNodeWins) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Used({{"CPU", 2}})
               .Node("n1", {{"CPU", 4}}).Used({{"CPU", 3}}).Build();
  // Both feasible for 2 CPUs, neither available; n1 (0.75) beats local n0 (1.0).
  EXPECT_EQ(Pick(v, Req({{"CPU", 2}}), "n0"), "n1");
}

TEST_P(HybridTest, RequireAvailableSkipsFeasibleOnlyNodes) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Used({{"CPU", 2}}).Build();
  PolicyResult r = Run(v, Req({{"CPU", 1}}), "n0", K1(), "", /*require_available=*/true);
  EXPECT_EQ(r.kind, PolicyResult::Kind::kUnavailable);
}

TEST_P(HybridTest, NoFeasibleNodeIsInfeasible) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 4}}).Build();
  EXPECT_EQ(Run(v, Req({{"CPU", 8}}), "n0").kind, PolicyResult::Kind::kInfeasible);
  EXPECT_EQ(Run(v, Req({{"GPU", 1}}), "n0").kind, PolicyResult::Kind::kInfeasible);
}

TEST_P(HybridTest, DeadAndDrainingNodesAreNeverChosen) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}, NodeState::kDead)
               .Node("n1", {{"CPU", 4}}, NodeState::kDraining)
               .Node("n2", {{"CPU", 4}}).Used({{"CPU", 3}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0"), "n2");
  // Only n2 is a candidate even when busy: it is chosen from the feasible class.
  EXPECT_EQ(Pick(v, Req({{"CPU", 2}}), "n0"), "n2");
}

TEST_P(HybridTest, OnlyDrainingNodeCouldFitMeansInfeasible) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 2}})
               .Node("n1", {{"CPU", 16}}, NodeState::kDraining).Build();
  EXPECT_EQ(Run(v, Req({{"CPU", 8}}), "n0").kind, PolicyResult::Kind::kInfeasible);
}

TEST_P(HybridTest, CpuRequestAvoidsGpuNodesWhileAGpuLessNodeIsAvailable) {
  auto v = ClusterBuilder().Node("gpu", {{"CPU", 8}, {"GPU", 1}})
               .Node("cpu", {{"CPU", 8}}).Used({{"CPU", 7}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "gpu"), "cpu");
}

TEST_P(HybridTest, CpuRequestFallsBackToGpuNodesWhenNoGpuLessNodeIsAvailable) {
  auto v = ClusterBuilder().Node("gpu", {{"CPU", 8}, {"GPU", 1}})
               .Node("cpu", {{"CPU", 8}}).Used({{"CPU", 8}}).Build();
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "cpu"), "gpu");
}

TEST_P(HybridTest, GpuAvoidanceCanBeTurnedOff) {
  auto v = ClusterBuilder().Node("gpu", {{"CPU", 8}, {"GPU", 1}})
               .Node("cpu", {{"CPU", 8}}).Build();
  HybridOptions o = K1();
  o.avoid_gpu_nodes = false;
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "gpu", o), "gpu");
}

TEST_P(HybridTest, GpuRequestOnlyConsidersNodesWithAFreeDevice) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 8}, {"GPU", 1}}).Used({{"GPU", 0.7}})
               .Node("b", {{"CPU", 8}, {"GPU", 1}}).Used({{"CPU", 7}})
               .Node("c", {{"CPU", 8}}).Build();
  EXPECT_EQ(Pick(v, Req({{"GPU", 0.5}}), "c"), "b");
}

TEST_P(HybridTest, ForceSpillbackExcludesTheLocalNode) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Used({{"CPU", 3}})
               .Build();
  PolicyResult r = Run(v, Req({{"CPU", 1}}), "n0", K1(), /*excluded=*/"n0");
  ASSERT_TRUE(r.chosen());
  EXPECT_EQ(IdOf(v, r.slot), "n1");
}

TEST_P(HybridTest, ForceSpillbackWithOnlyTheLocalNodeFindsNothing) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 4}}).Build();
  EXPECT_FALSE(Run(v, Req({{"CPU", 1}}), "n0", K1(), "n0").chosen());
}

TEST_P(HybridTest, TopKDrawsUniformlyAmongTheKBestNodes) {
  ClusterBuilder b;
  // 10 nodes above the threshold with distinct utilisation: n0 best ... n9 worst.
  for (int i = 0; i < 10; ++i) {
    b.Node("n" + std::to_string(i), {{"CPU", 100}}).Used({{"CPU", 50.0 + i}});
  }
  auto v = b.Build();
  HybridOptions o;  // default top_k_fraction 0.2: k = 2
  std::set<std::string> picked;
  for (uint64_t seed = 1; seed <= 64; ++seed) {
    PolicyResult r = Run(v, Req({{"CPU", 1}}), "n9", o, "", false, seed);
    picked.insert(IdOf(v, r.slot));
  }
  EXPECT_EQ(picked, (std::set<std::string>{"n0", "n1"}));
}

TEST_P(HybridTest, TopKCountsEveryNodeInTheView) {
  EXPECT_EQ(HybridTopK(HybridOptions{}, 10), 2);
  EXPECT_EQ(HybridTopK(HybridOptions{}, 4), 1);
  HybridOptions o;
  o.top_k_absolute = 3;
  EXPECT_EQ(HybridTopK(o, 10), 3);
}

TEST_P(HybridTest, ZeroThresholdMeansPureLeastUtilised) {
  auto v = ClusterBuilder().Node("n0", {{"CPU", 10}}).Used({{"CPU", 2}})
               .Node("n1", {{"CPU", 10}}).Used({{"CPU", 1}}).Build();
  HybridOptions o = K1();
  o.spread_threshold = 0.0;
  EXPECT_EQ(Pick(v, Req({{"CPU", 1}}), "n0", o), "n1");
}

TEST_P(HybridTest, SameSeedSameDecision) {
  ClusterBuilder b;
  for (int i = 0; i < 20; ++i) b.Node("n" + std::to_string(i), {{"CPU", 8}}).Used({{"CPU", 5}});
  auto v = b.Build();
  HybridOptions o;
  o.top_k_fraction = 0.5;
  EXPECT_EQ(Run(v, Req({{"CPU", 1}}), "", o, "", false, 42).slot,
            Run(v, Req({{"CPU", 1}}), "", o, "", false, 42).slot);
}

INSTANTIATE_TEST_SUITE_P(Both, HybridTest, ::testing::Values(Impl::kReference, Impl::kIndexed),
                         [](const auto& info) {
                           return info.param == Impl::kReference ? "Reference" : "Indexed";
                         });

}  // namespace
}  // namespace orrery
