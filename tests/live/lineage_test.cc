// Issue 18.3, objects survive their node: `live run` map -> reduce where the node holding the
// map's output crashes before the reduce fetches it. The output is rebuilt by running the map
// again (Ray's lineage reconstruction, counted against its max_retries); without retries left
// the reduce fails naming the object, the node and why.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {
using namespace test;  // NOLINT: the fixture

struct Row {
  std::string task_id, name, node, state, attempt;
};
std::vector<Row> Rows(const std::string& csv) {
  std::vector<Row> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // task_id,name,job_id,kind,submit_s,start_s,end_s,node_id,state,attempt
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (f.size() >= 10) out.push_back({f[0], f[1], f[7], f[8], f[9]});
  }
  return out;
}

// The map runs on n1 (soft affinity) and ends at ~0.3 s; n1 crashes at 1 s, so its store (the
// only copy of the map's output) is gone when the reduce arrives at 2 s.
std::string MapReduce(int map_max_retries) {
  return R"(name: lineage-live
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
    - {id: n1, resources: {CPU: 2}}
failures:
  - {at: 1s, node: n1, action: crash}
workload:
  tasks:
    - {name: map, count: 1, duration: 300ms, output: 1MB, max_retries: )" +
         std::to_string(map_max_retries) + R"(,
       strategy: {type: NODE_AFFINITY, node: n1, soft: true}}
    - {name: reduce, count: 1, start: 2s, duration: 100ms,
       args: [{from: map, count: 1, pick: same_index}]}
)";
}

TEST(LineageTest, LostMapOutputIsRebuiltAndTheReduceSucceeds) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "lineage.yaml";
  std::ofstream(scenario) << MapReduce(1);
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--temp-dir", c.root(), "--out",
                     (dir / "out").string(), "--progress"},
                    milliseconds(60000));
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  const auto rows = Rows(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 3u) << ReadAll(dir / "out" / "tasks.csv") << r.err;
  // The map: attempt 0 on n1, then the rebuild (attempt 1) on the surviving node.
  EXPECT_EQ(rows[0].name, "map");
  EXPECT_EQ(rows[0].attempt, "0");
  EXPECT_EQ(rows[0].node, "n1");
  EXPECT_EQ(rows[0].state, "finished");
  EXPECT_EQ(rows[1].name, "map");
  EXPECT_EQ(rows[1].attempt, "1");
  EXPECT_EQ(rows[1].node, "n0");
  EXPECT_EQ(rows[1].state, "finished");
  EXPECT_EQ(rows[2].name, "reduce");
  EXPECT_EQ(rows[2].state, "finished") << r.err;
  EXPECT_NE(r.err.find("rebuilding it: task 0 attempt 1"), std::string::npos) << r.err;
  json summary = json::parse(ReadAll(dir / "out" / "summary.json"), nullptr, false);
  EXPECT_EQ(summary["tasks"]["finished"], 2);
}

TEST(LineageTest, LostObjectWithoutRetriesFailsTheReduceNamingObjectNodeAndCause) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "lineage0.yaml";
  std::ofstream(scenario) << MapReduce(0);
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--temp-dir", c.root(), "--out",
                     (dir / "out").string(), "--progress"},
                    milliseconds(60000));
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  const auto rows = Rows(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 2u) << ReadAll(dir / "out" / "tasks.csv") << r.err;
  EXPECT_EQ(rows[0].state, "finished");
  EXPECT_EQ(rows[1].name, "reduce");
  EXPECT_EQ(rows[1].state, "failed");
  // The reduce's failure names the object, the node that held it and why it cannot be rebuilt.
  const std::string want =
      "-obj-t0 (the output of task 0, map) is lost: it was only on node n1 "
      "(node n1 crashed); task 0 has no retries left to rebuild it "
      "(max_retries 0, 0 used)";
  EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("task 1 (reduce) failed"), std::string::npos) << r.err;
}

