// Scenario loader: schema, units, generators, overrides and every class of bad input.
//
// Scenarios are written into a fresh temp directory per test; errors are checked for the
// "FILE:LINE: FIELD: ..." shape. The shipped scenarios/*.yaml must load too.
#include "core/io/scenario_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace orrery::io {
namespace {

namespace fs = std::filesystem;

// Tests read the public traces from ORRERY_TRACE_DIR; when unset, from ../shared/traces next to
// the repository.
void EnsureTraceDir() {
  if (std::getenv("ORRERY_TRACE_DIR") == nullptr) {
    setenv("ORRERY_TRACE_DIR", ORRERY_DEFAULT_TRACE_DIR, 1);
  }
}

class ScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / ("orrery-scn-" + std::to_string(getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  StatusOr<Scenario> Load(const std::string& yaml, const std::vector<std::string>& sets = {}) {
    return LoadScenario(Write("s.yaml", yaml), sets);
  }
  // Loads and returns the error message; fails the test if loading succeeded.
  std::string Error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
    auto s = Load(yaml, sets);
    EXPECT_FALSE(s.ok()) << "loaded although it should not";
    return s.ok() ? std::string() : s.status().message();
  }
  std::string Path() const { return (dir_ / "s.yaml").string(); }
  std::string Name(const Scenario& s, const TaskSpec& t) const { return s.names[t.name]; }

  fs::path dir_;
};

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "message: " << (haystack) << "\nexpected to contain: " << (needle)

// A two-type cluster used by most tests (lines 1-6).
const char* kCluster = R"(cluster:
  node_types:
    - name: cpu
      count: 3
      resources: {CPU: 4, memory: 8GiB}
    - {name: gpu, count: 1, resources: {CPU: 8, GPU: 2, memory: 32GiB}, labels: {accel: a100}}
)";

std::string WithTasks(const std::string& tasks) {
  return std::string(kCluster) + "workload:\n  tasks:\n" + tasks;
}

// --- Loading and defaults ------------------------------------------------------------------------

TEST_F(ScenarioTest, MinimalScenarioTakesDocumentedDefaults) {
  auto s = Load(WithTasks("    - {name: a, count: 5, duration: 1s}\n"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "s");
  EXPECT_EQ(s->seed, 1u);
  EXPECT_EQ(s->driver_node, 0);
  EXPECT_EQ(s->scheduler.options.policy, "hybrid");
  EXPECT_DOUBLE_EQ(s->scheduler.report_period_s, 0.1);
  EXPECT_TRUE(s->scheduler.view_via_head);
  EXPECT_DOUBLE_EQ(s->network.bandwidth_Bps, 1.25e9);
  EXPECT_TRUE(std::isinf(s->max_time_s));
  ASSERT_EQ(s->tasks.size(), 5u);
  for (const TaskSpec& t : s->tasks) {
    EXPECT_EQ(t.submit_s, 0.0);  // default arrival: one burst at start
    EXPECT_EQ(t.duration_s, 1.0);
    EXPECT_EQ(s->shapes[t.shape].set().Get(kCPU), Quantity::Whole(1));  // tasks default CPU: 1
    EXPECT_EQ(t.max_retries, 3);
    EXPECT_EQ(s->jobs[t.job], "default");
    EXPECT_EQ(t.kind, WorkKind::kTask);
  }
  EXPECT_TRUE(s->warnings.empty());
}

TEST_F(ScenarioTest, NodeTypesExpandToTypedIdsAndExplicitNodesFollow) {
  auto s = Load(std::string(kCluster) + R"(  nodes:
    - {id: head, resources: {CPU: 2}, labels: {role: head}}
    - {id: big-gpu, type: gpu, labels: {zone: b}}
  driver: head
  network: {bandwidth: 1Gbps, latency: 2ms}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<std::string> ids;
  for (const auto& n : s->nodes) ids.push_back(n.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"cpu-0", "cpu-1", "cpu-2", "gpu-0", "head", "big-gpu"}));
  EXPECT_EQ(s->nodes[3].type, "gpu");
  EXPECT_EQ(s->nodes[3].total.Get(kGPU), Quantity::Whole(2));
  EXPECT_EQ(s->nodes[0].total.Get(kMemory), Quantity::Whole(8LL << 30));
  EXPECT_EQ(s->nodes[5].labels, (Labels{{"accel", "a100"}, {"zone", "b"}}));
  EXPECT_EQ(s->nodes[4].type, "custom");
  EXPECT_EQ(s->driver_node, 4);
  EXPECT_DOUBLE_EQ(s->network.bandwidth_Bps, 1.25e8);
  EXPECT_DOUBLE_EQ(s->network.latency_s, 0.002);
}

