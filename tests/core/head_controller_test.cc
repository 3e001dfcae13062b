// HeadController: the head's event -> decision table (core/agent/head_controller.h).
#include "core/agent/head_controller.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/core/test_util.h"

namespace orrery::agent {
namespace {

using orrery::testing::Req;
using orrery::testing::Res;
using Kind = TwoPhaseCommand::Kind;

Node MakeNode(const std::string& id, const std::map<std::string, double>& total) {
  Node n;
  n.id = id;
  n.resources = *NodeResources::Create(Res(total));
  return n;
}

HeadControllerOptions Opts() {
  HeadControllerOptions o;
  o.report_period_s = 0.1;
  o.health_check_period_s = 1.0;
  o.health_check_failures = 3;  // dead after 3 s of silence
  return o;
}

std::vector<NodeId> Ids(const std::vector<NodeDeath>& d) {
  std::vector<NodeId> out;
  for (const auto& x : d) out.push_back(x.node);
  return out;
}

// ---- the IsAlive / IsSchedulable clean-up

TEST(NodePredicates, DrainingIsAliveButNotSchedulable) {
  Node n = MakeNode("a", {{"CPU", 1}});
  EXPECT_TRUE(n.IsAlive());
  EXPECT_TRUE(n.IsSchedulable());
  n.state = NodeState::kDraining;
  EXPECT_TRUE(n.IsAlive());
  EXPECT_FALSE(n.IsSchedulable());
  n.state = NodeState::kDead;
  EXPECT_FALSE(n.IsAlive());
  EXPECT_FALSE(n.IsSchedulable());
}

// ---- membership and liveness

TEST(HeadControllerMembership, RegisterRefusesAnAliveDuplicateButReplacesADeadOne) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  EXPECT_EQ(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.5).code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(hc.Drain("a").ok());
  EXPECT_EQ(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.5).code(),
            StatusCode::kAlreadyExists)
      << "a draining node is alive";
  for (int i = 1; i <= 40; ++i) hc.Tick(i * 0.1);  // silent 4 s > 3 s
  ASSERT_EQ(hc.FindMember("a")->node.state, NodeState::kDead);
  EXPECT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 8}}), 4.1).ok());
  EXPECT_EQ(hc.FindMember("a")->node.state, NodeState::kAlive);
}

TEST(HeadControllerMembership, SilentNodeIsDeclaredDeadAfterPeriodTimesFailures) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("b", {{"CPU", 4}}), 0.0).ok());
  // Ticks every 0.1 s; b keeps reporting, a does not.
  std::vector<NodeId> dead;
  double t = 0.0;
  for (int i = 1; i <= 40; ++i) {
    t = i * 0.1;
    ASSERT_TRUE(hc.OnNodeReport("b", std::nullopt, Res({{"CPU", 4}}), {}, t).ok());
    auto d = hc.Tick(t);
    EXPECT_EQ(d.stall_s, 0.0);
    for (const auto& x : d.dead) {
      dead.push_back(x.node);
      EXPECT_GT(x.silent_s, 3.0);
      EXPECT_LT(t, 3.15) << "declared late";
    }
  }
  EXPECT_EQ(dead, std::vector<NodeId>{"a"});
  EXPECT_EQ(hc.FindMember("a")->node.state, NodeState::kDead);
  EXPECT_EQ(hc.NumAlive(), 1);
  // A dead node's report is refused.
  EXPECT_EQ(hc.OnNodeReport("a", std::nullopt, Res({{"CPU", 4}}), {}, t).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(hc.OnNodeReport("zz", std::nullopt, Res({{"CPU", 4}}), {}, t).code(),
            StatusCode::kNotFound);
}

TEST(HeadControllerMembership, StalledHeadExtendsDeadlinesInsteadOfKillingEveryone) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  hc.Tick(0.1);
  // The head's loop did not run for 10 s (longer than the 3 s dead-node timeout).
  auto d = hc.Tick(10.1);
  EXPECT_NEAR(d.stall_s, 10.0, 1e-9);
  EXPECT_TRUE(d.dead.empty()) << "a stall of the head is not the node's silence";
  EXPECT_EQ(hc.FindMember("a")->node.state, NodeState::kAlive);
  // The deadline moved by the gap minus one period: last heard 0.0 + 9.9 = 9.9.
  EXPECT_NEAR(hc.FindMember("a")->last_heard_s, 9.9, 1e-9);
  // ... and it still runs out if the node stays silent afterwards.
  double t = 10.1;
  std::vector<NodeId> dead;
  while (t < 13.5) {
    t += 0.1;
    auto dd = hc.Tick(t);
    for (auto& x : Ids(dd.dead)) dead.push_back(x);
  }
  EXPECT_EQ(dead, std::vector<NodeId>{"a"});
}

