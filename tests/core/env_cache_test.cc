// The runtime-env cache (DESIGN section 4): reference counting, per-kind byte limits, the three
// eviction policies' orders, deduplicated installs, retries, timeouts and the failure message.
#include "core/envcache/env_cache.h"

#include <gtest/gtest.h>

#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace orrery::envcache {
namespace {

using Strings = std::vector<std::string>;

EnvCache MakeCache(EnvCacheOptions o) {
  auto c = EnvCache::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

CacheDecisions Must(StatusOr<CacheDecisions> d) {
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? *d : CacheDecisions{};
}

Strings Evicted(const CacheDecisions& ds) {
  Strings out;
  for (const auto& d : ds) {
    if (const auto* e = std::get_if<Evict>(&d)) out.push_back(e->uri);
  }
  return out;
}

// The single decision of `ds`, if it is a T (a copy: `ds` is often a temporary).
template <typename T>
std::optional<T> Only(const CacheDecisions& ds) {
  EXPECT_EQ(ds.size(), 1u);
  if (ds.size() != 1 || !std::holds_alternative<T>(ds[0])) return std::nullopt;
  return std::get<T>(ds[0]);
}

// The explainer's op vocabulary: add = install and use, used = one more use, unused = one less.
struct Op {
  enum Kind { kAdd, kUsed, kUnused } kind;
  std::string uri;
  uint64_t bytes = 0;
  std::string cache_kind = "pip";
};
Op Add(std::string uri, uint64_t bytes, std::string kind = "pip") {
  return {Op::kAdd, std::move(uri), bytes, std::move(kind)};
}
Op Used(std::string uri) { return {Op::kUsed, std::move(uri)}; }
Op Unused(std::string uri) { return {Op::kUnused, std::move(uri)}; }

// Runs `ops`; returns every URI evicted, in order.
Strings RunOps(EnvCache& cache, const std::vector<Op>& ops) {
  Strings evicted;
  int waiter = 0;
  for (const auto& op : ops) {
    const std::string w = "t" + std::to_string(waiter++);
    CacheDecisions ds;
    switch (op.kind) {
      case Op::kAdd: {
        const CacheDecisions start = Must(cache.Acquire(op.uri, op.cache_kind, w, 0));
        const auto s = Only<StartInstall>(start);
        if (!s) return evicted;
        ds = Must(cache.ReportInstalled(op.uri, s->attempt, op.bytes, 0));
        break;
      }
      case Op::kUsed:
        ds = Must(cache.Acquire(op.uri, *cache.KindOf(op.uri), w, 0));
        break;
      case Op::kUnused:
        ds = Must(cache.Release(op.uri));
        break;
    }
    for (auto& u : Evicted(ds)) evicted.push_back(u);
  }
  return evicted;
}

// ---------------------------------------------------------------------------------------------
// Eviction: what goes, in which order, and what never goes.

struct EvictCase {
  const char* name;
  const char* policy;
  uint64_t limit;
  std::vector<Op> ops;
  Strings evicted;
  uint64_t total;
};
void PrintTo(const EvictCase& c, std::ostream* os) { *os << c.name; }

class EvictionTest : public ::testing::TestWithParam<EvictCase> {};

TEST_P(EvictionTest, EvictsInThePolicysOrder) {
  const EvictCase& c = GetParam();
  EnvCache cache = MakeCache({.default_limit_bytes = c.limit, .policy = c.policy});
  EXPECT_EQ(RunOps(cache, c.ops), c.evicted);
  EXPECT_EQ(cache.TotalBytes(), c.total);
  EXPECT_EQ(cache.counters().evictions, c.evicted.size());
}

// a (4 bytes), b (2), c (3) all unused, released in that order; then a is used once more (2 uses,
// released last); d (4, in use) brings the total to 13 > 10:
//   arbitrary  oldest inserted unused: a -> 9.
//   lru        least recently used: b, then c (a was used last) -> 8.
//   gdsf       H = uses/bytes: a 2/4 = 0.5, b 1/2 = 0.5, c 1/3 = 0.33: c -> 10.
const std::vector<Op> kThreeUnused = {Add("a", 4), Add("b", 2), Add("c", 3),
                                      Unused("a"), Unused("b"), Unused("c"),
                                      Used("a"),   Unused("a"), Add("d", 4)};
// big (6) and small (2) used once each; small released first; x (4, in use) -> 12 > 10.
const std::vector<Op> kBigAndSmall = {Add("big", 6), Add("small", 2), Unused("small"),
                                      Unused("big"), Add("x", 4)};
// a used three times, b once, same size; c (4, in use) -> 12 > 10.
const std::vector<Op> kFrequent = {Add("a", 4), Unused("a"), Add("b", 4), Unused("b"), Used("a"),
                                   Unused("a"), Used("a"),   Unused("a"), Add("c", 4)};
const std::vector<Op> kAllInUse = {Add("a", 6), Add("b", 6)};

INSTANTIATE_TEST_SUITE_P(
    EnvCache, EvictionTest,
    ::testing::Values(
        EvictCase{"ArbitraryEvictsTheOldestInserted", "arbitrary", 10, kThreeUnused, {"a"}, 9},
        EvictCase{"LruEvictsTheLeastRecentlyUsed", "lru", 10, kThreeUnused, {"b", "c"}, 8},
        EvictCase{"GdsfEvictsTheLowestUsesPerByte", "gdsf", 10, kThreeUnused, {"c"}, 10},
        EvictCase{"ArbitraryIgnoresSize", "arbitrary", 10, kBigAndSmall, {"big"}, 6},
        EvictCase{"LruIgnoresSize", "lru", 10, kBigAndSmall, {"small"}, 10},
        EvictCase{"GdsfEvictsTheBiggerOfTwoEquallyUsed", "gdsf", 10, kBigAndSmall, {"big"}, 6},
        EvictCase{"ArbitraryIgnoresFrequency", "arbitrary", 10, kFrequent, {"a"}, 8},
        EvictCase{"GdsfKeepsTheMoreFrequentlyUsedOfTwoEqualSizes", "gdsf", 10, kFrequent, {"b"}, 8},
        EvictCase{"ArbitraryNeverEvictsInUse", "arbitrary", 10, kAllInUse, {}, 12},
        EvictCase{"LruNeverEvictsInUse", "lru", 10, kAllInUse, {}, 12},
        EvictCase{"GdsfNeverEvictsInUse", "gdsf", 10, kAllInUse, {}, 12},
        // DESIGN section 8's example: a is unused when b pushes the total to 12.
        EvictCase{"DesignExample",
                  "arbitrary",
                  10,
                  {Add("a", 4), Unused("a"), Used("a"), Unused("a"), Add("b", 8)},
                  {"a"},
                  8}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(EnvCacheTest, InUseEntriesStayAboveTheLimitUntilReleased) {
  EnvCache cache = MakeCache({.default_limit_bytes = 10});
  EXPECT_EQ(RunOps(cache, {Add("a", 6), Add("b", 6), Used("a")}), Strings{});
  EXPECT_EQ(cache.TotalBytes(), 12u) << "nothing in use may go, so the total stays above";
  EXPECT_EQ(RunOps(cache, {Unused("a")}), Strings{}) << "a still has one reference";
  EXPECT_EQ(RunOps(cache, {Unused("a")}), Strings{"a"});
  EXPECT_EQ(cache.TotalBytes(), 6u);
  EXPECT_FALSE(cache.State("a").has_value());
  EXPECT_EQ(cache.RefCount("b"), 1);
}

TEST(EnvCacheTest, EachKindHasItsOwnLimitAndPolicyInstance) {
  EnvCache cache =
      MakeCache({.default_limit_bytes = 100, .limit_bytes = {{"pip", 10}}, .policy = "lru"});
  EXPECT_EQ(RunOps(cache, {Add("w1", 60, "working_dir"), Unused("w1"), Add("p1", 8, "pip"),
                           Unused("p1"), Add("p2", 8, "pip")}),
            Strings{"p1"});
  EXPECT_EQ(cache.TotalBytes("pip"), 8u);
  EXPECT_EQ(cache.TotalBytes("working_dir"), 60u) << "a pip overflow never evicts working_dir";
  EXPECT_EQ(cache.LimitBytes("pip"), 10u);
  EXPECT_EQ(cache.LimitBytes("conda"), 100u);
  EXPECT_EQ(cache.TotalBytes(), 68u);
}

TEST(EnvCacheTest, DefaultsAreRays) {
  const EnvCacheOptions o;
  EXPECT_EQ(o.default_limit_bytes, uint64_t{10} * 1024 * 1024 * 1024);
  EXPECT_EQ(o.setup_timeout_s, 600.0);
  EXPECT_EQ(o.max_attempts, 3);
  EXPECT_EQ(o.policy, "arbitrary");
}

// A policy written outside the cache: the largest unused entry goes first.
class LargestFirst final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "largest"; }
  void OnUse(const EntryStats& e) override { evictable_.erase({e.bytes, e.uri}); }
  void OnEvictable(const EntryStats& e) override { evictable_.insert({e.bytes, e.uri}); }
  void OnRemoved(const Uri& uri) override {
    std::erase_if(evictable_, [&](const auto& x) { return x.second == uri; });
  }
  std::optional<Uri> PopVictim() override {
    if (evictable_.empty()) return std::nullopt;
    auto last = std::prev(evictable_.end());
    Uri u = last->second;
    evictable_.erase(last);
    return u;
  }

 private:
  std::set<std::pair<uint64_t, Uri>> evictable_;
};

TEST(EnvCacheTest, PoliciesArePluggable) {
  auto c = EnvCache::Create({.default_limit_bytes = 10},
                            [] { return std::make_unique<LargestFirst>(); });
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(RunOps(*c, {Add("a", 2), Unused("a"), Add("b", 5), Unused("b"), Add("c", 4)}),
            Strings{"b"});
}

// ---------------------------------------------------------------------------------------------
// Installs: dedup, retries, timeouts, failures.

TEST(EnvCacheTest, ConcurrentRequestsShareOneInstall) {
  EnvCache cache = MakeCache({});
  const CacheDecisions first = Must(cache.Acquire("pip://abc", "pip", "task1", 5.0));
  const auto start = Only<StartInstall>(first);
  ASSERT_TRUE(start);
  EXPECT_EQ(*start, (StartInstall{"pip://abc", "pip", 1, 605.0}));
  EXPECT_EQ(Must(cache.Acquire("pip://abc", "pip", "task2", 6.0)), CacheDecisions{})
      << "the second request joins the install in flight";
  EXPECT_EQ(Must(cache.Acquire("pip://abc", "pip", "actor7", 7.0)), CacheDecisions{});
  EXPECT_EQ(cache.State("pip://abc"), EntryState::kInstalling);
  EXPECT_EQ(cache.Waiters("pip://abc"), (Strings{"task1", "task2", "actor7"}));

  const CacheDecisions done = Must(cache.ReportInstalled("pip://abc", 1, 300, 40.0));
  const auto ready = Only<EnvReady>(done);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->waiters, (Strings{"task1", "task2", "actor7"}));
  EXPECT_EQ(cache.RefCount("pip://abc"), 3);

  const auto hit = Only<EnvReady>(Must(cache.Acquire("pip://abc", "pip", "task9", 50.0)));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->waiters, Strings{"task9"});
  const CacheCounters& k = cache.counters();
  EXPECT_EQ(k.hits, 1u);
  EXPECT_EQ(k.misses, 3u);
  EXPECT_EQ(k.joins, 2u);
  EXPECT_EQ(k.install_attempts, 1u);
  EXPECT_EQ(k.bytes_installed, 300u);
}