TEST_F(ScenarioTest, UnitsForDurationsSizesBandwidthAndRates) {
  auto s = Load(std::string(kCluster) + R"(  network: {bandwidth: 100MB/s, latency: 500us}
stop: {max_time: 2h}
scheduler: {report_period: 250ms, view_via_head: false}
runtime_envs:
  - {name: e1, size: 2KB, install_time: 1.5m}
  - {name: e2, size: 2KiB, install_time: 90}
  - {name: e3, size: 1_000_000, install_time: 3s}
workload:
  tasks:
    - {name: a, count: 3, arrival: {process: uniform, rate: 2/ms}, duration: 20us, output: 1.5MiB}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ(s->network.bandwidth_Bps, 1e8);
  EXPECT_DOUBLE_EQ(s->network.latency_s, 5e-4);
  EXPECT_DOUBLE_EQ(s->max_time_s, 7200);
  EXPECT_DOUBLE_EQ(s->scheduler.report_period_s, 0.25);
  EXPECT_FALSE(s->scheduler.view_via_head);
  EXPECT_EQ(s->runtime_envs[0].size_bytes, 2000u);
  EXPECT_EQ(s->runtime_envs[1].size_bytes, 2048u);
  EXPECT_EQ(s->runtime_envs[2].size_bytes, 1000000u);
  EXPECT_DOUBLE_EQ(s->runtime_envs[0].install_s, 90);
  EXPECT_DOUBLE_EQ(s->runtime_envs[1].install_s, 90);
  ASSERT_EQ(s->tasks.size(), 3u);
  EXPECT_DOUBLE_EQ(s->tasks[2].submit_s, 2 * 0.0005);
  EXPECT_DOUBLE_EQ(s->tasks[0].duration_s, 20e-6);
  EXPECT_EQ(s->tasks[0].output_bytes, 1572864u);
}

// --- Generators ----------------------------------------------------------------------------------

TEST_F(ScenarioTest, PoissonArrivalsHaveTheRequestedRate) {
  auto s = Load(WithTasks(
      "    - {name: p, count: 20000, start: 10s, arrival: {process: poisson, rate: 100/s}, "
      "duration: 1s}\n"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 20000u);
  EXPECT_GT(s->tasks.front().submit_s, 10.0);
  const double span = s->tasks.back().submit_s - 10.0;
  EXPECT_NEAR(span / 20000, 0.01, 0.0005);  // mean gap 1/rate
  EXPECT_TRUE(std::is_sorted(s->tasks.begin(), s->tasks.end(),
                             [](const auto& a, const auto& b) { return a.submit_s < b.submit_s; }));
}

TEST_F(ScenarioTest, UniformAndBurstArrivalsAreExact) {
  auto s = Load(WithTasks(
      R"(    - {name: u, count: 4, start: 1s, arrival: {process: uniform, interval: 10ms}, duration: 1}
    - {name: b, count: 3, start: 2s, arrival: {process: burst, at: 500ms}, duration: 1}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<double> u, b;
  for (const auto& t : s->tasks) (Name(*s, t) == "u" ? u : b).push_back(t.submit_s);
  ASSERT_EQ(u.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(u[i], 1.0 + 0.01 * static_cast<double>(i));
  EXPECT_EQ(b, (std::vector<double>{2.5, 2.5, 2.5}));
}

TEST_F(ScenarioTest, DurationDistributionsHaveTheirMoments) {
  auto s = Load(WithTasks(R"(    - {name: e, count: 20000, duration: {dist: exponential, mean: 2s}}
    - {name: u, count: 20000, duration: {dist: uniform, min: 1s, max: 3s}}
    - {name: l, count: 20001, duration: {dist: lognormal, median: 500ms, sigma: 1}}
    - {name: c, count: 2, duration: {dist: constant, mean: 7s}}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::map<std::string, std::vector<double>> d;
  for (const auto& t : s->tasks) d[Name(*s, t)].push_back(t.duration_s);
  double mean = 0;
  for (double x : d["e"]) mean += x / 20000;
  EXPECT_NEAR(mean, 2.0, 0.08);
  for (double x : d["u"]) {
    EXPECT_GE(x, 1.0);
    EXPECT_LE(x, 3.0);
  }
  std::vector<double> l = d["l"];
  std::nth_element(l.begin(), l.begin() + 10000, l.end());
  EXPECT_NEAR(l[10000], 0.5, 0.03);
  EXPECT_EQ(d["c"], (std::vector<double>{7, 7}));
}

TEST_F(ScenarioTest, TraceArrivalsFromNumericSecondsAreRebasedAndSpedUp) {
  Write("arrivals.csv", "t,other\n100.5,x\n100,y\n104,z\n110,w\n");
  auto s = Load(WithTasks(
      "    - {name: tr, start: 1s, arrival: {process: trace, file: arrivals.csv, column: t, "
      "speedup: 2, limit: 3}, duration: {dist: column, column: t, scale: 0.01, offset: 1s}}\n"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 3u);                 // limit: the first 3 rows of the file
  EXPECT_DOUBLE_EQ(s->tasks[0].submit_s, 1.0);    // row "100" (earliest)
  EXPECT_DOUBLE_EQ(s->tasks[1].submit_s, 1.25);   // (100.5 - 100) / 2 + 1
  EXPECT_DOUBLE_EQ(s->tasks[2].submit_s, 3.0);    // (104 - 100) / 2 + 1
  EXPECT_DOUBLE_EQ(s->tasks[0].duration_s, 2.0);  // 100 * 0.01 + 1
  EXPECT_DOUBLE_EQ(s->tasks[1].duration_s, 2.005);
}

TEST_F(ScenarioTest, AzureTraceTimestampsExpandThroughTraceDirVariable) {
  EnsureTraceDir();
  auto s = Load(
      WithTasks("    - name: llm\n"
                "      arrival: {process: trace, file: "
                "\"${ORRERY_TRACE_DIR}/azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv\", "
                "column: TIMESTAMP}\n"
                "      duration: {dist: column, column: GeneratedTokens, scale: 0.02}\n"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 8819u);
  EXPECT_DOUBLE_EQ(s->tasks.front().submit_s, 0.0);
  // 18:17:03.97996 -> 18:17:04.03196: the second request is 52 ms later.
  EXPECT_NEAR(s->tasks[1].submit_s, 0.052, 1e-6);
  EXPECT_DOUBLE_EQ(s->tasks[0].duration_s, 10 * 0.02);  // GeneratedTokens of the first row
  EXPECT_GT(s->tasks.back().submit_s, 3000);            // about an hour of arrivals
  EXPECT_LT(s->tasks.back().submit_s, 3700);
}

TEST_F(ScenarioTest, ActorsDefaultToZeroResources) {
  auto s = Load(std::string(kCluster) +
                "workload:\n  actors:\n    - {name: act, count: 2, duration: 1h}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 2u);
  EXPECT_EQ(s->tasks[0].kind, WorkKind::kActor);
  EXPECT_TRUE(s->shapes[s->tasks[0].shape].IsEmpty());
  EXPECT_STREQ(WorkKindName(WorkKind::kActor), "actor");
}

TEST_F(ScenarioTest, SameSeedSameTasksAndDifferentSeedDiffers) {
  const std::string y =
      "seed: 7\n" +
      WithTasks(
          "    - {name: a, count: 500, arrival: {process: poisson, rate: 50}, "
          "duration: {dist: exponential, mean: 1s}}\n"
          "    - {name: b, count: 100, arrival: {process: poisson, rate: 5}, duration: 1s, "
          "args: [{from: a, count: 2, pick: random}]}\n");
  auto key = [](const Scenario& s) {
    std::vector<double> v;
    for (const auto& t : s.tasks) {
      v.push_back(t.submit_s);
      v.push_back(t.duration_s);
    }
    for (const auto& a : s.args) v.push_back(a.producer);
    return v;
  };
  auto s1 = Load(y);
  auto s2 = Load(y);
  auto s3 = Load(y, {"seed=8"});
  ASSERT_TRUE(s1.ok() && s2.ok() && s3.ok()) << s1.status().ToString();
  EXPECT_EQ(key(*s1), key(*s2));
  EXPECT_NE(key(*s1), key(*s3));
  EXPECT_EQ(s3->seed, 8u);
  auto s4 = Load("seed: 8\n" + y.substr(y.find('\n') + 1));
  ASSERT_TRUE(s4.ok());
  EXPECT_EQ(key(*s3), key(*s4));  // --set seed=8 is the same as a file seed of 8
}

TEST_F(ScenarioTest, EqualSubmitTimesKeepFileOrder) {
  auto s = Load(
      WithTasks(R"(    - {name: first, count: 2, arrival: {process: burst, at: 1s}, duration: 1}
    - {name: early, count: 1, duration: 1}
    - {name: second, count: 2, arrival: {process: burst, at: 1s}, duration: 1}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<std::string> names;
  for (const auto& t : s->tasks) names.push_back(Name(*s, t));
  EXPECT_EQ(names, (std::vector<std::string>{"early", "first", "first", "second", "second"}));
}

TEST_F(ScenarioTest, ArgsReferenceProducersSubmittedEarlier) {
  auto s = Load(WithTasks(
      R"(    - {name: map, count: 4, arrival: {process: uniform, interval: 1s}, duration: 1, output: 10MB}
    - name: reduce
      count: 4
      start: 500ms
      arrival: {process: uniform, interval: 1s}
      duration: 1
      args: [{from: map, count: 1, pick: same_index}, {node: cpu-1, bytes: 1KB}]
    - {name: any, count: 20, start: 5s, duration: 1, args: [{from: map, count: 3, pick: random}]}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int reduces = 0;
  for (size_t i = 0; i < s->tasks.size(); ++i) {
    const TaskSpec& t = s->tasks[i];
    for (uint32_t a = t.args_begin; a < t.args_begin + t.args_count; ++a) {
      const ArgSpec& arg = s->args[a];
      if (arg.producer >= 0) {
        EXPECT_LT(arg.producer, static_cast<int32_t>(i));  // submitted before
        EXPECT_EQ(Name(*s, s->tasks[arg.producer]), "map");
        EXPECT_EQ(arg.bytes, 10'000'000u);
      } else {
        EXPECT_EQ(s->nodes[arg.node].id, "cpu-1");
        EXPECT_EQ(arg.bytes, 1000u);
      }
    }
    if (Name(*s, t) == "reduce") {
      ASSERT_EQ(t.args_count, 2u);
      // same_index: the k-th reduce reads the k-th map (submitted at k s, reduce at k + 0.5 s).
      EXPECT_DOUBLE_EQ(s->tasks[s->args[t.args_begin].producer].submit_s, t.submit_s - 0.5);
      ++reduces;
    }
    if (Name(*s, t) == "any") {
      ASSERT_EQ(t.args_count, 3u);
      std::vector<int32_t> p;
      for (uint32_t a = t.args_begin; a < t.args_begin + 3; ++a) p.push_back(s->args[a].producer);
      std::sort(p.begin(), p.end());
      EXPECT_EQ(std::unique(p.begin(), p.end()), p.end());  // random picks are distinct
    }
  }
  EXPECT_EQ(reduces, 4);
}

TEST_F(ScenarioTest, StrategiesPlacementGroupsEnvsAndFailures) {
  auto s =
      Load(std::string(kCluster) + R"(runtime_envs: [{name: torch, size: 200MB, install_time: 5s}]
failures:
  - {at: 30s, node: cpu-1, action: recover}
  - {at: 10s, node: cpu-1, action: crash}
workload:
  placement_groups:
    - {name: gang, strategy: STRICT_SPREAD, bundles: [{CPU: 1}, {CPU: 1}], at: 2s}
  tasks:
    - {name: s, count: 1, duration: 1, strategy: SPREAD}
    - {name: s2, count: 1, duration: 1, strategy: {type: spread}}
    - name: aff
      count: 1
      duration: 1
      strategy: {type: NODE_AFFINITY, node: gpu-0, soft: true, spill_on_unavailable: true}
    - {name: g, count: 2, duration: 1, placement_group: gang, bundle: 1, runtime_env: torch, max_retries: 0}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->strategies.size(), 3u);  // DEFAULT, SPREAD (shared), NODE_AFFINITY
  std::map<std::string, const TaskSpec*> by;
  for (const auto& t : s->tasks) by[Name(*s, t)] = &t;
  EXPECT_EQ(by["s"]->strategy, by["s2"]->strategy);
  const SchedulingStrategy& aff = s->strategies[by["aff"]->strategy];
  EXPECT_EQ(aff.type, SchedulingStrategy::Type::kNodeAffinity);
  EXPECT_EQ(aff.node, "gpu-0");
  EXPECT_TRUE(aff.soft);
  EXPECT_TRUE(aff.spill_on_unavailable);
  EXPECT_FALSE(aff.fail_on_unavailable);
  EXPECT_EQ(by["g"]->placement_group, 0);
  EXPECT_EQ(by["g"]->bundle, 1);
  EXPECT_EQ(by["g"]->env, 0);
  EXPECT_EQ(by["g"]->max_retries, 0);
  ASSERT_EQ(s->placement_groups.size(), 1u);
  EXPECT_EQ(s->placement_groups[0].strategy, PlacementStrategy::kStrictSpread);
  EXPECT_DOUBLE_EQ(s->placement_groups[0].create_s, 2);
  EXPECT_EQ(s->runtime_envs[0].size_bytes, 200'000'000u);
  ASSERT_EQ(s->failures.size(), 2u);
  EXPECT_DOUBLE_EQ(s->failures[0].at_s, 10);  // sorted by time
  EXPECT_EQ(s->failures[0].action, FailureSpec::Action::kCrash);
  EXPECT_EQ(s->failures[1].action, FailureSpec::Action::kRecover);
  EXPECT_EQ(s->nodes[s->failures[0].node].id, "cpu-1");
}

TEST_F(ScenarioTest, OrreryCsvTaskTraceWithExtraResourceColumns) {
  Write("tasks.csv",
        "submit_s,duration_s,CPU,GPU,memory,accel\n"
        "2.0,5,1,0,1GiB,\n"
        "0.5,1.5,2,1,2000000000,1\n");
  auto s = Load(std::string(kCluster) +
                "workload:\n  trace:\n    - {file: tasks.csv, start: 10s, max_retries: 1}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 2u);
  EXPECT_EQ(Name(*s, s->tasks[0]), "tasks");  // default name: the file stem
  EXPECT_DOUBLE_EQ(s->tasks[0].submit_s, 10.5);
  EXPECT_DOUBLE_EQ(s->tasks[0].duration_s, 1.5);
  const ResourceSet& r0 = s->shapes[s->tasks[0].shape].set();
  EXPECT_EQ(r0.Get(kGPU), Quantity::Whole(1));
  EXPECT_EQ(r0.Get("accel"), Quantity::Whole(1));
  EXPECT_EQ(s->shapes[s->tasks[1].shape].set().Get(kMemory), Quantity::Whole(1LL << 30));
  EXPECT_EQ(s->tasks[1].max_retries, 1);
  // accel fits no node: one warning for that shape, the load still succeeds.
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_CONTAINS(s->warnings[0], "accel");
}

TEST_F(ScenarioTest, AbsoluteTracePathFromTestData) {
  auto s = Load(std::string(kCluster) + "workload:\n  trace:\n    - {file: \"" +
                ORRERY_SIM_TEST_DATA + "/tiny_tasks.csv\", name: tiny, speedup: 2}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 4u);
  EXPECT_DOUBLE_EQ(s->tasks[3].submit_s, 1.5);   // 3 s / speedup 2
  EXPECT_DOUBLE_EQ(s->tasks[3].duration_s, 10);  // durations are not sped up
  EXPECT_EQ(s->shapes[s->tasks[2].shape].set().Get(kCPU), Quantity::FromDouble(0.5));
  EXPECT_EQ(s->shapes.size(), 4u);
}

TEST_F(ScenarioTest, ColumnMappedTraceWithEndColumnAndScale) {
  Write("pods.csv",
        "name,cpu_milli,memory_mib,creation_time,deletion_time\n"
        "p0,1500,1024,100,160\n"
        "p1,500,512,130,131\n");
  auto s = Load(std::string(kCluster) + R"(workload:
  trace:
    - file: pods.csv
      name: pods
      submit_column: creation_time
      end_column: deletion_time
      resources:
        CPU: {column: cpu_milli, scale: 0.001}
        memory: {column: memory_mib, scale: 1048576}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 2u);
  EXPECT_DOUBLE_EQ(s->tasks[0].submit_s, 100);  // numbers are absolute in task traces
  EXPECT_DOUBLE_EQ(s->tasks[0].duration_s, 60);
  EXPECT_DOUBLE_EQ(s->tasks[1].duration_s, 1);
  EXPECT_EQ(s->shapes[s->tasks[0].shape].set().Get(kCPU), Quantity::FromDouble(1.5));
  EXPECT_EQ(s->shapes[s->tasks[0].shape].set().Get(kMemory), Quantity::Whole(1LL << 30));
}

TEST_F(ScenarioTest, InfeasibleShapeIsAWarningNotAnError) {
  auto s = Load(WithTasks(R"(    - {name: huge, count: 3, duration: 1, resources: {CPU: 64}}
    - {name: gpus, count: 1, duration: 1, resources: {GPU: 4}}
    - {name: ok, count: 1, duration: 1, resources: {CPU: 8, GPU: 2}}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->warnings.size(), 2u);
  EXPECT_CONTAINS(s->warnings[0], "{\"CPU\": 64} fits no node");
  EXPECT_CONTAINS(s->warnings[0], "3 task(s)");
  EXPECT_CONTAINS(s->warnings[0], "workload.tasks[0] (huge)");
  EXPECT_CONTAINS(s->warnings[1], "{\"GPU\": 4}");
  EXPECT_EQ(s->tasks.size(), 5u);
}

// --- Overrides -----------------------------------------------------------------------------------

TEST_F(ScenarioTest, OverridesSetPresentAbsentAndIndexedKeys) {
  auto s = Load(WithTasks("    - {name: a, count: 5, duration: 1s, resources: {CPU: 1}}\n"),
                {"scheduler.policy=spread", "scheduler.top_k_fraction=0.5",
                 "workload.tasks.0.count=10", "workload.tasks.0.resources.GPU=1",
                 "workload.tasks.0.strategy={type: NODE_AFFINITY, node: gpu-0}",
                 "cluster.node_types.1.count=2", "stop.max_time=1m"});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.options.policy, "spread");
  EXPECT_DOUBLE_EQ(s->scheduler.options.hybrid.top_k_fraction, 0.5);
  EXPECT_EQ(s->tasks.size(), 10u);
  EXPECT_EQ(s->shapes[s->tasks[0].shape].set().Get(kGPU), Quantity::Whole(1));
  EXPECT_EQ(s->strategies[s->tasks[0].strategy].node, "gpu-0");
  EXPECT_EQ(s->nodes.size(), 5u);
  EXPECT_DOUBLE_EQ(s->max_time_s, 60);
}

TEST_F(ScenarioTest, OverrideOfUnknownPathIsAnErrorNamingIt) {
  const std::string y = WithTasks("    - {name: a, count: 5, duration: 1s}\n");
  EXPECT_EQ(Error(y, {"scheduler.polcy=spread"}),
            Path() +
                " (--set scheduler.polcy=spread): scheduler.polcy: unknown key (expected one "
                "of: policy, spread_threshold, top_k_absolute, top_k_fraction, "
                "avoid_gpu_nodes, fair_granting, wait_at_best_node, report_period, view_via_head)");
  EXPECT_CONTAINS(Error(y, {"workload.tasks.3.count=1"}),
                  "workload.tasks: index 3 is out of range (the list has 1 entries)");
  EXPECT_CONTAINS(Error(y, {"workload.tasks.x.count=1"}), "expected an index, got 'x'");
  EXPECT_CONTAINS(Error(y, {"seed"}), "(--set seed): expected dotted.path=value");
  EXPECT_CONTAINS(Error(y, {"name.x=1"}), "name: is a value and has no key 'x'");
}

TEST_F(ScenarioTest, BadOverrideValueIsReportedAtTheOverride) {
  const std::string y = WithTasks("    - {name: a, count: 5, duration: 1s}\n");
  EXPECT_EQ(Error(y, {"workload.tasks.0.count=-2"}),
            Path() +
                " (--set workload.tasks.0.count=-2): workload.tasks[0].count: expected a "
                "whole number in [0, 50000000], got '-2'");
  EXPECT_CONTAINS(Error(y, {"scheduler.policy=nope"}), "unknown policy 'nope' (known: ");
  EXPECT_CONTAINS(Error(y, {"scheduler.policy=[a"}), "malformed value");
}

// --- Bad input: one test per class, each naming file, line and field
// ------------------------------

TEST_F(ScenarioTest, UnknownKeyNamesFileLineAndField) {
  EXPECT_EQ(Error(WithTasks("    - {name: a, count: 5, duration: 1s, cuont: 3}\n")),
            Path() +
                ":9: workload.tasks[0].cuont: unknown key (expected one of: name, job, "
                "count, arrival, start, duration, resources, strategy, placement_group, "
                "bundle, args, output, runtime_env, max_retries)");
  EXPECT_CONTAINS(Error("nmae: x\n" + std::string(kCluster)), ":1: nmae: unknown key");
}

TEST_F(ScenarioTest, WrongTypesSayWhatWasExpectedAndWhatCame) {
  EXPECT_EQ(Error(WithTasks("    - {name: a, count: lots, duration: 1s}\n")),
            Path() +
                ":9: workload.tasks[0].count: expected a whole number in [0, 50000000], "
                "got 'lots'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: [1]}\n")),
                  ":9: workload.tasks[0].duration: expected a duration >= 0");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, resources: [1]}\n")),
                  ":9: workload.tasks[0].resources: expected a map, got a list");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "scheduler: {avoid_gpu_nodes: maybe}\n"),
                  ":7: scheduler.avoid_gpu_nodes: expected true or false, got 'maybe'");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "workload: [1]\n"),
                  ":7: workload: expected a map with keys tasks, actors");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, "
                                  "arrival: {process: burst, rate: 5}}\n")),
                  "workload.tasks[0].arrival.rate: does not apply to process burst");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, "
                                  "resources: {GPU: 1.5}}\n")),
                  "workload.tasks[0].resources.GPU: GPU is allocated per device");
}

TEST_F(ScenarioTest, NegativeDurationsSizesAndCountsAreRejected) {
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: -1s}\n")),
                  ":9: workload.tasks[0].duration: expected a duration >= 0 (seconds, or a string "
                  "like '250ms', '1.5s', '2m', '1h'), got '-1s'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, output: -5MB}\n")),
                  ":9: workload.tasks[0].output: expected a size >= 0");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: -1, duration: 1}\n")),
                  ":9: workload.tasks[0].count: expected a whole number in [0, 50000000], got "
                  "'-1'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, "
                                  "resources: {CPU: -2}}\n")),
                  ":9: workload.tasks[0].resources.CPU: expected a quantity >= 0");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 5parsecs}\n")),
                  "got '5parsecs'");
}