// The same with separate daemons and a node SIGKILLed from outside the run (no `failures`
// entry: the run learns it only from the head or from the failed fetch, whichever comes first),
// just before the reduce is submitted.
TEST(LineageTest, ExternallyKilledHolderIsRebuiltForTheReduce) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  const int b_pid = c.Node("b").value("pid", 0);
  ASSERT_GT(b_pid, 0);
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "killed.yaml";
  std::ofstream(scenario) << R"(name: lineage-killed
cluster:
  nodes:
    - {id: a, resources: {CPU: 2}}
    - {id: b, resources: {CPU: 2}}
workload:
  tasks:
    - {name: map, count: 1, duration: 300ms, output: 1MB, max_retries: 2,
       strategy: {type: NODE_AFFINITY, node: b, soft: true}}
    - {name: reduce, count: 1, start: 700ms, duration: 100ms,
       args: [{from: map, count: 1, pick: same_index}]}
)";
  RunResult r;
  std::thread run([&] {
    r = c.Orrery({"live", "run", scenario.string(), "--address", c.address(), "--temp-dir",
                  c.root(), "--out", (dir / "out").string(), "--progress"},
                 milliseconds(60000));
  });
  // b is killed as soon as the map finished there, 0.4 s before the reduce arrives: the head
  // has not declared b dead yet (0.5 s), so the reduce's node usually finds b gone when it
  // fetches (the attempt that failed fetching is prepared again; not counted as a retry).
  HeadClient head(c.address(), c.Token());
  const bool map_done = Eventually(
      [&] {
        auto t = head.ListTasks();
        if (!t.ok()) return false;
        for (const auto& rec : t->tasks()) {
          if (rec.node_id() == "b" && rec.state() == v1::TASK_STATE_FINISHED) return true;
        }
        return false;
      },
      milliseconds(20000));
  ::kill(b_pid, SIGKILL);
  run.join();
  ASSERT_TRUE(map_done) << r.err;
  const fs::path tasks_csv = dir / "out" / "tasks.csv";
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  const auto rows = Rows(ReadAll(tasks_csv));
  ASSERT_GE(rows.size(), 3u) << ReadAll(tasks_csv) << r.err;
  EXPECT_EQ(rows[0].name, "map");
  EXPECT_EQ(rows[0].node, "b");
  EXPECT_EQ(rows[0].state, "finished");
  EXPECT_EQ(rows[1].name, "map");
  EXPECT_EQ(rows[1].attempt, "1");
  EXPECT_EQ(rows[1].node, "a");
  EXPECT_EQ(rows[1].state, "finished");
  EXPECT_EQ(rows.back().name, "reduce");
  EXPECT_EQ(rows.back().state, "finished") << ReadAll(tasks_csv) << r.err;
}

// An object the scenario created at the start on the crashed node has no lineage: its consumer
// fails, naming it and the node.
TEST(LineageTest, LostInitialObjectFailsItsConsumer) {
  LiveCluster c;
  const fs::path dir = fs::path(c.root()).parent_path();
  const fs::path scenario = dir / "put.yaml";
  std::ofstream(scenario) << R"(name: lineage-put
cluster:
  nodes:
    - {id: n0, resources: {CPU: 2}}
    - {id: n1, resources: {CPU: 2}}
failures:
  - {at: 500ms, node: n1, action: crash}
workload:
  tasks:
    - {name: use, count: 1, start: 1500ms, duration: 100ms, args: [{node: n1, bytes: 1MB}]}
)";
  auto r = c.Orrery({"live", "run", scenario.string(), "--local", "--temp-dir", c.root(), "--out",
                     (dir / "out").string(), "--progress"},
                    milliseconds(60000));
  ASSERT_NE(r.exit_code, -100) << r.out << r.err;
  const auto rows = Rows(ReadAll(dir / "out" / "tasks.csv"));
  ASSERT_EQ(rows.size(), 1u) << ReadAll(dir / "out" / "tasks.csv") << r.err;
  EXPECT_EQ(rows[0].state, "failed");
  EXPECT_NE(r.err.find("-obj-a0 is lost: it was only on node n1 (node n1 crashed); it was "
                       "created at the run's start"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace orrery::live