TEST(HeadControllerMembership, OrdinaryTickJitterIsNoStall) {
  HeadController hc(Opts());
  hc.Tick(0.0);
  EXPECT_EQ(hc.Tick(0.9).stall_s, 0.0);   // 9 periods late: jitter
  EXPECT_GT(hc.Tick(2.1).stall_s, 0.0);   // > max(1 s, 10 periods)
}

TEST(HeadControllerMembership, BroadcastCarriesWhatChangedSinceTheLastTick) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("b", {{"CPU", 4}}), 0.0).ok());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  auto d1 = hc.Tick(0.1);
  EXPECT_EQ(d1.broadcast.version, 1);
  EXPECT_EQ(d1.broadcast.changed, (std::vector<NodeId>{"b", "a"}));
  auto d2 = hc.Tick(0.2);
  EXPECT_EQ(d2.broadcast.version, 2);
  EXPECT_TRUE(d2.broadcast.changed.empty());
  ASSERT_TRUE(hc.OnNodeReport("a", std::nullopt, Res({{"CPU", 1}}), {}, 0.25).ok());
  ASSERT_TRUE(hc.Drain("b").ok());
  ASSERT_TRUE(hc.OnNodeReport("a", std::nullopt, Res({{"CPU", 2}}), {}, 0.28).ok());
  auto d3 = hc.Tick(0.3);
  EXPECT_EQ(d3.broadcast.changed, (std::vector<NodeId>{"a", "b"}));
  EXPECT_EQ(hc.FindMember("a")->node.resources.available(), Res({{"CPU", 2}}));
  EXPECT_EQ(hc.FindMember("b")->node.state, NodeState::kDraining);
}

TEST(HeadControllerMembership, ReportWithNewTotalsResizesAndRejectsAvailableAboveTotal) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  EXPECT_EQ(hc.OnNodeReport("a", std::nullopt, Res({{"CPU", 5}}), {}, 0.1).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(hc.OnNodeReport("a", Res({{"CPU", 4}, {"CPU_group_g", 1}}),
                              Res({{"CPU", 3}, {"CPU_group_g", 1}}), {}, 0.2)
                  .ok());
  EXPECT_EQ(hc.FindMember("a")->node.resources.total(), Res({{"CPU", 4}, {"CPU_group_g", 1}}));
}

// ---- placement groups

HeadController TwoNodes() {
  HeadController hc(Opts());
  EXPECT_TRUE(hc.OnNodeRegistered(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  EXPECT_TRUE(hc.OnNodeRegistered(MakeNode("b", {{"CPU", 4}}), 0.0).ok());
  return hc;
}

TEST(HeadControllerPlacement, CreatePreparesThenCommitsThenIsCreated) {
  HeadController hc = TwoNodes();
  auto d = hc.CreatePlacementGroup("g", PlacementStrategy::kStrictSpread,
                                   {Req({{"CPU", 2}}), Req({{"CPU", 2}})}, 0.0);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->commands.size(), 2u);
  EXPECT_EQ(d->commands[0].kind, Kind::kPrepare);
  EXPECT_NE(d->commands[0].node, d->commands[1].node) << "STRICT_SPREAD: distinct nodes";
  EXPECT_TRUE(d->retries.empty());
  std::vector<TwoPhaseCommand> commits;
  for (const auto& c : d->commands) {
    auto n = hc.OnBundleReply(c, true, 0.01);
    ASSERT_TRUE(n.ok());
    for (auto& x : n->commands) commits.push_back(x);
  }
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_EQ(commits[0].kind, Kind::kCommit);
  std::vector<std::string> created;
  for (const auto& c : commits) {
    auto n = hc.OnBundleReply(c, true, 0.02);
    ASSERT_TRUE(n.ok());
    for (auto& x : n->created) created.push_back(x);
  }
  EXPECT_EQ(created, std::vector<std::string>{"g"});
  EXPECT_EQ(hc.groups().at("g").reservation.state(), ReservationState::kCreated);
  // A stale duplicate answer is refused, and a live id cannot be reused.
  EXPECT_FALSE(hc.OnBundleReply(commits[0], true, 0.03).ok());
  EXPECT_EQ(hc.CreatePlacementGroup("g", PlacementStrategy::kPack, {Req({{"CPU", 1}})}, 0.1)
                .status()
                .code(),
            StatusCode::kAlreadyExists);
}

TEST(HeadControllerPlacement, FailedPrepareCancelsThePreparedAndRetriesAfterBackoff) {
  HeadController hc = TwoNodes();
  auto d = hc.CreatePlacementGroup("g", PlacementStrategy::kStrictSpread,
                                   {Req({{"CPU", 2}}), Req({{"CPU", 2}})}, 1.0);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->commands.size(), 2u);
  ASSERT_TRUE(hc.OnBundleReply(d->commands[0], true, 1.01).ok());
  auto last = hc.OnBundleReply(d->commands[1], false, 1.02);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->commands.size(), 1u);
  EXPECT_EQ(last->commands[0].kind, Kind::kCancel);
  EXPECT_EQ(last->commands[0].bundle, 0);
  ASSERT_EQ(last->retries.size(), 1u);
  EXPECT_NEAR(last->retries[0].at_s, 1.02 + 0.1, 1e-9);
  EXPECT_EQ(hc.groups().at("g").reservation.state(), ReservationState::kFailed);
  // The timer fires: placed again.
  auto again = hc.RetryPlacementGroup("g", 1.12);
  EXPECT_EQ(again.commands.size(), 2u);
  EXPECT_EQ(hc.groups().at("g").reservation.attempts(), 2);
}