TEST_F(ScenarioTest, MalformedYamlReportsTheLine) {
  const std::string msg = Error("name: x\ncluster:\n  node_types: [ {name: a\n  nodes: ]\n");
  EXPECT_EQ(msg.rfind(Path() + ":", 0), 0u) << msg;
  EXPECT_CONTAINS(msg, "malformed YAML");
}

TEST_F(ScenarioTest, EmptyAndCommentOnlyFilesAreRejected) {
  EXPECT_EQ(Error(""), Path() + ": empty scenario; expected a map with at least 'cluster'");
  EXPECT_CONTAINS(Error("# nothing here\n\n"), "empty scenario");
  EXPECT_CONTAINS(Error("- a\n- b\n"), ":1: expected a map at the top level, got a list");
  EXPECT_CONTAINS(Error("name: x\n"), ":1: cluster: required key is missing");
}

TEST_F(ScenarioTest, BinaryFileIsRejectedBeforeParsing) {
  std::string bin =
      "\x7f"
      "ELF\x02\x01\x01";
  bin += std::string(3, '\0');
  bin += "\xff\xfe garbage";
  const std::string msg = Error(bin);
  EXPECT_CONTAINS(msg, Path() + ":1: not a text file");
  EXPECT_CONTAINS(Error("name: \xc3\x28\n"), "not a text file");  // invalid UTF-8
}

