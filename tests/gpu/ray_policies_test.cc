// Ray's hybrid and spread on per-device GPUs: the adapters decide exactly as the core's
// HybridReferencePolicy and SpreadPolicy on the equivalent ClusterView (same node, same devices,
// same Rng draws), plus a few hand cases.
#include "core/gpu/ray_policies.h"

#include <gtest/gtest.h>

#include "core/cluster_view.h"
#include "core/scheduling/hybrid_policy.h"
#include "core/scheduling/spread_policy.h"
#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu {
namespace {

using testing::MakeCluster;
using testing::Node;
using testing::PlaceOn;
using testing::Pod;
using testing::Share;

constexpr int64_t kBytesPerMib = int64_t{1} << 20;

orrery::Node ViewNode(const GpuNodeSpec& s) {
  ResourceSet total;
  total.Set(Predefined::kCPU, Quantity::FromRaw(s.cpu_milli * 10));
  total.Set(Predefined::kMemory, Quantity::Whole(s.memory_mib * kBytesPerMib));
  if (s.num_gpus > 0) total.Set(Predefined::kGPU, Quantity::Whole(s.num_gpus));
  orrery::Node n;
  n.id = s.id;
  auto r = NodeResources::Create(total);
  EXPECT_TRUE(r.ok());
  n.resources = *r;
  return n;
}

ResourceRequest ViewRequest(const GpuPod& p) {
  ResourceSet r;
  r.Set(Predefined::kCPU, Quantity::FromRaw(p.cpu_milli * 10));
  r.Set(Predefined::kMemory, Quantity::Whole(p.memory_mib * kBytesPerMib));
  if (p.num_gpus > 0) {
    r.Set(Predefined::kGPU, p.IsShared() ? Quantity::FromRaw(int64_t{p.gpu_milli} * 10)
                                         : Quantity::Whole(p.num_gpus));
  }
  return ResourceRequest::FromSet(r);
}

struct Twin {
  GpuCluster cluster;
  ClusterView view;
};

Twin RandomTwin(Rng& gen, int n) {
  std::vector<GpuNodeSpec> specs;
  for (int i = 0; i < n; ++i) {
    const int32_t gpus = gen.UniformIndex(4) == 0 ? 0 : int32_t(1) << gen.UniformIndex(4);
    specs.push_back(Node("node-" + std::to_string(1000 - 7 * i),
                         8 * int64_t(1 + gen.UniformIndex(8)), gpus, "V100",
                         32 * int64_t(1 + gen.UniformIndex(8))));
  }
  Twin t{MakeCluster(specs), {}};
  for (const auto& s : specs) EXPECT_TRUE(t.view.AddNode(ViewNode(s)).ok());
  return t;
}

GpuPod RandomPod(Rng& gen) {
  const int64_t cpu = 500 * int64_t(1 + gen.UniformIndex(16));
  const int64_t mem = 1024 * int64_t(gen.UniformIndex(24));
  switch (gen.UniformIndex(4)) {
    case 0:
      return Pod(cpu, 0, 0, mem);
    case 1:
      return Pod(cpu, 1, int32_t(50 * (1 + gen.UniformIndex(19))), mem);
    case 2:
      return Pod(cpu, 1, 1000, mem);
    default:
      return Pod(cpu, int32_t(1) << gen.UniformIndex(4), 1000, mem);
  }
}

TEST(HybridGpu, DecidesAsTheCoreHybridPolicy) {
  const HybridOptions option_sets[] = {
      {},
      {.top_k_fraction = 0.0},
      {.spread_threshold = 0.0, .top_k_absolute = 3, .top_k_fraction = 0.0},
      {.spread_threshold = 0.3, .top_k_fraction = 0.5, .avoid_gpu_nodes = false},
  };
  for (const HybridOptions& o : option_sets) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      Rng gen(seed);
      Twin t = RandomTwin(gen, 40);
      HybridReferencePolicy reference(o);
      HybridGpuPolicy adapter(o);
      Rng ra(seed * 31), rb(seed * 31);
      for (int k = 0; k < 300; ++k) {
        const GpuPod pod = RandomPod(gen);
        const ResourceRequest req = ViewRequest(pod);
        const PolicyResult want =
            reference.Schedule(t.view, {.resources = &req, .require_available = true}, ra);
        const GpuDecision got = adapter.Choose(t.cluster, pod, rb);
        ASSERT_EQ(want.chosen(), got.placed()) << "seed " << seed << " pod " << k;
        if (!got.placed()) continue;
        ASSERT_EQ(t.view.at(want.slot).id, t.cluster.id(got.node))
            << "seed " << seed << " pod " << k;
        const auto alloc = t.view.Allocate(want.slot, req);
        ASSERT_TRUE(alloc.has_value());
        std::vector<int> got_ids(got.devices.ids.begin(),
                                 got.devices.ids.begin() + got.devices.size);
        ASSERT_EQ(alloc->DeviceIds(), got_ids);
        ASSERT_TRUE(t.cluster.Place(got.node, pod, got.devices).ok());
      }
    }
  }
}

