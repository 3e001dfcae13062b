// The live backend end to end: real head and node daemons (processes of the built `orrery`
// binary, started with `orrery start`) on 127.0.0.1 with OS-chosen free ports, driven through
// the CLI and the client library. Every test owns a LiveCluster whose destructor runs
// `orrery stop` and then SIGKILLs anything left, so daemons never outlive a failed test; every
// wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "live/client/client.h"
#include "live/common/session.h"
#include "live/rpc/rpc_util.h"
#include "tests/live/live_cluster.h"

extern char** environ;

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;


v1::RequestWorkerLeaseRequest CpuLease(const std::string& id, int64_t cpus) {
  v1::RequestWorkerLeaseRequest r;
  r.set_task_id(id);
  r.set_name(id);
  (*r.mutable_resources()->mutable_raw())["CPU"] = cpus * 10000;
  return r;
}

// Registration: the head's node and a second node register; `list nodes` and `status` show both
// with their resources and labels.
TEST(LiveTest, NodesRegisterAndAreListed) {
  LiveCluster c;
  auto h = c.StartHead("a", {"--num-cpus", "2"});
  ASSERT_EQ(h.exit_code, 0) << h.out << h.err;
  EXPECT_NE(h.out.find("Started the Orrery head at " + c.address()), std::string::npos) << h.out;
  auto n = c.AddNode("b", {"--num-cpus", "4", "--num-gpus", "2", "--labels", R"({"zone": "z1"})"});
  ASSERT_EQ(n.exit_code, 0) << n.out << n.err;
  json nodes = c.Nodes();
  ASSERT_EQ(nodes.size(), 2u) << nodes.dump();
  EXPECT_EQ(nodes[0]["node_id"], "a");
  EXPECT_EQ(nodes[0]["state"], "alive");
  EXPECT_EQ(nodes[0]["total"]["CPU"], 2.0);
  EXPECT_TRUE(nodes[0]["is_head_node"].get<bool>());
  EXPECT_EQ(nodes[1]["node_id"], "b");
  EXPECT_EQ(nodes[1]["total"]["CPU"], 4.0);
  EXPECT_EQ(nodes[1]["total"]["GPU"], 2.0);
  EXPECT_EQ(nodes[1]["labels"]["zone"], "z1");
  auto s = c.Orrery({"status", "--temp-dir", c.root()});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("2 alive, 0 dead"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("CPU: 0/6"), std::string::npos) << s.out;
}

// A task is a real process: its stdout, stderr and exit code come back through the CLI, and the
// head's task table records it.
TEST(LiveTest, TaskOutputAndExitCodeComeBack) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  auto r = c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "sh", "-c",
                     "echo hello from $ORRERY_NODE_ID; echo oops >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "hello from a\n");
  EXPECT_NE(r.err.find("oops"), std::string::npos) << r.err;
  auto ok = c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "true"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  json tasks;
  ASSERT_TRUE(Eventually([&] {
    auto l = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
    tasks = json::parse(l.out, nullptr, false);
    return tasks.is_array() && tasks.size() == 2 && tasks[0]["state"] != "RUNNING" &&
           tasks[1]["state"] == "FINISHED";
  })) << tasks.dump();
  EXPECT_EQ(tasks[0]["state"], "FAILED");
  EXPECT_EQ(tasks[0]["exit_code"], 3);
  EXPECT_EQ(tasks[0]["node_id"], "a");
  // The lease came back when the process exited.
  EXPECT_TRUE(Eventually([&] { return c.Node("a")["available"]["CPU"] == 2.0; }));
}

// The core's GPU device grant becomes CUDA_VISIBLE_DEVICES (logical GPUs, no device needed).
TEST(LiveTest, GpuGrantSetsCudaVisibleDevices) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("g", {"--num-cpus", "4", "--num-gpus", "2"}).exit_code, 0);
  auto two = c.Orrery({"task", "run", "--temp-dir", c.root(), "--num-gpus", "2", "--", "sh", "-c",
                       "echo $CUDA_VISIBLE_DEVICES"});
  EXPECT_EQ(two.exit_code, 0) << two.err;
  EXPECT_EQ(two.out, "0,1\n");
  auto one = c.Orrery({"task", "run", "--temp-dir", c.root(), "--num-gpus", "1", "--", "sh", "-c",
                       "echo $CUDA_VISIBLE_DEVICES"});
  EXPECT_EQ(one.out, "0\n");
  auto none = c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "sh", "-c",
                        "echo \"[${CUDA_VISIBLE_DEVICES-unset}]\""});
  EXPECT_EQ(none.out, "[]\n") << "a task without GPUs sees none on a GPU node";
}

// Spillback: a task that only fits another node is spilled there by the entry node's policy and
// the client follows; the task runs on the node that has the resource.
TEST(LiveTest, TaskThatOnlyFitsAnotherNodeSpillsThere) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2", "--resources", R"({"special": 1})"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto r = c.Orrery({"task", "run", "--temp-dir", c.root(), "--resources", R"({"special": 1})",
                     "--", "sh", "-c", "echo $ORRERY_NODE_ID"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "b\n");
  // A caller that knows b is gone (refuse_target: the head declared it dead while a's view still
  // listed it): the spillback is never followed to b; the walk goes back to a, which spills
  // again, until the rejection limit ends it.
  AcquireOptions refuse;
  refuse.max_rejections = 3;
  std::vector<std::string> steps;
  refuse.refuse_target = [&](const std::string& address) { return address == c.NodeAddress("b"); };
  refuse.on_step = [&](std::string_view step, const std::string& address, const std::string&,
                       double) {
    steps.push_back(std::string(step) + (address == c.NodeAddress("b") ? " b" : " a"));
  };
  v1::RequestWorkerLeaseRequest special = CpuLease("refused", 1);
  (*special.mutable_resources()->mutable_raw())["special"] = 10000;
  auto refused = AcquireLease(c.NodeAddress("a"), c.Token(), special, refuse);
  EXPECT_EQ(refused.status().code(), StatusCode::kAborted) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("which is gone"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(std::count(steps.begin(), steps.end(), "request b"), 0)
      << testing::PrintToString(steps);
  EXPECT_EQ(std::count(steps.begin(), steps.end(), "refused b"), 4)
      << testing::PrintToString(steps);
  json tasks;
  ASSERT_TRUE(Eventually([&] {
    auto l = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
    tasks = json::parse(l.out, nullptr, false);
    return tasks.is_array() && tasks.size() == 1 && tasks[0]["state"] == "FINISHED";
  })) << tasks.dump();
  EXPECT_EQ(tasks[0]["node_id"], "b");
  EXPECT_EQ(tasks[0]["spillbacks"], 1);
}

// The hybrid policy decides live as in the simulator: below the spread threshold (0.5) the entry
// node packs its own work; at the threshold it spreads to the emptier node.
TEST(LiveTest, HybridPacksBelowThresholdThenSpreads) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  const std::string entry = c.NodeAddress("a");
  std::vector<std::string> placed;
  std::vector<AcquiredLease> leases;
  for (int i = 0; i < 4; ++i) {
    auto l = AcquireLease(entry, c.Token(), CpuLease("t" + std::to_string(i), 1));
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    placed.push_back(l->node_id);
    leases.push_back(*l);
  }
  // a: 0/4 and 1/4 used -> score 0, local wins; at 2/4 (0.5, not below the threshold) b is
  // better, and a's estimate of b (charged for the spill) keeps b below the threshold.
  EXPECT_EQ(placed, (std::vector<std::string>{"a", "a", "b", "b"}));
  EXPECT_EQ(leases[2].spillbacks, 1);
  for (size_t i = 0; i < leases.size(); ++i) {
    EXPECT_TRUE(
        NodeClient(leases[i].address, c.Token()).ReturnWorkerLease("t" + std::to_string(i)).ok());
  }
  EXPECT_TRUE(Eventually([&] { return c.Node("a")["available"]["CPU"] == 4.0; }));
}

// The acquirer's callback form follows the same walk as the blocking one (here a spillback from
// a full node to the free one) and calls back on its own thread; an unreachable entry node is
// asked again at the entry the caller names; a request no longer needed is dropped.
TEST(LiveTest, LeaseAcquirerCallbackFormRetriesAndStopsWhenNotNeeded) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto first = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("first", 1));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->node_id, "a");
  std::promise<StatusOr<AcquiredLease>> got;
  std::thread t = AcquireLeaseAsync(c.NodeAddress("a"), c.Token(), CpuLease("second", 1), {},
                                    [&](StatusOr<AcquiredLease> l) { got.set_value(l); });
  auto second = got.get_future().get();
  t.join();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->node_id, "b");
  EXPECT_EQ(second->spillbacks, 1);
  EXPECT_TRUE(NodeClient(second->address, c.Token()).ReturnWorkerLease("second").ok());

  // An entry address nobody listens on: retried at the entry the caller names.
  AcquireOptions retry;
  retry.max_unreachable = 3;
  retry.unreachable_pause = milliseconds(10);
  int asked = 0;
  retry.entry = [&](int) {
    ++asked;
    return c.NodeAddress("b");
  };
  auto third = AcquireLease("127.0.0.1:1", c.Token(), CpuLease("third", 1), retry);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(third->node_id, "b");

  // Both nodes are full: the request queues; once it is no longer needed the walk ends.
  AcquireOptions drop;
  drop.first_queue_timeout = drop.requeue_timeout = milliseconds(100);
  std::atomic<int> checks{0};
  drop.still_needed = [&] { return ++checks < 3; };
  auto fourth = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("fourth", 1), drop);
  EXPECT_EQ(fourth.status().code(), StatusCode::kAborted) << fourth.status().ToString();
  EXPECT_EQ(fourth.status().message(), "no longer needed");
  (void)NodeClient(c.NodeAddress("a"), c.Token()).CancelWorkerLease("fourth", "test over");
  EXPECT_TRUE(NodeClient(first->address, c.Token()).ReturnWorkerLease("first").ok());
  EXPECT_TRUE(NodeClient(third->address, c.Token()).ReturnWorkerLease("third").ok());
}

