// `orrery live run` with runtime envs and actors, and built-in workloads in a runtime env: real
// daemons on 127.0.0.1 (in-process with --local, or `orrery start` processes), every wait bounded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "live/client/client.h"
#include "live/run/live_run.h"
#include "live/common/runtime_env.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

fs::path SourceDir() { return fs::path(ORRERY_SOURCE_DIR); }

// tasks.csv as rows of cells, by task_id (the first attempt's row).
struct Row {
  std::string name, kind, node, state;
  double start_s = -1, end_s = -1;
};
std::map<std::string, Row> RowsByTask(const std::string& csv) {
  std::map<std::string, Row> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (f.size() < 10 || out.count(f[0])) continue;
    const auto num = [](const std::string& x) { return x.empty() ? -1.0 : std::stod(x); };
    out[f[0]] = {f[1], f[3], f[7], f[8], num(f[5]), num(f[6])};
  }
  return out;
}

// The environment of process `pid` (NUL-separated NAME=VALUE entries).
std::map<std::string, std::string> EnvironOf(int pid) {
  std::map<std::string, std::string> out;
  const std::string all = ReadAll("/proc/" + std::to_string(pid) + "/environ");
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    const std::string kv = all.substr(start, end - start);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
    start = end + 1;
  }
  return out;
}

struct WorkloadRun {
  int pid = 0;
  StatusOr<v1::TaskExit> exit = Status(StatusCode::kUnknown, "not run");
};

// Leases one CPU on `node` and runs a SLEEP workload of `ms` in `env` there.
WorkloadRun SleepInEnv(LiveCluster& c, const std::string& node, const std::string& id,
                       const RuntimeEnv& env, int64_t ms) {
  WorkloadRun r;
  v1::RequestWorkerLeaseRequest req;
  req.set_task_id(id);
  req.set_name(id);
  (*req.mutable_resources()->mutable_raw())["CPU"] = 10000;
  req.mutable_strategy()->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
  req.mutable_strategy()->set_node_id(node);
  auto lease = AcquireLease(c.NodeAddress(node), c.Token(), req);
  if (!lease.ok()) {
    r.exit = lease.status();
    return r;
  }
  v1::RunTaskRequest run;
  run.set_task_id(id);
  run.mutable_workload()->set_kind(v1::Workload::SLEEP);
  run.mutable_workload()->set_duration_ms(ms);
  run.set_runtime_env_json(ToJson(env));
  r.exit = NodeClient(lease->address, c.Token())
               .RunTask(
                   run,
                   [&](const v1::RunTaskReply& m) {
                     if (m.has_started_pid()) {
                       r.pid = m.started_pid();
                     }
                   },
                   milliseconds(20000));
  return r;
}

// A built-in workload with a runtime env runs on a pooled worker started inside the env (its
// variables, PATH and working directory); the next task of the same env reuses that worker, a
// task of another env gets its own; a failing setup cancels the task with the setup's message.
TEST(LiveRunEnvTest, BuiltinWorkloadsRunOnPooledWorkersOfTheirEnv) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  RuntimeEnv one;
  one.env_vars["ORRERY_SCENARIO_ENV"] = "one";
  one.setup = {"echo one > marker"};
  RuntimeEnv two = one;
  two.env_vars["ORRERY_SCENARIO_ENV"] = "two";
  two.setup = {"echo two > marker"};

  // While the first task sleeps, look at its worker.
  std::map<std::string, std::string> env_of_first;
  std::string cwd_of_first;
  WorkloadRun first;
  std::thread t([&] { first = SleepInEnv(c, "a", "e1", one, 1500); });
  ASSERT_TRUE(Eventually([&] { return first.pid > 0; }, milliseconds(15000)));
  env_of_first = EnvironOf(first.pid);
  std::error_code ec;
  cwd_of_first = fs::read_symlink("/proc/" + std::to_string(first.pid) + "/cwd", ec).string();
  t.join();
  ASSERT_TRUE(first.exit.ok()) << first.exit.status().ToString();
  EXPECT_EQ(first.exit->exit_code(), 0) << first.exit->error();
  EXPECT_EQ(env_of_first["ORRERY_SCENARIO_ENV"], "one");
  const std::string dir = env_of_first["ORRERY_RUNTIME_ENV_DIR"];
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(ReadAll(fs::path(dir) / "marker"), "one\n") << "the setup ran in the env's dir";
  EXPECT_EQ(env_of_first["PATH"].rfind(dir + "/bin", 0), 0u) << env_of_first["PATH"];
  EXPECT_NE(cwd_of_first, "");

  auto again = SleepInEnv(c, "a", "e2", one, 50);
  ASSERT_TRUE(again.exit.ok()) << again.exit.status().ToString();
  EXPECT_EQ(again.exit->exit_code(), 0) << again.exit->error();
  EXPECT_EQ(again.pid, first.pid) << "same env: the pooled worker is reused";

  auto other = SleepInEnv(c, "a", "e3", two, 50);
  ASSERT_TRUE(other.exit.ok()) << other.exit.status().ToString();
  EXPECT_EQ(other.exit->exit_code(), 0) << other.exit->error();
  EXPECT_NE(other.pid, first.pid) << "another env: another worker";
  EXPECT_EQ(EnvironOf(other.pid)["ORRERY_SCENARIO_ENV"], "two");

  RuntimeEnv broken;
  broken.setup = {"echo no-such-thing >&2; exit 7"};
  auto failed = SleepInEnv(c, "a", "e4", broken, 50);
  ASSERT_TRUE(failed.exit.ok()) << failed.exit.status().ToString();
  EXPECT_NE(failed.exit->exit_code(), 0);
  EXPECT_EQ(failed.pid, 0) << "no worker ran";
  EXPECT_NE(failed.exit->error().find("runtime env setup failed"), std::string::npos)
      << failed.exit->error();
  EXPECT_NE(failed.exit->error().find("no-such-thing"), std::string::npos) << failed.exit->error();
  // Every lease came back.
  EXPECT_TRUE(Eventually([&] { return c.Node("a")["available"]["CPU"] == 2.0; }));
}

