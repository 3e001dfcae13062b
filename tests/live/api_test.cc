// The C++ client API (live/api/orrery_api.h) end to end: a driver (this test process) against
// real head and node daemons on loopback, with remote code in a shared library
// (api_test_lib.cc) that the workers dlopen. Every Get is bounded; LiveCluster and ApiSession
// tear everything down when a test fails.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <string>
#include <thread>
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
using std::chrono::seconds;

// A call before Init fails cleanly; Init without a reachable cluster is Unavailable.
TEST(LiveApiTest, CallsWithoutARuntimeFail) {
  auto r = api::Get(api::Task(api_test::Add).Remote(1, 2), seconds(1));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  api::InitOptions o;
  o.address = "127.0.0.1:" + std::to_string(FreePort());
  o.token = "t";
  EXPECT_FALSE(api::Init(o).ok());
  EXPECT_FALSE(api::IsInitialized());
}

// Values of every codec kind come back; an exception's message is surfaced; Get times out.
TEST(LiveApiTest, RemoteFunctionRoundTripAndErrors) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto sum = api::Get(api::Task(api_test::Add).Remote(2, 3), seconds(20));
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(*sum, 5);
  auto scaled = api::Get(
      api::Task(api_test::Scale).Remote(std::vector<double>{1.5, -2, 0}, 2.0), seconds(20));
  ASSERT_TRUE(scaled.ok()) << scaled.status().ToString();
  EXPECT_EQ(*scaled, (std::vector<double>{3, -4, 0}));

  auto failed = api::Get(api::Task(api_test::Fail).Remote("boom: bad input"), seconds(20));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnknown);
  EXPECT_NE(failed.status().message().find("boom: bad input"), std::string::npos)
      << failed.status().ToString();

  auto slow = api::Task(api_test::SleepMs).Remote(1500);
  EXPECT_EQ(api::Get(slow, std::chrono::milliseconds(100)).status().code(),
            StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(api::Get(slow, seconds(20)).ok());  // still retrievable afterwards
}

// Many small tasks all come back right; long tasks use both CPUs (two workers, not one).
TEST(LiveApiTest, ManyTasksRunInParallel) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  std::vector<api::ObjectRef<int>> refs;
  for (int i = 0; i < 500; ++i) refs.push_back(api::Task(api_test::Add).Remote(i, 1));
  for (int i = 0; i < 500; ++i) {
    auto r = api::Get(refs[i], seconds(30));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, i + 1);
  }

  const auto t0 = Clock::now();
  std::vector<api::ObjectRef<int64_t>> sleeps;
  for (int i = 0; i < 4; ++i) sleeps.push_back(api::Task(api_test::SleepMs).Remote(600));
  std::set<int64_t> pids;
  for (auto& s : sleeps) {
    auto pid = api::Get(s, seconds(30));
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pids.insert(*pid);
  }
  const auto took = Clock::now() - t0;
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_LT(took, std::chrono::milliseconds(2200)) << "4 x 600 ms on 2 CPUs ran serially";
}

// Worker reuse is the node agent's decision (core/agent/node_agent.h AcquireWorker): a second
// lease of the same library and env reuses the idle code worker the first one left; an actor
// starts its own worker (the idle one stays for tasks) whose process exits with the actor.
TEST(LiveApiTest, CodeWorkersAreReusedAcrossLeasesButNotByActors) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "3"}).exit_code, 0);
  api::InitOptions o;
  o.idle_lease_timeout = std::chrono::milliseconds(100);  // leases go back soon after a call
  ApiSession session(cluster, o);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  auto pid_of = [](std::map<std::string, double> res) {
    return api::Get(api::Task(api_test::SleepMs).SetResources(res).Remote(0), seconds(20));
  };
  auto idle_lease_back = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1000)); };

  auto first = pid_of({{"CPU", 1}});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  idle_lease_back();
  // Other resources: another class, so surely another lease; same library and env.
  auto second = pid_of({{"CPU", 2}});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, *first) << "the second lease did not reuse the idle worker";
  idle_lease_back();

  auto actor = api::Actor(Accumulator::Create).Remote(0);
  auto actor_pid = api::Get(actor.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(actor_pid.ok()) << actor_pid.status().ToString();
  EXPECT_NE(*actor_pid, *first) << "an actor took the idle task worker";
  auto third = pid_of({{"CPU", 1}});  // the idle worker is still there for tasks
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(*third, *first);

  // The actor ends: its worker is not kept idle but exits.
  actor.Kill();
  EXPECT_TRUE(Eventually([&] { return ::kill(static_cast<pid_t>(*actor_pid), 0) != 0; },
                         std::chrono::milliseconds(10000)))
      << "the actor's worker " << *actor_pid << " is still running";
  idle_lease_back();
  auto fourth = pid_of({{"CPU", 1}});
  ASSERT_TRUE(fourth.ok()) << fourth.status().ToString();
  EXPECT_NE(*fourth, *actor_pid);
}