// Policy is a cluster setting: the head's --policy reaches every node (b joins without one and
// still decides with spread), `orrery status` shows it, `live run --address` runs with it and
// records it, and a scenario asking for another policy is refused naming both.
TEST(LiveTest, HeadPolicyIsTheClusterSettingEveryNodeDecidesWith) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "4", "--policy", "spread"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  ASSERT_TRUE(c.NodeKnows("b", 2));
  // Under hybrid both leases would stay on the entry node (a below the spread threshold); under
  // spread the entry's cursor walks the ring a, b.
  std::vector<std::string> placed;
  std::vector<AcquiredLease> leases;
  for (int i = 0; i < 2; ++i) {
    auto l = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("t" + std::to_string(i), 1));
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    placed.push_back(l->node_id);
    leases.push_back(*l);
  }
  EXPECT_EQ(placed, (std::vector<std::string>{"a", "b"}));
  // b's own cursor starts at a: under hybrid b would keep its first lease.
  auto lb = AcquireLease(c.NodeAddress("b"), c.Token(), CpuLease("t2", 1));
  ASSERT_TRUE(lb.ok()) << lb.status().ToString();
  EXPECT_EQ(lb->node_id, "a") << "a joining node decides with the cluster's policy";
  leases.push_back(*lb);
  for (size_t i = 0; i < leases.size(); ++i) {
    EXPECT_TRUE(
        NodeClient(leases[i].address, c.Token()).ReturnWorkerLease("t" + std::to_string(i)).ok());
  }
  auto status = c.Orrery({"status", "--temp-dir", c.root()});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("Scheduling policy: spread"), std::string::npos) << status.out;

  const fs::path dir = fs::path(c.root()).parent_path();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string nodes =
      "cluster:\n  nodes:\n    - {id: a, resources: {CPU: 4}}\n    - {id: b, resources: {CPU: 4}}\n"
      "workload:\n  tasks:\n    - {name: t, count: 2, duration: 100ms, resources: {CPU: 1}}\n";
  const std::string plain = write("plain.yaml", "name: plain\n" + nodes);
  auto run = c.Orrery({"live", "run", plain, "--address", c.address(), "--temp-dir", c.root(),
                       "--out", (dir / "plain").string()},
                      milliseconds(60000));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  json summary = json::parse(ReadAll(dir / "plain" / "summary.json"), nullptr, false);
  EXPECT_EQ(summary["policy"], "spread") << "the record names the policy that ran";
  const std::string asks =
      write("asks.yaml", "name: asks\nscheduler: {policy: hybrid}\n" + nodes);
  auto refused = c.Orrery({"live", "run", asks, "--address", c.address(), "--temp-dir", c.root(),
                           "--out", (dir / "asks").string()});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("asks for policy hybrid"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("runs spread"), std::string::npos) << refused.err;
  // A joining node cannot pick its own policy.
  auto own = c.AddNode("c", {"--num-cpus", "1", "--policy", "random"});
  EXPECT_EQ(own.exit_code, 2);
  EXPECT_NE(own.err.find("cluster settings"), std::string::npos) << own.err;
  // An unknown policy is refused before anything starts.
  LiveCluster d;
  auto bad = d.StartHead("x", {"--policy", "fastest"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown policy 'fastest'"), std::string::npos) << bad.err;
}

// Every RPC needs the cluster token: a call without it, or with a wrong one, is refused.
TEST(LiveTest, CallsWithoutTheTokenAreUnauthenticated) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  EXPECT_EQ(HeadClient(c.address(), "").ListNodes().status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(HeadClient(c.address(), "wrong").Ready().status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(HeadClient(c.address(), c.Token()).Ready().ok());
  NodeClient node(c.NodeAddress("a"), "not-the-token");
  EXPECT_EQ(node.RequestWorkerLease(CpuLease("x", 1)).status().code(),
            StatusCode::kUnauthenticated);
  v1::RunTaskRequest run;
  run.set_task_id("x");
  run.add_argv("true");
  EXPECT_EQ(node.RunTask(run, nullptr).status().code(), StatusCode::kUnauthenticated);
  // The token file is private to its owner.
  auto s = LatestSession(c.root());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(fs::status(*s / "token").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  auto r = c.Orrery({"list", "nodes", "--address", c.address()}, milliseconds(20000),
                    {"ORRERY_TOKEN=wrong"});
  EXPECT_EQ(r.exit_code, 2);
  // Said in words (issue 11.14), not as gRPC's status code.
  EXPECT_NE(r.err.find("the head refused the cluster token"), std::string::npos) << r.err;
}

// `orrery stop` ends every daemon of the session and the tasks they run: no process is left.
TEST(LiveTest, StopLeavesNoProcessBehind) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  const std::vector<pid_t> daemons = c.Pids();
  ASSERT_EQ(daemons.size(), 3u);
  // A long task, started through the client library, whose pid we learn from the stream.
  auto lease = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("sleeper", 1));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  std::atomic<int> task_pid{0};
  std::thread runner([&, address = lease->address, token = c.Token()] {
    v1::RunTaskRequest run;
    run.set_task_id("sleeper");
    run.add_argv("sleep");
    run.add_argv("60");
    (void)NodeClient(address, token)
        .RunTask(
            run,
            [&](const v1::RunTaskReply& m) {
              if (m.has_started_pid()) task_pid = m.started_pid();
            },
            milliseconds(30000));
  });
  const bool started = Eventually([&] { return task_pid.load() > 0; });
  auto r = c.Orrery({"stop", "--temp-dir", c.root()});
  runner.join();
  ASSERT_TRUE(started);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  for (pid_t pid : daemons) EXPECT_FALSE(IsProcessAlive(pid)) << "daemon " << pid;
  EXPECT_FALSE(IsProcessAlive(task_pid.load())) << "task " << task_pid.load();
  // And nothing answers any more.
  EXPECT_FALSE(HeadClient(c.address(), c.Token(), milliseconds(500)).Ready().ok());
}

// A node that dies without a word (SIGKILL) is marked dead once its heartbeats stop.
TEST(LiveTest, KilledNodeIsMarkedDeadAfterHeartbeatTimeout) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "1"}).exit_code, 0);
  const int pid = c.Node("b").value("pid", 0);
  ASSERT_GT(pid, 0);
  const auto t0 = Clock::now();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return c.Node("b").value("state", "") == "dead"; }))
      << c.Nodes().dump();
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  EXPECT_GE(ms, 300) << "dead only after the heartbeat timeout (500 ms)";
  EXPECT_EQ(c.Node("a").value("state", ""), "alive");
  auto s = c.Orrery({"status", "--temp-dir", c.root()});
  EXPECT_NE(s.out.find("1 alive, 1 dead"), std::string::npos) << s.out;
}

// Bad input and no cluster: exit 2 with a clear message, quickly.
TEST(LiveTest, BadInputAndNoClusterExitTwo) {
  LiveCluster c;
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"task", "run", "--resources", "{bad", "--", "true"}, "--resources: malformed JSON"},
      {{"task", "run", "--bogus", "--", "true"}, "unrecognised option"},
      {{"task", "run", "--strategy", "pack", "--", "true"}, "--strategy"},
      {{"task", "run", "--num-gpus", "1.5", "--", "true"}, "GPU"},
      {{"task", "run", "--address", nowhere, "--", "true"}, "no cluster reachable"},
      {{"list", "nodes", "--address", nowhere}, "no cluster reachable"},
      {{"list", "jobs-of-actors"},
       "expected 'nodes', 'tasks', 'actors', 'placement-groups' or 'jobs'"},
      {{"task", "run", "--bundle-index", "0", "--", "true"}, "--bundle-index needs"},
      {{"task", "run", "--builtin", "nope"}, "--builtin: expected gpu-probe"},
      {{"task", "run", "--max-retries=-1", "--", "true"}, "--max-retries"},
      {{"start", "--head", "--resources", R"({"CPU": 1})", "--temp-dir", c.root()}, "--num-cpus"},
      {{"start", "--head", "--labels", "[1]", "--temp-dir", c.root()}, "--labels"},
      {{"start", "--temp-dir", c.root()}, "exactly one of --head and --address"},
  };
  for (const auto& k : cases) {
    const auto t0 = Clock::now();
    auto r = c.Orrery(k.args, milliseconds(20000), {"ORRERY_TOKEN=t"});
    EXPECT_EQ(r.exit_code, 2) << k.args[0] << " " << k.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(k.message), std::string::npos) << r.err;
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(8));
  }
  EXPECT_TRUE(c.Pids().empty()) << "bad input starts nothing";
}

// ---- built-in workloads, worker pool, object store, `live run` ------------------------------

// A lease on the node at `address` (by node affinity) for `id`.
StatusOr<AcquiredLease> LeaseOn(LiveCluster& c, const std::string& node, const std::string& id) {
  auto req = CpuLease(id, 1);
  req.mutable_strategy()->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
  req.mutable_strategy()->set_node_id(node);
  return AcquireLease(c.NodeAddress(node), c.Token(), req);
}

struct WorkloadRun {
  int pid = 0;
  StatusOr<v1::TaskExit> exit = Status(StatusCode::kUnknown, "not run");
};

