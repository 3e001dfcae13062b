// Regressions for what bench/chaos.sh (issue 18.2) found, made deterministic.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "tests/chaos/chaos_lib.h"
#include "tests/live/api_session.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {
using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;

// Pids of live processes whose environment holds exactly `entry` (NAME=VALUE).
std::vector<pid_t> ProcessesWithEnv(const std::string& entry) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // NUL-separated NAME=VALUE entries, each NUL-terminated.
    const std::string env = std::string(1, '\0') + ReadAll(e.path() / "environ");
    if (env.find(std::string(1, '\0') + entry + '\0') != std::string::npos) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

// A worker killed between its lease's grant and its attach (its node shutting down SIGTERMs
// it) used to fail every call waiting in the class ("attaching a worker at ...: api worker N
// exited (signal 15)"; 696 of 1,000 tasks in one chaos run). It is a lost lease: the class asks
// for another and every call runs.
TEST(ChaosRegressionTest, WorkerKilledBeforeAttachLosesTheLeaseNotTheCalls) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  api::InitOptions options;
  const std::string delay = "ORRERY_CHAOS_LOAD_DELAY_MS=1500";  // the worker loads for 1.5 s
  options.env_vars["ORRERY_CHAOS_LOAD_DELAY_MS"] = "1500";
  ApiSession session(c, options);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  std::vector<api::ObjectRef<int>> refs;
  for (int i = 0; i < 5; ++i) refs.push_back(api::Task(chaos::Work).SetMaxRetries(0).Remote(i, 0));
  std::vector<pid_t> starting;
  ASSERT_TRUE(Eventually([&] { return !(starting = ProcessesWithEnv(delay)).empty(); }))
      << "no worker loading the library";
  for (pid_t p : starting) ::kill(p, SIGTERM);
  for (int i = 0; i < 5; ++i) {
    auto v = api::Get(refs[static_cast<size_t>(i)], std::chrono::seconds(30));
    ASSERT_TRUE(v.ok()) << "task " << i << ": " << v.status().ToString();
    EXPECT_EQ(*v, chaos::Expected(i));
  }
}

}  // namespace
}  // namespace orrery::live