TEST_F(ScenarioTest, MissingFileIsNotFound) {
  auto s = LoadScenario((dir_ / "nope.yaml").string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s.status().message(), (dir_ / "nope.yaml").string() + ": no such file");
  auto d = LoadScenario(dir_.string());
  ASSERT_FALSE(d.ok());
  EXPECT_CONTAINS(d.status().message(), "is a directory");
}

TEST_F(ScenarioTest, MissingTraceFileAndUnsetVariableAreNamed) {
  auto s = Load(
      WithTasks("    - {name: t, arrival: {process: trace, file: missing.csv}, duration: 1}\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(s.status().message(), ":9: workload.tasks[0].arrival.file: trace file '");
  EXPECT_CONTAINS(s.status().message(), "missing.csv' does not exist");
  unsetenv("ORRERY_SCN_TEST_UNSET");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "workload:\n  trace:\n"
                                                "    - file: ${ORRERY_SCN_TEST_UNSET}/x.csv\n"),
                  ":9: workload.trace[0].file: environment variable ORRERY_SCN_TEST_UNSET is "
                  "not set");
  Write("bad.csv", "t\n1\nsoon\n");
  EXPECT_CONTAINS(
      Error(WithTasks("    - {name: t, arrival: {process: trace, file: bad.csv}, duration: 1}\n")),
      "bad.csv:3: column 't': expected a number of seconds or a date-time, got "
      "'soon' (workload.tasks[0].arrival)");
  Write("cols.csv", "a,b\n1,2\n");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: t, arrival: {process: trace, file: cols.csv, "
                                  "column: TIMESTAMP}, duration: 1}\n")),
                  "workload.tasks[0].arrival.column: trace '");
}

