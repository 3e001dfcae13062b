// Property tests over random clusters and request streams:
//  - a node chosen for a request is always schedulable and feasible, and "available" only when
//    the request really fits there now;
//  - availability never goes negative or above the total (aggregate and per device);
//  - the same seed gives the same decisions;
//  - bundle placement never changes the view (no leaked temporary deduction), and a successful
//    placement fits when applied;
//  - a lease manager that returns every lease gets every resource back.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/lease/lease_manager.h"
#include "core/placement/bundle_policy.h"
#include "core/scheduling/scheduler.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {

ClusterView RandomCluster(Rng& rng, int n) {
  ClusterView v;
  for (int i = 0; i < n; ++i) {
    Node node;
    node.id = "node-" + std::to_string(rng.UniformIndex(1000000)) + "-" + std::to_string(i);
    ResourceSet total;
    total.Set(kCPU, Quantity::Whole(1 + static_cast<int64_t>(rng.UniformIndex(16))));
    total.Set(kMemory, Quantity::Whole(1 + static_cast<int64_t>(rng.UniformIndex(64))));
    if (rng.UniformIndex(3) == 0) {
      total.Set(kGPU, Quantity::Whole(1 + static_cast<int64_t>(rng.UniformIndex(4))));
    }
    if (rng.UniformIndex(5) == 0) total.Set("accel", Quantity::Whole(2));
    node.resources = *NodeResources::Create(total);
    uint64_t s = rng.UniformIndex(10);
    node.state = s == 0 ? NodeState::kDead : s == 1 ? NodeState::kDraining : NodeState::kAlive;
    EXPECT_TRUE(v.AddNode(std::move(node)).ok());
  }
  return v;
}

ResourceRequest RandomRequest(Rng& rng) {
  std::map<std::string, double> m;
  m["CPU"] = 0.5 * static_cast<double>(rng.UniformIndex(9));
  if (rng.UniformIndex(3) == 0) m["memory"] = static_cast<double>(rng.UniformIndex(16));
  switch (rng.UniformIndex(5)) {
    case 0: m["GPU"] = 0.25 * static_cast<double>(1 + rng.UniformIndex(3)); break;
    case 1: m["GPU"] = static_cast<double>(1 + rng.UniformIndex(3)); break;
    default: break;
  }
  if (rng.UniformIndex(10) == 0) m["accel"] = 1;
  return *ResourceRequest::Create(m);
}

SchedulingStrategy RandomStrategy(Rng& rng, const ClusterView& v) {
  switch (rng.UniformIndex(6)) {
    case 0: return SchedulingStrategy::Spread();
    case 1: {
      const auto& ids = v.ordered_slots();
      const Node& t = v.at(ids[rng.UniformIndex(ids.size())]);
      return SchedulingStrategy::NodeAffinity(t.id, rng.UniformIndex(2) == 0,
                                              rng.UniformIndex(2) == 0, rng.UniformIndex(4) == 0);
    }
    default: return SchedulingStrategy::Default();
  }
}

void ExpectSane(const ClusterView& v) {
  for (int slot : v.ordered_slots()) {
    const NodeResources& r = v.at(slot).resources;
    ASSERT_FALSE(r.available().HasNegative()) << v.at(slot).id;
    ASSERT_TRUE(r.available().IsSubsetOf(r.total())) << v.at(slot).id;
    for (const auto& [name, devs] : r.all_devices()) {
      Quantity sum;
      for (Quantity d : devs) {
        ASSERT_GE(d, Quantity());
        ASSERT_LE(d, kOneUnit);
        sum += d;
      }
      ASSERT_EQ(sum, r.available().Get(name)) << v.at(slot).id << " " << name;
    }
  }
}

struct Trace {
  std::vector<std::string> decisions;
};

// Runs `steps` random decisions; applies those that land on an available node and releases old
// allocations at random. Checks the invariants at every step.
Trace RunStream(uint64_t seed, int nodes, int steps, const std::string& policy) {
  Rng world(seed);
  ClusterView v = RandomCluster(world, nodes);
  SchedulerOptions o;
  o.policy = policy;
  o.hybrid.top_k_fraction = world.UniformIndex(2) == 0 ? 0.0 : 0.3;
  auto s = *Scheduler::Create(o);
  Rng rng(seed * 7919);
  std::vector<std::pair<int, Allocation>> held;
  Trace t;
  for (int i = 0; i < steps; ++i) {
    SchedulingRequest req;
    req.resources = RandomRequest(world);
    req.strategy = RandomStrategy(world, v);
    req.force_spillback = world.UniformIndex(8) == 0;
    req.require_available = world.UniformIndex(8) == 0;
    const auto& ids = v.ordered_slots();
    int local = ids[world.UniformIndex(ids.size())];
    Decision d = s->Schedule(v, req, local, rng);
    t.decisions.push_back(std::string(OutcomeName(d.outcome)) + ":" +
                          (d.slot >= 0 ? v.at(d.slot).id : "-"));
    if (d.slot >= 0) {
      const Node& n = v.at(d.slot);
      EXPECT_TRUE(n.IsSchedulable()) << n.id;
      EXPECT_TRUE(n.resources.IsFeasible(req.resources)) << n.id << " " << req.resources.ToString();
      EXPECT_EQ(d.available, n.resources.IsAvailable(req.resources));
      // Force spillback excludes the local node except for an explicit affinity target.
      if (req.force_spillback && req.strategy.type != SchedulingStrategy::Type::kNodeAffinity) {
        EXPECT_NE(d.slot, local);
      }
      if (d.available) {
        auto a = v.Allocate(d.slot, req.resources);
        EXPECT_TRUE(a.has_value());
        if (a) held.emplace_back(d.slot, *a);
      }
    }
    if (!held.empty() && world.UniformIndex(3) == 0) {
      size_t k = world.UniformIndex(held.size());
      v.Release(held[k].first, held[k].second);
      held.erase(held.begin() + static_cast<long>(k));
    }
    ExpectSane(v);
    if (::testing::Test::HasFatalFailure()) break;
  }
  return t;
}

