// Resources: fixed point, per-device GPUs, feasibility vs availability, critical utilisation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/resources.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::Req;
using testing::Res;

TEST(Quantity, RoundsToFourDecimalsAndPrintsShortest) {
  EXPECT_EQ(Quantity::FromDouble(0.1).raw(), 1000);
  EXPECT_EQ(Quantity::FromDouble(0.33333).raw(), 3333);
  EXPECT_EQ(Quantity::FromDouble(2.5).ToString(), "2.5");
  EXPECT_EQ(Quantity::FromDouble(3).ToString(), "3");
  EXPECT_EQ(Quantity::FromDouble(0.0001).ToString(), "0.0001");
}

TEST(Quantity, SumsAreExact) {
  Quantity q;
  for (int i = 0; i < 10; ++i) q += Quantity::FromDouble(0.1);
  EXPECT_EQ(q, Quantity::Whole(1));
}

TEST(ResourceSet, ZeroEntriesAreAbsentAndIterationIsByName) {
  ResourceSet s = Res({{"memory", 4}, {"CPU", 2}, {"accel", 1}, {"GPU", 0}});
  EXPECT_EQ(s.Names(), (std::vector<std::string>{"CPU", "accel", "memory"}));
  EXPECT_EQ(s.ToString(), "{\"CPU\": 2, \"accel\": 1, \"memory\": 4}");
  s.Set("accel", Quantity());
  EXPECT_EQ(s.Size(), 2);
}

struct BadRequestCase {
  const char* intent;
  std::map<std::string, double> quantities;
  const char* message_part;
};

class BadRequestTest : public ::testing::TestWithParam<BadRequestCase> {};

TEST_P(BadRequestTest, IsRejectedNamingTheField) {
  auto r = ResourceRequest::Create(GetParam().quantities, {}, "requests[0].resources");
  ASSERT_FALSE(r.ok()) << GetParam().intent;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(GetParam().message_part), std::string::npos)
      << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Resources, BadRequestTest,
    ::testing::Values(
        BadRequestCase{"negative CPU", {{"CPU", -1}}, "requests[0].resources.CPU"},
        BadRequestCase{"NaN GPU", {{"GPU", std::nan("")}}, "NaN"},
        BadRequestCase{"infinite memory", {{"memory", std::numeric_limits<double>::infinity()}},
                       "out of range"},
        BadRequestCase{"fractional GPU above 1", {{"GPU", 1.5}}, "whole number"},
        BadRequestCase{"below resolution", {{"CPU", 0.00001}}, "resolution"},
        BadRequestCase{"empty name", {{"", 1}}, "name must not be empty"}));

TEST(ResourceRequest, AcceptsFractionalGpuBelowOneAndWholeGpus) {
  EXPECT_TRUE(ResourceRequest::Create({{"GPU", 0.25}}).ok());
  EXPECT_TRUE(ResourceRequest::Create({{"GPU", 3}}).ok());
  EXPECT_TRUE(ResourceRequest::Create({{"CPU", 1.5}}).ok());
}

TEST(ResourceRequest, DeclaredUnitInstanceCustomResourceMustBeWhole) {
  UnitInstanceNames units({"GPU", "TPU"});
  EXPECT_FALSE(ResourceRequest::Create({{"TPU", 2.5}}, units).ok());
  EXPECT_TRUE(ResourceRequest::Create({{"accel", 2.5}}, units).ok());
}

TEST(NodeResources, FeasibleNeedsEveryNameAvailableNeedsFreeNow) {
  auto n = *NodeResources::Create(Res({{"CPU", 4}, {"memory", 8}}));
  EXPECT_TRUE(n.IsFeasible(Req({{"CPU", 4}})));
  EXPECT_FALSE(n.IsFeasible(Req({{"CPU", 5}})));
  EXPECT_FALSE(n.IsFeasible(Req({{"CPU", 1}, {"accel", 1}})));
  ASSERT_TRUE(n.Allocate(Req({{"CPU", 3}})).has_value());
  EXPECT_TRUE(n.IsFeasible(Req({{"CPU", 2}})));
  EXPECT_FALSE(n.IsAvailable(Req({{"CPU", 2}})));
}