TEST(HeadControllerPlacement, NoRoomIsFailedWithGrowingBackoffAndInfeasibleIsNoted) {
  HeadController hc = TwoNodes();
  auto d = hc.CreatePlacementGroup("big", PlacementStrategy::kPack, {Req({{"CPU", 64}})}, 0.0);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->commands.empty());
  ASSERT_EQ(d->retries.size(), 1u);
  EXPECT_NEAR(d->retries[0].at_s, 0.1, 1e-9);
  EXPECT_TRUE(hc.groups().at("big").infeasible);
  auto r = hc.RetryPlacementGroup("big", 0.1);
  ASSERT_EQ(r.retries.size(), 1u);
  EXPECT_NEAR(r.retries[0].at_s, 0.1 + 0.15, 1e-9);
  // Only one timer per group at a time: an unfired one is not handed out again.
  auto gangs = hc.UnplacedGangs();
  ASSERT_EQ(gangs.size(), 1u);
  EXPECT_EQ(gangs[0].bundles[0], Res({{"CPU", 64}}));
}

TEST(HeadControllerPlacement, NodeDeathFailsTheGroupOverAndItIsPlacedAgain) {
  HeadController hc = TwoNodes();
  auto d = hc.CreatePlacementGroup("g", PlacementStrategy::kSpread,
                                   {Req({{"CPU", 1}}), Req({{"CPU", 1}})}, 0.0);
  ASSERT_TRUE(d.ok());
  std::vector<TwoPhaseCommand> commits;
  for (const auto& c : d->commands) {
    auto n = hc.OnBundleReply(c, true, 0.0);
    ASSERT_TRUE(n.ok());
    for (auto& x : n->commands) commits.push_back(x);
  }
  for (const auto& c : commits) ASSERT_TRUE(hc.OnBundleReply(c, true, 0.0).ok());
  ASSERT_EQ(hc.groups().at("g").reservation.state(), ReservationState::kCreated);
  const NodeId lost = hc.groups().at("g").reservation.placement()[0];
  const NodeId kept = lost == "a" ? "b" : "a";
  // Only the surviving node keeps reporting; the other dies at 3 s + one tick.
  TickDecisions death;
  for (int i = 1; i <= 40 && death.dead.empty(); ++i) {
    ASSERT_TRUE(hc.OnNodeReport(kept, std::nullopt, Res({{"CPU", 3}}), {}, i * 0.1).ok());
    death = hc.Tick(i * 0.1);
  }
  ASSERT_EQ(Ids(death.dead), std::vector<NodeId>{lost});
  // The survivor's bundle is given back; the group is Failed and retried.
  ASSERT_EQ(death.placement.commands.size(), 1u);
  EXPECT_EQ(death.placement.commands[0].kind, Kind::kCancel);
  EXPECT_EQ(death.placement.commands[0].node, kept);
  ASSERT_EQ(death.placement.retries.size(), 1u);
  EXPECT_EQ(death.placement.retries[0].group, "g");
  // The retry places both bundles on the surviving node (SPREAD is soft).
  auto again = hc.RetryPlacementGroup("g", death.placement.retries[0].at_s);
  ASSERT_EQ(again.commands.size(), 2u);
  for (const auto& c : again.commands) EXPECT_EQ(c.node, kept);
}

