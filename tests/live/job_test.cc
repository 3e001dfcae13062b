// Jobs on a live cluster (live/head/jobs/job_manager.h, live/head/jobs/job_http.h, live/cli/job_cli.h): real head and node
// daemons on 127.0.0.1, driven through `orrery job ...` and the HTTP jobs API.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "live/cli/job_cli.h"
#include "live/head/jobs/job_http.h"
#include "live/head/jobs/job_log.h"
#include "live/head/jobs/job_store.h"
#include "live/head/jobs/secret_redactor.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::Eventually;
using test::LiveCluster;
using test::RunResult;

// A cluster whose head serves the jobs API on an OS-chosen port.
class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> args = {"--num-cpus", "2", "--dashboard-port", "0"};
    const auto extra = ExtraHeadArgs();
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cluster_.StartHead("head", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Flags a derived fixture adds to `orrery start --head`.
  virtual std::vector<std::string> ExtraHeadArgs() const { return {}; }

  RunResult Job(std::vector<std::string> args, milliseconds timeout = milliseconds(30000)) {
    args.insert(args.begin(), "job");
    args.insert(args.end() - (Has(args, "--") ? Tail(args) : 0), {"--temp-dir", cluster_.root()});
    return cluster_.Orrery(args, timeout);
  }
  json JobJson(const std::string& id) {
    auto r = Job({"status", id, "--format", "json"});
    if (r.exit_code != 0) return json();
    return json::parse(r.out, nullptr, false);
  }
  // Waits until the job is terminal; its final JSON.
  json WaitTerminal(const std::string& id) {
    json j;
    Eventually(
        [&] {
          j = JobJson(id);
          const std::string s = j.value("status", "");
          return s == "SUCCEEDED" || s == "FAILED" || s == "STOPPED";
        },
        milliseconds(20000));
    return j;
  }

  // One HTTP request to the head's jobs API; (status code, body).
  std::pair<int, std::string> Http(const std::string& method, const std::string& target,
                                   const std::string& body = "", bool with_token = true) {
    auto s = LatestSession(cluster_.root());
    auto addr = ReadFileTrimmed(*s / "dashboard_address");
    if (!addr.ok()) return {-1, "no dashboard_address"};
    const int port = std::stoi(addr->substr(addr->rfind(':') + 1));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd);
      return {-1, "connect failed"};
    }
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (with_token) req += "Authorization: Bearer " + cluster_.Token() + "\r\n";
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
    ::close(fd);
    const auto sp = resp.find(' ');
    const auto hdr_end = resp.find("\r\n\r\n");
    if (sp == std::string::npos || hdr_end == std::string::npos) return {-1, resp};
    return {std::stoi(resp.substr(sp + 1, 3)), resp.substr(hdr_end + 4)};
  }

  // A field of the head's (or, with "node", the head node's) /proc/PID/status ("VmRSS" in kB, "Threads");
  // -1 if unknown.
  long HeadProcStatus(const std::string& field, const std::string& daemon = "head") {
    auto s = LatestSession(cluster_.root());
    if (!s.ok()) return -1;
    fs::path file = *s / "pids" / "head.pid";
    if (daemon != "head") {  // the node started with the head: pids/node-<pid>.pid
      for (const auto& e : fs::directory_iterator(*s / "pids")) {
        if (e.path().filename().string().rfind("node-", 0) == 0) file = e.path();
      }
    }
    auto pid = ReadFileTrimmed(file);
    if (!pid.ok()) return -1;
    std::ifstream in("/proc/" + *pid + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return -1;
  }

  static bool Has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  // Number of arguments from "--" to the end (the entrypoint stays last).
  static long Tail(const std::vector<std::string>& v) {
    return std::distance(std::find(v.begin(), v.end(), "--"), v.end());
  }

  LiveCluster cluster_;
};

