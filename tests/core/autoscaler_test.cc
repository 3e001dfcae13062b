// The autoscaler planner (DESIGN section 4): min/max workers, termination order, gang placement,
// bin-packing and the node-type score, the upscaling-speed cap, idle termination, infeasible
// demand. Each case is a tiny cluster; the expected plan is worked out by hand in its comment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/autoscaler/planner.h"
#include "core/rng.h"
#include "tests/core/test_util.h"

namespace orrery::autoscaler {
namespace {

using orrery::testing::Res;
using Shape = std::map<std::string, double>;
using Strings = std::vector<std::string>;
using Counts = std::map<std::string, int64_t>;

constexpr auto kPending = ProviderNodeState::kPending;
constexpr auto kRunning = ProviderNodeState::kRunning;
constexpr auto kTerminating = ProviderNodeState::kTerminating;
constexpr auto kPack = PlacementStrategy::kPack;
constexpr auto kStrictPack = PlacementStrategy::kStrictPack;
constexpr auto kStrictSpread = PlacementStrategy::kStrictSpread;
constexpr double kNow = 1000.0;

struct TypeSpec {
  const char* name;
  Shape resources;
  int64_t min = 0;
  int64_t max = kUnlimitedWorkers;
};

struct NodeSpec {
  const char* id;
  const char* type;  // "" = unmanaged (head)
  Shape total;
  Shape used = {};
  ProviderNodeState state = kRunning;
  std::optional<double> idle_s = std::nullopt;  // idle for this long at kNow
  double launch_time_s = 0.0;
};

struct DemandSpec {
  Shape shape;
  int64_t count = 1;
};

struct GangSpec {
  PlacementStrategy strategy;
  std::vector<Shape> bundles;
};

struct PlanCase {
  const char* name;  // the intent, as a test name
  std::vector<TypeSpec> types;
  std::vector<NodeSpec> nodes = {};
  std::vector<DemandSpec> demands = {};
  std::vector<GangSpec> gangs = {};
  int64_t max_workers = kUnlimitedWorkers;
  double upscaling_speed = 1.0;
  double idle_timeout_s = 300.0;
  // Expected.
  Counts launch = {};
  Strings terminate = {};
  std::vector<Shape> infeasible = {};
  int64_t waiting_units = 0;
  Counts deferred = {};
  std::vector<int> waiting_gangs = {};
};

void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }

AutoscalerConfig Config(const PlanCase& c) {
  AutoscalerConfig cfg;
  for (const auto& t : c.types) {
    cfg.node_types[t.name] = {
        .resources = Res(t.resources), .min_workers = t.min, .max_workers = t.max};
  }
  cfg.max_workers = c.max_workers;
  cfg.upscaling_speed = c.upscaling_speed;
  cfg.idle_timeout_s = c.idle_timeout_s;
  return cfg;
}

AutoscalerInput Input(const PlanCase& c) {
  AutoscalerInput in;
  in.now_s = kNow;
  for (const auto& n : c.nodes) {
    SnapshotNode s;
    s.id = n.id;
    s.type = n.type;
    s.state = n.state;
    s.total = Res(n.total);
    s.available = Res(n.total);
    s.available -= Res(n.used);
    if (n.idle_s) s.idle_since_s = kNow - *n.idle_s;
    s.launch_time_s = n.launch_time_s;
    in.nodes.push_back(std::move(s));
  }
  for (const auto& d : c.demands) in.demands.push_back({Res(d.shape), d.count});
  for (const auto& g : c.gangs) {
    GangDemand gd{g.strategy, {}};
    for (const auto& b : g.bundles) gd.bundles.push_back(Res(b));
    in.gangs.push_back(std::move(gd));
  }
  return in;
}

AutoscalePlan MustPlan(const AutoscalerConfig& cfg, const AutoscalerInput& in) {
  auto planner = AutoscalerPlanner::Create(cfg);
  EXPECT_TRUE(planner.ok()) << planner.status().ToString();
  if (!planner.ok()) return {};
  auto plan = planner->Plan(in);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? *plan : AutoscalePlan{};
}

Counts Launches(const AutoscalePlan& p) {
  Counts out;
  for (const auto& l : p.launches) {
    EXPECT_EQ(l.count, l.for_min_workers + l.for_gangs + l.for_demands) << l.type;
    out[l.type] = l.count;
  }
  return out;
}

Strings Terminated(const AutoscalePlan& p) {
  Strings out;
  for (const auto& t : p.terminations) out.push_back(t.node);
  return out;
}

std::vector<ResourceSet> InfeasibleShapes(const AutoscalePlan& p) {
  std::vector<ResourceSet> out;
  for (const auto& i : p.infeasible) out.push_back(i.shape);
  return out;
}

class PlanTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanTest, PlansAsSpecified) {
  const PlanCase& c = GetParam();
  const AutoscalePlan p = MustPlan(Config(c), Input(c));
  EXPECT_EQ(Launches(p), c.launch);
  EXPECT_EQ(Terminated(p), c.terminate);
  std::vector<ResourceSet> want;
  for (const auto& s : c.infeasible) want.push_back(Res(s));
  EXPECT_EQ(InfeasibleShapes(p), want);
  EXPECT_EQ(p.waiting_units, c.waiting_units);
  EXPECT_EQ(p.deferred, c.deferred);
  EXPECT_EQ(p.waiting_gangs, c.waiting_gangs);
  for (const auto& t : p.terminations) EXPECT_FALSE(t.detail.empty()) << t.node;
}

