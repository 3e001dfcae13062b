// Placement-group bundle placement: PACK, SPREAD, STRICT_PACK, STRICT_SPREAD (DESIGN section 3).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/placement/bundle_policy.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::Req;
using Kind = PlacementResult::Kind;
using Shape = std::map<std::string, double>;

// One node of a test cluster; `used` is taken allocation by allocation, so GPU devices are real.
struct NodeSpec {
  const char* id;
  Shape total;
  std::vector<Shape> used = {};
  NodeState state = NodeState::kAlive;
};

ClusterView Cluster(const std::vector<NodeSpec>& nodes) {
  ClusterBuilder b;
  for (const auto& n : nodes) {
    b.Node(n.id, n.total, n.state);
    for (const auto& u : n.used) b.Used(u);
  }
  return b.Build();
}

std::vector<ResourceRequest> Bundles(const std::vector<Shape>& shapes) {
  std::vector<ResourceRequest> out;
  for (const auto& s : shapes) out.push_back(Req(s));
  return out;
}

// Everything placement could write: availability and per-device detail of every node.
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

std::vector<std::string> Ids(const ClusterView& view, const std::vector<int>& slots) {
  std::vector<std::string> out;
  for (int s : slots) out.push_back(testing::IdOf(view, s));
  return out;
}

struct PlaceCase {
  const char* name;  // the intent, as a test name
  std::vector<NodeSpec> nodes;
  std::vector<Shape> bundles;
  PlacementStrategy strategy;
  Kind kind;
  std::vector<std::string> placement = {};  // node per bundle, in the caller's order (kPlaced)
  std::optional<NodeId> soft_target = std::nullopt;
};

// gtest prints a failing case by its name rather than as bytes.
void PrintTo(const PlaceCase& c, std::ostream* os) { *os << c.name; }

class PlacementTest : public ::testing::TestWithParam<PlaceCase> {};

TEST_P(PlacementTest, DecidesAsSpecifiedAndLeavesTheViewUntouched) {
  const PlaceCase& c = GetParam();
  const ClusterView view = Cluster(c.nodes);
  const std::string before = Snapshot(view);

  PlacementResult r = PlaceBundles(view, Bundles(c.bundles), c.strategy, c.soft_target);

  EXPECT_EQ(PlacementKindName(r.kind), std::string(PlacementKindName(c.kind))) << r.reason;
  EXPECT_EQ(Ids(view, r.slots), c.placement) << r.reason;
  EXPECT_FALSE(r.reason.empty());
  EXPECT_EQ(Snapshot(view), before) << "placement must work on a scratch copy";
}

constexpr auto kPack = PlacementStrategy::kPack;
constexpr auto kSpread = PlacementStrategy::kSpread;
constexpr auto kStrictPack = PlacementStrategy::kStrictPack;
constexpr auto kStrictSpread = PlacementStrategy::kStrictSpread;
constexpr auto kDraining = NodeState::kDraining;
constexpr auto kDead = NodeState::kDead;

