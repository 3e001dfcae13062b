// The gpu_placement scenario loader: defaults, overrides, paths and strict errors.
#include "core/io/gpu_scenario_loader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/gpu/gpu_test_util.h"

namespace orrery::gpu_replay {
namespace {

namespace fs = std::filesystem;

const std::string kData = ORRERY_GPU_TEST_DATA;
const std::string kTiny = kData + "/tiny.yaml";

std::string Error(const std::string& path, const std::vector<std::string>& overrides = {}) {
  auto s = io::LoadGpuScenario(path, overrides);
  return s.ok() ? "" : s.status().message();
}

// Writes `text` to a fresh file under the test temp dir; returns its path.
std::string WriteTemp(const std::string& name, const std::string& text) {
  const fs::path dir = fs::path(::testing::TempDir()) / "gpu_scenario_test";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(GpuScenario, LoadsTheTinyScenario) {
  auto s = io::LoadGpuScenario(kTiny);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->name, "tiny-gpu");
  EXPECT_EQ(s->seed, 3u);
  EXPECT_EQ(s->policy, "best-fit");
  EXPECT_DOUBLE_EQ(s->inflate, 1.3);
  EXPECT_TRUE(s->shuffle);
  EXPECT_EQ(fs::path(s->nodes_path), fs::path(kData + "/tiny_nodes.csv").lexically_normal());
  EXPECT_EQ(s->scores.scoring, gpu::Scoring::kKubernetes);
  EXPECT_EQ(s->scores.tie_break, gpu::TieBreak::kPermuted);
  EXPECT_DOUBLE_EQ(s->typical.coverage, 0.95);
}

TEST(GpuScenario, OverridesSetKeysTheFileOmits) {
  auto s = io::LoadGpuScenario(
      kTiny, {"workload.inflate=2", "seed=9", "scheduler.policy=fgd", "scheduler.scoring=exact",
              "scheduler.tie_break=random", "fragmentation.typical_pods_coverage=1"});
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_DOUBLE_EQ(s->inflate, 2);
  EXPECT_EQ(s->seed, 9u);
  EXPECT_EQ(s->policy, "fgd");
  EXPECT_EQ(s->scores.scoring, gpu::Scoring::kExact);
  EXPECT_EQ(s->scores.tie_break, gpu::TieBreak::kRandom);
  EXPECT_DOUBLE_EQ(s->typical.coverage, 1.0);
}

TEST(GpuScenario, TieBreakTakesEachModesName) {
  for (auto [name, mode] :
       {std::pair{"perm", gpu::TieBreak::kPermuted}, std::pair{"id", gpu::TieBreak::kLowestId},
        std::pair{"Random", gpu::TieBreak::kRandom}}) {
    auto s = io::LoadGpuScenario(kTiny, {std::string("scheduler.tie_break=") + name});
    ASSERT_TRUE(s.ok()) << s.status().message();
    EXPECT_EQ(s->scores.tie_break, mode) << name;
  }
}

TEST(GpuScenario, OverriddenPathsAreRelativeToTheCurrentDirectory) {
  const fs::path pods = fs::path(kData) / "tiny_pods.csv";
  const fs::path rel = fs::relative(pods, fs::current_path());
  auto s = io::LoadGpuScenario(kTiny, {"workload.pods=" + rel.string()});
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(fs::path(s->pods_path), (fs::current_path() / rel).lexically_normal());
}

TEST(GpuScenario, StrictErrorsNameFileLineAndField) {
  EXPECT_EQ(Error(kData + "/bad_key.yaml"),
            kData +
                "/bad_key.yaml:5: workload.inflat: unknown key (expected one of: nodes, pods, "
                "inflate, shuffle)");
  EXPECT_EQ(Error(kTiny, {"workload.inflate=lots"}),
            kTiny +
                " (--set workload.inflate=lots): workload.inflate: expected a number in [0, "
                "100], got 'lots'");
  EXPECT_EQ(Error(kTiny, {"scheduler.polcy=fgd"}),
            kTiny +
                " (--set scheduler.polcy=fgd): scheduler.polcy: unknown key (expected one of: "
                "policy, scoring, tie_break, spread_threshold, top_k_absolute, "
                "top_k_fraction, avoid_gpu_nodes)");
  EXPECT_EQ(Error(kTiny, {"workload=3"}),
            kTiny + " (--set workload=3): workload: is a section; set its keys");
  EXPECT_EQ(Error(kTiny, {"inflate"}), kTiny + " (--set inflate): expected dotted.path=value");
  EXPECT_EQ(Error(kTiny, {"scheduler.scoring=fuzzy"}),
            kTiny +
                " (--set scheduler.scoring=fuzzy): scheduler.scoring: expected kubernetes or "
                "exact, got 'fuzzy'");
  EXPECT_EQ(Error(kTiny, {"scheduler.tie_break=name"}),
            kTiny +
                " (--set scheduler.tie_break=name): scheduler.tie_break: expected perm, id or "
                "random, got 'name'");
  EXPECT_NE(Error(kTiny, {"scheduler.policy=fgd2"}).find("unknown GPU placement policy 'fgd2'"),
            std::string::npos);
  EXPECT_NE(Error(kTiny, {"workload.pods=/nonexistent.csv"}).find("does not exist"),
            std::string::npos);
}

TEST(GpuScenario, KindIsRequired) {
  const std::string p = WriteTemp("nokind.yaml", "workload: {nodes: a.csv, pods: b.csv}\n");
  EXPECT_EQ(Error(p), p + ": kind: required key is missing (expected gpu_placement)");
  const std::string q = WriteTemp("badkind.yaml", "kind: simgrid\nworkload: {}\n");
  EXPECT_EQ(Error(q), q + ":1: kind: expected gpu_placement, got 'simgrid'");
  EXPECT_FALSE(io::IsGpuPlacementFile(q));
  EXPECT_TRUE(io::IsGpuPlacementFile(kTiny));
  EXPECT_FALSE(io::IsGpuPlacementFile(kData + "/tiny_nodes.csv"));
  EXPECT_FALSE(io::IsGpuPlacementFile("/nonexistent.yaml"));
}

TEST(GpuScenario, DuplicateKeysAreErrors) {
  const std::string p =
      WriteTemp("dup.yaml", "kind: gpu_placement\nseed: 1\nseed: 2\nworkload: {}\n");
  EXPECT_EQ(Error(p), p + ":3: seed: duplicate key");
}

TEST(GpuScenario, VariablesInPaths) {
  setenv("ORRERY_GPU_TEST_DIR", kData.c_str(), 1);
  const std::string p =
      WriteTemp("vars.yaml",
                "kind: gpu_placement\nworkload:\n  nodes: ${ORRERY_GPU_TEST_DIR}/tiny_nodes.csv\n"
                "  pods: ${ORRERY_GPU_TEST_UNSET}/tiny_pods.csv\n");
  unsetenv("ORRERY_GPU_TEST_UNSET");
  EXPECT_EQ(Error(p),
            p + ":4: workload.pods: environment variable ORRERY_GPU_TEST_UNSET is not set");
  auto s = io::LoadGpuScenario(p, {"workload.pods=${ORRERY_GPU_TEST_DIR}/tiny_pods.csv"});
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->pods_path, kData + "/tiny_pods.csv");
  EXPECT_EQ(s->name, "vars");
}

TEST(GpuScenario, TheShippedAlibabaScenarioLoads) {
  setenv("ORRERY_TRACE_DIR", gpu::testing::TraceDir().c_str(), 0);
  auto s = io::LoadGpuScenario(std::string(ORRERY_SCENARIO_DIR) + "/alibaba-openb.yaml");
  if (!s.ok() && s.status().code() == StatusCode::kNotFound) GTEST_SKIP() << "trace not present";
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->name, "alibaba-openb");
  EXPECT_EQ(s->policy, "fgd");
  EXPECT_EQ(fs::path(s->pods_path).filename(), "openb_pod_list_default.csv");
  EXPECT_TRUE(io::IsGpuPlacementFile(std::string(ORRERY_SCENARIO_DIR) + "/alibaba-openb.yaml"));
}

}  // namespace
}  // namespace orrery::gpu_replay
