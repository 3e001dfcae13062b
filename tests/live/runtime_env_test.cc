// Runtime environments end to end (live/node/runtime_env_agent.h): real head and node daemons on
// loopback, tasks started with `orrery task run` and through the C++ API. Each test checks what
// the task sees (env vars, cwd, PATH), how often the node installed the env (setup logs and
// counters written by the setup commands themselves), and what a failure looks like.
#include "live/common/runtime_env.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <future>
#include <regex>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "live/examples/counter/counter_actor.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"
#include "tests/live/api_test_lib.h"
#include "tests/live/api_session.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;
using std::chrono::seconds;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A cluster of one head node "n1" with `extra` node flags, and helpers around it.
class RuntimeEnvTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"--num-cpus", "4"};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = cluster_.StartHead("n1", a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    work_ = fs::path(cluster_.root()).parent_path() / "work";
    fs::create_directories(work_);
  }
  fs::path Session() { return *LatestSession(cluster_.root()); }
  std::string NodeLog() { return ReadAll(Session() / "logs" / "node-n1.log"); }
  fs::path EnvRoot() { return Session() / "runtime_envs" / "n1"; }
  RunResult Task(const std::vector<std::string>& flags, const std::vector<std::string>& cmd,
                 milliseconds timeout = milliseconds(60000)) {
    std::vector<std::string> a = {"task", "run", "--temp-dir", cluster_.root()};
    a.insert(a.end(), flags.begin(), flags.end());
    a.push_back("--");
    a.insert(a.end(), cmd.begin(), cmd.end());
    return cluster_.Orrery(a, timeout);
  }
  void WriteFile(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
  // Installs of env `hash` the node completed, from its log.
  size_t Installs(const std::string& hash) { return Count(NodeLog(), "installed " + hash); }

  LiveCluster cluster_;
  fs::path work_;
};