WorkloadRun RunWorkload(LiveCluster& c, const AcquiredLease& lease, const std::string& id,
                        v1::Workload::Kind kind, int64_t ms, uint64_t bytes = 0,
                        const std::string& output = "",
                        const std::vector<v1::ObjectRef>& args = {}) {
  v1::RunTaskRequest run;
  run.set_task_id(id);
  run.mutable_workload()->set_kind(kind);
  run.mutable_workload()->set_duration_ms(ms);
  run.mutable_workload()->set_bytes(bytes);
  if (!output.empty()) run.set_output_object_id(output);
  for (const auto& a : args) *run.add_args() = a;
  WorkloadRun r;
  r.exit = NodeClient(lease.address, c.Token())
               .RunTask(
                   run,
                   [&](const v1::RunTaskReply& m) {
                     if (m.has_started_pid()) r.pid = m.started_pid();
                   },
                   milliseconds(20000));
  return r;
}

// Every built-in workload runs without a shell on a pooled worker; a worker serves one task after
// another (same pid), and a PRODUCE task leaves its object in the node's store.
TEST(LiveWorkloadTest, BuiltinWorkloadsRunOnReusedWorkers) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  struct Case {
    v1::Workload::Kind kind;
    int64_t ms;
    uint64_t bytes;
    std::string output;
  };
  const std::vector<Case> cases = {{v1::Workload::SLEEP, 200, 0, ""},
                                   {v1::Workload::CPU, 100, 0, ""},
                                   {v1::Workload::MEMORY, 100, 16 << 20, ""},
                                   {v1::Workload::PRODUCE, 50, 3000000, "obj-1"}};
  std::vector<int> pids;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string id = "w" + std::to_string(i);
    auto lease = LeaseOn(c, "a", id);
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    const auto t0 = Clock::now();
    auto r = RunWorkload(c, *lease, id, cases[i].kind, cases[i].ms, cases[i].bytes,
                         cases[i].output);
    ASSERT_TRUE(r.exit.ok()) << r.exit.status().ToString();
    EXPECT_EQ(r.exit->exit_code(), 0) << i << ": " << r.exit->error();
    EXPECT_GE(Clock::now() - t0, milliseconds(cases[i].ms)) << "ran for its duration";
    EXPECT_GT(r.pid, 0);
    pids.push_back(r.pid);
  }
  // One worker served them all, one after the other.
  for (int pid : pids) EXPECT_EQ(pid, pids[0]);
  EXPECT_TRUE(IsProcessAlive(pids[0])) << "the worker lives on between tasks";
  auto obj = NodeClient(c.NodeAddress("a"), c.Token()).FetchObject("obj-1");
  ASSERT_TRUE(obj.ok()) << obj.status().ToString();
  EXPECT_EQ(obj->size(), 3000000u);
  EXPECT_EQ(NodeClient(c.NodeAddress("a"), c.Token()).FetchObject("nope").status().code(),
            StatusCode::kNotFound);
  // The leases came back; the head recorded the tasks.
  EXPECT_TRUE(Eventually([&] { return c.Node("a")["available"]["CPU"] == 2.0; }));
  // Shell tasks still run as their own processes.
  auto sh = c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "sh", "-c", "echo $$"});
  EXPECT_EQ(sh.exit_code, 0) << sh.err;
  EXPECT_NE(sh.out, std::to_string(pids[0]) + "\n");
  // Stopping the cluster ends the worker too.
  c.Orrery({"stop", "--temp-dir", c.root()});
  EXPECT_TRUE(Eventually([&] { return !IsProcessAlive(pids[0]); }));
}

// Worker reuse is the node agent's decision (core/agent/node_agent.h), the pool only runs the
// processes: a workload holding a GPU runs on a fresh worker that exits afterwards (its CUDA
// context is not shared), while CPU workloads of the env reuse its idle worker.
TEST(LiveWorkloadTest, GpuWorkloadsGetAFreshWorkerThatExitsAfterwards) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2", "--num-gpus", "1"}).exit_code, 0);
  auto run = [&](const std::string& id, bool gpu) {
    auto req = CpuLease(id, 1);
    if (gpu) (*req.mutable_resources()->mutable_raw())["GPU"] = 10000;
    req.mutable_strategy()->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
    req.mutable_strategy()->set_node_id("a");
    auto lease = AcquireLease(c.NodeAddress("a"), c.Token(), req);
    EXPECT_TRUE(lease.ok()) << lease.status().ToString();
    if (!lease.ok()) return 0;
    auto r = RunWorkload(c, *lease, id, v1::Workload::SLEEP, 20);
    EXPECT_TRUE(r.exit.ok() && r.exit->exit_code() == 0) << id;
    return r.pid;
  };
  const int cpu1 = run("c1", false);
  ASSERT_GT(cpu1, 0);
  const int gpu1 = run("g1", true);
  ASSERT_GT(gpu1, 0);
  EXPECT_NE(gpu1, cpu1) << "GPU work does not take the idle CPU worker";
  EXPECT_TRUE(Eventually([&] { return !IsProcessAlive(gpu1); })) << "it exits after its task";
  const int gpu2 = run("g2", true);
  EXPECT_NE(gpu2, gpu1);
  EXPECT_NE(gpu2, cpu1);
  EXPECT_EQ(run("c2", false), cpu1) << "the idle CPU worker is reused";
  EXPECT_TRUE(IsProcessAlive(cpu1));
}

// A task starts when its worker begins it (as the simulator and Ray count a start): a new
// worker's start-up (exec, loading the binary: tens of ms) comes before the start event, not
// inside the task's run time. Before, the start event left at the spawn and the start-up was
// counted as running (results/fidelity: GPU tasks ran ~50 ms longer live than their duration).
TEST(LiveWorkloadTest, AFreshWorkersStartUpComesBeforeTheTaskStarts) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2", "--num-gpus", "1"}).exit_code, 0);
  for (int i = 0; i < 3; ++i) {
    const std::string id = "fresh" + std::to_string(i);
    auto req = CpuLease(id, 1);
    (*req.mutable_resources()->mutable_raw())["GPU"] = 10000;  // GPU work: a fresh worker
    req.mutable_strategy()->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
    req.mutable_strategy()->set_node_id("a");
    auto lease = AcquireLease(c.NodeAddress("a"), c.Token(), req);
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    v1::RunTaskRequest run;
    run.set_task_id(id);
    run.mutable_workload()->set_kind(v1::Workload::SLEEP);
    run.mutable_workload()->set_duration_ms(100);
    const auto t0 = Clock::now();
    Clock::time_point started{};
    auto exit = NodeClient(lease->address, c.Token())
                    .RunTask(
                        run,
                        [&](const v1::RunTaskReply& m) {
                          if (m.has_started_pid()) started = Clock::now();
                        },
                        milliseconds(20000));
    const auto ended = Clock::now();
    ASSERT_TRUE(exit.ok() && exit->exit_code() == 0) << id;
    ASSERT_NE(started, Clock::time_point{}) << "a start event came";
    // What the run time holds beyond the 100 ms sleep is less than what came before the start
    // (the start-up): compared with each other, not with a fixed bound, so a slow machine's
    // longer start-up moves both sides.
    EXPECT_LT(ended - started - milliseconds(100), started - t0)
        << "call to start " << (started - t0).count() / 1e6 << " ms, start to exit "
        << (ended - started).count() / 1e6 << " ms";
    EXPECT_GE(ended - started, milliseconds(100)) << "the sleep ran after the start";
  }
}

// A task whose argument lives on another node fetches it (streamed chunks) before it starts;
// afterwards the object is in its own node's store too. A missing argument fails the task.
TEST(LiveWorkloadTest, ArgumentsAreFetchedFromTheNodeThatHoldsThem) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto pa = LeaseOn(c, "a", "producer");
  ASSERT_TRUE(pa.ok()) << pa.status().ToString();
  const uint64_t size = 5 * 1024 * 1024 + 17;  // several chunks, not a multiple of one
  auto produced = RunWorkload(c, *pa, "producer", v1::Workload::PRODUCE, 10, size, "obj-big");
  ASSERT_TRUE(produced.exit.ok() && produced.exit->exit_code() == 0);
  // Also an object put there directly (objects that exist when a scenario starts).
  ASSERT_TRUE(NodeClient(c.NodeAddress("a"), c.Token()).PutObject("obj-init", 1000).ok());

  auto cb = LeaseOn(c, "b", "consumer");
  ASSERT_TRUE(cb.ok()) << cb.status().ToString();
  std::vector<v1::ObjectRef> args(2);
  args[0].set_object_id("obj-big");
  args[0].set_bytes(size);
  args[0].set_node_id("a");
  args[0].set_address(c.NodeAddress("a"));
  args[1] = args[0];
  args[1].set_object_id("obj-init");
  args[1].set_bytes(1000);
  auto consumed = RunWorkload(c, *cb, "consumer", v1::Workload::SLEEP, 10, 0, "", args);
  ASSERT_TRUE(consumed.exit.ok()) << consumed.exit.status().ToString();
  EXPECT_EQ(consumed.exit->exit_code(), 0) << consumed.exit->error();
  EXPECT_EQ(consumed.exit->bytes_fetched(), size + 1000);
  auto copy = NodeClient(c.NodeAddress("b"), c.Token()).FetchObject("obj-big");
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(copy->size(), size);

  auto cb2 = LeaseOn(c, "b", "orphan");
  ASSERT_TRUE(cb2.ok());
  args.resize(1);
  args[0].set_object_id("obj-missing");
  auto failed = RunWorkload(c, *cb2, "orphan", v1::Workload::SLEEP, 10, 0, "", args);
  ASSERT_TRUE(failed.exit.ok()) << failed.exit.status().ToString();
  EXPECT_NE(failed.exit->exit_code(), 0);
  EXPECT_NE(failed.exit->error().find("obj-missing"), std::string::npos) << failed.exit->error();
  EXPECT_TRUE(Eventually([&] { return c.Node("b")["available"]["CPU"] == 2.0; }));
}

