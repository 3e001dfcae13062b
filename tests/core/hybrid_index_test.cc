// The indexed hybrid policy (HybridPolicy) decides exactly as the reference scan
// (HybridReferencePolicy): same outcome, node, reason and Rng draws, decision by decision, while
// the cluster changes under it. Plus the order-statistic set the index is built on.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/scheduling/hybrid_index.h"
#include "core/scheduling/hybrid_policy.h"
#include "tests/core/test_util.h"

namespace orrery {
namespace {
using testing::ClusterBuilder;
using testing::Req;
using testing::Res;
using testing::Slot;

// ---------------------------------------------------------------------------------------------
// OrderStatisticSet against std::set.

using Key = OrderStatisticSet::Key;
struct KeyLess {
  bool operator()(const Key& a, const Key& b) const { return OrderStatisticSet::Less(a, b); }
};

void ExpectSame(const OrderStatisticSet& s, const std::set<Key, KeyLess>& ref) {
  ASSERT_EQ(s.size(), ref.size());
  size_t i = 0;
  for (const Key& k : ref) {
    ASSERT_EQ(s.At(i).rank, k.rank) << "position " << i;
    ++i;
  }
  if (!ref.empty()) {
    EXPECT_EQ(s.Front().rank, ref.begin()->rank);
  }
}

TEST(OrderStatisticSetTest, MatchesASortedSetThroughInsertsErasesAndRebuilds) {
  Rng rng(7);
  for (int round = 0; round < 4; ++round) {
    OrderStatisticSet s;
    std::set<Key, KeyLess> ref;
    std::map<int32_t, Key> by_rank;
    const int universe = 50 + 700 * round;  // 50 keys: one chunk; 2150: many chunks
    // Few distinct scores so ties (broken by rank) are common.
    auto random_key = [&](int32_t rank) {
      return Key{static_cast<double>(rng.UniformIndex(20)) / 16.0, rank, rank + 1000};
    };
    for (int step = 0; step < 20000; ++step) {
      const auto rank = static_cast<int32_t>(rng.UniformIndex(static_cast<uint64_t>(universe)));
      auto it = by_rank.find(rank);
      if (it == by_rank.end()) {
        Key k = random_key(rank);
        s.Insert(k);
        ref.insert(k);
        by_rank[rank] = k;
      } else {
        s.Erase(it->second);
        ref.erase(it->second);
        by_rank.erase(it);
      }
      if (step % 997 == 0) {
        ExpectSame(s, ref);
        // CountLess of a present key is its position.
        size_t pos = 0;
        for (const Key& k : ref) EXPECT_EQ(s.CountLess(k), pos++);
      }
      if (step == 10000) {  // bulk-build from the same contents and keep going
        s.Assign(std::vector<Key>(ref.begin(), ref.end()));
        ExpectSame(s, ref);
      }
    }
    ExpectSame(s, ref);
    // Shrink to empty and grow again.
    for (const auto& [rank, k] : by_rank) s.Erase(k);
    EXPECT_TRUE(s.empty());
    s.Insert({0.5, 3, 3});
    EXPECT_EQ(s.Front().slot, 3);
  }
}

TEST(OrderStatisticSetTest, CountLessOfAnAbsentKeyIsItsInsertionPoint) {
  OrderStatisticSet s;
  s.Assign({{0.0, 1, 1}, {0.0, 4, 4}, {0.7, 2, 2}, {0.9, 0, 0}});
  EXPECT_EQ(s.CountLess({0.0, 0, 0}), 0u);
  EXPECT_EQ(s.CountLess({0.0, 3, 3}), 1u);
  EXPECT_EQ(s.CountLess({0.7, 9, 9}), 3u);
  EXPECT_EQ(s.CountLess({1.0, 0, 0}), 4u);
}

// ---------------------------------------------------------------------------------------------
// Equivalence: random clusters and request streams, decision by decision.

struct Config {
  HybridOptions options;
  HybridIndexOptions index_options;
  int nodes = 120;
  int steps = 3000;
};

// "preferred", "top 1", "top k" (a draw among several), "unavailable" or "infeasible".
std::string OutcomeClass(const PolicyResult& r) {
  if (r.kind == PolicyResult::Kind::kUnavailable) return "unavailable";
  if (r.kind == PolicyResult::Kind::kInfeasible) return "infeasible";
  const std::string cls = r.reason.find("feasible") != std::string::npos ? "/feasible" : "";
  if (r.reason.starts_with("preferred")) return "preferred" + cls;
  return (r.reason.starts_with("drawn among the top 1 ") ? "top 1" : "top k") + cls;
}

std::string Describe(const PolicyResult& r) {
  static const char* const kKinds[] = {"chosen", "unavailable", "infeasible", "canceled"};
  return std::string(kKinds[static_cast<int>(r.kind)]) + " slot=" + std::to_string(r.slot) +
         " (" + r.reason + ")";
}

// A randomly changing cluster, and both policies deciding on it.
class Fuzzer {
 public:
  Fuzzer(const Config& c, uint64_t seed)
      : config_(c), world_(seed), rng_ref_(seed ^ 0xabcdef), rng_idx_(seed ^ 0xabcdef),
        reference_(c.options), indexed_(c.options, c.index_options) {
    for (int i = 0; i < c.nodes; ++i) AddRandomNode();
    // Shapes repeat (so they get indexed); a few one-off shapes go through the scan path.
    shapes_ = {Req({{"CPU", 1}}),
               Req({{"CPU", 2}, {"memory", 4}}),
               Req({{"CPU", 0.5}}),
               Req({{"CPU", 1}, {"GPU", 1}}),
               Req({{"CPU", 1}, {"GPU", 0.5}}),
               Req({{"GPU", 0.25}}),
               Req({{"GPU", 2}}),
               Req({{"CPU", 24}}),  // feasible on big nodes only: often unavailable
               Req({{"CPU", 1}, {"accel", 1}}),
               Req({{"CPU", 1000}}),  // infeasible everywhere
               ResourceRequest()};    // empty: fits every schedulable node
  }