TEST(SpreadGpu, DecidesAsTheCoreSpreadPolicy) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Rng gen(seed);
    Twin t = RandomTwin(gen, 30);
    SpreadPolicy reference;
    SpreadGpuPolicy adapter;
    Rng ra(1), rb(1);
    for (int k = 0; k < 300; ++k) {
      const GpuPod pod = RandomPod(gen);
      const ResourceRequest req = ViewRequest(pod);
      const PolicyResult want =
          reference.Schedule(t.view, {.resources = &req, .require_available = true}, ra);
      const GpuDecision got = adapter.Choose(t.cluster, pod, rb);
      ASSERT_EQ(want.chosen(), got.placed());
      ASSERT_EQ(reference.cursor(), adapter.cursor());
      if (!got.placed()) continue;
      ASSERT_EQ(t.view.at(want.slot).id, t.cluster.id(got.node));
      ASSERT_TRUE(t.view.Allocate(want.slot, req).has_value());
      ASSERT_TRUE(t.cluster.Place(got.node, pod, got.devices).ok());
    }
  }
}

TEST(HybridGpu, BelowTheThresholdTheFirstNodesByIdWin) {
  // All nodes below 50 % utilisation score 0: with k = 1 the lowest id that fits wins.
  GpuCluster c = MakeCluster({Node("c", 8, 2), Node("a", 8, 2), Node("b", 8, 2)});
  HybridGpuPolicy p({.top_k_fraction = 0.0});
  Rng rng(1);
  EXPECT_EQ(c.id(p.Choose(c, Pod(1000, 1), rng).node), "a");
  PlaceOn(c, 1, Pod(6000, 1), {0});  // a at 75 % CPU: now scores 0.75
  EXPECT_EQ(c.id(p.Choose(c, Pod(1000, 1), rng).node), "b");
}

TEST(HybridGpu, CpuOnlyPodsAvoidGpuNodes) {
  GpuCluster c = MakeCluster({Node("a-gpu", 8, 2), Node("z-cpu", 8, 0)});
  HybridGpuPolicy p({.top_k_fraction = 0.0});
  Rng rng(1);
  EXPECT_EQ(c.id(p.Choose(c, Pod(1000), rng).node), "z-cpu");
  HybridGpuPolicy q({.top_k_fraction = 0.0, .avoid_gpu_nodes = false});
  EXPECT_EQ(c.id(q.Choose(c, Pod(1000), rng).node), "a-gpu");
}

TEST(HybridGpu, ScoreIgnoresGpu) {
  GpuCluster c = MakeCluster({Node("n", 8, 2)});
  PlaceOn(c, 0, Pod(1000, 2), {0, 1});
  EXPECT_EQ(HybridGpuScore(c.node(0), 0.5), 0.0);  // GPUs full, CPU at 12.5 %
  EXPECT_DOUBLE_EQ(HybridGpuScore(c.node(0), 0.0), 0.125);
}

TEST(SpreadGpu, RoundRobinInIdOrderSkippingNodesThatDoNotFit) {
  GpuCluster c = MakeCluster({Node("b", 8, 1), Node("a", 8, 1), Node("c", 8, 0)});
  SpreadGpuPolicy p;
  Rng rng(1);
  EXPECT_EQ(c.id(p.Choose(c, Share(500), rng).node), "a");
  EXPECT_EQ(c.id(p.Choose(c, Share(500), rng).node), "b");
  EXPECT_EQ(c.id(p.Choose(c, Share(500), rng).node), "a");  // c has no GPU
  EXPECT_EQ(c.id(p.Choose(c, Pod(1000), rng).node), "b");
  EXPECT_EQ(c.id(p.Choose(c, Pod(1000), rng).node), "c");
}

}  // namespace
}  // namespace orrery::gpu
