// Spread policy: a ring over node ids with a cursor kept between calls.
#include <gtest/gtest.h>

#include "core/scheduling/spread_policy.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::IdOf;
using testing::Req;

std::string Next(SpreadPolicy& p, const ClusterView& v, const ResourceRequest& r,
                 bool require_available = false, int excluded = -1) {
  Rng rng(1);
  PolicyRequest pr;
  pr.resources = &r;
  pr.require_available = require_available;
  pr.excluded_slot = excluded;
  PolicyResult res = p.Schedule(v, pr, rng);
  return res.chosen() ? IdOf(v, res.slot) : "<" + std::string(res.kind ==
                                                              PolicyResult::Kind::kInfeasible
                                                              ? "infeasible" : "unavailable") + ">";
}

TEST(Spread, VisitsNodesRoundRobinInIdOrder) {
  auto v = ClusterBuilder().Node("n2", {{"CPU", 4}}).Node("n0", {{"CPU", 4}})
               .Node("n1", {{"CPU", 4}}).Build();
  SpreadPolicy p;
  auto r = Req({{"CPU", 1}});
  EXPECT_EQ(Next(p, v, r), "n0");
  EXPECT_EQ(Next(p, v, r), "n1");
  EXPECT_EQ(Next(p, v, r), "n2");
  EXPECT_EQ(Next(p, v, r), "n0");
}

TEST(Spread, SkipsNodesWhereTheRequestIsNotAvailableAndMovesPastThePick) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}).Node("b", {{"CPU", 4}}).Used({{"CPU", 4}})
               .Node("c", {{"CPU", 4}}).Build();
  SpreadPolicy p;
  auto r = Req({{"CPU", 1}});
  EXPECT_EQ(Next(p, v, r), "a");
  EXPECT_EQ(Next(p, v, r), "c");  // b is busy
  EXPECT_EQ(p.cursor(), 0u);      // just past c, wrapped
  EXPECT_EQ(Next(p, v, r), "a");
}

TEST(Spread, SecondPassTakesTheFirstFeasibleNodeWhenNoneIsAvailable) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 1}}).Used({{"CPU", 1}})
               .Node("b", {{"CPU", 4}}).Used({{"CPU", 4}}).Build();
  SpreadPolicy p;
  EXPECT_EQ(Next(p, v, Req({{"CPU", 2}})), "b");  // a can never hold 2 CPUs
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}})), "a");  // cursor past b wraps to a
}

TEST(Spread, RequireAvailableSkipsTheFeasiblePass) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 1}}).Used({{"CPU", 1}}).Build();
  SpreadPolicy p;
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}}), true), "<unavailable>");
}

TEST(Spread, DeadAndDrainingNodesAreSkipped) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}, NodeState::kDead)
               .Node("b", {{"CPU", 4}}, NodeState::kDraining).Node("c", {{"CPU", 4}}).Build();
  SpreadPolicy p;
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}})), "c");
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}})), "c");
}

TEST(Spread, NoFeasibleNodeIsInfeasible) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}).Build();
  SpreadPolicy p;
  EXPECT_EQ(Next(p, v, Req({{"GPU", 1}})), "<infeasible>");
}

TEST(Spread, ExcludedLocalNodeIsSkipped) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}).Node("b", {{"CPU", 4}}).Build();
  SpreadPolicy p;
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}}), false, v.FindSlot("a")), "b");
  EXPECT_EQ(Next(p, v, Req({{"CPU", 1}}), false, v.FindSlot("a")), "b");
}

}  // namespace
}  // namespace orrery