// An actor keeps its state across calls, runs them in submission order, and two actors are
// independent; a factory that throws fails the actor's calls with its message.
TEST(LiveApiTest, ActorStateAndMethodOrdering) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "3"}).exit_code, 0);  // 1 CPU per actor
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto a = api::Actor(Accumulator::Create).Remote(100);
  auto b = api::Actor(Accumulator::Create).Remote(0);
  std::vector<api::ObjectRef<int>> sums;
  for (int i = 1; i <= 30; ++i) sums.push_back(a.Task(&Accumulator::Add).Remote(i));
  auto b_sum = api::Get(b.Task(&Accumulator::Add).Remote(7), seconds(20));
  int expected = 100;
  for (int i = 1; i <= 30; ++i) {
    expected += i;
    auto s = api::Get(sums[i - 1], seconds(20));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(*s, expected);
  }
  ASSERT_TRUE(b_sum.ok()) << b_sum.status().ToString();
  EXPECT_EQ(*b_sum, 7);
  auto history = api::Get(a.Task(&Accumulator::History).Remote(), seconds(20));
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ((*history)[i], i + 1);
  auto pa = api::Get(a.Task(&Accumulator::Pid).Remote(), seconds(20));
  auto pb = api::Get(b.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_NE(*pa, *pb);

  auto broken = api::Actor(Accumulator::Create).Remote(-1);
  auto r = api::Get(broken.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("start must be >= 0"), std::string::npos)
      << r.status().ToString();

  a.Kill();
  EXPECT_FALSE(api::Get(a.Task(&Accumulator::Add).Remote(1), seconds(20)).ok());
}

// Per-call resources go through the node's lease decision: a task needing 2 CPUs submitted to a
// 1-CPU entry node spills to the 2-CPU node; one that fits nowhere waits (Get times out).
TEST(LiveApiTest, ResourcesPerCallAreRespected) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_EQ(cluster.AddNode("big", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_TRUE(cluster.NodeKnows("a", 2));
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto small = api::Get(api::Task(api_test::NodeId).Remote(), seconds(20));
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(*small, "a");
  auto two = api::Get(api::Task(api_test::NodeId).SetResources({{"CPU", 2}}).Remote(), seconds(20));
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(*two, "big");
  auto pinned = api::Get(api::Task(api_test::NodeId)
                             .SetStrategy(api::Strategy::NodeAffinity("big", false))
                             .Remote(),
                         seconds(20));
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_EQ(*pinned, "big");
  auto huge = api::Task(api_test::NodeId).SetResources({{"CPU", 8}}).Remote();
  EXPECT_EQ(api::Get(huge, std::chrono::milliseconds(700)).status().code(),
            StatusCode::kDeadlineExceeded);
}

// The runtime env: env_vars reach the worker's environment.
TEST(LiveApiTest, EnvVarsReachTheWorkers) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "1"}).exit_code, 0);
  api::InitOptions o;
  o.env_vars["ORRERY_API_TEST_VAR"] = "hello world";
  ApiSession session(cluster, o);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  auto v = api::Get(api::Task(api_test::Env).Remote("ORRERY_API_TEST_VAR"), seconds(20));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "hello world");
  auto token = api::Get(api::Task(api_test::Env).Remote("ORRERY_WORKER_TOKEN"), seconds(20));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, "") << "user code must not see the cluster token";
}