TEST(EnvCacheTest, AFailedAttemptIsRetriedThenEveryWaiterGetsTheLogTail) {
  EnvCache cache = MakeCache({});
  Must(cache.Acquire("pip://x", "pip", "t1", 0.0));
  Must(cache.Acquire("pip://x", "pip", "t2", 1.0));

  const auto retry = Only<StartInstall>(
      Must(cache.ReportFailed("pip://x", 1, /*timed_out=*/false, "network unreachable", 30.0)));
  ASSERT_TRUE(retry);
  EXPECT_EQ(*retry, (StartInstall{"pip://x", "pip", 2, 630.0}));
  const auto last =
      Only<StartInstall>(Must(cache.ReportFailed("pip://x", 2, /*timed_out=*/true, "", 630.0)));
  ASSERT_TRUE(last);
  EXPECT_EQ(last->attempt, 3);

  const std::string log =
      "Collecting torch==9.9\nERROR: Could not find a version that satisfies the requirement "
      "torch==9.9";
  const auto failed =
      Only<EnvFailed>(Must(cache.ReportFailed("pip://x", 3, /*timed_out=*/false, log, 700.0)));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->waiters, (Strings{"t1", "t2"}));
  EXPECT_EQ(failed->message,
            "runtime env pip://x (pip) could not be set up: 3 of 3 attempts failed (1: failed, 2: "
            "timed out after 600 s, 3: failed). Setup log tail:\n" +
                log);
  EXPECT_EQ(cache.State("pip://x"), EntryState::kFailed);
  EXPECT_EQ(cache.TotalBytes(), 0u);
  EXPECT_EQ(cache.counters().install_failures, 1u);
  EXPECT_EQ(cache.counters().install_attempts, 3u);

  // A later request starts a fresh round of attempts.
  const auto again = Only<StartInstall>(Must(cache.Acquire("pip://x", "pip", "t3", 800.0)));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempt, 1);
  EXPECT_EQ(cache.Waiters("pip://x"), Strings{"t3"});
}