// Found by tests/fuzz (scenario_yaml): yaml-cpp 0.7's LoadAll looped forever, allocating, on a
// lone ','. Each case must return (the test would hang, then time out, before the fix).
TEST_F(ScenarioTest, MalformedYamlThatHungTheParserIsAnError) {
  for (const char* text : {",", " ,    duration", ",,", "name: x\n,\n"}) {
    const std::string msg = Error(text);
    EXPECT_CONTAINS(msg, Path() + ":");
    EXPECT_CONTAINS(msg, "malformed YAML");
  }
  EXPECT_EQ(Error("name: a\n---\nname: b\n"), Path() + ": expected one YAML document, got 2");
  EXPECT_EQ(Error("name: a\n---\nname: b\n---\nname: c\n"),
            Path() + ": expected one YAML document, got 3 or more");
  EXPECT_EQ(Error(""), Path() + ": empty scenario; expected a map with at least 'cluster'");
  EXPECT_EQ(Error("# only a comment\n"),
            Path() + ": empty scenario; expected a map with at least 'cluster'");
  EXPECT_EQ(Error("~\n"), Path() + ": empty scenario; expected a map with at least 'cluster'");
}

// Found by tests/fuzz (trace_csv): a date-time past 2262 overflowed the nanosecond count.
TEST_F(ScenarioTest, DateTimesOutsideTheRepresentableRangeAreRefused) {
  Write("far.csv", "t\n2026-01-01T00:00:00Z\n2526-01-01T00:00:00Z\n");
  EXPECT_CONTAINS(
      Error(WithTasks("    - {name: t, arrival: {process: trace, file: far.csv}, duration: 1}\n")),
      "far.csv:3: column 't': expected a number of seconds or a date-time, got "
      "'2526-01-01T00:00:00Z'");
  Write("past.csv", "t\n1600-01-01 00:00:00\n");
  EXPECT_CONTAINS(
      Error(WithTasks("    - {name: t, arrival: {process: trace, file: past.csv}, duration: 1}\n")),
      "past.csv:2: column 't'");
  Write("ok.csv", "t\n2262-01-01T00:00:00Z\n2262-01-01T00:00:01.5Z\n");
  auto s = Load(WithTasks("    - {name: t, arrival: {process: trace, file: ok.csv}, duration: 1}\n"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->tasks.size(), 2u);
  EXPECT_DOUBLE_EQ(s->tasks[1].submit_s - s->tasks[0].submit_s, 1.5);
}

TEST_F(ScenarioTest, UnknownPolicyListsTheKnownOnes) {
  const std::string msg = Error(std::string(kCluster) + "scheduler:\n  policy: fastest\n");
  EXPECT_CONTAINS(msg, Path() + ":8: scheduler.policy: unknown policy 'fastest' (known: ");
  EXPECT_CONTAINS(msg, "hybrid");
}

TEST_F(ScenarioTest, UnknownNodesInFailuresAffinityDriverAndArgs) {
  EXPECT_CONTAINS(Error(std::string(kCluster) + "failures: [{at: 1s, node: cpu-9}]\n"),
                  ":7: failures[0].node: unknown node 'cpu-9' (nodes: cpu-0, cpu-1, cpu-2, gpu-0)");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "  driver: head\n"),
                  ":7: cluster.driver: unknown node 'head'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, strategy: "
                                  "{type: NODE_AFFINITY, node: gpu-7}}\n")),
                  ":9: workload.tasks[0].strategy.node: unknown node 'gpu-7'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, "
                                  "args: [{node: x, bytes: 1}]}\n")),
                  "workload.tasks[0].args[0].node: unknown node 'x'");
  EXPECT_CONTAINS(
      Error(std::string(kCluster) + "failures: [{at: 1s, node: cpu-0, action: nuke}]\n"),
      "failures[0].action: expected one of crash, recover, got 'nuke'");
}

