// Head fault tolerance end to end (DESIGN section 12, live/head/head_store.h): the head process
// is SIGKILLed in the middle of a workload and started again with the same store, session and
// port; nodes, actors (their state), placement groups and the workload survive. Real daemons on
// loopback (LiveCluster); every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <set>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "live/common/session.h"
#include "tests/live/api_session.h"
#include "tests/live/api_test_lib.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;
using api_test::Accumulator;
using std::chrono::seconds;

json ListJson(LiveCluster& c, const std::string& what) {
  auto r = c.Orrery({"list", what, "--format", "json", "--temp-dir", c.root()});
  if (r.exit_code != 0) return json::array();
  json j = json::parse(r.out, nullptr, false);
  return j.is_array() ? j : json::array();
}

// The running head's pid and command line (from the session): the one killed, and the one
// `orrery start --head --resume` started again.
struct HeadProcess {
  pid_t pid = -1;
  std::vector<std::string> argv;
  fs::path session;
};

HeadProcess FindHead(LiveCluster& c) {
  HeadProcess h;
  auto s = LatestSession(c.root());
  if (!s.ok()) return h;
  h.session = *s;
  auto pid = ReadFileTrimmed(*s / "pids" / "head.pid");
  if (!pid.ok()) return h;
  h.pid = static_cast<pid_t>(std::stol(*pid));
  const std::string cmdline = ReadAll("/proc/" + *pid + "/cmdline");
  std::string arg;
  for (char ch : cmdline) {
    if (ch == '\0') {
      h.argv.push_back(arg);
      arg.clear();
    } else {
      arg += ch;
    }
  }
  return h;
}

