// The live-cluster fixture of the daemon tests (live_test.cc, api_test.cc): real head and node
// daemons (processes of the built `orrery` binary, started with `orrery start`) on 127.0.0.1
// with OS-chosen free ports. A LiveCluster's destructor runs `orrery stop` and then SIGKILLs
// anything left, so daemons never outlive a failed test; every wait is bounded.
#pragma once

#include <algorithm>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "live/client/client.h"
#include "live/common/session.h"

extern char** environ;

namespace orrery::live::test {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct RunResult {
  int exit_code = -1;  // -signal if killed; -100 on timeout
  std::string out;
  std::string err;
};

inline std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A port nobody listens on right now, from the OS (bind to :0).
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// Polls `ok` every 20 ms for up to `timeout`.
inline bool Eventually(const std::function<bool()>& ok,
                       milliseconds timeout = milliseconds(5000)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ok()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return ok();
}

class LiveCluster {
 public:
  LiveCluster() {
    std::string tmpl = (fs::path(::testing::TempDir()) / "orrery_live_XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    port_ = FreePort();
  }
  ~LiveCluster() {
    Orrery({"stop", "--temp-dir", (dir_ / "root").string()}, milliseconds(15000));
    for (pid_t pid : Pids()) {
      if (IsProcessAlive(pid)) ::kill(pid, SIGKILL);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `orrery ARGS...` with a bounded wait; stdout/stderr through files (no pipe deadlocks).
  RunResult Orrery(const std::vector<std::string>& args, milliseconds timeout = milliseconds(20000),
                   const std::vector<std::string>& env_extra = {}) {
    return Exec(ORRERY_BINARY, args, timeout, env_extra);
  }

  // Runs `binary ARGS...` the same way (e.g. a driver program against this cluster).
  RunResult Exec(const std::string& binary, const std::vector<std::string>& args,
                 milliseconds timeout = milliseconds(20000),
                 const std::vector<std::string>& env_extra = {}) {
    const fs::path out = dir_ / ("stdout." + std::to_string(++runs_));
    const fs::path err = dir_ / ("stderr." + std::to_string(runs_));
    std::vector<std::string> argv_s = {binary};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      const std::string kv(*e);
      if (kv.rfind("ORRERY_", 0) != 0) env_s.push_back(kv);  // no ambient cluster
    }
    env_s.insert(env_s.end(), env_extra.begin(), env_extra.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    RunResult r;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return r;
    int status = 0;
    const auto deadline = Clock::now() + timeout;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        r.exit_code = -100;
        r.out = ReadAll(out);
        r.err = ReadAll(err) + "\n[timed out]";
        return r;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    r.out = ReadAll(out);
    r.err = ReadAll(err);
    return r;
  }

  std::string root() const { return (dir_ / "root").string(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // `orrery start --head --port P --temp-dir ROOT --node-name NAME EXTRA...`
  RunResult StartHead(const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = {"start",      "--head", "--port",      std::to_string(port_),
                                  "--temp-dir", root(),   "--node-name", name};
    // Tests that kill nodes want them declared dead quickly (0.5 s, not the 5 s default); a
    // test of the defaults passes its own --health-check-* flags.
    if (std::find(extra.begin(), extra.end(), "--health-check-period-ms") == extra.end()) {
      a.insert(a.end(), {"--health-check-period-ms", "100", "--health-check-failures", "5"});
    }
    // Tests run in parallel: the jobs API on any free port unless the test names one (8265,
    // the default, would be refused to all but one head at a time).
    if (std::find(extra.begin(), extra.end(), "--dashboard-port") == extra.end()) {
      a.insert(a.end(), {"--dashboard-port", "0"});
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return Orrery(a);
  }
  RunResult AddNode(const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = {"start", "--address",   address(), "--temp-dir",
                                  root(),  "--node-name", name};
    a.insert(a.end(), extra.begin(), extra.end());
    return Orrery(a);
  }

  std::string Token() const {
    auto s = LatestSession(root());
    if (!s.ok()) return "";
    auto t = ReadFileTrimmed(*s / "token");
    return t.ok() ? *t : "";
  }
  std::vector<pid_t> Pids() const {
    std::vector<pid_t> out;  // of every session under the root (a test may start several)
    for (const auto& s : ListSessions(dir_ / "root")) {
      for (const auto& [name, pid] : ReadPidFiles(s)) out.push_back(pid);
    }
    return out;
  }

  // `list nodes --format json`, parsed; empty on failure.
  json Nodes() {
    auto r = Orrery({"list", "nodes", "--format", "json", "--temp-dir", root()});
    if (r.exit_code != 0) return json::array();
    return json::parse(r.out, nullptr, false);
  }
  json Node(const std::string& id) {
    for (const auto& n : Nodes()) {
      if (n.value("node_id", "") == id) return n;
    }
    return json();
  }
  std::string NodeAddress(const std::string& id) { return Node(id).value("address", ""); }
  // Waits until node `id` has `n` nodes in its own view (it saw the others' broadcast).
  bool NodeKnows(const std::string& id, int n) {
    NodeClient c(NodeAddress(id), Token(), milliseconds(1000));
    return Eventually([&] {
      auto r = c.Ready();
      return r.ok() && r->known_nodes() >= n;
    });
  }

 private:
  fs::path dir_;
  int port_ = -1;
  int runs_ = 0;
};

}  // namespace orrery::live::test