// From the build (not __FILE__, which is relative when a compiler launcher rewrites paths).
fs::path SourceDir() { return fs::path(ORRERY_SOURCE_DIR); }

// pids of `orrery __worker` processes on this machine.
std::vector<pid_t> WorkerPids() {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = ReadAll(e.path() / "cmdline");
    // Exactly the `__worker` argument (not `__api_worker`): cmdline is NUL-separated.
    if (cmd.find(std::string("\0__worker\0", 10)) != std::string::npos &&
        cmd.find(ORRERY_BINARY) != std::string::npos && IsProcessAlive(std::stoi(name))) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

std::map<std::string, std::string> NodeByTask(const std::string& csv) {
  std::map<std::string, std::string> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (f.size() >= 8) out[f[0]] = f[7];
  }
  return out;
}

// `live run --local` starts the scenario's cluster in-process, replays it, writes the three result
// files with backend "live", and leaves no daemon or worker behind.
TEST(LiveRunTest, LocalRunWritesResultFiles) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "tiny.yaml";
  std::ofstream(scenario) << R"(name: tiny-live
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
    - {id: n1, resources: {CPU: 2}}
workload:
  tasks:
    - {name: make, count: 2, arrival: {process: uniform, interval: 200ms}, duration: 300ms,
       output: 1MB, strategy: {type: NODE_AFFINITY, node: n1}}
    - {name: use, count: 2, start: 100ms, arrival: {process: uniform, interval: 200ms},
       duration: 100ms, args: [{from: make, count: 2, pick: same_index}, {node: n0, bytes: 3MB}]}
    - {name: wide, count: 1, start: 200ms, duration: 100ms, resources: {CPU: 3}}
)";
  const auto before = WorkerPids();
  const auto t0 = Clock::now();
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--out", (dir / "out").string(),
                     "--temp-dir", c.root()},
                    milliseconds(60000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30));
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << ReadAll(dir / "out" / "summary.json");
  EXPECT_EQ(summary["backend"], "live");
  EXPECT_EQ(summary["scenario"], "tiny-live");
  EXPECT_EQ(summary["tasks"]["total"], 5);
  EXPECT_EQ(summary["tasks"]["finished"], 4);
  EXPECT_EQ(summary["tasks"]["infeasible"], 1) << "CPU 3 fits no node";
  EXPECT_GT(summary["makespan_s"].get<double>(), 0.3);
  // Each `use` runs where most of its argument bytes are (n0's 3 MB beats n1's outputs of
  // `make`) and fetches those from n1: the first use reads make 0 (the only producer submitted
  // before it), the second make 0 and make 1, but make 0 is already in n0's store by then (a
  // fetched copy stays; the simulator moves it again).
  EXPECT_EQ(summary["bytes_transferred"], 2 * 1000000);
  const std::string tasks = ReadAll(dir / "out" / "tasks.csv");
  EXPECT_EQ(tasks.rfind("task_id,name,job_id,kind,submit_s,start_s,end_s,node_id,state,attempt,"
                        "spillbacks,wait_reason\n",
                        0),
            0u)
      << tasks;
  auto nodes = NodeByTask(tasks);
  ASSERT_EQ(nodes.size(), 5u) << tasks;
  EXPECT_EQ(ReadAll(dir / "out" / "timeseries.csv").rfind("t_s,metric,labels,value\n", 0), 0u);
  // Nothing left running: no new worker process, no daemon (they lived in the run's process).
  EXPECT_TRUE(Eventually([&] { return WorkerPids().size() <= before.size(); }))
      << WorkerPids().size() << " workers";
}

// Parity: the same scenario placed by the simulator and by the live cluster puts every task on
// the same node (scenarios/parity-tiny.yaml is designed free of timing races).
TEST(LiveRunTest, ParityTinyPlacesLikeTheSimulator) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const std::string scenario = (SourceDir() / "scenarios" / "parity-tiny.yaml").string();
  auto sim = c.Orrery({"sim", "run", scenario, "--out", (dir / "sim").string(), "--no-progress"});
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  auto live = c.Orrery({"live", "run", scenario, "--local", "--out", (dir / "live").string(),
                        "--temp-dir", c.root()},
                       milliseconds(90000));
  ASSERT_EQ(live.exit_code, 0) << live.out << live.err;
  const auto sim_nodes = NodeByTask(ReadAll(dir / "sim" / "tasks.csv"));
  const auto live_nodes = NodeByTask(ReadAll(dir / "live" / "tasks.csv"));
  ASSERT_EQ(sim_nodes.size(), 20u);
  EXPECT_EQ(live_nodes, sim_nodes);
  json summary = json::parse(ReadAll(dir / "live" / "summary.json"), nullptr, false);
  EXPECT_EQ(summary["backend"], "live");
  EXPECT_EQ(summary["tasks"]["finished"], 20);
}

// owner.reuse_leases: the run's one Submitter feeds a granted lease the next queued task of its
// class, so a warm burst of short same-class tasks spreads over the nodes as a Ray driver spreads
// it (about a third each on three equal nodes) instead of piling on the driver's node, which
// refills from its own queue at once while the others wait for their next report.
TEST(LiveRunTest, ReusedLeasesSpreadABurstOfShortTasks) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "burst.yaml";
  std::ofstream(scenario) << R"(name: burst-reuse
cluster:
  node_types:
    - {name: n, count: 3, resources: {CPU: 4}}
  driver: n-0
owner: {reuse_leases: true, max_pending_lease_requests_per_class: 10}
workload:
  tasks:
    - {name: burst, count: 90, arrival: {process: burst, at: 0s}, duration: 100ms}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--out", (dir / "out").string(),
                     "--temp-dir", c.root()},
                    milliseconds(60000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["tasks"]["finished"], 90);
  std::map<std::string, int> per_node;
  for (const auto& [task, node] : NodeByTask(ReadAll(dir / "out" / "tasks.csv"))) ++per_node[node];
  ASSERT_EQ(per_node.size(), 3u);
  // 30 each when every lease runs tasks at the same pace; one lease per task gives the driver's
  // node about half (44/28/28 in the simulator).
  for (const auto& [node, n] : per_node) {
    EXPECT_GE(n, 20) << node;
    EXPECT_LE(n, 40) << node;
  }
}

// Bad input for `live run` exits 2 and names the problem; nothing is started.
TEST(LiveRunTest, BadInputExitsTwo) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string base =
      "cluster:\n  nodes:\n    - {id: n0, resources: {CPU: 2}}\n"
      "workload:\n  tasks:\n    - {name: t, count: 1, duration: 1s}\n";
  const std::string ok = write("ok.yaml", "name: ok\n" + base);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"live", "run", (dir / "missing.yaml").string(), "--local"}, "missing.yaml"},
      {{"live", "run", ok}, "exactly one of --address"},
      {{"live", "run", ok, "--local", "--workload", "gpu"}, "--workload"},
      {{"live", "run", ok, "--local", "--set", "cluster.bogus=1"}, "bogus"},
      {{"live", "walk"}, "unknown subcommand"},
  };
  for (const auto& k : cases) {
    auto r = c.Orrery(k.args);
    EXPECT_EQ(r.exit_code, 2) << k.args[2] << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(k.message), std::string::npos) << r.err;
  }
}

struct CsvRow {
  std::string task_id, node, state, attempt;
};
std::vector<CsvRow> Rows(const std::string& csv) {
  std::vector<CsvRow> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (f.size() >= 10) out.push_back({f[0], f[7], f[8], f[9]});
  }
  return out;
}

// A node SIGKILLed mid-run (the scenario's `failures`, daemons as separate processes): its
// running tasks are retried on the other node as attempt 1 (a row each in tasks.csv and in
// `orrery list tasks`), and a hard-affinity task to the dead node is canceled with the reason.
TEST(LiveRunTest, KilledNodeTasksFinishElsewhereAsAttemptOne) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "crash.yaml";
  std::ofstream(scenario) << R"(name: crash-live
cluster:
  nodes:
    - {id: a, resources: {CPU: 2}}
    - {id: b, resources: {CPU: 2}}
failures:
  - {at: 700ms, node: b, action: crash}
