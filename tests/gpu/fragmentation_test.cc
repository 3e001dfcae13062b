// The fragmentation measure (Weng et al., ATC'23, section 4) and the typical pods it is relative
// to: hand-computed cases, then the fast grouped evaluation against the plain definition.
#include "core/gpu/fragmentation.h"

#include <gtest/gtest.h>

#include "core/rng.h"
#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu {
namespace {

using testing::MakeCluster;
using testing::Node;
using testing::PlaceOn;
using testing::Pod;
using testing::Share;

TypicalPod T(int64_t cpu_milli, int32_t num_gpus, int32_t gpu_milli, int64_t count) {
  return {.cpu_milli = cpu_milli, .num_gpus = num_gpus, .gpu_milli = gpu_milli, .count = count};
}

FragmentationModel Model(std::vector<TypicalPod> pods) {
  auto t = TypicalPods::FromList(std::move(pods));
  EXPECT_TRUE(t.ok()) << t.status().message();
  return FragmentationModel(*t);
}

// A 4-GPU node with devices [1000, 1000, 500, 0] free and 10 cores free.
GpuNodeState HandNode(int64_t cpu_left_milli) {
  GpuCluster c = MakeCluster({Node("n", 12, 4)});
  PlaceOn(c, 0, Share(500, 1000), {2});
  PlaceOn(c, 0, Pod(1000, 1), {3});
  GpuNodeState n = c.node(0);
  n.cpu_left = cpu_left_milli;
  return n;
}

TEST(Fragmentation, PerPodDefinition) {
  const GpuNodeState n = HandNode(10000);
  // A whole-GPU pod fits (devices 0 and 1): the half-free device 2 is its fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(2000, 1, 1000, 1)), 500);
  // A 0.6 share fits devices 0 and 1; device 2 (0.5 free) is fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(1000, 1, 600, 1)), 500);
  // A 0.5 share fits devices 0, 1 and 2: nothing is fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(1000, 1, 500, 1)), 0);
  // A CPU-only pod cannot use any GPU: all 2500 free milli-GPU are fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(4000, 0, 0, 1)), 2500);
  // Three whole GPUs do not fit (two free devices): everything is fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(1000, 3, 1000, 1)), 2500);
  // Not enough CPU left: everything is fragment.
  EXPECT_EQ(FragmentationModel::ForPod(n, T(12000, 1, 1000, 1)), 2500);
}

TEST(Fragmentation, ExpectationOverTypicalPods) {
  // W = 1 + 1 + 2 = 4; W * F = 500 + 500 + 2 * 2500 = 6000, F = 1500 milli-GPU.
  const FragmentationModel m = Model({T(2000, 1, 1000, 1), T(1000, 1, 600, 1), T(4000, 0, 0, 2)});
  EXPECT_EQ(m.weight(), 4);
  EXPECT_EQ(m.Weighted(HandNode(10000)), 6000);
  EXPECT_DOUBLE_EQ(m.Expected(HandNode(10000)), 1500.0);
  // With 1.5 cores left the whole-GPU pod (2 cores) no longer runs: 2500 + 500 + 5000.
  EXPECT_EQ(m.Weighted(HandNode(1500)), 8000);
}

TEST(Fragmentation, ModelMismatchMakesEverythingFragment) {
  GpuCluster c = MakeCluster({Node("t4", 8, 2, "T4"), Node("v", 8, 2, "V100")});
  TypicalPod v100_only = T(1000, 1, 1000, 1);
  v100_only.models = c.ResolveModels("V100");
  const FragmentationModel m = Model({v100_only});
  EXPECT_EQ(m.Weighted(c.node(0)), 2000);
  EXPECT_EQ(m.Weighted(c.node(1)), 0);
}

TEST(Fragmentation, FullNodeHasNoFragment) {
  GpuCluster c = MakeCluster({Node("n", 8, 1)});
  PlaceOn(c, 0, Pod(1000, 1), {0});
  EXPECT_EQ(Model({T(1000, 0, 0, 3)}).Weighted(c.node(0)), 0);
}

TEST(Fragmentation, GroupedEvaluationMatchesTheDefinition) {
  // Random workloads and node states: W * F from the grouped fast path equals the sum of
  // count * F(n, t) from the plain definition.
  Rng rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<GpuPod> pods;
    const int32_t shares[] = {100, 250, 300, 470, 500, 810, 1000};
    for (int i = 0; i < 300; ++i) {
      const int kind = int(rng.UniformIndex(4));
      const int64_t cpu = 1000 * int64_t(1 + rng.UniformIndex(24));
      if (kind == 0) pods.push_back(Pod(cpu));
      if (kind == 1) pods.push_back(Share(shares[rng.UniformIndex(7)], cpu));
      if (kind >= 2) pods.push_back(Pod(cpu, int32_t(1) << rng.UniformIndex(4)));
    }
    const TypicalPods t = TypicalPods::FromPods(pods, {.coverage = 0.9});
    const FragmentationModel m(t);
    for (int k = 0; k < 200; ++k) {
      GpuNodeState n;
      n.num_gpus = int8_t(1 + rng.UniformIndex(8));
      n.cpu_total = 96000;
      n.cpu_left = int64_t(rng.UniformIndex(96001));
      for (int d = 0; d < n.num_gpus; ++d) {
        n.device_left[size_t(d)] =
            rng.UniformIndex(3) == 0 ? int16_t(1000) : int16_t(10 * rng.UniformIndex(101));
      }
      int64_t want = 0;
      for (const TypicalPod& p : t.pods()) want += p.count * FragmentationModel::ForPod(n, p);
      ASSERT_EQ(m.Weighted(n), want) << "round " << round << " state " << k;
    }
  }
}