  // Runs the stream, failing at the first divergence.
  void Run() {
    for (int step = 0; step < config_.steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const ClusterView* on = &view_;
      std::optional<ClusterView> copy;
      // Now and then decide on another view object (a copy), to exercise rebinding.
      if (Chance(0.01)) {
        copy.emplace(view_);
        on = &*copy;
      }
      ResourceRequest shape = PickShape();
      PolicyRequest req;
      req.resources = &shape;
      req.preferred_slot = Chance(0.7) ? RandomSlot(*on) : -1;
      if (Chance(0.25)) req.excluded_slot = Chance(0.3) ? req.preferred_slot : RandomSlot(*on);
      req.require_available = Chance(0.2);

      PolicyResult want = reference_.Schedule(*on, req, rng_ref_);
      PolicyResult got = indexed_.Schedule(*on, req, rng_idx_);
      ASSERT_EQ(Describe(got), Describe(want))
          << "request " << shape.ToString() << " preferred=" << req.preferred_slot
          << " excluded=" << req.excluded_slot << " require_available=" << req.require_available;
      // Same number of draws: the streams are still in step.
      ASSERT_EQ(rng_idx_.Next(), rng_ref_.Next());
      ++decisions_;
      ++outcomes_[OutcomeClass(want)];
      // Alternate filling the cluster up (the feasible-only class and "nothing now" show up)
      // with draining it.
      const bool filling = (step / 300) % 2 == 0;
      if (want.chosen() && on == &view_ && Chance(0.9)) Apply(want.slot, shape);
      if (filling) {  // other schedulers' work lands too
        for (int i = 0; i < 3; ++i) Apply(RandomSlot(view_), Req({{"CPU", 1}, {"memory", 2}}));
      }
      for (int i = filling ? 0 : 3; i >= 0; --i) Release(filling ? 0.15 : 0.8);
      Mutate();
    }
  }

  const HybridIndex::Stats& stats() const { return indexed_.index_stats(); }
  int decisions() const { return decisions_; }
  // How many decisions fell in each class of outcome, to check the stream covers them all.
  const std::map<std::string, int>& outcomes() const { return outcomes_; }

 private:
  bool Chance(double p) { return world_.UniformDouble() < p; }
  int Uniform(int n) { return static_cast<int>(world_.UniformIndex(static_cast<uint64_t>(n))); }

  int RandomSlot(const ClusterView& v) {
    const auto& order = v.ordered_slots();
    return order.empty() ? -1 : order[static_cast<size_t>(Uniform(static_cast<int>(order.size())))];
  }

  ResourceRequest PickShape() {
    if (Chance(0.03)) {  // a one-off shape
      return Req({{"CPU", 0.1 * (1 + Uniform(40))}});
    }
    return shapes_[static_cast<size_t>(Uniform(static_cast<int>(shapes_.size())))];
  }