workload:
  tasks:
    - {name: long, count: 2, duration: 2s, max_retries: 1,
       strategy: {type: NODE_AFFINITY, node: b, soft: true}}
    - {name: pinned, count: 1, start: 2500ms, duration: 100ms,
       strategy: {type: NODE_AFFINITY, node: b}}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--address", c.address(), "--temp-dir",
                     c.root(), "--out", (dir / "out").string(), "--progress"},
                    milliseconds(60000));
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  EXPECT_NE(r.err.find("node b is dead"), std::string::npos) << r.err;
  const auto rows = Rows(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 5u) << ReadAll(dir / "out" / "tasks.csv");
  for (int t = 0; t < 2; ++t) {
    EXPECT_EQ(rows[2 * t].task_id, std::to_string(t));
    EXPECT_EQ(rows[2 * t].attempt, "0");
    EXPECT_EQ(rows[2 * t].node, "b");
    EXPECT_EQ(rows[2 * t].state, "failed");
    EXPECT_EQ(rows[2 * t + 1].attempt, "1");
    EXPECT_EQ(rows[2 * t + 1].node, "a");
    EXPECT_EQ(rows[2 * t + 1].state, "finished");
  }
  EXPECT_EQ(rows[4].state, "canceled");
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  EXPECT_EQ(summary["tasks"]["finished"], 2);
  EXPECT_EQ(summary["tasks"]["canceled"], 1);
  // The head's task table: one row per attempt, the dead node's marked failed.
  json tasks;
  auto has = [&](const std::string& suffix, const std::string& state, const std::string& node,
                 const std::string& error) {
    for (const auto& t : tasks) {
      const std::string id = t["task_id"];
      if (id.size() >= suffix.size() &&
          id.compare(id.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          t["state"] == state && t["node_id"] == node &&
          t["error"].get<std::string>().find(error) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(Eventually([&] {
    tasks = json::parse(c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()}).out,
                        nullptr, false);
    return tasks.is_array() && has("-t0", "FAILED", "b", "node b died") &&
           has("-t0.a1", "FINISHED", "a", "") && has("-t1.a1", "FINISHED", "a", "") &&
           has("-t2", "CANCELED", "a", "node b is dead");
  })) << tasks.dump();
  // The same for a one-off task: hard affinity to the dead node is canceled, with the reason.
  auto pinned =
      c.Orrery({"task", "run", "--temp-dir", c.root(), "--strategy", "node:b", "--", "true"});
  EXPECT_NE(pinned.exit_code, 0);
  EXPECT_NE(pinned.err.find("node b is dead"), std::string::npos) << pinned.err;
}

// --local: crash stops the in-process node daemon, recover starts it again; a task running on
// it is retried elsewhere, and a task submitted after the recover can run there again.
TEST(LiveRunTest, LocalCrashAndRecover) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "recover.yaml";
  std::ofstream(scenario) << R"(name: recover-live
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
    - {id: n1, resources: {CPU: 2}}
failures:
  - {at: 500ms, node: n1, action: crash}
  - {at: 1500ms, node: n1, action: recover}
workload:
  tasks:
    - {name: hit, count: 1, duration: 1500ms, max_retries: 2,
       strategy: {type: NODE_AFFINITY, node: n1, soft: true}}
    - {name: fragile, count: 1, duration: 1500ms, max_retries: 0,
       strategy: {type: NODE_AFFINITY, node: n1, soft: true}}
    - {name: later, count: 1, start: 4s, duration: 100ms, strategy: {type: NODE_AFFINITY, node: n1}}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--temp-dir", c.root(), "--out",
                     (dir / "out").string(), "--progress"},
                    milliseconds(60000));
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  const auto rows = Rows(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 4u) << ReadAll(dir / "out" / "tasks.csv") << r.err;
  EXPECT_EQ(rows[0].node, "n1");
  EXPECT_EQ(rows[0].state, "failed");
  EXPECT_EQ(rows[1].attempt, "1");
  EXPECT_EQ(rows[1].node, "n0");
  EXPECT_EQ(rows[1].state, "finished");
  EXPECT_EQ(rows[2].task_id, "1");
  EXPECT_EQ(rows[2].state, "failed") << "max_retries 0: no second attempt";
  EXPECT_EQ(rows[3].node, "n1") << "the recovered node runs tasks again";
  EXPECT_EQ(rows[3].state, "finished");
}

}  // namespace
}  // namespace orrery::live

// ---- placement groups -------------------------------------------------------------------------

namespace orrery::live {
namespace {
using namespace test;  // NOLINT: the fixture

v1::CreatePlacementGroupRequest Group(const std::string& id, const std::string& strategy,
                                      const std::vector<int64_t>& cpus_per_bundle) {
  v1::CreatePlacementGroupRequest r;
  r.set_group_id(id);
  r.set_strategy(strategy);
  for (int64_t cpus : cpus_per_bundle) (*r.add_bundles()->mutable_raw())["CPU"] = cpus * 10000;
  return r;
}

// Waits until the group is in `state`; returns its last info.
v1::PlacementGroupInfo AwaitGroup(HeadClient& head, const std::string& id,
                                  v1::PlacementGroupState state) {
  v1::PlacementGroupInfo info;
  Eventually(
      [&] {
        auto g = head.GetPlacementGroup(id);
        if (g.ok()) info = *g;
        return g.ok() && g->state() == state;
      },
      milliseconds(10000));
  return info;
}

// Every node's available CPU equals its total CPU, and no bundle resource is left in any total.
bool AllNodesFull(LiveCluster& c, const std::map<std::string, double>& cpus) {
  json nodes = c.Nodes();
  if (!nodes.is_array() || nodes.size() != cpus.size()) return false;
  for (const auto& n : nodes) {
    const std::string id = n.value("node_id", "");
    if (n["available"].value("CPU", -1.0) != cpus.at(id)) return false;
    for (const auto& [name, q] : n["total"].items()) {
      if (name.find("_group_") != std::string::npos) return false;
    }
    for (const auto& [name, q] : n["available"].items()) {
      if (name.find("_group_") != std::string::npos) return false;
      if (n["total"].value(name, -1.0) != q.get<double>()) return false;
    }
  }
  return true;
}

// STRICT_SPREAD puts two bundles on two distinct nodes, commits them (the nodes then expose the
// bundle resources), and removing the group gives every resource back.
TEST(LivePlacementGroupTest, StrictSpreadUsesDistinctNodesAndRemovalReturnsAll) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("c", {"--num-cpus", "2"}).exit_code, 0);
  HeadClient head(c.address(), c.Token());
  ASSERT_TRUE(Eventually([&] { return c.Nodes().size() == 3; }));
  auto created = head.CreatePlacementGroup(Group("g1", "STRICT_SPREAD", {1, 1}));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto g = AwaitGroup(head, "g1", v1::PLACEMENT_GROUP_STATE_CREATED);
  ASSERT_EQ(g.state(), v1::PLACEMENT_GROUP_STATE_CREATED) << g.DebugString();
  ASSERT_EQ(g.bundle_nodes_size(), 2);
  EXPECT_NE(g.bundle_nodes(0), g.bundle_nodes(1));
  // The bundles' nodes expose the committed bundle resources and have 1 CPU reserved.
  json n0;
  ASSERT_TRUE(Eventually([&] {
    n0 = c.Node(g.bundle_nodes(0));
    return n0["total"].value("CPU_group_0_g1", 0.0) == 1.0 &&
           n0["available"].value("CPU", -1.0) == 1.0;
  })) << n0.dump();
  EXPECT_EQ(n0["total"].value("CPU_group_g1", 0.0), 1.0);
  EXPECT_TRUE(Eventually(
      [&] { return c.Node(g.bundle_nodes(1))["total"].value("CPU_group_1_g1", 0.0) == 1.0; }));
  // Duplicate ids are refused; lists show the group.
  EXPECT_FALSE(head.CreatePlacementGroup(Group("g1", "PACK", {1})).ok());
  auto list = head.ListPlacementGroups();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->groups_size(), 1);
  auto cli = c.Orrery({"list", "placement-groups", "--format", "json", "--temp-dir", c.root()});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  json groups = json::parse(cli.out, nullptr, false);
  ASSERT_TRUE(groups.is_array() && groups.size() == 1) << cli.out;
  EXPECT_EQ(groups[0]["group_id"], "g1");
  EXPECT_EQ(groups[0]["state"], "created");
  EXPECT_EQ(groups[0]["strategy"], "STRICT_SPREAD");
  // Removal returns everything, bundle resources included.
  ASSERT_TRUE(head.RemovePlacementGroup("g1").ok());
  EXPECT_EQ(AwaitGroup(head, "g1", v1::PLACEMENT_GROUP_STATE_REMOVED).state(),
            v1::PLACEMENT_GROUP_STATE_REMOVED);
  EXPECT_TRUE(Eventually([&] {
    return AllNodesFull(c, {{"a", 2}, {"b", 2}, {"c", 2}});
  })) << c.Nodes().dump();
  EXPECT_FALSE(head.GetPlacementGroup("nope").ok());
  EXPECT_FALSE(head.RemovePlacementGroup("nope").ok());
}

// A group that cannot fit now fails and retries with a backoff; a prepare that fails on one node
// gives back what the other node prepared; once resources free up, the group is created. After
// removing everything, every node is back to full.
TEST(LivePlacementGroupTest, GroupThatDoesNotFitRetriesUntilResourcesFree) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "4"}).exit_code, 0);
  HeadClient head(c.address(), c.Token());
  ASSERT_TRUE(Eventually([&] { return c.Nodes().size() == 2; }));
  // g1 takes 2 of b's 4 CPUs (most headroom). g2 is placed on the same (stale) view: its 2-CPU
  // bundle on a prepares, its 3-CPU bundle on b cannot, so a's reservation is cancelled.
  ASSERT_TRUE(head.CreatePlacementGroup(Group("g1", "PACK", {2})).ok());
  ASSERT_TRUE(head.CreatePlacementGroup(Group("g2", "STRICT_SPREAD", {2, 3})).ok());
  auto g1 = AwaitGroup(head, "g1", v1::PLACEMENT_GROUP_STATE_CREATED);
  ASSERT_EQ(g1.state(), v1::PLACEMENT_GROUP_STATE_CREATED) << g1.DebugString();
  EXPECT_EQ(g1.bundle_nodes(0), "b");
  v1::PlacementGroupInfo g2;
  ASSERT_TRUE(Eventually(
      [&] {
        auto g = head.GetPlacementGroup("g2");
        if (g.ok()) g2 = *g;
        return g.ok() && g->state() == v1::PLACEMENT_GROUP_STATE_FAILED;
      },
      milliseconds(10000)))
      << g2.DebugString();
  // It keeps failing (and retrying) while b is taken.
  std::this_thread::sleep_for(milliseconds(500));
  auto still = head.GetPlacementGroup("g2");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state(), v1::PLACEMENT_GROUP_STATE_FAILED) << still->DebugString();
  EXPECT_FALSE(g2.reason().empty());
  // Nothing of g2 stays on a: its availability returns to full between attempts.
  EXPECT_TRUE(Eventually([&] { return c.Node("a")["available"].value("CPU", -1.0) == 2.0; }));
  // Freeing b lets g2 in.
  ASSERT_TRUE(head.RemovePlacementGroup("g1").ok());
  g2 = AwaitGroup(head, "g2", v1::PLACEMENT_GROUP_STATE_CREATED);
  ASSERT_EQ(g2.state(), v1::PLACEMENT_GROUP_STATE_CREATED) << g2.DebugString();
  EXPECT_EQ(g2.bundle_nodes(0), "a");
  EXPECT_EQ(g2.bundle_nodes(1), "b");
  ASSERT_TRUE(head.RemovePlacementGroup("g2").ok());
  EXPECT_TRUE(Eventually([&] {
    return AllNodesFull(c, {{"a", 2}, {"b", 4}});
  })) << c.Nodes().dump();
}

