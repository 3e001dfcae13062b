// ResultsApi (live/dashboard/results_api.h): the read-only routes of `orrery dashboard` over
// result directories written by the one result writer (core/results/run_record.h) and by a real
// `orrery sim run`.
#include "live/dashboard/results_api.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/results/run_record.h"

namespace orrery::live::dashboard {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class ResultsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/results_api_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }

  // A run of `n` tasks over 3 nodes (two slots each) written with the real renderers: task i
  // submitted at i*0.1 s, running 1 s on node n(i%3) after waiting i%4 * 0.05 s; the last one
  // still pending, waiting for resources.
  static results::RunRecord Record(int n, const std::string& policy = "hybrid") {
    results::RunRecord r;
    r.scenario = "tiny";
    r.backend = "sim";
    r.policy = policy;
    r.seed = 7;
    for (int i = 0; i < n; ++i) {
      results::TaskAttempt a;
      a.task_id = static_cast<uint64_t>(i);
      a.name = i % 2 ? "odd" : "even";
      a.job_id = "default";
      a.kind = "task";
      a.submit_s = i * 0.1;
      if (i == n - 1) {
        a.state = "pending";
        a.wait_reason = "waiting_for_resources";
      } else {
        a.start_s = a.submit_s + (i % 4) * 0.05;
        a.end_s = a.start_s + 1;
        a.node_id = "n" + std::to_string(i % 3);
        a.state = "finished";
        if (i % 4) a.wait_reason = "waiting_for_resources";
      }
      r.attempts.push_back(a);
    }
    for (int k = 0; k <= 10; ++k) {
      for (int node = 0; node < 3; ++node) {
        r.samples.push_back({k * 0.5, "orrery_node_cpu_utilization",
                             "node=n" + std::to_string(node), node * 0.25});
      }
      r.samples.push_back({k * 0.5, "orrery_scheduler_unschedulable_tasks",
                           "reason=waiting_for_resources", static_cast<double>(k % 3)});
    }
    r.makespan_s = n * 0.1 + 1;
    return r;
  }

  fs::path WriteRun(const std::string& name, const results::RunRecord& r) {
    const fs::path dir = root_ / name;
    Write(dir / "summary.json", results::RenderSummaryJson(r));
    Write(dir / "tasks.csv", results::RenderTasksCsv(r));
    Write(dir / "timeseries.csv", results::RenderTimeseriesCsv(r));
    return dir;
  }

  static http::Response Get(const ResultsApi& api, const std::string& path,
                            std::map<std::string, std::string> query = {}) {
    http::Request r;
    r.method = "GET";
    r.path = path;
    r.query = std::move(query);
    return api.Handle(r);
  }
  static json Body(const http::Response& r) { return json::parse(r.body); }

  static std::string OpenError(const std::vector<fs::path>& dirs) {
    auto api = ResultsApi::Open(dirs);
    return api.ok() ? "" : std::string(api.status().message());
  }

  fs::path root_;
};

TEST_F(ResultsApiTest, ModeListsTheRunWithItsSummary) {
  auto api = ResultsApi::Open({WriteRun("a", Record(20))});
  ASSERT_TRUE(api.ok()) << api.status().message();
  auto r = Get(**api, "/api/mode");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Body(r);
  EXPECT_EQ(j["mode"], "results");
  EXPECT_EQ(j["read_only"], true);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["index"], 0);
  EXPECT_EQ(j["runs"][0]["summary"]["scenario"], "tiny");
  EXPECT_EQ(j["runs"][0]["summary"]["tasks"]["total"], 20);
  EXPECT_NE(j["runs"][0]["label"].get<std::string>().find("sim"), std::string::npos);
}

TEST_F(ResultsApiTest, NotAResultDirectoryIsRefusedNamingIt) {
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(OpenError({root_ / "empty"}),
            (root_ / "empty").string() +
                ": not a result directory: no summary.json (expected the --out of sim run, live "
                "run or compare)");
  Write(root_ / "file", "x");
  EXPECT_NE(OpenError({root_ / "file"}).find("file: not a directory"), std::string::npos);
  EXPECT_NE(OpenError({root_ / "missing"}).find("missing: no such directory"), std::string::npos);
}

