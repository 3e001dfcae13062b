// The live autoscaler (live/head/autoscaler/autoscaler_loop.h): the config file loader, and real head and node
// daemons on loopback where the head launches and stops node daemons as the core planner decides.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "live/cli/autoscaler_cli.h"
#include "live/head/autoscaler/autoscaler_config.h"
#include "live/rpc/convert.h"
#include "live_cluster.h"

namespace orrery::live::test {
namespace {

fs::path WriteFile(const fs::path& dir, const std::string& name, const std::string& text) {
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

fs::path TestDir(const std::string& name) {
  return fs::path(::testing::TempDir()) / ("orrery_as_" + name + "_" + std::to_string(::getpid()));
}

// The value of the sample `name{labels}` in the Prometheus text at http://address/metrics, or -1.
double Metric(const std::string& address, const std::string& series) {
  const auto colon = address.rfind(':');
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
    if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) body.append(buf, n);
    }
  }
  ::close(fd);
  const auto at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + series.size() + 2));
}

// The head's /metrics address from the session's file_sd list.
std::string HeadMetrics(const LiveCluster& c) {
  auto s = LatestSession(c.root());
  if (!s.ok()) return "";
  auto text = ReadFileTrimmed(*s / "metrics" / "prometheus_targets.json");
  if (!text.ok()) return "";
  for (const auto& t : json::parse(*text, nullptr, false)) {
    if (t["labels"].value("orrery_role", "") == "head") return t["targets"][0];
  }
  return "";
}

// ---- the config file ----------------------------------------------------------------------------

TEST(AutoscalerConfig, LoadsNodeTypesAndClusterOptions) {
  const auto p = WriteFile(TestDir("cfg"), "ok.yaml", R"(node_types:
  - {name: cpu-2, resources: {CPU: 2, memory: 1GiB}, min_workers: 1, max_workers: 3}
  - {name: gpu-1, resources: {CPU: 4, GPU: 1}, labels: {accelerator: T4}, max_workers: 1, count: 1}
max_workers: 4
idle_timeout_s: 7
upscaling_speed: 2
period_s: 0.5
)");
  auto c = LoadAutoscalerConfig(p.string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->planner.node_types.size(), 2u);
  const auto& cpu = c->planner.node_types.at("cpu-2");
  EXPECT_EQ(cpu.min_workers, 1);
  EXPECT_EQ(cpu.max_workers, 3);
  EXPECT_EQ(cpu.resources.Get("memory"), Quantity::FromDouble(1073741824.0));
  EXPECT_EQ(c->planner.node_types.at("gpu-1").labels.at("accelerator"), "T4");
  EXPECT_EQ(c->planner.max_workers, 4);
  EXPECT_DOUBLE_EQ(c->planner.idle_timeout_s, 7);
  EXPECT_DOUBLE_EQ(c->planner.upscaling_speed, 2);
  EXPECT_DOUBLE_EQ(c->period_s, 0.5);
  EXPECT_EQ(c->initial.at("gpu-1"), 1);
}

TEST(AutoscalerConfig, ErrorsNameFileLineAndField) {
  const auto dir = TestDir("cfgbad");
  struct Case {
    std::string text, needle;
  };
  const std::vector<Case> cases = {
      {"node_types:\n  - {name: a, resources: {CPU: 2}}\n",
       ":2: node_types[0].max_workers: expected"},
      {"node_types:\n  - {name: a, resources: {CPU: two}, max_workers: 1}\n",
       ":2: node_types[0].resources.CPU: expected a quantity"},
      {"node_types:\n  - {name: a, resources: {CPU: 1}, max_workers: 1, min_workers: 2}\n",
       "node_types[0].min_workers: expected a whole number in [0, 1], got '2'"},
      {"node_types:\n  - {name: a, resources: {CPU: 1}, max_workers: 1}\nidle_timeout: 3\n",
       ":3: idle_timeout: unknown key"},
      {"node_types: []\n", ":1: node_types: expected a non-empty list"},
      {"node_types:\n  - {name: a, resources: {CPU: 1}, max_workers: 1, min_workers: 1}\n"
       "max_workers: 0\n",
       ":3: max_workers: expected a whole number in [1, 100000], got '0'"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto p = WriteFile(dir, "bad" + std::to_string(i) + ".yaml", cases[i].text);
    auto c = LoadAutoscalerConfig(p.string());
    ASSERT_FALSE(c.ok()) << cases[i].text;
    EXPECT_NE(c.status().message().find(p.string()), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find(cases[i].needle), std::string::npos)
        << c.status().message();
  }
  EXPECT_EQ(LoadAutoscalerConfig((dir / "missing.yaml").string()).status().code(),
            StatusCode::kNotFound);
}

// ---- live ---------------------------------------------------------------------------------------

constexpr const char* kTwoTypes = R"(node_types:
  - {name: cpu-2, resources: {CPU: 2}, max_workers: 2}
  - {name: gpu-1, resources: {CPU: 2, GPU: 1}, max_workers: 1}
max_workers: 3
idle_timeout_s: 60
period_s: 0.3
)";