TEST_F(ScenarioTest, UnknownEnvPlacementGroupAndGeneratorReferences) {
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, runtime_env: conda}\n")),
                  ":9: workload.tasks[0].runtime_env: unknown runtime env 'conda' (none defined)");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, "
                                  "placement_group: pg}\n")),
                  ":9: workload.tasks[0].placement_group: unknown placement group 'pg'");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, args: [{from: b}]}\n"
                                  "    - {name: b, count: 1, duration: 1}\n")),
                  ":9: workload.tasks[0].args[0].from: unknown generator 'b': args must come "
                  "from a task generator listed earlier");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1, args: [{from: a}]}\n")),
                  "unknown generator 'a'");
  EXPECT_CONTAINS(Error(std::string(kCluster) + R"(workload:
  placement_groups: [{name: pg, bundles: [{CPU: 1}]}]
  tasks:
    - {name: a, count: 1, duration: 1, placement_group: pg, bundle: 3}
)"),
                  ":10: workload.tasks[0].bundle: expected a whole number in [-1, 0], got '3'");
}

TEST_F(ScenarioTest, DuplicateNamesAndKeysAreErrors) {
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1}\n"
                                  "    - {name: a, count: 1, duration: 1}\n")),
                  ":10: workload.tasks[1].name: duplicate generator name 'a' (first defined at " +
                      Path() + ":9, workload.tasks[0].name)");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "  nodes: [{id: cpu-1, resources: {CPU: 1}}]\n"),
                  ":7: cluster.nodes[0].id: duplicate node name 'cpu-1'");
  EXPECT_CONTAINS(Error("seed: 1\nseed: 2\n" + std::string(kCluster)), ":2: seed: duplicate key");
  EXPECT_CONTAINS(Error(std::string(kCluster) + "runtime_envs: [{name: e}, {name: e}]\n"),
                  "runtime_envs[1].name: duplicate runtime env name 'e'");
}

TEST_F(ScenarioTest, HugeCountsAreCappedNotAttempted) {
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 5e9, duration: 1}\n")),
                  "workload.tasks[0].count: expected a whole number in [0, 50000000]");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 3e7, duration: 1}\n"
                                  "    - {name: b, count: 3e7, duration: 1}\n")),
                  ":10: workload.tasks[1].count: the scenario would have more than 50000000 "
                  "tasks");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 2, duration: 1, "
                                  "arrival: {process: poisson, rate: 1e-300}}\n")),
                  ":9: workload.tasks[0]: task 0 would be submitted at");
}

TEST_F(ScenarioTest, NodeTotalsMustBeValid) {
  EXPECT_CONTAINS(Error("cluster:\n  node_types: [{name: g, resources: {GPU: 1.5}}]\n"),
                  ":2: cluster.node_types[0].resources");
  EXPECT_CONTAINS(Error("cluster:\n  node_types: [{name: g, count: 0, resources: {CPU: 1}}]\n"),
                  ":1: cluster: expected at least one node");
  EXPECT_CONTAINS(Error("cluster:\n  nodes: [{id: n, type: cpu, resources: {CPU: 1}}]\n"),
                  "cluster.nodes[0].resources: give either type or resources, not both");
}

TEST_F(ScenarioTest, HostileInputsNeverCrashOrHang) {
  // Deep nesting, alias tricks, huge numbers, odd tags: each is an error or a load, never a crash.
  const std::vector<std::string> inputs = {
      std::string(100000, '[') + std::string(100000, ']'),
      "a: &a [*a]\n",
      std::string(kCluster) + "seed: 99999999999999999999999\n",
      WithTasks("    - {name: a, count: 1e400, duration: 1}\n"),
      WithTasks("    - {name: a, count: 1, duration: .inf}\n"),
      WithTasks("    - {name: a, count: 1, duration: .nan}\n"),
      WithTasks("    - {name: a, count: 1, duration: !!binary aGVsbG8=}\n"),
      WithTasks("    - {name: a, count: 1, duration: 1, resources: {CPU: 1e300}}\n"),
      WithTasks(
          "    - {name: a, count: 1, duration: 1, arrival: {process: poisson, rate: 1e-300}}\n"),
      WithTasks("    - &g {name: a, count: 1, duration: 1}\n    - *g\n"),
      std::string(kCluster) + "? [complex, key]\n: 1\n",
  };
  for (const std::string& in : inputs) {
    auto s = Load(in);
    if (s.ok()) continue;
    EXPECT_EQ(s.status().message().rfind(Path(), 0), 0u) << s.status().message();
  }
}

TEST_F(ScenarioTest, MutatedScenariosNeverCrash) {
  // Seeded byte-level mutations of a real scenario: every result is a load or a located error.
  std::ifstream in(std::string(ORRERY_SCENARIO_DIR) + "/quickstart.yaml");
  const std::string base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(base.empty());
  uint64_t x = 12345;
  auto next = [&x](uint64_t n) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (x >> 33) % n;
  };
  const std::string alphabet = " :-[]{}#&*!|>'\"\n0123456789.aZ_,$";
  for (int round = 0; round < 300; ++round) {
    std::string m = base;
    for (int k = 0, edits = 1 + static_cast<int>(next(4)); k < edits; ++k) {
      const size_t pos = next(m.size());
      switch (next(3)) {
        case 0:
          m[pos] = alphabet[next(alphabet.size())];
          break;
        case 1:
          m.erase(pos, 1 + next(8));
          break;
        default:
          m.insert(pos, m.substr(next(m.size()), next(40)));
          break;
      }
    }
    auto s = Load(m);
    if (!s.ok()) {
      EXPECT_EQ(s.status().message().rfind(Path(), 0), 0u) << s.status().message();
    }
  }
}