TEST_F(ResultsApiTest, MalformedFilesAreRefusedNamingFileLineAndField) {
  const fs::path dir = WriteRun("bad", Record(10));
  std::string csv = results::RenderTasksCsv(Record(10));
  // Line 4 (the third row): end_s is not a number.
  std::string bad = csv;
  size_t line_start = 0;
  for (int k = 0; k < 3; ++k) line_start = bad.find('\n', line_start) + 1;
  const size_t line_end = bad.find('\n', line_start);
  std::string row = bad.substr(line_start, line_end - line_start);
  // Columns: task_id,name,job_id,kind,submit_s,start_s,end_s,...: replace the 7th.
  size_t c = 0;
  for (int k = 0; k < 6; ++k) c = row.find(',', c) + 1;
  row.replace(c, row.find(',', c) - c, "soon");
  bad.replace(line_start, line_end - line_start, row);
  Write(dir / "tasks.csv", bad);
  EXPECT_EQ(OpenError({dir}), (dir / "tasks.csv").string() +
                                  ":4: end_s: expected a non-negative number or empty, got 'soon'");
  // A truncated file: the last row cut in the middle.
  Write(dir / "tasks.csv", csv.substr(0, csv.size() - 45));
  const std::string truncated = OpenError({dir});
  EXPECT_NE(truncated.find("tasks.csv:11: expected 12 fields (as the header), got"),
            std::string::npos)
      << truncated;
  EXPECT_NE(truncated.find("truncated"), std::string::npos);
  // A header without a required column.
  Write(dir / "tasks.csv", "task_id,name\n1,x\n");
  EXPECT_EQ(OpenError({dir}), (dir / "tasks.csv").string() + ":1: header: no column 'submit_s'");
  // summary.json that is not JSON, or lacks a field.
  Write(dir / "tasks.csv", csv);
  Write(dir / "summary.json", "{\"scenario\": ");
  EXPECT_NE(OpenError({dir}).find("summary.json: not valid JSON"), std::string::npos);
  Write(dir / "summary.json", R"({"scenario": "x", "backend": "sim"})");
  EXPECT_EQ(OpenError({dir}),
            (dir / "summary.json").string() + ": field 'tasks': expected an object");
  // timeseries.csv with a bad value.
  Write(dir / "summary.json", results::RenderSummaryJson(Record(10)));
  Write(dir / "timeseries.csv", "t_s,metric,labels,value\n0,orrery_tasks,state=running,many\n");
  EXPECT_EQ(OpenError({dir}),
            (dir / "timeseries.csv").string() + ":2: value: expected a number, got 'many'");
  // No tasks.csv next to the summary.
  fs::remove(dir / "tasks.csv");
  EXPECT_NE(OpenError({dir}).find("no tasks.csv"), std::string::npos);
}

TEST_F(ResultsApiTest, TwoDirectoriesAndACompareDirectoryAreRunsSideBySide) {
  auto api = ResultsApi::Open({WriteRun("a", Record(10, "hybrid")), WriteRun("b", Record(30, "spread"))});
  ASSERT_TRUE(api.ok()) << api.status().message();
  json mode = Body(Get(**api, "/api/mode"));
  ASSERT_EQ(mode["runs"].size(), 2u);
  EXPECT_EQ(mode["runs"][1]["summary"]["policy"], "spread");
  EXPECT_EQ(Body(Get(**api, "/api/runs/1/tasks"))["total"], 30);
  EXPECT_EQ(Body(Get(**api, "/api/runs/0/tasks"))["total"], 10);
  EXPECT_TRUE(mode["warnings"].empty()) << mode["warnings"];
  // Another scenario side by side is shown, with a warning naming the difference.
  results::RunRecord other = Record(5);
  other.scenario = "other";
  auto mixed = ResultsApi::Open({root_ / "a", WriteRun("c", other)});
  ASSERT_TRUE(mixed.ok());
  json warnings = Body(Get(**mixed, "/api/mode"))["warnings"];
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].get<std::string>().find("differ in scenario: \"tiny\""), std::string::npos)
      << warnings;

  // `orrery compare --out C`: C/sim and C/live.
  results::RunRecord live = Record(12);
  live.backend = "live";
  WriteRun("cmp/sim", Record(12));
  WriteRun("cmp/live", live);
  auto cmp = ResultsApi::Open({root_ / "cmp"});
  ASSERT_TRUE(cmp.ok()) << cmp.status().message();
  ASSERT_EQ((*cmp)->runs().size(), 2u);
  EXPECT_EQ((*cmp)->runs()[0].dir, (root_ / "cmp" / "sim").string());
  EXPECT_EQ(Body(Get(**cmp, "/api/runs/1/summary"))["backend"], "live");
}

