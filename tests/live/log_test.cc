// Logging end to end (live/node/worker_log.h, live/node/log_monitor.h, live/head/log_hub.h,
// live/api/log_printer.h): a driver program (log_test_driver) against real daemons; its workers
// print, and the driver's own stdout/stderr must carry their lines with Ray-style prefixes,
// deduplicated across workers, and the lines must be in the session's worker log files.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

size_t CountContaining(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (const auto& l : Lines(text)) n += l.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

// The pid the driver reported for `what` (its `pid <what> <pid>` line), or "".
std::string ReportedPid(const std::string& out, const std::string& what) {
  std::smatch m;
  const std::regex re("pid " + what + " ([0-9]+)");
  return std::regex_search(out, m, re) ? m[1].str() : "";
}

std::vector<std::string> DriverEnv(LiveCluster& c, std::vector<std::string> extra = {}) {
  std::vector<std::string> env = {"ORRERY_ADDRESS=" + c.address(), "ORRERY_TOKEN=" + c.Token()};
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

fs::path LogDir(LiveCluster& c) {
  auto s = LatestSession(c.root());
  return s.ok() ? *s / "logs" : fs::path();
}

// Worker lines reach the driver prefixed with the task or actor name and pid; a worker on
// another node also names the node; stderr lines go to the driver's stderr; the lines are in
// worker-<id>-<job>-<pid>.out/.err files of the session's log dir, without the marker lines.
TEST(LiveLogTest, WorkerLinesReachTheDriverWithPrefixesAndFiles) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(cluster.AddNode("n2", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(cluster.NodeKnows("head", 2));
  auto r = cluster.Exec(LOG_TEST_DRIVER, {"prefix", "n2"}, milliseconds(60000),
                        DriverEnv(cluster, {"ORRERY_JOB_ID=job_logs_1"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string task_pid = ReportedPid(r.out, "task");
  const std::string err_pid = ReportedPid(r.out, "err");
  const std::string actor_pid = ReportedPid(r.out, "actor");
  ASSERT_FALSE(task_pid.empty() || err_pid.empty() || actor_pid.empty()) << r.out;
  EXPECT_NE(r.out.find("(Shout pid=" + task_pid + ") hello from a task\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(Talker pid=" + actor_pid + ", node=n2) hello from an actor\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("(ShoutErr pid=" + err_pid + ") oops on stderr\n"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("oops on stderr"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(":task_name:"), std::string::npos) << r.out;
  // Every worker line was printed before the driver's own last line.
  EXPECT_LT(r.out.find("hello from an actor"), r.out.find("driver done")) << r.out;

  // The files: named after the job and pid, holding the lines.
  const fs::path dir = LogDir(cluster);
  const std::regex name_re("worker-[0-9a-f]{16}-job_logs_1-([0-9]+)\\.(out|err)");
  std::map<std::string, std::string> by_name;  // "<pid>.<ext>" -> contents
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, name_re))
      by_name[m[1].str() + "." + m[2].str()] = ReadAll(e.path());
  }
  ASSERT_TRUE(by_name.count(task_pid + ".out")) << "no .out file for pid " << task_pid;
  EXPECT_NE(by_name[task_pid + ".out"].find("hello from a task\n"), std::string::npos);
  EXPECT_NE(by_name[task_pid + ".out"].find(":task_name:Shout\n"), std::string::npos);
  ASSERT_TRUE(by_name.count(err_pid + ".err"));
  EXPECT_NE(by_name[err_pid + ".err"].find("oops on stderr\n"), std::string::npos);
  ASSERT_TRUE(by_name.count(actor_pid + ".out"));
  EXPECT_NE(by_name[actor_pid + ".out"].find("hello from an actor\n"), std::string::npos);
}

// Four workers printing the same line: printed once at once, then once with
// "[repeated 3x across cluster]"; with ORRERY_DEDUP_LOGS=0 all four print.
TEST(LiveLogTest, IdenticalLinesFromManyWorkersPrintOnce) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "4"}).exit_code, 0);  // 1 CPU per actor
  auto r = cluster.Exec(LOG_TEST_DRIVER, {"dedup", "4"}, milliseconds(60000), DriverEnv(cluster));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::set<std::string> pids;
  for (const auto& l : Lines(r.out)) {
    if (l.rfind("pid talker ", 0) == 0) pids.insert(l.substr(11));
  }
  ASSERT_EQ(pids.size(), 4u) << "the four actors should be four workers:\n" << r.out;
  EXPECT_EQ(CountContaining(r.out, "the same line"), 2u) << r.out;
  EXPECT_EQ(CountContaining(r.out, "the same line [repeated 3x across cluster]"), 1u) << r.out;

  auto plain = cluster.Exec(LOG_TEST_DRIVER, {"dedup", "4"}, milliseconds(60000),
                            DriverEnv(cluster, {"ORRERY_DEDUP_LOGS=0"}));
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  EXPECT_EQ(CountContaining(plain.out, "the same line"), 4u) << plain.out;
  EXPECT_EQ(CountContaining(plain.out, "repeated"), 0u) << plain.out;
}

// log_to_driver=false and ORRERY_LOG_TO_DRIVER=0 keep worker lines out of the driver's output;
// they are still written to the files.
TEST(LiveLogTest, OptOutByFlagAndEnv) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  auto flag = cluster.Exec(LOG_TEST_DRIVER, {"quiet"}, milliseconds(60000), DriverEnv(cluster));
  ASSERT_EQ(flag.exit_code, 0) << flag.out << flag.err;
  EXPECT_EQ(flag.out.find("hello from a task"), std::string::npos) << flag.out;
  EXPECT_EQ(flag.err.find("oops on stderr"), std::string::npos) << flag.err;
  EXPECT_NE(flag.out.find("driver done"), std::string::npos);

  auto env = cluster.Exec(LOG_TEST_DRIVER, {"prefix"}, milliseconds(60000),
                          DriverEnv(cluster, {"ORRERY_LOG_TO_DRIVER=0"}));
  ASSERT_EQ(env.exit_code, 0) << env.out << env.err;
  EXPECT_EQ(env.out.find("hello from a task"), std::string::npos) << env.out;
  EXPECT_EQ(env.err.find("oops on stderr"), std::string::npos) << env.err;

  size_t in_files = 0;
  for (const auto& e : fs::directory_iterator(LogDir(cluster))) {
    if (e.path().filename().string().rfind("worker-", 0) != 0) continue;
    in_files += CountContaining(ReadAll(e.path()), "hello from a task");
  }
  EXPECT_EQ(in_files, 2u);
}