INSTANTIATE_TEST_SUITE_P(
    Placement, PlacementTest,
    ::testing::Values(
        // ---- PACK
        PlaceCase{"PackFillsTheNodeWithMostHeadroom",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n1"}},
        PlaceCase{"PackOverflowsToTheNextBestNode",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 3}}, {{"CPU", 3}}},
                  kPack,
                  Kind::kPlaced,
                  {"n0", "n1"}},
        PlaceCase{"PackFailsWhenTheBundlesDoNotFitNow",
                  {{"n0", {{"CPU", 4}}, {{{"CPU", 3}}}}, {"n1", {{"CPU", 4}}, {{{"CPU", 3}}}}},
                  {{{"CPU", 2}}},
                  kPack,
                  Kind::kFailed},
        PlaceCase{"PackIsInfeasibleWhenABundleExceedsEveryTotal",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 1}}, {{"CPU", 8}}},
                  kPack,
                  Kind::kInfeasible},
        PlaceCase{"PackIsInfeasibleWithoutSchedulableNodes",
                  {{"n0", {{"CPU", 4}}, {}, kDraining}, {"n1", {{"CPU", 4}}, {}, kDead}},
                  {{{"CPU", 1}}},
                  kPack,
                  Kind::kInfeasible},
        PlaceCase{"PackSkipsDrainingAndDeadNodes",
                  {{"n0", {{"CPU", 8}}, {}, kDraining},
                   {"n1", {{"CPU", 8}}, {}, kDead},
                   {"n2", {{"CPU", 2}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n2", "n2"}},
        PlaceCase{"PackTiesGoToTheLowestNodeId",
                  {{"n2", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}, {"n0", {{"CPU", 4}}}},
                  {{{"CPU", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n0"}},
        PlaceCase{"PackPrefersTheNodeWithMoreFreeNow",
                  {{"n0", {{"CPU", 4}}, {{{"CPU", 2}}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1"}},
        PlaceCase{"PackChecksWholeGpuDevicesNotJustTheAggregate",
                  {{"n0", {{"GPU", 3}}, {{{"GPU", 0.5}}, {{"GPU", 0.6}}, {{"GPU", 0.6}}}},
                   {"n1", {{"GPU", 1}}}},
                  {{{"GPU", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1"}},
        PlaceCase{"PackIgnoresTheSoftTarget",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n1"},
                  "n0"},
        // ---- Sort order: a bundle listed second gets first pick, slots stay in caller order.
        PlaceCase{"SortPlacesTheGpuBundleFirst",
                  {{"n0", {{"CPU", 2}, {"GPU", 1}}}, {"n1", {{"CPU", 2}}}},
                  {{{"CPU", 2}}, {{"CPU", 1}, {"GPU", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        PlaceCase{"SortPlacesACustomResourceBundleBeforeACpuOnlyOne",
                  {{"n0", {{"CPU", 1}, {"ssd", 1}}}, {"n1", {{"CPU", 1}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}, {"ssd", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        PlaceCase{"SortComparesCustomResourcesByNameOverBothBundles",
                  {{"n0", {{"CPU", 1}, {"x", 1}, {"y", 1}}}, {"n1", {{"CPU", 1}, {"y", 1}}}},
                  {{{"CPU", 1}, {"y", 1}}, {{"CPU", 1}, {"x", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        PlaceCase{"SortPlacesObjectStoreBeforeMemory",
                  {{"n0", {{"memory", 2}, {"object_store_memory", 1}}}, {"n1", {{"memory", 2}}}},
                  {{{"memory", 2}}, {{"memory", 1}, {"object_store_memory", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        PlaceCase{"SortPlacesMemoryBeforeCpu",
                  {{"n0", {{"CPU", 2}, {"memory", 2}}}, {"n1", {{"CPU", 2}}}},
                  {{{"CPU", 2}}, {{"CPU", 1}, {"memory", 1}}},
                  kPack,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        PlaceCase{"SortPlacesTheLargerCpuBundleFirst",
                  {{"n0", {{"CPU", 3}}}, {"n1", {{"CPU", 2}}}},
                  {{{"CPU", 1}}, {{"CPU", 3}}},
                  kSpread,
                  Kind::kPlaced,
                  {"n1", "n0"}},
        // ---- SPREAD
        PlaceCase{"SpreadUsesDistinctNodesFirst",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}, {"n2", {{"CPU", 4}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kSpread,
                  Kind::kPlaced,
                  {"n0", "n1", "n2"}},
        PlaceCase{"SpreadFallsBackToNodesTheGroupAlreadyUses",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kSpread,
                  Kind::kPlaced,
                  {"n0", "n1", "n0"}},
        PlaceCase{"SpreadFailsWhenTheClusterIsOutOfRoomNow",
                  {{"n0", {{"CPU", 2}}, {{{"CPU", 1}}}}, {"n1", {{"CPU", 2}}, {{{"CPU", 1}}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kSpread,
                  Kind::kFailed},
        PlaceCase{"SpreadIsInfeasibleWhenNoNodeHasTheResource",
                  {{"n0", {{"CPU", 4}}}},
                  {{{"GPU", 1}}},
                  kSpread,
                  Kind::kInfeasible},
        // ---- STRICT_PACK
        PlaceCase{"StrictPackPicksTheNodeWithMostHeadroom",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n1", "n1"}},
        PlaceCase{"StrictPackFailsWhenNoNodeHasTheSumNow",
                  {{"n0", {{"CPU", 4}}, {{{"CPU", 2}}}}, {"n1", {{"CPU", 4}}, {{{"CPU", 2}}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kFailed},
        PlaceCase{"StrictPackIsInfeasibleWhenNoTotalHoldsTheSum",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kInfeasible},
        PlaceCase{"StrictPackHonoursAnAvailableSoftTarget",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n0", "n0"},
                  "n0"},
        PlaceCase{"StrictPackIgnoresABusySoftTarget",
                  {{"n0", {{"CPU", 4}}, {{{"CPU", 3}}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n1", "n1"},
                  "n0"},
        PlaceCase{"StrictPackIgnoresADrainingSoftTarget",
                  {{"n0", {{"CPU", 4}}, {}, kDraining}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n1", "n1"},
                  "n0"},
        PlaceCase{"StrictPackIgnoresAnUnknownSoftTarget",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 8}}}},
                  {{{"CPU", 2}}, {{"CPU", 2}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n1", "n1"},
                  "nx"},
        PlaceCase{"StrictPackPutsFractionalGpuBundlesOnSeparateDevices",
                  {{"n0", {{"GPU", 2}}}},
                  {{{"GPU", 0.6}}, {{"GPU", 0.6}}},
                  kStrictPack,
                  Kind::kPlaced,
                  {"n0", "n0"}},
        PlaceCase{"StrictPackIsInfeasibleWhenTheDevicesCannotHoldTheBundles",
                  {{"n0", {{"GPU", 2}}}},
                  {{{"GPU", 0.6}}, {{"GPU", 0.6}}, {{"GPU", 0.6}}},
                  kStrictPack,
                  Kind::kInfeasible},
        // ---- STRICT_SPREAD
        PlaceCase{"StrictSpreadUsesDistinctNodes",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}, {"n2", {{"CPU", 4}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kStrictSpread,
                  Kind::kPlaced,
                  {"n0", "n1", "n2"}},
        PlaceCase{
            "StrictSpreadPicksTheBestUnusedNode",
            {{"n0", {{"CPU", 4}}, {{{"CPU", 2}}}}, {"n1", {{"CPU", 4}}}, {"n2", {{"CPU", 8}}}},
            {{{"CPU", 1}}, {{"CPU", 1}}},
            kStrictSpread,
            Kind::kPlaced,
            {"n2", "n1"}},
        PlaceCase{"StrictSpreadIsInfeasibleWithMoreBundlesThanNodes",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kStrictSpread,
                  Kind::kInfeasible},
        PlaceCase{"StrictSpreadCountsOnlySchedulableNodes",
                  {{"n0", {{"CPU", 4}}}, {"n1", {{"CPU", 4}}}, {"n2", {{"CPU", 4}}, {}, kDraining}},
                  {{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                  kStrictSpread,
                  Kind::kInfeasible},
        PlaceCase{"StrictSpreadFailsWhenNoUnusedNodeHasRoomNow",
                  {{"n0", {{"CPU", 2}}, {{{"CPU", 2}}}}, {"n1", {{"CPU", 2}}}},
                  {{{"CPU", 1}}, {{"CPU", 1}}},
                  kStrictSpread,
                  Kind::kFailed},
        PlaceCase{"StrictSpreadIsInfeasibleWhenOnlyOneNodeHasTheGpu",
                  {{"n0", {{"CPU", 4}, {"GPU", 1}}}, {"n1", {{"CPU", 4}}}},
                  {{{"GPU", 1}}, {{"GPU", 1}}},
                  kStrictSpread,
                  Kind::kInfeasible},
        // ---- Degenerate input
        PlaceCase{"AnEmptyGroupIsPlacedAtOnce",
                  {{"n0", {{"CPU", 1}}}},
                  {},
                  kStrictSpread,
                  Kind::kPlaced}),
    [](const ::testing::TestParamInfo<PlaceCase>& info) { return std::string(info.param.name); });

// Counts every change a view reports.
class ChangeCounter : public ClusterViewObserver {
 public:
  void OnNodeChanged(int) override { ++changes; }
  void OnTopologyChanged() override { ++changes; }
  int changes = 0;
};

TEST(PlacementPurity, NoStrategyEverWritesTheView) {
  const ClusterView view = Cluster({{"n0", {{"CPU", 8}, {"GPU", 2}}, {{{"GPU", 0.5}}}},
                                    {"n1", {{"CPU", 4}, {"memory", 8}}},
                                    {"n2", {{"CPU", 2}}, {}, kDraining}});
  ChangeCounter counter;
  view.AddObserver(&counter);
  const std::string before = Snapshot(view);
  const std::vector<std::vector<Shape>> groups = {
      {{{"CPU", 2}, {"GPU", 0.5}}, {{"CPU", 2}}},
      {{{"CPU", 4}}, {{"CPU", 4}}, {{"CPU", 4}}},
      {{{"memory", 4}}, {{"GPU", 1}}},
      {{{"CPU", 100}}},
  };
  for (PlacementStrategy s : {kPack, kSpread, kStrictPack, kStrictSpread}) {
    for (const auto& g : groups) {
      (void)PlaceBundles(view, Bundles(g), s, NodeId("n0"));
    }
  }
  EXPECT_EQ(counter.changes, 0);
  EXPECT_EQ(Snapshot(view), before);
  view.RemoveObserver(&counter);
}

TEST(PlacementStrategyName, ParsesTheFourUpperCaseSpellingsAndRoundTrips) {
  for (PlacementStrategy s : {kPack, kSpread, kStrictPack, kStrictSpread}) {
    auto parsed = ParsePlacementStrategy(PlacementStrategyName(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_STREQ(PlacementStrategyName(kStrictSpread), "STRICT_SPREAD");
}

TEST(PlacementStrategyName, RejectsOtherSpellingsNamingTheAcceptedOnes) {
  for (const char* bad : {"pack", "Spread", "STRICT-PACK", ""}) {
    auto parsed = ParsePlacementStrategy(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("STRICT_SPREAD"), std::string::npos);
  }
}

TEST(PlacementKindName, NamesEveryOutcome) {
  EXPECT_STREQ(PlacementKindName(Kind::kPlaced), "placed");
  EXPECT_STREQ(PlacementKindName(Kind::kFailed), "failed");
  EXPECT_STREQ(PlacementKindName(Kind::kInfeasible), "infeasible");
}

}  // namespace
}  // namespace orrery