TEST(EnvCacheTest, TheLogTailIsCutToItsLastBytes) {
  EnvCache cache = MakeCache({.max_attempts = 1, .max_log_tail_bytes = 8});
  Must(cache.Acquire("u", "pip", "t", 0.0));
  const auto failed =
      Only<EnvFailed>(Must(cache.ReportFailed("u", 1, false, "0123456789abcdef", 1.0)));
  ASSERT_TRUE(failed);
  EXPECT_NE(failed->message.find("1 of 1 attempts failed"), std::string::npos) << failed->message;
  EXPECT_TRUE(failed->message.ends_with("Setup log tail:\n...89abcdef")) << failed->message;
}

TEST(EnvCacheTest, ExpireOverdueTimesOutAttemptsPastTheirDeadline) {
  EnvCache cache = MakeCache({.setup_timeout_s = 600.0, .max_attempts = 2});
  Must(cache.Acquire("b", "pip", "t1", 0.0));
  Must(cache.Acquire("a", "pip", "t2", 100.0));
  EXPECT_EQ(cache.ExpireOverdue(599.0), CacheDecisions{});
  // Only b (deadline 600) is due; a's deadline is 700.
  EXPECT_EQ(cache.ExpireOverdue(600.0), (CacheDecisions{StartInstall{"b", "pip", 2, 1200.0}}));
  const CacheDecisions both = cache.ExpireOverdue(1500.0);
  ASSERT_EQ(both.size(), 2u);
  // URI order: a's first attempt times out (retry), then b's last (failure).
  EXPECT_EQ(std::get<StartInstall>(both[0]), (StartInstall{"a", "pip", 2, 2100.0}));
  const auto& failed = std::get<EnvFailed>(both[1]);
  EXPECT_EQ(failed.waiters, Strings{"t1"});
  EXPECT_NE(failed.message.find("2 of 2 attempts failed (1: timed out after 600 s, 2: timed out "
                                "after 600 s)"),
            std::string::npos)
      << failed.message;
  EXPECT_NE(failed.message.find("Setup log tail:\n(empty)"), std::string::npos);
}