// `live run` with a placement group: the group is created at its time, every task of the group
// runs on its bundle's node (STRICT_SPREAD: two distinct nodes), and the run removes the group
// afterwards (no bundle resource is left on any node).
TEST(LivePlacementGroupTest, LiveRunPutsGroupTasksOnTheBundlesNodes) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "pg.yaml";
  std::ofstream(scenario) << R"(name: pg-live
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
    - {id: n1, resources: {CPU: 2}}
    - {id: n2, resources: {CPU: 2}}
workload:
  placement_groups:
    - {name: g, strategy: STRICT_SPREAD, bundles: [{CPU: 1}, {CPU: 1}], at: 100ms}
  tasks:
    - {name: b0, count: 2, duration: 100ms, resources: {CPU: 1}, placement_group: g, bundle: 0}
    - {name: b1, count: 2, duration: 100ms, resources: {CPU: 1}, placement_group: g, bundle: 1}
    - {name: any, count: 2, duration: 100ms, resources: {CPU: 1}, placement_group: g}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--out", (dir / "out").string(),
                     "--temp-dir", c.root()},
                    milliseconds(60000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["tasks"]["finished"], 6) << r.out << r.err;
  const std::string tasks = ReadAll(dir / "out" / "tasks.csv");
  auto nodes = NodeByTask(tasks);
  ASSERT_EQ(nodes.size(), 6u) << tasks;
  // Tasks are in file order: b0, b0, b1, b1, any, any.
  EXPECT_EQ(nodes["0"], nodes["1"]) << tasks;
  EXPECT_EQ(nodes["2"], nodes["3"]) << tasks;
  EXPECT_NE(nodes["0"], nodes["2"]) << tasks;
  for (const char* i : {"4", "5"}) {
    EXPECT_TRUE(nodes[i] == nodes["0"] || nodes[i] == nodes["2"]) << tasks;
  }
}

// The status of one call made with `token` ("" for none).
using TokenCall = std::function<grpc::Status(const std::string& token)>;

// A fresh context carrying `token` ("" for none), with a deadline so that no call can hang.
std::unique_ptr<grpc::ClientContext> TokenContext(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) AttachToken(ctx.get(), token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

// A unary call of `method` with `req`.
template <typename Stub, typename Req, typename Reply>
TokenCall Unary(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Reply*),
                Req req = {}) {
  return [stub, method, req](const std::string& token) {
    Reply reply;
    return (stub->*method)(TokenContext(token).get(), req, &reply);
  };
}

// A server-streaming call of `method` with `req`, read to its end.
template <typename Stub, typename Req, typename Msg>
TokenCall Streaming(Stub* stub,
                    std::unique_ptr<grpc::ClientReader<Msg>> (Stub::*method)(grpc::ClientContext*,
                                                                             const Req&),
                    Req req = {}) {
  return [stub, method, req](const std::string& token) {
    auto ctx = TokenContext(token);
    auto reader = (stub->*method)(ctx.get(), req);
    Msg msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  };
}

// Every handler refuses a call without the right token before it looks at the request (bad input
// without the token is UNAUTHENTICATED, and a refused Shutdown stops nothing); with the token the
// same input gets the handler's own answer. Pins the shared handler shape (live/rpc/rpc_handler.h).
TEST(LiveTest, HandlersCheckTheTokenBeforeTheRequest) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  const std::string node_address = c.NodeAddress("a");
  ASSERT_FALSE(node_address.empty());
  auto head_stub = v1::HeadService::NewStub(
      grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials()));
  auto node_stub = v1::NodeService::NewStub(
      grpc::CreateChannel(node_address, grpc::InsecureChannelCredentials()));
  using Head = v1::HeadService::Stub;
  using Node = v1::NodeService::Stub;
  Head* head = head_stub.get();
  Node* node = node_stub.get();
  v1::RegisterNodeRequest reg;  // no address
  reg.set_node_id("zz");
  v1::HeartbeatRequest beat;
  beat.set_node_id("nope");
  v1::GetPlacementGroupRequest get_pg;
  get_pg.set_group_id("nope");
  v1::ReturnWorkerLeaseRequest ret;
  ret.set_task_id("nope");
  v1::CancelWorkerLeaseRequest cancel;
  cancel.set_task_id("nope");
  v1::DownloadPackageRequest download;
  download.set_sha256("not-a-hash");
  v1::ReattachTaskRequest reattach;
  reattach.set_task_id("nope");
  v1::StopTaskRequest stop;
  stop.set_task_id("nope");
  struct Case {
    std::string name;
    TokenCall call;
    // The answer with the right token (its code, and a part of its message); none: not called
    // with the token (the stream would not end).
    std::optional<grpc::StatusCode> with_token;
    std::string message;
  };
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const grpc::StatusCode kNotFound = grpc::StatusCode::NOT_FOUND;
  const grpc::StatusCode kOk = grpc::StatusCode::OK;
  const std::vector<Case> cases = {
      {"head Ready", Unary(head, &Head::Ready), kOk, ""},
      {"RegisterNode", Unary(head, &Head::RegisterNode, reg), kInvalid, ""},
      {"Heartbeat", Unary(head, &Head::Heartbeat, beat), kNotFound, "node nope is not registered"},
      {"CreatePlacementGroup", Unary(head, &Head::CreatePlacementGroup), kInvalid,
       "group_id: empty"},
      {"GetPlacementGroup", Unary(head, &Head::GetPlacementGroup, get_pg), kNotFound,
       "no placement group nope"},
      {"SubmitJob", Unary(head, &Head::SubmitJob), kInvalid, "entrypoint: empty"},
      {"GetAutoscalerStatus", Unary(head, &Head::GetAutoscalerStatus), kOk, ""},
      {"PublishLogs", Unary(head, &Head::PublishLogs), kOk, ""},
      {"WatchClusterView", Streaming(head, &Head::WatchClusterView), std::nullopt, ""},
      {"SubscribeLogs", Streaming(head, &Head::SubscribeLogs), std::nullopt, ""},
      {"JobLogs", Streaming(head, &Head::JobLogs), std::nullopt, ""},
      {"DownloadPackage", Streaming(head, &Head::DownloadPackage, download), kInvalid, "sha256"},
      {"PrepareBundle", Unary(node, &Node::PrepareBundle), kInvalid, ""},
      {"PutObject", Unary(node, &Node::PutObject), kInvalid,
       "object_id: expected 1..200 characters"},
      {"ReturnWorkerLease", Unary(node, &Node::ReturnWorkerLease, ret), kNotFound,
       "no unused lease for task nope"},
      {"CancelWorkerLease", Unary(node, &Node::CancelWorkerLease, cancel), kOk, ""},
      {"GetRuntimeEnvCacheStats", Unary(node, &Node::GetRuntimeEnvCacheStats), kOk, ""},
      {"FetchObject", Streaming(node, &Node::FetchObject), kInvalid, "object_id"},
      {"AttachWorker", Streaming(node, &Node::AttachWorker), kInvalid,
       "code_library: not an absolute path"},
      {"ReattachTask", Streaming(node, &Node::ReattachTask, reattach), kNotFound,
       "no detachable task nope"},
      {"StopTask", Unary(node, &Node::StopTask, stop), kOk, ""},
      // Last: a refused Shutdown must leave both daemons answering (checked below).
      {"head Shutdown", Unary(head, &Head::Shutdown), std::nullopt, ""},
      {"node Shutdown", Unary(node, &Node::Shutdown), std::nullopt, ""},
  };
  for (const Case& k : cases) {
    for (const std::string bad : {"", "wrong"}) {
      grpc::Status s = k.call(bad);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << k.name << " with token '" << bad << "': " << s.error_message();
    }
    if (!k.with_token) continue;
    grpc::Status s = k.call(c.Token());
    EXPECT_EQ(s.error_code(), *k.with_token) << k.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(k.message), std::string::npos)
        << k.name << ": " << s.error_message();
  }
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(Unary(head, &Head::Ready)(c.Token()).ok());
  EXPECT_TRUE(Unary(node, &Node::Ready)(c.Token()).ok());
}