// When an install is evicted, the idle pooled workers started in it exit and are not reused:
// the env's next task gets a fresh worker in the fresh install.
TEST(LiveRunEnvTest, PooledWorkersOfAnEvictedEnvAreRetired) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2", "--runtime-env-cache-bytes", "1500000",
                              "--runtime-env-eviction", "lru"})
                .exit_code,
            0);
  RuntimeEnv x, y;
  x.setup = {"head -c 1000000 /dev/zero > x.bin"};
  y.setup = {"head -c 1000000 /dev/zero > y.bin"};
  auto first = SleepInEnv(c, "a", "x1", x, 50);
  ASSERT_TRUE(first.exit.ok()) << first.exit.status().ToString();
  ASSERT_EQ(first.exit->exit_code(), 0) << first.exit->error();
  ASSERT_GT(first.pid, 0);
  EXPECT_TRUE(IsProcessAlive(first.pid)) << "idle, kept for the env's next task";
  // y's install pushes the node past its limit: x, unused, is evicted, and its worker exits.
  auto other = SleepInEnv(c, "a", "y1", y, 50);
  ASSERT_TRUE(other.exit.ok()) << other.exit.status().ToString();
  ASSERT_EQ(other.exit->exit_code(), 0) << other.exit->error();
  EXPECT_TRUE(Eventually([&] { return !IsProcessAlive(first.pid); }))
      << "the evicted env's idle worker exits";
  auto again = SleepInEnv(c, "a", "x2", x, 50);
  ASSERT_TRUE(again.exit.ok()) << again.exit.status().ToString();
  EXPECT_EQ(again.exit->exit_code(), 0) << again.exit->error();
  EXPECT_NE(again.pid, first.pid);
  EXPECT_NE(again.pid, other.pid);
}

// Parity for envs and actors (scenarios/parity-envs.yaml, free of timing races): the simulator
// and `live run --local` put every task on the same node with the same kind, and the nodes'
// env caches count the same hits, misses and evictions (2, 6, 2 by the scenario's design).
TEST(LiveRunEnvTest, ParityEnvsCountsLikeTheSimulator) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const std::string scenario = (SourceDir() / "scenarios" / "parity-envs.yaml").string();
  auto sim = c.Orrery({"sim", "run", scenario, "--out", (dir / "sim").string(), "--no-progress"});
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  const auto t0 = Clock::now();
  auto live = c.Orrery({"live", "run", scenario, "--local", "--out", (dir / "live").string(),
                        "--temp-dir", c.root()},
                       milliseconds(90000));
  ASSERT_EQ(live.exit_code, 0) << live.out << live.err;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(25));
  const auto sim_rows = RowsByTask(ReadAll(dir / "sim" / "tasks.csv"));
  const auto live_rows = RowsByTask(ReadAll(dir / "live" / "tasks.csv"));
  ASSERT_EQ(sim_rows.size(), 9u);
  ASSERT_EQ(live_rows.size(), sim_rows.size());
  int actors = 0;
  for (const auto& [id, s] : sim_rows) {
    const Row& l = live_rows.at(id);
    EXPECT_EQ(l.name, s.name) << id;
    EXPECT_EQ(l.node, s.node) << id << " (" << s.name << ")";
    EXPECT_EQ(l.kind, s.kind) << id << " (" << s.name << ")";
    EXPECT_EQ(l.state, "finished") << id << " (" << s.name << ")";
    if (l.kind == "actor") {
      ++actors;
      EXPECT_EQ(l.node, "w2");
    }
  }
  EXPECT_EQ(actors, 2);
  json ss = json::parse(ReadAll(dir / "sim" / "summary.json"), nullptr, false);
  json ls = json::parse(ReadAll(dir / "live" / "summary.json"), nullptr, false);
  ASSERT_TRUE(ss.is_object() && ls.is_object());
  for (const char* k : {"hits", "misses", "evictions"}) {
    EXPECT_EQ(ls["env_cache"][k], ss["env_cache"][k]) << k;
  }
  EXPECT_EQ(ls["env_cache"]["hits"], 2);
  EXPECT_EQ(ls["env_cache"]["misses"], 6);
  EXPECT_EQ(ls["env_cache"]["evictions"], 2);
  // Live charges the install's directory: the env's bytes plus a small setup log.
  const double sim_bytes = ss["env_cache"]["bytes_installed"].get<double>();
  const double live_bytes = ls["env_cache"]["bytes_installed"].get<double>();
  EXPECT_EQ(sim_bytes, 6e6);
  EXPECT_GE(live_bytes, sim_bytes);
  EXPECT_LT(live_bytes, sim_bytes * 1.01);
}

