// Code workers of the C++ client API (orrery_api.h), both sides:
//
// ApiWorkerPool (node daemon side): starts `orrery __api_worker --library PATH` children through
// the node's ProcessSupervisor, keyed by (library, env, actor), and hands a ready worker's
// address to a granted lease (NodeService.AttachWorker). When the lease ends a stateless worker
// goes back to the idle list for the next lease of the same key (up to max_idle); an actor's
// worker, or one beyond that, is told to exit (stdin closed).
//
// Worker <-> node protocol (text lines on the worker's control fd, its original stdout):
//   worker -> node:  ready <port>        serving WorkerService on the node's bind host
//                    error <message>     could not load the library or serve; exits 1
// The worker's stdout and stderr go to its log files (live/node/worker_log.h: ORRERY_LOG_DIR, set by
// the node; without it both go to its stderr, the node's log), so user output never mixes with
// the protocol. Before a call of a function or actor other than the last, the worker writes a
// `:task_name:` / `:actor_name:` marker; after each call it flushes stdio. EOF on the worker's stdin (node gone, or released) ends the worker.
//
// RunApiWorkerMain (worker process): loads the library (dlopen, RTLD_NOW), serves
// WorkerService.Push with gRPC's synchronous server — one stream per lease, whose thread reads a
// task batch, runs it in order and writes one result batch; execution is serialised per worker,
// so an actor's calls run one at a time in submission order. A call that throws becomes a
// failed result carrying the exception's message.
//
// Thread safety: ApiWorkerPool is owned by the node's state loop (none of its own); supervisor
// callbacks are handed to `post`.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "live/common/process.h"

namespace orrery::live {

struct ApiWorkerSpec {
  std::string library;                                   // absolute path
  std::vector<std::pair<std::string, std::string>> env;  // sorted by name
  bool actor = false;
  std::string cwd;  // the worker's working directory (a runtime env's working_dir); "": inherit
};

struct ApiWorkerPoolOptions {
  std::string exe;                                       // the orrery binary
  std::string bind_host = "127.0.0.1";                   // where workers listen
  std::string token;                                     // the cluster token workers require
  std::vector<std::pair<std::string, std::string>> env;  // added to every worker's environment
  size_t max_idle = 16;
};

class ApiWorkerPool {
 public:
  using Post = std::function<void(std::function<void()>)>;
  // address = HOST:PORT, or an error if the worker could not start.
  using OnReady = std::function<void(StatusOr<std::pair<pid_t, std::string>>)>;
  using OnDied = std::function<void(const std::string& why)>;

  // REQUIRES: `supervisor` outlives the pool; `post` runs closures on the owning loop.
  ApiWorkerPool(ProcessSupervisor* supervisor, ApiWorkerPoolOptions options, Post post);
  ~ApiWorkerPool();
  ApiWorkerPool(const ApiWorkerPool&) = delete;
  ApiWorkerPool& operator=(const ApiWorkerPool&) = delete;

  // Gives lease `lease` a worker of `spec`: an idle one at once, or a new one once it serves.
  // `on_ready` is called exactly once (on the loop); afterwards `on_died` if the worker dies
  // while the lease holds it. REQUIRES: `lease` holds no worker.
  void Acquire(const std::string& lease, const ApiWorkerSpec& spec, OnReady on_ready,
               OnDied on_died);
  // The lease is over: its worker goes idle (stateless, room left) or exits. No callback of
  // that lease is called afterwards. No-op for an unknown lease.
  void Release(const std::string& lease);
  // Idle workers whose spec env has `name`=`value` exit (runtime envs: their env was evicted).
  void RetireIdleWithEnv(const std::string& name, const std::string& value);
  size_t num_workers() const { return workers_.size(); }

 private:
  struct Worker {
    std::string key;
    bool actor = false;
    int stdin_fd = -1;
    std::string buffer;   // control bytes not yet a full line
    std::string address;  // empty until ready
    std::string lease;    // empty while idle
    OnReady on_ready;
    OnDied on_died;
  };
  static std::string KeyOf(const ApiWorkerSpec& spec);
  void OnControl(pid_t pid, const std::string& chunk);
  void OnExit(pid_t pid, int code, int sig);
  void Retire(pid_t pid);

  ProcessSupervisor* supervisor_;
  ApiWorkerPoolOptions options_;
  Post post_;
  std::map<pid_t, Worker> workers_;
  std::map<std::string, pid_t> by_lease_;
  std::map<std::string, std::vector<pid_t>> idle_;  // by key, most recently used last
};

// `orrery __api_worker --library PATH`. Returns the exit code.
int RunApiWorkerMain(const std::vector<std::string>& args);

}  // namespace orrery::live