// Nodes that exist only as the head's RPCs (registered, heartbeating task records by hand): for
// tests of the head's task table against reports in a chosen order.
class RawNodes {
 public:
  explicit RawNodes(LiveCluster& c)
      : token_(c.Token()),
        stub_(v1::HeadService::NewStub(
            grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials()))) {}
  grpc::Status Register(const std::string& id) {
    v1::RegisterNodeRequest reg;
    reg.set_node_id(id);
    reg.set_address("127.0.0.1:1");  // never called: no leases or bundles go to it
    (*reg.mutable_total()->mutable_raw())["CPU"] = 10000;
    v1::RegisterNodeReply reply;
    return Call(&v1::HeadService::Stub::RegisterNode, reg, &reply);
  }
  // One heartbeat at a time, as a node sends them.
  grpc::Status Beat(const std::string& node, const std::vector<v1::TaskRecord>& updates) {
    std::lock_guard<std::mutex> l(mu_);
    v1::HeartbeatRequest req;
    req.set_node_id(node);
    for (const auto& t : updates) *req.add_task_updates() = t;
    v1::HeartbeatReply reply;
    return Call(&v1::HeadService::Stub::Heartbeat, req, &reply);
  }

 private:
  template <typename Method, typename Req, typename Reply>
  grpc::Status Call(Method method, const Req& req, Reply* reply) {
    grpc::ClientContext ctx;
    AttachToken(&ctx, token_);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ((*stub_).*method)(&ctx, req, reply);
  }
  std::string token_;
  std::unique_ptr<v1::HeadService::Stub> stub_;
  std::mutex mu_;
};

// A task's reports come from every node its lease request visited, and a node re-sends what its
// heartbeats could not deliver once the head answers again (after a head restart). A stale
// "pending" record from the node the request left, arriving after the node it moved to reported
// the task ended, must not reopen it (live.chaos.head once ended with such a record stuck).
// A later request of the same task (a new attempt, or asked for after the end) still shows.
TEST(LiveTest, AStaleRecordResentAfterTheTaskEndedElsewhereDoesNotReopenIt) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  RawNodes raw(c);
  ASSERT_TRUE(raw.Register("x").ok());
  ASSERT_TRUE(raw.Register("y").ok());
  auto record = [](const std::string& task, const std::string& node, v1::TaskState state,
                   int attempt, int64_t submit_ms, int64_t end_ms) {
    v1::TaskRecord t;
    t.set_task_id(task);
    t.set_name("stale-test");
    t.set_node_id(node);
    t.set_state(state);
    t.set_attempt(attempt);
    t.set_submit_unix_ms(submit_ms);
    t.set_end_unix_ms(end_ms);
    return t;
  };
  auto beat = [&](const std::string& node, const std::vector<v1::TaskRecord>& updates) {
    return raw.Beat(node, updates);
  };
  auto state_of = [&](const std::string& task) {
    HeadClient head(c.address(), c.Token());
    auto list = head.ListTasks();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    for (const auto& t : list->tasks()) {
      if (t.task_id() == task) return std::make_pair(t.state(), t.node_id());
    }
    return std::make_pair(v1::TASK_STATE_UNSPECIFIED, std::string());
  };
  // t1 ended on y (asked for on x at 1000, spilled to y, finished at 3000); x's stale pending
  // record arrives afterwards.
  ASSERT_TRUE(beat("y", {record("t1", "y", v1::TASK_STATE_FINISHED, 0, 2000, 3000)}).ok());
  ASSERT_TRUE(beat("x", {record("t1", "x", v1::TASK_STATE_PENDING, 0, 1000, 0)}).ok());
  EXPECT_EQ(state_of("t1"), std::make_pair(v1::TASK_STATE_FINISHED, std::string("y")));
  // t2 failed on y; the driver retried it on x: attempt 1 shows, then its end.
  ASSERT_TRUE(beat("y", {record("t2", "y", v1::TASK_STATE_FAILED, 0, 2000, 3000)}).ok());
  ASSERT_TRUE(beat("x", {record("t2", "x", v1::TASK_STATE_PENDING, 1, 2500, 0)}).ok());
  EXPECT_EQ(state_of("t2"), std::make_pair(v1::TASK_STATE_PENDING, std::string("x")));
  ASSERT_TRUE(beat("x", {record("t2", "x", v1::TASK_STATE_FINISHED, 1, 2500, 4000)}).ok());
  EXPECT_EQ(state_of("t2"), std::make_pair(v1::TASK_STATE_FINISHED, std::string("x")));
  // t3 was canceled on y and asked for again on x afterwards: the new request shows.
  ASSERT_TRUE(beat("y", {record("t3", "y", v1::TASK_STATE_CANCELED, 0, 2000, 3000)}).ok());
  ASSERT_TRUE(beat("x", {record("t3", "x", v1::TASK_STATE_PENDING, 0, 3500, 0)}).ok());
  EXPECT_EQ(state_of("t3"), std::make_pair(v1::TASK_STATE_PENDING, std::string("x")));
}
// A lease request queued at a (reported pending there) that a spills to b once b frees, and that
// its driver then no longer needs (it never asks b): the head's row followed the request to b and
// ends CANCELED once b has not reported it within the time b would take to be declared dead.
// Before, a erased its record silently and the row stayed pending at a for good (live.chaos.head
// ended with two such records, spilled 10 and 17 times).
TEST(LiveTest, ARowFollowsASpilledRequestAndEndsWhenItsDriverNeverAsksThere) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1", "--health-check-period-ms", "200"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto on_a = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("on-a", 1));
  ASSERT_TRUE(on_a.ok()) << on_a.status().ToString();
  auto on_b = AcquireLease(c.NodeAddress("b"), c.Token(), CpuLease("on-b", 1));
  ASSERT_TRUE(on_b.ok()) << on_b.status().ToString();
  ASSERT_EQ(on_a->node_id, "a");
  ASSERT_EQ(on_b->node_id, "b");
  // a's view must show b full (b's heartbeat, then the head's broadcast), or a spills at once.
  ASSERT_TRUE(Eventually([&] { return c.Node("b")["available"].value("CPU", 0.0) == 0.0; }))
      << c.Node("b").dump();
  std::this_thread::sleep_for(milliseconds(500));
  HeadClient head(c.address(), c.Token());
  auto row = [&](const std::string& task) {
    v1::TaskRecord none;
    auto list = head.ListTasks();
    if (!list.ok()) return none;
    for (const auto& t : list->tasks()) {
      if (t.task_id() == task) return t;
    }
    return none;
  };
  AcquireOptions o;
  o.first_queue_timeout = o.requeue_timeout = milliseconds(20000);  // held until it moves
  std::atomic<int> checks{0};
  o.still_needed = [&] { return ++checks < 2; };  // asked at a; not needed after the spillback
  std::promise<StatusOr<AcquiredLease>> got;
  std::thread t = AcquireLeaseAsync(c.NodeAddress("a"), c.Token(), CpuLease("moved", 1), o,
                                    [&](StatusOr<AcquiredLease> l) { got.set_value(l); });
  EXPECT_TRUE(Eventually([&] {
    const auto r = row("moved");
    return r.state() == v1::TASK_STATE_PENDING && r.node_id() == "a";
  })) << row("moved").DebugString();
  EXPECT_TRUE(NodeClient(on_b->address, c.Token()).ReturnWorkerLease("on-b").ok());
  auto moved = got.get_future().get();
  t.join();
  EXPECT_EQ(moved.status().code(), StatusCode::kAborted) << moved.status().ToString();
  EXPECT_EQ(checks.load(), 2);  // the walk stopped after a's spillback, before asking b
  EXPECT_TRUE(Eventually([&] { return row("moved").state() == v1::TASK_STATE_CANCELED; }))
      << row("moved").DebugString();
  const auto r = row("moved");
  EXPECT_EQ(r.node_id(), "b");
  EXPECT_EQ(r.spillbacks(), 1);
  EXPECT_NE(r.error().find("spilled to node b, which never reported it"), std::string::npos)
      << r.error();
  EXPECT_TRUE(NodeClient(on_a->address, c.Token()).ReturnWorkerLease("on-a").ok());
}