class PolicyProperty : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyProperty, ChosenNodesAreFeasibleAndAccountingStaysSane) {
  for (uint64_t seed = 1; seed <= 20; ++seed) RunStream(seed, 3 + seed % 12, 300, GetParam());
}

TEST_P(PolicyProperty, SameSeedGivesTheSameDecisions) {
  for (uint64_t seed = 100; seed < 105; ++seed) {
    EXPECT_EQ(RunStream(seed, 12, 200, GetParam()).decisions,
              RunStream(seed, 12, 200, GetParam()).decisions);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, PolicyProperty,
                         ::testing::Values("hybrid", "hybrid-reference", "spread", "random",
                                           "binpack"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(HybridProperty, IndexedAndReferenceAgreeThroughTheScheduler) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    EXPECT_EQ(RunStream(seed, 20, 200, "hybrid").decisions,
              RunStream(seed, 20, 200, "hybrid-reference").decisions);
  }
}

std::vector<std::pair<std::string, ResourceSet>> Snapshot(const ClusterView& v) {
  std::vector<std::pair<std::string, ResourceSet>> out;
  for (int slot : v.ordered_slots()) {
    out.emplace_back(v.at(slot).id, v.at(slot).resources.available());
  }
  return out;
}

TEST(PlacementProperty, PlacingNeverChangesTheViewAndPlacementsFitWhenApplied) {
  const PlacementStrategy strategies[] = {PlacementStrategy::kPack, PlacementStrategy::kSpread,
                                          PlacementStrategy::kStrictPack,
                                          PlacementStrategy::kStrictSpread};
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Rng rng(seed);
    ClusterView v = RandomCluster(rng, 2 + static_cast<int>(seed % 6));
    // Use part of the cluster first.
    for (int i = 0; i < 5; ++i) {
      const auto& ids = v.ordered_slots();
      (void)v.Allocate(ids[rng.UniformIndex(ids.size())], RandomRequest(rng));
    }
    std::vector<ResourceRequest> bundles;
    for (uint64_t b = 0, n = 1 + rng.UniformIndex(5); b < n; ++b) {
      bundles.push_back(RandomRequest(rng));
    }
    for (PlacementStrategy st : strategies) {
      const auto before = Snapshot(v);
      PlacementResult r = PlaceBundles(v, bundles, st);
      ASSERT_EQ(Snapshot(v), before) << "seed " << seed << " " << PlacementStrategyName(st);
      if (r.kind != PlacementResult::Kind::kPlaced) continue;
      ASSERT_EQ(r.slots.size(), bundles.size());
      // Applying the placement must succeed bundle by bundle, and STRICT_SPREAD uses distinct
      // nodes, STRICT_PACK one node.
      ClusterView applied = v;
      for (size_t i = 0; i < bundles.size(); ++i) {
        EXPECT_TRUE(applied.at(r.slots[i]).IsSchedulable());
        EXPECT_TRUE(applied.Allocate(r.slots[i], bundles[i]).has_value())
            << "seed " << seed << " bundle " << i << " " << PlacementStrategyName(st);
      }
      std::set<int> distinct(r.slots.begin(), r.slots.end());
      if (st == PlacementStrategy::kStrictSpread) {
        EXPECT_EQ(distinct.size(), bundles.size());
      }
      if (st == PlacementStrategy::kStrictPack) {
        EXPECT_EQ(distinct.size(), 1u);
      }
    }
  }
}

TEST(LeaseProperty, ReturningEveryLeaseRestoresTheLocalNode) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng world(seed);
    ClusterView v = RandomCluster(world, 6);
    int local = -1;
    for (int slot : v.ordered_slots()) {
      if (v.at(slot).IsSchedulable()) local = slot;
    }
    if (local < 0) continue;
    const ResourceSet before = v.at(local).resources.available();
    auto m = *LeaseManager::Create(v.at(local).id, v, {});
    Rng rng(seed);
    std::vector<TaskId> granted;
    for (int i = 0; i < 100; ++i) {
      LeaseRequest req;
      req.task_id = "t" + std::to_string(i);
      req.sched.resources = RandomRequest(world);
      LeaseReply r = m->RequestLease(req, rng);
      if (r.kind == LeaseReply::Kind::kGranted) granted.push_back(r.task_id);
      ExpectSane(m->view());
      if (!granted.empty() && world.UniformIndex(2) == 0) {
        ASSERT_TRUE(m->ReturnLease(granted.back()).ok());
        granted.pop_back();
        for (const auto& out : m->SchedulePending(rng)) {
          if (out.kind == LeaseReply::Kind::kGranted) granted.push_back(out.task_id);
        }
      }
    }
    for (const auto& t : granted) ASSERT_TRUE(m->ReturnLease(t).ok());
    EXPECT_EQ(m->view().at(local).resources.available(), before) << "seed " << seed;
  }
}

}  // namespace
}  // namespace orrery
