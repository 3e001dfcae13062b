// The paper's policies (random, dot-prod, gpu-clustering, gpu-packing, best-fit, fgd) on tiny
// hand-computed clusters, the scoring modes, FGD's incremental cache and the registry (ties:
// tie_break_test.cc).
#include <gtest/gtest.h>

#include <set>

#include "core/gpu/baseline_policies.h"
#include "core/gpu/fgd_policy.h"
#include "core/gpu/gpu_policy_registry.h"
#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu {
namespace {

using testing::IndexOf;
using testing::MakeCluster;
using testing::Node;
using testing::PlaceOn;
using testing::Pod;
using testing::Share;

constexpr ScoreOptions kExact{.tie_break = TieBreak::kLowestId, .scoring = Scoring::kExact};

FragmentationModel Typical(std::vector<TypicalPod> pods) {
  auto t = TypicalPods::FromList(std::move(pods));
  EXPECT_TRUE(t.ok());
  return FragmentationModel(*t);
}

std::string Chosen(GpuPlacementPolicy& p, const GpuCluster& c, const GpuPod& pod,
                   uint64_t seed = 1) {
  Rng rng(seed);
  const GpuDecision d = p.Choose(c, pod, rng);
  return d.placed() ? c.id(d.node) : "nowhere";
}

TEST(BestFit, LeastFreeCpuAndGpuAfterThePodWins) {
  GpuCluster c = MakeCluster({Node("big", 32, 8), Node("small", 8, 2)});
  // small: 100 (1 - 0.5*7000/128000 - 0.5*1000/8000) = 91.01; big: 44.14.
  EXPECT_EQ(int64_t(BestFitScore(c.node(1), Pod(1000, 1))), 91);
  EXPECT_EQ(int64_t(BestFitScore(c.node(0), Pod(1000, 1))), 44);
  BestFitPolicy p;
  EXPECT_EQ(Chosen(p, c, Pod(1000, 1)), "small");
}

TEST(BestFit, SharedPodTakesTheFullestDeviceThatHoldsIt) {
  GpuCluster c = MakeCluster({Node("n", 8, 3)});
  PlaceOn(c, 0, Share(700), {1});  // device 1: 300 free
  PlaceOn(c, 0, Share(400), {2});  // device 2: 600 free
  BestFitPolicy p;
  Rng rng(1);
  EXPECT_EQ(p.Choose(c, Share(250), rng).devices, testing::Devices({1}));
  EXPECT_EQ(p.Choose(c, Share(500), rng).devices, testing::Devices({2}));
  EXPECT_EQ(p.Choose(c, Pod(1000, 1), rng).devices, testing::Devices({0}));
}

TEST(DotProduct, SmallestDotProductOfFreeAndRequestWins) {
  GpuCluster c = MakeCluster({Node("gpu-rich", 16, 8), Node("cpu-rich", 64, 1)});
  // cpu-rich: dot = 0.5*0.125 + 0.125*0.125 = 0.078 -> 96; gpu-rich: 0.016 + 0.125 -> 92.
  EXPECT_EQ(int64_t(DotProductScore(c.node(1), Pod(16000, 1))), 96);
  EXPECT_EQ(int64_t(DotProductScore(c.node(0), Pod(16000, 1))), 92);
  DotProductPolicy p;
  EXPECT_EQ(Chosen(p, c, Pod(16000, 1)), "cpu-rich");
}

TEST(DotProduct, KubernetesScoringTiesWhereExactScoringDoesNot) {
  // Scores 98.24 (a) and 98.25 (b): the same integer, so the lower id wins under kKubernetes;
  // the exact score prefers b (smaller dot product).
  GpuCluster c = MakeCluster({Node("a", 64, 2), Node("b", 62, 2)});
  DotProductPolicy kube;
  DotProductPolicy exact(kExact);
  EXPECT_EQ(Chosen(kube, c, Pod(1000, 1)), "a");
  EXPECT_EQ(Chosen(exact, c, Pod(1000, 1)), "b");
}

TEST(GpuPacking, ScoreTiers) {
  GpuCluster c = MakeCluster({Node("empty8", 32, 8), Node("empty2", 16, 2), Node("used", 32, 4)});
  PlaceOn(c, 2, Share(500), {0});  // used: devices [500, 1000, 1000, 1000] free
  EXPECT_EQ(GpuPackingScore(c.node(0), Share(300)), 25);    // max(33 - 8, 8)
  EXPECT_EQ(GpuPackingScore(c.node(1), Share(300)), 31);    // max(33 - 2, 2)
  EXPECT_EQ(GpuPackingScore(c.node(2), Pod(1000, 1)), 49);  // one fully free GPU: 50 - 1
  EXPECT_EQ(GpuPackingScore(c.node(2), Share(300)), 95);    // 100 - (500*100/1000)/10
  EXPECT_EQ(GpuPackingScore(c.node(2), Pod(1000)), 0);      // CPU-only
  GpuPackingPolicy p;
  EXPECT_EQ(Chosen(p, c, Share(300)), "used");
  EXPECT_EQ(Chosen(p, c, Pod(1000, 1)), "used");
  EXPECT_EQ(Chosen(p, c, Share(600)), "used");  // must open a free GPU of the used node: 49
}

TEST(GpuClustering, PodsOfOneClassGather) {
  GpuCluster c = MakeCluster(
      {Node("mixed", 32, 8), Node("empty", 32, 8), Node("other", 32, 8), Node("shared", 32, 8)});
  PlaceOn(c, 0, Share(500), {0});
  PlaceOn(c, 0, Pod(1000, 1), {1});
  PlaceOn(c, 2, Pod(1000, 2), {0, 1});
  PlaceOn(c, 3, Share(500), {0});
  // pack = 25 * (8000 - gpu_left) / 8000.
  EXPECT_EQ(GpuClusteringScore(c.node(3), Share(200)), 75 + 1);
  EXPECT_EQ(GpuClusteringScore(c.node(0), Share(200)), 50 + 4);
  EXPECT_EQ(GpuClusteringScore(c.node(1), Share(200)), 25 + 0);
  EXPECT_EQ(GpuClusteringScore(c.node(2), Share(200)), 0 + 6);
  EXPECT_EQ(GpuClusteringScore(c.node(2), Pod(1000, 2)), 75 + 6);
  EXPECT_EQ(GpuClusteringScore(c.node(0), Pod(1000)), 0);
  GpuClusteringPolicy p;
  EXPECT_EQ(Chosen(p, c, Share(200)), "shared");
  EXPECT_EQ(Chosen(p, c, Pod(1000, 2)), "other");
  EXPECT_EQ(Chosen(p, c, Pod(1000, 4)), "empty");  // 25 + 0 beats mixed 0 + 4... and other 0 + 6
}

TEST(Fgd, AvoidsBreakingADeviceTheTypicalPodsNeed) {
  // Typical workload: 0.5-GPU pods. n1's device 0 has 0.6 free: a 0.2 pod there leaves 0.4, which
  // no typical pod can use (+400 milli fragment); on empty n0 nothing is lost. Best fit goes to
  // the fuller n1.
  GpuCluster c = MakeCluster({Node("n0", 16, 2), Node("n1", 16, 2)});
  PlaceOn(c, 1, Pod(1000, 1), {1});
  PlaceOn(c, 1, Share(400), {0});
  const FragmentationModel m = Typical({{.cpu_milli = 1000, .num_gpus = 1, .gpu_milli = 500}});
  FgdPolicy fgd(m);
  EXPECT_EQ(fgd.BestMove(c.node(0), Share(200)).delta, 0);
  EXPECT_EQ(fgd.BestMove(c.node(1), Share(200)).delta, 400);
  EXPECT_EQ(fgd.KubernetesScore(0), 50);
  EXPECT_EQ(fgd.KubernetesScore(400), 40);  // 100 * sigmoid(-0.4)
  EXPECT_EQ(Chosen(fgd, c, Share(200)), "n0");
  FgdPolicy fgd_exact(m, kExact);
  EXPECT_EQ(Chosen(fgd_exact, c, Share(200)), "n0");
  BestFitPolicy best_fit;
  EXPECT_EQ(Chosen(best_fit, c, Share(200)), "n1");
}

TEST(Fgd, FillsADeviceThatIsFragmentAnyway) {
  // Typical pods need 0.8 GPU; device 1 (0.6 free) is already fragment for them, so a 0.2 pod
  // goes there (-200 milli) rather than onto a free device (0 change).
  GpuCluster c = MakeCluster({Node("n", 16, 3)});
  PlaceOn(c, 0, Share(400), {1});
  FgdPolicy fgd(Typical({{.cpu_milli = 1000, .num_gpus = 1, .gpu_milli = 800}}), kExact);
  const FgdPolicy::Move m = fgd.BestMove(c.node(0), Share(200));
  EXPECT_EQ(m.delta, -200);
  EXPECT_EQ(m.devices, testing::Devices({1}));
}

TEST(Fgd, CpuOnlyPodGoesWhereItStrandsNoGpu) {
  // A CPU-only pod that would take the last cores of a node with free GPUs strands them.
  GpuCluster c = MakeCluster({Node("gpu-free", 4, 2), Node("gpu-full", 8, 1)});
  PlaceOn(c, 1, Pod(1000, 1), {0});
  FgdPolicy fgd(Typical({{.cpu_milli = 1000, .num_gpus = 1, .gpu_milli = 1000}}), kExact);
  EXPECT_EQ(fgd.BestMove(c.node(0), Pod(4000)).delta, 2000);
  EXPECT_EQ(fgd.BestMove(c.node(1), Pod(3000)).delta, 0);
  EXPECT_EQ(fgd.BestMove(c.node(0), Pod(3500)).delta, 2000);  // 0.5 cores left: no pod runs
  EXPECT_EQ(Chosen(fgd, c, Pod(3500)), "gpu-full");
}

TEST(Fgd, IncrementalCacheDecidesAsAFreshPolicy) {
  // One FgdPolicy kept across a stream of placements (rescoring only changed nodes) makes the
  // same decisions as a fresh policy per decision (rescoring everything).
  for (Scoring scoring : {Scoring::kKubernetes, Scoring::kExact}) {
    Rng gen(11);
    std::vector<GpuNodeSpec> nodes;
    for (int i = 0; i < 24; ++i) {
      nodes.push_back(Node("n" + std::to_string(100 + i), 8 * int64_t(1 + gen.UniformIndex(8)),
                           int32_t(1) << gen.UniformIndex(4)));
    }
    GpuCluster c = MakeCluster(nodes);
    std::vector<GpuPod> shapes = {Share(300, 2000), Share(500, 4000), Pod(8000, 1),
                                  Pod(4000),        Share(810, 3000), Pod(16000, 2)};
    const FragmentationModel m = FragmentationModel(TypicalPods::FromPods(shapes, {.coverage = 1}));
    const ScoreOptions o{.tie_break = TieBreak::kLowestId, .scoring = scoring};
    FgdPolicy cached(m, o);
    Rng r1(1), r2(1);
    for (int k = 0; k < 150; ++k) {
      const GpuPod& pod = shapes[gen.UniformIndex(shapes.size())];
      FgdPolicy fresh(m, o);
      const GpuDecision a = cached.Choose(c, pod, r1);
      const GpuDecision b = fresh.Choose(c, pod, r2);
      ASSERT_EQ(a.node, b.node) << "decision " << k;
      ASSERT_EQ(a.devices, b.devices) << "decision " << k;
      if (a.placed()) {
        ASSERT_TRUE(c.Place(a.node, pod, a.devices).ok());
      }
    }
    EXPECT_GT(cached.stats().cache_hits, cached.stats().moves_scored);
  }
}

TEST(Random, UniformAmongNodesThatFitAndDevicesThatHold) {
  GpuCluster c = MakeCluster({Node("a", 8, 4), Node("b", 8, 4), Node("tiny", 1, 4)});
  RandomFitPolicy p;
  std::set<std::string> nodes;
  std::set<int> devices;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Rng rng(seed);
    const GpuDecision d = p.Choose(c, Share(500, 2000), rng);
    ASSERT_TRUE(d.placed());
    nodes.insert(c.id(d.node));
    devices.insert(d.devices.ids[0]);
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"a", "b"}));  // tiny lacks the CPU
  EXPECT_EQ(devices, (std::set<int>{0, 1, 2, 3}));
}

TEST(Policies, NowhereWhenNothingFits) {
  GpuCluster c = MakeCluster({Node("a", 8, 1)});
  for (const auto& e : GpuPolicyRegistry::Builtin().entries()) {
    auto p = GpuPolicyRegistry::Builtin().Make(e.name, {});
    ASSERT_TRUE(p.ok());
    Rng rng(1);
    EXPECT_FALSE((*p)->Choose(c, Pod(1000, 2), rng).placed()) << e.name;
  }
}

TEST(Registry, ListsThePapersPoliciesAndRays) {
  const auto& r = GpuPolicyRegistry::Builtin();
  EXPECT_EQ(r.Names(),
            "random, dot-prod, gpu-clustering, gpu-packing, best-fit, fgd, hybrid, spread");
  for (const auto& e : r.entries()) {
    auto p = r.Make(e.name, {});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->name(), e.name);
  }
  auto bad = r.Make("fgd2", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("known: random, dot-prod"), std::string::npos);
}

}  // namespace
}  // namespace orrery::gpu
