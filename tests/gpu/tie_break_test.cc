// Breaking score ties (core/gpu/tie_break.h): the seeded node order of `perm`, and what each mode
// chooses on a tiny cluster where two nodes tie.
#include "core/gpu/tie_break.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "core/gpu/baseline_policies.h"
#include "core/gpu/fgd_policy.h"
#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu {
namespace {

using testing::MakeCluster;
using testing::Node;
using testing::Pod;

std::vector<int32_t> Order(int n, uint64_t seed) {
  Rng rng(seed);
  return DrawTieOrder(n, rng);
}

// Two nodes the best-fit score cannot tell apart; "b" comes first in the file, "a" by id.
GpuCluster TwoTiedNodes() { return MakeCluster({Node("b", 8, 2), Node("a", 8, 2)}); }

// The node `p` chooses for a 1-GPU pod on TwoTiedNodes, one decision per rng seed.
std::set<std::string> ChoicesOver(GpuPlacementPolicy& p, int decisions) {
  const GpuCluster c = TwoTiedNodes();
  std::set<std::string> seen;
  Rng rng(7);
  for (int k = 0; k < decisions; ++k) {
    const GpuDecision d = p.Choose(c, Pod(1000, 1), rng);
    EXPECT_TRUE(d.placed());
    seen.insert(c.id(d.node));
  }
  return seen;
}

TEST(TieOrder, IsAPermutationOfTheNodes) {
  for (int n : {0, 1, 2, 7, 1213}) {
    std::vector<int32_t> sorted = Order(n, 3);
    std::sort(sorted.begin(), sorted.end());
    std::vector<int32_t> expected(static_cast<size_t>(n));
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(sorted, expected) << n;
  }
}

TEST(TieOrder, DeterministicPerSeedAndDifferentAcrossSeeds) {
  EXPECT_EQ(Order(1213, 42), Order(1213, 42));
  std::set<std::vector<int32_t>> orders;
  for (uint64_t seed = 1; seed <= 10; ++seed) orders.insert(Order(1213, seed));
  EXPECT_EQ(orders.size(), 10u);
  // Not the identity (node-id or file order) in disguise.
  std::vector<int32_t> identity(1213);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(orders.count(identity), 0u);
}

TEST(TieOrder, NamesRoundTrip) {
  for (TieBreak t : {TieBreak::kPermuted, TieBreak::kLowestId, TieBreak::kRandom}) {
    TieBreak parsed = TieBreak::kRandom;
    EXPECT_TRUE(ParseTieBreak(TieBreakName(t), &parsed));
    EXPECT_EQ(parsed, t);
  }
  TieBreak untouched = TieBreak::kLowestId;
  EXPECT_FALSE(ParseTieBreak("name", &untouched));
  EXPECT_EQ(untouched, TieBreak::kLowestId);
  EXPECT_EQ(ScoreOptions{}.tie_break, TieBreak::kPermuted);  // the artifact's behaviour
}

TEST(TieBreakModes, IdAlwaysPicksTheLowestNodeId) {
  BestFitPolicy p({.tie_break = TieBreak::kLowestId});
  EXPECT_EQ(ChoicesOver(p, 20), (std::set<std::string>{"a"}));
}

TEST(TieBreakModes, PermPicksTheFirstNodeOfTheSeedsOrderForTheWholeRun) {
  std::set<std::string> across_seeds;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    BestFitPolicy p({.tie_break = TieBreak::kPermuted, .tie_seed = seed});
    const std::vector<int32_t> order = Order(2, seed);
    const std::string first = order[0] == 0 ? "b" : "a";  // node 0 is "b"
    // One node for every decision of the run, whatever the policy's own draws.
    EXPECT_EQ(ChoicesOver(p, 10), (std::set<std::string>{first})) << seed;
    across_seeds.insert(first);
  }
  EXPECT_EQ(across_seeds, (std::set<std::string>{"a", "b"}));
}

TEST(TieBreakModes, RandomDrawsAgainForEveryDecision) {
  BestFitPolicy p({.tie_break = TieBreak::kRandom});
  EXPECT_EQ(ChoicesOver(p, 40), (std::set<std::string>{"a", "b"}));
}

TEST(TieBreakModes, OnlyExactTiesAreBroken) {
  // "small" scores higher for best fit (less left after the pod): no tie, every mode agrees.
  const GpuCluster c = MakeCluster({Node("big", 32, 8), Node("small", 8, 2)});
  for (TieBreak t : {TieBreak::kPermuted, TieBreak::kLowestId, TieBreak::kRandom}) {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
      BestFitPolicy p({.tie_break = t, .tie_seed = seed});
      Rng rng(seed);
      EXPECT_EQ(c.id(p.Choose(c, Pod(1000, 1), rng).node), "small") << TieBreakName(t);
    }
  }
}

TEST(TieBreakModes, FgdFollowsTheSameOrderAsTheBaselines) {
  // A CPU-only pod changes no node's GPU fragmentation: every node ties under fgd.
  const GpuCluster c =
      MakeCluster({Node("n0", 8, 2), Node("n1", 8, 2), Node("n2", 8, 2), Node("n3", 8, 2)});
  const std::vector<GpuPod> shapes = {Pod(1000, 1)};
  const FragmentationModel m(TypicalPods::FromPods(shapes, {.coverage = 1}));
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const ScoreOptions o{.tie_break = TieBreak::kPermuted, .tie_seed = seed};
    FgdPolicy fgd(m, o);
    GpuPackingPolicy packing(o);
    const std::vector<int32_t> order = Order(c.size(), seed);
    const int first = int(std::min_element(order.begin(), order.end()) - order.begin());
    Rng rng(seed);
    EXPECT_EQ(fgd.Choose(c, Pod(1000), rng).node, first) << seed;
    EXPECT_EQ(packing.Choose(c, Pod(1000), rng).node, first) << seed;
  }
}

}  // namespace
}  // namespace orrery::gpu