// A job that succeeds: submit streams its output, exits 0; status SUCCEEDED; logs keep the output.
TEST_F(JobTest, SucceedingJobStreamsLogsAndSucceeds) {
  auto r = Job({"submit", "--submission-id", "ok1", "--", "echo", "hello", "from", "a", "job"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("hello from a job"), std::string::npos) << r.out;
  const json j = JobJson("ok1");
  EXPECT_EQ(j.value("status", ""), "SUCCEEDED") << j.dump();
  EXPECT_EQ(j.value("entrypoint", ""), "echo hello from a job");
  EXPECT_EQ(j.value("driver_node_id", ""), "head");
  EXPECT_EQ(j["driver_exit_code"], 0);
  auto logs = Job({"logs", "ok1"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_EQ(logs.out, "hello from a job\n");
}

// Regression (issue 11.1): the argv after `--` is joined with shell quoting, as Ray's CLI does,
// so `sh -c '...'` runs exactly what was typed (it used to run `sh -c echo first`).
TEST_F(JobTest, SubmitKeepsTheShellQuotingOfItsArguments) {
  auto r = Job({"submit", "--submission-id", "q1", "--", "sh", "-c", "echo first; sleep 0; echo second"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "first\nsecond\n");
  r = Job({"submit", "--submission-id", "q2", "--", "sh", "-c", "seq 1 3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n2\n3\n");
  // Spaces, quotes, $, ;, a newline and an empty argument arrive as separate, literal words.
  r = Job({"submit", "--submission-id", "q3", "--", "printf", "[%s]", "a b", "it's", "$HOME",
           "x;y", "l1\nl2", "", "\"dq\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("[a b][it's][$HOME][x;y][l1\nl2][][\"dq\"]", 0), 0u) << r.out;
  // A single argument stays a shell command line.
  r = Job({"submit", "--submission-id", "q4", "--", "echo a; echo b"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\n");
  // The entrypoint that runs is what status shows.
  EXPECT_EQ(JobJson("q1").value("entrypoint", ""), "sh -c 'echo first; sleep 0; echo second'");
  auto st = Job({"status", "q3"});
  EXPECT_NE(st.out.find("entrypoint: printf '[%s]' 'a b' 'it'\"'\"'s' '$HOME'"), std::string::npos)
      << st.out;
}

// Issue 12.7: a job that prints its environment does not write the cluster token to its log.
// (What a driver deliberately scrambles cannot be recognised; the log stays owner-only.)
TEST_F(JobTest, TokenNeverReachesTheJobLog) {
  auto r = Job({"submit", "--submission-id", "leak", "--", "env; echo \"token: $ORRERY_TOKEN\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string token = cluster_.Token();
  ASSERT_FALSE(token.empty());
  auto logs = Job({"logs", "leak"});
  EXPECT_EQ(logs.out.find(token), std::string::npos) << "the token is in the job log";
  EXPECT_NE(logs.out.find("ORRERY_TOKEN=[cluster token redacted]"), std::string::npos) << logs.out;
}

// Regression (issue 11.11): `job submit --working-dir DIR` (absolute, relative, or working_dir in
// --runtime-env-json) uploads the directory; the entrypoint runs in it and reads its files.
TEST_F(JobTest, WorkingDirIsUploadedAndTheDriverRunsInIt) {
  const fs::path wd = fs::path(cluster_.root()).parent_path() / "wd";
  fs::create_directories(wd / "sub");
  std::ofstream(wd / "sub" / "data.txt") << "payload-42\n";
  auto r = Job({"submit", "--submission-id", "wd1", "--working-dir", wd.string(), "--",
                "cat sub/data.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "payload-42\n");
  EXPECT_NE(JobJson("wd1").dump().find("pkg://"), std::string::npos) << JobJson("wd1").dump();
  r = Job({"submit", "--submission-id", "wd2", "--runtime-env-json",
           R"({"working_dir": ")" + wd.string() + R"("})", "--", "cat", "sub/data.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "payload-42\n");
  // Relative to the caller's directory.
  const fs::path old = fs::current_path();
  fs::current_path(wd.parent_path());
  r = Job({"submit", "--submission-id", "wd3", "--working-dir", "./wd", "--", "cat sub/data.txt"});
  fs::current_path(old);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "payload-42\n");
}

// The entrypoint's environment names the cluster and the job (drivers use them).
TEST_F(JobTest, DriverSeesClusterAndJobEnv) {
  auto r = Job({"submit", "--submission-id", "envjob", "--runtime-env-json",
                R"({"env_vars": {"A": "1"}})", "--",
                "echo $ORRERY_JOB_ID $ORRERY_ADDRESS; "
                "echo $ORRERY_JOB_RUNTIME_ENV"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("envjob " + cluster_.address()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"({"env_vars":{"A":"1"}})"), std::string::npos) << r.out;
}

// A failing entrypoint: exit 1, FAILED with the exit code and the last output in the message.
TEST_F(JobTest, FailingEntrypointFailsWithMessage) {
  auto r = Job({"submit", "--submission-id", "bad1", "--", "echo it broke >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const json j = JobJson("bad1");
  EXPECT_EQ(j.value("status", ""), "FAILED");
  EXPECT_NE(j.value("message", "").find("exited with code 3"), std::string::npos) << j.dump();
  EXPECT_NE(j.value("message", "").find("it broke"), std::string::npos) << j.dump();
  EXPECT_EQ(j["driver_exit_code"], 3);
}

// An entrypoint that does not exist: FAILED naming the command.
TEST_F(JobTest, MissingEntrypointFailsNamingTheCommand) {
  auto r = Job({"submit", "--submission-id", "nope", "--", "no_such_command_xyz", "--flag"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const json j = JobJson("nope");
  EXPECT_EQ(j.value("status", ""), "FAILED");
  EXPECT_NE(j.value("message", "").find("127"), std::string::npos) << j.dump();
  EXPECT_NE(j.value("message", "").find("no_such_command_xyz"), std::string::npos) << j.dump();
  EXPECT_NE(r.err.find("no_such_command_xyz"), std::string::npos) << r.err;
}

// Stopping a running job: STOPPED, and the driver's whole process group is gone.
TEST_F(JobTest, StopKillsTheDriverAndMarksStopped) {
  auto r = Job({"submit", "--no-wait", "--submission-id", "sleeper", "--",
                "echo started; sleep 60; echo never"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "sleeper\n");
  ASSERT_TRUE(Eventually(
      [&] {
        return Job({"logs", "sleeper"}).out == "started\n";
      },
      milliseconds(15000)));
  const json running = JobJson("sleeper");
  EXPECT_EQ(running.value("status", ""), "RUNNING");
  const int pid = running.value("driver_pid", 0);
  ASSERT_GT(pid, 0);
  auto del = Job({"delete", "sleeper"});
  EXPECT_EQ(del.exit_code, 2) << "a running job cannot be deleted";
  auto stop = Job({"stop", "sleeper"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(JobJson("sleeper").value("status", ""), "STOPPED");
  EXPECT_TRUE(Eventually([&] { return ::kill(-pid, 0) != 0; }, milliseconds(10000)))
      << "the driver's process group still exists";
  EXPECT_EQ(Job({"logs", "sleeper"}).out, "started\n");
  EXPECT_EQ(Job({"stop", "sleeper"}).exit_code, 0) << "stopping a finished job is a no-op";
}

// Submission ids are unique; list shows jobs; delete removes a finished one.
TEST_F(JobTest, DuplicateIdRejectedListAndDelete) {
  ASSERT_EQ(Job({"submit", "--submission-id", "dup", "--", "true"}).exit_code, 0);
  auto again = Job({"submit", "--submission-id", "dup", "--", "true"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  auto gen = Job({"submit", "--no-wait", "--", "true"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string generated = gen.out.substr(0, gen.out.size() - 1);
  EXPECT_EQ(generated.rfind("orrerysubmit_", 0), 0u) << generated;
  WaitTerminal(generated);
  auto list = cluster_.Orrery({"list", "jobs", "--format", "json", "--temp-dir", cluster_.root()});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const json arr = json::parse(list.out);
  ASSERT_EQ(arr.size(), 2u) << list.out;
  EXPECT_EQ(arr[0].value("submission_id", ""), "dup");
  auto table = Job({"list"});
  EXPECT_NE(table.out.find("SUCCEEDED"), std::string::npos) << table.out;
  ASSERT_EQ(Job({"delete", "dup"}).exit_code, 0);
  EXPECT_EQ(Job({"status", "dup"}).exit_code, 2);
  EXPECT_EQ(json::parse(Job({"list", "--format", "json"}).out).size(), 1u);
  // The id is free again.
  EXPECT_EQ(Job({"submit", "--submission-id", "dup", "--", "true"}).exit_code, 0);
}

// Bad input is refused with exit 2 naming the flag, before anything runs.
TEST_F(JobTest, BadRuntimeEnvFlagsAreUsageErrors) {
  auto r = Job({"submit", "--runtime-env-json", "{not json", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--runtime-env-json:1: malformed JSON"), std::string::npos) << r.err;
  r = Job({"submit", "--runtime-env-json", "[1]", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--runtime-env-json: expected an object"), std::string::npos) << r.err;
  r = Job({"submit", "--runtime-env", "/nonexistent/env.yaml", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/env.yaml"), std::string::npos) << r.err;
  r = Job({"submit", "--working-dir", "/nonexistent/dir", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--working-dir /nonexistent/dir"), std::string::npos) << r.err;
  r = Job({"submit", "--submission-id", "../x", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("submission_id"), std::string::npos) << r.err;
  EXPECT_EQ(json::parse(Job({"list", "--format", "json"}).out).size(), 0u);
}

// A YAML runtime env becomes the job's JSON runtime env.
TEST_F(JobTest, YamlRuntimeEnvIsConverted) {
  auto s = LatestSession(cluster_.root());
  const fs::path yaml = *s / "env.yaml";
  std::ofstream(yaml) << "env_vars:\n  counter_name: from_yaml\n  N: \"3\"\n";
  ASSERT_EQ(Job({"submit", "--submission-id", "y", "--runtime-env", yaml.string(), "--", "true"})
                .exit_code,
            0);
  const json env = JobJson("y")["runtime_env"];
  EXPECT_EQ(env["env_vars"]["counter_name"], "from_yaml") << env.dump();
  EXPECT_EQ(env["env_vars"]["N"], "3") << env.dump();
  // Values must be strings (as in Ray): refused before anything runs, naming the field.
  std::ofstream(yaml) << "env_vars:\n  N: 3\n";
  auto num = Job({"submit", "--runtime-env", yaml.string(), "--", "true"});
  EXPECT_EQ(num.exit_code, 2);
  EXPECT_NE(num.err.find("env_vars"), std::string::npos) << num.err;
  // Unknown fields are refused too, listing the allowed ones.
  auto unknown = Job({"submit", "--runtime-env-json", R"({"pip": ["requests"]})", "--", "true"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("pip"), std::string::npos) << unknown.err;
  std::ofstream(yaml) << "env_vars: [unclosed\n";
  auto r = Job({"submit", "--runtime-env", yaml.string(), "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("env.yaml:"), std::string::npos) << r.err;
}

// Every REST route over real HTTP; the token is required.
TEST_F(JobTest, RestApiRoutes) {
  auto [c401, b401] = Http("GET", "/api/jobs/", "", /*with_token=*/false);
  EXPECT_EQ(c401, 401);
  EXPECT_NE(json::parse(b401, nullptr, false).value("error", "").find("token"), std::string::npos)
      << b401;
  auto [c, b] = Http("POST", "/api/jobs/",
                     R"({"entrypoint": "echo via rest", "submission_id": "r1",
                         "runtime_env": {"env_vars": {"X": "y"}}, "metadata": {"owner": "me"},
                         "entrypoint_num_cpus": null})");
  ASSERT_EQ(c, 200) << b;
  EXPECT_EQ(json::parse(b).value("submission_id", ""), "r1");
  json info;
  ASSERT_TRUE(Eventually(
      [&] {
        auto [code, body] = Http("GET", "/api/jobs/r1");
        info = json::parse(body, nullptr, false);
        return code == 200 && info.value("status", "") == "SUCCEEDED";
      },
      milliseconds(15000)))
      << info.dump();
  EXPECT_EQ(info["metadata"]["owner"], "me");
  EXPECT_EQ(info["runtime_env"]["env_vars"]["X"], "y");
  EXPECT_TRUE(info["end_time"].is_number());
  auto [cl, bl] = Http("GET", "/api/jobs/r1/logs");
  EXPECT_EQ(cl, 200);
  EXPECT_EQ(json::parse(bl).value("logs", ""), "via rest\n");
  auto [cs, bs] =
      Http("POST", "/api/jobs/", R"({"entrypoint": "sleep 60", "submission_id": "r2"})");
  ASSERT_EQ(cs, 200) << bs;
  auto [clist, blist] = Http("GET", "/api/jobs/");
  EXPECT_EQ(clist, 200);
  EXPECT_EQ(json::parse(blist).size(), 2u) << blist;
  EXPECT_EQ(Http("DELETE", "/api/jobs/r2").first, 400) << "r2 is not finished";
  auto [cstop, bstop] = Http("POST", "/api/jobs/r2/stop");
  EXPECT_EQ(cstop, 200);
  EXPECT_EQ(json::parse(bstop).value("stopped", false), true) << bstop;
  EXPECT_EQ(WaitTerminal("r2").value("status", ""), "STOPPED");
  auto [cdel, bdel] = Http("DELETE", "/api/jobs/r2");
  EXPECT_EQ(cdel, 200) << bdel;
  EXPECT_EQ(Http("GET", "/api/jobs/r2").first, 404);
  // Bad input: 400 naming the field.
  auto [cbad, bbad] = Http("POST", "/api/jobs/", R"({"entrypoint": 5})");
  EXPECT_EQ(cbad, 400);
  EXPECT_NE(bbad.find("entrypoint"), std::string::npos) << bbad;
  auto [cunk, bunk] = Http("POST", "/api/jobs/", R"({"entrypoint": "true", "colour": 1})");
  EXPECT_EQ(cunk, 400);
  EXPECT_NE(bunk.find("colour"), std::string::npos) << bunk;
  EXPECT_EQ(Http("POST", "/api/jobs/", "{oops").first, 400);
  EXPECT_EQ(Http("POST", "/api/jobs/", R"({"entrypoint": "true", "submission_id": "r1"})").first,
            400);
  EXPECT_EQ(Http("GET", "/api/nothing").first, 404);
  EXPECT_EQ(Http("PUT", "/api/jobs/r1").first, 405);
}

// A driver that cannot be placed waits PENDING (infeasible, as in Ray); stopping it cancels
// its queued lease request: STOPPED.
TEST_F(JobTest, PendingJobCanBeStopped) {
  ASSERT_EQ(Job({"submit", "--no-wait", "--submission-id", "big", "--entrypoint-num-cpus", "64",
                 "--", "echo never"})
                .exit_code,
            0);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(JobJson("big").value("status", ""), "PENDING");
  auto stop = Job({"stop", "big"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(JobJson("big").value("status", ""), "STOPPED");
  EXPECT_EQ(Job({"logs", "big"}).out, "");
  // The cluster still runs jobs.
  EXPECT_EQ(Job({"submit", "--", "true"}).exit_code, 0);
}

// Entrypoint resources place the driver (spilled from the head node to the node that has them);
// when that node dies the job FAILS naming it.
TEST_F(JobTest, DriverNodeDeathFailsTheJob) {
  ASSERT_EQ(
      cluster_.AddNode("w1", {"--num-cpus", "1", "--resources", R"({"special": 1})"}).exit_code, 0);
  ASSERT_TRUE(cluster_.NodeKnows("head", 2));
  auto r = Job({"submit", "--no-wait", "--submission-id", "remote", "--entrypoint-resources",
                R"({"special": 1})", "--", "echo on w1; sleep 60"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j;
  ASSERT_TRUE(Eventually(
      [&] {
        j = JobJson("remote");
        return j.value("status", "") == "RUNNING" && j.value("driver_pid", 0) > 0;
      },
      milliseconds(15000)))
      << j.dump();
  EXPECT_EQ(j.value("driver_node_id", ""), "w1");
  const int driver = j.value("driver_pid", 0);
  const int node_pid = cluster_.Node("w1").value("pid", 0);
  ASSERT_GT(node_pid, 0);
  ::kill(node_pid, SIGKILL);
  const json done = WaitTerminal("remote");
  ::kill(-driver, SIGKILL);  // a SIGKILLed node leaves its tasks behind (README, known limits)
  EXPECT_EQ(done.value("status", ""), "FAILED") << done.dump();
  EXPECT_NE(done.value("message", "").find("w1"), std::string::npos) << done.dump();
}

// Job records survive `orrery stop` + `orrery start --head` (the store is under the temp root);
// a job that was running when the head went away is FAILED.
TEST_F(JobTest, RecordsSurviveHeadRestart) {
  ASSERT_EQ(Job({"submit", "--submission-id", "kept", "--", "echo kept output"}).exit_code, 0);
  ASSERT_EQ(Job({"submit", "--no-wait", "--submission-id", "cut", "--", "sleep 60"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return JobJson("cut").value("status", "") == "RUNNING"; },
                         milliseconds(10000)));
  auto stop = cluster_.Orrery({"stop", "--temp-dir", cluster_.root()});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  auto start = cluster_.StartHead("head", {"--num-cpus", "2", "--dashboard-port", "0"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  EXPECT_TRUE(fs::exists(fs::path(cluster_.root()) / "job_store.sqlite"));
  const json kept = JobJson("kept");
  EXPECT_EQ(kept.value("status", ""), "SUCCEEDED") << kept.dump();
  EXPECT_EQ(Job({"logs", "kept"}).out, "kept output\n");
  const json cut = JobJson("cut");
  EXPECT_EQ(cut.value("status", ""), "FAILED") << cut.dump();
  // Either the head went first (the record is fixed up on load) or the node, stopping, killed
  // the driver while the head could still record it: both end FAILED and say why.
  const std::string why = cut.value("message", "");
  EXPECT_TRUE(why.find("head restarted") != std::string::npos ||
              why.find("killed by signal") != std::string::npos)
      << cut.dump();
  EXPECT_EQ(json::parse(Job({"list", "--format", "json"}).out).size(), 2u);
}

// The seed's example through the jobs API: the actor's counter_name comes from the job's
// runtime env. Needs the runtime-env inheritance of the C++ API (ORRERY_JOB_RUNTIME_ENV).
TEST_F(JobTest, CounterExampleViaJobSubmit) {
  auto r = Job({"submit", "--submission-id", "counter", "--runtime-env-json",
                R"({"env_vars": {"counter_name": "test_counter"}})", "--", COUNTER_BINARY},
               milliseconds(60000));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out,
            "test_counter got 1\ntest_counter got 2\ntest_counter got 3\ntest_counter got 4\n"
            "test_counter got 5\n");
}

// ---- pieces without daemons ----------------------------------------------------------------

// The store keeps the last Put of each job across a reopen; Delete removes it.
TEST(JobStoreTest, RecordsSurviveReopen) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("job_store_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "store.sqlite").string();
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    v1::JobInfo a;
    a.set_submission_id("a");
    a.set_status(v1::JOB_STATUS_RUNNING);
    (*store)->Put(a);
    a.set_status(v1::JOB_STATUS_SUCCEEDED);
    a.set_message("done");
    (*store)->Put(a);
    v1::JobInfo b;
    b.set_submission_id("b");
    (*store)->Put(b);
    (*store)->Delete("b");
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadAll();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].submission_id(), "a");
  EXPECT_EQ((*jobs)[0].status(), v1::JOB_STATUS_SUCCEEDED);
  EXPECT_EQ((*jobs)[0].message(), "done");
  store->reset();
  fs::remove_all(dir);
  EXPECT_FALSE(JobStore::Open("/nonexistent/dir/store.sqlite").ok());
}

// REST bodies: Ray's fields map onto the request; wrong types and unknown fields name the field.
TEST(JobHttpTest, SubmitBodyParsing) {
  auto ok = SubmitRequestFromJson(
      R"({"entrypoint": "python x.py", "submission_id": "s1", "runtime_env": {"env_vars": {"a": "b"}},
          "entrypoint_num_cpus": 1.5, "entrypoint_resources": {"acc": 2}, "metadata": null})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->entrypoint(), "python x.py");
  EXPECT_EQ(ok->submission_id(), "s1");
  EXPECT_EQ(ok->runtime_env_json(), R"({"env_vars":{"a":"b"}})");
  auto pip = SubmitRequestFromJson(R"({"entrypoint": "x", "runtime_env": {"pip": ["a"]}})");
  ASSERT_FALSE(pip.ok());
  EXPECT_NE(pip.status().message().find("runtime_env: pip: unknown field"), std::string::npos);
  auto local = SubmitRequestFromJson(R"({"entrypoint": "x", "runtime_env": {"working_dir": "/x"}})");
  ASSERT_FALSE(local.ok());
  EXPECT_NE(local.status().message().find("expected a package URI"), std::string::npos);
  EXPECT_EQ(ok->entrypoint_resources().raw().at("CPU"), 15000);
  EXPECT_EQ(ok->entrypoint_resources().raw().at("acc"), 20000);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[]", "expected a JSON object"},
      {"{", "malformed JSON"},
      {R"({})", "entrypoint"},
      {R"({"entrypoint": ""})", "entrypoint"},
      {R"({"entrypoint": "x", "runtime_env": []})", "runtime_env"},
      {R"({"entrypoint": "x", "entrypoint_num_gpus": -1})", "entrypoint_num_gpus"},
      {R"({"entrypoint": "x", "metadata": {"k": 1}})", "metadata.k"},
      {R"({"entrypoint": "x", "submission_id": "a/b"})", "submission_id"},
      {R"({"entrypoint": "x", "extra": 1})", "extra"},
  };
  for (const auto& [body, field] : bad) {
    auto r = SubmitRequestFromJson(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_NE(r.status().message().find(field), std::string::npos)
        << body << " -> " << r.status().message();
  }
}

// Regression (issue 12.1): a 600 KB body whose runtime_env nests 100,000 levels (under the 1 MiB
// body limit) crashed the head re-serialising it; it is a 400-class error naming the limit.
TEST(JobHttpTest, DeeplyNestedBodyIsRefusedNamingTheLimit) {
  const size_t depth = 100000;
  std::string body = R"({"entrypoint": "x", "runtime_env": )";
  for (size_t i = 0; i < depth; ++i) body += R"({"a":)";
  body += "1" + std::string(depth, '}') + "}";
  ASSERT_LT(body.size(), size_t{1} << 20);
  auto r = SubmitRequestFromJson(body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("request body: nesting deeper than 64 levels"),
            std::string::npos)
      << r.status().message();
}

// Regression (issue 12.5): a 3.9 MB entrypoint was accepted and copied into the head's log and
// store; entrypoint, runtime env and metadata are capped, and the refusal names field and limit.
TEST(JobHttpTest, OversizedFieldsAreRefusedNamingTheLimit) {
  const auto refusal = [](const v1::SubmitJobRequest& req) {
    Status s = ValidateSubmitJob(req);
    return s.ok() ? std::string("(accepted)") : s.message();
  };
  v1::SubmitJobRequest req;
  req.set_entrypoint("echo " + std::string(3900000, 'x'));
  EXPECT_NE(refusal(req).find("entrypoint: 3900005 bytes, more than the limit of 65536 bytes"),
            std::string::npos)
      << refusal(req);
  req.set_entrypoint("echo " + std::string(65000, 'x'));
  EXPECT_EQ(refusal(req), "(accepted)");
  req.set_runtime_env_json(R"({"env_vars": {"A": ")" + std::string(70000, 'x') + R"("}})");
  EXPECT_NE(refusal(req).find("runtime_env: "), std::string::npos) << refusal(req);
  req.clear_runtime_env_json();
  (*req.mutable_metadata())["note"] = std::string(5000, 'x');
  EXPECT_NE(refusal(req).find("metadata.note: 5000 bytes, more than the limit of 4096"),
            std::string::npos)
      << refusal(req);
  req.clear_metadata();
  (*req.mutable_metadata())[std::string(300, 'k')] = "v";
  EXPECT_NE(refusal(req).find("metadata key"), std::string::npos) << refusal(req);
  req.clear_metadata();
  for (int i = 0; i < 5; ++i) (*req.mutable_metadata())["k" + std::to_string(i)] = std::string(4000, 'x');
  EXPECT_NE(refusal(req).find("metadata (keys and values together)"), std::string::npos)
      << refusal(req);
  auto http = SubmitRequestFromJson(R"({"entrypoint": ")" + std::string(70000, 'x') + R"("})");
  ASSERT_FALSE(http.ok());
  EXPECT_NE(http.status().message().find("entrypoint: 70000 bytes"), std::string::npos);
}

// The submit flags become one JSON runtime env; conflicting or malformed flags name the flag.
// Issue 12.7: the cluster token in a driver's environment never reaches its job log, even when
// the job prints it (whole, or in pieces across output chunks).
TEST(JobCliTest, SecretRedactorKeepsTheTokenOutOfAStream) {
  const std::string token(64, 'a');
  SecretRedactor r(token, "[x]");
  std::string out = r.Feed("env: ORRERY_TOKEN=" + token.substr(0, 10));
  EXPECT_EQ(out, "env: ORRERY_TOKEN=");  // the start of the token waits
  out += r.Feed(token.substr(10) + "\nnext line\n");
  out += r.Flush();
  EXPECT_EQ(out, "env: ORRERY_TOKEN=[x]\nnext line\n");
  SecretRedactor plain(token, "[x]");
  EXPECT_EQ(plain.Feed("no secret here\n"), "no secret here\n") << "ordinary output is not held";
  EXPECT_EQ(plain.Feed("ends with a"), "ends with ") << "a possible start is held";
  EXPECT_EQ(plain.Flush(), "a");
}

// shlex.join's quoting; one argument passes through as a command line.
TEST(JobCliTest, ShellJoinEntrypoint) {
  EXPECT_EQ(ShellJoinEntrypoint({"echo a; echo b"}), "echo a; echo b");
  EXPECT_EQ(ShellJoinEntrypoint({"python", "x.py", "--n=3", "a/b.c"}), "python x.py --n=3 a/b.c");
  EXPECT_EQ(ShellJoinEntrypoint({"sh", "-c", "echo $X; ls"}), "sh -c 'echo $X; ls'");
  EXPECT_EQ(ShellJoinEntrypoint({"echo", "it's", ""}), "echo 'it'\"'\"'s' ''");
  EXPECT_EQ(ShellJoinEntrypoint({"echo", "a\nb"}), "echo 'a\nb'");
}

TEST(JobCliTest, ResolveRuntimeEnv) {
  EXPECT_EQ(*ResolveRuntimeEnv("", "", ""), "");
  EXPECT_EQ(*ResolveRuntimeEnv(R"({"env_vars": {"a": "b"}})", "", ""), R"({"env_vars":{"a":"b"}})");
  auto wd = ResolveRuntimeEnv("", "", "/tmp");
  ASSERT_TRUE(wd.ok());
  EXPECT_EQ(json::parse(*wd)["working_dir"], "/tmp");
  auto both = ResolveRuntimeEnv("{}", "env.yaml", "");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("at most one"), std::string::npos);
  auto scalar = ResolveRuntimeEnv("3", "", "");
  ASSERT_FALSE(scalar.ok());
  EXPECT_NE(scalar.status().message().find("--runtime-env-json"), std::string::npos);
}

// ---- issue 12: limits (log caps, bounded buffers, concurrent HTTP, max running jobs) --------

// The job log is capped and rotated: a file never exceeds max_bytes, (backups + 1) files at
// most, offsets stay stable across rotation, and nothing is appended once the log is closed.
TEST(JobLogTest, RotatesAtMaxBytesKeepsBackupsAndStopsAtClose) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("joblog_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "j.log").string();
  JobLog log(path, JobLogOptions{.max_bytes = 1000, .backups = 2});
  std::string all;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    all += line;
    ASSERT_TRUE(log.Append(line).ok());
  }
  for (const auto& f : {path, path + ".1", path + ".2"}) {
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_LE(fs::file_size(f), 1000u) << f;
  }
  EXPECT_FALSE(fs::exists(path + ".3"));
  auto r = log.Read(0, 1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end_offset, all.size());
  EXPECT_EQ(r->offset, r->start_offset);
  EXPECT_GT(r->start_offset, 0u);
  EXPECT_EQ(r->data, all.substr(r->start_offset));  // the kept bytes, in order, across files
  auto page = log.Read(r->start_offset + 10, 25);   // a page that may span two files
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->data, all.substr(r->start_offset + 10, 25));
  auto tail = log.Tail(2, 1 << 20);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->data, "line 998\nline 999\n");
  log.Close();
  ASSERT_TRUE(log.Append("after the end\n").ok());
  EXPECT_EQ(log.Read(0, 1 << 20)->end_offset, all.size());
  fs::remove_all(dir);
}

// `orrery start --worker-log-max-bytes B --worker-log-backups N` hands the worker log caps to the
// node daemon it starts (its workers inherit ORRERY_LOG_MAX_BYTES / ORRERY_LOG_BACKUP_COUNT,
// live/node/worker_log.h); a bad value is a usage error.
TEST(JobCliTest, WorkerLogCapsReachTheNodeDaemon) {
  LiveCluster cluster;
  EXPECT_EQ(cluster.StartHead("head", {"--worker-log-max-bytes", "0"}).exit_code, 2);
  EXPECT_EQ(cluster.StartHead("head", {"--max-running-jobs", "0"}).exit_code, 2);
  auto r = cluster.StartHead("head", {"--worker-log-max-bytes", "65536", "--worker-log-backups",
                                      "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto session = LatestSession(cluster.root());
  ASSERT_TRUE(session.ok());
  int nodes = 0;
  for (const auto& e : fs::directory_iterator(*session / "pids")) {
    if (e.path().filename() == "head.pid") continue;
    auto pid = ReadFileTrimmed(e.path());
    ASSERT_TRUE(pid.ok());
    std::ifstream in("/proc/" + *pid + "/environ", std::ios::binary);
    const std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(env.find(std::string("ORRERY_LOG_MAX_BYTES=65536") + '\0'), std::string::npos);
    EXPECT_NE(env.find(std::string("ORRERY_LOG_BACKUP_COUNT=1") + '\0'), std::string::npos);
    ++nodes;
  }
  EXPECT_EQ(nodes, 1);
}

// A head with small job-log caps and a small driver limit.
class JobLimitsTest : public JobTest {
 protected:
  std::vector<std::string> ExtraHeadArgs() const override {
    return {"--job-log-max-bytes", std::to_string(kCap),
            "--job-log-backups",   "2",
            "--max-running-jobs",  "2"};
  }
  static constexpr uint64_t kCap = 1 << 20;

  // Sum of a job's log files (and the largest one).
  std::pair<uint64_t, uint64_t> LogSizes(const std::string& id) {
    uint64_t total = 0, largest = 0;
    for (const auto& e : fs::directory_iterator(fs::path(cluster_.root()) / "job_logs")) {
      const std::string name = e.path().filename().string();
      // The log and its rotated files (not <id>.log.src: the count of the driver's bytes it holds).
      if (name.rfind(id + ".log", 0) != 0 || name == id + ".log.src") continue;
      total += e.file_size();
      largest = std::max<uint64_t>(largest, e.file_size());
    }
    return {total, largest};
  }
  // Milliseconds one request takes.
  long TimedMs(const std::string& method, const std::string& target, int* code) {
    const auto t0 = std::chrono::steady_clock::now();
    *code = Http(method, target).first;
    return static_cast<long>(
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count());
  }
};

// Regression (issue 12.2): a job running `yes` made a 10.6 GB log, the node buffered 4.5 GB and
// the head grew ~450 MB/s until killed, and a log request stalled every other request. Now the
// log stays within (backups + 1) x cap, stops growing once the job ends, the head's memory
// stays bounded, logs come in bounded chunks and other requests are answered meanwhile.
TEST_F(JobLimitsTest, ChattyJobStaysWithinLogCapAndHeadMemory) {
  const long rss_before = HeadProcStatus("VmRSS");
  auto [code, body] =
      Http("POST", "/api/jobs/",
           R"({"entrypoint": "timeout 3 yes; echo the end", "submission_id": "chatty"})");
  ASSERT_EQ(code, 200) << body;
  const long node_rss_before = HeadProcStatus("VmRSS", "node");
  long rss_max = rss_before, node_rss_max = node_rss_before;
  long worst_ms = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until) {
    rss_max = std::max(rss_max, HeadProcStatus("VmRSS"));
    node_rss_max = std::max(node_rss_max, HeadProcStatus("VmRSS", "node"));
    // Slow readers of big log chunks never hold up other requests.
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i) {
      readers.emplace_back([&] { (void)Http("GET", "/api/jobs/chatty/logs?limit=8388608"); });
    }
    int c1 = 0, c2 = 0;
    worst_ms = std::max(
        {worst_ms, TimedMs("GET", "/api/version", &c1), TimedMs("GET", "/api/jobs/", &c2)});
    EXPECT_EQ(c1, 200);
    EXPECT_EQ(c2, 200);
    for (auto& t : readers) t.join();
    std::this_thread::sleep_for(milliseconds(200));
  }
  const json j = WaitTerminal("chatty");
  EXPECT_EQ(j.value("status", ""), "SUCCEEDED") << j.dump();
  const auto [total, largest] = LogSizes("chatty");
  std::cerr << "head RSS " << rss_before << " -> max " << rss_max << " kB; node RSS "
            << node_rss_before << " -> max " << node_rss_max << " kB; log " << total
            << " bytes (largest file " << largest << "); slowest concurrent request " << worst_ms
            << " ms\n";
  EXPECT_LE(largest, kCap);
  EXPECT_LE(total, 3 * kCap);
  EXPECT_GT(total, kCap);  // it did rotate
  EXPECT_LT(rss_max - rss_before, 200 * 1024) << "head RSS grew by more than 200 MB";
  ASSERT_GT(node_rss_before, 0);
  EXPECT_LT(node_rss_max - node_rss_before, 100 * 1024) << "node RSS grew by more than 100 MB";
  EXPECT_LT(worst_ms, 2000);
  // Nothing is appended after the job ended.
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(LogSizes("chatty").first, total);
  // Bounded chunks: offset/limit paging and tail.
  auto [c, page] = Http("GET", "/api/jobs/chatty/logs?limit=1000");
  ASSERT_EQ(c, 200) << page;
  const json p = json::parse(page);
  EXPECT_EQ(p["logs"].get<std::string>().size(), 1000u);
  EXPECT_TRUE(p["truncated"].get<bool>());
  EXPECT_EQ(p["end_offset"].get<uint64_t>() - p["start_offset"].get<uint64_t>(), total);
  auto [c3, tail] = Http("GET", "/api/jobs/chatty/logs?tail=1");
  ASSERT_EQ(c3, 200) << tail;
  EXPECT_EQ(json::parse(tail)["logs"], "the end\n");
  EXPECT_TRUE(json::parse(tail)["complete"].get<bool>());
  EXPECT_EQ(Http("GET", "/api/jobs/chatty/logs?limit=99999999").first, 400);
  EXPECT_EQ(Http("GET", "/api/jobs/chatty/logs?offset=-1").first, 400);
  auto cli = Job({"logs", "chatty", "--tail", "1"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out, "the end\n");
}

// Regression (issue 12.4): 300 submissions made 300 head threads and 300 running drivers. Now at
// most --max-running-jobs drivers run; later jobs wait PENDING with the reason, start first in
// first out as others end, and waiting jobs cost the head no thread.
TEST_F(JobLimitsTest, JobsBeyondTheLimitWaitPendingWithoutThreadsThenRun) {
  const long threads_before = HeadProcStatus("Threads");
  for (int i = 0; i < 2; ++i) {
    auto [code, body] =
        Http("POST", "/api/jobs/",
             R"({"entrypoint": "sleep 2", "submission_id": "long)" + std::to_string(i) + R"("})");
    ASSERT_EQ(code, 200) << body;
  }
  for (int i = 0; i < 100; ++i) {
    auto [code, body] =
        Http("POST", "/api/jobs/",
             R"({"entrypoint": "echo queued", "submission_id": "q)" + std::to_string(i) + R"("})");
    ASSERT_EQ(code, 200) << body;
  }
  const long threads_after = HeadProcStatus("Threads");
  std::cerr << "head threads: " << threads_before << " -> " << threads_after
            << " with 2 running and 100 waiting jobs\n";
  EXPECT_LT(threads_after - threads_before, 10);
  const json q0 = JobJson("q0");
  EXPECT_EQ(q0.value("status", ""), "PENDING") << q0.dump();
  EXPECT_EQ(q0.value("message", ""), "waiting: 2 jobs running (--max-running-jobs 2)");
  // Keep the test short: stop all but the first five waiting jobs (at once: nothing runs).
  for (int i = 5; i < 100; ++i) {
    auto [code, body] = Http("POST", "/api/jobs/q" + std::to_string(i) + "/stop");
    EXPECT_EQ(code, 200) << body;
  }
  EXPECT_EQ(JobJson("q99").value("status", ""), "STOPPED");
  for (const std::string id : {"long0", "long1", "q0", "q1", "q2", "q3", "q4"}) {
    const json j = WaitTerminal(id);
    EXPECT_EQ(j.value("status", ""), "SUCCEEDED") << j.dump();
    if (id[0] == 'q') {
      auto logs = Job({"logs", id});
      EXPECT_EQ(logs.out, "queued\n");
    }
  }
}

}  // namespace
}  // namespace orrery::live