TEST_F(ScenarioTest, ReadmeExampleLoads) {
  // The complete example of scenarios/README.md ("A complete small example") must stay valid.
  std::ifstream in(std::string(ORRERY_SCENARIO_DIR) + "/README.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t section = doc.find("## A complete small example");
  ASSERT_NE(section, std::string::npos);
  const size_t begin = doc.find("```yaml\n", section);
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("```", begin + 8);
  auto s = Load(doc.substr(begin + 8, end - begin - 8));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "tiny");
  EXPECT_EQ(s->tasks.size(), 25u);
  EXPECT_TRUE(s->warnings.empty()) << s->warnings.front();
}

// --- Shipped scenarios ---------------------------------------------------------------------------

TEST_F(ScenarioTest, ShippedScenariosLoad) {
  EnsureTraceDir();
  int loaded = 0;
  for (const auto& e : fs::directory_iterator(ORRERY_SCENARIO_DIR)) {
    if (e.path().extension() != ".yaml") continue;
    // GPU placement-replay scenarios (`kind: gpu_placement`) have their own loader and tests.
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("\nkind: gpu_placement") != std::string::npos) continue;
    auto s = LoadScenario(e.path().string());
    EXPECT_TRUE(s.ok()) << e.path() << ": " << s.status().ToString();
    if (s.ok()) {
      EXPECT_FALSE(s->tasks.empty()) << e.path();
      EXPECT_TRUE(s->warnings.empty()) << e.path() << ": " << s->warnings.front();
    }
    ++loaded;
  }
  EXPECT_GE(loaded, 6);
}

TEST_F(ScenarioTest, ScaleScenarioHasAMillionTasksOnTenThousandNodes) {
  auto s = LoadScenario(std::string(ORRERY_SCENARIO_DIR) + "/scale-10k-1m.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->nodes.size(), 10000u);
  EXPECT_EQ(s->tasks.size(), 1000000u);
}

// Regression (issue 12.1): a scenario nested past the limit (flow or block) is refused naming it.
TEST_F(ScenarioTest, NestingDeeperThanTheLimitIsRefused) {
  EXPECT_NE(Error("cluster: " + std::string(100000, '[') + std::string(100000, ']') + "\n")
                .find("nesting deeper than 64 levels"),
            std::string::npos);
  std::string block = "cluster:\n";
  for (int i = 0; i < 80; ++i) block += std::string(static_cast<size_t>(2 * i + 2), ' ') + "k:\n";
  EXPECT_NE(Error(block).find(Path() + ": nesting deeper than 64 levels (line "),
            std::string::npos);
}

}  // namespace
}  // namespace orrery::io

// --- owner: the driver's task submitter --------------------------------------------------------

namespace orrery::io {
namespace {

class OwnerSettingTest : public ScenarioTest {};

TEST_F(OwnerSettingTest, DefaultsToARayDriverAndReadsEveryKey) {
  auto d = Load(WithTasks("    - {name: a, count: 2, duration: 1s}\n"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->owner.reuse_leases);
  EXPECT_EQ(d->owner.max_pending_lease_requests_per_class, 10);
  EXPECT_EQ(d->owner.idle_lease_timeout_s, 0.0);
  EXPECT_DOUBLE_EQ(d->owner.lease_timeout_s, 0.5);
  auto s = Load(WithTasks("    - {name: a, count: 2, duration: 1s}\n") +
                "owner: {reuse_leases: false, max_pending_lease_requests_per_class: 3, "
                "idle_lease_timeout: 250ms, lease_timeout: 2s}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->owner.reuse_leases);
  EXPECT_EQ(s->owner.max_pending_lease_requests_per_class, 3);
  EXPECT_DOUBLE_EQ(s->owner.idle_lease_timeout_s, 0.25);
  EXPECT_DOUBLE_EQ(s->owner.lease_timeout_s, 2.0);
  const agent::SubmitterOptions o = OwnerSubmitterOptions(s->owner, agent::SubmitterOptions{});
  EXPECT_FALSE(o.reuse_leases);
  EXPECT_EQ(o.max_pending_lease_requests_per_class, 3);
  EXPECT_DOUBLE_EQ(o.idle_lease_timeout_s, 0.25);
  EXPECT_DOUBLE_EQ(o.lease_timeout_s, 2.0);
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1s}\n") +
                        "owner: {lease_timeout: soon}\n"),
                  "owner.lease_timeout");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1s}\n") +
                        "owner: {reuse_leases: maybe}\n"),
                  "owner.reuse_leases");
  EXPECT_CONTAINS(Error(WithTasks("    - {name: a, count: 1, duration: 1s}\n") +
                        "owner: {max_pending_lease_requests_per_class: -1}\n"),
                  "owner.max_pending_lease_requests_per_class");
}

// Ray's max_calls=1 default for GPU tasks: a GPU class's lease runs one task, then goes back (the
// simulator and live run alike; the C++ API does the same for its GPU classes).
TEST_F(OwnerSettingTest, AGpuClassRunsOneTaskPerLeaseUnlessTheOwnerSaysOtherwise) {
  const std::string tasks = WithTasks(R"(    - {name: a, count: 2, duration: 1s}
    - {name: g, count: 2, start: 1s, duration: 1s, resources: {CPU: 1, GPU: 1}}
)");
  auto per_class = [](const Scenario& s) {
    uint32_t n = 0;
    const std::vector<uint32_t> c = SchedulingClasses(s, &n);
    std::vector<int> out;
    for (const agent::ClassOptions& o : SchedulingClassOptions(s, c, n)) {
      out.push_back(o.max_tasks_per_lease);
    }
    return out;
  };
  auto d = Load(tasks);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->owner.gpu_tasks_per_lease, 1);
  EXPECT_EQ(per_class(*d), (std::vector<int>{0, 1}));
  auto off = Load(tasks + "owner: {gpu_tasks_per_lease: 0}\n");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(per_class(*off), (std::vector<int>{0, 0}));
  auto three = Load(tasks + "owner: {gpu_tasks_per_lease: 3}\n");
  ASSERT_TRUE(three.ok()) << three.status().ToString();
  EXPECT_EQ(per_class(*three), (std::vector<int>{0, 3}));
  EXPECT_CONTAINS(Error(tasks + "owner: {gpu_tasks_per_lease: -1}\n"), "owner.gpu_tasks_per_lease");
}

