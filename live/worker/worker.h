// Code workers of the C++ client API (orrery_api.h), both sides:
//
// ApiWorkerPool (node daemon side): starts `orrery __api_worker --library PATH` children through
// the node's ProcessSupervisor, keyed by the node's env id of (library, env, cwd) (KeyOf), and
// hands a ready worker's address to a granted lease (NodeService.AttachWorker). The pool is
// transport only, like live/node/worker_pool.h: whether a lease reuses an idle worker or starts
// one, and whether a worker whose lease ended stays idle, is the node agent's decision
// (core/agent/node_agent.h AcquireWorker / ReleaseWorker: kept per env up to its limit, an
// actor's worker or one holding GPUs never reused). The pool only picks WHICH idle worker of the
// env (the most recently used), runs the processes, and tells the agent when an idle worker
// leaves (exits, or is retired by RetireIdleWithEnv) so its idle count follows. A worker the
// agent does not keep is told to exit (stdin closed).
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
// Start concurrency (Ray's maximum_startup_concurrency): at most max_starting workers are
// started and not yet ready at once; further starts wait in FIFO order. 1,000 actors asked of a
// 2-core node at once otherwise start 1,000 processes together: the machine thrashed (load 70+),
// the node's heartbeats starved until the head declared it dead (bench/actors_thousand.sh). A
// worker that is not ready after start_slot_timeout stops counting (hooks.post_after), so one
// that hangs while starting delays the others by that much at most, never for good.
//
// Thread safety: ApiWorkerPool is owned by the node's state loop (none of its own); supervisor
// callbacks are handed to `post`.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/agent/node_agent.h"
#include "core/status.h"
#include "live/common/idle_workers.h"
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
  // Workers started and not yet ready at once; <= 0: unlimited. The node passes its core count.
  int max_starting = 0;
  // A starting worker stops counting against max_starting after this long (needs post_after).
  std::chrono::milliseconds start_slot_timeout{10000};
};

// How the pool asks the node agent (both run on the node's loop).
struct ApiWorkerPoolHooks {
  // A ready worker of `env` lost its lease: true keeps it idle for the next lease of its env
  // (NodeAgent::ReleaseWorker), false makes it exit. Unset: it exits.
  std::function<bool(int64_t env, bool gpu, agent::WorkerKind kind)> keep_idle;
  // An idle worker of `env` left the pool without being reused (NodeAgent::IdleWorkerGone).
  std::function<void(int64_t env)> idle_gone;
  // Runs a closure on the owning loop after a delay (start_slot_timeout). Unset: a starting
  // worker counts against max_starting until it is ready, fails or exits.
  std::function<void(std::chrono::milliseconds, std::function<void()>)> post_after;
};

class ApiWorkerPool {
 public:
  using Post = std::function<void(std::function<void()>)>;
  // address = HOST:PORT, or an error if the worker could not start.
  using OnReady = std::function<void(StatusOr<std::pair<pid_t, std::string>>)>;
  using OnDied = std::function<void(const std::string& why)>;

  // REQUIRES: `supervisor` outlives the pool; `post` runs closures on the owning loop.
  ApiWorkerPool(ProcessSupervisor* supervisor, ApiWorkerPoolOptions options, Post post,
                ApiWorkerPoolHooks hooks);
  ~ApiWorkerPool();
  ApiWorkerPool(const ApiWorkerPool&) = delete;
  ApiWorkerPool& operator=(const ApiWorkerPool&) = delete;

  // The pool key of `spec`: library, env variables and cwd (actor or not: the agent decides);
  // the node maps it to the agent's env id.
  static std::string KeyOf(const ApiWorkerSpec& spec);

  // Gives lease `lease` a worker of `spec` (env id `env`, the one of KeyOf(spec)) as the agent
  // decided: kReuse takes the most recently used idle worker of `env` at once (a new one if,
  // against the agent's count, none is idle); kStart starts a new one, ready once it serves
  // (the start waits in FIFO order while max_starting workers are starting). `gpu` and
  // spec.actor are handed back to hooks.keep_idle when the lease ends. `on_ready` is called
  // exactly once (on the loop; not at all if the lease is released while its start waits);
  // afterwards `on_died` if the worker dies while the lease holds it. REQUIRES: `lease` holds
  // no worker.
  void Acquire(const std::string& lease, int64_t env, agent::WorkerAction action, bool gpu,
               const ApiWorkerSpec& spec, OnReady on_ready, OnDied on_died);
  // The lease is over: its worker goes idle (if ready and the agent keeps it) or exits. No
  // callback of that lease is called afterwards. No-op for an unknown lease.
  void Release(const std::string& lease);
  // Idle workers whose spec env has `name`=`value` exit (runtime envs: their env was evicted);
  // the agent hears of each (idle_gone). O(idle workers).
  void RetireIdleWithEnv(const std::string& name, const std::string& value);
  size_t num_workers() const { return workers_.size(); }
  size_t num_idle() const;
  size_t num_starting() const { return static_cast<size_t>(starting_); }  // holding a slot
  size_t num_start_queued() const { return start_queue_.size(); }

 private:
  struct PendingStart {
    std::string lease;
    int64_t env = -1;
    bool gpu = false;
    ApiWorkerSpec spec;
    OnReady on_ready;
    OnDied on_died;
  };
  struct Worker {
    std::string key;  // KeyOf its spec
    int64_t env = -1;
    bool actor = false;
    bool gpu = false;  // its lease's
    int stdin_fd = -1;
    std::string buffer;   // control bytes not yet a full line
    std::string address;  // empty until ready
    std::string lease;    // empty while idle
    OnReady on_ready;
    OnDied on_died;
    bool holds_slot = false;  // counted in starting_
  };
  // Spawns a worker for the lease (on_ready with the error if it cannot).
  void Start(PendingStart p);
  // Starts queued leases while fewer than max_starting workers are starting.
  void StartQueued();
  void FreeSlot(Worker& w);
  void OnControl(pid_t pid, const std::string& chunk);
  void OnExit(pid_t pid, int code, int sig);
  void Retire(pid_t pid);

  ProcessSupervisor* supervisor_;
  ApiWorkerPoolOptions options_;
  Post post_;
  ApiWorkerPoolHooks hooks_;
  std::map<pid_t, Worker> workers_;
  std::map<std::string, pid_t> by_lease_;
  IdleWorkers idle_;
  int starting_ = 0;                      // workers holding a start slot
  std::deque<PendingStart> start_queue_;  // leases waiting for a start slot, FIFO
};

// `orrery __api_worker --library PATH`. Returns the exit code.
int RunApiWorkerMain(const std::vector<std::string>& args);

}  // namespace orrery::live
