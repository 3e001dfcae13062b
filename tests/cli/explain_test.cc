// `orrery explain` as a user runs it: the real binary on case files (tests/cli/cases/*.json), its
// --json output read back and checked against DESIGN sections 3 and 8, and bad input checked for
// exit code 2 and a message that names the file, the field's JSON path and its line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct RunResult {
  int exit_code = -1;  // negative: killed by that signal
  std::string out;
  std::string err;
};

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every test gets its own scratch directory for generated inputs and captured output.
class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "orrery_explain_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp failed for " << tmpl;
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `orrery explain ARGS...`, stdout and stderr captured through files (no pipe deadlocks).
  RunResult Explain(const std::vector<std::string>& args) {
    const fs::path out = dir_ / "stdout";
    const fs::path err = dir_ / "stderr";
    std::vector<std::string> argv_s = {ORRERY_BINARY, "explain"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    RunResult r;
    const int rc = posix_spawn(&pid, ORRERY_BINARY, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn(" << ORRERY_BINARY << ") failed: " << rc;
      return r;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    r.out = ReadAll(out);
    r.err = ReadAll(err);
    return r;
  }

  static std::string Case(const std::string& name) {
    return (fs::path(ORRERY_TEST_DATA) / name).string();
  }

  // Runs a case file with --json; expects success and returns the parsed output.
  json ExplainJson(const std::string& name) {
    RunResult r = Explain({Case(name), "--json"});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(r.err, "") << name;
    return json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  json Decisions(const std::string& name) { return ExplainJson(name).at("decisions"); }

  fs::path Write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

  fs::path dir_;
};

// The row of node `id` in a decision's node table.
json NodeRow(const json& decision, const std::string& id) {
  for (const auto& n : decision.at("nodes")) {
    if (n.at("id") == id) return n;
  }
  ADD_FAILURE() << "no row for node " << id;
  return json::object();
}

std::vector<std::string> ChosenNodes(const json& decisions) {
  std::vector<std::string> out;
  for (const auto& d : decisions)
    out.push_back(d.at("node").is_null() ? "null" : d.at("node").get<std::string>());
  return out;
}

std::vector<std::string> Outcomes(const json& decisions) {
  std::vector<std::string> out;
  for (const auto& d : decisions) out.push_back(d.at("outcome").get<std::string>());
  return out;
}

using Strings = std::vector<std::string>;

// Regression (issue 12.1): a case file nested past the limit is refused naming the limit, before
// anything recurses over it; 64 levels still parse (and fail later on the fields).
TEST_F(ExplainTest, CaseNestedDeeperThanTheLimitIsRefusedNamingIt) {
  const auto nested = [](int depth) {
    return R"({"policy": )" + std::string(static_cast<size_t>(depth - 1), '[') + "1" +
           std::string(static_cast<size_t>(depth - 1), ']') + "}";
  };
  RunResult deep = Explain({Write("deep.json", nested(100000)).string()});
  EXPECT_EQ(deep.exit_code, 2) << deep.err;
  EXPECT_NE(deep.err.find("nesting deeper than 64 levels (line 1, column 75)"), std::string::npos)
      << deep.err;
  RunResult at_limit = Explain({Write("limit.json", nested(64)).string()});
  EXPECT_EQ(at_limit.exit_code, 2);
  EXPECT_EQ(at_limit.err.find("nesting deeper"), std::string::npos) << at_limit.err;
}

// ---------------------------------------------------------------------------------------------
// Hybrid (DEFAULT) policy.

TEST_F(ExplainTest, HybridBelowThresholdKeepsWorkOnTheLocalNode) {
  json d = Decisions("hybrid_below_threshold.json");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].at("node"), "n0");
  EXPECT_EQ(d[0].at("outcome"), "granted");
  EXPECT_EQ(d[0].at("policy"), "hybrid");
  // n0 is 25% busy: below the 0.5 threshold every node scores 0.
  EXPECT_EQ(NodeRow(d[0], "n0").at("score"), 0.0);
  EXPECT_EQ(NodeRow(d[0], "n0").at("available"), true);
  EXPECT_EQ(NodeRow(d[0], "n1").at("score"), 0.0);
}