// 2,000 tasks, 10 counters and 2 placement groups; the head is SIGKILLed with a batch of tasks
// in flight after half of them and started again two batches later. Every task runs exactly once (each creates its own
// marker file exclusively) and returns its index; every counter counts on (its worker, pid and
// state are the same: not restarted); the groups keep their bundles on the same nodes;
// `orrery list` agrees; new work (a group, an actor) is placed after the restart.
TEST(HeadFaultToleranceTest, HeadKilledMidWorkloadRestartsAndTheClusterCarriesOn) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("n1", {"--num-cpus", "8"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("n2", {"--num-cpus", "8"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("head", 3));
  const fs::path marks = fs::path(c.root()) / "marks";
  fs::create_directories(marks);
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  // Placement groups: one spread over two nodes, one packed.
  auto pg_a = api::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}},
                                        api::PlacementStrategy::kStrictSpread, "ft_a");
  auto pg_b = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "ft_b");
  ASSERT_TRUE(pg_a.Wait(milliseconds(20000)).ok());
  ASSERT_TRUE(pg_b.Wait(milliseconds(20000)).ok());
  auto nodes_a = pg_a.BundleNodes();
  auto nodes_b = pg_b.BundleNodes();
  ASSERT_TRUE(nodes_a.ok() && nodes_b.ok());

  // Ten counters (Accumulator from 0), a tenth of a CPU each.
  constexpr int kActors = 10;
  std::vector<api::ActorHandle<Accumulator>> counters;
  std::vector<int> counts(kActors, 0);
  std::vector<int64_t> pids;
  for (int i = 0; i < kActors; ++i) {
    counters.push_back(api::Actor(Accumulator::Create).SetResources({{"CPU", 0.1}}).Remote(0));
  }
  for (int i = 0; i < kActors; ++i) {
    auto pid = api::Get(counters[i].Task(&Accumulator::Pid).Remote(), seconds(30));
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pids.push_back(*pid);
  }
  auto count_all = [&] {
    std::vector<api::ObjectRef<int>> refs;
    for (int i = 0; i < kActors; ++i) refs.push_back(counters[i].Task(&Accumulator::Add).Remote(1));
    for (int i = 0; i < kActors; ++i) {
      auto v = api::Get(refs[i], seconds(30));
      ASSERT_TRUE(v.ok()) << "counter " << i << ": " << v.status().ToString();
      ++counts[i];
      ASSERT_EQ(*v, counts[i]) << "counter " << i << " did not count on (restarted?)";
    }
  };
  count_all();
  ASSERT_TRUE(Eventually(
      [&] {
        int alive = 0;
        for (const auto& a : ListJson(c, "actors")) alive += a.value("state", "") == "alive";
        return alive == kActors;
      },
      milliseconds(10000)));
  const HeadProcess head = FindHead(c);
  ASSERT_GT(head.pid, 0);
  ASSERT_FALSE(head.argv.empty());
  ASSERT_NE(std::find(head.argv.begin(), head.argv.end(), "__head"), head.argv.end());

  // The workload: 20 batches of 100 tasks, each batch with one call per counter and one task per
  // bundle; the head is killed while batch 11's tasks are in flight and started again while
  // batch 13's are (batches 11 and 12 run without a head).
  constexpr int kTasks = 2000, kBatch = 100;
  std::set<int> results;
  Clock::time_point restarted_at;
  for (int b = 0; b < kTasks / kBatch; ++b) {
    std::vector<api::ObjectRef<int>> refs;
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      refs.push_back(api::Task(api_test::MarkOnce).Remote(marks.string(), i));
    }
    auto in_a = api::Task(api_test::NodeId).SetPlacementGroup(pg_a, b % 2).Remote();
    auto in_b = api::Task(api_test::NodeId).SetPlacementGroup(pg_b, 0).Remote();
    if (b == 10) {  // with this batch in flight
      ASSERT_EQ(::kill(head.pid, SIGKILL), 0);
      ASSERT_TRUE(Eventually([&] { return !IsProcessAlive(head.pid); }, milliseconds(5000)));
    }
    if (b == 12) {  // as a user would: the latest session's head, started again
      auto r = c.Orrery({"start", "--head", "--resume", "--temp-dir", c.root()});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
      EXPECT_NE(r.out.find("Resumed the Orrery head"), std::string::npos) << r.out;
      restarted_at = Clock::now();
    }
    count_all();
    for (auto& r : refs) {
      auto v = api::Get(r, seconds(60));
      ASSERT_TRUE(v.ok()) << "batch " << b << ": " << v.status().ToString();
      EXPECT_TRUE(results.insert(*v).second) << "task " << *v << " returned twice";
    }
    auto na = api::Get(in_a, seconds(60));
    auto nb = api::Get(in_b, seconds(60));
    ASSERT_TRUE(na.ok() && nb.ok()) << (na.ok() ? nb.status() : na.status()).ToString();
    EXPECT_EQ(*na, (*nodes_a)[b % 2]);
    EXPECT_EQ(*nb, (*nodes_b)[0]);
  }
  EXPECT_EQ(results.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(*results.begin(), 0);
  EXPECT_EQ(*results.rbegin(), kTasks - 1);
  size_t marked = 0;
  for (const auto& e : fs::directory_iterator(marks)) marked += e.is_regular_file();
  EXPECT_EQ(marked, static_cast<size_t>(kTasks)) << "a task ran twice or not at all";

  // The restarted head: same nodes, all alive and reporting; the same actors, alive where they
  // were (not restarted); the groups created on the same nodes.
  const HeadProcess again = FindHead(c);
  ASSERT_GT(again.pid, 0);
  EXPECT_NE(again.pid, head.pid);
  ASSERT_TRUE(Eventually(
      [&] {
        json nodes = ListJson(c, "nodes");
        std::set<std::string> alive;
        for (const auto& n : nodes) {
          if (n.value("state", "") == "alive" && n.value("ms_since_heartbeat", 1 << 30) < 2000) {
            alive.insert(n.value("node_id", ""));
          }
        }
        return nodes.size() == 3 && alive == std::set<std::string>{"head", "n1", "n2"};
      },
      milliseconds(15000)))
      << ListJson(c, "nodes").dump();
  const std::string log = ReadAll(head.session / "logs" / "head.log");
  EXPECT_NE(log.find("restored from the head store"), std::string::npos) << log;
  EXPECT_NE(log.find("every restored node reported again"), std::string::npos) << log;
  json actors = ListJson(c, "actors");
  ASSERT_EQ(actors.size(), static_cast<size_t>(kActors)) << actors.dump();
  for (int i = 0; i < kActors; ++i) {
    bool found = false;
    for (const auto& a : actors) {
      if (a.value("actor_id", "") != counters[i].actor_id()) continue;
      found = true;
      EXPECT_EQ(a.value("state", ""), "alive") << a.dump();
      EXPECT_EQ(a.value("worker_pid", 0), pids[i]) << a.dump();
      EXPECT_EQ(a.value("num_restarts", -1), 0) << a.dump();
    }
    EXPECT_TRUE(found) << counters[i].actor_id();
    auto pid = api::Get(counters[i].Task(&Accumulator::Pid).Remote(), seconds(30));
    ASSERT_TRUE(pid.ok());
    EXPECT_EQ(*pid, pids[i]) << "counter " << i << " was restarted";
  }
  count_all();  // and they count on
  json groups = ListJson(c, "placement-groups");
  std::map<std::string, json> by_id;
  for (const auto& g : groups) by_id[g.value("group_id", "")] = g;
  ASSERT_TRUE(by_id.count("ft_a") && by_id.count("ft_b")) << groups.dump();
  EXPECT_EQ(by_id["ft_a"].value("state", ""), "created");
  EXPECT_EQ(by_id["ft_b"].value("state", ""), "created");
  EXPECT_EQ(by_id["ft_a"]["bundle_nodes"].get<std::vector<std::string>>(), *nodes_a);
  EXPECT_EQ(by_id["ft_b"]["bundle_nodes"].get<std::vector<std::string>>(), *nodes_b);

  // New work after the restart: a group and an actor are placed.
  auto pg_c = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "ft_c");
  EXPECT_TRUE(pg_c.Wait(milliseconds(20000)).ok());
  auto fresh = api::Actor(Accumulator::Create).SetResources({{"CPU", 0.1}}).Remote(41);
  auto v = api::Get(fresh.Task(&Accumulator::Add).Remote(1), seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 42);
  std::cerr << "head restarted "
            << std::chrono::duration_cast<milliseconds>(Clock::now() - restarted_at).count()
            << " ms before the checks ended\n";
}

// A clean stop clears the state: the next head of the same temp dir (a new session) starts
// empty instead of waiting for the old nodes.
TEST(HeadFaultToleranceTest, CleanStopStartsTheNextHeadEmpty) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("first", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return ListJson(c, "nodes").size() == 1; }));
  ASSERT_EQ(c.Orrery({"stop", "--temp-dir", c.root()}, milliseconds(15000)).exit_code, 0);
  auto r = c.Orrery({"start", "--head", "--port", std::to_string(FreePort()), "--temp-dir",
                     c.root(), "--node-name", "second", "--num-cpus", "1", "--dashboard-port",
                     "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return ListJson(c, "nodes").size() == 1; }));
  json nodes = ListJson(c, "nodes");
  ASSERT_EQ(nodes.size(), 1u) << nodes.dump();
  EXPECT_EQ(nodes[0].value("node_id", ""), "second");
}

}  // namespace
}  // namespace orrery::live
