// ObjectRefs as arguments of the C++ client API (live/api/orrery_api.h), end to end with Ray's
// semantics: a call runs once its ref arguments are ready and receives their values; a failed
// argument fails the call without running it; an actor waits (DEPENDENCIES_UNREADY) for its
// creation arguments; calls on one actor keep submission order. Real daemons on loopback
// (LiveCluster); every Get is bounded.
//
// Compile-time check (kept as a comment, it must not build):
//   api::Task(api_test::Add).Remote(api::ObjectRef<std::string>(), 1);
//   -> "an ObjectRef<T> argument needs a parameter of type T"
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "tests/live/api_test_lib.h"
#include "tests/live/api_session.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;
using api_test::Accumulator;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The state of `actor_id` in `orrery list actors --format json` ("" if absent).
std::string DirectoryState(LiveCluster& c, const std::string& actor_id) {
  auto r = c.Orrery({"list", "actors", "--format", "json", "--temp-dir", c.root()});
  if (r.exit_code != 0) return "";
  json all = json::parse(r.out, nullptr, false);
  if (!all.is_array()) return "";
  for (const auto& a : all) {
    if (a.value("actor_id", "") == actor_id) return a.value("state", "");
  }
  return "";
}

// a -> b -> c: each link waits for the previous one and receives its value; a ref already
// ready is inlined at once; the same ref may be passed twice; a temporary ref dropped right
// after the call still feeds it.
TEST(LiveObjectRefTest, ChainOfThreeTasks) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto a = api::Task(api_test::SlowValue).Remote(5, 400);
  auto b = api::Task(api_test::Add).Remote(a, 10);  // 15
  auto c = api::Task(api_test::Add).Remote(b, a);   // 20
  auto vc = api::Get(c, seconds(20));
  ASSERT_TRUE(vc.ok()) << vc.status().ToString();
  EXPECT_EQ(*vc, 20);
  EXPECT_EQ(*api::Get(b, seconds(20)), 15);

  auto twice = api::Get(api::Task(api_test::Add).Remote(a, a), seconds(20));  // a is ready now
  ASSERT_TRUE(twice.ok()) << twice.status().ToString();
  EXPECT_EQ(*twice, 10);

  auto from_temp =
      api::Task(api_test::Add).Remote(api::Task(api_test::SlowValue).Remote(7, 300), 1);
  auto vt = api::Get(from_temp, seconds(20));
  ASSERT_TRUE(vt.ok()) << vt.status().ToString();
  EXPECT_EQ(*vt, 8);

  auto scaled =
      api::Get(api::Task(api_test::Scale)
                   .Remote(api::Task(api_test::Scale).Remote(std::vector<double>{1, 2}, 2.0), 3.0),
               seconds(20));
  ASSERT_TRUE(scaled.ok()) << scaled.status().ToString();
  EXPECT_EQ(*scaled, (std::vector<double>{6, 12}));
}

// Ten refs into one call: it runs once, after all ten, with every value in its place.
TEST(LiveObjectRefTest, FanInOfTenRefs) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  std::vector<api::ObjectRef<int>> r;
  for (int i = 0; i < 10; ++i) r.push_back(api::Task(api_test::SlowValue).Remote(1 << i, 50 * i));
  auto sum =
      api::Task(api_test::Sum10).Remote(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]);
  auto v = api::Get(sum, seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 1023);
  // Mixed: values and refs interleaved keep their positions.
  auto mixed = api::Get(api::Task(api_test::Sum10).Remote(r[9], 0, r[0], 0, 0, r[1], 0, 0, 0, 1000),
                        seconds(30));
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  EXPECT_EQ(*mixed, 512 + 1 + 2 + 1000);
}

// An actor method takes a ref from a task; a task takes a ref from an actor method.
TEST(LiveObjectRefTest, ActorMethodWithARefFromATask) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "3"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto acc = api::Actor(Accumulator::Create).Remote(100);
  auto five = api::Task(api_test::SlowValue).Remote(5, 300);
  auto sum = api::Get(acc.Task(&Accumulator::Add).Remote(five), seconds(20));
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(*sum, 105);
  auto total = acc.Task(&Accumulator::Add).Remote(1);  // 106
  auto doubled = api::Get(api::Task(api_test::Add).Remote(total, total), seconds(20));
  ASSERT_TRUE(doubled.ok()) << doubled.status().ToString();
  EXPECT_EQ(*doubled, 212);
}

// An actor created with a ref that is not ready is DEPENDENCIES_UNREADY in the directory, then
// alive with the value; a method called meanwhile waits for it.
TEST(LiveObjectRefTest, ActorCreationWaitsForItsArguments) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto start = api::Task(api_test::SlowValue).Remote(40, 2500);
  auto acc = api::Actor(Accumulator::Create).Remote(start);
  auto added = acc.Task(&Accumulator::Add).Remote(2);
  EXPECT_TRUE(
      Eventually([&] { return DirectoryState(cluster, acc.actor_id()) == "dependencies_unready"; },
                 milliseconds(2000)))
      << "state: " << DirectoryState(cluster, acc.actor_id());
  EXPECT_EQ(api::Get(added, milliseconds(200)).status().code(), StatusCode::kDeadlineExceeded);
  auto v = api::Get(added, seconds(20));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 42);
  EXPECT_TRUE(Eventually([&] { return DirectoryState(cluster, acc.actor_id()) == "alive"; }))
      << "state: " << DirectoryState(cluster, acc.actor_id());
}