TEST(HeadControllerPlacement, RemoveCancelsHeldBundlesAndFreesTheName) {
  HeadController hc = TwoNodes();
  auto d = hc.CreatePlacementGroup("g", PlacementStrategy::kPack, {Req({{"CPU", 1}})}, 0.0);
  ASSERT_TRUE(d.ok());
  auto commit = hc.OnBundleReply(d->commands[0], true, 0.0);
  ASSERT_TRUE(hc.OnBundleReply(commit->commands[0], true, 0.0).ok());
  auto r = hc.RemovePlacementGroup("g");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->commands.size(), 1u);
  EXPECT_EQ(r->commands[0].kind, Kind::kCancel);
  EXPECT_EQ(hc.groups().at("g").reservation.state(), ReservationState::kRemoved);
  EXPECT_TRUE(hc.UnplacedGangs().empty());
  EXPECT_EQ(hc.RemovePlacementGroup("nope").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(hc.CreatePlacementGroup("g", PlacementStrategy::kPack, {Req({{"CPU", 1}})}, 1.0)
                  .ok());
}

TEST(HeadControllerPlacement, ABackendViewPlacesAndAnInfeasibleGroupCanWaitForANode) {
  HeadControllerOptions o = Opts();
  o.infeasible_waits_for_node = true;
  HeadController hc(o);  // no members: the backend hands in its own view
  ASSERT_TRUE(hc.AddPlacementGroup("g", PlacementStrategy::kPack, {Req({{"GPU", 1}})}).ok());
  EXPECT_EQ(hc.groups().at("g").reservation.state(), ReservationState::kPending);
  ClusterView cpu_only = orrery::testing::ClusterBuilder().Node("c", {{"CPU", 4}}).Build();
  auto d = hc.RetryPlacementGroupOn("g", cpu_only, 0.0);
  EXPECT_TRUE(d.commands.empty());
  EXPECT_TRUE(d.retries.empty()) << "no timer: it waits for a node";
  EXPECT_TRUE(hc.groups().at("g").infeasible);
  EXPECT_EQ(hc.groups().at("g").reservation.backoff().failures(), 0) << "no backoff used";
  ClusterView with_gpu = orrery::testing::ClusterBuilder()
                             .Node("c", {{"CPU", 4}})
                             .Node("g1", {{"CPU", 4}, {"GPU", 1}})
                             .Build();
  auto placed = hc.RetryPlacementGroupOn("g", with_gpu, 5.0);
  ASSERT_EQ(placed.commands.size(), 1u);
  EXPECT_EQ(placed.commands[0].node, "g1");
  // A crash the backend saw: the Prepare in flight there counts as refused; retry after backoff.
  auto dead = hc.OnNodeDead("g1", 5.01);
  ASSERT_EQ(dead.retries.size(), 1u);
  EXPECT_NEAR(dead.retries[0].at_s, 5.11, 1e-9);
  EXPECT_FALSE(hc.OnBundleReply(placed.commands[0], true, 5.02).ok()) << "a stale answer";
}

// ---- autoscaler rounds through a fake provider

class FakeProvider : public autoscaler::NodeProvider {
 public:
  Status Launch(const std::string& type, int64_t count) override {
    if (type == "broken") return Status(StatusCode::kUnavailable, "quota");
    for (int64_t i = 0; i < count; ++i) {
      nodes_.push_back({type + "-" + std::to_string(next_++), type,
                        autoscaler::ProviderNodeState::kPending, 0.0});
    }
    launches.emplace_back(type, count);
    return Status::Ok();
  }
  Status Terminate(const std::vector<NodeId>& ids) override {
    terminated.insert(terminated.end(), ids.begin(), ids.end());
    for (auto& n : nodes_) {
      for (const auto& id : ids) {
        if (n.id == id) n.state = autoscaler::ProviderNodeState::kTerminating;
      }
    }
    return Status::Ok();
  }
  StatusOr<std::vector<autoscaler::ProviderNode>> List() override { return nodes_; }