class AutoscalerLive : public ::testing::Test {
 protected:
  // Starts a head (1 CPU, no GPU) with `config`.
  void StartWith(const std::string& config) {
    const auto p = WriteFile(fs::path(c_.root()).parent_path(), "autoscaler.yaml", config);
    auto r = c_.StartHead("head", {"--num-cpus", "1", "--num-gpus", "0", "--dashboard-port", "0",
                                   "--autoscaler-config", p.string()});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  v1::AutoscalerStatus Status() {
    auto s = GetAutoscalerStatus(c_.address(), c_.Token(), milliseconds(3000));
    return s.ok() ? *s : v1::AutoscalerStatus();
  }
  // Managed nodes of `type` in `state` ("" = any).
  int Count(const v1::AutoscalerStatus& s, const std::string& type, const std::string& state) {
    int n = 0;
    for (const auto& node : s.nodes()) {
      n += node.node_type() == type && (state.empty() || node.state() == state) ? 1 : 0;
    }
    return n;
  }
  RunResult Task(std::vector<std::string> resources, std::vector<std::string> cmd,
                 milliseconds timeout = milliseconds(40000)) {
    std::vector<std::string> a = {"task", "run", "--temp-dir", c_.root()};
    a.insert(a.end(), resources.begin(), resources.end());
    a.push_back("--");
    a.insert(a.end(), cmd.begin(), cmd.end());
    return c_.Orrery(a, timeout);
  }
  LiveCluster c_;
};

TEST_F(AutoscalerLive, CpuDemandLaunchesTheCpuTypeAndGpuDemandTheGpuType) {
  StartWith(kTwoTypes);
  EXPECT_EQ(Status().nodes_size(), 0) << "no demand, no min_workers: nothing launched";
  // 2 CPUs fit no node now (the head has 1): the planner picks cpu-2 (GPU types are avoided).
  auto r = Task({"--num-cpus", "2"}, {"sh", "-c", "echo ran"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ran"), std::string::npos);
  // (The status is as of the last round: a node that just registered turns running there.)
  EXPECT_TRUE(Eventually([&] { return Count(Status(), "cpu-2", "running") == 1; }));
  auto s = Status();
  EXPECT_EQ(Count(s, "gpu-1", ""), 0);
  EXPECT_EQ(c_.Node("cpu-2-0").value("labels", json::object()).value("node_type", ""), "cpu-2");
  // A GPU: only gpu-1 can hold it.
  r = Task({"--num-cpus", "1", "--num-gpus", "1"}, {"sh", "-c", "echo gpu=$CUDA_VISIBLE_DEVICES"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("gpu=0"), std::string::npos) << r.out;
  EXPECT_TRUE(Eventually([&] { return Count(Status(), "gpu-1", "running") == 1; }));
  s = Status();
  EXPECT_EQ(Count(s, "cpu-2", ""), 1);
  EXPECT_EQ(s.launched(), 2);
  // `orrery status` shows the autoscaler's section.
  auto st = c_.Orrery({"status", "--temp-dir", c_.root()});
  EXPECT_NE(st.out.find("Autoscaler:"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("1 gpu-1 (max_workers 1)"), std::string::npos) << st.out;
}

TEST_F(AutoscalerLive, MinWorkersAtStartIdleNodesBeyondMinStopAfterIdleTimeout) {
  StartWith(R"(node_types:
  - {name: cpu-2, resources: {CPU: 2}, min_workers: 1, max_workers: 3}
idle_timeout_s: 2
period_s: 0.3
)");
  ASSERT_TRUE(
      Eventually([&] { return Count(Status(), "cpu-2", "running") == 1; }, milliseconds(15000)))
      << "min_workers 1 launched at start";
  // The head's metrics come from the loop.
  const std::string metrics = HeadMetrics(c_);
  ASSERT_FALSE(metrics.empty());
  EXPECT_TRUE(Eventually([&] {
    return Metric(metrics, "orrery_autoscaler_active_nodes{node_type=\"cpu-2\"}") == 1 &&
           Metric(metrics, "orrery_autoscaler_pending_nodes{node_type=\"cpu-2\"}") == 0;
  })) << Metric(metrics, "orrery_autoscaler_active_nodes{node_type=\"cpu-2\"}");
  // Two 2-CPU tasks at once: one on the min worker, one on a new node.
  RunResult r1, r2;
  std::thread t1([&] { r1 = Task({"--num-cpus", "2"}, {"sleep", "1.5"}); });
  std::thread t2([&] { r2 = Task({"--num-cpus", "2"}, {"sleep", "1.5"}); });
  t1.join();
  t2.join();
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto s = Status();
  ASSERT_EQ(s.launched(), 2);
  std::set<pid_t> pids;
  for (const auto& n : s.nodes()) pids.insert(n.pid());
  ASSERT_EQ(pids.size(), 2u);
  // After idle_timeout (2 s) the node beyond min_workers is drained and its process exits.
  ASSERT_TRUE(Eventually([&] { return Status().nodes_size() == 1; }, milliseconds(20000)));
  s = Status();
  EXPECT_EQ(s.terminated(), 1);
  EXPECT_EQ(Count(s, "cpu-2", "running"), 1) << "min_workers kept";
  pid_t kept = s.nodes(0).pid();
  for (pid_t p : pids) {
    if (p != kept) {
      EXPECT_TRUE(Eventually([&] { return !IsProcessAlive(p); }, milliseconds(5000)))
          << "terminated node's process " << p << " still runs";
    }
  }
  // The head marks it dead once the heartbeats stop.
  int dead = 0;
  EXPECT_TRUE(Eventually([&] {
    dead = 0;
    for (const auto& n : c_.Nodes()) dead += n.value("state", "") == "dead" ? 1 : 0;
    return dead == 1;
  }));
}

TEST_F(AutoscalerLive, StrictSpreadGroupGetsOneNewNodePerBundle) {
  StartWith(kTwoTypes);
  HeadClient head(c_.address(), c_.Token());
  v1::CreatePlacementGroupRequest req;
  req.set_group_id("pg1");
  req.set_strategy("STRICT_SPREAD");
  for (int i = 0; i < 2; ++i)
    ToProto(ResourceSet::FromMap({{"CPU", Quantity::Whole(2)}}), req.add_bundles());
  ASSERT_TRUE(head.CreatePlacementGroup(req).ok());
  // Two 2-CPU bundles on distinct nodes: the head (1 CPU) holds neither, so two cpu-2 nodes.
  ASSERT_TRUE(Eventually(
      [&] {
        auto g = head.GetPlacementGroup("pg1");
        return g.ok() && g->state() == v1::PLACEMENT_GROUP_STATE_CREATED;
      },
      milliseconds(20000)));
  auto g = head.GetPlacementGroup("pg1");
  ASSERT_TRUE(g.ok());
  EXPECT_NE(g->bundle_nodes(0), g->bundle_nodes(1));
  for (const auto& n : g->bundle_nodes()) EXPECT_EQ(n.rfind("cpu-2-", 0), 0u) << n;
  const auto s = Status();
  EXPECT_EQ(s.launched(), 2);
  EXPECT_EQ(Count(s, "gpu-1", ""), 0);
}

TEST_F(AutoscalerLive, MaxWorkersIsNeverExceeded) {
  StartWith(R"(node_types:
  - {name: cpu-2, resources: {CPU: 2}, max_workers: 2}
idle_timeout_s: 60
period_s: 0.3
)");
  std::vector<RunResult> rs(4);
  std::vector<std::thread> ts;
  std::atomic<bool> done{false};
  int most = 0;
  std::thread watch([&] {
    while (!done) {
      most = std::max(most, Status().nodes_size());
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  for (size_t i = 0; i < rs.size(); ++i) {
    ts.emplace_back([&, i] { rs[i] = Task({"--num-cpus", "2"}, {"sleep", "1"}); });
  }
  for (auto& t : ts) t.join();
  done = true;
  watch.join();
  for (const auto& r : rs) EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(most, 2);
  EXPECT_EQ(Status().launched(), 2);
}

TEST_F(AutoscalerLive, InfeasibleDemandIsReportedAndTheLoopKeepsRunning) {
  StartWith(kTwoTypes);
  // 4 GPUs fit no node type: the task waits (its client is given up after a while).
  RunResult inf;
  std::thread t([&] { inf = Task({"--num-gpus", "4"}, {"true"}, milliseconds(8000)); });
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status();
        return s.infeasible_size() == 1 && s.infeasible(0).count() == 1;
      },
      milliseconds(10000)));
  auto s = Status();
  auto shape = FromProto(s.infeasible(0).shape(), "shape");
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(shape->Get("GPU"), Quantity::Whole(4));
  EXPECT_EQ(s.nodes_size(), 0) << "nothing launched for infeasible demand";
  EXPECT_TRUE(s.last_error().empty()) << s.last_error();
  const int64_t rounds = s.rounds();
  // Feasible work is still served meanwhile.
  auto r = Task({"--num-cpus", "2"}, {"true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(Status().rounds(), rounds);
  auto st = c_.Orrery({"status", "--temp-dir", c_.root()});
  EXPECT_NE(st.out.find("no node type can hold it"), std::string::npos) << st.out;
  t.join();
  EXPECT_NE(inf.exit_code, 0);
}

// Node daemons of this build still running with `--node-name <prefix>...`.
int NodeDaemonsNamed(const std::string& prefix) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string cmd = ReadAll(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.rfind(std::string(ORRERY_BINARY) + " __node ", 0) == 0 &&
        cmd.find("--node-name " + prefix) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST(AutoscalerLiveRun, TinyScenarioLaunchesAndTerminatesRealNodes) {
  LiveCluster c;  // only for its temp dir and Orrery()
  const fs::path out = fs::path(c.root()).parent_path() / "out";
  auto r =
      c.Orrery({"live", "run", std::string(ORRERY_SOURCE_DIR) + "/scenarios/autoscale-tiny.yaml",
                "--local", "--out", out.string()},
               milliseconds(90000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json sum = json::parse(ReadAll(out / "summary.json"), nullptr, false);
  ASSERT_TRUE(sum.is_object()) << ReadAll(out / "summary.json");
  EXPECT_EQ(sum["backend"], "live");
  EXPECT_EQ(sum["tasks"]["total"], 7);
  EXPECT_EQ(sum["tasks"]["finished"], 7);
  EXPECT_GE(sum["autoscaler"]["launched"].get<int>(), 1);
  EXPECT_GE(sum["autoscaler"]["terminated"].get<int>(), 1);
  EXPECT_GE(sum["autoscaler"]["peak_nodes"].get<int>(), 2) << "the head node plus launched ones";
  // Between the head alone for the whole run and every node for the whole run.
  const double makespan = sum["makespan_s"].get<double>();
  EXPECT_GT(sum["node_seconds"].get<double>(), makespan);
  EXPECT_LT(sum["node_seconds"].get<double>(), 4 * makespan + 4);
  // Burst tasks ran on launched nodes (the head has 1 CPU, they ask for 2).
  const std::string csv = ReadAll(out / "tasks.csv");
  EXPECT_NE(csv.find(",cpu-2-"), std::string::npos) << csv;
  EXPECT_EQ(NodeDaemonsNamed("cpu-2-"), 0) << "no launched node outlives the run";
}

TEST(AutoscalerLiveRun, AutoscaledScenarioNeedsAClusterWithAnAutoscaler) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head-0", {"--num-cpus", "1", "--dashboard-port", "0"}).exit_code, 0);
  auto r =
      c.Orrery({"live", "run", std::string(ORRERY_SOURCE_DIR) + "/scenarios/autoscale-tiny.yaml",
                "--address", c.address(), "--temp-dir", c.root(), "--out",
                (fs::path(c.root()).parent_path() / "out").string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("runs no autoscaler"), std::string::npos) << r.err;
}

TEST(AutoscalerCli, BadConfigIsExit2WithTheFileAndField) {
  LiveCluster c;
  const auto p = WriteFile(fs::path(c.root()).parent_path(), "bad.yaml",
                           "node_types:\n  - {name: a, resources: {CPU: 1}, max_workers: -1}\n");
  auto r = c.StartHead("head", {"--num-cpus", "1", "--autoscaler-config", p.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(p.string() + ":2: node_types[0].max_workers: expected"), std::string::npos)
      << r.err;
  EXPECT_TRUE(c.Pids().empty()) << "nothing started";
}

}  // namespace
}  // namespace orrery::live::test
