// WorkerPool: long-lived worker processes on one node that run built-in workloads (sleep, cpu,
// memory, produce), reused from task to task instead of one process spawn per task.
//
// Workers are `orrery __worker` children of the node daemon (through its ProcessSupervisor, so
// they share its kill-on-stop), keyed by the node's dense runtime-env id (the node maps install
// hash + env vars to it). The pool is transport only: whether a task reuses an idle worker or
// starts one, and whether a worker whose task ended stays idle, is the node agent's decision
// (core/agent/node_agent.h AcquireWorker / ReleaseWorker: kept per env up to its limit, GPU work
// on a fresh worker). The pool only picks WHICH idle worker of the env (the most recently used),
// runs the processes and their pipes, and tells the agent when an idle worker leaves (exits, or
// is retired by RetireIdleWithEnv) so its idle count follows. A worker of an env is started with
// that env's WorkerEnv (variables over options.env, working directory).
//
// Protocol (text lines; the worker reads stdin and writes stdout):
//   node -> worker:  run <task_id> <kind> <duration_ms> <bytes> <output_path|->
//   worker -> node:  begin <task_id>     (it read the command and starts the workload now)
//   worker -> node:  done <task_id> <exit_code> <message...>
// A worker that dies while running a task fails that task (exit 128 + signal).
//
// Thread safety: none; the node's state loop owns the pool. Supervisor callbacks are handed to
// `post`, which must run them on that loop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/agent/node_agent.h"
#include "core/status.h"
#include "live/common/idle_workers.h"
#include "live/common/process.h"

namespace orrery::live {

struct WorkloadSpec {
  enum class Kind : uint8_t { kSleep, kCpu, kMemory, kProduce };
  Kind kind = Kind::kSleep;
  int64_t duration_ms = 0;
  uint64_t bytes = 0;       // kMemory: bytes held; kProduce: object size
  std::string output_path;  // kProduce: where the object is written (atomically)
};
const char* WorkloadKindName(WorkloadSpec::Kind k);  // "sleep" | "cpu" | "memory" | "produce"

struct WorkerPoolOptions {
  std::string exe;                                       // the orrery binary
  std::vector<std::pair<std::string, std::string>> env;  // added to workers' environment
};

// How the pool asks the node agent (both run on the node's loop).
struct WorkerPoolHooks {
  // A worker of `env` finished its task and was not retired: true keeps it idle for the next
  // task of its env (NodeAgent::ReleaseWorker), false makes it exit. Unset: it exits.
  std::function<bool(int64_t env, bool gpu)> keep_idle;
  // An idle worker of `env` left the pool without being reused (NodeAgent::IdleWorkerGone).
  std::function<void(int64_t env)> idle_gone;
};

// --- runtime envs: where a pooled worker of one key runs (live/node/runtime_env_agent.h AppliedEnv).
struct WorkerEnv {
  std::vector<std::pair<std::string, std::string>> env;  // added over WorkerPoolOptions::env
  std::string cwd;                                       // empty: the daemon's
};

class WorkerPool {
 public:
  using Post = std::function<void(std::function<void()>)>;
  // exit_code 0 = the workload completed; `error` says why otherwise.
  using OnDone = std::function<void(int exit_code, const std::string& error)>;
  // The worker began the task: for a new worker, once its process is up (tens of ms after the
  // spawn), for a reused one at once.
  using OnBegin = std::function<void()>;

  // REQUIRES: `supervisor` outlives the pool; `post` runs closures on the owning loop.
  WorkerPool(ProcessSupervisor* supervisor, WorkerPoolOptions options, Post post,
             WorkerPoolHooks hooks);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `spec` for `task_id` on a worker of `env` as the agent decided: kReuse takes the most
  // recently used idle worker of `env` (a new one if, against the agent's count, none is idle);
  // kStart starts a new one in `in_env`, which must be the same for every call with one env.
  // `gpu` is handed back to hooks.keep_idle when the task ends. Returns the worker's pid;
  // `on_begin` is called on the loop when the worker begins the task (not if it dies first),
  // `on_done` once it ends. Error if no worker can start.
  StatusOr<pid_t> Run(int64_t env, agent::WorkerAction action, bool gpu, const std::string& task_id,
                      const WorkloadSpec& spec, OnBegin on_begin, OnDone on_done,
                      const WorkerEnv& in_env = {});
  // --- runtime envs: idle workers started with variable `name` = `value` exit (e.g. those of
  // an evicted install: their cwd and PATH are gone). Busy ones finish their task first and are
  // then not reused. O(workers).
  void RetireIdleWithEnv(const std::string& name, const std::string& value);
  size_t num_workers() const { return workers_.size(); }
  // --- dashboard: each worker's pid, env id and task ("" while idle), by pid.
  struct WorkerRow {
    pid_t pid = 0;
    int64_t env = -1;
    std::string task;
  };
  std::vector<WorkerRow> Rows() const {
    std::vector<WorkerRow> out;
    for (const auto& [pid, w] : workers_) out.push_back({pid, w.env, w.task});
    return out;
  }
  size_t num_idle() const;

 private:
  struct Worker {
    int64_t env = -1;
    bool gpu = false;  // its current task's
    std::vector<std::pair<std::string, std::string>> vars;  // its WorkerEnv's variables
    bool retired = false;                                   // not reused after its task
    int stdin_fd = -1;
    std::string buffer;  // stdout bytes not yet a full line
    std::string task;    // empty while idle
    OnBegin on_begin;
    OnDone on_done;
  };
  StatusOr<pid_t> StartWorker(int64_t env, const WorkerEnv& in_env);
  void OnOutput(pid_t pid, const std::string& chunk);
  void OnExit(pid_t pid, int code, int sig);
  void Retire(pid_t pid);

  ProcessSupervisor* supervisor_;
  WorkerPoolOptions options_;
  Post post_;
  WorkerPoolHooks hooks_;
  std::map<pid_t, Worker> workers_;
  IdleWorkers idle_;
};

// The `orrery __worker` process: reads commands from stdin until EOF. Returns the exit code.
int RunWorkerMain();

}  // namespace orrery::live