// GPUs (logical override, no GPU needed): an API task sees exactly the devices the core granted,
// named as the node's own CUDA_VISIBLE_DEVICES names them; a task without GPUs sees none; a
// worker that held GPUs is not reused by the next GPU task (Ray's default).
TEST(LiveApiTest, GpuGrantsReachWorkersAsTheNodesDeviceIds) {
  LiveCluster cluster;
  ::setenv("CUDA_VISIBLE_DEVICES", "5,7", 1);  // the node daemon inherits it
  auto started = cluster.StartHead("head", {"--num-cpus", "4", "--num-gpus", "2"});
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ApiSession session(cluster);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  auto env = [](std::map<std::string, double> res) {
    return api::Get(api::Task(api_test::Env).SetResources(res).Remote("CUDA_VISIBLE_DEVICES"),
                    seconds(20));
  };
  auto one = env({{"GPU", 1}});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, "5");  // logical GPU 0 is the first id the node was given
  auto both = env({{"GPU", 2}});
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(*both, "5,7");
  auto half = env({{"GPU", 0.5}});
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  EXPECT_TRUE(*half == "5" || *half == "7") << *half;
  auto none = env({{"CPU", 1}});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, "");
  auto pid1 = api::Get(api::Task(api_test::SleepMs).SetResources({{"GPU", 1}}).Remote(0),
                       seconds(20));
  auto pid2 = api::Get(api::Task(api_test::SleepMs).SetResources({{"GPU", 1}}).Remote(0),
                       seconds(20));
  ASSERT_TRUE(pid1.ok() && pid2.ok());
  EXPECT_NE(*pid1, *pid2) << "a GPU worker was reused";
}

// The built-in CUDA workload: `task run --builtin gpu-probe` runs the nvcc-built probe on the
// granted GPU. Here (no GPU, perhaps no nvcc) it must resolve and run the probe, or say clearly
// that this build has none; on a GPU machine tests/gpu/run.sh checks the kernel ran.
TEST(LiveApiTest, BuiltinGpuProbeRunsAsATask) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "1", "--num-gpus", "1"}).exit_code, 0);
  auto r = cluster.Orrery({"task", "run", "--temp-dir", cluster.root(), "--num-gpus", "1",
                           "--builtin", "gpu-probe"});
  const fs::path probe =
      fs::path(ORRERY_BINARY).parent_path() / "live" / "cuda" / "orrery-gpu-probe";
  if (!fs::exists(probe)) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    return;
  }
  if (r.exit_code == 0) {  // a real GPU: one JSON line per granted device, the kernel ran
    EXPECT_NE(r.out.find("\"kernel_ok\": true"), std::string::npos) << r.out;
  } else {  // the probe ran and reported why it could not use a device
    EXPECT_TRUE(r.exit_code == 1 || r.exit_code == 2) << r.exit_code << r.err;
    EXPECT_NE(r.err.find("orrery-gpu-probe"), std::string::npos) << r.err;
  }
}

// The seed's sample: build/live/examples/counter against `orrery start --head` prints
// "<counter_name> got <n>" five times, the name read inside the actor from the runtime env.
TEST(LiveApiTest, CounterExampleEndToEnd) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  // Without --counter-name the name comes from the job's runtime env only (job_test.cc).
  auto r = cluster.Exec(COUNTER_BINARY, {"--counter-name", "test_counter"},
                        std::chrono::milliseconds(30000),
                        {"ORRERY_ADDRESS=" + cluster.address(), "ORRERY_TOKEN=" + cluster.Token()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "test_counter got 1\ntest_counter got 2\ntest_counter got 3\ntest_counter got 4\n"
            "test_counter got 5\n");
  auto named = cluster.Exec(COUNTER_BINARY, {"--counter-name", "c2"}, std::chrono::milliseconds(30000),
                            {"ORRERY_ADDRESS=" + cluster.address(), "ORRERY_TOKEN=" + cluster.Token()});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.out.substr(0, 9), "c2 got 1\n");
}

// Regression (issue 11.14): `counter --help` prints its usage without connecting (it used to
// try the cluster); an unknown argument exits 2.
TEST(LiveApiTest, CounterHelpDoesNotConnect) {
  LiveCluster cluster;  // no cluster started: a connection attempt would fail
  auto r = cluster.Exec(COUNTER_BINARY, {"--help"}, std::chrono::milliseconds(5000),
                        {"ORRERY_ADDRESS=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("usage: counter"), std::string::npos) << r.out;
  auto bad = cluster.Exec(COUNTER_BINARY, {"--bogus"}, std::chrono::milliseconds(5000),
                          {"ORRERY_ADDRESS=127.0.0.1:1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

}  // namespace
}  // namespace orrery::live