TEST_F(ResultsApiTest, TasksPaginateAndFilter) {
  auto api = ResultsApi::Open({WriteRun("a", Record(25))});
  ASSERT_TRUE(api.ok());
  json page = Body(Get(**api, "/api/runs/0/tasks", {{"offset", "20"}, {"limit", "10"}}));
  EXPECT_EQ(page["total"], 25);
  EXPECT_EQ(page["offset"], 20);
  ASSERT_EQ(page["items"].size(), 5u);
  EXPECT_EQ(page["items"][0]["task_id"], 20);
  EXPECT_EQ(page["items"][4]["state"], "pending");
  EXPECT_TRUE(page["items"][4]["start_s"].is_null());
  EXPECT_EQ(page["by_state"]["finished"], 24);
  EXPECT_EQ(Body(Get(**api, "/api/runs/0/tasks", {{"node_id", "n1"}}))["total"], 8);
  EXPECT_EQ(Body(Get(**api, "/api/runs/0/tasks", {{"state", "pending"}}))["total"], 1);
  EXPECT_EQ(Body(Get(**api, "/api/runs/0/tasks", {{"q", "ODD"}}))["total"], 12);
}

TEST_F(ResultsApiTest, BadParametersAre400NamingThemAndUnknownRunsAre404) {
  auto api = ResultsApi::Open({WriteRun("a", Record(5))});
  ASSERT_TRUE(api.ok());
  struct Case {
    std::string path, param, value;
  };
  for (const Case& c : std::vector<Case>{{"/api/runs/0/tasks", "limit", "0"},
                                         {"/api/runs/0/tasks", "offset", "x"},
                                         {"/api/runs/0/timeline", "t0", "abc"},
                                         {"/api/runs/0/timeline", "px", "5"},
                                         {"/api/runs/0/series", "buckets", "1"},
                                         {"/api/runs/0/heatmap", "buckets", "-3"},
                                         {"/api/runs/0/cdf", "metric", "latency"},
                                         {"/api/runs/0/cdf", "points", "1e9"}}) {
    auto r = Get(**api, c.path, {{c.param, c.value}});
    EXPECT_EQ(r.status, 400) << c.path << " " << c.param;
    EXPECT_NE(Body(r)["error"].get<std::string>().find("'" + c.param + "'"), std::string::npos)
        << r.body;
  }
  auto inverted = Get(**api, "/api/runs/0/timeline", {{"t0", "3"}, {"t1", "1"}});
  EXPECT_EQ(inverted.status, 400);
  EXPECT_EQ(Get(**api, "/api/runs/1/summary").status, 404);
  EXPECT_EQ(Get(**api, "/api/runs/x/summary").status, 404);
  EXPECT_EQ(Get(**api, "/api/runs/0/nothing").status, 404);
  EXPECT_EQ(Get(**api, "/api/jobs").status, 404);
  http::Request post;
  post.method = "POST";
  post.path = "/api/mode";
  EXPECT_EQ((*api)->Handle(post).status, 405);
}

// Sum of n over the timeline's bars: every attempt in the window counted once.
size_t DrawnTasks(const json& timeline) {
  size_t n = 0;
  for (const auto& b : timeline["bars"]) n += b[5].get<size_t>();
  return n;
}

TEST_F(ResultsApiTest, TimelineStacksOverlappingAttemptsAndKeepsEveryTask) {
  auto api = ResultsApi::Open({WriteRun("a", Record(40))});
  ASSERT_TRUE(api.ok());
  json t = Body(Get(**api, "/api/runs/0/timeline"));
  ASSERT_EQ(t["lanes"].size(), 4u);  // n0, n1, n2 and the never-ran lane
  EXPECT_EQ(t["lanes"][0]["node_id"], "n0");
  EXPECT_EQ(t["lanes"][3]["node_id"], "");
  // A node runs a 1 s task every 0.3 s: up to four overlap, so four rows.
  EXPECT_GE(t["lanes"][0]["rows"].get<int>(), 3);
  EXPECT_EQ(t["tasks_in_window"], 40);
  EXPECT_EQ(DrawnTasks(t), 40u);
  // No two bars on one row of one lane overlap.
  for (const auto& a : t["bars"]) {
    for (const auto& b : t["bars"]) {
      if (&a == &b || a[0] != b[0] || a[1] != b[1]) continue;
      EXPECT_TRUE(a[3].get<double>() <= b[2].get<double>() ||
                  b[3].get<double>() <= a[2].get<double>());
    }
  }
  // A window: only the attempts overlapping it.
  json w = Body(Get(**api, "/api/runs/0/timeline", {{"t0", "0"}, {"t1", "0.5"}}));
  EXPECT_LT(w["tasks_in_window"].get<int>(), 40);
  EXPECT_EQ(DrawnTasks(w), w["tasks_in_window"].get<size_t>());
}