  NodeResources RandomResources() {
    std::map<std::string, double> total;
    switch (Uniform(4)) {
      case 0: total = {{"CPU", 4}, {"memory", 16}}; break;
      case 1: total = {{"CPU", 16}, {"memory", 64}, {"object_store_memory", 8}}; break;
      case 2: total = {{"CPU", 8}, {"GPU", 1 + Uniform(4)}, {"memory", 32}}; break;
      default: total = {{"CPU", 32}, {"GPU", 8}, {"memory", 128}, {"accel", 2}}; break;
    }
    return *NodeResources::Create(Res(total));
  }

  void AddRandomNode() {
    Node n;
    // Ids unrelated to insertion order, so slot order != id order.
    n.id = "n" + std::to_string(world_.UniformIndex(1000000));
    const NodeId id = n.id;
    n.resources = RandomResources();
    n.state = Chance(0.05) ? NodeState::kDraining
                           : (Chance(0.04) ? NodeState::kDead : NodeState::kAlive);
    if (!view_.AddNode(std::move(n)).ok()) return;  // id taken: skip
    // Random utilisation, from idle to full, kept forever.
    const int slot = view_.FindSlot(id);
    const ResourceSet& total = view_.at(slot).resources.total();
    ResourceSet load;
    load.Set(Predefined::kCPU, Quantity::FromDouble(total.Get(Predefined::kCPU).ToDouble() *
                                                    Uniform(11) / 10.0));
    load.Set(Predefined::kMemory, Quantity::FromDouble(
                                      total.Get(Predefined::kMemory).ToDouble() * Uniform(8) / 10.0));
    (void)view_.Allocate(slot, ResourceRequest::FromSet(load));
  }

  void Apply(int slot, const ResourceRequest& r) {
    if (slot < 0) return;
    if (auto a = view_.Allocate(slot, r)) live_.push_back({view_.at(slot).id, std::move(*a)});
  }