TEST(TypicalPods, MostFrequentShapesUpToTheCoverage) {
  std::vector<GpuPod> pods;
  for (int i = 0; i < 50; ++i) pods.push_back(Share(500));
  for (int i = 0; i < 30; ++i) pods.push_back(Pod(2000, 1));
  for (int i = 0; i < 15; ++i) pods.push_back(Pod(4000));
  for (int i = 0; i < 5; ++i) pods.push_back(Pod(8000, 8));
  const TypicalPods t = TypicalPods::FromPods(pods, {.coverage = 0.9});
  // 50 + 30 = 80 % < 90 %, so the third shape is kept; 95 % >= 90 %: stop.
  ASSERT_EQ(t.pods().size(), 3u);
  EXPECT_EQ(t.pods()[0].gpu_milli, 500);
  EXPECT_EQ(t.pods()[1].num_gpus, 1);
  EXPECT_EQ(t.pods()[2].num_gpus, 0);
  EXPECT_EQ(t.total_count(), 95);
  EXPECT_DOUBLE_EQ(t.coverage(), 0.95);
  EXPECT_EQ(TypicalPods::FromPods(pods, {.coverage = 1.0}).pods().size(), 4u);
  // Without CPU-only pods, the 85 GPU pods are the workload.
  const TypicalPods g = TypicalPods::FromPods(pods, {.coverage = 0.9, .include_cpu_pods = false});
  EXPECT_EQ(g.workload_pods(), 85);
  ASSERT_EQ(g.pods().size(), 2u);  // 80 / 85 = 94 %
}

TEST(TypicalPods, ShapeIncludesTheModelConstraint) {
  GpuCluster c = MakeCluster({Node("t4", 8, 2, "T4"), Node("v", 8, 2, "V100")});
  GpuPod a = Share(500), b = Share(500);
  b.models = c.ResolveModels("T4");
  const TypicalPods t = TypicalPods::FromPods(std::vector<GpuPod>{a, a, b}, {.coverage = 1.0});
  ASSERT_EQ(t.pods().size(), 2u);
  EXPECT_EQ(t.pods()[0].count, 2);
  EXPECT_FALSE(t.pods()[1].models.any());
}

TEST(TypicalPods, FromListRejectsBadEntries) {
  EXPECT_FALSE(TypicalPods::FromList({T(1000, 1, 500, 0)}).ok());
  EXPECT_FALSE(TypicalPods::FromList({T(1000, 2, 500, 1)}).ok());
}

}  // namespace
}  // namespace orrery::gpu