TEST(NodeResources, UnitInstanceTotalMustBeWhole) {
  EXPECT_FALSE(NodeResources::Create(Res({{"GPU", 1.5}})).ok());
  EXPECT_FALSE(NodeResources::Create(Res({{"CPU", -2}})).ok());
}

TEST(NodeResources, FractionalGpuRequestsPackOntoOneDeviceBestFit) {
  auto n = *NodeResources::Create(Res({{"GPU", 2}}));
  auto a = n.Allocate(Req({{"GPU", 0.5}}));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->DeviceIds(), std::vector<int>{0});
  // Device 0 has 0.5 left, device 1 has 1: best fit puts the next 0.5 on device 0.
  auto b = n.Allocate(Req({{"GPU", 0.5}}));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->DeviceIds(), std::vector<int>{0});
  auto c = n.Allocate(Req({{"GPU", 0.3}}));
  EXPECT_EQ(c->DeviceIds(), std::vector<int>{1});
}

TEST(NodeResources, WholeGpuRequestsNeedFullyFreeDevices) {
  auto n = *NodeResources::Create(Res({{"GPU", 2}}));
  ASSERT_TRUE(n.Allocate(Req({{"GPU", 0.1}})));
  // 1.9 GPUs are free in aggregate but only one device is whole.
  EXPECT_FALSE(n.IsAvailable(Req({{"GPU", 2}})));
  auto a = n.Allocate(Req({{"GPU", 1}}));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->DeviceIds(), std::vector<int>{1});
}

TEST(NodeResources, FractionalRequestNeedsOneDeviceWithEnoughLeft) {
  auto n = *NodeResources::Create(Res({{"GPU", 2}}));
  ASSERT_TRUE(n.Allocate(Req({{"GPU", 0.6}})));
  ASSERT_TRUE(n.Allocate(Req({{"GPU", 0.6}})));
  // 0.8 free in aggregate, but at most 0.4 on any device.
  EXPECT_FALSE(n.IsAvailable(Req({{"GPU", 0.5}})));
  EXPECT_TRUE(n.IsAvailable(Req({{"GPU", 0.4}})));
}

TEST(NodeResources, ReleaseRestoresDevicesAndAggregate) {
  auto n = *NodeResources::Create(Res({{"CPU", 2}, {"GPU", 2}}));
  const NodeResources before = n;
  auto a = n.Allocate(Req({{"CPU", 1}, {"GPU", 2}}));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->DeviceIds(), (std::vector<int>{0, 1}));
  n.Release(*a);
  EXPECT_EQ(n.available(), before.available());
  EXPECT_EQ(n.Devices("GPU"), before.Devices("GPU"));
}

TEST(NodeResources, CriticalUtilisationIgnoresGpuAndCustomAndZeroTotals) {
  auto n = *NodeResources::Create(Res({{"CPU", 4}, {"memory", 10}, {"GPU", 1}, {"accel", 2}}));
  ASSERT_TRUE(n.Allocate(Req({{"CPU", 1}, {"memory", 5}, {"GPU", 1}, {"accel", 2}})));
  EXPECT_DOUBLE_EQ(n.CriticalUtilization(), 0.5);  // memory, not GPU/accel (1.0)
  auto empty = *NodeResources::Create(Res({{"GPU", 1}}));
  EXPECT_DOUBLE_EQ(empty.CriticalUtilization(), 0.0);
}

TEST(NodeResources, SubtractEstimateClampsAtZero) {
  auto n = *NodeResources::Create(Res({{"CPU", 2}}));
  n.SubtractEstimate(Req({{"CPU", 3}}));
  EXPECT_EQ(n.available().Get(kCPU), Quantity());
  EXPECT_FALSE(n.available().HasNegative());
}

TEST(NodeResources, SetAvailableClampsToTotals) {
  auto n = *NodeResources::Create(Res({{"CPU", 2}, {"GPU", 2}}));
  n.SetAvailable(Res({{"CPU", 5}, {"GPU", 1.5}, {"ghost", 1}}));
  EXPECT_EQ(n.available().Get(kCPU), Quantity::Whole(2));
  EXPECT_EQ(n.available().Get("ghost"), Quantity());
  EXPECT_EQ(n.Devices("GPU"), (std::vector<Quantity>{kOneUnit, Quantity::FromDouble(0.5)}));
}

}  // namespace
}  // namespace orrery