  // With probability p, releases a random earlier allocation.
  void Release(double p) {
    if (live_.empty() || !Chance(p)) return;
    const auto i = static_cast<size_t>(Uniform(static_cast<int>(live_.size())));
    const int slot = view_.FindSlot(live_[i].first);
    if (slot >= 0) view_.Release(slot, live_[i].second);
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  void Mutate() {
    const int slot = RandomSlot(view_);
    if (slot < 0) {
      AddRandomNode();
      return;
    }
    const double roll = world_.UniformDouble();
    if (roll < 0.02) {
      static constexpr NodeState kStates[] = {NodeState::kAlive, NodeState::kAlive,
                                              NodeState::kDraining, NodeState::kDead};
      view_.SetState(slot, kStates[Uniform(4)]);
    } else if (roll < 0.022) {
      std::erase_if(live_, [&](const auto& e) { return e.first == view_.at(slot).id; });
      ASSERT_TRUE(view_.RemoveNode(view_.at(slot).id).ok());
    } else if (roll < 0.024) {
      AddRandomNode();
    } else if (roll < 0.035) {  // a resource report
      ResourceSet avail = view_.at(slot).resources.total();
      avail.Set(Predefined::kCPU, Quantity::FromDouble(
                                      avail.Get(Predefined::kCPU).ToDouble() * Uniform(5) / 4.0));
      view_.SetAvailable(slot, avail);
    } else if (roll < 0.04) {
      view_.SubtractEstimate(slot, shapes_[static_cast<size_t>(Uniform(5))]);
    } else if (roll < 0.042) {  // restarted with new totals: earlier allocations are void
      std::erase_if(live_, [&](const auto& e) { return e.first == view_.at(slot).id; });
      view_.SetResources(slot, RandomResources());
    } else if (roll < 0.045) {
      view_.SetLabels(slot, {{"zone", std::to_string(Uniform(3))}});
    }
  }

  Config config_;
  Rng world_;
  Rng rng_ref_;
  Rng rng_idx_;
  ClusterView view_;
  std::vector<ResourceRequest> shapes_;
  std::vector<std::pair<NodeId, Allocation>> live_;
  HybridReferencePolicy reference_;
  HybridPolicy indexed_;
  int decisions_ = 0;
  std::map<std::string, int> outcomes_;
};

struct FuzzCase {
  const char* name;
  Config config;
};
void PrintTo(const FuzzCase& c, std::ostream* os) { *os << c.name; }

class HybridEquivalenceTest : public ::testing::TestWithParam<FuzzCase> {};

TEST_P(HybridEquivalenceTest, SameDecisionsAsTheReferenceWhileTheClusterChanges) {
  const Config& config = GetParam().config;
  std::map<std::string, int> outcomes;
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Fuzzer f(config, seed);
    f.Run();
    if (::testing::Test::HasFatalFailure()) return;
    for (const auto& [what, n] : f.outcomes()) outcomes[what] += n;
    // The index, not the fallback scan, answered most decisions.
    if (config.index_options.max_shapes >= 8) {
      EXPECT_GT(f.stats().indexed_lookups, 0.8 * f.decisions());
    }
  }
  // The streams reach every kind of outcome (small clusters fill up; large ones do not).
  if (config.nodes <= 200) {
    for (const char* what : {"preferred", "unavailable", "infeasible"}) {
      EXPECT_GT(outcomes[what], 0) << what;
    }
    EXPECT_GT(outcomes["top k"] + outcomes["top 1"], 0);
    EXPECT_GT(outcomes["top k/feasible"] + outcomes["top 1/feasible"], 0);
  }
}

Config Make(double threshold, double fraction, int absolute, bool avoid_gpu, int max_shapes = 64,
            int nodes = 120, int steps = 3000) {
  Config c;
  c.options.spread_threshold = threshold;
  c.options.top_k_fraction = fraction;
  c.options.top_k_absolute = absolute;
  c.options.avoid_gpu_nodes = avoid_gpu;
  c.index_options.max_shapes = max_shapes;
  c.nodes = nodes;
  c.steps = steps;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Options, HybridEquivalenceTest,
    ::testing::Values(FuzzCase{"Defaults", Make(0.5, 0.2, 1, true)},
                      FuzzCase{"TopOne", Make(0.5, 0.0, 1, true)},
                      FuzzCase{"TopThreeAbsolute", Make(0.5, 0.0, 3, true)},
                      FuzzCase{"EverythingScores", Make(0.0, 0.2, 1, true)},
                      FuzzCase{"NothingScores", Make(1.0, 0.05, 1, true)},
                      FuzzCase{"LowThresholdWholeClass", Make(0.3, 1.0, 1, false)},
                      FuzzCase{"NoGpuAvoidance", Make(0.5, 0.2, 1, false)},
                      FuzzCase{"TwoShapesEvicting", Make(0.5, 0.2, 1, true, 2)},
                      FuzzCase{"IndexDisabled", Make(0.5, 0.2, 1, true, 0, 40, 500)},
                      FuzzCase{"TinyCluster", Make(0.5, 0.2, 2, true, 64, 3)},
                      FuzzCase{"LargerCluster", Make(0.5, 0.2, 1, true, 64, 1500, 1500)}),
    [](const ::testing::TestParamInfo<FuzzCase>& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// Targeted cases (each also checked against the reference).

HybridOptions K1() {
  HybridOptions o;
  o.top_k_fraction = 0.0;
  return o;
}

struct Both {
  explicit Both(HybridOptions o = K1()) : reference(o), indexed(o) {}
  // Decides twice with the indexed policy (the first look-up of a shape is a scan, the second
  // uses the index) and once with the reference; all three must agree. Returns the node id.
  std::string Pick(const ClusterView& v, const ResourceRequest& r, int preferred = -1,
                   int excluded = -1, bool require_available = false, uint64_t seed = 1) {
    PolicyRequest pr;
    pr.resources = &r;
    pr.preferred_slot = preferred;
    pr.excluded_slot = excluded;
    pr.require_available = require_available;
    Rng a(seed);
    Rng b(seed);
    Rng c(seed);
    PolicyResult want = reference.Schedule(v, pr, a);
    PolicyResult first = indexed.Schedule(v, pr, b);
    PolicyResult second = indexed.Schedule(v, pr, c);
    EXPECT_EQ(Describe(first), Describe(want));
    EXPECT_EQ(Describe(second), Describe(want));
    if (!want.chosen()) return "<" + std::string(want.kind == PolicyResult::Kind::kInfeasible
                                                     ? "infeasible"
                                                     : "unavailable") + ">";
    return v.at(want.slot).id;
  }
  HybridReferencePolicy reference;
  HybridPolicy indexed;
};

TEST(HybridIndexTest, EqualScoresGoToTheLowestIdWhateverTheSlotOrder) {
  // Added in reverse id order, so slot order is the opposite of id order.
  auto v = ClusterBuilder().Node("c", {{"CPU", 10}}).Used({{"CPU", 7}})
               .Node("b", {{"CPU", 10}}).Used({{"CPU", 7}})
               .Node("a", {{"CPU", 10}}).Used({{"CPU", 8}}).Build();
  Both both;
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 1}})), "b");
}