// env_vars reach the command of `task run`; the request's own env still works.
TEST_F(RuntimeEnvTest, EnvVarsReachATaskRunCommand) {
  Start();
  auto r = Task({"--runtime-env-json", R"({"env_vars": {"GREETING": "hi there", "N": "7"}})"},
                {"sh", "-c", "echo \"$GREETING/$N\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hi there/7\n");
}

// working_dir becomes the cwd; two tasks with the same dir share one download and install; the
// head stores the package under the session dir.
TEST_F(RuntimeEnvTest, WorkingDirIsTheCwdAndIsInstalledOncePerNode) {
  Start();
  WriteFile(work_ / "wd" / "data.txt", "payload\n");
  WriteFile(work_ / "wd" / "sub" / "x.txt", "x\n");
  for (int i = 0; i < 2; ++i) {
    auto r = Task({"--working-dir", (work_ / "wd").string()},
                  {"sh", "-c", "cat data.txt sub/x.txt; pwd"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, 10), "payload\nx\n");
    EXPECT_CONTAINS(r.out, EnvRoot().string());
    EXPECT_CONTAINS(r.out, "/working_dir\n");
  }
  auto pkg = PackageDirectory(work_ / "wd");
  ASSERT_TRUE(pkg.ok());
  EXPECT_TRUE(fs::exists(Session() / "packages" / (pkg->sha256 + ".pkg")));
  RuntimeEnv env;
  env.working_dir = PackageUri(pkg->sha256);
  const std::string hash = InstallHash(env);
  EXPECT_EQ(Installs(hash), 1u) << NodeLog();
  EXPECT_EQ(Count(ReadAll(EnvRoot() / hash / "setup.log"), "# runtime env"), 1u);
  // A changed directory is a new package and a new install.
  WriteFile(work_ / "wd" / "data.txt", "changed\n");
  auto r = Task({"--working-dir", (work_ / "wd").string()}, {"cat", "data.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "changed\n");
}

// Setup runs in the env dir; what it puts in bin/ is on the task's PATH. Also from a YAML file.
TEST_F(RuntimeEnvTest, SetupBinIsOnPath) {
  Start();
  WriteFile(work_ / "env.yaml",
            "setup:\n"
            "  - mkdir -p bin\n"
            "  - printf '#!/bin/sh\\necho hello from setup\\n' > bin/hello && chmod +x bin/hello\n"
            "env_vars:\n"
            "  WHO: \"yaml\"\n");
  auto r =
      Task({"--runtime-env", (work_ / "env.yaml").string()},
           {"sh", "-c", "hello; echo $WHO; test -d \"$ORRERY_RUNTIME_ENV_DIR/bin\" && echo ok"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello from setup\nyaml\nok\n");
}

// A Python venv made by setup, with a package installed offline from a local wheel: the task's
// python3 is the venv's and imports it.
TEST_F(RuntimeEnvTest, PythonVenvWithPipInstallFromALocalWheel) {
  if (std::system("python3 -c 'import venv, zipfile' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no python3 with venv here";
  }
  Start();
  const fs::path wheels = work_ / "wheels";
  fs::create_directories(wheels);
  // A minimal pure-Python wheel, written by hand (no setuptools or network needed).
  WriteFile(work_ / "mkwheel.py", R"PY(
import base64, hashlib, sys, zipfile
out = sys.argv[1]
files = {
    "orrery_hello/__init__.py": "def greet():\n    return 'hello from a wheel'\n",
    "orrery_hello-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: orrery_hello\nVersion: 0.1\n",
    "orrery_hello-0.1.dist-info/WHEEL":
        "Wheel-Version: 1.0\nGenerator: orrery-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(out + "/orrery_hello-0.1-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("orrery_hello-0.1.dist-info/RECORD,,")
    z.writestr("orrery_hello-0.1.dist-info/RECORD", "\n".join(record) + "\n")
)PY");
  ASSERT_EQ(
      std::system(("python3 " + (work_ / "mkwheel.py").string() + " " + wheels.string()).c_str()),
      0);
  const std::string env =
      R"({"setup": ["python3 -m venv .", "bin/pip install --no-index --find-links )" +
      wheels.string() + R"( orrery_hello"], "setup_timeout_s": 120})";
  auto r = Task(
      {"--runtime-env-json", env},
      {"python3", "-c", "import sys, orrery_hello; print(orrery_hello.greet()); print(sys.prefix)"},
      milliseconds(180000));
  ASSERT_EQ(r.exit_code, 0) << r.err << NodeLog();
  EXPECT_CONTAINS(r.out, "hello from a wheel\n");
  EXPECT_CONTAINS(r.out, EnvRoot().string());  // the venv is the env dir
}

// Concurrent tasks with the same env: one install, every task runs in it.
TEST_F(RuntimeEnvTest, ConcurrentTasksShareOneInstall) {
  Start();
  const fs::path count = work_ / "setup_runs";
  const std::string env = R"({"setup": ["echo run >> )" + count.string() +
                          R"(; sleep 1; mkdir -p bin; echo marker > bin/marker"]})";
  std::vector<std::future<RunResult>> runs;
  for (int i = 0; i < 3; ++i) {
    runs.push_back(std::async(std::launch::async, [&] {
      return Task({"--runtime-env-json", env},
                  {"sh", "-c", "cat \"$ORRERY_RUNTIME_ENV_DIR/bin/marker\""});
    }));
  }
  for (auto& f : runs) {
    RunResult r = f.get();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "marker\n");
  }
  EXPECT_EQ(ReadAll(count), "run\n");  // setup ran once
  auto e = ParseRuntimeEnvJson(env, "x");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(Installs(InstallHash(*e)), 1u);
}