// A failed argument fails the dependent call without running it, naming the dependency; a chain
// names every link; an actor whose creation argument failed is dead; an empty ref is refused.
TEST(LiveObjectRefTest, FailedDependencyPropagates) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  const std::string marker = cluster.root() + "_dependent_ran";
  auto bad = api::Task(api_test::Fail).Remote("boom: no input");
  auto dependent = api::Task(api_test::WriteFile).Remote(marker, bad);
  auto chained = api::Task(api_test::Env).Remote(dependent);
  auto r = api::Get(chained, seconds(20));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnknown);
  const std::string& m = r.status().message();
  EXPECT_EQ(m.rfind("dependency object ", 0), 0u) << m;
  EXPECT_NE(m.find("(WriteFile) failed: dependency object "), std::string::npos) << m;
  EXPECT_NE(m.find("(Fail) failed: Fail failed: boom: no input"), std::string::npos) << m;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the dependent call ran";
  // Submitted after the failure: fails at once the same way.
  auto late = api::Get(api::Task(api_test::WriteFile).Remote(marker, bad), seconds(5));
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.status().message().find("boom: no input"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the dependent call ran";

  auto negative = api::Task(api_test::SlowValue).Remote(-1, 300);
  auto acc = api::Actor(Accumulator::Create).Remote(negative);
  auto call = api::Get(acc.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_FALSE(call.ok());
  EXPECT_NE(call.status().message().find("could not be created: dependency object "),
            std::string::npos)
      << call.status().ToString();
  EXPECT_NE(call.status().message().find("negative value -1"), std::string::npos)
      << call.status().ToString();
  EXPECT_TRUE(Eventually([&] { return DirectoryState(cluster, acc.actor_id()) == "dead"; }))
      << "state: " << DirectoryState(cluster, acc.actor_id());

  auto empty = api::Get(api::Task(api_test::Add).Remote(api::ObjectRef<int>(), 1), seconds(5));
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("argument 0: empty ObjectRef"), std::string::npos)
      << empty.status().ToString();
}

// Calls on one actor run in submission order even when an earlier call waits for an argument
// and a later one does not (the later one is held behind it, as Ray orders actor tasks).
TEST(LiveObjectRefTest, ActorCallsKeepSubmissionOrder) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "3"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto acc = api::Actor(Accumulator::Create).Remote(0);
  ASSERT_TRUE(api::Get(acc.Task(&Accumulator::Pid).Remote(), seconds(20)).ok());
  std::vector<api::ObjectRef<int>> sums;
  sums.push_back(acc.Task(&Accumulator::Add).Remote(api::Task(api_test::SlowValue).Remote(1, 800)));
  sums.push_back(acc.Task(&Accumulator::Add).Remote(2));
  sums.push_back(acc.Task(&Accumulator::Add).Remote(api::Task(api_test::SlowValue).Remote(3, 100)));
  sums.push_back(acc.Task(&Accumulator::Add).Remote(4));
  const int expected[] = {1, 3, 6, 10};
  for (int i = 0; i < 4; ++i) {
    auto s = api::Get(sums[i], seconds(20));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(*s, expected[i]) << "call " << i;
  }
  auto history = api::Get(acc.Task(&Accumulator::History).Remote(), seconds(20));
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  EXPECT_EQ(*history, (std::vector<int>{1, 2, 3, 4}));
}

// Shutdown with a call still waiting for its argument returns promptly; Get afterwards fails
// cleanly as before (not initialised), and a new runtime works. A ref kept from the earlier Init
// names no object of the new runtime (ids restart), neither for Get nor as an argument.
TEST(LiveObjectRefTest, ShutdownWithHeldCalls) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  api::ObjectRef<int> held;
  {
    ApiSession session(cluster);
    ASSERT_TRUE(session.status().ok()) << session.status().ToString();
    held = api::Task(api_test::Add).Remote(api::Task(api_test::SlowValue).Remote(1, 5000), 1);
    auto start = api::Task(api_test::SlowValue).Remote(1, 5000);
    auto waiting_actor = api::Actor(Accumulator::Create).Remote(start);
    EXPECT_EQ(api::Get(held, milliseconds(100)).status().code(), StatusCode::kDeadlineExceeded);
    const auto t0 = Clock::now();
    api::Shutdown();
    EXPECT_LT(Clock::now() - t0, seconds(4));
  }
  EXPECT_EQ(api::Get(held, seconds(1)).status().code(), StatusCode::kFailedPrecondition);
  ApiSession again(cluster);
  ASSERT_TRUE(again.status().ok()) << again.status().ToString();
  auto v = api::Get(api::Task(api_test::Add).Remote(api::Task(api_test::Add).Remote(1, 2), 3),
                    seconds(20));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 6);
  // `held` had id 2 in the first runtime; the new runtime's object 2 is the sum above.
  EXPECT_EQ(api::Get(held, seconds(1)).status().code(), StatusCode::kFailedPrecondition);
  auto stale = api::Get(api::Task(api_test::Add).Remote(held, 1), seconds(5));
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("earlier Init"), std::string::npos)
      << stale.status().ToString();
}

}  // namespace
}  // namespace orrery::live