TEST(EnvCacheTest, AReportFromAnEarlierAttemptIsIgnored) {
  EnvCache cache = MakeCache({});
  Must(cache.Acquire("u", "pip", "t", 0.0));
  Must(cache.ReportFailed("u", 1, true, "", 600.0));  // attempt 2 starts
  EXPECT_EQ(Must(cache.ReportInstalled("u", 1, 99, 601.0)), CacheDecisions{});
  EXPECT_EQ(cache.State("u"), EntryState::kInstalling);
  const auto ready = Only<EnvReady>(Must(cache.ReportInstalled("u", 2, 50, 602.0)));
  ASSERT_TRUE(ready);
  EXPECT_EQ(cache.BytesOf("u"), 50u);
  EXPECT_EQ(Must(cache.ReportFailed("u", 1, false, "late", 603.0)), CacheDecisions{});
  EXPECT_EQ(cache.State("u"), EntryState::kReady);
}

TEST(EnvCacheTest, AbandonedWaitersGetNothingAndAnUnwantedEnvIsEvictable) {
  EnvCache cache = MakeCache({.default_limit_bytes = 10});
  Must(cache.Acquire("u", "pip", "t1", 0.0));
  Must(cache.Acquire("u", "pip", "t2", 0.0));
  EXPECT_TRUE(cache.Abandon("u", "t1").ok());
  EXPECT_EQ(cache.Abandon("u", "t1").code(), StatusCode::kNotFound);
  EXPECT_EQ(cache.Waiters("u"), Strings{"t2"});
  EXPECT_TRUE(cache.Abandon("u", "t2").ok());
  // Installed with nobody waiting and above the limit: evicted at once.
  EXPECT_EQ(Must(cache.ReportInstalled("u", 1, 11, 5.0)), (CacheDecisions{Evict{"u", "pip", 11}}));
  EXPECT_EQ(cache.TotalBytes(), 0u);
}