  std::vector<autoscaler::ProviderNode> nodes_;
  std::vector<std::pair<std::string, int64_t>> launches;
  std::vector<NodeId> terminated;
  int next_ = 0;
};

autoscaler::AutoscalerConfig Cpu4Config() {
  autoscaler::AutoscalerConfig cfg;
  autoscaler::NodeTypeConfig t;
  t.resources = Res({{"CPU", 4}});
  t.max_workers = 10;
  cfg.node_types["cpu4"] = t;
  cfg.idle_timeout_s = 60;
  return cfg;
}

TEST(HeadControllerAutoscaler, InputCountsMembersPendingLaunchesAndDrainingNodes) {
  FakeProvider p;
  ASSERT_TRUE(p.Launch("cpu4", 2).ok());  // cpu4-0, cpu4-1
  p.nodes_[0].state = autoscaler::ProviderNodeState::kRunning;
  p.nodes_[0].launch_time_s = 5.0;
  Node head = MakeNode("head", {{"CPU", 2}});
  Node w0 = MakeNode("cpu4-0", {{"CPU", 4}});
  Node hand = MakeNode("hand", {{"CPU", 8}});
  hand.state = NodeState::kDraining;
  Node gone = MakeNode("gone", {{"CPU", 8}});
  gone.state = NodeState::kDead;
  const std::vector<RoundMember> members = {
      {&head, std::nullopt}, {&w0, 7.0}, {&hand, std::nullopt}, {&gone, std::nullopt}};
  auto in = BuildAutoscalerInput(members, p.nodes_, Cpu4Config(),
                                 {{Res({{"CPU", 1}}), 3}}, {}, 9.0);
  EXPECT_EQ(in.now_s, 9.0);
  ASSERT_EQ(in.nodes.size(), 4u);
  EXPECT_EQ(in.nodes[0].id, "head");
  EXPECT_EQ(in.nodes[0].type, "");
  EXPECT_EQ(in.nodes[0].state, autoscaler::ProviderNodeState::kRunning);
  EXPECT_EQ(in.nodes[1].id, "cpu4-0");
  EXPECT_EQ(in.nodes[1].type, "cpu4");
  EXPECT_EQ(in.nodes[1].launch_time_s, 5.0);
  EXPECT_EQ(in.nodes[1].idle_since_s, 7.0);
  EXPECT_EQ(in.nodes[2].id, "hand");
  EXPECT_EQ(in.nodes[2].state, autoscaler::ProviderNodeState::kTerminating);
  EXPECT_EQ(in.nodes[3].id, "cpu4-1");
  EXPECT_EQ(in.nodes[3].state, autoscaler::ProviderNodeState::kPending);
  EXPECT_EQ(in.nodes[3].available, Res({{"CPU", 4}}));
  ASSERT_EQ(in.demands.size(), 1u);
}

