// `orrery sim run|compare` on gpu_placement scenarios, through the sim command's routing and
// directly: result files, the comparison table and files, and exit codes for bad input.
#include "sim/gpu_replay/gpu_cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/sim_cli.h"

namespace orrery::gpu_replay {
namespace {

namespace fs = std::filesystem;

const std::string kData = ORRERY_GPU_TEST_DATA;
const std::string kTiny = kData + "/tiny.yaml";

struct Result {
  int rc;
  std::string out, err;
};

Result Sim(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int rc = sim::SimCommand().run(args, out, err);
  return {rc, out.str(), err.str()};
}

std::string Fresh(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / "gpu_cli_test" / name;
  fs::remove_all(p);
  return p.string();
}

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

size_t Lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

TEST(GpuCli, RecognisesGpuScenariosAmongTheArguments) {
  EXPECT_TRUE(IsGpuPlacementInvocation({kTiny}));
  EXPECT_TRUE(IsGpuPlacementInvocation({"--seed", "3", "--set", "seed=1", kTiny, "--out", "x"}));
  EXPECT_TRUE(IsGpuPlacementInvocation({"--policy=fgd", kTiny}));
  EXPECT_FALSE(IsGpuPlacementInvocation({"--out", kTiny}));  // the value of --out, not a scenario
  EXPECT_FALSE(IsGpuPlacementInvocation({kData + "/tiny_nodes.csv"}));
  EXPECT_FALSE(IsGpuPlacementInvocation({}));
}

TEST(GpuCli, SimRunWritesTheResultFiles) {
  const std::string dir = Fresh("run");
  const Result r = Sim({"run", kTiny, "--out", dir});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("unallocated GPU"), std::string::npos) << r.out;
  for (const char* f : {"allocation.csv", "fragmentation.csv", "placements.csv", "summary.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
  }
  const std::string alloc = Slurp(fs::path(dir) / "allocation.csv");
  EXPECT_EQ(alloc.substr(0, alloc.find('\n')), "arrived_gpu_pct,allocated_gpu_pct");
  const auto j = nlohmann::json::parse(Slurp(fs::path(dir) / "summary.json"));
  EXPECT_EQ(j["scenario"], "tiny-gpu");
  EXPECT_EQ(j["policy"], "best-fit");
  EXPECT_EQ(j["seed"], 3);
  EXPECT_EQ(j["gpu_placement"]["arrivals"].get<size_t>(), Lines(alloc) - 1);
  EXPECT_EQ(j["tasks"]["total"].get<size_t>(), Lines(alloc) - 1);
}

TEST(GpuCli, PolicySeedAndSetOverrideTheFile) {
  const std::string dir = Fresh("overrides");
  const Result r = Sim({"run", kTiny, "--policy", "fgd", "--seed", "5", "--set",
                        "workload.inflate=2", "--out", dir});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(Slurp(fs::path(dir) / "summary.json"));
  EXPECT_EQ(j["policy"], "fgd");
  EXPECT_EQ(j["seed"], 5);
  EXPECT_EQ(j["gpu_placement"]["inflate"], 2.0);
}

TEST(GpuCli, BadTraceInputExits2NamingFileRowAndColumn) {
  const Result r = Sim(
      {"run", kTiny, "--set", "workload.pods=" + kData + "/bad_pods.csv", "--out", Fresh("bad")});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(kData + "/bad_pods.csv:3: column 'gpu_milli': expected a whole number in "
                               "[0, 1000], got 'half'"),
            std::string::npos)
      << r.err;
  const Result n = Sim({"run", kTiny, "--set", "workload.nodes=" + kData + "/tiny_pods.csv"});
  EXPECT_EQ(n.rc, 2);
  EXPECT_NE(n.err.find("tiny_pods.csv:1: missing column 'sn'"), std::string::npos) << n.err;
  EXPECT_EQ(Sim({"run", kData + "/bad_key.yaml"}).rc, 2);
  EXPECT_EQ(Sim({"run", kTiny, "--policy", "nope"}).rc, 2);
  EXPECT_EQ(Sim({"run", kTiny, "--decision-log", "x.log"}).rc, 2);
}

TEST(GpuCli, CompareRunsEveryCombinationAndWritesTableCsvAndPlots) {
  const std::string dir = Fresh("compare");
  const Result r = Sim({"compare", kTiny, "--policies", "fgd,random,hybrid", "--seeds", "3",
                        "--out", dir, "--jobs", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* p : {"fgd ", "random ", "hybrid ", "at 100% arrived"}) {
    EXPECT_NE(r.out.find(p), std::string::npos) << p << "\n" << r.out;
  }
  const std::string csv = Slurp(fs::path(dir) / "compare.csv");
  EXPECT_EQ(Lines(csv), 1u + 9u);
  EXPECT_EQ(csv.rfind("policy,seed,arrivals,placed,failed,infeasible,", 0), 0u);
  EXPECT_EQ(Lines(Slurp(fs::path(dir) / "compare_summary.csv")), 1u + 3u);
  const std::string curve = Slurp(fs::path(dir) / "compare_curve.csv");
  EXPECT_EQ(curve.substr(0, curve.find('\n')), "arrived_gpu_pct,fgd,random,hybrid");
  const std::string svg = Slurp(fs::path(dir) / "compare.svg");
  EXPECT_NE(svg.find(">fgd</text>"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "compare_zoom.svg"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "compare_frag.svg"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "fgd-seed1"));  // run dirs only with --run-dirs
}

TEST(GpuCli, CompareIsDeterministicAcrossThreadCounts) {
  const std::string a = Fresh("det1"), b = Fresh("det2");
  ASSERT_EQ(Sim({"compare", kTiny, "--seeds", "2", "--out", a, "--jobs", "1"}).rc, 0);
  ASSERT_EQ(Sim({"compare", kTiny, "--seeds", "2", "--out", b, "--jobs", "3", "--run-dirs"}).rc, 0);
  EXPECT_EQ(Slurp(fs::path(a) / "compare_curve.csv"), Slurp(fs::path(b) / "compare_curve.csv"));
  EXPECT_EQ(Slurp(fs::path(a) / "compare.svg"), Slurp(fs::path(b) / "compare.svg"));
  EXPECT_TRUE(fs::exists(fs::path(b) / "fgd-seed2" / "allocation.csv"));
}

TEST(GpuCli, CompareRejectsUnknownPolicies) {
  const Result r = Sim({"compare", kTiny, "--policies", "fgd,nope", "--out", Fresh("nope")});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("unknown GPU placement policy 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace orrery::gpu_replay
