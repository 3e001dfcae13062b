// RuntimeEnvAgent: a node's runtime-env agent (DESIGN section 4). It installs the runtime envs
// (live/common/runtime_env.h) of the tasks and workers that run on the node, caches the installs, and
// tells the node how to start a process inside one.
//
// An install lives in `<root>/<install hash>/` (root = <session_dir>/runtime_envs):
//   working_dir/   the env's working_dir package, downloaded from the head and unpacked (once per
//                  node and install)
//   setup.log      the setup commands' output (stdout and stderr), headed by "$ <command>" lines
//   bin/ ...       whatever setup created: setup runs in this directory (`/bin/sh -c`), one
//                  command after the other, with `<dir>/bin` first on PATH
// A process started in the env gets the env's env_vars, `<dir>/bin` first on PATH,
// ORRERY_RUNTIME_ENV_DIR=<dir>, and the unpacked working_dir as its working directory.
//
// The decisions are the node agent's (core/agent/node_agent.h Envs(): core's EnvCache,
// core/envcache/env_cache.h, kind "runtime_env"); this agent only carries them out (StartInstall:
// an install attempt on a thread; EnvReady / EnvFailed: the waiters' callbacks; Evict: the
// directory goes). Concurrent Acquires of one install share one install (deduplicated), each user
// holds a reference until Release, an install is charged the size of its directory, and unused
// installs are evicted by the configured policy once the total exceeds the limit. An install
// attempt that fails (download, unpack, a setup command's exit status, the setup timeout) is
// retried up to the cache's max_attempts times; after the last, every waiter gets
//   runtime env setup failed: <command>: exit N (attempt 3 of 3); last lines of setup.log:
//   <tail>
//
// Timeouts: each setup command is killed after setup_timeout_s and the attempt reported failed
// (timed out) here; the cache's own attempt deadline (NodeAgent::OnTimer) is not armed, since the
// attempt is still running and would be reported again.
//
// Threading: the agent's state belongs to the node's state loop: Acquire, Release, Abandon and
// the queries are called there, and every callback runs there (through `post`). Each install
// attempt runs on a thread of its own (download, unpack, setup processes: blocking work that
// never touches the state) and posts its outcome back. Evicted directories are renamed on the
// loop (cheap) and deleted on a cleanup thread. Stop() (controlling thread, after the node's loop
// stopped taking work) kills running setup processes and joins every thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/envcache/env_cache.h"
#include "core/status.h"
#include "live/rpc/event_loop.h"
#include "live/common/runtime_env.h"

namespace orrery::live {

inline constexpr const char* kRuntimeEnvKind = "runtime_env";

struct RuntimeEnvAgentOptions {
  std::filesystem::path root;  // REQUIRES: non-empty; created if missing
  std::string head_address;    // where working_dir packages are downloaded from
  std::string token;
  std::string eviction = "arbitrary";  // the cache's policy (for log lines only)
  double setup_timeout_s = 600.0;  // per setup command, unless the env sets setup_timeout_s
  size_t log_tail_lines = 20;  // of setup.log, in failure messages (at most 4 KiB)
};

// How to start a process in an acquired env.
struct AppliedEnv {
  std::string hash;  // the install holding a reference ("" when the env needs no install)
  std::string dir;   // the install's directory ("" without install)
  // env_vars, then PATH and ORRERY_RUNTIME_ENV_DIR when there is an install; sorted by name.
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;  // the unpacked working_dir; "" if the env has none
};

class RuntimeEnvAgent {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(StatusOr<AppliedEnv>)>;

  // `cache` is the node agent's install cache (NodeAgent::Envs()), which decides; it must outlive
  // the agent and is used on the loop only. InvalidArgument for a bad timeout; Unavailable if
  // `root` cannot be created. `post` must run closures on the node's state loop.
  static StatusOr<std::unique_ptr<RuntimeEnvAgent>> Create(RuntimeEnvAgentOptions options,
                                                           envcache::EnvCache* cache, Post post);
  ~RuntimeEnvAgent();
  RuntimeEnvAgent(const RuntimeEnvAgent&) = delete;
  RuntimeEnvAgent& operator=(const RuntimeEnvAgent&) = delete;