TEST(EnvCacheTest, MisuseIsAnErrorNotACrash) {
  EnvCache cache = MakeCache({});
  EXPECT_EQ(cache.Release("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cache.ReportInstalled("nope", 1, 1, 0).status().code(), StatusCode::kNotFound);
  Must(cache.Acquire("u", "pip", "t", 0));
  EXPECT_EQ(cache.Release("u").status().code(), StatusCode::kFailedPrecondition)
      << "installing: no reference to drop";
  EXPECT_EQ(cache.ReportInstalled("u", 2, 1, 0).status().code(), StatusCode::kInvalidArgument)
      << "attempt 2 was never started";
  EXPECT_EQ(cache.Acquire("u", "conda", "t", 0).status().code(), StatusCode::kInvalidArgument)
      << "a URI has one kind";
  EXPECT_EQ(cache.Acquire("", "pip", "t", 0).status().code(), StatusCode::kInvalidArgument);
  Must(cache.ReportInstalled("u", 1, 1, 0));
  EXPECT_EQ(cache.ReportInstalled("u", 1, 1, 0).status().code(), StatusCode::kFailedPrecondition)
      << "already ready";
  Must(cache.Release("u"));
  EXPECT_EQ(cache.Release("u").status().code(), StatusCode::kFailedPrecondition)
      << "no reference left";
}

TEST(EnvCacheTest, OptionsAreValidated) {
  EXPECT_EQ(EnvCache::Create({.policy = "fifo"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(EnvCache::Create({.policy = "fifo"}).status().message().find("arbitrary|lru|gdsf"),
            std::string::npos);
  EXPECT_FALSE(EnvCache::Create({.setup_timeout_s = 0}).ok());
  EXPECT_FALSE(EnvCache::Create({.max_attempts = 0}).ok());
  for (const char* name : {"arbitrary", "lru", "gdsf"}) {
    auto p = MakeEvictionPolicy(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
}

}  // namespace
}  // namespace orrery::envcache