// The head's side of a moved record (raw heartbeats of two registered nodes, kept alive): the row
// follows the request; the node it went to reporting first (even the end) wins over a late moved
// record; a row its target never reports ends CANCELED after the dead-node time, and a report from
// the target afterwards (a late ask) reopens it.
TEST(LiveTest, AMovedRecordNeverOverridesTheNodeTheRequestWentTo) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1", "--health-check-period-ms", "200"}).exit_code, 0);
  RawNodes raw(c);
  ASSERT_TRUE(raw.Register("x").ok());
  ASSERT_TRUE(raw.Register("y").ok());
  auto beat = [&](const std::string& node, const std::vector<v1::TaskRecord>& updates) {
    return raw.Beat(node, updates);
  };
  std::atomic<bool> stop{false};
  std::thread alive([&] {  // x and y stay alive (declared dead after 5 x 200 ms of silence)
    while (!stop) {
      (void)beat("x", {});
      (void)beat("y", {});
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  auto record = [](const std::string& task, const std::string& node, v1::TaskState state,
                   const std::string& moved_to = "") {
    v1::TaskRecord t;
    t.set_task_id(task);
    t.set_name("moved-test");
    t.set_node_id(node);
    t.set_state(state);
    t.set_submit_unix_ms(1000);
    t.set_spillbacks(moved_to.empty() ? 0 : 1);
    t.set_moved_to_node_id(moved_to);
    return t;
  };
  HeadClient head(c.address(), c.Token());
  auto row = [&](const std::string& task) {
    auto list = head.ListTasks();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    for (const auto& t : list->tasks()) {
      if (t.task_id() == task) return std::make_pair(t.state(), t.node_id());
    }
    return std::make_pair(v1::TASK_STATE_UNSPECIFIED, std::string());
  };
  using P = std::pair<v1::TaskState, std::string>;
  // m1: pending on x, moved to y, granted there.
  ASSERT_TRUE(beat("x", {record("m1", "x", v1::TASK_STATE_PENDING)}).ok());
  ASSERT_TRUE(beat("x", {record("m1", "x", v1::TASK_STATE_PENDING, "y")}).ok());
  EXPECT_EQ(row("m1"), P(v1::TASK_STATE_PENDING, "y"));
  ASSERT_TRUE(beat("y", {record("m1", "y", v1::TASK_STATE_LEASED)}).ok());
  EXPECT_EQ(row("m1"), P(v1::TASK_STATE_LEASED, "y"));
  // m2: y reported it finished before x's moved record arrived.
  ASSERT_TRUE(beat("x", {record("m2", "x", v1::TASK_STATE_PENDING)}).ok());
  ASSERT_TRUE(beat("y", {record("m2", "y", v1::TASK_STATE_FINISHED)}).ok());
  ASSERT_TRUE(beat("x", {record("m2", "x", v1::TASK_STATE_PENDING, "y")}).ok());
  EXPECT_EQ(row("m2"), P(v1::TASK_STATE_FINISHED, "y"));
  // m3: moved to y, which never reports it: CANCELED after about 1 s; y asked late: reopened.
  ASSERT_TRUE(beat("x", {record("m3", "x", v1::TASK_STATE_PENDING, "y")}).ok());
  EXPECT_EQ(row("m3"), P(v1::TASK_STATE_PENDING, "y"));
  EXPECT_TRUE(Eventually([&] { return row("m3").first == v1::TASK_STATE_CANCELED; }));
  EXPECT_EQ(row("m1"), P(v1::TASK_STATE_LEASED, "y"));  // reported: no expiry
  ASSERT_TRUE(beat("y", {record("m3", "y", v1::TASK_STATE_PENDING)}).ok());
  EXPECT_EQ(row("m3"), P(v1::TASK_STATE_PENDING, "y"));
  // m4: moved to y and then on to x (y's moved record): x's report ends the transit; a second
  // expiry of the first move does not cancel it.
  ASSERT_TRUE(beat("x", {record("m4", "x", v1::TASK_STATE_PENDING, "y")}).ok());
  ASSERT_TRUE(beat("y", {record("m4", "y", v1::TASK_STATE_PENDING, "x")}).ok());
  EXPECT_EQ(row("m4"), P(v1::TASK_STATE_PENDING, "x"));
  ASSERT_TRUE(beat("x", {record("m4", "x", v1::TASK_STATE_PENDING)}).ok());
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(row("m4"), P(v1::TASK_STATE_PENDING, "x"));
  // live run (owner lease reuse): two leases asked for under task m5's name; lease l1 ran it on
  // x; lease l2 was returned unused on x, and lease l3 moved on from x to y. The task's end
  // stays (found driving a 3,000-task burst by hand: 12 finished tasks showed CANCELED).
  auto leased = [&](const std::string& lease, v1::TaskState state, const std::string& to = "") {
    v1::TaskRecord t = record(lease, "x", state, to);
    t.set_display_task_id("m5");
    return t;
  };
  ASSERT_TRUE(beat("x", {leased("l1", v1::TASK_STATE_FINISHED)}).ok());
  ASSERT_TRUE(beat("x", {leased("l2", v1::TASK_STATE_CANCELED)}).ok());
  ASSERT_TRUE(beat("x", {leased("l3", v1::TASK_STATE_PENDING, "y")}).ok());
  EXPECT_EQ(row("m5"), P(v1::TASK_STATE_FINISHED, "x"));
  stop = true;
  alive.join();
}
// A spillback target that died before the head declared it dead (here: never within the test)
// still looks free in the entry node's view, so the entry keeps sending the request there. Each
// unreachable hop is the target turning the request down (back to the entry after a backoff),
// not one more spillback in a row: before, the walk failed after 16 quick hops ("more than 16
// spillbacks in a row"; live.chaos.head lost 432 calls so). Once the entry frees a CPU it grants.
TEST(LiveTest, AnUnreachableSpillTargetDoesNotEndTheRequest) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1", "--health-check-period-ms", "20000"}).exit_code,
            0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto on_a = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("on-a", 1));
  ASSERT_TRUE(on_a.ok()) << on_a.status().ToString();
  ASSERT_EQ(on_a->node_id, "a");
  const int b_pid = c.Node("b").value("pid", 0);
  ASSERT_GT(b_pid, 0);
  ASSERT_EQ(::kill(b_pid, SIGKILL), 0);
  AcquireOptions o;
  o.max_unreachable = 1000;
  o.unreachable_pause = milliseconds(50);
  std::atomic<int> asked{0};
  o.entry = [&](int) {
    ++asked;
    return c.NodeAddress("a");
  };
  std::promise<StatusOr<AcquiredLease>> got;
  auto fut = got.get_future();
  std::thread t = AcquireLeaseAsync(c.NodeAddress("a"), c.Token(), CpuLease("walker", 1), o,
                                    [&](StatusOr<AcquiredLease> l) { got.set_value(l); });
  // Well past 16 hops to b (each: a spills, b refuses the connection, a backoff of <= 0.25 s);
  // before, the walk ended at the 16th.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (asked.load() <= 20 && std::chrono::steady_clock::now() < until &&
         fut.wait_for(milliseconds(100)) == std::future_status::timeout) {
  }
  EXPECT_GT(asked.load(), 20);
  EXPECT_EQ(fut.wait_for(milliseconds(0)), std::future_status::timeout);
  EXPECT_TRUE(NodeClient(on_a->address, c.Token()).ReturnWorkerLease("on-a").ok());
  auto walker = fut.get();
  t.join();
  ASSERT_TRUE(walker.ok()) << walker.status().ToString();
  EXPECT_EQ(walker->node_id, "a");
  EXPECT_TRUE(NodeClient(walker->address, c.Token()).ReturnWorkerLease("walker").ok());
}
// live run's owner reuses a lease as a Ray driver does: with keep_lease the node ends the task's
// record but keeps the lease granted, its CPU held, for the next task pushed on it (no new
// request, so no other request can take the CPU in between); the owner's ReturnWorkerLease frees
// it, without a row for the lease itself. Without keep_lease the lease ends with the workload.
TEST(LiveWorkloadTest, AKeptLeaseHoldsItsResourcesBetweenTasksUntilReturned) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  auto lease = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("kept-lease", 1));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  auto run = [&](const std::string& display, bool keep) {
    v1::RunTaskRequest r;
    r.set_task_id("kept-lease");
    r.set_display_task_id(display);
    r.set_keep_lease(keep);
    r.mutable_workload()->set_kind(v1::Workload::SLEEP);
    r.mutable_workload()->set_duration_ms(20);
    return NodeClient(lease->address, c.Token()).RunTask(r, nullptr, milliseconds(20000));
  };
  auto cpu_free = [&] { return c.Node("a")["available"].value("CPU", 0.0); };
  for (const char* task : {"kept-1", "kept-2", "kept-3"}) {
    auto exit = run(task, true);
    ASSERT_TRUE(exit.ok()) << task << ": " << exit.status().ToString();
    EXPECT_EQ(exit->exit_code(), 0) << task;
  }
  // Still held after the last task (well past a heartbeat), and no other request gets the CPU.
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(cpu_free(), 0.0);
  AcquireOptions once;
  once.first_queue_timeout = milliseconds(100);
  once.still_needed = [n = 0]() mutable { return ++n < 2; };
  EXPECT_EQ(AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("other", 1), once).status().code(),
            StatusCode::kAborted);
  (void)NodeClient(c.NodeAddress("a"), c.Token()).CancelWorkerLease("other", "test over");
  ASSERT_TRUE(NodeClient(lease->address, c.Token()).ReturnWorkerLease("kept-lease").ok());
  EXPECT_TRUE(Eventually([&] { return cpu_free() == 1.0; }));
  // The table shows the three tasks, each FINISHED on a, and no row for the lease.
  HeadClient head(c.address(), c.Token());
  std::map<std::string, v1::TaskState> rows;
  ASSERT_TRUE(Eventually([&] {
    rows.clear();
    auto list = head.ListTasks();
    if (!list.ok()) return false;
    for (const auto& t : list->tasks()) {
      if (t.task_id() != "other") rows[t.task_id()] = t.state();
    }
    return rows.size() == 3 && rows.count("kept-3") == 1 &&
           rows["kept-3"] == v1::TASK_STATE_FINISHED;
  }));
  EXPECT_EQ(rows, (std::map<std::string, v1::TaskState>{{"kept-1", v1::TASK_STATE_FINISHED},
                                                        {"kept-2", v1::TASK_STATE_FINISHED},
                                                        {"kept-3", v1::TASK_STATE_FINISHED}}));
  // Without keep_lease the lease ends with its task: a second run on it is refused.
  auto plain = AcquireLease(c.NodeAddress("a"), c.Token(), CpuLease("plain-lease", 1));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  v1::RunTaskRequest r;
  r.set_task_id("plain-lease");
  r.mutable_workload()->set_kind(v1::Workload::SLEEP);
  r.mutable_workload()->set_duration_ms(20);
  ASSERT_TRUE(NodeClient(plain->address, c.Token()).RunTask(r, nullptr, milliseconds(20000)).ok());
  EXPECT_EQ(NodeClient(plain->address, c.Token())
                .RunTask(r, nullptr, milliseconds(20000))
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Eventually([&] { return cpu_free() == 1.0; }));
}
}  // namespace
}  // namespace orrery::live