  // Loop thread. `waiter` (a task id, unique among the waiters of one install) needs `env`.
  // `done` is called exactly once, on the loop (possibly before Acquire returns, when the env
  // needs no install or is installed already): with the AppliedEnv, whose `hash` then holds a
  // reference the caller must Release, or with the setup failure (FailedPrecondition). Not
  // called after Abandon or Stop.
  void Acquire(const RuntimeEnv& env, const std::string& waiter, Done done);
  // Loop thread. Drops the reference an AppliedEnv holds; no-op for "". May evict.
  void Release(const std::string& hash);
  // Loop thread. `waiter` gives up waiting (its task ended first); its `done` is dropped.
  void Abandon(const std::string& hash, const std::string& waiter);

  // Loop thread. Called with an install's directory when it is evicted (the node retires idle
  // workers started in it).
  void SetOnEvict(std::function<void(const std::string& dir)> on_evict) {
    on_evict_ = std::move(on_evict);
  }

  // Kills running setups and joins the install and cleanup threads. Idempotent. Afterwards no
  // callback runs.
  void Stop();
  // Any thread: true while `pid` is a setup command this agent runs (the node's orphan reaper
  // leaves it alone).
  bool IsSetupProcess(pid_t pid) const;

  std::filesystem::path DirOf(const std::string& hash) const { return options_.root / hash; }

 private:
  struct Waiter {
    RuntimeEnv env;
    Done done;
  };
  struct Attempt {  // what an install thread needs (a copy: the thread owns no state)
    std::string hash;
    int attempt = 1;
    int max_attempts = 1;  // the cache's, for the failure message
    RuntimeEnv env;
    double timeout_s = 600;
  };
  struct Outcome {
    bool ok = false;
    bool timed_out = false;
    uint64_t bytes = 0;
    std::string error;  // "runtime env setup failed: <command>: ..."
  };

  RuntimeEnvAgent(RuntimeEnvAgentOptions options, envcache::EnvCache* cache, Post post)
      : options_(std::move(options)), cache_(*cache), post_(std::move(post)) {}
  void Apply(const envcache::CacheDecisions& decisions);
  AppliedEnv Applied(const std::string& hash, const RuntimeEnv& env) const;
  void StartAttempt(const std::string& hash, int attempt);
  void OnAttemptDone(uint64_t thread_id, const Attempt& a, const Outcome& o);
  double NowS() const;
  // Install thread.
  Outcome RunAttempt(const Attempt& a);
  Status Download(const std::string& uri, const std::filesystem::path& dest_dir);
  StatusOr<int> RunSetupCommand(const std::string& cmd, const std::filesystem::path& dir,
                                int log_fd, double timeout_s, bool* timed_out);
  std::string LogTail(const std::filesystem::path& log) const;

  const RuntimeEnvAgentOptions options_;
  // The node agent's (used on the node's loop).
  envcache::EnvCache& cache_;
  Post post_;
  std::function<void(const std::string& dir)> on_evict_;
  std::map<std::string, std::map<std::string, Waiter>> waiters_;  // hash -> waiter -> Waiter
  std::map<std::string, RuntimeEnv> specs_;                       // hash -> what to install
  std::map<uint64_t, std::thread> threads_;                       // install threads by id
  uint64_t next_thread_ = 1;
  uint64_t trash_seq_ = 0;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // Shared with install threads.
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::set<pid_t> running_;    // setup process groups
  std::set<void*> downloads_;  // grpc::ClientContext* of downloads in flight
  std::mutex threads_mu_;      // guards threads_ against Stop()
  EventLoop cleanup_;          // deletes evicted directories
};

}  // namespace orrery::live
