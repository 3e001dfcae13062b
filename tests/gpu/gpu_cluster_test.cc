// GpuCluster: device accounting, fit rules, model constraints, versions.
#include "core/gpu/gpu_cluster.h"

#include <gtest/gtest.h>

#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu {
namespace {

using testing::Devices;
using testing::MakeCluster;
using testing::Node;
using testing::PlaceOn;
using testing::Pod;
using testing::Share;

TEST(GpuCluster, CreateRejectsBadNodes) {
  EXPECT_FALSE(GpuCluster::Create({Node("a", 8, 2), Node("a", 8, 2)}).ok());  // duplicate id
  EXPECT_FALSE(GpuCluster::Create({Node("", 8, 2)}).ok());
  EXPECT_FALSE(GpuCluster::Create({Node("a", 8, kMaxDevicesPerNode + 1)}).ok());
  GpuNodeSpec neg = Node("a", 8, 2);
  neg.cpu_milli = -1;
  EXPECT_FALSE(GpuCluster::Create({neg}).ok());
}

TEST(GpuCluster, TotalsAndIdOrder) {
  GpuCluster c = MakeCluster({Node("b", 8, 2, "T4"), Node("a", 16, 4, "V100"), Node("c", 4, 0)});
  EXPECT_EQ(c.gpu_total_milli(), 6000);
  EXPECT_EQ(c.cpu_total_milli(), 28000);
  EXPECT_EQ(c.models(), (std::vector<std::string>{"T4", "V100"}));
  EXPECT_EQ(c.by_id(), (std::vector<int>{1, 0, 2}));  // a, b, c
  EXPECT_EQ(c.rank(0), 1);
  EXPECT_EQ(c.node(2).model, -1);
}

TEST(GpuCluster, SharedPodTakesAShareOfOneDevice) {
  GpuCluster c = MakeCluster({Node("n", 8, 2)});
  PlaceOn(c, 0, Share(300), {1});
  const GpuNodeState& n = c.node(0);
  EXPECT_EQ(n.device_left[0], 1000);
  EXPECT_EQ(n.device_left[1], 700);
  EXPECT_EQ(n.gpu_left, 1700);
  EXPECT_EQ(n.free_devices, 1);
  EXPECT_EQ(n.max_device_left, 1000);
  EXPECT_EQ(n.cpu_left, 7000);
  EXPECT_EQ(n.gpu_class_pods[0], 1);
  EXPECT_EQ(c.gpu_allocated_milli(), 300);
}

TEST(GpuCluster, MultiGpuPodNeedsWholeFreeDevices) {
  GpuCluster c = MakeCluster({Node("n", 8, 4)});
  PlaceOn(c, 0, Share(100), {0});
  EXPECT_TRUE(c.Fits(0, Pod(1000, 3)));
  EXPECT_FALSE(c.Fits(0, Pod(1000, 4)));                         // device 0 is partly used
  EXPECT_FALSE(c.Place(0, Pod(1000, 2), Devices({0, 1})).ok());  // device 0 lacks 1000
  PlaceOn(c, 0, Pod(1000, 2), {1, 2});
  EXPECT_EQ(c.node(0).free_devices, 1);
  EXPECT_EQ(c.node(0).gpu_class_pods[2], 1);
  EXPECT_EQ(c.node(0).gpu_classes, 2);
}

TEST(GpuCluster, CpuAndMemoryAreRealConstraints) {
  GpuCluster c = MakeCluster({Node("n", 4, 1, "V100", /*mem_gib=*/1)});
  EXPECT_FALSE(c.Fits(0, Pod(5000)));
  EXPECT_FALSE(c.Fits(0, Pod(1000, 0, 0, /*memory_mib=*/2048)));
  EXPECT_TRUE(c.Fits(0, Pod(4000, 0, 0, 1024)));
  EXPECT_TRUE(c.FitsEmpty(0, Pod(4000, 1)));
  EXPECT_FALSE(c.FitsEmpty(0, Pod(4000, 2)));
}

TEST(GpuCluster, ModelConstraintIsAPipeSeparatedList) {
  GpuCluster c =
      MakeCluster({Node("t4", 8, 1, "T4"), Node("v", 8, 1, "V100M32"), Node("cpu", 8, 0)});
  GpuPod p = Share(500);
  p.models = c.ResolveModels("V100M16|V100M32");
  EXPECT_FALSE(c.Fits(0, p));
  EXPECT_TRUE(c.Fits(1, p));
  p.models = c.ResolveModels("");
  EXPECT_TRUE(p.models.any());
  EXPECT_TRUE(c.Fits(0, p));
  p.models = c.ResolveModels("A100");  // no node has it
  EXPECT_FALSE(p.models.any());
  EXPECT_FALSE(c.AnyFitsEmpty(p));
  GpuPod cpu_only = Pod(1000);
  cpu_only.models = c.ResolveModels("T4");  // a constraint applies to CPU-only pods too
  EXPECT_TRUE(c.Fits(0, cpu_only));
  EXPECT_FALSE(c.Fits(2, cpu_only));
}

TEST(GpuCluster, PlaceRejectsBadDeviceLists) {
  GpuCluster c = MakeCluster({Node("n", 8, 2)});
  EXPECT_FALSE(c.Place(0, Share(500), Devices({})).ok());
  EXPECT_FALSE(c.Place(0, Share(500), Devices({2})).ok());
  EXPECT_FALSE(c.Place(0, Pod(1000, 2), Devices({1, 1})).ok());
  EXPECT_EQ(c.gpu_allocated_milli(), 0);
}

TEST(GpuCluster, RemoveUndoesPlace) {
  GpuCluster c = MakeCluster({Node("n", 8, 2)});
  const uint64_t v0 = c.node(0).version;
  PlaceOn(c, 0, Share(250), {0});
  EXPECT_NE(c.node(0).version, v0);
  ASSERT_TRUE(c.Remove(0, Share(250), Devices({0})).ok());
  EXPECT_EQ(c.node(0).gpu_left, 2000);
  EXPECT_EQ(c.node(0).cpu_left, 8000);
  EXPECT_EQ(c.node(0).gpu_classes, 0);
  EXPECT_FALSE(c.Remove(0, Share(250), Devices({0})).ok());  // nothing left to remove
}

TEST(GpuCluster, CopiesGetTheirOwnUid) {
  GpuCluster a = MakeCluster({Node("n", 8, 2)});
  GpuCluster b = a;
  EXPECT_NE(a.uid(), b.uid());
  EXPECT_EQ(a.node(0).version, b.node(0).version);
}

TEST(GpuPod, ValidateShapes) {
  EXPECT_TRUE(Share(1000).Validate().ok());
  EXPECT_TRUE(Pod(1000, 8).Validate().ok());
  EXPECT_FALSE(Pod(1000, 2, 500).Validate().ok());
  EXPECT_FALSE(Pod(1000, 0, 500).Validate().ok());
  EXPECT_FALSE(Pod(-1).Validate().ok());
}

}  // namespace
}  // namespace orrery::gpu