TEST(HeadControllerAutoscaler, RoundLaunchesForDemandAndTerminatesIdleThroughTheProvider) {
  auto planner = autoscaler::AutoscalerPlanner::Create(Cpu4Config());
  ASSERT_TRUE(planner.ok());
  FakeProvider p;
  // Demand of 6 CPUs with no worker: two cpu4 nodes.
  auto r1 = RunAutoscalerRound(
      *planner, BuildAutoscalerInput({}, p.nodes_, planner->config(), {{Res({{"CPU", 3}}), 2}}, {},
                                     0.0),
      p);
  ASSERT_TRUE(r1.status.ok()) << r1.status.ToString();
  EXPECT_EQ(r1.launched, 2);
  EXPECT_EQ(p.launches, (std::vector<std::pair<std::string, int64_t>>{{"cpu4", 2}}));
  ASSERT_EQ(r1.log.size(), 1u);
  EXPECT_EQ(r1.log[0], "launching 2 x cpu4 (min_workers 0, gangs 0, demand 2)");
  // They joined and went idle at t=10; at t=100 (> 60 s idle) both are terminated.
  for (auto& n : p.nodes_) n.state = autoscaler::ProviderNodeState::kRunning;
  Node n0 = MakeNode("cpu4-0", {{"CPU", 4}});
  Node n1 = MakeNode("cpu4-1", {{"CPU", 4}});
  auto r2 = RunAutoscalerRound(
      *planner, BuildAutoscalerInput({{&n0, 10.0}, {&n1, 10.0}}, p.nodes_, planner->config(), {},
                                     {}, 100.0),
      p);
  EXPECT_EQ(r2.terminated, 2);
  EXPECT_EQ(p.terminated, (std::vector<NodeId>{"cpu4-0", "cpu4-1"}));
  // A failing provider is logged; the round goes on.
  autoscaler::AutoscalerConfig cfg = Cpu4Config();
  autoscaler::NodeTypeConfig broken;
  broken.resources = Res({{"GPU", 1}});
  broken.max_workers = 1;
  cfg.node_types["broken"] = broken;
  auto p2 = autoscaler::AutoscalerPlanner::Create(cfg);
  FakeProvider q;
  auto r3 = RunAutoscalerRound(
      *p2, BuildAutoscalerInput({}, {}, cfg, {{Res({{"GPU", 1}}), 1}, {Res({{"CPU", 1}}), 1}}, {},
                                0.0),
      q);
  EXPECT_EQ(r3.launched, 1);
  ASSERT_EQ(r3.log.size(), 2u);
  EXPECT_NE(r3.log[0].find("launch broken: "), std::string::npos) << r3.log[0];
  // The planner refusing its input is a status, not a crash.
  Node dup = MakeNode("x", {{"CPU", 1}});
  auto r4 = RunAutoscalerRound(
      *planner, BuildAutoscalerInput({{&dup, {}}, {&dup, {}}}, {}, planner->config(), {}, {}, 0.0),
      q);
  EXPECT_FALSE(r4.status.ok());
}

}  // namespace
}  // namespace orrery::agent

namespace orrery::agent {
namespace {

// One rule for what the autoscaler sees as demand, in the simulator and in live's head.
TEST(AutoscalerDemand, ResourceWaitsOutsideGroupsOnly) {
  EXPECT_TRUE(IsAutoscalerDemand(WaitReason::kInfeasible, false));
  EXPECT_TRUE(IsAutoscalerDemand(WaitReason::kWaitingForResources, false));
  EXPECT_FALSE(IsAutoscalerDemand(WaitReason::kWaitingForResources, true));
  EXPECT_FALSE(IsAutoscalerDemand(WaitReason::kInfeasible, true));
  for (WaitReason w : {WaitReason::kNone, WaitReason::kWaitingForRuntimeEnv,
                       WaitReason::kWaitingForArgs, WaitReason::kWaitingForPlacementGroup,
                       WaitReason::kWaitingForNode}) {
    EXPECT_FALSE(IsAutoscalerDemand(w, false)) << WaitReasonName(w);
  }
}

TEST(AutoscalerDemand, BundleResourcesMarkAPlacementGroupShape) {
  ResourceSet plain;
  plain.Set("CPU", Quantity::Whole(2));
  plain.Set("accel", Quantity::Whole(1));
  EXPECT_FALSE(IsPlacementGroupShape(plain));
  ResourceSet group = plain;
  group.Set(IndexedBundleResourceName("CPU", 0, "pg1"), Quantity::Whole(1));
  EXPECT_TRUE(IsPlacementGroupShape(group));
  ResourceSet wildcard;
  wildcard.Set(WildcardBundleResourceName("bundle", "pg1"), Quantity::Whole(1));
  EXPECT_TRUE(IsPlacementGroupShape(wildcard));
}

}  // namespace
}  // namespace orrery::agent

// ---- restore after a restart of the head (live/head/head_store.h)