INSTANTIATE_TEST_SUITE_P(
    Autoscaler, PlanTest,
    ::testing::Values(
        // ---- Choosing node types (the score).
        // 100 x {CPU 1}, types of 2, 16 and 64 CPUs, nothing running. Score per type = (gpu ok,
        // names, min, mean) of 64*u^3 style contributions (one resource, so min = mean):
        //   left 100: cpu2 takes 2 (u=1) -> 2;  cpu16 takes 16 (u=1) -> 16;  cpu64 takes 64 -> 64.
        //             cpu64 wins; 36 left.
        //   left 36:  cpu2 -> 2;  cpu16 -> 16;  cpu64 takes 36, u=0.5625 -> 64*0.178 = 11.39.
        //             cpu16 wins; 20 left.
        //   left 20:  cpu16 -> 16 beats cpu64 (u=0.3125 -> 1.95) and cpu2 (2); 4 left.
        //   left 4:   cpu2 -> 2 beats cpu16 (u=0.25 -> 0.25) and cpu64 (0.016); 2 left.
        //   left 2:   cpu2 -> 2 again. Total 64 + 16 + 16 + 2 + 2 = 100 CPUs, nothing wasted.
        PlanCase{
            .name = "HundredCpuTasksFillOneBigTwoMediumAndTwoSmallNodes",
            .types = {{"cpu2", {{"CPU", 2}}}, {"cpu16", {{"CPU", 16}}}, {"cpu64", {{"CPU", 64}}}},
            .demands = {{{{"CPU", 1}}, 100}},
            .launch = {{"cpu2", 2}, {"cpu16", 2}, {"cpu64", 1}}},
        // Without the GPU rule the GPU type would win on mean contribution (64 vs 1): both have
        // one zero contribution (GPU resp. memory), so min is 0 for both. "Not a GPU type while
        // no demand asks for GPU" comes first and keeps the CPU type.
        PlanCase{.name = "CpuDemandNeverLaunchesAGpuTypeWhenAnotherTypeFits",
                 .types = {{"cpu2", {{"CPU", 2}, {"memory", 100}}},
                           {"gpu64", {{"CPU", 64}, {"GPU", 4}}}},
                 .demands = {{{{"CPU", 1}}, 64}},
                 .upscaling_speed = 100,
                 .launch = {{"cpu2", 32}}},
        PlanCase{.name = "GpuDemandUsesTheGpuType",
                 .types = {{"cpu2", {{"CPU", 2}, {"memory", 100}}},
                           {"gpu64", {{"CPU", 64}, {"GPU", 4}}}},
                 .demands = {{{{"CPU", 1}, {"GPU", 1}}, 4}},
                 .launch = {{"gpu64", 1}}},
        PlanCase{.name = "CpuDemandTakesAGpuTypeWhenNothingElseFits",
                 .types = {{"cpu2", {{"CPU", 2}}}, {"gpu64", {{"CPU", 64}, {"GPU", 4}}}},
                 .demands = {{{{"CPU", 8}}, 1}},
                 .launch = {{"gpu64", 1}}},
        // y serves both CPU and memory the demands ask for (2 names) and wins although x would
        // be fuller (x: CPU 7/8 -> 5.36; y: min 8*(1/8)^3 = 0.016).
        PlanCase{.name = "MoreRequestedResourceNamesBeatUtilisation",
                 .types = {{"x", {{"CPU", 8}}}, {"y", {{"CPU", 8}, {"memory", 8}}}},
                 .demands = {{{{"CPU", 1}, {"memory", 1}}, 1}, {{{"CPU", 1}}, 7}},
                 .launch = {{"y", 1}}},
        PlanCase{.name = "EqualScoresGoToTheLargerTypeName",
                 .types = {{"a", {{"CPU", 4}}}, {"b", {{"CPU", 4}}}},
                 .demands = {{{{"CPU", 4}}, 1}},
                 .launch = {{"b", 1}}},
        // {CPU 4} x3: b (8 CPUs) takes 2 and scores 8 against a's 4; the last unit then scores
        // 4 on a but only 8*(1/2)^3 = 1 on b.
        PlanCase{.name = "NewNodesAreChosenOneAtATime",
                 .types = {{"a", {{"CPU", 4}}}, {"b", {{"CPU", 8}}}},
                 .demands = {{{{"CPU", 4}}, 3}},
                 .launch = {{"a", 1}, {"b", 1}}},

        // ---- Existing capacity first.
        PlanCase{.name = "FreeResourcesOnRunningNodesAreUsedFirst",
                 .types = {{"cpu4", {{"CPU", 4}}}},
                 .nodes = {{"n0", "cpu4", {{"CPU", 4}}, {{"CPU", 1}}}},
                 .demands = {{{{"CPU", 1}}, 5}},
                 .launch = {{"cpu4", 1}}},
        PlanCase{.name = "PendingNodesCountAsCapacity",
                 .types = {{"cpu4", {{"CPU", 4}}}},
                 .nodes = {{"p0", "cpu4", {{"CPU", 4}}, {}, kPending}},
                 .demands = {{{{"CPU", 1}}, 4}}},
        PlanCase{.name = "TheHeadNodeIsCapacityButNeverCountedOrTerminated",
                 .types = {{"cpu4", {{"CPU", 4}}, 0, 1}},
                 .nodes = {{"head", "", {{"CPU", 8}}, {}, kRunning, 10000.0},
                           {"w0", "cpu4", {{"CPU", 4}}, {{"CPU", 4}}}},
                 .demands = {{{{"CPU", 2}}, 4}}},
        PlanCase{.name = "TerminatingNodesAreNeitherCapacityNorCounted",
                 .types = {{"cpu4", {{"CPU", 4}}, 0, 1}},
                 .nodes = {{"t0", "cpu4", {{"CPU", 4}}, {}, kTerminating}},
                 .demands = {{{{"CPU", 4}}, 1}},
                 .launch = {{"cpu4", 1}}},

        // ---- Limits.
        PlanCase{.name = "TypeMaxWorkersCapsLaunches",
                 .types = {{"cpu4", {{"CPU", 4}}, 0, 3}},
                 .demands = {{{{"CPU", 4}}, 10}},
                 .launch = {{"cpu4", 3}},
                 .waiting_units = 7},
        PlanCase{.name = "WhenOneTypeIsFullTheNextBestTypeTakesOver",
                 .types = {{"big", {{"CPU", 8}}, 0, 1}, {"small", {{"CPU", 4}}}},
                 .demands = {{{{"CPU", 4}}, 4}},
                 .launch = {{"big", 1}, {"small", 2}}},
        PlanCase{.name = "ClusterMaxWorkersCapsLaunchesOfAllTypes",
                 .types = {{"a", {{"CPU", 4}}}, {"b", {{"CPU", 2}}}},
                 .nodes = {{"n0", "b", {{"CPU", 2}}, {{"CPU", 2}}}},
                 .demands = {{{{"CPU", 4}}, 5}, {{{"CPU", 2}}, 5}},
                 .max_workers = 4,
                 .launch = {{"a", 3}},
                 .waiting_units = 7},
        PlanCase{.name = "ClusterMaxWorkersZeroMakesDemandInfeasible",
                 .types = {{"a", {{"CPU", 4}}}},
                 .demands = {{{{"CPU", 1}}, 3}},
                 .max_workers = 0,
                 .infeasible = {{{"CPU", 1}}}},
        // Cap for cpu1: max(5, floor(2.0 * 3 running)) = 6 pending; one is pending already (and
        // takes one unit), so 5 of the 19 nodes wanted are launched and 14 deferred.
        PlanCase{.name = "UpscalingSpeedCapsPendingLaunchesPerType",
                 .types = {{"cpu1", {{"CPU", 1}}}},
                 .nodes = {{"r0", "cpu1", {{"CPU", 1}}, {{"CPU", 1}}},
                           {"r1", "cpu1", {{"CPU", 1}}, {{"CPU", 1}}},
                           {"r2", "cpu1", {{"CPU", 1}}, {{"CPU", 1}}},
                           {"p0", "cpu1", {{"CPU", 1}}, {}, kPending}},
                 .demands = {{{{"CPU", 1}}, 20}},
                 .upscaling_speed = 2.0,
                 .launch = {{"cpu1", 5}},
                 .waiting_units = 14,
                 .deferred = {{"cpu1", 14}}},
        PlanCase{.name = "WithNothingRunningTheCapIsFive",
                 .types = {{"cpu1", {{"CPU", 1}}}},
                 .demands = {{{{"CPU", 1}}, 1000000000}},
                 .launch = {{"cpu1", 5}},
                 .waiting_units = 1000000000 - 5,
                 .deferred = {{"cpu1", 1000000000 - 5}}},

        // ---- min_workers.
        PlanCase{.name = "MinWorkersLaunchWithoutDemandAndAreNotCapped",
                 .types = {{"cpu4", {{"CPU", 4}}, 8, 10}, {"other", {{"CPU", 4}}}},
                 .launch = {{"cpu4", 8}}},
        PlanCase{.name = "MinWorkerNodesServeDemandBeforeNewNodes",
                 .types = {{"cpu1", {{"CPU", 1}}, 2}},
                 .nodes = {{"n0", "cpu1", {{"CPU", 1}}, {{"CPU", 1}}}},
                 .demands = {{{{"CPU", 1}}, 3}},
                 .launch = {{"cpu1", 3}}},

        // ---- Enforcing max_workers: termination order.
        // Six nodes, max 1: pending first (newest launch first), then idle (longest first), then
        // busy (least utilised first); the busiest node stays.
        PlanCase{.name = "MaxWorkersTerminatesPendingThenLongestIdleThenLeastUtilised",
                 .types = {{"cpu4", {{"CPU", 4}}, 0, 1}},
                 .nodes = {{"b75", "cpu4", {{"CPU", 4}}, {{"CPU", 3}}},
                           {"p1", "cpu4", {{"CPU", 4}}, {}, kPending, std::nullopt, 10},
                           {"ilong", "cpu4", {{"CPU", 4}}, {}, kRunning, 200.0},
                           {"b25", "cpu4", {{"CPU", 4}}, {{"CPU", 1}}},
                           {"ishort", "cpu4", {{"CPU", 4}}, {}, kRunning, 100.0},
                           {"p2", "cpu4", {{"CPU", 4}}, {}, kPending, std::nullopt, 20}},
                 .terminate = {"p2", "p1", "ilong", "ishort", "b25"}},
        PlanCase{.name = "ClusterMaxWorkersNeverTakesATypeBelowItsMinWorkers",
                 .types = {{"a", {{"CPU", 4}}, 2}, {"b", {{"CPU", 4}}}},
                 .nodes = {{"a1", "a", {{"CPU", 4}}, {}, kRunning, 100.0},
                           {"a2", "a", {{"CPU", 4}}, {{"CPU", 4}}},
                           {"b1", "b", {{"CPU", 4}}, {{"CPU", 2}}}},
                 .max_workers = 2,
                 .terminate = {"b1"}},
        PlanCase{
            .name = "TerminatedNodesAreNotCapacity",
            .types = {{"cpu4", {{"CPU", 4}}, 0, 1}},
            .nodes = {{"n0", "cpu4", {{"CPU", 4}}, {{"CPU", 4}}}, {"n1", "cpu4", {{"CPU", 4}}}},
            .demands = {{{{"CPU", 1}}, 1}},
            .terminate = {"n1"},
            .waiting_units = 1},

        // ---- Idle termination.
        PlanCase{.name = "IdleNodesBeyondMinWorkersGoAfterTheTimeoutLongestIdleFirst",
                 .types = {{"cpu4", {{"CPU", 4}}, 1}},
                 .nodes = {{"n1", "cpu4", {{"CPU", 4}}, {}, kRunning, 400.0},
                           {"n2", "cpu4", {{"CPU", 4}}, {}, kRunning, 500.0},
                           {"n3", "cpu4", {{"CPU", 4}}, {}, kRunning, 200.0},
                           {"n4", "cpu4", {{"CPU", 4}}, {{"CPU", 1}}}},
                 .terminate = {"n2", "n1"}},
        PlanCase{.name = "IdleTerminationKeepsMinWorkers",
                 .types = {{"cpu4", {{"CPU", 4}}, 3}},
                 .nodes = {{"n1", "cpu4", {{"CPU", 4}}, {}, kRunning, 400.0},
                           {"n2", "cpu4", {{"CPU", 4}}, {}, kRunning, 500.0},
                           {"n3", "cpu4", {{"CPU", 4}}, {}, kRunning, 200.0},
                           {"n4", "cpu4", {{"CPU", 4}}, {{"CPU", 1}}}},
                 .terminate = {"n2"}},
        PlanCase{.name = "AnIdleNodeThatReceivesDemandIsKept",
                 .types = {{"cpu4", {{"CPU", 4}}}},
                 .nodes = {{"n1", "cpu4", {{"CPU", 4}}, {}, kRunning, 400.0},
                           {"n2", "cpu4", {{"CPU", 4}}, {}, kRunning, 500.0}},
                 .demands = {{{{"CPU", 1}}, 1}},
                 .terminate = {"n2"}},

        // ---- Gangs.
        // One bundle per node; per bundle gpu1 scores (GPU u=1 -> 1, CPU 0) above gpu8
        // (GPU 1/8 -> 0.016). Placement-group launches are not capped at 5.
        PlanCase{.name = "EightOneGpuBundlesStrictSpreadLaunchEightDistinctNodes",
                 .types = {{"gpu1", {{"CPU", 4}, {"GPU", 1}}}, {"gpu8", {{"CPU", 32}, {"GPU", 8}}}},
                 .gangs = {{kStrictSpread, std::vector<Shape>(8, {{"GPU", 1}})}},
                 .launch = {{"gpu1", 8}}},
        PlanCase{.name = "StrictSpreadUsesFreeNodesFirstOneBundleEach",
                 .types = {{"gpu1", {{"CPU", 4}, {"GPU", 1}}}},
                 .nodes = {{"g0", "gpu1", {{"CPU", 4}, {"GPU", 1}}},
                           {"g1", "gpu1", {{"CPU", 4}, {"GPU", 1}}},
                           {"g2", "gpu1", {{"CPU", 4}, {"GPU", 1}}, {{"GPU", 1}}}},
                 .gangs = {{kStrictSpread, std::vector<Shape>(4, {{"CPU", 1}})}},
                 .launch = {{"gpu1", 1}}},
        PlanCase{.name = "StrictPackGangIsOneSummedDemand",
                 .types = {{"small", {{"CPU", 4}}}, {"big", {{"CPU", 16}}}},
                 .gangs = {{kStrictPack, {{{"CPU", 4}}, {{"CPU", 4}}, {{"CPU", 4}}}}},
                 .launch = {{"big", 1}}},
        // Residual {CPU 4} x3: small scores 4, big takes all three (u=0.75) -> 6.75.
        PlanCase{.name = "PackGangBinPacksItsBundles",
                 .types = {{"small", {{"CPU", 4}}}, {"big", {{"CPU", 16}}}},
                 .gangs = {{kPack, {{{"CPU", 4}}, {{"CPU", 4}}, {{"CPU", 4}}}}},
                 .launch = {{"big", 1}}},
        PlanCase{.name = "GangsUseFreeResourcesFirst",
                 .types = {{"cpu8", {{"CPU", 8}}}},
                 .nodes = {{"n0", "cpu8", {{"CPU", 8}}, {}, kRunning, 1000.0}},
                 .gangs = {{kPack, {{{"CPU", 4}}, {{"CPU", 4}}}}}},
        PlanCase{.name = "GangIsAllOrNothingAndLeavesRoomForDemands",
                 .types = {{"gpu1", {{"CPU", 1}, {"GPU", 1}}, 0, 3}},
                 .demands = {{{{"CPU", 1}}, 1}},
                 .gangs = {{kStrictSpread, std::vector<Shape>(4, {{"GPU", 1}})}},
                 .launch = {{"gpu1", 1}},
                 .waiting_gangs = {0}},
        PlanCase{.name = "GangNodesHostLaterDemands",
                 .types = {{"cpu8", {{"CPU", 8}}}},
                 .demands = {{{{"CPU", 2}}, 2}},
                 .gangs = {{kPack, {{{"CPU", 4}}}}},
                 .launch = {{"cpu8", 1}}},
        PlanCase{.name = "InfeasibleGangIsReportedAndSkipped",
                 .types = {{"cpu8", {{"CPU", 8}}}},
                 .demands = {{{{"CPU", 8}}, 1}},
                 .gangs = {{kStrictPack, {{{"CPU", 8}}, {{"CPU", 8}}}}},
                 .launch = {{"cpu8", 1}},
                 .infeasible = {{{"CPU", 16}}}},

        // ---- Infeasible demand.
        PlanCase{
            .name = "InfeasibleShapesAreReportedOnceInInputOrder",
            .types = {{"cpu4", {{"CPU", 4}}}},
            .demands = {{{{"GPU", 8}}, 2}, {{{"CPU", 1}}, 2}, {{{"TPU", 1}}, 1}, {{{"GPU", 8}}, 3}},
            .launch = {{"cpu4", 1}},
            .infeasible = {{{"GPU", 8}}, {{"TPU", 1}}}},
        PlanCase{.name = "ShapesThatFitOnlyAnExistingNodeWaitInsteadOfBeingInfeasible",
                 .types = {{"cpu4", {{"CPU", 4}}}},
                 .nodes = {{"head", "", {{"CPU", 4}, {"special", 1}}, {{"special", 1}}}},
                 .demands = {{{{"special", 1}}, 1}},
                 .waiting_units = 1},
        PlanCase{.name = "ATypeWithMaxWorkersZeroNeverMakesAShapeFeasible",
                 .types = {{"gpu", {{"GPU", 8}}, 0, 0}},
                 .demands = {{{{"GPU", 8}}, 1}},
                 .infeasible = {{{"GPU", 8}}}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------

TEST(AutoscalerPlanTest, LaunchesSayWhyTheyAreNeeded) {
  PlanCase c{.name = "why",
             .types = {{"cpu4", {{"CPU", 4}}, 1}, {"gpu1", {{"GPU", 1}}}},
             .demands = {{{{"CPU", 4}}, 2}},
             .gangs = {{kStrictSpread, {{{"GPU", 1}}, {{"GPU", 1}}}}}};
  const AutoscalePlan p = MustPlan(Config(c), Input(c));
  ASSERT_EQ(p.launches.size(), 2u);
  // The min-worker node takes one {CPU 4}; one more node for the other.
  EXPECT_EQ(p.launches[0], (Launch{"cpu4", 2, 1, 0, 1}));
  EXPECT_EQ(p.launches[1], (Launch{"gpu1", 2, 0, 2, 0}));
}

TEST(AutoscalerPlanTest, TerminationsCarryAReasonAndADetail) {
  PlanCase c{.name = "why",
             .types = {{"cpu4", {{"CPU", 4}}, 0, 1}},
             .nodes = {{"n0", "cpu4", {{"CPU", 4}}, {}, kRunning, 900.0},
                       {"n1", "cpu4", {{"CPU", 4}}, {}, kRunning, 600.0}}};
  const AutoscalePlan p = MustPlan(Config(c), Input(c));
  ASSERT_EQ(p.terminations.size(), 2u);
  EXPECT_EQ(p.terminations[0].node, "n0");
  EXPECT_EQ(p.terminations[0].reason, TerminateReason::kMaxWorkersPerType);
  EXPECT_NE(p.terminations[0].detail.find("max_workers 1"), std::string::npos)
      << p.terminations[0].detail;
  EXPECT_EQ(p.terminations[1].node, "n1");
  EXPECT_EQ(p.terminations[1].reason, TerminateReason::kIdle);
  EXPECT_NE(p.terminations[1].detail.find("idle for 600 s"), std::string::npos)
      << p.terminations[1].detail;
}

TEST(AutoscalerPlanTest, InfeasibleReportsCountUnitsAndNameTheirGang) {
  PlanCase c{.name = "counts",
             .types = {{"cpu4", {{"CPU", 4}}}},
             .demands = {{{{"GPU", 2}}, 2}, {{{"GPU", 2}}, 3}},
             .gangs = {{kPack, {{{"TPU", 1}}, {{"CPU", 1}}, {{"TPU", 1}}}}}};
  const AutoscalePlan p = MustPlan(Config(c), Input(c));
  ASSERT_EQ(p.infeasible.size(), 2u);
  EXPECT_EQ(p.infeasible[0].shape, Res({{"TPU", 1}}));
  EXPECT_EQ(p.infeasible[0].count, 2);
  EXPECT_EQ(p.infeasible[0].gang, 0);
  EXPECT_EQ(p.infeasible[1].shape, Res({{"GPU", 2}}));
  EXPECT_EQ(p.infeasible[1].count, 5);
  EXPECT_EQ(p.infeasible[1].gang, -1);
  EXPECT_TRUE(p.launches.empty()) << "an infeasible gang launches nothing";
}

TEST(AutoscalerPlanTest, ThePlanDoesNotDependOnInputOrder) {
  PlanCase c{.name = "order",
             .types = {{"cpu2", {{"CPU", 2}}},
                       {"cpu16", {{"CPU", 16}, {"memory", 64}}},
                       {"gpu4", {{"CPU", 16}, {"GPU", 4}}}},
             .nodes = {{"n3", "cpu2", {{"CPU", 2}}, {{"CPU", 1}}},
                       {"n1", "cpu16", {{"CPU", 16}, {"memory", 64}}, {{"CPU", 10}}},
                       {"n2", "gpu4", {{"CPU", 16}, {"GPU", 4}}, {{"GPU", 3}}}},
             .demands = {{{{"CPU", 1}}, 7},
                         {{{"CPU", 2}, {"memory", 8}}, 9},
                         {{{"GPU", 1}}, 3},
                         {{{"CPU", 3}}, 2}},
             .upscaling_speed = 10};
  const AutoscalePlan a = MustPlan(Config(c), Input(c));
  std::reverse(c.nodes.begin(), c.nodes.end());
  std::reverse(c.demands.begin(), c.demands.end());
  const AutoscalePlan b = MustPlan(Config(c), Input(c));
  EXPECT_EQ(a.launches, b.launches);
  EXPECT_EQ(Terminated(a), Terminated(b));
  EXPECT_EQ(a.waiting_units, b.waiting_units);
  EXPECT_FALSE(a.launches.empty());
}

TEST(AutoscalerPlanTest, BatchedChoicesMatchTheOneNodeAtATimeHandComputation) {
  // Identical units are chosen in batches (three cpu8 nodes in one step); the result must be what
  // choosing one node at a time gives.
  PlanCase batched{.name = "batched",
                   .types = {{"cpu3", {{"CPU", 3}}}, {"cpu8", {{"CPU", 8}}}},
                   .demands = {{{{"CPU", 1}}, 29}},
                   .upscaling_speed = 100};
  const AutoscalePlan a = MustPlan(Config(batched), Input(batched));
  // 29 = 3 x 8 + 5: cpu8 (score 8) three times, then cpu3 for 3 (score 3 > 8*(5/8)^3 = 1.95),
  // then cpu3 for the last 2 (3*(2/3)^3 = 0.89 > 8*(2/8)^3 = 0.125).
  EXPECT_EQ(Launches(a), (Counts{{"cpu3", 2}, {"cpu8", 3}}));
}

TEST(AutoscalerPlanTest, ConfigValidation) {
  auto bad = [](AutoscalerConfig cfg) {
    return AutoscalerPlanner::Create(std::move(cfg)).status();
  };
  AutoscalerConfig ok;
  ok.node_types["a"] = {.resources = Res({{"CPU", 1}}), .min_workers = 1, .max_workers = 2};
  EXPECT_TRUE(AutoscalerPlanner::Create(ok).ok());

  AutoscalerConfig c = ok;
  c.node_types["a"].max_workers = 0;
  EXPECT_EQ(bad(c).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad(c).message().find("below min_workers"), std::string::npos) << bad(c).message();
  c = ok;
  c.max_workers = 0;
  EXPECT_NE(bad(c).message().find("sum of the node types' min_workers"), std::string::npos);
  c = ok;
  c.upscaling_speed = -1;
  EXPECT_EQ(bad(c).code(), StatusCode::kInvalidArgument);
  c = ok;
  c.idle_timeout_s = std::numeric_limits<double>::infinity();
  EXPECT_EQ(bad(c).code(), StatusCode::kInvalidArgument);
  c = ok;
  c.node_types[""] = {};
  EXPECT_EQ(bad(c).code(), StatusCode::kInvalidArgument);
}

TEST(AutoscalerPlanTest, InputValidation) {
  AutoscalerConfig cfg;
  cfg.node_types["a"] = {.resources = Res({{"CPU", 1}})};
  auto planner = AutoscalerPlanner::Create(cfg);
  ASSERT_TRUE(planner.ok());
  auto status = [&](const AutoscalerInput& in) { return planner->Plan(in).status(); };

  AutoscalerInput in;
  in.nodes.push_back({.id = "n0", .type = "zz"});
  EXPECT_NE(status(in).message().find("node type \"zz\" is not configured"), std::string::npos);
  in.nodes = {{.id = "n0", .type = "a"}, {.id = "n0", .type = "a"}};
  EXPECT_NE(status(in).message().find("duplicate node id \"n0\""), std::string::npos);
  in.nodes.clear();
  in.gangs.push_back({});
  EXPECT_NE(status(in).message().find("gangs[0]: a gang needs bundles"), std::string::npos);
  in.gangs = {{PlacementStrategy::kPack, {ResourceSet()}}};
  EXPECT_NE(status(in).message().find("at least one resource"), std::string::npos);
  in.gangs.clear();
  in.demands.push_back({Res({{"CPU", 1}}), -1});
  EXPECT_EQ(status(in).code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Property: the planner's new-node choice equals a literal, one-unit-at-a-time reading of the
// DESIGN rule (no batching, no dense vectors), on random clusters of whole quantities.

struct RefScore {
  bool gpu_ok;
  int names;
  double min_c;
  double mean_c;
  auto Tuple() const { return std::tie(gpu_ok, names, min_c, mean_c); }
};

bool RefBefore(const Shape& a, const Shape& b) {
  auto nonzero = [](const Shape& s) {
    int n = 0;
    double t = 0;
    for (const auto& [k, v] : s) {
      n += v > 0 ? 1 : 0;
      t += v;
    }
    return std::pair<int, double>{n, t};
  };
  const auto [na, ta] = nonzero(a);
  const auto [nb, tb] = nonzero(b);
  if (na != nb) return na > nb;
  if (ta != tb) return ta > tb;
  std::set<std::string> names;
  for (const auto& [k, v] : a) names.insert(k);
  for (const auto& [k, v] : b) names.insert(k);
  for (const auto& k : names) {
    const double qa = a.count(k) ? a.at(k) : 0;
    const double qb = b.count(k) ? b.at(k) : 0;
    if (qa != qb) return qa > qb;
  }
  return false;
}

Counts ReferenceLaunches(const std::vector<TypeSpec>& types,
                         const std::vector<DemandSpec>& demands) {
  std::vector<Shape> units;
  for (const auto& d : demands) units.insert(units.end(), static_cast<size_t>(d.count), d.shape);
  std::stable_sort(units.begin(), units.end(), RefBefore);
  // Infeasible units (no type fits them) are set aside: they are reported, not scored.
  std::erase_if(units, [&](const Shape& u) {
    return std::none_of(types.begin(), types.end(), [&](const TypeSpec& t) {
      bool fits = true;
      for (const auto& [k, v] : u) fits = fits && t.resources.count(k) && t.resources.at(k) >= v;
      return fits;
    });
  });
  Counts launched;
  while (!units.empty()) {
    int best = -1;
    RefScore best_score{};
    std::vector<size_t> best_took;
    for (size_t t = 0; t < types.size(); ++t) {
      Shape free = types[t].resources;
      std::vector<size_t> took;
      for (size_t u = 0; u < units.size(); ++u) {
        bool fits = true;
        for (const auto& [k, v] : units[u]) fits = fits && free.count(k) && free.at(k) >= v;
        if (!fits) continue;
        for (const auto& [k, v] : units[u]) free[k] -= v;
        took.push_back(u);
      }
      if (took.empty()) continue;
      bool any_gpu = false;
      std::set<std::string> requested;
      for (const auto& u : units) {
        for (const auto& [k, v] : u) requested.insert(k);
        any_gpu = any_gpu || u.count("GPU");
      }
      const bool gpu_type = types[t].resources.count("GPU") && types[t].resources.at("GPU") > 0;
      RefScore sc{!(gpu_type && !any_gpu), 0, 0, 0};
      double sum = 0;
      int n = 0;
      for (const auto& [k, cap] : types[t].resources) {
        if (cap < 1) continue;
        const double u = (cap - free.at(k)) / cap;
        const double c = cap * u * u * u;
        sc.min_c = n == 0 ? c : std::min(sc.min_c, c);
        sum += c;
        ++n;
        sc.names += requested.count(k) ? 1 : 0;
      }
      sc.mean_c = n == 0 ? 0 : sum / n;
      // Later types have larger names (the spec list is sorted by name): ties go to them.
      if (best < 0 || !(sc.Tuple() < best_score.Tuple())) {
        best = static_cast<int>(t);
        best_score = sc;
        best_took = took;
      }
    }
    if (best < 0) break;
    ++launched[types[best].name];
    for (auto it = best_took.rbegin(); it != best_took.rend(); ++it) {
      units.erase(units.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }
  return launched;
}

TEST(AutoscalerPropertyTest, NewNodeChoiceMatchesAOneUnitAtATimeReference) {
  static const char* kTypeNames[] = {"t0", "t1", "t2", "t3", "t4"};
  Rng rng(20261127);
  int nontrivial = 0;
  for (int trial = 0; trial < 300; ++trial) {
    PlanCase c{.name = "random", .types = {}, .upscaling_speed = 1e6};
    const int num_types = 1 + static_cast<int>(rng.UniformIndex(5));
    for (int t = 0; t < num_types; ++t) {
      Shape r{{"CPU", 1.0 + static_cast<double>(rng.UniformIndex(16))}};
      if (rng.UniformIndex(2)) r["memory"] = 1.0 + static_cast<double>(rng.UniformIndex(32));
      if (rng.UniformIndex(3) == 0) r["GPU"] = 1.0 + static_cast<double>(rng.UniformIndex(4));
      c.types.push_back({kTypeNames[t], r});
    }
    const int num_shapes = 1 + static_cast<int>(rng.UniformIndex(6));
    for (int d = 0; d < num_shapes; ++d) {
      Shape s{{"CPU", 1.0 + static_cast<double>(rng.UniformIndex(8))}};
      if (rng.UniformIndex(2)) s["memory"] = 1.0 + static_cast<double>(rng.UniformIndex(8));
      if (rng.UniformIndex(4) == 0) s["GPU"] = 1.0 + static_cast<double>(rng.UniformIndex(2));
      c.demands.push_back({s, 1 + static_cast<int64_t>(rng.UniformIndex(20))});
    }
    const AutoscalePlan p = MustPlan(Config(c), Input(c));
    const Counts want = ReferenceLaunches(c.types, c.demands);
    std::string dump;
    for (const auto& t : c.types)
      dump += std::string(t.name) + " " + Res(t.resources).ToString() + "\n";
    for (const auto& d : c.demands)
      dump += Res(d.shape).ToString() + " x" + std::to_string(d.count) + "\n";
    ASSERT_EQ(Launches(p), want) << "trial " << trial << "\n" << dump;
    nontrivial += want.size() > 1 ? 1 : 0;
  }
  EXPECT_GT(nontrivial, 50) << "the random cases should often mix node types";
}

// A provider the test drives the way a backend would: list, plan, apply.
class FakeProvider final : public NodeProvider {
 public:
  Status Launch(const std::string& type, int64_t count) override {
    for (int64_t i = 0; i < count; ++i) {
      nodes_.push_back({"node-" + std::to_string(next_++), type, kPending, 0.0});
    }
    return Status::Ok();
  }
  Status Terminate(const std::vector<NodeId>& ids) override {
    for (auto& n : nodes_) {
      if (std::find(ids.begin(), ids.end(), n.id) != ids.end()) n.state = kTerminating;
    }
    return Status::Ok();
  }
  StatusOr<std::vector<ProviderNode>> List() override { return nodes_; }
  void StartAll() {
    for (auto& n : nodes_) {
      if (n.state == kPending) n.state = kRunning;
    }
  }

 private:
  std::vector<ProviderNode> nodes_;
  int next_ = 0;
};

TEST(AutoscalerPlanTest, RoundsConvergeThroughAProvider) {
  AutoscalerConfig cfg;
  cfg.node_types["cpu4"] = {.resources = Res({{"CPU", 4}})};
  auto planner = AutoscalerPlanner::Create(cfg);
  ASSERT_TRUE(planner.ok());
  FakeProvider provider;
  // 40 units of {CPU 1} need 10 nodes; the cap allows max(5, running) pending per round.
  std::vector<int64_t> launched_per_round;
  for (int round = 0; round < 5; ++round) {
    AutoscalerInput in;
    in.now_s = round;
    auto listed = provider.List();
    ASSERT_TRUE(listed.ok());
    for (const auto& n : *listed) {
      // Nothing runs yet: every node is free (the demand is still pending).
      in.nodes.push_back({.id = n.id,
                          .type = n.type,
                          .state = n.state,
                          .total = Res({{"CPU", 4}}),
                          .available = Res({{"CPU", 4}})});
    }
    in.demands.push_back({Res({{"CPU", 1}}), 40});
    auto plan = planner->Plan(in);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    int64_t launched = 0;
    for (const auto& l : plan->launches) {
      ASSERT_TRUE(provider.Launch(l.type, l.count).ok());
      launched += l.count;
    }
    launched_per_round.push_back(launched);
    provider.StartAll();
  }
  EXPECT_EQ(launched_per_round, (std::vector<int64_t>{5, 5, 0, 0, 0}));
}

}  // namespace
}  // namespace orrery::autoscaler