// A failing setup: tried 3 times, then the task is canceled with the command, its exit status
// and the log tail; the node keeps working.
TEST_F(RuntimeEnvTest, FailingSetupCancelsTheTaskWithTheCommandAndLogTail) {
  Start();
  const fs::path count = work_ / "attempts";
  const std::string cmd = "echo attempt >> " + count.string() + "; echo pip says no; exit 3";
  auto r = Task({"--runtime-env-json", R"({"setup": ["true", ")" + cmd + R"("]})"},
                {"echo", "never printed"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_CONTAINS(r.err, "runtime env setup failed: " + cmd + ": exit 3 (attempt 3 of 3)");
  EXPECT_CONTAINS(r.err, "last lines of setup.log:");
  EXPECT_CONTAINS(r.err, "pip says no");
  EXPECT_EQ(ReadAll(count), "attempt\nattempt\nattempt\n");
  // The head's record: canceled, with the reason.
  EXPECT_TRUE(Eventually([&] {
    auto t = cluster_.Orrery({"list", "tasks", "--temp-dir", cluster_.root(), "--format", "json"});
    for (const auto& rec : json::parse(t.out, nullptr, false)) {
      if (rec.is_object() && rec.value("state", "") == "CANCELED" &&
          rec.value("error", "").find("runtime env setup failed: " + cmd) != std::string::npos) {
        return true;
      }
    }
    return false;
  }));
  // The node is unaffected: a plain task and the same env again (a fresh round of attempts).
  auto ok = Task({}, {"echo", "still fine"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "still fine\n");
  auto again = Task({"--runtime-env-json", R"({"setup": [")" + cmd + R"("]})"}, {"true"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(Count(ReadAll(count), "attempt"), 6u);
}

// A setup command past its timeout is killed (with its children); the env's setup_timeout_s and
// the node's --runtime-env-setup-timeout-s both work.
TEST_F(RuntimeEnvTest, SetupTimeoutKillsTheCommand) {
  Start({"--runtime-env-setup-timeout-s", "0.4"});
  const auto t0 = Clock::now();
  auto r = Task({"--runtime-env-json", R"({"setup": ["sleep 30"]})"}, {"true"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err,
                  "runtime env setup failed: sleep 30: timed out after 0.4 s (attempt 3 of 3)");
  auto r2 =
      Task({"--runtime-env-json", R"({"setup": ["sleep 20 && true"], "setup_timeout_s": 0.2})"},
           {"true"});
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_CONTAINS(r2.err, "timed out after 0.2 s");
  EXPECT_LT(Clock::now() - t0, seconds(15));
  // No sleep left behind.
  EXPECT_NE(std::system("pgrep -f '^sleep 30$' >/dev/null"), 0);
}

// Beyond the cache limit, unused envs are evicted by the configured policy: with LRU, after
// A, B, A, C (1000 bytes each, limit 2500) B goes (least recently used), A and C stay.
TEST_F(RuntimeEnvTest, EvictionBeyondTheLimitFollowsThePolicy) {
  Start({"--runtime-env-cache-bytes", "2500", "--runtime-env-eviction", "lru"});
  auto env_of = [&](const std::string& name) {
    return R"({"setup": ["head -c 1000 /dev/zero > )" + name + R"(.bin; echo )" + name + " >> " +
           (work_ / "installs").string() + R"("]})";
  };
  auto hash_of = [&](const std::string& name) {
    return InstallHash(*ParseRuntimeEnvJson(env_of(name), "x"));
  };
  for (const char* name : {"A", "B", "A", "C"}) {
    auto r = Task({"--runtime-env-json", env_of(name)}, {"true"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_TRUE(Eventually([&] { return !fs::exists(EnvRoot() / hash_of("B")); }));
  EXPECT_TRUE(fs::exists(EnvRoot() / hash_of("A") / "A.bin"));
  EXPECT_TRUE(fs::exists(EnvRoot() / hash_of("C") / "C.bin"));
  EXPECT_CONTAINS(NodeLog(), "evicted " + hash_of("B"));
  EXPECT_EQ(ReadAll(work_ / "installs"), "A\nB\nC\n");  // A's second use was a cache hit
  // B again: installed anew.
  ASSERT_EQ(Task({"--runtime-env-json", env_of("B")}, {"true"}).exit_code, 0);
  EXPECT_EQ(ReadAll(work_ / "installs"), "A\nB\nC\nB\n");
}

// Bad input: malformed JSON, unknown fields, a missing working_dir, bad node flags -> exit 2
// with the field named; a daemon given a bad runtime_env_json refuses it and keeps serving.
TEST_F(RuntimeEnvTest, BadInputIsRefusedClearly) {
  Start();
  struct Case {
    std::vector<std::string> flags;
    std::string want;
  };
  const Case cases[] = {
      {{"--runtime-env-json", "{\"env_vars\": "}, "--runtime-env-json:1: malformed JSON"},
      {{"--runtime-env-json", R"({"pip": ["x"]})"}, "pip: unknown field (allowed: env_vars"},
      {{"--runtime-env-json", R"({"env_vars": {"A": 1}})"}, "env_vars.A: expected a string"},
      {{"--working-dir", (work_ / "missing").string()}, "working_dir: "},
      {{"--runtime-env", (work_ / "none.yaml").string()}, "none.yaml"},
  };
  for (const auto& c : cases) {
    auto r = Task(c.flags, {"true"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_CONTAINS(r.err, c.want);
  }
  // Straight to the node: INVALID_ARGUMENT naming the field.
  NodeClient node(cluster_.NodeAddress("n1"), cluster_.Token());
  v1::RunTaskRequest req;
  req.set_task_id("t-bad");
  req.add_argv("true");
  req.set_runtime_env_json("{\"setup\": 1}");
  auto exit = node.RunTask(req, [](const v1::RunTaskReply&) {});
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(exit.status().message(), "runtime_env_json: setup: expected a list");
  EXPECT_TRUE(node.Ready().ok());  // the daemon still serves
  auto bad_flag = cluster_.Orrery({"start", "--address", cluster_.address(), "--temp-dir",
                                   cluster_.root(), "--runtime-env-eviction", "fifo"});
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_CONTAINS(bad_flag.err, "--runtime-env-eviction: expected one of arbitrary|lru|gdsf");
}

// Two nodes: each downloads and installs the env once, however many tasks use it there; while
// the install runs the task waits with reason waiting_for_runtime_env.
TEST_F(RuntimeEnvTest, EachNodeInstallsOnceAndTasksWaitForTheEnv) {
  Start();
  ASSERT_EQ(cluster_.AddNode("n2", {"--num-cpus", "4"}).exit_code, 0);
  WriteFile(work_ / "wd" / "data.txt", "shared\n");
  const std::string env = R"({"setup": ["sleep 1.5"]})";
  auto slow = std::async(std::launch::async, [&] {
    return Task({"--working-dir", (work_ / "wd").string(), "--runtime-env-json", env, "--strategy",
                 "node:n1"},
                {"cat", "data.txt"});
  });
  EXPECT_TRUE(Eventually(
      [&] {
        auto t =
            cluster_.Orrery({"list", "tasks", "--temp-dir", cluster_.root(), "--format", "json"});
        return t.out.find("waiting_for_runtime_env") != std::string::npos;
      },
      milliseconds(5000)));
  RunResult first = slow.get();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "shared\n");
  for (const char* node : {"n1", "n2", "n2", "n1"}) {
    auto r = Task({"--working-dir", (work_ / "wd").string(), "--runtime-env-json", env,
                   "--strategy", std::string("node:") + node},
                  {"sh", "-c", "cat data.txt; echo $ORRERY_NODE_ID"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "shared\n" + std::string(node) + "\n");
  }
  auto pkg = PackageDirectory(work_ / "wd");
  ASSERT_TRUE(pkg.ok());
  RuntimeEnv e = *ParseRuntimeEnvJson(env, "x");
  e.working_dir = PackageUri(pkg->sha256);
  const std::string hash = InstallHash(e);
  EXPECT_EQ(Count(NodeLog(), "installed " + hash), 1u);
  EXPECT_EQ(Count(ReadAll(Session() / "logs" / "node-n2.log"), "installed " + hash), 1u);
  EXPECT_TRUE(fs::exists(Session() / "runtime_envs" / "n2" / hash / "working_dir" / "data.txt"));
}

// An env in use is never evicted, even far over the limit; it goes once its last user ends.
TEST_F(RuntimeEnvTest, EnvsInUseAreNeverEvicted) {
  Start({"--runtime-env-cache-bytes", "1"});
  const fs::path gate = work_ / "gate";
  const std::string env_a = R"({"setup": ["head -c 100 /dev/zero > a.bin"]})";
  const std::string hash_a = InstallHash(*ParseRuntimeEnvJson(env_a, "x"));
  // A's task runs until the gate file appears (bounded: 20 s).
  auto holder = std::async(std::launch::async, [&] {
    return Task({"--runtime-env-json", env_a},
                {"sh", "-c",
                 "i=0; while [ ! -e " + gate.string() +
                     " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo done"});
  });
  ASSERT_TRUE(Eventually([&] { return fs::exists(EnvRoot() / hash_a / "a.bin"); }));
  const std::string env_b = R"({"setup": ["head -c 100 /dev/zero > b.bin"]})";
  const std::string hash_b = InstallHash(*ParseRuntimeEnvJson(env_b, "x"));
  ASSERT_EQ(Task({"--runtime-env-json", env_b}, {"true"}).exit_code, 0);
  // B was unused once its task ended: evicted; A is in use: kept.
  EXPECT_TRUE(Eventually([&] { return !fs::exists(EnvRoot() / hash_b); }));
  EXPECT_TRUE(fs::exists(EnvRoot() / hash_a / "a.bin"));
  WriteFile(gate, "");
  RunResult r = holder.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "done\n");
  EXPECT_TRUE(Eventually([&] { return !fs::exists(EnvRoot() / hash_a); }));
}

// The head keeps only packages whose bytes hash to their name, and serves them back.
TEST_F(RuntimeEnvTest, HeadVerifiesAndServesPackages) {
  Start();
  auto stub = v1::HeadService::NewStub(
      grpc::CreateChannel(cluster_.address(), grpc::InsecureChannelCredentials()));
  const std::string bytes = "ORRPKG1\nf 644 2 a.txt\nhi";
  {
    grpc::ClientContext ctx;
    AttachToken(&ctx, cluster_.Token());
    v1::UploadPackageReply reply;
    auto w = stub->UploadPackage(&ctx, &reply);
    v1::PackageChunk c;
    c.set_sha256(Sha256Hex("something else"));
    c.set_total_bytes(bytes.size());
    c.set_data(bytes);
    w->Write(c);
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_CONTAINS(s.error_message(), "hash to " + Sha256Hex(bytes));
  }
  {
    grpc::ClientContext ctx;  // no token
    v1::HasPackageRequest req;
    req.set_sha256(Sha256Hex(bytes));
    v1::HasPackageReply reply;
    EXPECT_EQ(stub->HasPackage(&ctx, req, &reply).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  WriteFile(work_ / "pkgdir" / "a.txt", "hi");
  RuntimeEnv env;
  env.working_dir = (work_ / "pkgdir").string();
  auto up = UploadWorkingDir(env, cluster_.address(), cluster_.Token());
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  auto pkg = PackageDirectory(work_ / "pkgdir");
  ASSERT_TRUE(pkg.ok());
  EXPECT_EQ(up->working_dir, PackageUri(pkg->sha256));
  // Uploading again is a no-op; downloading gives the same bytes.
  EXPECT_TRUE(UploadWorkingDir(env, cluster_.address(), cluster_.Token()).ok());
  grpc::ClientContext ctx;
  AttachToken(&ctx, cluster_.Token());
  v1::DownloadPackageRequest req;
  req.set_sha256(pkg->sha256);
  auto reader = stub->DownloadPackage(&ctx, req);
  std::string got;
  v1::PackageChunk c;
  while (reader->Read(&c)) got += c.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, pkg->bytes);
  // A working_dir over the client's limit is refused before any upload.
  UploadOptions small;
  small.max_bytes = 1;
  auto big = UploadWorkingDir(env, cluster_.address(), cluster_.Token(), small);
  ASSERT_FALSE(big.ok());
  EXPECT_CONTAINS(big.status().message(), "working_dir: ");
  EXPECT_CONTAINS(big.status().message(), "larger than the limit of 1 bytes");
}

// ---- the C++ API ------------------------------------------------------------------------------

// A malformed job env makes Init fail, naming the variable and the field.
TEST_F(RuntimeEnvTest, ApiInitRefusesAMalformedJobEnv) {
  Start();
  ::setenv("ORRERY_JOB_RUNTIME_ENV", R"({"env_vars": {"A": 1}})", 1);
  ApiSession s(cluster_);
  ::unsetenv("ORRERY_JOB_RUNTIME_ENV");
  ASSERT_FALSE(s.status().ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(s.status().message(), "ORRERY_JOB_RUNTIME_ENV: env_vars.A: expected a string");
}

// The driver's env = $ORRERY_JOB_RUNTIME_ENV merged with InitOptions; per-call SetRuntimeEnv
// merges over it (env_vars key by key); the counter actor reads counter_name from its env.
TEST_F(RuntimeEnvTest, ApiTasksAndActorsGetMergedEnvs) {
  Start();
  ::setenv("ORRERY_JOB_RUNTIME_ENV", R"({"env_vars": {"FROM_JOB": "job", "BOTH": "job"}})", 1);
  api::InitOptions o;
  o.runtime_env_json = R"({"env_vars": {"BOTH": "init"}})";
  ApiSession s(cluster_, o);
  ::unsetenv("ORRERY_JOB_RUNTIME_ENV");
  ASSERT_TRUE(s.status().ok()) << s.status().ToString();
  auto v = api::Get(api::Task(api_test::Env).Remote("FROM_JOB"), seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "job");
  v = api::Get(api::Task(api_test::Env).Remote("BOTH"), seconds(30));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "init");
  v = api::Get(
      api::Task(api_test::Env).SetRuntimeEnv(R"({"env_vars": {"BOTH": "call"}})").Remote("BOTH"),
      seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "call");

  auto counter = api::Actor(examples::Counter::Create)
                     .SetRuntimeEnv(R"({"env_vars": {"counter_name": "renv"}})")
                     .Remote();
  auto a = api::Get(counter.Task(&examples::Counter::Increment).Remote(), seconds(30));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, "renv got 1");

  // A working_dir and setup for a task: the worker runs in the env dir.
  WriteFile(work_ / "apiwd" / "f.txt", "x");
  v = api::Get(api::Task(api_test::Env)
                   .SetRuntimeEnv(R"({"working_dir": ")" + (work_ / "apiwd").string() +
                                  R"(", "setup": ["mkdir -p bin"]})")
                   .Remote("ORRERY_RUNTIME_ENV_DIR"),
               seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_CONTAINS(*v, EnvRoot().string());

  // A failing setup fails the call with the command; a malformed env fails it at once.
  auto bad = api::Get(
      api::Task(api_test::Env).SetRuntimeEnv(R"({"setup": ["exit 7"]})").Remote("X"), seconds(30));
  ASSERT_FALSE(bad.ok());
  EXPECT_CONTAINS(bad.status().message(), "runtime env setup failed: exit 7: exit 7");
  auto malformed =
      api::Get(api::Task(api_test::Env).SetRuntimeEnv(R"({"nope": 1})").Remote("X"), seconds(5));
  ASSERT_FALSE(malformed.ok());
  EXPECT_CONTAINS(malformed.status().message(), "SetRuntimeEnv: nope: unknown field");
}

// A code worker started in an env is not reused once that env was evicted (its directory is
// gone): the next call reinstalls the env and gets a fresh worker.
TEST_F(RuntimeEnvTest, ApiWorkersOfAnEvictedEnvAreNotReused) {
  Start({"--runtime-env-cache-bytes", "1"});
  api::InitOptions o;
  o.idle_lease_timeout = milliseconds(200);
  ApiSession s(cluster_, o);
  ASSERT_TRUE(s.status().ok()) << s.status().ToString();
  const std::string env = R"({"setup": ["echo installed > marker"]})";
  const std::string hash = InstallHash(*ParseRuntimeEnvJson(env, "x"));
  auto pid1 = api::Get(api::Task(api_test::SleepMs).SetRuntimeEnv(env).Remote(0), seconds(30));
  ASSERT_TRUE(pid1.ok()) << pid1.status().ToString();
  // The lease goes back after the idle timeout; the env, now unused and over the limit, goes.
  ASSERT_TRUE(Eventually([&] { return !fs::exists(EnvRoot() / hash); }, milliseconds(10000)));
  auto pid2 = api::Get(api::Task(api_test::SleepMs).SetRuntimeEnv(env).Remote(0), seconds(30));
  ASSERT_TRUE(pid2.ok()) << pid2.status().ToString();
  EXPECT_NE(*pid1, *pid2);
  EXPECT_EQ(Count(NodeLog(), "installed " + hash), 2u);
}

}  // namespace
}  // namespace orrery::live
