// `orrery dashboard` as a user runs it: bad input refused before anything listens (exit 2 naming
// the directory, file, line or flag), a port in use refused (exit 1), and a good directory served
// until SIGINT (exit 0) at the printed address.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class DashboardCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "orrery_dashboard_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Starts `orrery ARGS...` with stdout/stderr to files; returns its pid.
  pid_t Spawn(const std::vector<std::string>& args) {
    const pid_t pid = fork();
    if (pid == 0) {
      freopen((dir_ / "stdout").c_str(), "w", stdout);
      freopen((dir_ / "stderr").c_str(), "w", stderr);
      std::vector<std::string> a = {ORRERY_BINARY};
      a.insert(a.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    return pid;
  }
  RunResult Finish(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    RunResult r;
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    r.out = ReadAll(dir_ / "stdout");
    r.err = ReadAll(dir_ / "stderr");
    return r;
  }
  RunResult Run(const std::vector<std::string>& args) { return Finish(Spawn(args)); }

  // A real result directory: `orrery sim run` of the parity scenario.
  fs::path SimRun() {
    const fs::path out = dir_ / "sim";
    EXPECT_EQ(Run({"sim", "run", std::string(ORRERY_SOURCE_DIR) + "/scenarios/parity-tiny.yaml",
                   "--no-progress", "--out", out.string()})
                  .exit_code,
              0);
    return out;
  }

  fs::path dir_;
};

TEST_F(DashboardCliTest, NoDirectoryOrThreeAreUsageErrors) {
  RunResult r = Run({"dashboard"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected one or two result directories, got 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("usage: orrery dashboard"), std::string::npos);
  r = Run({"dashboard", "a", "b", "c"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("got 3"), std::string::npos) << r.err;
  r = Run({"dashboard", dir_.string(), "--port", "http"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--port"), std::string::npos) << r.err;
}

TEST_F(DashboardCliTest, NotAResultDirectoryIsExit2NamingIt) {
  fs::create_directories(dir_ / "empty");
  RunResult r = Run({"dashboard", (dir_ / "empty").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((dir_ / "empty").string() + ": not a result directory: no summary.json "
                       "(expected the --out of sim run, live run or compare)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("Dashboard:"), std::string::npos);
  std::ofstream(dir_ / "file") << "x";
  r = Run({"dashboard", (dir_ / "file").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
  r = Run({"dashboard", (dir_ / "nowhere").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no such directory"), std::string::npos) << r.err;
}

TEST_F(DashboardCliTest, TruncatedTasksCsvIsExit2NamingFileAndLine) {
  const fs::path run = SimRun();
  const std::string csv = ReadAll(run / "tasks.csv");
  std::ofstream(run / "tasks.csv", std::ios::trunc) << csv.substr(0, csv.size() - 30);
  const size_t lines = static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n'));
  RunResult r = Run({"dashboard", run.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((run / "tasks.csv").string() + ":" + std::to_string(lines) + ": expected"),
            std::string::npos)
      << r.err;
}

TEST_F(DashboardCliTest, PortInUseIsExit1) {
  const fs::path run = SimRun();
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(s, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  RunResult r = Run({"dashboard", run.string(), "--port", std::to_string(port)});
  close(s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("port " + std::to_string(port)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
}

TEST_F(DashboardCliTest, ServesUntilSigintThenExits0) {
  const fs::path run = SimRun();
  const pid_t pid = Spawn({"dashboard", run.string(), "--port", "0"});
  std::string out;
  for (int i = 0; i < 100 && out.find("Dashboard: http://127.0.0.1:") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    out = ReadAll(dir_ / "stdout");
  }
  EXPECT_NE(out.find("Dashboard: http://127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find("/?token="), std::string::npos) << out;
  kill(pid, SIGINT);
  RunResult r = Finish(pid);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