// Many lines from one worker all arrive, in order, before Shutdown returns.
TEST(LiveLogTest, ManyLinesArriveInOrderBeforeShutdownReturns) {
  LiveCluster cluster;
  ASSERT_EQ(cluster.StartHead("head", {"--num-cpus", "1"}).exit_code, 0);
  auto r = cluster.Exec(LOG_TEST_DRIVER, {"many", "2000"}, milliseconds(60000), DriverEnv(cluster));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<int> seen;
  const std::regex re("\\(ShoutMany pid=[0-9]+\\) line #([0-9]+)");
  for (const auto& l : Lines(r.out)) {
    std::smatch m;
    if (std::regex_match(l, m, re)) seen.push_back(std::stoi(m[1].str()));
  }
  ASSERT_EQ(seen.size(), 2000u) << r.out.substr(0, 2000);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(seen[i], i);
}

// A node started with a small ORRERY_LOG_MAX_BYTES rotates its workers' files (backups .1, ...)
// and the driver still gets every line once, in order.
TEST(LiveLogTest, RotatedFilesStillDeliverEveryLineOnce) {
  LiveCluster cluster;
  const std::vector<std::string> start = {"start",       "--head",
                                          "--port",      cluster.address().substr(10),
                                          "--temp-dir",  cluster.root(),
                                          "--node-name", "head",
                                          "--num-cpus",  "1",
                                          "--dashboard-port", "0"};
  ASSERT_EQ(cluster.Orrery(start, milliseconds(20000), {"ORRERY_LOG_MAX_BYTES=4096"}).exit_code, 0);
  std::vector<int> seen;
  const std::regex re("\\(ShoutMany pid=[0-9]+\\) line #([0-9]+)");
  for (int run = 0; run < 3; ++run) {  // three bursts: the worker rotates between them
    auto r = cluster.Exec(LOG_TEST_DRIVER, {"many", "1000"}, milliseconds(60000),
                          DriverEnv(cluster, {"ORRERY_JOB_ID=rot"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    seen.clear();
    for (const auto& l : Lines(r.out)) {
      std::smatch m;
      if (std::regex_match(l, m, re)) seen.push_back(std::stoi(m[1].str()));
    }
    ASSERT_EQ(seen.size(), 1000u) << "run " << run;
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i], i) << "run " << run;
  }
  size_t backups = 0;
  for (const auto& e : fs::directory_iterator(LogDir(cluster))) {
    const std::string n = e.path().filename().string();
    if (n.rfind("worker-", 0) == 0 && n.find("-rot-") != std::string::npos &&
        n.find(".out.") != std::string::npos) {
      ++backups;
      EXPECT_LE(fs::file_size(e.path()), 4096u + 16u * 1024u) << n;
    }
  }
  EXPECT_GE(backups, 1u);
}

}  // namespace
}  // namespace orrery::live