TEST(HybridIndexTest, ExcludedBestNodeYieldsTheSecondBest) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 10}}).Used({{"CPU", 6}})
               .Node("b", {{"CPU", 10}}).Used({{"CPU", 9}})
               .Node("c", {{"CPU", 10}}).Used({{"CPU", 8}}).Build();
  Both both;
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 1}}), /*preferred=*/-1, Slot(v, "a")), "c");
  // The preferred node is compared with the best *remaining* node.
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 1}}), Slot(v, "c"), Slot(v, "a")), "c");
}

TEST(HybridIndexTest, AnExcludedPreferredNodeIsNeverChosen) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 10}}).Node("b", {{"CPU", 10}}).Build();
  Both both;
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 1}}), Slot(v, "a"), Slot(v, "a")), "b");
  // The only node is excluded: nothing now, though it is feasible.
  auto one = ClusterBuilder().Node("a", {{"CPU", 10}}).Build();
  EXPECT_EQ(both.Pick(one, Req({{"CPU", 1}}), Slot(one, "a"), Slot(one, "a")), "<unavailable>");
}

TEST(HybridIndexTest, DrawsSkipTheExcludedNodeWhereverItRanks) {
  // 10 nodes with distinct scores; top-k covers all of them. Every excluded position and many
  // draws: the indexed policy must map the draw past the excluded node as the scan does.
  ClusterBuilder b;
  for (int i = 0; i < 10; ++i) {
    b.Node("n" + std::to_string(i), {{"CPU", 100}}).Used({{"CPU", 50.0 + 3 * ((i * 7) % 10)}});
  }
  auto v = b.Build();
  HybridOptions o;
  o.top_k_fraction = 1.0;
  Both both(o);
  for (int ex = 0; ex < 10; ++ex) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      both.Pick(v, Req({{"CPU", 1}}), -1, Slot(v, "n" + std::to_string(ex)), false, seed);
    }
  }
}

TEST(HybridIndexTest, GpuAvoidanceFallsBackToGpuNodesWhenCpuNodesAreFull) {
  auto v = ClusterBuilder().Node("cpu", {{"CPU", 2}}).Used({{"CPU", 2}})
               .Node("gpu", {{"CPU", 8}, {"GPU", 1}}).Build();
  Both both;
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 1}})), "gpu");
}

TEST(HybridIndexTest, InfeasibleAndUnavailableAreToldApart) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 4}}).Used({{"CPU", 4}})
               .Node("d", {{"CPU", 64}}, NodeState::kDraining).Build();
  Both both;
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 2}}), -1, -1, /*require_available=*/true), "<unavailable>");
  // Only the draining node could hold it: a draining node does not count.
  EXPECT_EQ(both.Pick(v, Req({{"CPU", 32}})), "<infeasible>");
  EXPECT_EQ(both.Pick(v, Req({{"GPU", 1}})), "<infeasible>");
}

TEST(HybridIndexTest, FollowsAllocationsReleasesAndStateChanges) {
  auto v = ClusterBuilder().Node("a", {{"CPU", 10}}).Node("b", {{"CPU", 10}}).Build();
  Both both;
  const auto r = Req({{"CPU", 6}});
  EXPECT_EQ(both.Pick(v, r), "a");
  auto alloc = v.Allocate(Slot(v, "a"), r);
  ASSERT_TRUE(alloc.has_value());
  EXPECT_EQ(both.Pick(v, r), "b");
  v.SetState(Slot(v, "b"), NodeState::kDraining);
  EXPECT_EQ(both.Pick(v, r), "a");  // only feasible there now: it waits on a
  v.Release(Slot(v, "a"), *alloc);
  v.SetState(Slot(v, "b"), NodeState::kAlive);
  EXPECT_EQ(both.Pick(v, r, Slot(v, "b")), "b");
}