TEST_F(OwnerSettingTest, SchedulingClassesGroupNameShapeStrategyArgsEnvAndKind) {
  auto s = Load(WithTasks(R"(    - {name: a, count: 2, duration: 1s, output: 1MB}
    - {name: b, count: 1, start: 1s, duration: 2s}
    - {name: c, count: 1, start: 2s, duration: 1s, resources: {CPU: 2}}
    - {name: d, count: 1, start: 3s, duration: 1s, strategy: SPREAD}
    - {name: e, count: 1, start: 4s, duration: 1s, strategy: {type: NODE_AFFINITY, node: cpu-1}}
    - {name: f, count: 1, start: 5s, duration: 1s, strategy: {type: NODE_AFFINITY, node: cpu-2}}
    - {name: r, count: 2, start: 6s, duration: 1s, args: [{from: a, count: 1}]}
    - {name: g, count: 2, start: 7s, duration: 1s, args: [{node: cpu-1, bytes: 1MB}]}
)"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 11u);
  uint32_t n = 0;
  const std::vector<uint32_t> c = SchedulingClasses(*s, &n);
  ASSERT_EQ(c.size(), 11u);
  EXPECT_EQ(c[0], 0u);  // a, a: one function, one shape (durations do not matter)
  EXPECT_EQ(c[1], 0u);
  EXPECT_EQ(c[2], 1u);  // b: same shape, another function (Ray's class includes it)
  EXPECT_EQ(c[3], 2u);  // another shape
  EXPECT_EQ(c[4], 3u);  // SPREAD
  EXPECT_EQ(c[5], 4u);  // affinity to cpu-1
  EXPECT_EQ(c[6], 5u);  // affinity to cpu-2: another target, another class
  EXPECT_EQ(c[7], 6u);  // r of a's first output
  EXPECT_EQ(c[8], 7u);  // r of a's second output: other dependencies, another class
  EXPECT_EQ(c[9], 8u);  // g: the same object argument...
  EXPECT_EQ(c[10], 8u);  // ...the same class
  EXPECT_EQ(n, 9u);
}

}  // namespace
}  // namespace orrery::io

// --- control_plane: calibrated latencies (orrery calibrate) -------------------------------------

namespace orrery::io {
namespace {

class ControlPlaneTest : public ScenarioTest {
 protected:
  std::string Tasks() const { return WithTasks("    - {name: a, count: 1, duration: 1s}\n"); }
};

TEST_F(ControlPlaneTest, AbsentMeansEveryHopCostsTheNetworkOnly) {
  auto s = Load(Tasks());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->control_plane.given);
  EXPECT_EQ(s->control_plane.lease_request_s, 0.0);
  EXPECT_EQ(s->control_plane.task_start_s, 0.0);
}

TEST_F(ControlPlaneTest, AnInlineMapSetsItsLatenciesAndTheSettingsTheScenarioLeavesOut) {
  auto s = Load(Tasks() +
                "control_plane: {lease_request: 0.4ms, task_start: 0.6ms, worker_start: 12ms, "
                "task_finish: 0.1ms, report_period: 0.101, object_latency: 0.5ms, "
                "object_bandwidth: 8Gbps, spillback: 0.5ms, report_jitter: 2ms, "
                "resources_visible_remote: 60ms}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->control_plane.given);
  EXPECT_DOUBLE_EQ(s->control_plane.lease_request_s, 0.0004);
  EXPECT_DOUBLE_EQ(s->control_plane.task_start_s, 0.0006);
  EXPECT_DOUBLE_EQ(s->control_plane.task_finish_s, 0.0001);
  EXPECT_DOUBLE_EQ(s->control_plane.spillback_s, 0.0005);
  EXPECT_DOUBLE_EQ(s->control_plane.resources_visible_remote_s, 0.06);
  EXPECT_DOUBLE_EQ(s->env_cache.worker_startup_s, 0.012);
  EXPECT_DOUBLE_EQ(s->scheduler.report_period_s, 0.101);
  EXPECT_DOUBLE_EQ(s->network.latency_s, 0.00025);  // one way: half the fetch round trip
  EXPECT_DOUBLE_EQ(s->network.bandwidth_Bps, 1e9);
}

TEST_F(ControlPlaneTest, SettingsTheScenarioGivesWinOverCalibratedOnes) {
  const std::string cluster =
      "cluster:\n  node_types: [{name: cpu, count: 2, resources: {CPU: 4}}]\n"
      "  network: {latency: 1ms, bandwidth: 1Gbps}\n"
      "scheduler: {report_period: 250ms}\n"
      "runtime_env_cache: {worker_startup: 2s}\n"
      "workload:\n  tasks:\n    - {name: a, count: 1, duration: 1s}\n";
  auto s = Load(cluster +
                "control_plane: {worker_start: 12ms, report_period: 100ms, object_latency: "
                "0.5ms, object_bandwidth: 8Gbps}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ(s->env_cache.worker_startup_s, 2.0);
  EXPECT_DOUBLE_EQ(s->scheduler.report_period_s, 0.25);
  EXPECT_DOUBLE_EQ(s->network.latency_s, 0.001);
  EXPECT_DOUBLE_EQ(s->network.bandwidth_Bps, 1.25e8);
}

TEST_F(ControlPlaneTest, AFileWrittenByCalibrateIsIncludedRelativeToTheScenario) {
  fs::create_directories(dir_ / "cal");
  Write("cal/local.yaml",
        "# Measured by `orrery calibrate --local`\ncontrol_plane:\n  lease_request: 0.0003  # "
        "n=200\n  task_start: 0.0005\n  report_period: 0.1\n");
  auto s = Load(Tasks() + "control_plane: cal/local.yaml\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ(s->control_plane.lease_request_s, 0.0003);
  EXPECT_DOUBLE_EQ(s->control_plane.task_start_s, 0.0005);
}

TEST_F(ControlPlaneTest, BadBlocksAndFilesAreRefusedNamingFileAndField) {
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: {lease_request: soon}\n"),
                  "control_plane.lease_request");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: {lease_latency: 1ms}\n"), "lease_latency");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: {report_period: 0s}\n"),
                  "control_plane.report_period");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: missing.yaml\n"), "missing.yaml");
  Write("bad.yaml", "control_plane:\n  task_start: -1ms\n");
  const std::string e = Error(Tasks() + "control_plane: bad.yaml\n");
  EXPECT_CONTAINS(e, "bad.yaml:2");
  EXPECT_CONTAINS(e, "control_plane.task_start");
  Write("other.yaml", "owner: {reuse_leases: false}\ncontrol_plane: {task_start: 1ms}\n");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: other.yaml\n"), "other.yaml");
  Write("list.yaml", "- 1\n- 2\n");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: list.yaml\n"), "expected a map");
  Write("broken.yaml", "control_plane: {task_start: [1ms\n");
  EXPECT_CONTAINS(Error(Tasks() + "control_plane: broken.yaml\n"), "broken.yaml");
}

}  // namespace
}  // namespace orrery::io