TEST_F(ResultsApiTest, DecimationMergesSubPixelBarsButKeepsTheCount) {
  // 100,000 attempts of 1 s over ~10,000 s, drawn 200 pixels wide (50 s a pixel).
  results::RunRecord r = Record(100000);
  auto api = ResultsApi::Open({WriteRun("big", r)});
  ASSERT_TRUE(api.ok());
  json t = Body(Get(**api, "/api/runs/0/timeline", {{"px", "200"}}));
  EXPECT_EQ(t["tasks_in_window"], 100000);
  EXPECT_EQ(DrawnTasks(t), 100000u);
  EXPECT_LT(t["bars"].size(), 5000u);
  // Zoomed in to 20 s, every bar is one attempt again.
  json z = Body(Get(**api, "/api/runs/0/timeline", {{"t0", "100"}, {"t1", "120"}, {"px", "2000"}}));
  EXPECT_EQ(z["bars"].size(), z["tasks_in_window"].get<size_t>());
  for (const auto& b : z["bars"]) EXPECT_EQ(b[5], 1);
}

TEST_F(ResultsApiTest, SeriesHeatmapWaitReasonsAndCdfs) {
  auto api = ResultsApi::Open({WriteRun("a", Record(20))});
  ASSERT_TRUE(api.ok());
  json s = Body(Get(**api, "/api/runs/0/series", {{"buckets", "30"}}));
  ASSERT_EQ(s["t"].size(), 30u);
  // At the very end only the never-started last task is pending and nothing runs.
  EXPECT_EQ(s["running"][29], 0);
  EXPECT_EQ(s["pending"][29], 1);
  int peak = 0;
  for (const auto& v : s["running"]) peak = std::max(peak, v.get<int>());
  EXPECT_GE(peak, 8);  // ~10 tasks of 1 s submitted per second

  json h = Body(Get(**api, "/api/runs/0/heatmap", {{"buckets", "6"}}));
  EXPECT_EQ(h["source"], "timeseries");
  ASSERT_EQ(h["nodes"].size(), 3u);
  EXPECT_DOUBLE_EQ(h["cells"][2][0].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(h["cells"][0][0].get<double>(), 0.0);

  json w = Body(Get(**api, "/api/runs/0/wait_reasons"));
  EXPECT_EQ(w["reasons"][0]["reason"], "waiting_for_resources");
  EXPECT_EQ(w["reasons"][0]["attempts"], 15);  // i % 4 != 0 among 19, plus the pending one
  EXPECT_EQ(w["reasons"][0]["still_pending"], 1);
  EXPECT_EQ(w["series"][0]["reason"], "waiting_for_resources");

  json jct = Body(Get(**api, "/api/runs/0/cdf", {{"metric", "jct"}}));
  EXPECT_EQ(jct["n"], 19);
  EXPECT_DOUBLE_EQ(jct["points"].back()[1].get<double>(), 1.0);
  EXPECT_NEAR(jct["points"].back()[0].get<double>(), 1.15, 1e-9);
  json q = Body(Get(**api, "/api/runs/0/cdf", {{"metric", "queue_delay"}, {"points", "3"}}));
  EXPECT_EQ(q["points"].size(), 3u);
  EXPECT_NEAR(q["points"][0][0].get<double>(), 0, 1e-9);
}

TEST_F(ResultsApiTest, HeatmapFallsBackToTasksWithoutTimeseries) {
  const fs::path dir = WriteRun("a", Record(20));
  fs::remove(dir / "timeseries.csv");
  auto api = ResultsApi::Open({dir});
  ASSERT_TRUE(api.ok()) << api.status().message();
  json h = Body(Get(**api, "/api/runs/0/heatmap", {{"buckets", "4"}}));
  EXPECT_EQ(h["source"], "tasks");
  ASSERT_EQ(h["nodes"].size(), 3u);
  double total = 0;
  for (const auto& row : h["cells"]) {
    for (const auto& v : row) total += v.get<double>();
  }
  EXPECT_GT(total, 0);
}

#ifdef ORRERY_BINARY
// A real `orrery sim run` of a small scenario opens and its timeline counts every attempt.
TEST_F(ResultsApiTest, OpensARealSimRun) {
  const std::string cmd = std::string(ORRERY_BINARY) + " sim run " + ORRERY_SOURCE_DIR +
                          "/scenarios/parity-tiny.yaml --no-progress --out " +
                          (root_ / "sim").string() + " > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto api = ResultsApi::Open({root_ / "sim"});
  ASSERT_TRUE(api.ok()) << api.status().message();
  const size_t rows = (*api)->runs()[0].attempts.size();
  EXPECT_GT(rows, 0u);
  json t = Body(Get(**api, "/api/runs/0/timeline"));
  EXPECT_EQ(DrawnTasks(t), rows);
  EXPECT_EQ(Body(Get(**api, "/api/runs/0/heatmap"))["source"], "timeseries");
}
#endif

}  // namespace
}  // namespace orrery::live::dashboard