TEST(HybridIndexTest, FollowsNodesAddedAndRemovedIncludingReusedSlots) {
  ClusterView v = ClusterBuilder().Node("m", {{"CPU", 10}}).Used({{"CPU", 8}})
                      .Node("z", {{"CPU", 10}}).Used({{"CPU", 9}}).Build();
  Both both;
  const auto r = Req({{"CPU", 1}});
  EXPECT_EQ(both.Pick(v, r), "m");
  ASSERT_TRUE(v.RemoveNode("m").ok());
  EXPECT_EQ(both.Pick(v, r), "z");
  // The new node takes m's slot but sorts first by id.
  Node a;
  a.id = "a";
  a.resources = *NodeResources::Create(Res({{"CPU", 10}}));
  ASSERT_TRUE(v.AddNode(std::move(a)).ok());
  EXPECT_EQ(both.Pick(v, r), "a");
  EXPECT_EQ(both.Pick(v, r, Slot(v, "z")), "a");
}

TEST(HybridIndexTest, WorksWithAnyViewAndSurvivesViewsDestroyedWhileBound) {
  HybridPolicy policy(K1());
  HybridReferencePolicy reference(K1());
  const auto r = Req({{"CPU", 1}});
  auto decide = [&](const ClusterView& v) {
    PolicyRequest pr;
    pr.resources = &r;
    Rng a(5);
    Rng b(5);
    PolicyResult want = reference.Schedule(v, pr, a);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(Describe(policy.Schedule(v, pr, b)), Describe(want));
    return v.at(want.slot).id;
  };
  ClusterView one = ClusterBuilder().Node("x", {{"CPU", 10}}).Used({{"CPU", 9}})
                        .Node("y", {{"CPU", 10}}).Used({{"CPU", 6}}).Build();
  ClusterView two = ClusterBuilder().Node("x", {{"CPU", 10}}).Used({{"CPU", 6}})
                        .Node("y", {{"CPU", 10}}).Used({{"CPU", 9}}).Build();
  EXPECT_EQ(decide(one), "y");
  EXPECT_EQ(decide(two), "x");
  EXPECT_EQ(decide(one), "y");
  // Views that die while the policy is bound to them; the next one may reuse the address.
  std::optional<ClusterView> temp;
  for (int i = 0; i < 3; ++i) {
    temp.emplace(i % 2 == 0 ? one : two);
    EXPECT_EQ(decide(*temp), i % 2 == 0 ? "y" : "x");
    temp.reset();
  }
  EXPECT_EQ(policy.index_stats().indexed_lookups + policy.index_stats().scan_lookups, 18u);
}

TEST(HybridIndexTest, APolicyDestroyedFirstLeavesTheViewUsable) {
  ClusterView v = ClusterBuilder().Node("a", {{"CPU", 10}}).Build();
  {
    HybridPolicy policy;
    const auto r = Req({{"CPU", 1}});
    PolicyRequest pr;
    pr.resources = &r;
    Rng rng(1);
    EXPECT_TRUE(policy.Schedule(v, pr, rng).chosen());
  }
  // The policy unregistered itself: changing the view notifies nobody dead.
  v.SetState(Slot(v, "a"), NodeState::kDraining);
  EXPECT_EQ(v.at(Slot(v, "a")).state, NodeState::kDraining);
}

TEST(HybridIndexTest, AShapeIsIndexedOnItsSecondLookUpAndEvictedLeastRecentlyUsed) {
  ClusterView v = ClusterBuilder().Node("a", {{"CPU", 10}}).Build();
  HybridPolicy policy(K1(), HybridIndexOptions{.max_shapes = 1});
  const auto one = Req({{"CPU", 1}});
  const auto two = Req({{"CPU", 2}});
  auto run = [&](const ResourceRequest& r) {
    PolicyRequest pr;
    pr.resources = &r;
    Rng rng(1);
    EXPECT_TRUE(policy.Schedule(v, pr, rng).chosen());
  };
  run(one);
  EXPECT_EQ(policy.index_stats().scan_lookups, 1u);
  run(one);
  run(one);
  EXPECT_EQ(policy.index_stats().indexed_lookups, 2u);
  EXPECT_EQ(policy.index_stats().shapes_admitted, 1u);
  run(two);
  run(two);  // admitted: evicts `one`
  EXPECT_EQ(policy.index_stats().shapes_evicted, 1u);
  run(one);  // evicted: scanned again first
  EXPECT_EQ(policy.index_stats().scan_lookups, 3u);
  run(one);
  EXPECT_EQ(policy.index_stats().shapes_admitted, 3u);
}

}  // namespace
}  // namespace orrery