TEST_F(ExplainTest, HybridAboveThresholdSpillsToTheLeastUtilisedNode) {
  json d = Decisions("hybrid_above_threshold.json");
  // n0 75% busy, n1 50%, n2 25% (scores 0.75, 0.5, 0): n2 wins; once it holds the first request
  // it scores 0.5 too and the tie goes to the lower id, n1.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n2", "n1"}));
  EXPECT_EQ(Outcomes(d), (Strings{"spillback", "spillback"}));
  EXPECT_DOUBLE_EQ(NodeRow(d[0], "n0").at("score").get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(NodeRow(d[0], "n1").at("score").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(NodeRow(d[0], "n2").at("score").get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(NodeRow(d[1], "n2").at("score").get<double>(), 0.5);
}

TEST_F(ExplainTest, PreferredNodeWinsOnlyWhenItScoresAsWellAsTheBest) {
  json d = Decisions("preferred_node.json");
  // Request 0 prefers n2, which ties with the best (0): it wins over the local node.
  // Request 1 prefers n1, which is 75% busy: the best-scoring node (n0, local) wins instead.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n2", "n0"}));
  EXPECT_EQ(Outcomes(d), (Strings{"spillback", "granted"}));
  EXPECT_NE(d[0].at("reason").get<std::string>().find("preferred"), std::string::npos);
}

// Regression (issue 11.12): README's example. The local node n0 scores 0.75 against n1's 0.00 yet
// wins, because GPU avoidance leaves n1 out; the reason and the table now say so.
TEST_F(ExplainTest, ReasonNamesTheRuleAndTheTableMarksSkippedNodes) {
  const fs::path c = Write("readme.json", R"({"kind": "schedule",
 "nodes": [{"id": "n0", "total": {"CPU": 4}, "available": {"CPU": 1}},
           {"id": "n1", "total": {"CPU": 4, "GPU": 1}},
           {"id": "n2", "total": {"CPU": 4}, "state": "draining"},
           {"id": "n3", "total": {"CPU": 1}}],
 "local": "n0",
 "options": {"spread_threshold": 0.5, "top_k_absolute": 1, "top_k_fraction": 0.2, "seed": 1},
 "requests": [{"resources": {"CPU": 2}}, {"resources": {"CPU": 1}}]})");
  RunResult r = Explain({c.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Request 0 ({"CPU": 2}): n0 has 1 CPU free, n3 can never hold it, n2 is draining, n1 has GPUs
  // and the GPU-avoidance pass finds no GPU-less node with 2 CPUs free: n1 is chosen.
  // Request 1 ({"CPU": 1}): GPU avoidance keeps it off n1; the preferred node n0 (0.75) is not
  // the best (n3 at 0.00), so the top-1 draw picks n3.
  const std::string req1 = r.out.substr(r.out.find("request 1"));
  EXPECT_NE(req1.find("n1    alive     yes       yes        0.500  skipped: has GPUs (GPU avoidance)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(req1.find("n0    alive     yes       yes        0.750  local, preferred, not chosen: its "
                      "score is above the best candidate's"),
            std::string::npos)
      << r.out;
  EXPECT_NE(req1.find("n2    draining"), std::string::npos);
  EXPECT_NE(req1.find("skipped: draining"), std::string::npos) << r.out;
  EXPECT_NE(req1.find("GPU avoidance: a request without GPU tries GPU-less nodes first"),
            std::string::npos)
      << r.out;
  const std::string req0 = r.out.substr(0, r.out.find("request 1"));
  EXPECT_NE(req0.find("skipped: can never hold the request"), std::string::npos) << r.out;
  EXPECT_EQ(req0.find("GPU avoidance: a request"), std::string::npos)
      << "request 0 was decided over all nodes: " << r.out;
  json d = Decisions(c.string());
  EXPECT_EQ(ChosenNodes(d), (Strings{"n1", "n3"}));
  EXPECT_NE(d[1].at("reason").get<std::string>().find("score is 0.000"), std::string::npos)
      << d.dump();
}

TEST_F(ExplainTest, TopKDrawsAmongTheKBestNodesReproducibly) {
  json d = Decisions("top_k.json");
  ASSERT_EQ(d.size(), 12u);
  std::set<std::string> chosen;
  for (const auto& dec : d) {
    const std::string node = dec.at("node");
    // The local n0 (0.75) and n4 (0.9) are never among the 3 best; n1..n3 all score 0.
    EXPECT_TRUE(node == "n1" || node == "n2" || node == "n3") << node;
    chosen.insert(node);
  }
  EXPECT_GE(chosen.size(), 2u) << "twelve seeded draws among three nodes all hit one node";
  // Same seed, same decisions, byte for byte.
  RunResult a = Explain({Case("top_k.json"), "--json"});
  RunResult b = Explain({Case("top_k.json"), "--json"});
  EXPECT_EQ(a.out, b.out);
}

TEST_F(ExplainTest, GpuAvoidanceSendsCpuWorkToGpuLessNodesFirst) {
  json d = Decisions("gpu_avoidance.json");
  // 1: CPU work avoids the idle GPU node n0 (even though it is local);
  // 2: n1 is now full, so the second pass over all nodes takes n0;
  // 3: GPU work goes to the GPU node and gets device 0.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n1", "n0", "n0"}));
  EXPECT_EQ(Outcomes(d), (Strings{"spillback", "granted", "granted"}));
  EXPECT_EQ(d[0].at("devices"), json::array());
  EXPECT_EQ(d[2].at("devices"), json::array({0}));
  EXPECT_EQ(NodeRow(d[1], "n1").at("available"), false);
}

TEST_F(ExplainTest, GpuAvoidanceOffKeepsCpuWorkOnTheLocalGpuNode) {
  json d = Decisions("gpu_avoidance_off.json");
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0"}));
  EXPECT_EQ(Outcomes(d), (Strings{"granted"}));
}

TEST_F(ExplainTest, ForceSpillbackExcludesTheLocalNodeAndCanBeOverriddenPerRequest) {
  json d = Decisions("force_spillback.json");
  EXPECT_EQ(ChosenNodes(d), (Strings{"n1", "n0"}));
  EXPECT_EQ(Outcomes(d), (Strings{"spillback", "granted"}));
}

TEST_F(ExplainTest, RequireAvailableMakesBusyClusterUnschedulable) {
  json d = Decisions("require_available.json");
  // 0 and 2 require availability: nothing is free, so unschedulable (not infeasible).
  // 1 does not: it is granted on the local node and waits there, so nothing is applied.
  EXPECT_EQ(Outcomes(d), (Strings{"unschedulable", "granted", "unschedulable"}));
  EXPECT_TRUE(d[0].at("node").is_null());
  EXPECT_EQ(d[1].at("node"), "n0");
  EXPECT_EQ(NodeRow(d[0], "n0").at("feasible"), true);
  EXPECT_EQ(NodeRow(d[0], "n0").at("available"), false);
  EXPECT_DOUBLE_EQ(NodeRow(d[0], "n0").at("score").get<double>(), 1.0);
}

TEST_F(ExplainTest, InfeasibleWhenNoAliveNodeCouldEverHoldTheRequest) {
  json d = Decisions("infeasible.json");
  EXPECT_EQ(Outcomes(d), (Strings{"infeasible", "infeasible", "infeasible"}));
  for (const auto& dec : d) EXPECT_TRUE(dec.at("node").is_null());
  EXPECT_EQ(NodeRow(d[0], "n0").at("feasible"), false);  // GPU 4 > 2 devices
  EXPECT_EQ(NodeRow(d[1], "n1").at("feasible"), false);  // no TPU anywhere
  // CPU 32 fits only the dead n2: feasible there by its totals, but dead nodes do not count.
  EXPECT_EQ(NodeRow(d[2], "n2").at("feasible"), true);
  EXPECT_EQ(NodeRow(d[2], "n1").at("feasible"), false);
}

TEST_F(ExplainTest, DrainingLocalNodeIsNeverChosen) {
  json d = Decisions("draining_local.json");
  EXPECT_EQ(ChosenNodes(d), (Strings{"n1"}));
  EXPECT_EQ(Outcomes(d), (Strings{"spillback"}));
}

TEST_F(ExplainTest, AppliedRequestsChangeLaterDecisions) {
  json d = Decisions("applied_requests.json");
  // n0 has 2 CPUs: the first two requests take them, the third must go to n1.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0", "n0", "n1"}));
  EXPECT_EQ(NodeRow(d[0], "n0").at("available"), true);
  EXPECT_EQ(NodeRow(d[1], "n0").at("available"), true);
  EXPECT_EQ(NodeRow(d[2], "n0").at("available"), false);
  EXPECT_EQ(NodeRow(d[2], "n0").at("feasible"), true);
  // Scores reflect the applied requests too (threshold 1.0, so only a full node scores).
  EXPECT_DOUBLE_EQ(NodeRow(d[2], "n0").at("score").get<double>(), 1.0);
}

TEST_F(ExplainTest, GpuRequestsReportTheDevicesTheyWereGiven) {
  json d = Decisions("gpu_devices.json");
  // GPU 1 takes device 0; both halves pack onto device 1; the last GPU 1 finds no whole free
  // device: it is granted to wait on the only node and nothing is applied.
  EXPECT_EQ(d[0].at("devices"), json::array({0}));
  EXPECT_EQ(d[1].at("devices"), json::array({1}));
  EXPECT_EQ(d[2].at("devices"), json::array({1}));
  EXPECT_EQ(d[3].at("outcome"), "granted");
  EXPECT_EQ(d[3].at("devices"), json::array());
  EXPECT_EQ(NodeRow(d[3], "n0").at("available"), false);
}

TEST_F(ExplainTest, PerDeviceAvailabilityIsHonoured) {
  json d = Decisions("gpu_device_availability.json");
  // n0 lists devices [0.5, 1]: a whole GPU can only be device 1. n1 gives the aggregate 1.5,
  // spread from the lowest id ([1, 0.5]): a whole GPU is device 0. The half then fits device 0
  // of n0.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0", "n1", "n0"}));
  EXPECT_EQ(d[0].at("devices"), json::array({1}));
  EXPECT_EQ(d[1].at("devices"), json::array({0}));
  EXPECT_EQ(d[2].at("devices"), json::array({0}));
}

TEST_F(ExplainTest, ZeroResourceActorsUseTheRandomPolicy) {
  json d = Decisions("zero_resource_actor.json");
  for (const auto& dec : d) {
    EXPECT_EQ(dec.at("policy"), "random");
    EXPECT_NE(dec.at("node"), "n2");  // dead
    EXPECT_FALSE(dec.at("node").is_null());
  }
}

TEST_F(ExplainTest, PolicyOptionSelectsTheDefaultPolicy) {
  json d = Decisions("policy_option.json");
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0", "n1", "n0"}));
  for (const auto& dec : d) EXPECT_EQ(dec.at("policy"), "spread");
}

// ---------------------------------------------------------------------------------------------
// Spread, affinity, locality.

TEST_F(ExplainTest, SpreadCursorCarriesOverBetweenRequests) {
  json d = Decisions("spread_cursor.json");
  // Ring by id n0 n1 n2 (the file lists them out of order); the DEFAULT request in the middle
  // does not move the cursor.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0", "n1", "n0", "n2", "n0"}));
  EXPECT_EQ(d[0].at("policy"), "spread");
  EXPECT_EQ(d[2].at("policy"), "hybrid");
}

TEST_F(ExplainTest, HardAffinityToADeadDrainingMissingOrTooSmallNodeIsCanceled) {
  json d = Decisions("affinity_hard.json");
  EXPECT_EQ(Outcomes(d), (Strings{"canceled", "canceled", "canceled", "canceled"}));
  for (const auto& dec : d) {
    EXPECT_TRUE(dec.at("node").is_null());
    EXPECT_EQ(dec.at("policy"), "node_affinity");
  }
  EXPECT_NE(d[0].at("reason").get<std::string>().find("dead"), std::string::npos);
  EXPECT_NE(d[1].at("reason").get<std::string>().find("not in the cluster"), std::string::npos);
  EXPECT_NE(d[2].at("reason").get<std::string>().find("draining"), std::string::npos);
}

TEST_F(ExplainTest, SoftAffinityFallsThroughToTheDefaultPolicy) {
  json d = Decisions("affinity_soft.json");
  // Dead target, then a busy target with spill_on_unavailable: both fall through to hybrid,
  // which keeps the work on the local node.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n0", "n0"}));
  EXPECT_EQ(Outcomes(d), (Strings{"granted", "granted"}));
  for (const auto& dec : d) {
    EXPECT_NE(dec.at("reason").get<std::string>().find("fell through"), std::string::npos)
        << dec.at("reason");
  }
}

TEST_F(ExplainTest, BusyAffinityTargetWaitsFailsOrSpills) {
  json d = Decisions("affinity_busy.json");
  // No flag: the task waits on the busy target (chosen, not applied).
  // fail_on_unavailable: canceled. Hard spill_on_unavailable: nowhere to fall: canceled.
  // An available target: granted and applied.
  EXPECT_EQ(Outcomes(d), (Strings{"spillback", "canceled", "canceled", "granted"}));
  EXPECT_EQ(ChosenNodes(d), (Strings{"n1", "null", "null", "n0"}));
  EXPECT_NE(d[1].at("reason").get<std::string>().find("fail_on_unavailable"), std::string::npos);
  EXPECT_NE(d[2].at("reason").get<std::string>().find("spill_on_unavailable"), std::string::npos);
  EXPECT_EQ(NodeRow(d[1], "n1").at("available"), false);  // the waiting task took nothing
}

TEST_F(ExplainTest, LocalityPrefersTheNodeHoldingTheMostArgumentBytes) {
  json d = Decisions("locality.json");
  // 16 bytes on n2 beat 8 on n1; a 10/10 tie goes to n3 which reached it first; an explicit
  // preferred node beats locality; SPREAD ignores locality.
  EXPECT_EQ(ChosenNodes(d), (Strings{"n2", "n3", "n1", "n0"}));
  EXPECT_EQ(d[3].at("policy"), "spread");
}

// ---------------------------------------------------------------------------------------------
// Placement groups.

// Σ of a resource over `bundles` whose placement is `node`.
double Placed(const json& out, const json& bundles, const std::string& node,
              const std::string& res) {
  double sum = 0;
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (out.at("placement").at(i) == node && bundles[i].contains(res)) {
      sum += bundles[i].at(res).get<double>();
    }
  }
  return sum;
}

json NodeAfter(const json& out, const std::string& id) {
  for (const auto& n : out.at("nodes_after")) {
    if (n.at("id") == id) return n;
  }
  ADD_FAILURE() << "no nodes_after entry for " << id;
  return json::object();
}

TEST_F(ExplainTest, PlacementPackPutsBundlesOnTheNodeWithMostHeadroom) {
  json out = ExplainJson("pg_pack.json");
  EXPECT_EQ(out.at("outcome"), "placed");
  EXPECT_EQ(out.at("placement"), json::array({"n1", "n1"}));
  EXPECT_EQ(NodeAfter(out, "n1").at("available"), json({{"CPU", 4}}));
  EXPECT_EQ(NodeAfter(out, "n1").at("total"), json({{"CPU", 8}}));
  EXPECT_EQ(NodeAfter(out, "n0").at("available"), json({{"CPU", 4}}));
}

TEST_F(ExplainTest, PlacementSpreadUsesDistinctNodesWhileItCan) {
  json out = ExplainJson("pg_spread.json");
  EXPECT_EQ(out.at("outcome"), "placed");
  const auto placement = out.at("placement").get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(placement.begin(), placement.end()).size(), 3u);
  for (const char* id : {"n0", "n1", "n2"}) {
    EXPECT_EQ(NodeAfter(out, id).at("available"), json({{"CPU", 3}})) << id;
  }
}

TEST_F(ExplainTest, PlacementStrictPackTriesTheSoftTargetFirst) {
  json out = ExplainJson("pg_strict_pack_soft_target.json");
  EXPECT_EQ(out.at("outcome"), "placed");
  EXPECT_EQ(out.at("placement"), json::array({"n1", "n1"}));
  EXPECT_EQ(NodeAfter(out, "n1").at("available"), json({{"CPU", 3}}));
  EXPECT_EQ(NodeAfter(out, "n0").at("available"), json({{"CPU", 8}}));
}

TEST_F(ExplainTest, PlacementStrictPackIsInfeasibleWhenNoNodeTotalHoldsTheSum) {
  json out = ExplainJson("pg_strict_pack_infeasible.json");
  EXPECT_EQ(out.at("outcome"), "infeasible");
  EXPECT_EQ(out.at("placement"), json::array());
  EXPECT_EQ(NodeAfter(out, "n0").at("available"), json({{"CPU", 4}}));
  EXPECT_EQ(NodeAfter(out, "n1").at("available"), json({{"CPU", 2}}));
}

TEST_F(ExplainTest, PlacementStrictSpreadUsesOneNodePerBundle) {
  json out = ExplainJson("pg_strict_spread.json");
  const json bundles = json::parse(ReadAll(Case("pg_strict_spread.json"))).at("bundles");
  EXPECT_EQ(out.at("outcome"), "placed");
  const auto placement = out.at("placement").get<std::vector<std::string>>();
  ASSERT_EQ(placement.size(), 3u);
  EXPECT_EQ(std::set<std::string>(placement.begin(), placement.end()).size(), 3u);
  // Every node lost exactly what its bundle asked for.
  for (const char* id : {"n0", "n1", "n2"}) {
    const json after = NodeAfter(out, id).at("available");
    EXPECT_DOUBLE_EQ(after.value("CPU", 0.0), 2 - Placed(out, bundles, id, "CPU")) << id;
    EXPECT_DOUBLE_EQ(after.value("GPU", 0.0), 1 - Placed(out, bundles, id, "GPU")) << id;
  }
}

TEST_F(ExplainTest, PlacementStrictSpreadIsInfeasibleWithMoreBundlesThanLiveNodes) {
  json out = ExplainJson("pg_strict_spread_infeasible.json");
  EXPECT_EQ(out.at("outcome"), "infeasible");
  EXPECT_EQ(out.at("placement"), json::array());
}

TEST_F(ExplainTest, PlacementThatFailsNowLeaksNothing) {
  json out = ExplainJson("pg_failed_no_leak.json");
  // Three CPUs are needed, two are free: retry later (failed), not never (infeasible).
  EXPECT_EQ(out.at("outcome"), "failed");
  EXPECT_EQ(out.at("placement"), json::array());
  EXPECT_FALSE(out.at("reason").get<std::string>().empty());
  EXPECT_EQ(NodeAfter(out, "n0").at("available"), json({{"CPU", 1}, {"GPU", 0.5}}));
  EXPECT_EQ(NodeAfter(out, "n0").at("total"), json({{"CPU", 4}, {"GPU", 2}}));
  EXPECT_EQ(NodeAfter(out, "n1").at("available"), json({{"CPU", 1}}));
}

// ---------------------------------------------------------------------------------------------
// Autoscaler (DESIGN section 4).

using Counts = std::map<std::string, int>;

Counts Launch(const json& out) {
  Counts c;
  for (const auto& [type, n] : out.at("launch").items()) c[type] = n.get<int>();
  return c;
}

Strings Terminate(const json& out) { return out.at("terminate").get<Strings>(); }

TEST_F(ExplainTest, AutoscaleHundredCpuTasksPickTheTypesTheyFillBest) {
  // 100 x {CPU 1} over types of 2, 16 and 64 CPUs: 64 first (it fills completely and scores
  // 64), then 16 twice (36 left would fill a 64 only to 56 %: 64 * 0.5625^3 = 11.4 < 16), then
  // 2 twice (4 left: 2 beats 16 * 0.25^3 = 0.25). Exactly 100 CPUs, nothing idle.
  RunResult r = Explain({Case("autoscale_hundred_cpu_tasks.json"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(Launch(out), (Counts{{"cpu16", 2}, {"cpu2", 2}, {"cpu64", 1}}));
  EXPECT_EQ(Terminate(out), Strings{});
  EXPECT_EQ(out.at("infeasible"), json::array());
  // Launch keys are printed sorted by type name (byte-wise).
  EXPECT_LT(r.out.find("\"cpu16\""), r.out.find("\"cpu2\""));
  EXPECT_LT(r.out.find("\"cpu2\""), r.out.find("\"cpu64\""));
}

TEST_F(ExplainTest, AutoscaleCpuDemandLaunchesNoGpuNode) {
  const json out = ExplainJson("autoscale_gpu_avoidance.json");
  EXPECT_EQ(Launch(out), (Counts{{"cpu2", 32}}));
}

TEST_F(ExplainTest, AutoscaleStrictSpreadOfEightGpuBundlesLaunchesEightNodes) {
  const json out = ExplainJson("autoscale_strict_spread_gpus.json");
  // One node per bundle; the 1-GPU type fits a bundle best. Gang launches are not capped at 5.
  EXPECT_EQ(Launch(out), (Counts{{"gpu1", 8}}));
}

TEST_F(ExplainTest, AutoscaleRespectsTypeAndClusterMaxWorkers) {
  const json out = ExplainJson("autoscale_limits.json");
  // big (max 1) wins first; small has room for one more beside s0; then the cluster (max 4) is
  // full and tiny cannot hold {CPU 4}: three units wait.
  EXPECT_EQ(Launch(out), (Counts{{"big", 1}, {"small", 1}}));
  RunResult text = Explain({Case("autoscale_limits.json")});
  EXPECT_NE(text.out.find("waiting for a later round:\n  3 demand units"), std::string::npos)
      << text.out;
}

TEST_F(ExplainTest, AutoscaleCapsPendingLaunchesByUpscalingSpeed) {
  const json out = ExplainJson("autoscale_upscaling_speed.json");
  // max(5, 2.0 * 3 running) = 6 pending allowed, one pending already: 5 launches of 19 wanted.
  EXPECT_EQ(Launch(out), (Counts{{"cpu1", 5}}));
  RunResult text = Explain({Case("autoscale_upscaling_speed.json")});
  EXPECT_NE(text.out.find("14 launches of cpu1 deferred by upscaling_speed"), std::string::npos)
      << text.out;
}

TEST_F(ExplainTest, AutoscaleLaunchesMinWorkersWhichAlsoServeDemand) {
  const json out = ExplainJson("autoscale_min_workers.json");
  EXPECT_EQ(Launch(out), (Counts{{"cpu4", 8}, {"gpu1", 1}}));
  RunResult text = Explain({Case("autoscale_min_workers.json")});
  EXPECT_NE(text.out.find("cpu4  8  (8 for min_workers)"), std::string::npos) << text.out;
}

TEST_F(ExplainTest, AutoscaleTerminatesPendingThenLongestIdleThenLeastUtilised) {
  const json out = ExplainJson("autoscale_terminate_order.json");
  EXPECT_EQ(Terminate(out), (Strings{"p2", "p1", "ilong", "ishort", "b25"}));
  EXPECT_EQ(Launch(out), Counts{});
}

TEST_F(ExplainTest, AutoscaleTerminatesIdleNodesBeyondMinWorkers) {
  const json out = ExplainJson("autoscale_idle.json");
  // Longest idle first; n3 (200 s) is within the timeout, n5 is busy, the head is not managed.
  EXPECT_EQ(Terminate(out), (Strings{"n4", "n2", "n1"}));
  RunResult text = Explain({Case("autoscale_idle.json")});
  EXPECT_NE(text.out.find("n4  idle: idle for 600 s (idle_timeout 300 s)"), std::string::npos)
      << text.out;
}

TEST_F(ExplainTest, AutoscaleReportsInfeasibleDemandAndPlansTheRest) {
  const json out = ExplainJson("autoscale_infeasible.json");
  EXPECT_EQ(out.at("infeasible"), json::parse(R"([{"CPU": 32}, {"GPU": 8}, {"TPU": 1}])"));
  // The PACK gang of two {GPU 2} takes one gpu4 node, whose CPUs then hold the {CPU 2} demand.
  EXPECT_EQ(Launch(out), (Counts{{"gpu4", 1}}));
  RunResult text = Explain({Case("autoscale_infeasible.json")});
  EXPECT_NE(text.out.find("{\"GPU\": 8} x4"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("{\"CPU\": 32} x1  (gang 0)"), std::string::npos) << text.out;
}

// ---------------------------------------------------------------------------------------------
// Runtime-env cache (DESIGN section 4).

TEST_F(ExplainTest, EnvCacheDesignExample) {
  EXPECT_EQ(ExplainJson("env_cache_design_example.json"),
            json::parse(R"({"total_bytes": 8, "evicted": ["a"], "deletes": 1})"));
}

TEST_F(ExplainTest, EnvCacheEachPolicyEvictsInItsOwnOrder) {
  // a (4 bytes, used twice, released last), b (2), c (3) unused; d (4) makes 13 > 10.
  EXPECT_EQ(ExplainJson("env_cache_policy_arbitrary.json"),
            json::parse(R"({"total_bytes": 9, "evicted": ["a"], "deletes": 1})"));
  EXPECT_EQ(ExplainJson("env_cache_policy_lru.json"),
            json::parse(R"({"total_bytes": 8, "evicted": ["b", "c"], "deletes": 2})"));
  EXPECT_EQ(ExplainJson("env_cache_policy_gdsf.json"),
            json::parse(R"({"total_bytes": 10, "evicted": ["c"], "deletes": 1})"));
}

TEST_F(ExplainTest, EnvCacheNeverEvictsEntriesInUse) {
  EXPECT_EQ(ExplainJson("env_cache_in_use.json"),
            json::parse(R"({"total_bytes": 6, "evicted": ["a"], "deletes": 1})"));
  RunResult text = Explain({Case("env_cache_in_use.json")});
  // 12 bytes over a 10-byte limit while both are in use; a goes when its last user leaves.
  EXPECT_NE(text.out.find("1    add b 6    12     miss: installed, in use by 1\n"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("4    unused a   6      released; evicted a (6 bytes)"),
            std::string::npos)
      << text.out;
}

TEST_F(ExplainTest, EnvCacheKindsHaveTheirOwnLimits) {
  EXPECT_EQ(ExplainJson("env_cache_kinds.json"),
            json::parse(R"({"total_bytes": 76, "evicted": ["pip1"], "deletes": 1})"));
}

TEST_F(ExplainTest, HumanEnvCacheOutputShowsEveryOp) {
  RunResult r = Explain({Case("env_cache_policy_lru.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("env_cache: policy lru, limit 10 bytes per kind, 9 ops"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("6    used a     9      hit, in use by 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8    add d 4    8      miss: installed, in use by 1; evicted b (2 bytes), "
                       "c (3 bytes)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("total 8 bytes; evicted b, c (2 deletes); hits 1, misses 4"),
            std::string::npos)
      << r.out;
}

// ---------------------------------------------------------------------------------------------
// Output shape and human output.

TEST_F(ExplainTest, EveryCaseFileProducesExactlyTheDesignKeys) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(ORRERY_TEST_DATA)) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    const json out = ExplainJson(name);
    ASSERT_TRUE(out.is_object());
    std::set<std::string> keys;
    for (const auto& [k, v] : out.items()) keys.insert(k);
    if (keys.count("decisions") != 0) {
      EXPECT_EQ(keys, (std::set<std::string>{"decisions"}));
      for (const auto& d : out.at("decisions")) {
        std::set<std::string> dk;
        for (const auto& [k, v] : d.items()) dk.insert(k);
        EXPECT_EQ(
            dk, (std::set<std::string>{"node", "outcome", "reason", "policy", "devices", "nodes"}));
        std::string prev;
        for (const auto& n : d.at("nodes")) {
          std::set<std::string> nk;
          for (const auto& [k, v] : n.items()) nk.insert(k);
          EXPECT_EQ(nk, (std::set<std::string>{"id", "feasible", "available", "score"}));
          EXPECT_LT(prev, n.at("id").get<std::string>()) << "nodes must be in id order";
          prev = n.at("id");
        }
      }
    } else if (keys.count("launch") != 0) {
      EXPECT_EQ(keys, (std::set<std::string>{"launch", "terminate", "infeasible"}));
      EXPECT_TRUE(out.at("launch").is_object());
      EXPECT_TRUE(out.at("terminate").is_array());
      EXPECT_TRUE(out.at("infeasible").is_array());
    } else if (keys.count("total_bytes") != 0) {
      EXPECT_EQ(keys, (std::set<std::string>{"total_bytes", "evicted", "deletes"}));
      EXPECT_EQ(out.at("deletes"), out.at("evicted").size());
    } else {
      EXPECT_EQ(keys, (std::set<std::string>{"outcome", "placement", "reason", "nodes_after"}));
    }
    // The human form of the same case succeeds too.
    RunResult text = Explain({Case(name)});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    const char* marker = keys.count("launch") != 0        ? "launch:"
                         : keys.count("total_bytes") != 0 ? "total "
                                                          : "reason";
    EXPECT_NE(text.out.find(marker), std::string::npos) << text.out;
  }
  EXPECT_GE(files, 20);
}

TEST_F(ExplainTest, HumanOutputShowsTheTableTheChosenNodeAndTheOutcome) {
  RunResult r = Explain({Case("hybrid_above_threshold.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("request 0: {\"CPU\": 1}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("node  state     feasible  available  score"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  -> n2    alive     yes       yes        0.000"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("     n0    alive     yes       yes        0.750  local"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("outcome: spillback on n2 (policy hybrid; applied)"), std::string::npos)
      << r.out;
}

TEST_F(ExplainTest, HumanPlacementOutputListsBundlesAndNodesAfter) {
  RunResult r = Explain({Case("pg_pack.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bundle 0: {\"CPU\": 2} -> n1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome: placed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("{\"CPU\": 8} / {\"CPU\": 4}"), std::string::npos) << r.out;
}

// ---------------------------------------------------------------------------------------------
// Usage and bad input: exit 2, nothing on stdout, the message names what is wrong.

TEST_F(ExplainTest, UsageErrorsExitTwoWithUsage) {
  for (const auto& args : std::vector<Strings>{
           {}, {"--bogus", Case("pg_pack.json")}, {Case("pg_pack.json"), Case("pg_spread.json")}}) {
    RunResult r = Explain(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("usage: orrery explain CASE.json [--json]"), std::string::npos) << r.err;
  }
  RunResult help = Explain({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage:"), std::string::npos);
}

TEST_F(ExplainTest, MissingFileOrDirectoryIsBadInput) {
  const std::string missing = (dir_ / "nope.json").string();
  RunResult r = Explain({missing, "--json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind(missing + ": cannot open", 0), 0u) << r.err;
  RunResult d = Explain({dir_.string()});
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.err.find("is a directory"), std::string::npos) << d.err;
}

TEST_F(ExplainTest, ErrorsNameTheLineOfTheOffendingField) {
  const fs::path p = Write("lines.json", R"({"kind": "schedule",
 "nodes": [{"id": "n0", "total": {"CPU": 4, "GPU": 1}}],
 "local": "n0",
 "requests": [
   {"resources": {"CPU": 1}},
   {"resources": {"CPU": 1, "GPU": -1}}
 ]}
)");
  RunResult r = Explain({p.string(), "--json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, p.string() +
                       ": requests[1].resources.GPU: expected a quantity >= 0, got -1 (line 6, "
                       "column 36)\n");
}

struct BadInput {
  const char* name;
  std::string content;
  // Each must appear in the message (after "FILE: ").
  std::vector<std::string> expect;
};

// A valid schedule case with `nodes`, `requests` and extra top-level members substituted.
std::string ScheduleDoc(const std::string& nodes, const std::string& requests,
                        const std::string& extra = "", const std::string& local = "n0") {
  return R"({"kind": "schedule", "local": ")" + local + R"(", "nodes": )" + nodes +
         R"(, "requests": )" + requests + extra + "}";
}
const std::string kNodes =
    R"([{"id": "n0", "total": {"CPU": 4, "GPU": 2}}, {"id": "n1", "total": {"CPU": 4}}])";
const std::string kReq = R"([{"resources": {"CPU": 1}}])";

std::vector<BadInput> BadInputs() {
  auto req = [](const std::string& r) { return ScheduleDoc(kNodes, "[" + r + "]"); };
  auto node = [](const std::string& n) { return ScheduleDoc("[" + n + "]", kReq); };
  auto pg = [](const std::string& rest) {
    return R"({"kind": "placement_group", "nodes": [{"id": "n0", "total": {"CPU": 4}}], )" + rest +
           "}";
  };
  auto as = [](const std::string& rest) {
    return R"({"kind": "autoscale", "node_types": {"a": {"resources": {"CPU": 4}}}, )" + rest + "}";
  };
  auto env = [](const std::string& ops, const std::string& limit = "10") {
    return R"({"kind": "env_cache", "limit_bytes": )" + limit + R"(, "ops": )" + ops + "}";
  };
  return {
      {"Empty", "", {"the file is empty"}},
      {"WhitespaceOnly", " \n\t\n", {"the file is empty"}},
      {"Binary", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), {"not a text file", "line 3"}},
      {"NotUtf8", "{\"kind\": \"sched\xff\"}", {"not a UTF-8 text file", "0xff", "column 16"}},
      {"MalformedJson",
       "{\"kind\": \"schedule\",\n \"nodes\": [,]}",
       {"malformed JSON at line 2, column 12", "syntax error"}},
      {"TruncatedJson", "{\"kind\": \"schedule\", \"nodes\": [", {"malformed JSON at line 1"}},
      {"NotAnObject", "[1, 2]", {"expected a JSON object, got an array (line 1, column 1)"}},
      {"MissingKind", R"({"nodes": []})", {"kind: required key is missing"}},
      {"UnknownKind",
       R"({"kind": "shedule"})",
       {"kind: expected one of schedule|placement_group|autoscale|env_cache, got \"shedule\""}},
      {"UnknownTopLevelKey",
       ScheduleDoc(kNodes, kReq, R"(, "requestz": [])"),
       {"requestz: unknown key (expected one of: kind, nodes, local, options, requests)"}},
      {"DuplicateJsonKey",
       R"({"kind": "schedule", "kind": "schedule"})",
       {"kind: duplicate key \"kind\" (line 1, column 22)"}},
      {"NodesNotArray",
       ScheduleDoc("{}", kReq),
       {"nodes: expected an array of nodes, got an object"}},
      {"BadState",
       ScheduleDoc(
           R"([{"id": "n0", "total": {}}, {"id": "n1", "total": {}}, {"id": "n2", "total": {}, "state": "up"}])",
           kReq),
       {"nodes[2].state: expected one of alive|draining|dead, got \"up\""}},
      {"UnknownNodeKey",
       node(R"({"id": "n0", "total": {}, "lables": {}})"),
       {"nodes[0].lables: unknown key (expected one of: id, total, available, devices, labels, "
        "state)"}},
      {"MissingNodeId", node(R"({"total": {}})"), {"nodes[0].id: required key is missing"}},
      {"EmptyNodeId", node(R"({"id": "", "total": {}})"), {"nodes[0].id: expected a node id"}},
      {"DuplicateNodeIds",
       ScheduleDoc(R"([{"id": "n0", "total": {}}, {"id": "n0", "total": {}}])", kReq),
       {"nodes[1].id: duplicate node id \"n0\" (also nodes[0].id)"}},
      {"FractionalGpuTotal",
       node(R"({"id": "n0", "total": {"GPU": 1.5}})"),
       {"nodes[0].total.GPU: GPU is counted per device: the total must be a whole number, got "
        "1.5"}},
      {"AvailableAboveTotal",
       node(R"({"id": "n0", "total": {"CPU": 2}, "available": {"CPU": 3}})"),
       {"nodes[0].available.CPU: 3 is above the total 2"}},
      {"AvailableNotInTotal",
       node(R"({"id": "n0", "total": {"CPU": 2}, "available": {"GPU": 1}})"),
       {"nodes[0].available.GPU: the node has no GPU in its total"}},
      {"DeviceListWrongLength",
       node(R"({"id": "n0", "total": {"GPU": 2}, "devices": {"GPU": [1]}})"),
       {"nodes[0].devices.GPU: expected 2 entries"}},
      {"DeviceAboveOne",
       node(R"({"id": "n0", "total": {"GPU": 2}, "devices": {"GPU": [1, 1.5]}})"),
       {"nodes[0].devices.GPU[1]: a device has capacity 1, got 1.5"}},
      {"LabelNotString",
       node(R"({"id": "n0", "total": {}, "labels": {"zone": 1}})"),
       {"nodes[0].labels.zone: expected a string, got 1"}},
      {"LocalNotANode",
       ScheduleDoc(kNodes, kReq, "", "n9"),
       {"local: \"n9\" is not the id of a node in nodes"}},
      {"NegativeGpu",
       req(R"({"resources": {"GPU": -1}})"),
       {"requests[0].resources.GPU: expected a quantity >= 0, got -1"}},
      {"FractionalGpuAboveOne",
       req(R"({"resources": {"GPU": 1.5}})"),
       {"requests[0].resources.GPU: GPU is allocated per device: a request above 1 must be a whole "
        "number, got 1.5"}},
      {"QuantityAsString",
       req(R"({"resources": {"CPU": "1"}})"),
       {"requests[0].resources.CPU: expected a quantity >= 0, got \"1\""}},
      {"HugeQuantity",
       req(R"({"resources": {"CPU": 1e999}})"),
       {"malformed JSON", "number overflow", "1e999"}},
      {"BelowResolution",
       req(R"({"resources": {"CPU": 0.00001}})"),
       {"requests[0].resources.CPU: quantity 1e-05 is below the 0.0001 resolution"}},
      {"MissingResources",
       req(R"({"strategy": {"type": "SPREAD"}})"),
       {"requests[0].resources: required key is missing"}},
      {"UnknownRequestKey",
       req(R"({"resources": {}, "resouces": {}})"),
       {"requests[0].resouces: unknown key"}},
      {"UnknownStrategyType",
       req(R"({"resources": {}, "strategy": {"type": "PACK"}})"),
       {"requests[0].strategy.type: expected one of DEFAULT|SPREAD|NODE_AFFINITY, got \"PACK\""}},
      {"AffinityEmptyNode",
       req(R"({"resources": {}, "strategy": {"type": "NODE_AFFINITY", "node": ""}})"),
       {"requests[0].strategy.node: expected a node id (a non-empty string without spaces or "
        "control characters), got \"\""}},
      {"AffinityMalformedNode",
       req(R"({"resources": {}, "strategy": {"type": "NODE_AFFINITY", "node": "n 1"}})"),
       {"requests[0].strategy.node: expected a node id"}},
      {"AffinityMissingNode",
       req(R"({"resources": {}, "strategy": {"type": "NODE_AFFINITY"}})"),
       {"requests[0].strategy.node: required key is missing"}},
      {"AffinityFieldOnSpread",
       req(R"({"resources": {}, "strategy": {"type": "SPREAD", "soft": true}})"),
       {"requests[0].strategy.soft: only valid with type NODE_AFFINITY"}},
      {"SpillAndFail",
       req(R"({"resources": {}, "strategy": {"type": "NODE_AFFINITY", "node": "n1", "spill_on_unavailable": true, "fail_on_unavailable": true}})"),
       {"requests[0].strategy.fail_on_unavailable: spill_on_unavailable and fail_on_unavailable "
        "cannot both be true"}},
      {"PreferredUnknown",
       req(R"({"resources": {}, "preferred": "nx"})"),
       {"requests[0].preferred: \"nx\" is not the id of a node in nodes"}},
      {"ArgBytesNegative",
       req(R"({"resources": {}, "args": [{"bytes": -8, "nodes": ["n0"]}]})"),
       {"requests[0].args[0].bytes: expected an integer >= 0, got -8"}},
      {"ArgNodeUnknown",
       req(R"({"resources": {}, "args": [{"bytes": 8, "nodes": ["n0", "zz"]}]})"),
       {"requests[0].args[0].nodes[1]: \"zz\" is not the id of a node in nodes"}},
      {"ActorNotBool",
       req(R"({"resources": {}, "actor": "yes"})"),
       {"requests[0].actor: expected true or false, got \"yes\""}},
      {"EmptyRequests",
       ScheduleDoc(kNodes, "[]"),
       {"requests: expected a non-empty array of requests"}},
      {"UnknownOption",
       ScheduleDoc(kNodes, kReq, R"(, "options": {"spread": 0.5})"),
       {"options.spread: unknown key (expected one of: policy, spread_threshold"}},
      {"UnknownPolicy",
       ScheduleDoc(kNodes, kReq, R"(, "options": {"policy": "fastest"})"),
       {"options.policy: expected one of ", "hybrid", "got \"fastest\""}},
      {"ThresholdOutOfRange",
       ScheduleDoc(kNodes, kReq, R"(, "options": {"spread_threshold": 1.5})"),
       {"options.spread_threshold: expected a number between 0 and 1, got 1.5"}},
      {"TopKZero",
       ScheduleDoc(kNodes, kReq, R"(, "options": {"top_k_absolute": 0})"),
       {"options.top_k_absolute: expected an integer between 1 and 1000000, got 0"}},
      {"SeedNotInteger",
       ScheduleDoc(kNodes, kReq, R"(, "options": {"seed": 1.5})"),
       {"options.seed: expected an integer >= 0, got 1.5"}},
      {"PlacementNoBundles",
       pg(R"("bundles": [])"),
       {"bundles: expected a non-empty array of bundles"}},
      {"PlacementEmptyBundle",
       pg(R"("bundles": [{"CPU": 1}, {"CPU": 0}])"),
       {"bundles[1]: a bundle must request at least one resource"}},
      {"PlacementUnknownStrategy",
       pg(R"("bundles": [{"CPU": 1}], "strategy": "STRICT")"),
       {"strategy: expected one of PACK|SPREAD|STRICT_PACK|STRICT_SPREAD, got \"STRICT\""}},
      {"PlacementSoftTargetNeedsStrictPack",
       pg(R"("bundles": [{"CPU": 1}], "strategy": "PACK", "soft_target": "n0")"),
       {"soft_target: only used with strategy STRICT_PACK"}},
      {"PlacementScheduleKey",
       pg(R"("bundles": [{"CPU": 1}], "local": "n0")"),
       {"local: unknown key (expected one of: kind, nodes, bundles, strategy, soft_target)"}},
      // ---- autoscale
      {"AutoscaleMissingNodeTypes",
       R"({"kind": "autoscale"})",
       {"node_types: required key is missing"}},
      {"AutoscaleEmptyNodeTypes",
       R"({"kind": "autoscale", "node_types": {}})",
       {"node_types: expected a non-empty object of node types, got an object"}},
      {"AutoscaleBadTypeName",
       R"({"kind": "autoscale", "node_types": {"a b": {"resources": {}}}})",
       {"node_types[\"a b\"]: a node type name must be non-empty, without spaces or control "
        "characters"}},
      {"AutoscaleTypeWithoutResources",
       R"({"kind": "autoscale", "node_types": {"a": {}}})",
       {"node_types.a.resources: required key is missing"}},
      {"AutoscaleUnknownTypeKey",
       R"({"kind": "autoscale", "node_types": {"a": {"resources": {}, "min": 1}}})",
       {"node_types.a.min: unknown key (expected one of: resources, min_workers, max_workers, "
        "labels)"}},
      {"AutoscaleFractionalGpuType",
       R"({"kind": "autoscale", "node_types": {"g": {"resources": {"GPU": 1.5}}}})",
       {"node_types.g.resources.GPU: GPU is counted per device: the total must be a whole number, "
        "got 1.5"}},
      {"AutoscaleMinAboveMax",
       R"({"kind": "autoscale", "node_types": {"a": {"resources": {}, "min_workers": 3, "max_workers": 2}}})",
       {"node_types.a.max_workers: max_workers 2 is below min_workers 3"}},
      {"AutoscaleNegativeMinWorkers",
       R"({"kind": "autoscale", "node_types": {"a": {"resources": {}, "min_workers": -1}}})",
       {"node_types.a.min_workers: expected an integer >= 0, got -1"}},
      {"AutoscaleClusterMaxBelowMins",
       R"({"kind": "autoscale", "max_workers": 1, "node_types": {"a": {"resources": {}, "min_workers": 2}}})",
       {"max_workers: max_workers 1 is below the sum of the node types' min_workers (2)"}},
      {"AutoscaleSpeedOutOfRange",
       as(R"("upscaling_speed": -1)"),
       {"upscaling_speed: expected a number between 0 and 1e+06, got -1"}},
      {"AutoscaleIdleTimeoutNotNumber",
       as(R"("idle_timeout_s": "5m")"),
       {"idle_timeout_s: expected a number, got \"5m\""}},
      {"AutoscaleScheduleKey",
       as(R"("local": "n0")"),
       {"local: unknown key (expected one of: kind, node_types, max_workers, upscaling_speed, "
        "idle_timeout_s, now_s, nodes, demands, gangs)"}},
      {"AutoscaleUnknownNodeType",
       as(R"("nodes": [{"id": "n0", "total": {}, "type": "zz"}])"),
       {"nodes[0].type: \"zz\" is not a node type in node_types"}},
      {"AutoscaleBadStatus",
       as(R"("nodes": [{"id": "n0", "total": {}, "type": "a", "status": "booting"}])"),
       {"nodes[0].status: expected one of pending|running|terminating, got \"booting\""}},
      {"AutoscaleIdlePendingNode",
       as(R"("nodes": [{"id": "n0", "total": {}, "status": "pending", "idle_s": 5}])"),
       {"nodes[0].idle_s: only a running node can be idle"}},
      {"AutoscaleNegativeIdle",
       as(R"("nodes": [{"id": "n0", "total": {}, "idle_s": -5}])"),
       {"nodes[0].idle_s: expected a number between 0 and 1e+12, got -5"}},
      {"AutoscaleUnknownNodeKey",
       as(R"("nodes": [{"id": "n0", "total": {}, "typ": "a"}])"),
       {"nodes[0].typ: unknown key (expected one of: id, total, available, devices, labels, state, "
        "type, status, idle_s, launch_time_s)"}},
      {"AutoscaleDuplicateNodes",
       as(R"("nodes": [{"id": "n0", "total": {}}, {"id": "n0", "total": {}}])"),
       {"nodes[1].id: duplicate node id \"n0\" (also nodes[0].id)"}},
      {"AutoscaleDemandsNotArray",
       as(R"("demands": {"CPU": 1})"),
       {"demands: expected an array of demands, got an object"}},
      {"AutoscaleEmptyDemand",
       as(R"("demands": [{"CPU": 1}, {}])"),
       {"demands[1]: a demand must request at least one resource"}},
      {"AutoscaleNegativeDemand",
       as(R"("demands": [{"CPU": -1}])"),
       {"demands[0].CPU: expected a quantity >= 0, got -1"}},
      {"AutoscaleFractionalGpuDemand",
       as(R"("demands": [{"GPU": 1.5}])"),
       {"demands[0].GPU: GPU is allocated per device: a request above 1 must be a whole number, "
        "got 1.5"}},
      {"AutoscaleDemandCountZero",
       as(R"("demands": [{"resources": {"CPU": 1}, "count": 0}])"),
       {"demands[0].count: expected an integer between 1 and 1000000000, got 0"}},
      {"AutoscaleDemandMissingCount",
       as(R"("demands": [{"resources": {"CPU": 1}}])"),
       {"demands[0].count: required key is missing"}},
      {"AutoscaleDemandUnknownKey",
       as(R"("demands": [{"resources": {"CPU": 1}, "count": 2, "label": 1}])"),
       {"demands[0].label: unknown key (expected one of: resources, count)"}},
      {"AutoscaleGangBadStrategy",
       as(R"("gangs": [{"strategy": "SPREADY", "bundles": [{"CPU": 1}]}])"),
       {"gangs[0].strategy: expected one of PACK|SPREAD|STRICT_PACK|STRICT_SPREAD, got "
        "\"SPREADY\""}},
      {"AutoscaleGangNoBundles",
       as(R"("gangs": [{"strategy": "PACK", "bundles": []}])"),
       {"gangs[0].bundles: expected a non-empty array of bundles"}},
      {"AutoscaleGangEmptyBundle",
       as(R"("gangs": [{"bundles": [{"CPU": 1}, {"CPU": 0}]}])"),
       {"gangs[0].bundles[1]: a bundle must request at least one resource"}},
      // ---- env_cache
      {"EnvCacheMissingLimit",
       R"({"kind": "env_cache", "ops": [["add", "a", 1]]})",
       {"limit_bytes: required key is missing"}},
      {"EnvCacheLimitNotBytes",
       env(R"([["add", "a", 1]])", R"("10GB")"),
       {"limit_bytes: expected a number of bytes (every kind) or an object {kind: bytes}, got "
        "\"10GB\""}},
      {"EnvCacheNegativeKindLimit",
       env(R"([["add", "a", 1]])", R"({"pip": -1})"),
       {"limit_bytes.pip: expected an integer >= 0, got -1"}},
      {"EnvCacheUnknownPolicy",
       R"({"kind": "env_cache", "limit_bytes": 10, "policy": "fifo", "ops": [["add", "a", 1]]})",
       {"policy: expected one of arbitrary|lru|gdsf, got \"fifo\""}},
      {"EnvCacheUnknownKey",
       R"({"kind": "env_cache", "limit_bytes": 10, "nodes": [], "ops": [["add", "a", 1]]})",
       {"nodes: unknown key (expected one of: kind, limit_bytes, policy, ops)"}},
      {"EnvCacheNoOps", env("[]"), {"ops: expected a non-empty array of operations"}},
      {"EnvCacheOpNotArray",
       env(R"(["add"])"),
       {"ops[0]: expected [\"add\", URI, BYTES], [\"add\", URI, BYTES, KIND], [\"used\", URI] "
        "or [\"unused\", URI], got \"add\""}},
      {"EnvCacheUnknownOp",
       env(R"([["delete", "a"]])"),
       {"ops[0][0]: expected one of add|used|unused, got \"delete\""}},
      {"EnvCacheAddWithoutSize",
       env(R"([["add", "a"]])"),
       {"ops[0]: expected [\"add\", URI, BYTES]", "got an array of 2"}},
      {"EnvCacheUsedWithSize",
       env(R"([["add", "a", 1], ["used", "a", 1]])"),
       {"ops[1]: expected ", "got an array of 3"}},
      {"EnvCacheNegativeSize",
       env(R"([["add", "a", -4]])"),
       {"ops[0][2]: expected an integer >= 0, got -4"}},
      {"EnvCacheHugeSize",
       env(R"([["add", "a", 10000000000000000]])"),
       {"ops[0][2]: expected an integer between 0 and 1000000000000000, got 10000000000000000"}},
      {"EnvCacheEmptyUri",
       env(R"([["add", "", 4]])"),
       {"ops[0][1]: expected a URI (a non-empty string without control characters), got \"\""}},
      {"EnvCacheUsedBeforeAdd",
       env(R"([["used", "a"]])"),
       {"ops[0]: \"a\" is not in the cache (never added, or evicted)"}},
      {"EnvCacheUsedAfterEviction",
       env(R"([["add", "a", 4], ["unused", "a"], ["add", "b", 8], ["used", "a"]])"),
       {"ops[3]: \"a\" is not in the cache (never added, or evicted); it was evicted by ops[2]"}},
      {"EnvCacheUnusedTwice",
       env(R"([["add", "a", 4], ["unused", "a"], ["unused", "a"]])"),
       {"ops[2]: \"a\" is not in use: every add and used of it was already matched by an "
        "unused"}},
      {"EnvCacheSizeMismatch",
       env(R"([["add", "a", 4], ["add", "a", 5]])"),
       {"ops[1]: \"a\" is cached with 4 bytes, not 5 (a URI is a content hash: same URI, same "
        "size)"}},
      {"EnvCacheKindMismatch",
       env(R"([["add", "a", 4, "pip"], ["add", "a", 4, "conda"]])"),
       {"ops[1]: \"a\" is cached as kind \"pip\", not \"conda\" (a URI has one kind)"}},
      {"EnvCacheKindWithoutLimit",
       env(R"([["add", "a", 4, "conda"]])", R"({"pip": 10})"),
       {"ops[0][3]: kind \"conda\" has no limit in limit_bytes"}},
      {"EnvCacheDefaultKindWithoutLimit",
       env(R"([["add", "a", 4]])", R"({"pip": 10})"),
       {"ops[0]: kind \"default\" has no limit in limit_bytes"}},
  };
}

class BadInputTest : public ExplainTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(BadInputTest, ExitsTwoNamingTheFileAndTheField) {
  const BadInput& b = GetParam();
  const fs::path p = Write("case.json", b.content);
  for (bool as_json : {true, false}) {
    RunResult r = as_json ? Explain({p.string(), "--json"}) : Explain({p.string()});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(p.string() + ": ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    for (const auto& e : b.expect) EXPECT_NE(r.err.find(e), std::string::npos) << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Explain, BadInputTest, ::testing::ValuesIn(BadInputs()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