// An actor is a creation lease held for its lifetime: a task that needs the actor's CPU waits
// until the actor ends; a zero-resource actor is placed too. tasks.csv says `actor`.
TEST(LiveRunEnvTest, ActorHoldsItsResourcesForItsLifetime) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "actors.yaml";
  std::ofstream(scenario) << R"(name: actors-live
cluster:
  nodes:
    - {id: n0, resources: {CPU: 1}}
    - {id: n1, resources: {CPU: 1}}
workload:
  tasks:
    - {name: after, count: 1, start: 300ms, duration: 100ms, resources: {CPU: 1},
       strategy: {type: NODE_AFFINITY, node: n0}}
  actors:
    - {name: holder, count: 1, duration: 1500ms, resources: {CPU: 1},
       strategy: {type: NODE_AFFINITY, node: n0}}
    - {name: free, count: 1, duration: 500ms}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--out", (dir / "out").string(),
                     "--temp-dir", c.root()},
                    milliseconds(60000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto rows = RowsByTask(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 3u);
  std::map<std::string, Row> by_name;
  for (const auto& [id, row] : rows) by_name[row.name] = row;
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_EQ(by_name["holder"].kind, "actor");
  EXPECT_EQ(by_name["free"].kind, "actor");
  EXPECT_EQ(by_name["after"].kind, "task");
  for (const auto& [name, row] : by_name) EXPECT_EQ(row.state, "finished") << name;
  EXPECT_EQ(by_name["holder"].node, "n0");
  EXPECT_GE(by_name["holder"].end_s - by_name["holder"].start_s, 1.4) << "lived its lifetime";
  EXPECT_GE(by_name["after"].start_s, by_name["holder"].end_s - 0.05)
      << "the task waited for the actor's CPU";
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  EXPECT_EQ(summary["tasks"]["finished"], 3);
}

// An install slower than the scenario's setup timeout fails on every attempt: the task is
// canceled, in live as in the simulator.
TEST(LiveRunEnvTest, SetupTimeoutCancelsTheTask) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "slow-env.yaml";
  std::ofstream(scenario) << R"(name: slow-env
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
runtime_envs:
  - {name: slow, size: 1KB, install_time: 5s}
runtime_env_cache: {setup_timeout: 300ms, max_attempts: 1}
workload:
  tasks:
    - {name: t, count: 1, duration: 100ms, runtime_env: slow}
    - {name: plain, count: 1, duration: 100ms}
)";
  for (const char* backend : {"sim", "live"}) {
    std::vector<std::string> args = {backend, "run", scenario.string(), "--out",
                                     (dir / backend).string()};
    if (std::string(backend) == "live") {
      args.insert(args.end(), {"--local", "--temp-dir", c.root()});
    } else {
      args.push_back("--no-progress");
    }
    auto r = c.Orrery(args, milliseconds(60000));
    EXPECT_NE(r.exit_code, 2) << backend << ": " << r.err;
    json summary = json::parse(ReadAll(dir / backend / "summary.json"), nullptr, false);
    ASSERT_TRUE(summary.is_object()) << backend << ": " << r.err;
    EXPECT_LT(summary["makespan_s"].get<double>(), 2.0) << backend << ": cut by the timeout";
    EXPECT_EQ(summary["tasks"]["canceled"], 1) << backend;
    std::map<std::string, std::string> state;
    for (const auto& [id, row] : RowsByTask(ReadAll(dir / backend / "tasks.csv"))) {
      state[row.name] = row.state;
    }
    EXPECT_EQ(state["t"], "canceled") << backend;
    EXPECT_EQ(state["plain"], "finished") << backend;
  }
}

// What live run cannot emulate is refused with exit 2, naming the field.
TEST(LiveRunEnvTest, OversizedEnvExitsTwo) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  std::ofstream(dir / "huge.yaml") << R"(name: huge
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
runtime_envs:
  - {name: huge, size: 2GB, install_time: 1s}
workload:
  tasks:
    - {name: t, count: 1, duration: 100ms, runtime_env: huge}
)";
  auto r = c.Orrery({"live", "run", (dir / "huge.yaml").string(), "--local"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("runtime_envs.huge.size"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace orrery::live