namespace orrery::agent {
namespace {

// A restored member gets the grace window (last heard in the future) and is declared dead only
// after it; one that reports in time stays alive; a member restored dead stays dead and its
// reports are refused.
TEST(HeadControllerRestore, RestoredMembersHaveTheGraceWindowAndDeadOnesStayDead) {
  HeadController hc(Opts());  // dead after 3 s of silence
  Node dead = MakeNode("c", {{"CPU", 1}});
  dead.state = NodeState::kDead;
  // A grace of 10 s: last heard at 10 - 3 = 7.
  ASSERT_TRUE(hc.RestoreMember(MakeNode("a", {{"CPU", 4}}), 7.0).ok());
  ASSERT_TRUE(hc.RestoreMember(MakeNode("b", {{"CPU", 4}}), 7.0).ok());
  ASSERT_TRUE(hc.RestoreMember(dead, 7.0).ok());
  EXPECT_EQ(hc.RestoreMember(MakeNode("a", {{"CPU", 4}}), 7.0).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(hc.OnNodeReport("c", std::nullopt, Res({{"CPU", 1}}), {}, 0.1).code(),
            StatusCode::kFailedPrecondition);
  std::vector<NodeId> died;
  for (int i = 1; i <= 110; ++i) {
    const double t = i * 0.1;
    ASSERT_TRUE(hc.OnNodeReport("b", std::nullopt, Res({{"CPU", 4}}), {}, t).ok());  // b is back
    for (const auto& d : hc.Tick(t).dead) died.push_back(d.node);
    if (t < 9.9) {
      EXPECT_TRUE(died.empty()) << "t=" << t << ": within the grace window";
    }
  }
  EXPECT_EQ(died, std::vector<NodeId>{"a"});
  EXPECT_EQ(hc.FindMember("b")->node.state, NodeState::kAlive);
}

// A restored member whose daemon is known gone is declared dead at the next Tick instead of
// after its grace window; the others keep theirs; unknown ids are NotFound and a dead member
// stays as it is.
TEST(HeadControllerRestore, ExpiredRestoredMemberDiesAtTheNextTick) {
  HeadController hc(Opts());  // dead after 3 s of silence
  ASSERT_TRUE(hc.RestoreMember(MakeNode("a", {{"CPU", 4}}), 7.0).ok());  // grace until t=10
  ASSERT_TRUE(hc.RestoreMember(MakeNode("b", {{"CPU", 4}}), 7.0).ok());
  EXPECT_TRUE(hc.Tick(0.5).dead.empty());
  ASSERT_TRUE(hc.ExpireRestored("a", 0.6).ok());
  EXPECT_EQ(hc.ExpireRestored("zz", 0.6).code(), StatusCode::kNotFound);
  const auto d = hc.Tick(0.7).dead;
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].node, "a");
  EXPECT_EQ(hc.FindMember("a")->node.state, NodeState::kDead);
  EXPECT_EQ(hc.FindMember("b")->node.state, NodeState::kAlive) << "still in its grace window";
  EXPECT_TRUE(hc.ExpireRestored("a", 0.8).ok());  // dead: a no-op
  EXPECT_EQ(hc.FindMember("a")->node.state, NodeState::kDead);
}

// A group restored as Created holds its bundles where they were, sends nothing, and fails over
// like any Created group when one of its nodes dies.
TEST(HeadControllerRestore, RestoredGroupIsCreatedInPlaceAndFailsOverOnNodeDeath) {
  HeadController hc(Opts());
  ASSERT_TRUE(hc.RestoreMember(MakeNode("a", {{"CPU", 4}}), 0.0).ok());
  ASSERT_TRUE(hc.RestoreMember(MakeNode("b", {{"CPU", 4}}), 0.0).ok());
  EXPECT_EQ(hc.RestorePlacementGroup("pg", PlacementStrategy::kSpread,
                                     {Req({{"CPU", 1}}), Req({{"CPU", 1}})}, {"a"}, 1)
                .code(),
            StatusCode::kInvalidArgument)
      << "one node for two bundles";
  EXPECT_EQ(hc.groups().count("pg"), 0u) << "a refused restore leaves nothing behind";
  ASSERT_TRUE(hc.RestorePlacementGroup("pg", PlacementStrategy::kSpread,
                                       {Req({{"CPU", 1}}), Req({{"CPU", 1}})}, {"a", "b"}, 2)
                  .ok());
  const auto& g = hc.groups().at("pg");
  EXPECT_EQ(g.reservation.state(), ReservationState::kCreated);
  EXPECT_EQ(g.reservation.placement(), (std::vector<NodeId>{"a", "b"}));
  EXPECT_EQ(g.reservation.attempts(), 2);
  EXPECT_EQ(hc.RestorePlacementGroup("pg", PlacementStrategy::kSpread, {Req({{"CPU", 1}})},
                                     {"a"}, 1)
                .code(),
            StatusCode::kAlreadyExists);
  auto d = hc.OnNodeDead("b", 1.0);
  ASSERT_EQ(d.commands.size(), 1u);
  EXPECT_EQ(d.commands[0].kind, Kind::kCancel);
  EXPECT_EQ(d.commands[0].node, "a");
  EXPECT_EQ(hc.groups().at("pg").reservation.state(), ReservationState::kFailed);
}

}  // namespace
}  // namespace orrery::agent
